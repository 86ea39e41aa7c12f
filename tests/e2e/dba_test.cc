// End to end: what DBAs and applications do to the databases duplex syncs, through the real
// `duplex` binary on real SQLite files and throwaway PostgreSQL clusters (issue "Drift repair
// and data safety", section 2).
// - An endpoint restored from a backup (it goes back in time behind duplex's back): its own
//   edits made after the restore must reach the others, and what it lost must come back to it.
// - duplex starting while an application holds a transaction open on a synced table: the
//   application's other writes must not queue behind duplex.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
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
using testing::Outcome;
using testing::Process;
using testing::RunCommand;
using testing::SharedPgCluster;
using testing::SqlExec;
using testing::SqlQuery;
using testing::SyncFixture;

constexpr const char* kItems =
    "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER);";
constexpr const char* kPgItems = "CREATE TABLE items(id int PRIMARY KEY, name text, qty int);";

class RestoreTest : public SharedPgCluster<::testing::Test>, public SyncFixture {
 public:
  std::string Db(const std::string& endpoint) const { return File(endpoint + ".db"); }

  // Endpoint `a` (SQLite) and `b` (SQLite, or PostgreSQL database `pg_db` with `capture`).
  void Configure(const std::string& pg_db = "", const std::string& capture = "") {
    ConfigBuilder config;
    config.Sqlite("a", "a.db");
    if (pg_db.empty()) {
      config.Sqlite("b", "b.db");
    } else {
      config.Postgres("b", cluster_->dsn(pg_db), capture);
    }
    config.Collection("item").On("a", "items").On("b", "items");
    WriteConfig(config);
  }

  std::string Rows(const std::string& endpoint, const std::string& pg_db = "") {
    const std::string sql = "SELECT id, name, qty FROM items ORDER BY id";
    if (endpoint == "b" && !pg_db.empty()) return PgQuery(pg_db, sql);
    return SqlQuery(Db(endpoint), sql);
  }

  // A custom-format dump of database `db` (pg_dump, as a DBA would take it).
  void Dump(const std::string& db) {
    std::string out;
    ASSERT_EQ(RunCommand(PgBin() + "pg_dump -Fc -f '" + File(db + ".dump") + "' '" +
                             cluster_->dsn(db) + "'",
                         &out),
              0)
        << out;
  }
  // The database dropped and made again from its dump.
  void Reload(const std::string& db) {
    PgExec("postgres", "DROP DATABASE " + db);
    PgExec("postgres", "CREATE DATABASE " + db);
    std::string out;
    ASSERT_EQ(RunCommand(PgBin() + "pg_restore -d '" + cluster_->dsn(db) + "' '" +
                             File(db + ".dump") + "'",
                         &out),
              0)
        << out;
  }
  static std::string PgBin() {
    return std::filesystem::exists("/usr/lib/postgresql/15/bin/pg_dump")
               ? "/usr/lib/postgresql/15/bin/"
               : "";
  }
};

