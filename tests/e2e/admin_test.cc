// End to end: the admin server of a real `duplex run` (DUPLEX_BIN) on real SQLite files,
// reached over HTTP: health, metrics moving as rows sync, the JSON API (conflicts resolved
// and dead letters retried through it, reaching both databases), token enforcement off
// loopback, malformed requests, and an alert firing once and clearing.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/process.h"
#include "support/sync_fixture.h"
#include "support/test_util.h"
#include "util/sqlite.h"

namespace duplex {
namespace {

using json = nlohmann::json;
using testing::ConfigBuilder;
using testing::PollUntil;
using testing::Process;
using testing::ReadFile;
using testing::SqlExec;
using testing::SqlQuery;
using testing::SyncFixture;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kCrmSchema =
    "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, notes TEXT, balance INTEGER);";
constexpr const char* kBillingSchema =
    "CREATE TABLE clients(id INTEGER PRIMARY KEY, name TEXT, notes TEXT, balance INTEGER);";

// The value of the sample line `series` (name and labels exactly) in a /metrics body; -1 if
// it is absent.
double Sample(const std::string& metrics, const std::string& series) {
  size_t at = 0;
  while ((at = metrics.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || metrics[at - 1] == '\n') return std::stod(metrics.substr(at + series.size()));
    at += series.size();
  }
  return -1;
}

class AdminTest : public ::testing::Test, protected SyncFixture {
 protected:
  void SetUp() override {
    SqlExec(Db("crm"), kCrmSchema);
    SqlExec(Db("billing"), kBillingSchema);
  }
  void TearDown() override { Stop(); }

  std::string Db(const std::string& ep) const { return File(ep + ".db"); }

  // crm's customers and billing's clients, notes resolved by hand; the admin server on `http`.
  static ConfigBuilder Config(const std::string& http = "127.0.0.1:0") {
    ConfigBuilder config;
    config.Engine("http", http).Sqlite("crm", "crm.db").Sqlite("billing", "billing.db");
    config.Collection("customer")
        .On("crm", "customers")
        .On("billing", "clients")
        .Policy("notes", "manual");
    return config;
  }

  // Starts `duplex run` and waits for its admin server's port (logged at start).
  void Start(std::vector<std::string> args = {"run"}) {
    run_ = Background(std::move(args));
    static const std::regex kListening(R"(admin server listening on http://[^:]+:(\d+)/)");
    std::smatch m;
    ASSERT_TRUE(PollUntil(
        [&] {
          std::string err = run_->Err();
          if (!std::regex_search(err, m, kListening)) return !run_->Running();
          port_ = std::stoi(m[1]);
          return true;
        },
        milliseconds(20000)))
        << run_->Err();
    ASSERT_GT(port_, 0) << "duplex run exited: " << run_->Err();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_read_timeout(10);
  }

  void Stop() {
    if (!run_) return;
    run_->Signal(SIGTERM);
    EXPECT_EQ(run_->Wait(milliseconds(20000)), 0) << run_->Err();
    run_.reset();
  }

  // A request's status and body (status -1 if the connection failed).
  struct Reply {
    int status = -1;
    std::string body;
    std::string type;
    json Json() const { return json::parse(body, nullptr, false); }
  };
  Reply Get(const std::string& path, const httplib::Headers& h = {}) {
    auto r = client_->Get(path.c_str(), h);
    if (!r) return {};
    return {r->status, r->body, r->get_header_value("Content-Type")};
  }
  Reply Post(const std::string& path, const std::string& body, const httplib::Headers& h = {}) {
    auto r = client_->Post(path.c_str(), h, body, "application/json");
    if (!r) return {};
    return {r->status, r->body, r->get_header_value("Content-Type")};
  }
  Reply Delete(const std::string& path, const httplib::Headers& h = {}) {
    auto r = client_->Delete(path.c_str(), h);
    if (!r) return {};
    return {r->status, r->body, r->get_header_value("Content-Type")};
  }
  // A JSON error reply: the status and an object with a non-empty "error".
  void ExpectJsonError(const Reply& r, int status) {
    EXPECT_EQ(r.status, status) << r.body;
    json j = r.Json();
    ASSERT_TRUE(j.is_object()) << r.body;
    EXPECT_TRUE(j.contains("error") && j["error"].is_string() && !j["error"].empty()) << r.body;
    EXPECT_NE(r.type.find("application/json"), std::string::npos) << r.type;
  }
  double Metric(const std::string& series) { return Sample(Get("/metrics").body, series); }
  // Polls the API until it lists `n` dead letters (15 s at most); *dead holds the last list.
  bool WaitForDeadLetters(size_t n, json* dead) {
    return PollUntil(
        [&] {
          *dead = Get("/api/v1/dead-letters").Json();
          return dead->is_array() && dead->size() == n;
        },
        milliseconds(15000));
  }

