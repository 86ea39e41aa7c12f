// End to end on PostgreSQL: the real `duplex` binary against throwaway PostgreSQL 15 clusters
// (tests/support/pg_cluster.h) and real SQLite files. The applications' writes come from this
// process and writer threads over their own libpq connections while duplex runs as its own
// process. Seeded: DUPLEX_E2E_SEED replays a run.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/pg_cluster.h"
#include "support/process.h"
#include "support/sync_fixture.h"
#include "support/test_util.h"

namespace duplex {
namespace {

using std::chrono::milliseconds;
using testing::ConfigBuilder;
using testing::FirstDifference;
using testing::Outcome;
using testing::PgCluster;
using testing::PollUntil;
using testing::Process;
using testing::ReadFile;
using testing::SharedPgCluster;
using testing::SqlExec;
using testing::SqlQuery;
using testing::SyncFixture;
using testing::WriteFile;

uint32_t Seed() {
  const char* s = std::getenv("DUPLEX_E2E_SEED");
  uint32_t seed = s ? static_cast<uint32_t>(std::strtoul(s, nullptr, 10))
                    : static_cast<uint32_t>(std::random_device{}());
  std::printf("DUPLEX_E2E_SEED=%u\n", seed);
  return seed;
}

constexpr const char* kCustomers =
    "CREATE TABLE customers(id int PRIMARY KEY, name text, email text, tier text, "
    "balance bigint, notes text);";

// One cluster for the whole binary (starting one takes seconds); a database per test.
class PgTest : public SharedPgCluster<::testing::Test>, protected SyncFixture {
 protected:
  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    prefix_ = "t" + std::to_string(++databases_);
  }

  // A fresh database named `<prefix>_<name>`; returns its name.
  std::string NewDb(const std::string& name, const std::string& schema = kCustomers) {
    const std::string db = prefix_ + "_" + name;
    NewDatabase(db, schema);
    return db;
  }
  std::string Dsn(const std::string& db) const { return cluster_->dsn(db); }
  void Exec(const std::string& db, const std::string& sql) { PgExec(db, sql); }
  std::string Query(const std::string& db, const std::string& sql) { return PgQuery(db, sql); }
  std::string Rows(const std::string& db, const std::string& table = "customers") {
    return Query(db, "SELECT id, name, email, tier, balance, notes FROM " + table + " ORDER BY id");
  }

  // Collection `customers`: table customers on every endpoint of `config` (add them first).
  static ConfigBuilder::CollectionSpec& Customers(ConfigBuilder& config) {
    ConfigBuilder::CollectionSpec& c = config.Collection("customers");
    for (const ConfigBuilder::Endpoint& e : config.endpoints()) c.On(e.name, "customers");
    return c;
  }

