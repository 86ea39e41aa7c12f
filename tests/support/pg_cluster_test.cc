#include "support/pg_cluster.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace duplex::testing {
namespace {

// What the connector tests rely on: logical decoding on, durability on, reachable over TCP.
TEST(PgClusterTest, StartsWithLogicalWalAndRunsSql) {
  PgCluster pg;
  ASSERT_OK(pg.Start());
  EXPECT_GT(pg.port(), 0);
  EXPECT_NE(pg.port(), 5432);
  EXPECT_EQ(pg.dsn("app"), "postgresql://postgres@127.0.0.1:" + std::to_string(pg.port()) + "/app");
  auto settings = pg.Query(
      "SELECT current_setting('wal_level'), current_setting('fsync'), "
      "current_setting('synchronous_commit'), current_setting('max_replication_slots')");
  ASSERT_OK(settings);
  EXPECT_EQ(*settings, "logical|on|on|20\n");

  ASSERT_OK(pg.CreateDatabase("app"));
  ASSERT_OK(
      pg.Exec("CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')", "app"));
  auto rows = pg.Query("SELECT id, v, NULL FROM t", "app");
  ASSERT_OK(rows);
  EXPECT_EQ(*rows, "1|a|NULL\n");

  Status bad = pg.Exec("SELECT * FROM no_such_table", "app");
  EXPECT_TRUE(bad.IsInvalidArgument()) << bad.ToString();
  EXPECT_TRUE(std::filesystem::exists(pg.log_path()));
}

TEST(PgClusterTest, ExtraSettingsReachTheServer) {
  PgCluster pg({"track_commit_timestamp=on"});
  ASSERT_OK(pg.Start());
  auto v = pg.Query("SHOW track_commit_timestamp");
  ASSERT_OK(v);
  EXPECT_EQ(*v, "on\n");
}

TEST(PgClusterTest, RestartKeepsDataAndPort) {
  PgCluster pg;
  ASSERT_OK(pg.Start());
  int port = pg.port();
  ASSERT_OK(pg.Exec("CREATE TABLE t(id int); INSERT INTO t VALUES (1), (2)"));
  ASSERT_OK(pg.Restart());
  EXPECT_EQ(pg.port(), port);
  auto n = pg.Query("SELECT count(*) FROM t");
  ASSERT_OK(n);
  EXPECT_EQ(*n, "2\n");
}

// An immediate stop is a crash for the server: committed rows and logical slots survive, and the
// restarted server still has wal_level=logical (it comes from postgresql.conf, not from flags).
TEST(PgClusterTest, ImmediateStopThenStartRecoversCommittedData) {
  PgCluster pg;
  ASSERT_OK(pg.Start());
  ASSERT_OK(pg.Exec("CREATE TABLE t(id int PRIMARY KEY)"));
  ASSERT_OK(pg.Exec("SELECT pg_create_logical_replication_slot('s1', 'pgoutput')"));
  ASSERT_OK(pg.Exec("INSERT INTO t SELECT generate_series(1, 1000)"));
  ASSERT_OK(pg.Stop(/*immediate=*/true));
  Status down = pg.Exec("SELECT 1");
  EXPECT_TRUE(down.IsRetriable()) << down.ToString();
  ASSERT_OK(pg.Stop(/*immediate=*/true));  // Stopping a stopped server is fine.

  ASSERT_OK(pg.Start());
  auto n = pg.Query("SELECT count(*) FROM t");
  ASSERT_OK(n);
  EXPECT_EQ(*n, "1000\n");
  auto slot = pg.Query("SELECT slot_name, plugin FROM pg_replication_slots");
  ASSERT_OK(slot);
  EXPECT_EQ(*slot, "s1|pgoutput\n");
  auto wal = pg.Query("SHOW wal_level");
  ASSERT_OK(wal);
  EXPECT_EQ(*wal, "logical\n");
}

TEST(PgClusterTest, DestructorStopsTheServerAndRemovesItsFiles) {
  std::string dir;
  std::string dsn;
  {
    PgCluster pg;
    ASSERT_OK(pg.Start());
    dir = pg.dir();
    dsn = pg.dsn();
    ASSERT_TRUE(std::filesystem::exists(dir + "/PG_VERSION"));
  }
  if (std::getenv("DUPLEX_KEEP_TMP") == nullptr) {
    EXPECT_FALSE(std::filesystem::exists(dir));
  }
  std::string out;
  EXPECT_NE(RunCommand("psql -X -Atc 'SELECT 1' '" + dsn + "'", &out), 0) << out;
}

}  // namespace
}  // namespace duplex::testing
