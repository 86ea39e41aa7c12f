// End to end: `duplex reconcile` (issue "Drift repair and data safety", part 1) through the real
// `duplex` binary, on SQLite files and throwaway PostgreSQL clusters (trigger and logical
// capture), with drift made behind duplex's back:
// - edits made with capture off (SQLite: duplex's own apply flag set; PostgreSQL trigger
//   capture: session_replication_role = replica, as a DBA's bulk fix would),
// - a table restored from a copy with capture off,
// - an endpoint added to a collection that already synced (its existing rows are loaded, but
//   the records it lacks never reached it before reconcile).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "support/pg_cluster.h"
#include "support/process.h"
#include "support/sync_fixture.h"
#include "support/test_util.h"

namespace duplex {
namespace {

using testing::ConfigBuilder;
using testing::Outcome;
using testing::SharedPgCluster;
using testing::SqlExec;
using testing::SqlQuery;
using testing::SyncFixture;

constexpr const char* kItems =
    "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER);";
constexpr const char* kPgItems = "CREATE TABLE items(id int PRIMARY KEY, name text, qty int);";

// `sql` run on a SQLite endpoint with duplex's capture off: inside the transaction duplex's own
// writes use, whose flag its triggers skip (as a bulk fix with capture switched off).
std::string CaptureOff(const std::string& sql) {
  return "BEGIN; UPDATE _duplex_apply SET active = 1; " + sql +
         "; UPDATE _duplex_apply SET active = 0; COMMIT;";
}

// Names with what JSON must escape, so that digests computed by a server and by duplex agree
// only if both render them alike.
std::string Name(int i) {
  return "n" + std::to_string(i) + (i % 7 == 0 ? " \"q\" \\ é" : "") + (i % 11 == 0 ? "\t" : "");
}

std::string SqlText(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    out += c;
    if (c == '\'') out += '\'';
  }
  return out + "'";
}

std::string InsertRows(int from, int to) {
  std::string sql = "INSERT INTO items VALUES ";
  for (int i = from; i < to; ++i) {
    sql += (i > from ? ", (" : "(") + std::to_string(i) + ", " + SqlText(Name(i)) + ", " +
           std::to_string(i * 3) + ")";
  }
  return sql;
}

class ReconcileTest : public SharedPgCluster<::testing::Test>, public SyncFixture {
 public:
  std::string Db(const std::string& endpoint) const { return File(endpoint + ".db"); }

  // Endpoints a and b, SQLite files each holding an empty `items`, in collection "item";
  // `config` may carry other settings.
  void WriteTwoSqliteEndpoints(ConfigBuilder config = {}) {
    SqlExec(Db("a"), kItems);
    SqlExec(Db("b"), kItems);
    config.Sqlite("a", "a.db").Sqlite("b", "b.db");
    config.Collection("item").On("a", "items").On("b", "items");
    WriteConfig(config);
  }