// The scenario of the issue: `a` (SQLite) and `b` synced; a backup of b taken; 20 more edits
// synced both ways and a delete; b restored from the backup; then, before duplex runs again, an
// update and an insert on b (`edit_after_restore`). `b_exec` runs SQL on b like an
// application; `backup` and `restore` act on b's store. Before the fix, `run --until-idle`
// exited 0 and synced nothing: the restored changelog's positions were below what duplex had
// captured, so b's new changes were taken as already seen, and b kept the old rows.
void RestoreScenario(RestoreTest& t, const std::function<void(const std::string&)>& b_exec,
                     const std::function<std::string()>& b_rows,
                     const std::function<void()>& backup, const std::function<void()>& restore,
                     bool edit_after_restore) {
  SqlExec(t.Db("a"), kItems);
  SqlExec(t.Db("a"), "INSERT INTO items VALUES(1, 'one', 1), (2, 'two', 2), (3, 'three', 3)");
  t.SyncIdle();
  ASSERT_EQ(t.Rows("a"), b_rows());

  backup();
  for (int i = 0; i < 10; ++i) {
    SqlExec(t.Db("a"), "UPDATE items SET qty = qty + 1 WHERE id = " + std::to_string(i % 3 + 1));
    b_exec("INSERT INTO items VALUES(" + std::to_string(100 + i) + ", 'b" + std::to_string(i) +
           "', " + std::to_string(i) + ")");
    t.SyncIdle();
  }
  SqlExec(t.Db("a"), "DELETE FROM items WHERE id = 2");
  t.SyncIdle();
  ASSERT_EQ(t.Rows("a"), b_rows());

  restore();
  if (edit_after_restore) {
    b_exec("UPDATE items SET name = 'edited-after-restore' WHERE id = 3");
    b_exec("INSERT INTO items VALUES(4, 'four', 4)");
  }

  Outcome o = t.Duplex({"run", "--until-idle"});
  ASSERT_EQ(o.code, 0) << o;
  EXPECT_NE(o.err.find("endpoint 'b' went back in time"), std::string::npos) << o;

  // What b lost by the restore came back to it (a's updates, the delete of id 2, b's own
  // inserts), and b's edits made after the restore reached a.
  const std::string a = t.Rows("a");
  EXPECT_EQ(a, b_rows());
  EXPECT_EQ(a.find("2|two|"), std::string::npos) << a;
  for (int i = 0; i < 10; ++i) {
    EXPECT_NE(a.find(std::to_string(100 + i) + "|b" + std::to_string(i) + "|"), std::string::npos)
        << a;
  }
  EXPECT_NE(a.find("1|one|5\n"), std::string::npos) << a;  // a's 4 updates of id 1
  if (edit_after_restore) {
    EXPECT_NE(a.find("3|edited-after-restore|6\n"), std::string::npos) << a;
    EXPECT_NE(a.find("4|four|4\n"), std::string::npos) << a;
  } else {
    EXPECT_NE(a.find("3|three|6\n"), std::string::npos) << a;
  }

  // Later edits on b sync as usual; a second run says nothing about a restore.
  b_exec("UPDATE items SET qty = 42 WHERE id = 1");
  o = t.Duplex({"run", "--until-idle"});
  ASSERT_EQ(o.code, 0) << o;
  EXPECT_EQ(o.err.find("went back in time"), std::string::npos) << o;
  EXPECT_EQ(t.Rows("a"), b_rows());
  EXPECT_NE(t.Rows("a").find("1|one|42\n"), std::string::npos) << t.Rows("a");
}

TEST_F(RestoreTest, SqliteEndpointRestoredFromACopy) {
  SqlExec(Db("b"), kItems);
  Configure();
  RestoreScenario(
      *this, [&](const std::string& sql) { SqlExec(Db("b"), sql); }, [&] { return Rows("b"); },
      [&] { SqlExec(Db("b"), "VACUUM INTO '" + File("b-backup.db") + "'"); },
      [&] {
        std::filesystem::remove(Db("b") + "-wal");
        std::filesystem::remove(Db("b") + "-shm");
        std::filesystem::copy_file(File("b-backup.db"), Db("b"),
                                   std::filesystem::copy_options::overwrite_existing);
      },
      true);
}

// pg_dump, then DROP DATABASE and pg_restore: the changelog, its positions and the applied id
// come back as they were.
TEST_F(RestoreTest, PostgresTriggerEndpointRestoredFromADump) {
  const std::string db = "restore_trigger";
  NewDatabase(db, kPgItems);
  Configure(db, "trigger");
  RestoreScenario(
      *this, [&](const std::string& sql) { PgExec(db, sql); }, [&] { return Rows("b", db); },
      [&] { Dump(db); }, [&] { Reload(db); }, true);
}

