// The engine end to end in-process, on real SQLite files written through separate
// connections (as the applications would).
#include "pipeline/engine.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <set>

#include "connectors/registry.h"
#include "connectors/wrapper.h"
#include "pipeline/telemetry.h"
#include "support/sync_fixture.h"
#include "support/test_util.h"

namespace duplex {
namespace {

using testing::ConfigBuilder;
using testing::SqlExec;
using testing::SqlQuery;
using testing::SyncFixture;

constexpr const char* kSchema =
    "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, note TEXT);";

class EngineTest : public ::testing::Test, protected SyncFixture {
 protected:
  using Collection = std::function<void(ConfigBuilder::CollectionSpec&)>;

  // Writes a config syncing table t on `endpoints` (in that order), with the collection's
  // settings from `collection`, and creates the files.
  void Setup(std::vector<std::string> endpoints, const Collection& collection = {}) {
    ConfigBuilder config;
    ConfigBuilder::CollectionSpec& t = config.Collection("t");
    if (collection) collection(t);
    for (const std::string& e : endpoints) {
      config.Sqlite(e, e + ".db");
      t.On(e, "t");
      if (!created_.count(e)) {
        SqlExec(Db(e), kSchema);
        created_.insert(e);
      }
    }
    WriteConfig(config);
  }

  std::string Db(const std::string& endpoint) { return File(endpoint + ".db"); }

  // Opens the engine, installs capture, syncs until idle, closes it.
  void Sync() {
    auto config = LoadConfig(ConfigPath());
    ASSERT_OK(config);
    auto engine = Engine::Open(*config, true);
    ASSERT_OK(engine);
    ASSERT_OK((*engine)->Install());
    std::atomic<bool> stop{false};
    ASSERT_OK((*engine)->Run(stop, /*until_idle=*/true));
  }

  std::string Rows(const std::string& endpoint) {
    return SqlQuery(Db(endpoint), "SELECT id, name, qty, note FROM t ORDER BY id");
  }

  std::string Conflicts() {
    return SqlQuery(File("state.db"),
                    "SELECT field, policy, winner, status FROM conflicts ORDER BY id");
  }