  nlohmann::json Json(const Outcome& o) {
    nlohmann::json j = nlohmann::json::parse(o.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << o;
    return j;
  }

  // The differences `reconcile --dry-run --json` lists, as "key field" strings.
  std::vector<std::string> DryRun(int expected_code) {
    Outcome o = Duplex({"reconcile", "--dry-run", "--json"});
    EXPECT_EQ(o.code, expected_code) << o;
    std::vector<std::string> out;
    nlohmann::json j = Json(o);
    if (!j.is_object()) return out;
    for (const auto& d : j["differences"]) {
      out.push_back(d["key"].dump() + " " + (d["field"].is_null() ? "(row)" : d["field"].dump()));
    }
    return out;
  }

  std::string Row(const std::string& endpoint, int id) {
    return SqlQuery(Db(endpoint),
                    "SELECT id, name, qty FROM items WHERE id = " + std::to_string(id));
  }
};

// Edits on both sides with capture off: a dry run lists them and changes nothing; reconcile
// takes each as an edit made there (it wins over the agreed value), copies a row missing on one
// side, copies a row duplex never saw, and deletes one duplex saw deleted. Then all agree.
TEST_F(ReconcileTest, SqliteDriftMadeWithCaptureOff) {
  WriteTwoSqliteEndpoints();
  SqlExec(Db("a"), InsertRows(1, 200));
  SyncIdle();
  ASSERT_CONVERGED(*this, "item");
  EXPECT_EQ(DryRun(0).size(), 0u);
  SqlExec(Db("a"), "DELETE FROM items WHERE id = 50");
  SyncIdle();

  SqlExec(Db("b"), CaptureOff("UPDATE items SET name = 'bulk-fixed' WHERE id IN (3, 4)"));
  SqlExec(Db("a"), CaptureOff("UPDATE items SET qty = 999 WHERE id = 4"));
  SqlExec(Db("b"), CaptureOff("DELETE FROM items WHERE id = 7"));
  SqlExec(Db("b"), CaptureOff("INSERT INTO items VALUES (500, 'only-on-b', 5)"));
  SqlExec(Db("b"), CaptureOff("INSERT INTO items VALUES (50, 'deleted-before', 1)"));
  const std::string a_before = SqlQuery(Db("a"), "SELECT * FROM items ORDER BY id");

  std::vector<std::string> diffs = DryRun(1);
  std::sort(diffs.begin(), diffs.end());
  EXPECT_EQ(diffs, (std::vector<std::string>{"{\"id\":3} \"name\"", "{\"id\":4} \"name\"",
                                             "{\"id\":4} \"qty\"", "{\"id\":500} (row)",
                                             "{\"id\":50} (row)", "{\"id\":7} (row)"}));
  EXPECT_EQ(SqlQuery(Db("a"), "SELECT * FROM items ORDER BY id"), a_before);  // nothing changed

  Outcome o = Duplex({"reconcile"});
  EXPECT_EQ(o.code, 1) << o;
  EXPECT_NE(o.out.find("records repaired"), std::string::npos) << o;
  ASSERT_CONVERGED(*this, "item");
  EXPECT_EQ(Row("a", 3), "3|bulk-fixed|9\n");
  EXPECT_EQ(Row("a", 4), "4|bulk-fixed|999\n");    // each side's edit of its own field kept
  EXPECT_EQ(Row("b", 7), "7|n7 \"q\" \\ é|21\n");  // copied back
  EXPECT_EQ(Row("a", 500), "500|only-on-b|5\n");
  EXPECT_EQ(Row("b", 50), "");  // duplex saw it deleted

  // Nothing differs now; a change made later syncs as usual.
  EXPECT_EQ(DryRun(0).size(), 0u);
  SqlExec(Db("a"), "UPDATE items SET qty = 1 WHERE id = 3");
  SyncIdle();
  EXPECT_EQ(Row("b", 3), "3|bulk-fixed|1\n");
}

// --take: one endpoint is the truth; the other's drift is undone, and the collection filter
// leaves other collections alone.
TEST_F(ReconcileTest, TakeMakesOneEndpointTheTruth) {
  SqlExec(Db("a"), std::string(kItems) + "CREATE TABLE tags(id INTEGER PRIMARY KEY, t TEXT);");
  SqlExec(Db("b"), std::string(kItems) + "CREATE TABLE tags(id INTEGER PRIMARY KEY, t TEXT);");
  ConfigBuilder config;
  config.Sqlite("a", "a.db").Sqlite("b", "b.db");
  config.Collection("item").On("a", "items").On("b", "items");
  config.Collection("tag").On("a", "tags").On("b", "tags");
  WriteConfig(config);
  SqlExec(Db("a"), InsertRows(1, 20) + "; INSERT INTO tags VALUES (1, 'x')");
  SyncIdle();
  SqlExec(Db("b"), CaptureOff("UPDATE items SET name = 'drift' WHERE id = 2; DELETE FROM items "
                              "WHERE id = 3; INSERT INTO items VALUES (99, 'extra', 0); "
                              "UPDATE tags SET t = 'y'"));
  SqlExec(Db("a"), CaptureOff("UPDATE items SET qty = 0 WHERE id = 5"));

  Outcome o = Duplex({"reconcile", "--take", "a", "--collection", "item"});
  EXPECT_EQ(o.code, 1) << o;
  ASSERT_CONVERGED(*this, "item");
  EXPECT_EQ(Row("b", 2), "2|n2|6\n");
  EXPECT_EQ(Row("b", 3), "3|n3|9\n");
  EXPECT_EQ(Row("b", 5), "5|n5|0\n");  // a's own drift is the truth too
  EXPECT_EQ(Row("b", 99), "");
  EXPECT_EQ(SqlQuery(Db("b"), "SELECT t FROM tags"), "y\n");  // another collection: untouched

  o = Duplex({"reconcile", "--collection", "item", "--dry-run"});
  EXPECT_EQ(o.code, 0) << o;
  o = Duplex({"reconcile", "--collection", "nope"});
  EXPECT_EQ(o.code, 2) << o;
  EXPECT_NE(o.err.find("no collection 'nope'"), std::string::npos) << o;
  o = Duplex({"reconcile", "--take", "nope"});
  EXPECT_EQ(o.code, 2) << o;
}

// A table restored from an old copy with capture off, and an endpoint added to a collection
// that already synced: reconcile brings both to the agreed rows.
TEST_F(ReconcileTest, RestoredCopyAndNewEndpoint) {
  WriteTwoSqliteEndpoints();
  SqlExec(Db("a"), InsertRows(1, 100));
  SyncIdle();
  SqlExec(Db("b"), "CREATE TABLE copy AS SELECT * FROM items");
  SqlExec(Db("a"), "UPDATE items SET qty = -1 WHERE id <= 10; DELETE FROM items WHERE id > 90");
  SyncIdle();
  // b's table restored from the copy, capture off: ids 1..10 old again, 91..99 back.
  SqlExec(Db("b"), CaptureOff("DELETE FROM items; INSERT INTO items SELECT * FROM copy"));

  // A third endpoint joins with some rows of its own (one it shares with a different name).
  SqlExec(Db("c"), kItems);
  SqlExec(Db("c"), "INSERT INTO items VALUES (1, 'c-name', -1), (1000, 'c-only', 1)");
  ConfigBuilder three;
  three.Sqlite("a", "a.db").Sqlite("b", "b.db").Sqlite("c", "c.db");
  three.Collection("item").On("a", "items").On("b", "items").On("c", "items");
  WriteConfig(three);
  SyncIdle();
  EXPECT_FALSE(Converged("item"));  // c lacks what synced before it joined

  Outcome o = Duplex({"reconcile", "--json"});
  EXPECT_EQ(o.code, 1) << o;
  nlohmann::json j = Json(o);
  ASSERT_TRUE(j.is_object()) << o;
  EXPECT_GT(j["repaired"].get<int>(), 0) << o;
  EXPECT_EQ(j["still_differing"].size(), 0u) << o;
  ASSERT_CONVERGED(*this, "item");
  // The restored rows were taken as b's edits: the copy's values came back everywhere; the
  // rows duplex saw deleted were deleted from b again.
  EXPECT_EQ(Row("c", 2), "2|n2|6\n");
  EXPECT_EQ(Row("a", 1000), "1000|c-only|1\n");
  EXPECT_EQ(SqlQuery(Db("c"), "SELECT count(*) FROM items"),
            SqlQuery(Db("a"), "SELECT count(*) FROM items"));
  EXPECT_EQ(DryRun(0).size(), 0u);
}

// A running `duplex run` holds the state file: reconcile says so and changes nothing.
TEST_F(ReconcileTest, RefusedWhileRunHoldsTheStateFile) {
  WriteTwoSqliteEndpoints();
  SyncIdle();
  auto run = Background({"run"});
  ASSERT_TRUE(
      testing::PollUntil([&] { return NoBacklog(StatusJson()); }, std::chrono::seconds(20)));
  Outcome o = Duplex({"reconcile", "--dry-run"});
  EXPECT_EQ(o.code, 1) << o;
  EXPECT_NE(o.err.find("in use by another duplex process"), std::string::npos) << o;
  o = Duplex({"run", "--until-idle"});
  EXPECT_EQ(o.code, 1) << o;
  run->Signal(SIGTERM);
  EXPECT_EQ(run->Wait(std::chrono::seconds(20)), 0);
}

// [engine] reconcile_every: a running `duplex run` finds and repairs drift by itself, and
// `duplex status` shows the last reconcile.
TEST_F(ReconcileTest, RunReconcilesInTheBackground) {
  ConfigBuilder config;
  config.Engine("reconcile_every", "1s");
  WriteTwoSqliteEndpoints(std::move(config));
  SqlExec(Db("a"), InsertRows(1, 50));
  SyncIdle();
  SqlExec(Db("b"), CaptureOff("UPDATE items SET name = 'bulk' WHERE id = 8"));
  auto run = Background({"run"});
  EXPECT_TRUE(
      testing::PollUntil([&] { return Row("a", 8) == "8|bulk|24\n"; }, std::chrono::seconds(30)))
      << Row("a", 8);
  run->Signal(SIGTERM);
  EXPECT_EQ(run->Wait(std::chrono::seconds(20)), 0);
  EXPECT_CONVERGED(*this, "item");
  const nlohmann::json last = StatusJson()["last_reconcile"];
  ASSERT_TRUE(last.is_object()) << StatusJson().dump();
  EXPECT_GE(last["rows_compared"].get<int64_t>(), 98);
  Outcome o = Duplex({"status"});
  EXPECT_NE(o.out.find("last reconcile:"), std::string::npos) << o;
}

// SQLite against PostgreSQL (trigger capture, logical capture). Drift on the server is made
// with triggers off (session_replication_role = replica) in trigger mode, with the table out
// of duplex's publication in logical mode; on SQLite with capture off. 3000 rows, a few
// differing: the digests computed by the server agree with duplex's for the rest (names with
// quotes, backslashes, tabs and non-ASCII), so only a few ranges' rows are read back.
class ReconcilePgTest : public ReconcileTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(ReconcilePgTest, DriftRepairedAcrossSqliteAndPostgres) {
  const std::string capture = GetParam();
  const std::string db = "reconcile_" + capture;
  NewDatabase(db, kPgItems);
  SqlExec(Db("a"), kItems);
  SqlExec(Db("a"), InsertRows(1, 3001));
  ConfigBuilder config;
  config.Sqlite("a", "a.db").Postgres("b", cluster_->dsn(db), capture);
  config.Collection("item").On("a", "items").On("b", "items");
  WriteConfig(config);
  SyncIdle();
  ASSERT_CONVERGED(*this, "item");
  const std::string drift =
      "UPDATE items SET name = 'bulk' WHERE id = 5; DELETE FROM items WHERE id = 6; "
      "INSERT INTO items VALUES (9000, 'pg-only', 1)";
  if (capture == "trigger") {
    // Triggers do not fire for a session in replica role.
    PgExec(db,
           "SET session_replication_role = replica; " + drift + "; RESET session_replication_role");
  } else {
    // Changes made while the table is out of duplex's publication are not decoded for it.
    const std::string pub = PgQuery(db, "SELECT pubname FROM pg_publication");
    ASSERT_FALSE(pub.empty());
    const std::string name = pub.substr(0, pub.find('\n'));
    PgExec(db, "ALTER PUBLICATION " + name + " DROP TABLE items");
    PgExec(db, drift);
    PgExec(db, "ALTER PUBLICATION " + name + " ADD TABLE items");
  }
  SqlExec(Db("a"), CaptureOff("UPDATE items SET qty = 0 WHERE id = 2000"));

