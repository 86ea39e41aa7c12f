// The test scaffolding itself: the config builder writes what duplex's own parser reads back,
// and the row comparison names the first difference on real SQLite files.
#include "support/sync_fixture.h"

#include <gtest/gtest.h>

#include "config/config.h"
#include "connectors/postgres/settings.h"
#include "connectors/sqlite/settings.h"
#include "support/test_util.h"

namespace duplex::testing {
namespace {

TEST(ConfigBuilderTest, WritesWhatTheConfigParserReadsBack) {
  ConfigBuilder c;
  c.State("s.db").Engine("batch_rows", 300).Engine("alert_command", "echo \"$X\" >> 'a\\b'");
  c.Sqlite("crm", "crm.db")
      .Postgres("erp", "postgresql://u@127.0.0.1:1/erp", "trigger")
      .PostgresEnv("ops", "OPS_DSN");
  c.Collection("orders").On("crm", "orders").On("erp", "orders");
  c.Collection("customer")
      .KeyMode("mapped")
      .DefaultPolicy("min")
      .OnDeleteConflict("keep")
      .Policy("balance", "max")
      .Policy("tier", "prefer", "erp")
      .On("crm", "customers")
      .On("erp", "clients", {{"name", "full_name"}, {"email", "mail"}})
      .On("ops", "people");
  Result<Config> config = ParseConfig(c.Toml(), "/tmp/x/duplex.toml");
  ASSERT_TRUE(config.ok()) << config.status().ToString() << "\n" << c.Toml();

  EXPECT_EQ(config->engine.state_path, "/tmp/x/s.db");
  EXPECT_EQ(config->engine.batch_rows, 300u);
  EXPECT_EQ(config->engine.alert_command, "echo \"$X\" >> 'a\\b'");
  ASSERT_EQ(config->endpoints.size(), 3u);
  EXPECT_EQ(config->endpoints[0].name, "crm");
  ASSERT_NE(config->endpoints[0].settings_as<sqlite::SqliteSettings>(), nullptr);
  EXPECT_EQ(config->endpoints[0].settings_as<sqlite::SqliteSettings>()->path, "/tmp/x/crm.db");
  const auto* erp = config->endpoints[1].settings_as<pg::PostgresSettings>();
  ASSERT_NE(erp, nullptr);
  EXPECT_EQ(erp->dsn, "postgresql://u@127.0.0.1:1/erp");
  EXPECT_EQ(erp->capture, "trigger");
  const auto* ops = config->endpoints[2].settings_as<pg::PostgresSettings>();
  ASSERT_NE(ops, nullptr);
  EXPECT_EQ(ops->dsn_env, "OPS_DSN");
  EXPECT_EQ(ops->capture, "logical");  // the default, not written

  ASSERT_EQ(config->collections.size(), 2u);
  EXPECT_EQ(config->collections[0].name, "orders");  // in the order they were added
  const CollectionConfig& cust = config->collections[1];
  EXPECT_EQ(cust.key, std::vector<std::string>{"id"});
  EXPECT_TRUE(cust.mapped_key);
  EXPECT_FALSE(cust.delete_wins);
  EXPECT_EQ(cust.default_policy.policy, Policy::kMin);
  EXPECT_EQ(cust.PolicyFor("balance").policy, Policy::kMax);
  EXPECT_EQ(cust.PolicyFor("tier").policy, Policy::kPrefer);
  EXPECT_EQ(cust.PolicyFor("tier").prefer_endpoint, "erp");
  ASSERT_EQ(cust.endpoints.size(), 3u);
  EXPECT_EQ(cust.endpoints[1].table, "clients");
  EXPECT_EQ(cust.endpoints[1].Column("name"), "full_name");
  EXPECT_EQ(cust.endpoints[1].Column("email"), "mail");
  EXPECT_EQ(cust.endpoints[2].table, "people");
}

TEST(ConfigBuilderTest, CollectionIsFoundAgainByName) {
  ConfigBuilder c;
  c.Collection("t").On("a", "t");
  c.Collection("u").On("a", "u");
  c.Collection("t").On("b", "t2");  // the same collection, even after another was added
  ASSERT_NE(c.FindCollection("t"), nullptr);
  ASSERT_EQ(c.FindCollection("t")->members().size(), 2u);
  EXPECT_EQ(c.FindCollection("t")->members()[1].table, "t2");
  EXPECT_EQ(c.FindCollection("nope"), nullptr);
}

class SyncFixtureTest : public ::testing::Test, protected SyncFixture {};

TEST_F(SyncFixtureTest, ConvergedComparesCanonicalFieldsAndNamesTheFirstDifference) {
  SqlExec(File("a.db"), "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, b BLOB, extra TEXT)");
  SqlExec(File("b.db"), "CREATE TABLE u(id INTEGER PRIMARY KEY, full_name TEXT, b BLOB)");
  ConfigBuilder c;
  c.Sqlite("a", "a.db").Sqlite("b", File("b.db"));  // relative and absolute paths
  c.Collection("t").On("a", "t").On("b", "u", {{"name", "full_name"}});
  WriteConfig(c);
  EXPECT_TRUE(Converged("t"));

  // `extra` is on a only: not compared.
  SqlExec(File("a.db"), "INSERT INTO t VALUES (1, 'ann', x'00ff', 'only here')");
  SqlExec(File("b.db"), "INSERT INTO u VALUES (1, 'ann', x'00ff')");
  EXPECT_TRUE(Converged("t"));
  EXPECT_EQ(*Rows("t", "b")["1"]["b"], "\\x00ff");

  SqlExec(File("b.db"), "UPDATE u SET full_name = NULL WHERE id = 1");
  ::testing::AssertionResult r = Converged("t");
  EXPECT_FALSE(r);
  EXPECT_EQ(std::string(r.message()),
            "collection 't': key 1, field 'name': 'ann' on endpoint 'a', NULL on endpoint 'b'");

  SqlExec(File("b.db"),
          "UPDATE u SET full_name = 'ann' WHERE id = 1; INSERT INTO u VALUES (2, "
          "'bob', NULL)");
  r = Converged("t");
  EXPECT_FALSE(r);
  EXPECT_EQ(std::string(r.message()),
            "collection 't': key 2 is on endpoint 'b', not on endpoint 'a'");
  EXPECT_FALSE(WaitConverged("t", std::chrono::milliseconds(300)));
}

TEST_F(SyncFixtureTest, SyncIdleMakesTwoFilesConverge) {
  SqlExec(File("a.db"), "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)");
  SqlExec(File("b.db"), "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)");
  SqlExec(File("a.db"), "INSERT INTO t VALUES (1, 'x', 1), (2, 'y', NULL)");
  ConfigBuilder c;
  c.Sqlite("a", "a.db").Sqlite("b", "b.db");
  c.Collection("t").On("a", "t").On("b", "t");
  WriteConfig(c);
  EXPECT_FALSE(Converged("t"));
  SyncIdle();
  EXPECT_CONVERGED(*this, "t");
  EXPECT_EQ(StatusJson()["endpoints"].size(), 2u);
  EXPECT_TRUE(NoBacklog(StatusJson()));
}

// The example of tests/support/README.md, kept compiling and passing here.
TEST_F(SyncFixtureTest, ReadmeExampleRenamedColumnSyncs) {
  SqlExec(File("crm.db"), "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT)");
  SqlExec(File("erp.db"), "CREATE TABLE clients(id INTEGER PRIMARY KEY, full_name TEXT)");
  testing::ConfigBuilder config;
  config.Sqlite("crm", "crm.db").Sqlite("erp", "erp.db").Engine("batch_rows", 500);
  config.Collection("customer")
      .On("crm", "customers")
      .On("erp", "clients", {{"name", "full_name"}})
      .Policy("name", "prefer", "crm");
  WriteConfig(config);
  SqlExec(File("crm.db"), "INSERT INTO customers VALUES (1, 'ann')");
  SyncIdle();
  EXPECT_CONVERGED(*this, "customer");
  testing::Outcome o = Duplex({"status", "--json"});
  EXPECT_EQ(o.code, 0) << o;
  EXPECT_EQ(SqlQuery(File("erp.db"), "SELECT id, full_name FROM clients"), "1|ann\n");
}

}  // namespace
}  // namespace duplex::testing