  std::set<std::string> created_;
};

TEST_F(EngineTest, InitialLoadCopiesAndMergesExistingRows) {
  Setup({"a", "b"});
  SqlExec(Db("a"), "INSERT INTO t VALUES (1, 'x', 1, NULL), (2, 'y', 2, NULL)");
  SqlExec(Db("b"), "INSERT INTO t VALUES (2, 'y', 5, NULL), (3, 'z', 3, NULL)");
  Sync();
  EXPECT_CONVERGED(*this, "t");
  EXPECT_EQ(Rows("a"), "1|x|1|NULL\n2|y|2|NULL\n3|z|3|NULL\n");  // tie at load: "a" < "b"
}

TEST_F(EngineTest, SequentialEditsFlowBothWays) {
  Setup({"a", "b"});
  Sync();
  SqlExec(Db("a"), "INSERT INTO t VALUES (1, 'x', 1, 'n')");
  Sync();
  EXPECT_EQ(Rows("b"), "1|x|1|n\n");
  SqlExec(Db("b"), "UPDATE t SET qty = 2 WHERE id = 1");
  Sync();
  EXPECT_EQ(Rows("a"), "1|x|2|n\n");
  SqlExec(Db("a"), "UPDATE t SET qty = 3 WHERE id = 1");
  Sync();
  EXPECT_CONVERGED(*this, "t");
  EXPECT_EQ(Rows("b"), "1|x|3|n\n");
  EXPECT_EQ(Conflicts(), "");
}

TEST_F(EngineTest, P3ConcurrentDifferentFieldsBothKept) {
  Setup({"a", "b"});
  SqlExec(Db("a"), "INSERT INTO t VALUES (1, 'x', 1, 'n')");
  Sync();
  SqlExec(Db("a"), "UPDATE t SET name = 'from-a' WHERE id = 1");
  SqlExec(Db("b"), "UPDATE t SET qty = 42 WHERE id = 1");
  Sync();
  EXPECT_CONVERGED(*this, "t");
  EXPECT_EQ(Rows("a"), "1|from-a|42|n\n");
  EXPECT_EQ(Conflicts(), "");
}

TEST_F(EngineTest, P4SameFieldLwwSameOutcomeInEitherCaptureOrder) {
  std::string outcomes[2];
  for (int order = 0; order < 2; ++order) {
    FreshDir();  // fresh files for each order
    created_.clear();
    Setup(order == 0 ? std::vector<std::string>{"a", "b"} : std::vector<std::string>{"b", "a"});
    SqlExec(Db("a"), "INSERT INTO t VALUES (1, 'x', 1, 'n')");
    Sync();
    SqlExec(Db("b"), "UPDATE t SET note = 'b-early' WHERE id = 1");
    SqlExec(Db("a"), "UPDATE t SET note = 'a-late' WHERE id = 1");
    Sync();
    EXPECT_CONVERGED(*this, "t");
    outcomes[order] = Rows("a") + Conflicts();
  }
  EXPECT_EQ(outcomes[0], outcomes[1]);
  EXPECT_EQ(outcomes[0], "1|x|1|a-late\nnote|lww|a|resolved:lww\n");
}

TEST_F(EngineTest, P5NoEchoOnlyOneMarkerPerApplyAndNoFurtherWrites) {
  Setup({"a", "b"});
  Sync();
  SqlExec(Db("a"), "INSERT INTO t VALUES (1, 'x', 1, 'n'), (2, 'y', 2, 'm')");
  Sync();
  // b's changelog holds the marker of duplex's one apply transaction and no row change.
  std::string log = SqlQuery(Db("b"), "SELECT op, count(*) FROM _duplex_changelog GROUP BY op");
  EXPECT_TRUE(log == "" || log == "M|1\n") << log;
  std::string applied_before = SqlQuery(File("state.db"),
                                        "SELECT endpoint, value FROM counters WHERE name = "
                                        "'applied' ORDER BY endpoint");
  Sync();
  Sync();
  EXPECT_EQ(SqlQuery(File("state.db"),
                     "SELECT endpoint, value FROM counters WHERE name = 'applied' ORDER BY "
                     "endpoint"),
            applied_before);
  EXPECT_EQ(applied_before, "b|2\n");
}

TEST_F(EngineTest, DeleteReachesOtherSideAndTombstoneStays) {
  Setup({"a", "b"});
  SqlExec(Db("a"), "INSERT INTO t VALUES (1, 'x', 1, 'n'), (2, 'y', 2, 'm')");
  Sync();
  SqlExec(Db("b"), "DELETE FROM t WHERE id = 1");
  Sync();
  EXPECT_CONVERGED(*this, "t");
  EXPECT_EQ(Rows("a"), "2|y|2|m\n");
  EXPECT_EQ(SqlQuery(File("state.db"), "SELECT key, live FROM records ORDER BY key"),
            "[1]|0\n[2]|1\n");
}

TEST_F(EngineTest, DeleteConcurrentWithUpdateDeleteWinsAndIsLogged) {
  Setup({"a", "b"});
  SqlExec(Db("a"), "INSERT INTO t VALUES (1, 'x', 1, 'n')");
  Sync();
  SqlExec(Db("a"), "UPDATE t SET qty = 9 WHERE id = 1");
  SqlExec(Db("b"), "DELETE FROM t WHERE id = 1");
  Sync();
  EXPECT_CONVERGED(*this, "t");
  EXPECT_EQ(Rows("a"), "");
  EXPECT_EQ(Conflicts(), "|delete|b|resolved:delete\n");
}

TEST_F(EngineTest, DeleteConcurrentWithUpdateKeepWhenConfigured) {
  Setup({"a", "b"}, [](auto& t) { t.OnDeleteConflict("keep"); });
  SqlExec(Db("a"), "INSERT INTO t VALUES (1, 'x', 1, 'n')");
  Sync();
  SqlExec(Db("a"), "UPDATE t SET qty = 9 WHERE id = 1");
  SqlExec(Db("b"), "DELETE FROM t WHERE id = 1");
  Sync();
  EXPECT_CONVERGED(*this, "t");
  EXPECT_EQ(Rows("b"), "1|x|9|n\n");
}

TEST_F(EngineTest, ThreeEndpointsConverge) {
  Setup({"a", "b", "c"}, [](auto& t) { t.Policy("qty", "max"); });
  SqlExec(Db("a"), "INSERT INTO t VALUES (1, 'x', 1, 'n')");
  SqlExec(Db("c"), "INSERT INTO t VALUES (2, 'c', 2, 'm')");
  Sync();
  SqlExec(Db("a"), "UPDATE t SET qty = 5 WHERE id = 1");
  SqlExec(Db("b"), "UPDATE t SET qty = 7 WHERE id = 1");
  SqlExec(Db("c"), "UPDATE t SET qty = 6, name = 'cc' WHERE id = 1");
  SqlExec(Db("b"), "DELETE FROM t WHERE id = 2");
  Sync();
  EXPECT_CONVERGED(*this, "t");
  EXPECT_EQ(Rows("c"), "1|cc|7|n\n");
}

TEST_F(EngineTest, ManualConflictKeepsBothSidesUntilResolved) {
  Setup({"a", "b"}, [](auto& t) { t.Policy("note", "manual"); });
  SqlExec(Db("a"), "INSERT INTO t VALUES (1, 'x', 1, 'base')");
  Sync();
  SqlExec(Db("a"), "UPDATE t SET note = 'mine-a' WHERE id = 1");
  SqlExec(Db("b"), "UPDATE t SET note = 'mine-b', qty = 3 WHERE id = 1");
  Sync();
  EXPECT_EQ(Rows("a"), "1|x|3|mine-a\n");  // qty flowed, note did not
  EXPECT_EQ(Rows("b"), "1|x|3|mine-b\n");
  EXPECT_EQ(Conflicts(), "note|manual||open\n");
  {
    auto store = StateStore::Open(File("state.db"), false);
    ASSERT_OK(store);
    ASSERT_OK((*store)->ResolveConflict(1, "resolved:take:b", "mine-b", 1));
  }
  Sync();
  EXPECT_CONVERGED(*this, "t");
  EXPECT_EQ(Rows("a"), "1|x|3|mine-b\n");
}

TEST_F(EngineTest, RowRejectedByTargetBecomesDeadLetterOthersFlow) {
  Setup({"a", "b"});
  SqlExec(Db("b"),
          "DROP TABLE t; CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, "
          "qty INTEGER CHECK (qty < 100), note TEXT);");
  Sync();
  SqlExec(Db("a"), "INSERT INTO t VALUES (1, 'x', 500, 'n')");
  Sync();
  SqlExec(Db("a"), "INSERT INTO t VALUES (2, 'y', 5, 'm')");
  Sync();
  EXPECT_EQ(Rows("b"), "2|y|5|m\n");
  EXPECT_EQ(SqlQuery(File("state.db"),
                     "SELECT endpoint, reason LIKE '%CHECK%' FROM "
                     "dead_letters"),
            "b|1\n");
}

// A change to a parked record waits for it (a dead letter of its own); a retry asked for the
// first only (as when the waiting one was parked after the request) retries both, in order.
TEST_F(EngineTest, DeadLetterWaitingForAnotherIsRetriedWithIt) {
  Setup({"a", "b"});
  SqlExec(Db("b"),
          "CREATE TRIGGER closed BEFORE INSERT ON t BEGIN SELECT RAISE(ABORT, 'closed'); END;");
  Sync();
  SqlExec(Db("a"), "INSERT INTO t VALUES (1, 'x', 5, 'n')");
  Sync();
  const std::string state = File("state.db");
  EXPECT_EQ(SqlQuery(state, "SELECT id, waits_for FROM dead_letters"), "1|0\n");
  SqlExec(Db("a"), "UPDATE t SET note = 'newer' WHERE id = 1");
  {
    auto config = LoadConfig(ConfigPath());
    ASSERT_OK(config);
    auto engine = Engine::Open(*config, true);
    ASSERT_OK(engine);
    ASSERT_OK((*engine)->Install());
    for (int i = 0; i < 5; ++i) ASSERT_OK((*engine)->Step());
  }
  EXPECT_EQ(SqlQuery(state, "SELECT id, waits_for FROM dead_letters ORDER BY id"), "1|0\n2|1\n");
  SqlExec(Db("b"), "DROP TRIGGER closed");
  SqlExec(state, "UPDATE dead_letters SET retry = 1 WHERE id = 1");  // only the first
  Sync();
  EXPECT_EQ(Rows("b"), "1|x|5|newer\n");
  EXPECT_EQ(SqlQuery(state, "SELECT count(*) FROM dead_letters"), "0\n");
}

TEST_F(EngineTest, DeletedStateFileStartsOverWithAFreshInitialLoad) {
  Setup({"a", "b"});
  SqlExec(Db("a"), "INSERT INTO t VALUES (1, 'x', 1, 'n')");
  Sync();
  std::filesystem::remove(File("state.db"));
  std::filesystem::remove(File("state.db-wal"));
  std::filesystem::remove(File("state.db-shm"));
  SqlExec(Db("a"), "INSERT INTO t VALUES (2, 'y', 2, 'm')");
  SqlExec(Db("b"), "UPDATE t SET qty = 5 WHERE id = 1");
  Sync();
  // The new state's apply ids are not mistaken for batches already applied under the old one.
  EXPECT_CONVERGED(*this, "t");
  EXPECT_EQ(Rows("a"), "1|x|1|n\n2|y|2|m\n");  // initial load: tie on the field, "a" first
  SqlExec(Db("b"), "UPDATE t SET qty = 6 WHERE id = 2");
  Sync();
  EXPECT_EQ(Rows("a"), "1|x|1|n\n2|y|6|m\n");
}

TEST_F(EngineTest, SchemaErrorsNameTheTableAndColumn) {
  Setup({"a", "b"}, [](auto& t) { t.Policy("missing", "max"); });
  auto config = LoadConfig(ConfigPath());
  ASSERT_OK(config);
  auto engine = Engine::Open(*config, true);
  ASSERT_FALSE(engine.ok());
  EXPECT_TRUE(engine.status().IsInvalidArgument());
  EXPECT_NE(engine.status().message().find("fields.missing"), std::string::npos)
      << engine.status().message();
}

TEST_F(EngineTest, TypeClashIsAConfigError) {
  Setup({"a", "b"});
  SqlExec(Db("b"),
          "DROP TABLE t; CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, "
          "qty TEXT, note TEXT);");
  auto config = LoadConfig(ConfigPath());
  ASSERT_OK(config);
  auto engine = Engine::Open(*config, true);
  ASSERT_FALSE(engine.ok());
  EXPECT_NE(engine.status().message().find("type clash on field 'qty'"), std::string::npos)
      << engine.status().message();
}

// A connector whose capture fails the way no retry mends: a change it cannot decode.
class UndecodableCapture final : public ConnectorWrapper {
 public:
  UndecodableCapture(std::unique_ptr<Connector> target, int* captures)
      : ConnectorWrapper(std::move(target)), captures_(captures) {}
  Result<ChangeBatch> Capture(const Position& from, size_t max_changes) override {
    (void)max_changes;
    ++*captures_;
    return Status::Corruption("change after position " + PositionText(from) + " cannot be decoded");
  }