  Outcome o = Duplex({"reconcile", "--dry-run", "--json"});
  EXPECT_EQ(o.code, 1) << o;
  nlohmann::json j = Json(o);
  ASSERT_TRUE(j.is_object()) << o;
  ASSERT_EQ(j["collections"].size(), 1u) << o;
  const nlohmann::json& stats = j["collections"][0];
  EXPECT_EQ(stats["rows_compared"].get<int64_t>(), 3000 + 3000);
  // Only the rows of the few ranges that differ are read back, not 6000.
  EXPECT_LT(stats["rows_read"].get<int64_t>(), 300) << o;
  EXPECT_GE(j["differences"].size(), 3u) << o;

  o = Duplex({"reconcile"});
  EXPECT_EQ(o.code, 1) << o;
  ASSERT_CONVERGED(*this, "item");
  EXPECT_EQ(Row("a", 9000), "9000|pg-only|1\n");
  EXPECT_EQ(Row("a", 2000).substr(0, 5), "2000|");
  EXPECT_EQ(PgQuery(db, "SELECT qty FROM items WHERE id = 2000"), "0\n");
  EXPECT_EQ(Row("a", 5), "5|bulk|15\n");  // the server's bulk fix won
  EXPECT_EQ(PgQuery(db, "SELECT name FROM items WHERE id = 6"), "n6\n");  // copied back
  o = Duplex({"reconcile", "--dry-run"});
  EXPECT_EQ(o.code, 0) << o;
}

INSTANTIATE_TEST_SUITE_P(Capture, ReconcilePgTest, ::testing::Values("trigger", "logical"));

}  // namespace
}  // namespace duplex