  std::string prefix_;
};

// Both capture modes run every PG<->PG test.
class PgModesTest : public PgTest, public ::testing::WithParamInterface<std::string> {};

INSTANTIATE_TEST_SUITE_P(Capture, PgModesTest, ::testing::Values("logical", "trigger"),
                         [](const auto& info) { return info.param; });

TEST_P(PgModesTest, InitialLoadMatchesByKeyThenLiveChangesFlowBothWays) {
  const std::string mode = GetParam();
  const std::string a = NewDb("a"), b = NewDb("b");
  // Overlap: 1 on both (equal), 2 on both (differ), 3 only on a, 4 only on b.
  Exec(a,
       "INSERT INTO customers VALUES (1,'ann','a@x','gold',10,NULL), "
       "(2,'bob','b@x','silver',20,'from a'), (3,'cy','c@x',NULL,30,NULL)");
  Exec(b,
       "INSERT INTO customers VALUES (1,'ann','a@x','gold',10,NULL), "
       "(2,'bob','b@x','bronze',20,'from a'), (4,'dee','d@x',NULL,40,NULL)");
  ConfigBuilder config;
  config.Postgres("a", Dsn(a), mode).Postgres("b", Dsn(b), mode);
  Customers(config).Policy("tier", "prefer", "b");
  WriteConfig(config);
  Outcome check = Duplex({"check", "--install"});
  ASSERT_EQ(check.code, 0) << check;
  SyncIdle();
  EXPECT_EQ(Rows(a), Rows(b)) << FirstDifference(Rows(a), Rows(b));
  EXPECT_NE(Rows(a).find("2|bob|b@x|bronze|20|from a"), std::string::npos) << Rows(a);
  EXPECT_NE(Rows(a).find("4|dee"), std::string::npos) << Rows(a);
  EXPECT_NE(Rows(b).find("3|cy"), std::string::npos) << Rows(b);
  Outcome conflicts = Duplex({"conflicts", "list", "--all"});
  EXPECT_NE(conflicts.out.find("tier"), std::string::npos) << conflicts;

  // Live: duplex runs; both sides write.
  auto run = Background({"run"});
  Exec(a, "UPDATE customers SET email = 'ann@new' WHERE id = 1");
  Exec(b, "UPDATE customers SET balance = 11 WHERE id = 1");
  Exec(a, "DELETE FROM customers WHERE id = 3");
  Exec(b, "INSERT INTO customers VALUES (5,'eve','e@x',NULL,50,NULL)");
  Exec(a,
       "BEGIN; INSERT INTO customers VALUES (6,'fay','f@x',NULL,60,NULL); "
       "UPDATE customers SET notes = 'tx' WHERE id = 4; COMMIT");
  ASSERT_TRUE(WaitConverged("customers", milliseconds(60000)));
  // A key change is a delete and an insert: the row moves, its other fields with it.
  Exec(b, "UPDATE customers SET id = 40 WHERE id = 4");
  ASSERT_TRUE(WaitConverged("customers", milliseconds(60000)));
  EXPECT_NE(Rows(b).find("1|ann|ann@new|gold|11|NULL"), std::string::npos) << Rows(b);
  EXPECT_EQ(Rows(b).find("3|cy"), std::string::npos) << Rows(b);
  EXPECT_NE(Rows(a).find("6|fay"), std::string::npos) << Rows(a);
  EXPECT_NE(Rows(a).find("40|dee|d@x|NULL|40|tx"), std::string::npos) << Rows(a);
  run->Signal(SIGTERM);
  EXPECT_EQ(run->Wait(milliseconds(30000)), 0) << run->Err();
  // Nothing moves after quiescence (no echo loop): P5.
  Outcome st1 = Duplex({"status", "--json"});
  SyncIdle();
  Outcome st2 = Duplex({"status", "--json"});
  auto applied = [](const std::string& j) { return nlohmann::json::parse(j)["endpoints"].dump(); };
  EXPECT_EQ(applied(st1.out), applied(st2.out));
}

TEST_P(PgModesTest, ConcurrentWritersOnBothSidesConverge) {
  const std::string mode = GetParam();
  const std::string a = NewDb("a"), b = NewDb("b");
  std::string seed_rows;
  for (int i = 1; i <= 40; ++i) {
    seed_rows += (i > 1 ? "," : "") + std::string("(") + std::to_string(i) + ",'n" +
                 std::to_string(i) + "','e',NULL,0,NULL)";
  }
  Exec(a, "INSERT INTO customers VALUES " + seed_rows);
  ConfigBuilder config;
  config.Postgres("a", Dsn(a), mode).Postgres("b", Dsn(b), mode);
  Customers(config);
  WriteConfig(config);
  ASSERT_EQ(Duplex({"check", "--install"}).code, 0);
  SyncIdle();
  auto run = Background({"run"});
  const uint32_t seed = Seed();
  std::atomic<int> errors{0};
  auto writer = [&](const std::string& db, uint32_t s, const char* field) {
    std::mt19937 rng(s);
    PGconn* c = PQconnectdb(cluster_->dsn(db).c_str());
    for (int n = 0; n < 300; ++n) {
      int id = 1 + static_cast<int>(rng() % 50);
      std::string sql;
      switch (rng() % 6) {
        case 0:
          sql = "INSERT INTO customers VALUES (" + std::to_string(id) +
                ",'w','x',NULL,1,NULL) "
                "ON CONFLICT DO NOTHING";
          break;
        case 1:
          sql = "DELETE FROM customers WHERE id = " + std::to_string(id);
          break;
        default:
          sql = std::string("UPDATE customers SET ") + field + " = '" +
                std::to_string(rng() % 1000) +
                "', balance = balance + 1 WHERE id = " + std::to_string(id);
      }
      PGresult* r = PQexec(c, sql.c_str());
      if (PQresultStatus(r) != PGRES_COMMAND_OK) ++errors;
      PQclear(r);
      if (rng() % 4 == 0) std::this_thread::sleep_for(milliseconds(rng() % 5));
    }
    PQfinish(c);
  };
  std::thread wa(writer, a, seed, "name");
  std::thread wb(writer, b, seed + 1, "email");
  wa.join();
  wb.join();
  EXPECT_EQ(errors.load(), 0);
  ASSERT_TRUE(WaitConverged("customers", milliseconds(90000))) << "seed " << seed;
  run->Signal(SIGTERM);
  EXPECT_EQ(run->Wait(milliseconds(30000)), 0) << run->Err();
}

// The application keeps writing while the initial load reads its table in chunks: every
// change lands before or after its row's snapshot, none is lost or overwritten by an older one.
TEST_P(PgModesTest, WritesDuringTheInitialLoadAreNeitherLostNorOverwritten) {
  const std::string mode = GetParam();
  const std::string a = NewDb("a"), b = NewDb("b");
  Exec(a,
       "INSERT INTO customers SELECT g, 'n' || g, 'e', NULL, 0, NULL FROM "
       "generate_series(1, 12000) g");
  ConfigBuilder config;
  config.Postgres("a", Dsn(a), mode).Postgres("b", Dsn(b), mode);
  Customers(config);
  WriteConfig(config);
  const uint32_t seed = Seed();
  std::atomic<bool> stop{false};
  std::atomic<int> writes{0};
  std::thread writer([&] {
    std::mt19937 rng(seed);
    PGconn* c = PQconnectdb(cluster_->dsn(a).c_str());
    while (!stop.load()) {
      int id = 1 + static_cast<int>(rng() % 12500);
      std::string sql =
          rng() % 5 == 0 ? "INSERT INTO customers VALUES (" + std::to_string(id) +
                               ",'new','x',NULL,0,NULL) ON CONFLICT DO NOTHING"
                         : "UPDATE customers SET balance = balance + 1, notes = 'w' WHERE id = " +
                               std::to_string(id);
      PGresult* r = PQexec(c, sql.c_str());
      if (PQresultStatus(r) == PGRES_COMMAND_OK) ++writes;
      PQclear(r);
    }
    PQfinish(c);
  });
  auto run = Background({"run"});
  ASSERT_TRUE(PollUntil([&] { return Query(b, "SELECT count(*) > 0 FROM customers") == "t\n"; },
                        milliseconds(60000)));
  std::this_thread::sleep_for(milliseconds(500));
  stop = true;
  writer.join();
  EXPECT_GT(writes.load(), 0);
  ASSERT_TRUE(WaitConverged("customers", milliseconds(120000))) << "seed " << seed;
  run->Signal(SIGTERM);
  EXPECT_EQ(run->Wait(milliseconds(30000)), 0) << run->Err();
}

TEST_F(PgTest, ThreeEndpointsPgLogicalPgTriggerSqlite) {
  const std::string a = NewDb("a"), b = NewDb("b");
  const std::string lite = File("edge.db");
  SqlExec(lite,
          "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, email TEXT, tier TEXT, "
          "balance INTEGER, notes TEXT)");
  Exec(a, "INSERT INTO customers VALUES (1,'ann','a@x','gold',10,NULL)");
  SqlExec(lite, "INSERT INTO customers VALUES (2,'bob','b@x',NULL,20,'edge')");
  ConfigBuilder config;
  config.Postgres("a", Dsn(a), "logical")
      .Postgres("b", Dsn(b), "trigger")
      .Sqlite("edge", "edge.db");
  Customers(config);
  WriteConfig(config);
  ASSERT_EQ(Duplex({"check", "--install"}).code, 0);
  auto run = Background({"run"});
  auto lite_rows = [&] {
    return SqlQuery(lite,
                    "SELECT id, name, email, ifnull(tier,'NULL'), balance, "
                    "ifnull(notes,'NULL') FROM customers ORDER BY id");
  };
  ASSERT_TRUE(WaitConverged("customers", milliseconds(60000)));
  ASSERT_TRUE(PollUntil([&] { return lite_rows() == Rows(a); }, milliseconds(30000)))
      << lite_rows() << " vs " << Rows(a);
  SqlExec(lite, "UPDATE customers SET tier = 'edge-tier' WHERE id = 1");
  Exec(b, "UPDATE customers SET email = 'b@pg' WHERE id = 2");
  Exec(a, "UPDATE customers SET balance = 99 WHERE id = 2");
  ASSERT_TRUE(PollUntil(
      [&] {
        return Rows(a) == Rows(b) && lite_rows() == Rows(a) &&
               Rows(a).find("2|bob|b@pg|NULL|99|edge") != std::string::npos &&
               Rows(a).find("1|ann|a@x|edge-tier|10|NULL") != std::string::npos;
      },
      milliseconds(30000)))
      << Rows(a) << "\n"
      << Rows(b) << "\n"
      << lite_rows();
  run->Signal(SIGTERM);
  EXPECT_EQ(run->Wait(milliseconds(30000)), 0) << run->Err();
}

TEST_F(PgTest, TypesRoundTripPgToPgAndThroughSqlite) {
  const std::string schema =
      "CREATE TABLE items(id bigint PRIMARY KEY, i2 smallint, i4 int, n numeric, "
      "f float8, t text, b bool, ts timestamptz, d date, u uuid, j json, jb jsonb, by bytea, "
      "arr int[], tarr text[]);";
  const std::string a = NewDb("a", schema), b = NewDb("b", schema), c = NewDb("c", schema);
  const std::string values =
      "(1, -32768, 2147483647, 12345678901234567890.123456789012, 0.1, 'héllo ''q'' \\ x', true, "
      "'2026-11-26 15:14:06.123456+02', '2026-02-28', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', "
      "'{\"k\": [1, 2.50]}', '{\"z\": 1, \"a\": null}', '\\x00ff10', '{1,NULL,3}', "
      "'{\"a b\",\"c,d\"}'), "
      "(2, NULL, NULL, NULL, 'Infinity', NULL, false, 'infinity', NULL, NULL, NULL, NULL, '\\x', "
      "'{}', NULL), "
      "(3, 0, 0, 'NaN', -1.5e-300, '', NULL, NULL, NULL, NULL, 'null', '[]', NULL, NULL, '{}')";
  Exec(a, "INSERT INTO items VALUES " + values);
  const std::string lite = File("edge.db");
  SqlExec(lite,
          "CREATE TABLE items(id INTEGER PRIMARY KEY, i2 INTEGER, i4 INTEGER, n TEXT, "
          "f REAL, t TEXT, b INTEGER, ts TEXT, d TEXT, u TEXT, j TEXT, jb TEXT, by BLOB, "
          "arr TEXT, tarr TEXT)");
  // a -> b directly, a -> edge -> c through SQLite (two configs share nothing).
  ConfigBuilder config;
  config.State("s1.db").Postgres("a", Dsn(a), "logical").Postgres("b", Dsn(b), "trigger");
  config.Sqlite("edge", "edge.db");
  config.Collection("items").On("a", "items").On("b", "items").On("edge", "items");
  WriteConfig(config);
  SyncIdle();
  const std::string all = "SELECT * FROM items ORDER BY id";
  EXPECT_EQ(Query(a, all), Query(b, all)) << FirstDifference(Query(a, all), Query(b, all));
  // SQLite holds the documented forms.
  EXPECT_EQ(SqlQuery(lite, "SELECT n, typeof(by), hex(by), b, ts FROM items WHERE id = 1"),
            "12345678901234567890.123456789012|blob|00FF10|1|2026-11-26T13:14:06.123456Z\n");
  // A second config: edge -> c only.
  ConfigBuilder second;
  second.State("s2.db").Sqlite("edge", "edge.db").Postgres("c", Dsn(c), "logical");
  second.Collection("items").On("edge", "items").On("c", "items");
  WriteFile(File("second.toml"), second.Toml());
  Process p({"run", "--until-idle", "--config", File("second.toml")}, File("second"));
  ASSERT_EQ(p.Wait(milliseconds(120000)), 0) << p.Err();
  EXPECT_EQ(Query(a, all), Query(c, all)) << FirstDifference(Query(a, all), Query(c, all));
  // Live updates of every type, back from b to a.
  Exec(b,
       "UPDATE items SET n = n + 0.000000000001, ts = ts + interval '1 day', "
       "jb = jb || '{\"new\": true}', by = by || '\\xab', arr = arr || 4, "
       "tarr = array_append(tarr, 'e\"f') WHERE id = 1");
  SyncIdle();
  EXPECT_EQ(Query(a, all), Query(b, all)) << FirstDifference(Query(a, all), Query(b, all));
}

TEST_F(PgTest, ValueTheTargetRefusesBecomesADeadLetterAndTheRestFlows) {
  const std::string a = NewDb("a");
  const std::string b =
      NewDb("b", std::string(kCustomers) + "ALTER TABLE customers ADD CHECK (balance >= 0);");
  ConfigBuilder config;
  config.Postgres("a", Dsn(a), "logical").Postgres("b", Dsn(b), "logical");
  Customers(config);
  WriteConfig(config);
  ASSERT_EQ(Duplex({"check", "--install"}).code, 0);
  // Three source transactions: the one refused is parked whole (P7), the others flow.
  Exec(a, "INSERT INTO customers VALUES (1,'ok','x',NULL,1,NULL)");
  Exec(a, "INSERT INTO customers VALUES (2,'neg','y',NULL,-5,NULL)");
  Exec(a, "INSERT INTO customers VALUES (3,'ok3','z',NULL,3,NULL)");
  Outcome o = Duplex({"run", "--until-idle"});
  EXPECT_NE(o.code, 1) << o;
  EXPECT_EQ(Query(b, "SELECT id FROM customers ORDER BY id"), "1\n3\n") << o;
  Outcome st = Duplex({"status"});
  EXPECT_NE(st.out.find("customers"), std::string::npos) << st;
  EXPECT_NE(o.All().find("balance"), std::string::npos) << o;  // the reason names the check
}

// An enum and a domain over text are text (ColumnKind): they sync with SQLite TEXT columns (type
// names alone made them numbers, a false type clash). A label the enum lacks is refused by
// PostgreSQL and parked; the rest flows.
TEST_F(PgTest, EnumAndDomainColumnsSyncWithSqliteTextAndUnknownLabelsAreParked) {
  const std::string a =
      NewDb("a",
            "CREATE TYPE tier_t AS ENUM ('gold', 'silver');"
            "CREATE DOMAIN email_t AS text CHECK (VALUE LIKE '%@%');"
            "CREATE TABLE customers(id int PRIMARY KEY, name text, email email_t, tier tier_t, "
            "balance bigint, notes text);");
  const std::string lite = File("edge.db");
  SqlExec(lite,
          "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, email TEXT, tier TEXT, "
          "balance INTEGER, notes TEXT)");
  Exec(a, "INSERT INTO customers VALUES (1,'ann','a@x','gold',10,'n')");
  SqlExec(lite, "INSERT INTO customers VALUES (2,'bob','b@x','silver',20,'n')");
  ConfigBuilder config;
  config.Postgres("a", Dsn(a), "logical").Sqlite("edge", "edge.db");
  Customers(config);
  WriteConfig(config);
  Outcome check = Duplex({"check", "--install"});
  ASSERT_EQ(check.code, 0) << check;
  SyncIdle();
  auto lite_rows = [&] {
    return SqlQuery(lite,
                    "SELECT id, name, email, tier, balance, notes FROM customers ORDER BY id");
  };
  EXPECT_EQ(Rows(a), "1|ann|a@x|gold|10|n\n2|bob|b@x|silver|20|n\n");
  EXPECT_EQ(lite_rows(), Rows(a));
  Exec(a, "UPDATE customers SET tier = 'silver' WHERE id = 1");
  SqlExec(lite, "UPDATE customers SET tier = 'gold' WHERE id = 2");
  SyncIdle();
  EXPECT_EQ(Query(a, "SELECT id, tier FROM customers ORDER BY id"), "1|silver\n2|gold\n");
  EXPECT_EQ(SqlQuery(lite, "SELECT tier FROM customers WHERE id = 1"), "silver\n");
  // SQLite triggers cannot tell transactions apart (what is captured together is one unit):
  // one run for the refused row, one for the next.
  SqlExec(lite, "INSERT INTO customers VALUES (3,'cy','c@x','bronze',30,'n')");
  Outcome o = Duplex({"run", "--until-idle"});
  EXPECT_EQ(o.code, 3) << o;                                  // ended with a dead letter parked
  EXPECT_NE(o.All().find("tier_t"), std::string::npos) << o;  // the reason names the enum
  SqlExec(lite, "INSERT INTO customers VALUES (4,'di','d@x','gold',40,'n')");
  o = Duplex({"run", "--until-idle"});
  EXPECT_EQ(o.code, 3) << o;  // the dead letter is still parked
  EXPECT_EQ(Query(a, "SELECT id, tier FROM customers ORDER BY id"), "1|silver\n2|gold\n4|gold\n");
}

TEST_F(PgTest, KillNineDuringABacklogNeitherLosesNorDoubles) {
  const std::string a = NewDb("a"), b = NewDb("b");
  ConfigBuilder config;
  config.Postgres("a", Dsn(a), "logical").Postgres("b", Dsn(b), "trigger");
  Customers(config).Policy("balance", "max");
  WriteConfig(config);
  ASSERT_EQ(Duplex({"check", "--install"}).code, 0);
  Exec(a,
       "INSERT INTO customers SELECT g, 'n' || g, 'e', NULL, g, NULL FROM "
       "generate_series(1, 20000) g");
  Exec(b,
       "INSERT INTO customers SELECT g, 'm' || g, 'f', NULL, g, NULL FROM "
       "generate_series(30001, 40000) g");
  for (int round = 0; round < 3; ++round) {
    auto run = Background({"run"});
    std::this_thread::sleep_for(milliseconds(700 + 400 * round));
    run->Signal(SIGKILL);
    run->Wait(milliseconds(10000));
    Exec(a, "UPDATE customers SET balance = balance + 1 WHERE id % 97 = " + std::to_string(round));
  }
  SyncIdle();
  EXPECT_EQ(Query(a, "SELECT count(*), sum(balance) FROM customers"),
            Query(b, "SELECT count(*), sum(balance) FROM customers"));
  EXPECT_EQ(Query(a, "SELECT count(*) FROM customers"), "30000\n");
  EXPECT_EQ(Rows(a), Rows(b)) << FirstDifference(Rows(a), Rows(b));
}

TEST_F(PgTest, ServerRestartWhileRunningResumesFromTheSlot) {
  PgCluster other;
  ASSERT_OK(other.Start());
  ASSERT_OK(other.CreateDatabase("b"));
  ASSERT_OK(other.Exec(kCustomers, "b"));
  const std::string a = NewDb("a");
  ConfigBuilder config;
  config.Postgres("a", Dsn(a), "logical").Postgres("b", other.dsn("b"));
  Customers(config);
  WriteConfig(config);
  ASSERT_EQ(Duplex({"check", "--install"}).code, 0);
  auto run = Background({"run"});
  Exec(a, "INSERT INTO customers VALUES (1,'before','x',NULL,1,NULL)");
  auto b_rows = [&] {
    Result<std::string> r = other.Query("SELECT id, name FROM customers ORDER BY id", "b");
    return r.ok() ? *r : std::string("(down)");
  };
  ASSERT_TRUE(PollUntil([&] { return b_rows() == "1|before\n"; }, milliseconds(30000))) << b_rows();
  ASSERT_OK(other.Stop(/*immediate=*/true));
  Exec(a, "INSERT INTO customers VALUES (2,'during','x',NULL,2,NULL)");
  std::this_thread::sleep_for(milliseconds(1500));
  ASSERT_OK(other.Start());
  ASSERT_OK(other.Exec("INSERT INTO customers VALUES (3,'after','y',NULL,3,NULL)", "b"));
  ASSERT_TRUE(
      PollUntil([&] { return b_rows() == "1|before\n2|during\n3|after\n"; }, milliseconds(60000)))
      << b_rows() << run->Err();
  ASSERT_TRUE(
      PollUntil([&] { return Query(a, "SELECT id, name FROM customers ORDER BY id") == b_rows(); },
                milliseconds(60000)));
  EXPECT_TRUE(run->Running()) << run->Err();
  run->Signal(SIGTERM);
  EXPECT_EQ(run->Wait(milliseconds(30000)), 0) << run->Err();
}

// A fast shutdown (pg_ctl's default mode; `systemctl restart`) ends the regular backends at
// once but keeps a walsender until its client has confirmed all the WAL sent, for up to
// wal_sender_timeout (60 s). Duplex used to hold it up that long: once its regular connections
// were cut, its replication connection was neither read nor closed. A restart must take about as
// long as without duplex (about a second here; 10 s tells it apart from the 60 s stall), with
// duplex idle and with duplex busy applying to the server (then holding changes it has not
// confirmed, so that no reply could satisfy the walsender), and sync must resume afterwards.
TEST_P(PgModesTest, FastRestartOfTheServerIsNotHeldUpAndSyncResumes) {
  const std::string mode = GetParam();
  PgCluster server;
  ASSERT_OK(server.Start());
  ASSERT_OK(server.CreateDatabase("a"));
  ASSERT_OK(server.Exec(kCustomers, "a"));
  const std::string lite = File("edge.db");
  SqlExec(lite,
          "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, email TEXT, tier TEXT, "
          "balance INTEGER, notes TEXT)");
  ConfigBuilder config;
  config.Postgres("a", server.dsn("a"), mode).Sqlite("edge", "edge.db");
  Customers(config);
  WriteConfig(config);
  ASSERT_EQ(Duplex({"check", "--install"}).code, 0);
  auto run = Background({"run"});
  auto edge_rows = [&] { return SqlQuery(lite, "SELECT id, name FROM customers ORDER BY id"); };
  auto a_rows = [&] {
    Result<std::string> r = server.Query("SELECT id, name FROM customers ORDER BY id", "a");
    return r.ok() ? *r : r.status().ToString();
  };
  auto restart = [&](const std::string& what) {
    const auto started = std::chrono::steady_clock::now();
    ASSERT_OK(server.Stop());  // fast
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("fast shutdown with duplex %s took %.2f s\n", what.c_str(), secs);
    const std::string log = ReadFile(server.log_path());
    EXPECT_LT(secs, 10.0) << "duplex " << what << "; the server's log:\n" << log;
    EXPECT_EQ(log.find("due to replication timeout"), std::string::npos) << what;
    ASSERT_OK(server.Start());
  };
  ASSERT_OK(server.Exec("INSERT INTO customers VALUES (1,'before','x',NULL,1,NULL)", "a"));
  ASSERT_TRUE(PollUntil([&] { return edge_rows() == "1|before\n"; }, milliseconds(30000)))
      << edge_rows();
  restart("idle");

  // Duplex applies the edge's update to a row an application holds locked: it waits in that
  // apply, not reading the stream, while the application commits another row.
  PGconn* app = PQconnectdb(server.dsn("a").c_str());
  PQclear(PQexec(app, "BEGIN; SELECT 1 FROM customers WHERE id = 1 FOR UPDATE"));
  ASSERT_EQ(PQtransactionStatus(app), PQTRANS_INTRANS) << PQerrorMessage(app);
  SqlExec(lite, "UPDATE customers SET name = 'edge' WHERE id = 1");
  ASSERT_TRUE(PollUntil(
      [&] {
        Result<std::string> r = server.Query(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'duplex' AND "
            "wait_event_type = 'Lock'",
            "a");
        return r.ok() && *r == "1\n";
      },
      milliseconds(30000)));
  ASSERT_OK(server.Exec("INSERT INTO customers VALUES (3,'app','z',NULL,3,NULL)", "a"));
  restart("applying");
  PQfinish(app);  // the shutdown ended its transaction

  ASSERT_OK(server.Exec("INSERT INTO customers VALUES (2,'after','y',NULL,2,NULL)", "a"));
  const std::string want = "1|edge\n2|after\n3|app\n";
  ASSERT_TRUE(
      PollUntil([&] { return edge_rows() == want && a_rows() == want; }, milliseconds(30000)))
      << edge_rows() << "\n"
      << a_rows() << "\n"
      << run->Err();
  EXPECT_TRUE(run->Running()) << run->Err();
  run->Signal(SIGTERM);
  EXPECT_EQ(run->Wait(milliseconds(30000)), 0) << run->Err();
}

TEST_F(PgTest, PreflightNamesWhatIsMissingWithTheFix) {
  PgCluster replica_level({"wal_level=replica"});
  ASSERT_OK(replica_level.Start());
  ASSERT_OK(replica_level.CreateDatabase("b"));
  ASSERT_OK(replica_level.Exec(std::string(kCustomers) + "CREATE TABLE nokey(id int, v text);"
                                                         "CREATE ROLE weak LOGIN;",
                               "b"));
  const std::string a = NewDb("a");
  ConfigBuilder config;
  config.Postgres("a", Dsn(a), "logical").Postgres("b", replica_level.dsn("b"));
  Customers(config);
  WriteConfig(config);
  // check alone writes nothing and names what is missing, with the statement that fixes it.
  Outcome look = Duplex({"check"});
  EXPECT_EQ(look.code, 2) << look;
  EXPECT_NE(look.err.find("endpoint 'b': wal_level is 'replica'"), std::string::npos) << look;
  Outcome o = Duplex({"check", "--install"});
  EXPECT_NE(o.code, 0) << o;
  EXPECT_NE(o.err.find("wal_level"), std::string::npos) << o;
  EXPECT_NE(o.err.find("ALTER SYSTEM SET wal_level = logical"), std::string::npos) << o;
  EXPECT_NE(o.err.find("endpoint 'b'"), std::string::npos) << o;
  // Trigger capture needs no logical decoding: the same server works.
  ConfigBuilder trigger;
  trigger.Postgres("a", Dsn(a), "logical").Postgres("b", replica_level.dsn("b"), "trigger");
  Customers(trigger);
  WriteConfig(trigger);
  Outcome ok = Duplex({"check", "--install"});
  EXPECT_EQ(ok.code, 0) << ok;
  // A role without privileges: every missing one is named with its GRANT.
  const std::string w = NewDb("w");
  const std::string weak =
      "postgresql://weak@127.0.0.1:" + std::to_string(cluster_->port()) + "/" + w;
  Exec(w,
       "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'weak') THEN "
       "CREATE ROLE weak LOGIN; END IF; END $$");
  ConfigBuilder weak_config;
  weak_config.Postgres("w", weak).Postgres("c", Dsn(NewDb("c")), "logical");
  Customers(weak_config);
  WriteConfig(weak_config);
  Outcome priv = Duplex({"check", "--install"});
  EXPECT_NE(priv.code, 0) << priv;
  EXPECT_NE(priv.err.find("ALTER ROLE \"weak\" REPLICATION"), std::string::npos) << priv;
  EXPECT_NE(priv.err.find("GRANT SELECT, INSERT, UPDATE, DELETE ON"), std::string::npos) << priv;
}

TEST_F(PgTest, UninstallRemovesSlotPublicationOriginTriggersAndTables) {
  const std::string a = NewDb("a"), b = NewDb("b");
  ConfigBuilder config;
  config.Postgres("a", Dsn(a), "logical").Postgres("b", Dsn(b), "trigger");
  Customers(config);
  WriteConfig(config);
  ASSERT_EQ(Duplex({"check", "--install"}).code, 0);
  SyncIdle();
  EXPECT_EQ(
      Query(a, "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"),
      "1\n");
  // Origins belong to the cluster, not to a database: count this config's.
  const std::string origins = Query(a, "SELECT count(*) FROM pg_replication_origin");
  Outcome o = Duplex({"uninstall"});
  ASSERT_EQ(o.code, 0) << o;
  EXPECT_EQ(
      Query(a, "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"),
      "0\n");
  EXPECT_EQ(Query(a, "SELECT count(*) FROM pg_publication"), "0\n");
  EXPECT_EQ(std::stoi(Query(a, "SELECT count(*) FROM pg_replication_origin")),
            std::stoi(origins) - 1);
  for (const std::string& db : {a, b}) {
    EXPECT_EQ(Query(db, "SELECT count(*) FROM pg_class WHERE relname LIKE '\\_duplex%'"), "0\n");
    EXPECT_EQ(Query(db, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '\\_duplex%'"), "0\n");
    EXPECT_EQ(Query(db, "SELECT count(*) FROM pg_proc WHERE proname LIKE '\\_duplex%'"), "0\n");
  }
}

}  // namespace
}  // namespace duplex