 private:
  int* captures_;
};

TEST_F(EngineTest, CaptureThatCannotBeDecodedStopsOnlyThatEndpoint) {
  Setup({"a", "b", "c"});
  SqlExec(Db("b"), "INSERT INTO t VALUES (1, 'x', 1, 'n')");
  auto config = LoadConfig(ConfigPath());
  ASSERT_OK(config);
  int captures = 0;
  std::map<std::string, std::unique_ptr<Connector>> connectors;
  for (const EndpointConfig& ec : config->endpoints) {
    auto c = MakeConnector(ec, config->engine.name);
    ASSERT_OK(c);
    connectors[ec.name] =
        ec.name == "a" ? std::make_unique<UndecodableCapture>(std::move(c).value(), &captures)
                       : std::move(c).value();
  }
  auto engine = Engine::OpenWith(*config, std::move(connectors), true, Env::Default());
  ASSERT_OK(engine);
  TelemetryHub hub;
  (*engine)->SetTelemetry(&hub);
  ASSERT_OK((*engine)->Install());
  std::atomic<bool> stop{false};
  // The others sync until idle, then the run ends with the cause.
  Status st = (*engine)->Run(stop, /*until_idle=*/true);
  EXPECT_EQ(st.code(), Status::Code::kCorruption) << st.ToString();
  EXPECT_NE(st.message().find("endpoint 'a' stopped"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("cannot be decoded"), std::string::npos) << st.ToString();
  EXPECT_EQ(Rows("c"), "1|x|1|n\n");
  EXPECT_EQ(Rows("a"), "");  // stopped: neither captured nor applied to
  EXPECT_EQ(captures, 1);    // not retried in a loop
  // `duplex status` and the admin server say so.
  Result<nlohmann::json> status = (*engine)->StatusJson();
  ASSERT_OK(status);
  const nlohmann::json& a = (*status)["endpoints"][0];
  EXPECT_EQ(a["name"], "a");
  EXPECT_EQ(a["stopped"], true);
  EXPECT_NE(a["last_error"].get<std::string>().find("stopped: capture: corruption: change"),
            std::string::npos)
      << a.dump();
  EXPECT_EQ((*status)["endpoints"][1]["stopped"], false);
  EXPECT_TRUE((*status)["endpoints"][1]["last_error"].is_null());
  std::shared_ptr<const TelemetrySnapshot> t = hub.Latest();
  ASSERT_TRUE(t);
  EXPECT_TRUE(t->endpoints[0].stopped);
  EXPECT_FALSE(t->endpoints[0].connected);
  EXPECT_NE(t->endpoints[0].alert.find("endpoint a stopped"), std::string::npos)
      << t->endpoints[0].alert;
  EXPECT_FALSE(t->endpoints[1].stopped);
  EXPECT_FALSE(t->Ready());
  engine->reset();

  // The next run tries it again: with capture mended, it catches up.
  Sync();
  EXPECT_CONVERGED(*this, "t");
  EXPECT_EQ(Rows("a"), "1|x|1|n\n");
  EXPECT_EQ(SqlQuery(File("state.db"), "SELECT count(*) FROM progress WHERE last_error <> ''"),
            "0\n");
}

}  // namespace
}  // namespace duplex
