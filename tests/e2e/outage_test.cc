// End to end: an endpoint that is down when `duplex run` starts (issue "Drift repair and data
// safety", section 2, "Endpoints must be reachable when `run` starts"). It is an outage like
// one that begins later: retried with backoff and shown as down, while the other endpoints
// sync among themselves; once it is up it is installed and catches up. A real config error
// still ends the run at once with exit code 2.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include "support/pg_cluster.h"
#include "support/process.h"
#include "support/sync_fixture.h"
#include "support/test_util.h"

namespace duplex {
namespace {

using std::chrono::milliseconds;
using testing::ConfigBuilder;
using testing::Outcome;
using testing::PgCluster;
using testing::PollUntil;
using testing::SqlExec;
using testing::SqlQuery;
using testing::SyncFixture;

constexpr const char* kItems =
    "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER);";
constexpr const char* kPgItems = "CREATE TABLE items(id int PRIMARY KEY, name text, qty int);";

class OutageAtStartTest : public ::testing::Test, public SyncFixture {
 protected:
  void SetUp() override {
    // PostgreSQL endpoint `b`, made ready and then stopped before duplex starts.
    ASSERT_OK(server_.Start());
    ASSERT_OK(server_.CreateDatabase("b"));
    ASSERT_OK(server_.Exec(kPgItems, "b"));
    ASSERT_OK(server_.Exec("INSERT INTO items VALUES (9, 'b-own', 9)", "b"));
    ASSERT_OK(server_.Stop());
  }
  std::string Lite(const std::string& name) {
    return SqlQuery(File(name + ".db"), "SELECT id, name, qty FROM items ORDER BY id");
  }
  std::string Pg() {
    Result<std::string> r = server_.Query("SELECT id, name, qty FROM items ORDER BY id", "b");
    return r.ok() ? *r : "(down)";
  }

  PgCluster server_;
};

// Before the fix `run` ended at once with exit code 1 ("cannot connect"), syncing nothing.
TEST_F(OutageAtStartTest, OthersSyncWhileItIsDownThenItCatchesUp) {
  SqlExec(File("a.db"), kItems);
  SqlExec(File("c.db"), kItems);
  ConfigBuilder config;
  config.Sqlite("a", "a.db").Postgres("b", server_.dsn("b")).Sqlite("c", "c.db");
  config.Collection("item").On("a", "items").On("b", "items").On("c", "items");
  WriteConfig(config);
  auto run = Background({"run"});
  SqlExec(File("a.db"), "INSERT INTO items VALUES (1, 'one', 1)");
  ASSERT_TRUE(PollUntil([&] { return Lite("c") == "1|one|1\n"; }, milliseconds(30000)))
      << Lite("c") << run->Err();
  // Shown as down, by `duplex status` in another process too.
  nlohmann::json status = StatusJson();
  ASSERT_EQ(status["endpoints"].size(), 3u) << status.dump(2);
  EXPECT_TRUE(status["endpoints"][1]["last_error"].is_string()) << status.dump(2);
  EXPECT_TRUE(status["endpoints"][0]["last_error"].is_null()) << status.dump(2);
  EXPECT_TRUE(run->Running()) << run->Err();

  ASSERT_OK(server_.Start());
  SqlExec(File("c.db"), "UPDATE items SET qty = 2 WHERE id = 1");
  const std::string want = "1|one|2\n9|b-own|9\n";
  ASSERT_TRUE(PollUntil([&] { return Pg() == want && Lite("a") == want && Lite("c") == want; },
                        milliseconds(30000)))
      << Pg() << "\n"
      << Lite("a") << "\n"
      << Lite("c") << "\n"
      << run->Err();
  run->Signal(SIGTERM);
  EXPECT_EQ(run->Wait(milliseconds(30000)), 0) << run->Err();
  EXPECT_NE(run->Err().find("endpoint=b"), std::string::npos) << run->Err();
}

// With two endpoints there is no one to sync with meanwhile: a's changes wait, then reach b.
TEST_F(OutageAtStartTest, WithTwoEndpointsChangesWaitForIt) {
  SqlExec(File("a.db"), kItems);
  SqlExec(File("a.db"), "INSERT INTO items VALUES (1, 'one', 1)");
  ConfigBuilder config;
  config.Sqlite("a", "a.db").Postgres("b", server_.dsn("b"));
  config.Collection("item").On("a", "items").On("b", "items");
  WriteConfig(config);
  auto run = Background({"run"});
  std::this_thread::sleep_for(milliseconds(500));
  SqlExec(File("a.db"), "INSERT INTO items VALUES (2, 'two', 2)");
  std::this_thread::sleep_for(milliseconds(500));
  ASSERT_TRUE(run->Running()) << run->Err();
  ASSERT_OK(server_.Start());
  const std::string want = "1|one|1\n2|two|2\n9|b-own|9\n";
  ASSERT_TRUE(PollUntil([&] { return Pg() == want && Lite("a") == want; }, milliseconds(30000)))
      << Pg() << "\n"
      << Lite("a") << "\n"
      << run->Err();
  run->Signal(SIGTERM);
  EXPECT_EQ(run->Wait(milliseconds(30000)), 0) << run->Err();
}

// Only a connection failure is an outage: a table that does not exist is a config error, exit
// code 2 at once, even while another endpoint is down.
TEST_F(OutageAtStartTest, AConfigErrorStillEndsTheRunAtOnce) {
  SqlExec(File("a.db"), kItems);
  ConfigBuilder config;
  config.Sqlite("a", "a.db").Postgres("b", server_.dsn("b"));
  config.Collection("item").On("a", "no_such_table").On("b", "items");
  WriteConfig(config);
  const auto started = std::chrono::steady_clock::now();
  Outcome o = Duplex({"run"}, milliseconds(20000));
  EXPECT_EQ(o.code, 2) << o;
  EXPECT_NE(o.err.find("no_such_table"), std::string::npos) << o;
  EXPECT_LT(std::chrono::steady_clock::now() - started, milliseconds(10000));
}

}  // namespace
}  // namespace duplex