  std::unique_ptr<Process> run_;
  std::unique_ptr<httplib::Client> client_;
  int port_ = 0;
};

TEST_F(AdminTest, HealthMetricsAndStatusMoveAsRowsSync) {
  WriteConfig(Config());
  Start();
  Reply health = Get("/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_TRUE(PollUntil([&] { return Get("/readyz").status == 200; }, milliseconds(10000)))
      << Get("/readyz").body;
  Reply metrics = Get("/metrics");
  ASSERT_EQ(metrics.status, 200) << metrics.body;
  EXPECT_NE(metrics.type.find("text/plain"), std::string::npos) << metrics.type;
  for (const char* name :
       {"duplex_changes_captured_total", "duplex_changes_applied_total",
        "duplex_echoes_skipped_total", "duplex_conflicts_total", "duplex_dead_letters",
        "duplex_capture_lag_seconds", "duplex_sync_latency_seconds", "duplex_apply_errors_total",
        "duplex_apply_batch_rows", "duplex_journal_backlog_changes"}) {
    EXPECT_NE(metrics.body.find("# TYPE " + std::string(name) + " "), std::string::npos)
        << name << " missing:\n"
        << metrics.body;
  }
  const std::string crm_captured =
      R"(duplex_changes_captured_total{endpoint="crm",collection="customer"})";
  const std::string billing_applied =
      R"(duplex_changes_applied_total{endpoint="billing",collection="customer"})";
  const std::string latency_count =
      R"(duplex_sync_latency_seconds_count{source="crm",target="billing"})";
  EXPECT_EQ(Sample(metrics.body, crm_captured), 0) << metrics.body;

  for (int i = 1; i <= 5; ++i) {
    SqlExec(Db("crm"), "INSERT INTO customers VALUES (" + std::to_string(i) + ", 'n', '', 1)");
  }
  EXPECT_TRUE(PollUntil(
      [&] {
        std::string m = Get("/metrics").body;
        return Sample(m, crm_captured) == 5 && Sample(m, billing_applied) == 5 &&
               Sample(m, latency_count) == 5;
      },
      milliseconds(15000)))
      << Get("/metrics").body;
  metrics = Get("/metrics");
  // Each write took well under a minute from commit on crm to commit on billing.
  EXPECT_EQ(Sample(metrics.body, R"(duplex_sync_latency_seconds_bucket{source="crm",)"
                                 R"(target="billing",le="60"})"),
            5)
      << metrics.body;
  // billing's applies come back as echoes in its capture, skipped.
  EXPECT_TRUE(
      PollUntil([&] { return Metric(R"(duplex_echoes_skipped_total{endpoint="billing"})") >= 1; },
                milliseconds(10000)));
  EXPECT_EQ(SqlQuery(Db("billing"), "SELECT count(*) FROM clients"), "5\n");

  // GET status is what `duplex status --json` prints (compared once both are idle).
  std::string last;
  EXPECT_TRUE(PollUntil(
      [&] {
        Reply api = Get("/api/v1/status");
        Process cli({"status", "--json", "--config", ConfigPath()}, NextLog());
        if (cli.Wait(milliseconds(20000)) != 0) return false;
        json a = api.Json(), b = json::parse(cli.Out(), nullptr, false);
        last = api.body + "\nvs\n" + cli.Out();
        return api.status == 200 && a == b;
      },
      milliseconds(15000)))
      << last;

  Reply overview = Get("/api/v1/overview");
  ASSERT_EQ(overview.status, 200);
  json o = overview.Json();
  ASSERT_EQ(o["endpoints"].size(), 2u) << overview.body;
  EXPECT_EQ(o["endpoints"][0]["name"], "crm");
  EXPECT_EQ(o["endpoints"][0]["connected"], true);
  EXPECT_EQ(o["endpoints"][1]["applied"], 5) << overview.body;

  Reply page = Get("/");
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.type.find("text/html"), std::string::npos);
  EXPECT_NE(page.body.find("/app.js"), std::string::npos);
  EXPECT_EQ(Get("/app.js").status, 200);
  EXPECT_EQ(Get("/style.css").status, 200);
}

TEST_F(AdminTest, MalformedRequestsAndUnknownIdsGetJsonErrors) {
  WriteConfig(Config());
  Start();
  ExpectJsonError(Get("/api/v1/conflicts/999"), 404);
  ExpectJsonError(Get("/api/v1/conflicts/abc"), 400);
  ExpectJsonError(Get("/api/v1/conflicts/-1"), 400);
  ExpectJsonError(Post("/api/v1/conflicts/999/resolve", R"({"take": "crm"})"), 404);
  ExpectJsonError(Post("/api/v1/conflicts/1/resolve", "{not json"), 400);
  ExpectJsonError(Post("/api/v1/conflicts/1/resolve", "[1]"), 400);
  ExpectJsonError(Post("/api/v1/conflicts/1/resolve", R"({"take": 5})"), 400);
  ExpectJsonError(Post("/api/v1/conflicts/1/resolve", R"({"take": "crm", "value": 1})"), 400);
  ExpectJsonError(Post("/api/v1/conflicts/1/resolve", R"({})"), 400);
  ExpectJsonError(Post("/api/v1/dead-letters/999/retry", ""), 404);
  ExpectJsonError(Post("/api/v1/dead-letters/x/retry", ""), 400);
  ExpectJsonError(Get("/api/v1/dead-letters/999"), 404);
  ExpectJsonError(Get("/api/v1/dead-letters/x"), 400);
  ExpectJsonError(Delete("/api/v1/dead-letters/999"), 404);
  ExpectJsonError(Delete("/api/v1/dead-letters/0"), 400);
  ExpectJsonError(Delete("/api/v1/dead-letters"), 404);
  Reply none = Post("/api/v1/dead-letters/retry-all", "");
  EXPECT_EQ(none.status, 202) << none.body;
  EXPECT_EQ(none.Json(), json({{"retry_requested", 0}})) << none.body;
  ExpectJsonError(Get("/api/v1/nothing"), 404);
  ExpectJsonError(Post("/metrics", "{}"), 404);
  Reply big = Post("/api/v1/conflicts/1/resolve", std::string(2 << 20, 'x'));
  EXPECT_GE(big.status, 400) << big.body;
  EXPECT_LT(big.status, 500) << big.body;
  EXPECT_EQ(Get("/api/v1/conflicts").Json(), json::array());
  EXPECT_EQ(Get("/api/v1/dead-letters").Json(), json::array());
  // Still serving after all that.
  EXPECT_EQ(Get("/healthz").status, 200);
  EXPECT_TRUE(run_->Running());
}

TEST_F(AdminTest, ManualConflictResolvedThroughTheApiReachesBothDatabases) {
  WriteConfig(Config());
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (1, 'Ada', 'base', 1)");
  Process sync({"run", "--until-idle", "--config", ConfigPath()}, File("sync"));
  ASSERT_EQ(sync.Wait(milliseconds(30000)), 0) << sync.Err();
  // Concurrent edits of a manual field while duplex is stopped.
  SqlExec(Db("crm"), "UPDATE customers SET notes = 'crm says' WHERE id = 1");
  SqlExec(Db("billing"), "UPDATE clients SET notes = 'billing says' WHERE id = 1");
  Start();
  json list;
  ASSERT_TRUE(PollUntil(
      [&] {
        list = Get("/api/v1/conflicts").Json();
        return list.is_array() && list.size() == 1;
      },
      milliseconds(15000)))
      << list.dump();
  const int64_t id = list[0]["id"];
  EXPECT_EQ(list[0]["status"], "open");
  EXPECT_EQ(list[0]["values"]["crm"]["value"], "crm says");
  EXPECT_EQ(list[0]["values"]["billing"]["value"], "billing says");
  Reply one = Get("/api/v1/conflicts/" + std::to_string(id));
  EXPECT_EQ(one.status, 200);
  EXPECT_EQ(one.Json()["id"], id);
  EXPECT_TRUE(PollUntil(
      [&] {
        return Metric(R"(duplex_conflicts_total{collection="customer",field="notes",)"
                      R"(policy="manual"})") == 1;
      },
      milliseconds(10000)))
      << Get("/metrics").body;

  ExpectJsonError(
      Post("/api/v1/conflicts/" + std::to_string(id) + "/resolve", R"({"take": "erp"})"), 400);
  Reply done =
      Post("/api/v1/conflicts/" + std::to_string(id) + "/resolve", R"({"take": "billing"})");
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(done.Json()["status"], "resolved:take:billing");
  ExpectJsonError(
      Post("/api/v1/conflicts/" + std::to_string(id) + "/resolve", R"({"value": "late"})"), 409);
  EXPECT_TRUE(PollUntil(
      [&] {
        return SqlQuery(Db("crm"), "SELECT notes FROM customers") == "billing says\n" &&
               SqlQuery(Db("billing"), "SELECT notes FROM clients") == "billing says\n";
      },
      milliseconds(15000)))
      << SqlQuery(Db("crm"), "SELECT notes FROM customers");
  EXPECT_EQ(Get("/api/v1/conflicts").Json(), json::array());
}

TEST_F(AdminTest, DeadLetterRetriedThroughTheApiIsPlannedAgainAndApplied) {
  WriteConfig(Config());
  // billing refuses new rows until its operator drops this trigger.
  SqlExec(Db("billing"),
          "CREATE TRIGGER closed BEFORE INSERT ON clients BEGIN "
          "SELECT RAISE(ABORT, 'billing is closed for new clients'); END;");
  Start({"run", "--log-format", "json"});
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (7, 'Grace', 'n', 3)");
  json dead;
  ASSERT_TRUE(WaitForDeadLetters(1, &dead)) << dead.dump() << run_->Err();
  EXPECT_EQ(dead[0]["endpoint"], "billing");
  EXPECT_NE(dead[0]["reason"].get<std::string>().find("closed for new clients"), std::string::npos)
      << dead.dump();
  EXPECT_EQ(dead[0]["ops"][0]["key"], json({{"id", 7}}));
  EXPECT_TRUE(PollUntil([&] { return Metric(R"(duplex_dead_letters{endpoint="billing"})") == 1; },
                        milliseconds(10000)))
      << Get("/metrics").body;
  // Meanwhile crm changed the record again: the retry must write the current values.
  SqlExec(Db("crm"), "UPDATE customers SET notes = 'newer' WHERE id = 7");
  SqlExec(Db("billing"), "DROP TRIGGER closed");
  const std::string id = std::to_string(dead[0]["id"].get<int64_t>());
  Reply retry = Post("/api/v1/dead-letters/" + id + "/retry", "");
  ASSERT_EQ(retry.status, 202) << retry.body;
  EXPECT_EQ(retry.Json()["retry_requested"], true);
  EXPECT_TRUE(PollUntil(
      [&] {
        return SqlQuery(Db("billing"), "SELECT id, name, notes, balance FROM clients") ==
               "7|Grace|newer|3\n";
      },
      milliseconds(15000)))
      << SqlQuery(Db("billing"), "SELECT * FROM clients") << run_->Err();
  // crm's update may have been planned, and refused, before the trigger was dropped: a second
  // dead letter for the same record. Retrying it re-plans nothing new and removes it.
  EXPECT_TRUE(PollUntil(
      [&] {
        json left = Get("/api/v1/dead-letters").Json();
        if (!left.is_array()) return false;
        for (const json& d : left) {
          if (std::to_string(d["id"].get<int64_t>()) != id) {
            Post("/api/v1/dead-letters/" + std::to_string(d["id"].get<int64_t>()) + "/retry", "");
          }
        }
        return left.empty();
      },
      milliseconds(15000)))
      << Get("/api/v1/dead-letters").body;
  ExpectJsonError(Post("/api/v1/dead-letters/" + id + "/retry", ""), 404);
  // One JSON object per line; the events name their endpoint, collection and key as fields.
  Stop();
  bool parked = false, retried = false;
  std::istringstream log(ReadFile(File("cmd1.err")));
  for (std::string line; std::getline(log, line);) {
    json j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    EXPECT_TRUE(j.contains("time") && j.contains("level") && j.contains("msg")) << line;
    if (j.value("endpoint", "") != "billing" || j.value("collection", "") != "customer" ||
        j.value("key", "") != R"({"id":7})") {
      continue;
    }
    parked |= j["msg"].get<std::string>().find("parked as dead letter") != std::string::npos;
    retried |=
        j.value("id", "") == id && j["msg"].get<std::string>().find("retried") != std::string::npos;
  }
  EXPECT_TRUE(parked) << ReadFile(File("cmd1.err"));
  EXPECT_TRUE(retried) << ReadFile(File("cmd1.err"));
}

// Show, drop and retry-all through the API while the engine runs: the dropped dead letter's
// row never reaches billing, the retried one does.
TEST_F(AdminTest, DeadLettersShownDroppedAndAllRetriedThroughTheApi) {
  WriteConfig(Config());
  SqlExec(Db("billing"),
          "CREATE TRIGGER closed BEFORE INSERT ON clients BEGIN "
          "SELECT RAISE(ABORT, 'billing is closed for new clients'); END;");
  Start();
  // Two source transactions, captured apart (SQLite's changes captured together are one unit).
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (7, 'Grace', 'n', 3)");
  json dead;
  ASSERT_TRUE(WaitForDeadLetters(1, &dead)) << dead.dump() << run_->Err();
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (8, 'Alan', 'm', 4)");
  ASSERT_TRUE(WaitForDeadLetters(2, &dead)) << dead.dump() << run_->Err();
  json dropped, kept;
  for (const json& d : dead) (d["keys"] == json::parse(R"([{"id": 7}])") ? dropped : kept) = d;
  ASSERT_TRUE(dropped.is_object() && kept.is_object()) << dead.dump(2);
  EXPECT_EQ(dropped["collection"], "customer");
  const std::string drop_id = std::to_string(dropped["id"].get<int64_t>());

  Reply one = Get("/api/v1/dead-letters/" + drop_id);
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(one.Json(), dropped);
  Reply gone = Delete("/api/v1/dead-letters/" + drop_id);
  ASSERT_EQ(gone.status, 200) << gone.body;
  EXPECT_EQ(gone.Json(), dropped);
  ExpectJsonError(Get("/api/v1/dead-letters/" + drop_id), 404);
  ExpectJsonError(Delete("/api/v1/dead-letters/" + drop_id), 404);
  EXPECT_TRUE(PollUntil([&] { return Metric(R"(duplex_dead_letters{endpoint="billing"})") == 1; },
                        milliseconds(10000)))
      << Get("/metrics").body;

  SqlExec(Db("billing"), "DROP TRIGGER closed");
  Reply all = Post("/api/v1/dead-letters/retry-all", "");
  ASSERT_EQ(all.status, 202) << all.body;
  EXPECT_EQ(all.Json(), json({{"retry_requested", 1}})) << all.body;
  EXPECT_TRUE(PollUntil(
      [&] { return SqlQuery(Db("billing"), "SELECT id, name FROM clients") == "8|Alan\n"; },
      milliseconds(15000)))
      << SqlQuery(Db("billing"), "SELECT * FROM clients") << run_->Err();
  EXPECT_TRUE(PollUntil([&] { return Get("/api/v1/dead-letters").Json() == json::array(); },
                        milliseconds(15000)))
      << Get("/api/v1/dead-letters").body;
  Stop();
  EXPECT_NE(ReadFile(File("cmd1.err")).find("dead letter id=" + drop_id + " writes=1 dropped"),
            std::string::npos)
      << ReadFile(File("cmd1.err"));
}

// The same operation from the CLI, engine stopped: `dead-letters retry`, then the next run
// applies it (and `run --until-idle` exits 0 instead of 3).
TEST_F(AdminTest, DeadLetterRetriedFromTheCliIsAppliedByTheNextRun) {
  WriteConfig(Config());
  SqlExec(Db("billing"),
          "CREATE TRIGGER closed BEFORE INSERT ON clients BEGIN "
          "SELECT RAISE(ABORT, 'billing is closed for new clients'); END;");
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (7, 'Grace', 'n', 3)");
  auto sync = [&] {
    Process p({"run", "--until-idle", "--config", ConfigPath()}, NextLog());
    return p.Wait(milliseconds(30000));
  };
  EXPECT_EQ(sync(), 3);
  auto cli = [&](std::vector<std::string> args, std::string* out) {
    args.push_back("--config");
    args.push_back(ConfigPath());
    Process p(args, NextLog());
    int code = p.Wait(milliseconds(30000));
    *out = p.Out() + p.Err();
    return code;
  };
  std::string out;
  ASSERT_EQ(cli({"dead-letters", "list", "--json"}, &out), 0) << out;
  json list = json::parse(out, nullptr, false);
  ASSERT_TRUE(list.is_array() && list.size() == 1) << out;
  const std::string id = std::to_string(list[0]["id"].get<int64_t>());
  ASSERT_EQ(cli({"dead-letters", "list"}, &out), 0) << out;
  EXPECT_NE(out.find("closed for new clients"), std::string::npos) << out;
  EXPECT_EQ(cli({"dead-letters", "retry", "999"}, &out), 2) << out;
  EXPECT_NE(out.find("no dead letter with id 999"), std::string::npos) << out;
  EXPECT_EQ(cli({"dead-letters", "retry", "x"}, &out), 2) << out;
  SqlExec(Db("billing"), "DROP TRIGGER closed");
  ASSERT_EQ(cli({"dead-letters", "retry", id}, &out), 0) << out;
  EXPECT_EQ(sync(), 0);
  EXPECT_EQ(SqlQuery(Db("billing"), "SELECT id, name, notes, balance FROM clients"),
            "7|Grace|n|3\n");
  ASSERT_EQ(cli({"dead-letters", "list", "--json"}, &out), 0) << out;
  EXPECT_EQ(json::parse(out, nullptr, false), json::array()) << out;
}

TEST_F(AdminTest, OffLoopbackNeedsATokenAndEnforcesIt) {
  // Without a token configured, duplex refuses to serve off loopback.
  WriteConfig(Config("0.0.0.0:0"));
  auto refused = Background({"run"});
  EXPECT_EQ(refused->Wait(milliseconds(20000)), 2) << refused->Err();
  EXPECT_NE(refused->Err().find("not loopback"), std::string::npos) << refused->Err();
  // The variable named but not set: refused too.
  WriteConfig(Config("0.0.0.0:0").Engine("http_token_env", "DUPLEX_ADMIN_TEST_TOKEN"));
  unsetenv("DUPLEX_ADMIN_TEST_TOKEN");
  auto unset = Background({"run"});
  EXPECT_EQ(unset->Wait(milliseconds(20000)), 2) << unset->Err();
  EXPECT_NE(unset->Err().find("DUPLEX_ADMIN_TEST_TOKEN"), std::string::npos) << unset->Err();

  const std::string token = "s3cret-token-4711";
  setenv("DUPLEX_ADMIN_TEST_TOKEN", token.c_str(), 1);
  Start();
  unsetenv("DUPLEX_ADMIN_TEST_TOKEN");
  EXPECT_EQ(Get("/healthz").status, 200);
  ExpectJsonError(Get("/metrics"), 401);
  ExpectJsonError(Get("/readyz"), 401);
  ExpectJsonError(Get("/api/v1/status"), 401);
  ExpectJsonError(Get("/api/v1/conflicts"), 401);
  ExpectJsonError(Post("/api/v1/conflicts/1/resolve", R"({"take": "crm"})"), 401);
  ExpectJsonError(Get("/api/v1/dead-letters/1"), 401);
  ExpectJsonError(Delete("/api/v1/dead-letters/1"), 401);
  ExpectJsonError(Post("/api/v1/dead-letters/retry-all", ""), 401);
  ExpectJsonError(Get("/api/v1/conflicts", {{"Authorization", "Bearer wrong"}}), 401);
  ExpectJsonError(Get("/api/v1/conflicts", {{"Authorization", token}}), 401);
  const httplib::Headers auth = {{"Authorization", "Bearer " + token}};
  EXPECT_EQ(Get("/api/v1/conflicts", auth).status, 200);
  EXPECT_EQ(Get("/metrics", auth).status, 200);
  ExpectJsonError(Get("/api/v1/conflicts/999", auth), 404);
  ExpectJsonError(Delete("/api/v1/dead-letters/999", auth), 404);
  // The dashboard's files hold no data: the page loads and asks for the token.
  EXPECT_EQ(Get("/").status, 200);
  Stop();
  EXPECT_EQ(ReadFile(File("cmd3.err")).find(token), std::string::npos)
      << "the token appears in the log";
}

TEST_F(AdminTest, AlertFiresOnceWhileAnEndpointIsUnreachableAndClearsAfter) {
  const std::string alerts = File("alerts.txt");
  WriteConfig(
      Config()
          .Engine("alert_after", "1s")
          .Engine("alert_command",
                  "echo \"$DUPLEX_ALERT_STATE $DUPLEX_ALERT_ENDPOINT $DUPLEX_ALERT_REASON\" >> '" +
                      alerts + "'"));
  Start();
  ASSERT_TRUE(PollUntil([&] { return Get("/readyz").status == 200; }, milliseconds(10000)));
  // billing's application holds its write lock for a while: duplex cannot apply there.
  std::atomic<bool> locked{false}, release{false};
  std::thread locker([&] {
    auto db = sqlite::Db::Open(Db("billing"), /*create=*/false);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    ASSERT_TRUE(db->Exec("BEGIN EXCLUSIVE").ok());
    locked = true;
    while (!release) std::this_thread::sleep_for(milliseconds(20));
    ASSERT_TRUE(db->Exec("COMMIT").ok());
  });
  ASSERT_TRUE(PollUntil([&] { return locked.load(); }, milliseconds(5000)));
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (1, 'a', '', 1)");
  EXPECT_TRUE(PollUntil([&] { return ReadFile(alerts) == "firing billing unreachable\n"; },
                        milliseconds(15000)))
      << ReadFile(alerts) << run_->Err();
  // Not ready once the failure lasts (2 s: a moment's busy database is not an outage).
  Reply ready;
  EXPECT_TRUE(PollUntil(
      [&] {
        ready = Get("/readyz");
        return ready.status == 503;
      },
      milliseconds(5000)))
      << ready.body;
  EXPECT_NE(ready.body.find("billing"), std::string::npos) << ready.body;
  // The dashboard and /metrics show it (published a few times a second).
  EXPECT_TRUE(
      PollUntil([&] { return Metric(R"(duplex_endpoint_alerting{endpoint="billing"})") == 1; },
                milliseconds(5000)));
  json o;
  EXPECT_TRUE(PollUntil(
      [&] {
        o = Get("/api/v1/overview").Json();
        return o["endpoints"][1]["alerting"] == true;
      },
      milliseconds(5000)))
      << o.dump();
  EXPECT_NE(o["endpoints"][1]["alert"].dump().find("unreachable"), std::string::npos) << o.dump();
  // Still unreachable for a while: no second alert.
  std::this_thread::sleep_for(milliseconds(2000));
  EXPECT_EQ(ReadFile(alerts), "firing billing unreachable\n");
  release = true;
  locker.join();
  EXPECT_TRUE(PollUntil(
      [&] {
        return ReadFile(alerts) == "firing billing unreachable\ncleared billing unreachable\n";
      },
      milliseconds(15000)))
      << ReadFile(alerts) << run_->Err();
  EXPECT_TRUE(PollUntil([&] { return Get("/readyz").status == 200; }, milliseconds(10000)));
  EXPECT_EQ(SqlQuery(Db("billing"), "SELECT count(*) FROM clients"), "1\n");
  const std::string err = run_->Err();
  size_t warnings = 0;
  for (size_t at = 0; (at = err.find("alert endpoint=billing", at)) != std::string::npos; ++at) {
    ++warnings;
  }
  EXPECT_EQ(warnings, 1u) << err;
  EXPECT_NE(err.find("alert cleared endpoint=billing"), std::string::npos) << err;
}

}  // namespace
}  // namespace duplex