// The slot does not survive a dump: it must be dropped for the database to be dropped. What
// the applications write before duplex makes a new one cannot be captured (README), so they
// write nothing here in between.
TEST_F(RestoreTest, PostgresLogicalEndpointRestoredFromADump) {
  const std::string db = "restore_logical";
  NewDatabase(db, kPgItems);
  Configure(db, "logical");
  RestoreScenario(
      *this, [&](const std::string& sql) { PgExec(db, sql); }, [&] { return Rows("b", db); },
      [&] { Dump(db); },
      [&] {
        PgExec(db,
               "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE "
               "database = current_database()");
        Reload(db);
      },
      false);
}

// Starting duplex must not make applications wait. An application transaction writes a synced
// table (its capture trigger writes duplex's changelog) and stays open; `duplex run` starts;
// another session writes the same table. Before the fix, every start re-ran its install DDL,
// an ALTER TABLE of the changelog whose ACCESS EXCLUSIVE request queued behind the open
// transaction, and every later write queued behind it: the second session did not commit
// within seconds (trigger capture: it hit its 10 s statement timeout), and never if the open
// transaction waited for it.
class LockTest : public RestoreTest, public ::testing::WithParamInterface<std::string> {};

INSTANTIATE_TEST_SUITE_P(Capture, LockTest, ::testing::Values("logical", "trigger"),
                         [](const auto& info) { return info.param; });

TEST_P(LockTest, StartingDuplexDoesNotQueueApplicationWritesBehindItsDdl) {
  const std::string db = "locks_" + GetParam();
  NewDatabase(db, kPgItems);
  SqlExec(Db("a"), kItems);
  Configure(db, GetParam());
  SyncIdle();  // installed; nothing needs to change at the next start

  std::unique_ptr<PGconn, decltype(&PQfinish)> open_txn(PQconnectdb(cluster_->dsn(db).c_str()),
                                                        &PQfinish);
  ASSERT_EQ(PQstatus(open_txn.get()), CONNECTION_OK);
  PQclear(PQexec(open_txn.get(), "BEGIN; INSERT INTO items VALUES (1, 'open', 1)"));
  std::unique_ptr<Process> run = Background({"run"});
  // Until duplex waits for a lock, or has been connected for 3 s without waiting for one.
  auto connected = std::chrono::steady_clock::time_point::max();
  testing::PollUntil(
      [&] {
        const std::string waiting =
            PgQuery(db,
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE "
                    "a.application_name = 'duplex' AND NOT l.granted");
        if (waiting != "0\n") return true;
        const bool on = PgQuery(db,
                                "SELECT count(*) > 0 FROM pg_stat_activity WHERE "
                                "application_name = 'duplex'") == "t\n";
        if (on && connected == std::chrono::steady_clock::time_point::max()) {
          connected = std::chrono::steady_clock::now();
        }
        return on && std::chrono::steady_clock::now() - connected > milliseconds(3000);
      },
      milliseconds(60000), milliseconds(50));

  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<PGconn, decltype(&PQfinish)> other(PQconnectdb(cluster_->dsn(db).c_str()),
                                                     &PQfinish);
  ASSERT_EQ(PQstatus(other.get()), CONNECTION_OK);
  PQclear(PQexec(other.get(), "SET statement_timeout = '10s'"));
  PGresult* r = PQexec(other.get(), "INSERT INTO items VALUES (2, 'other', 2)");
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  const std::string error = PQresultErrorMessage(r);
  PQclear(r);
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  PQclear(PQexec(open_txn.get(), "COMMIT"));
  EXPECT_TRUE(ok) << error;
  // A write that waits for nothing takes milliseconds; a generous bound for a loaded machine.
  EXPECT_LT(waited, 3.0) << "the application's INSERT waited " << waited << " s";

  // And duplex syncs both rows once the transaction is over.
  EXPECT_TRUE(testing::PollUntil(
      [&] {
        return Rows("a") == Rows("b", db) && Rows("a").find("2|other|2") != std::string::npos;
      },
      milliseconds(30000), milliseconds(100)))
      << Rows("a") << "\n"
      << Rows("b", db);
  run->Signal(SIGTERM);
  EXPECT_EQ(run->Wait(milliseconds(30000)), 0) << run->Err();
}

}  // namespace
}  // namespace duplex
