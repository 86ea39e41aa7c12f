// End to end: the real `duplex` binary (DUPLEX_BIN) on real SQLite files. The applications'
// writes come from separate connections: this test process, writer threads with their own
// connections, while duplex runs as its own process (started, signalled and killed here).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/process.h"
#include "support/sync_fixture.h"
#include "support/test_util.h"
#include "util/sqlite.h"

extern char** environ;

namespace duplex {
namespace {

using json = nlohmann::json;
using testing::ConfigBuilder;
using testing::DuplexBin;
using testing::FirstDifference;
using testing::Outcome;
using testing::PollUntil;
using testing::Process;
using testing::ReadFile;
using testing::SqlExec;
using testing::SqlQuery;
using testing::SyncFixture;
using testing::WriteFile;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kCrmSchema =
    "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, email TEXT, tier TEXT, "
    "balance INTEGER, notes TEXT);";
constexpr const char* kBillingSchema =
    "CREATE TABLE clients(id INTEGER PRIMARY KEY, full_name TEXT, email TEXT, tier TEXT, "
    "balance INTEGER, notes TEXT);";
constexpr const char* kErpSchema =
    "CREATE TABLE accounts(id INTEGER PRIMARY KEY, name TEXT, email TEXT, tier TEXT, "
    "balance INTEGER, notes TEXT);";

// 1-based line of the first line of `text` containing `needle` (0 if none).
int LineOf(const std::string& text, const std::string& needle) {
  std::istringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find(needle) != std::string::npos) return n;
  }
  return 0;
}

// One endpoint of a generated config: its name, its table, and its field -> column renames.
struct Ep {
  std::string name, table;
  std::vector<std::pair<std::string, std::string>> fields;
};

const Ep kCrm{"crm", "customers", {}};
const Ep kBilling{"billing", "clients", {{"name", "full_name"}}};
const Ep kErp{"erp", "accounts", {}};

// Policies and other settings of the `customer` collection.
using Policies = std::function<void(ConfigBuilder::CollectionSpec&)>;

// A config syncing collection `customer` over `eps`, in that order (which is capture order).
ConfigBuilder MakeConfig(const std::vector<Ep>& eps, const Policies& policies = {},
                         int64_t batch_rows = 0) {
  ConfigBuilder config;
  if (batch_rows) config.Engine("batch_rows", batch_rows);
  for (const Ep& e : eps) config.Sqlite(e.name, e.name + ".db");
  ConfigBuilder::CollectionSpec& customer = config.Collection("customer");
  if (policies) policies(customer);
  for (const Ep& e : eps) customer.On(e.name, e.table, e.fields);
  return config;
}

class CliTest : public ::testing::Test, protected SyncFixture {
 protected:
  std::string Db(const std::string& endpoint) const { return File(endpoint + ".db"); }

  // Creates the endpoint files crm.db, billing.db (and erp.db) with their tables.
  void CreateTables(bool erp = false) {
    SqlExec(Db("crm"), kCrmSchema);
    SqlExec(Db("billing"), kBillingSchema);
    if (erp) SqlExec(Db("erp"), kErpSchema);
  }

  // The synced columns of an endpoint's table, one row per line, ordered by id.
  std::string Rows(const std::string& endpoint) const {
    std::string name = endpoint == "billing" ? "full_name" : "name";
    std::string table = endpoint == "billing" ? "clients"
                        : endpoint == "erp"   ? "accounts"
                                              : "customers";
    return SqlQuery(Db(endpoint), "SELECT id, " + name + ", email, tier, balance, notes FROM " +
                                      table + " ORDER BY id");
  }

  static const json& EndpointStatus(const json& status, const std::string& name) {
    static const json kNone = json::object();
    if (!status.contains("endpoints")) return kNone;
    for (const json& ep : status["endpoints"]) {
      if (ep.value("name", "") == name) return ep;
    }
    return kNone;
  }
  // endpoint -> `applied` counter.
  std::map<std::string, int64_t> Applied() {
    std::map<std::string, int64_t> out;
    json s = StatusJson();
    if (!s.contains("endpoints")) return out;
    for (const json& ep : s["endpoints"]) out[ep["name"]] = ep["applied"].get<int64_t>();
    return out;
  }
};

// ---------------------------------------------------------------------------------------------
// 1. init and check

TEST_F(CliTest, InitWritesAConfigThatCheckAcceptsOnceTheTablesExist) {
  Outcome init = Duplex({"init"});
  ASSERT_EQ(init.code, 0) << init;
  std::string written = ReadFile(ConfigPath());
  EXPECT_NE(written.find("crm.db"), std::string::npos);
  EXPECT_NE(written.find("billing.db"), std::string::npos);

  // The endpoint files do not exist yet: unreachable, a runtime failure.
  Outcome missing = Duplex({"check"});
  EXPECT_EQ(missing.code, 1) << missing;
  EXPECT_NE(missing.err.find("crm.db"), std::string::npos) << missing;

  // crm has one column billing lacks: it is left alone, not synced.
  SqlExec(Db("crm"),
          "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, email TEXT, tier TEXT, "
          "balance INTEGER, notes TEXT, last_login TEXT);");
  SqlExec(Db("billing"), kBillingSchema);
  Outcome check = Duplex({"check"});
  ASSERT_EQ(check.code, 0) << check;
  for (const char* field : {"name", "email", "tier", "balance", "notes"}) {
    EXPECT_NE(check.out.find(std::string("synced      ") + field), std::string::npos)
        << field << "\n"
        << check;
  }
  EXPECT_NE(check.out.find("billing.clients.full_name"), std::string::npos) << check;
  EXPECT_NE(check.out.find("left alone  crm.last_login"), std::string::npos) << check;
  EXPECT_NE(check.out.find("not installed"), std::string::npos) << check;
  // check only looks: no state file, no capture installed.
  EXPECT_FALSE(std::filesystem::exists(File("duplex-state.db")));
  EXPECT_EQ(SqlQuery(Db("crm"),
                     "SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_duplex%' "
                     "ESCAPE '\\'"),
            "0\n");

  // init never overwrites silently.
  WriteFile(ConfigPath(), written + "# my edits\n");
  Outcome again = Duplex({"init"});
  EXPECT_EQ(again.code, 2) << again;
  EXPECT_NE(again.err.find("--force"), std::string::npos) << again;
  EXPECT_EQ(ReadFile(ConfigPath()), written + "# my edits\n");
  Outcome forced = Duplex({"init", "--force"});
  EXPECT_EQ(forced.code, 0) << forced;
  EXPECT_EQ(ReadFile(ConfigPath()), written);

  // Out of the box on SQLite: once the applications' tables exist, `run` syncs.
  SqlExec(Db("crm"), "INSERT INTO customers(id, name, balance) VALUES (1, 'Ada', 10)");
  Outcome run = Duplex({"run", "--until-idle"});
  ASSERT_EQ(run.code, 0) << run;
  EXPECT_EQ(SqlQuery(Db("billing"), "SELECT id, full_name, balance FROM clients"), "1|Ada|10\n");
}

// The template names every endpoint type of the registry, with a commented example of each
// that parses once uncommented (its server then simply cannot be reached).
TEST_F(CliTest, InitTemplateShowsEveryEndpointType) {
  Outcome init = Duplex({"init"});
  ASSERT_EQ(init.code, 0) << init;
  const std::string written = ReadFile(ConfigPath());
  EXPECT_EQ(written.find("only endpoint type"), std::string::npos) << written;
  for (const char* type : {"\"sqlite\"", "\"postgres\"", "\"salesforce\""}) {
    EXPECT_NE(written.find(std::string("type = ") + type), std::string::npos) << type;
  }
  // Uncomment the examples: every "# key = value" line of the [endpoints.shop] and
  // [endpoints.org] blocks, with servers that refuse connections at once.
  std::istringstream in(written);
  std::string line, toml;
  bool example = false;
  while (std::getline(in, line)) {
    if (line == "# [endpoints.shop]" || line == "# [endpoints.org]") example = true;
    if (line.empty()) example = false;
    if (example && line.rfind("# ", 0) == 0 && line.find(" = ") != std::string::npos) {
      line = line.substr(2);
    } else if (example && line.rfind("# [", 0) == 0) {
      line = line.substr(2);
    }
    if (line.rfind("dsn = ", 0) == 0) line = "dsn = \"postgresql://duplex@127.0.0.1:1/shop\"";
    if (line.rfind("instance_url = ", 0) == 0) line = "instance_url = \"http://127.0.0.1:1\"";
    toml += line + "\n";
  }
  ASSERT_NE(toml.find("\n[endpoints.shop]\n"), std::string::npos) << toml;
  ASSERT_NE(toml.find("\n[endpoints.org]\n"), std::string::npos) << toml;
  WriteFile(ConfigPath(), toml);
  SqlExec(Db("crm"), kCrmSchema);
  SqlExec(Db("billing"), kBillingSchema);
  setenv("SF_CLIENT_ID", "duplex", 1);
  setenv("SF_CLIENT_SECRET", "secret", 1);
  Outcome check = Duplex({"check"});
  // Unreachable (1), not a config mistake (2): both examples parse.
  EXPECT_EQ(check.code, 1) << toml << check;
  EXPECT_NE(check.out.find("config "), std::string::npos) << check;
  EXPECT_NE(check.err.find("endpoint 'shop'"), std::string::npos) << check;
  EXPECT_NE(check.err.find("endpoint 'org'"), std::string::npos) << check;
}

// ---------------------------------------------------------------------------------------------
// 2. errors: config (2), runtime (1), usage (2)

TEST_F(CliTest, BadConfigsExitTwoNamingFileLineOrTableAndColumn) {
  CreateTables();
  WriteConfig(MakeConfig({kCrm, kBilling}, [](auto& c) { c.Policy("balance", "max"); }));
  const std::string good = config().Toml();
  ASSERT_EQ(Duplex({"check"}).code, 0);

  struct Case {
    std::string what, toml, needle;   // the line holding `needle` must be named
    std::vector<std::string> expect;  // substrings of the message
  };
  std::vector<Case> cases = {
      {"syntax error", good + "[collections.other\n", "[collections.other", {"TOML"}},
      {"unknown key",
       std::string(good).replace(good.find("type = \"sqlite\""), 0, "colour = \"red\"\n"),
       "colour",
       {"unknown key 'colour'", "endpoint 'crm'"}},
      {"unknown policy",
       MakeConfig({kCrm, kBilling}, [](auto& c) { c.Policy("balance", "biggest"); }).Toml(),
       "biggest",
       {"unknown policy 'biggest'", "lww, prefer, max, min, sum, union, merge, manual"}},
      {"prefer an unknown endpoint",
       MakeConfig({kCrm, kBilling}, [](auto& c) { c.Policy("tier", "prefer", "erp"); }).Toml(),
       "erp",
       {"unknown endpoint 'erp'", "crm, billing"}},
      {"collection on an unknown endpoint",
       MakeConfig({kCrm, kBilling}).Toml() + "endpoints.erp = { table = \"accounts\" }\n",
       "endpoints.erp",
       {"unknown endpoint 'erp'"}},
  };

  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    WriteFile(File("bad.toml"), c.toml);
    for (const char* cmd : {"check", "run", "status"}) {
      Outcome o = DuplexRaw({cmd, "--config", File("bad.toml")});
      EXPECT_EQ(o.code, 2) << cmd << "\n" << c.toml << o;
      int line = LineOf(c.toml, c.needle);
      EXPECT_NE(o.err.find("bad.toml:" + std::to_string(line) + ":"), std::string::npos)
          << cmd << ": expected line " << line << "\n"
          << o;
      for (const std::string& e : c.expect) {
        EXPECT_NE(o.err.find(e), std::string::npos) << cmd << ": expected '" << e << "'\n" << o;
      }
    }
  }
  EXPECT_FALSE(std::filesystem::exists(File("state.db"))) << "a bad config created state";

  // Schema errors: the config is fine, the tables are not. They name endpoint, table, column.
  struct SchemaCase {
    std::string what, billing_schema;
    std::vector<std::string> expect;
  };
  std::vector<SchemaCase> schema_cases = {
      {"missing table",
       "CREATE TABLE other(id INTEGER PRIMARY KEY);",
       {"endpoint 'billing'", "table 'clients'", "no such table"}},
      {"key column absent",
       "CREATE TABLE clients(client_id INTEGER PRIMARY KEY, full_name TEXT, email TEXT, "
       "tier TEXT, balance INTEGER, notes TEXT);",
       {"endpoint 'billing'", "table 'clients'", "key field 'id'"}},
      {"type clash",
       "CREATE TABLE clients(id INTEGER PRIMARY KEY, full_name TEXT, email TEXT, tier TEXT, "
       "balance TEXT, notes TEXT);",
       {"type clash on field 'balance'", "INTEGER", "TEXT"}},
      {"renamed column absent",
       "CREATE TABLE clients(id INTEGER PRIMARY KEY, fullname TEXT, email TEXT, tier TEXT, "
       "balance INTEGER, notes TEXT);",
       {"endpoint 'billing'", "table 'clients'", "full_name"}},
  };
  for (const SchemaCase& c : schema_cases) {
    SCOPED_TRACE(c.what);
    std::filesystem::remove(Db("billing"));
    SqlExec(Db("billing"), c.billing_schema);
    for (const char* cmd : {"check", "run"}) {
      Outcome o = Duplex({cmd});
      EXPECT_EQ(o.code, 2) << cmd << "\n" << o;
      EXPECT_NE(o.err.find("duplex.toml:"), std::string::npos) << cmd << "\n" << o;
      for (const std::string& e : c.expect) {
        EXPECT_NE(o.err.find(e), std::string::npos) << cmd << ": expected '" << e << "'\n" << o;
      }
    }
  }
  // The application's file is untouched by a refused run.
  EXPECT_EQ(SqlQuery(Db("billing"),
                     "SELECT count(*) FROM sqlite_master WHERE name LIKE "
                     "'\\_duplex%' ESCAPE '\\'"),
            "0\n");
}

TEST_F(CliTest, MissingConfigExitsTwoMissingEndpointFileExitsOne) {
  for (const char* cmd : {"check", "run", "status", "uninstall"}) {
    Outcome o = DuplexRaw({cmd, "--config", File("nope.toml")});
    EXPECT_EQ(o.code, 2) << cmd << "\n" << o;
    EXPECT_NE(o.err.find("nope.toml"), std::string::npos) << cmd << "\n" << o;
  }
  Outcome list = DuplexRaw({"conflicts", "list", "--config", File("nope.toml")});
  EXPECT_EQ(list.code, 2) << list;

  // A well-formed config whose endpoint file is gone: the endpoint is unreachable (runtime).
  SqlExec(Db("crm"), kCrmSchema);
  WriteConfig(MakeConfig({kCrm, kBilling}));
  for (const char* cmd : {"check", "run"}) {
    Outcome o = Duplex({cmd});
    EXPECT_EQ(o.code, 1) << cmd << "\n" << o;
    EXPECT_NE(o.err.find("billing.db"), std::string::npos) << cmd << "\n" << o;
  }
  Outcome idle = Duplex({"run", "--until-idle"});
  EXPECT_EQ(idle.code, 1) << idle;
  EXPECT_FALSE(std::filesystem::exists(Db("billing"))) << "duplex created an endpoint file";
}

// A config file named by a relative path is named that way in every message: a syntax error,
// a schema error, from every command.
TEST_F(CliTest, ErrorsNameTheConfigFileAsTheUserTypedIt) {
  CreateTables();
  WriteConfig(MakeConfig({kCrm, kBilling}));
  const std::string relative =
      std::filesystem::relative(ConfigPath(), std::filesystem::current_path()).string();
  ASSERT_NE(relative, ConfigPath());
  ASSERT_EQ(DuplexRaw({"check", "--config", relative}).code, 0);
  // The absolute path ends the relative one ("../../tmp/x/duplex.toml"): look past that.
  auto WithoutRelative = [&](std::string text) {
    for (size_t at; (at = text.find(relative)) != std::string::npos;) {
      text.replace(at, relative.size(), "<relative>");
    }
    return text;
  };

  // A schema error: billing's table lacks a mapped column.
  std::filesystem::remove(Db("billing"));
  SqlExec(Db("billing"), "CREATE TABLE clients(id INTEGER PRIMARY KEY, email TEXT)");
  for (const char* cmd : {"check", "run", "status"}) {
    Outcome o = DuplexRaw({cmd, "--config", relative});
    EXPECT_EQ(o.code, 2) << cmd << "\n" << o;
    EXPECT_NE(o.err.find(relative + ":"), std::string::npos) << cmd << "\n" << o;
    EXPECT_EQ(WithoutRelative(o.All()).find(ConfigPath()), std::string::npos) << cmd << "\n" << o;
  }
  // A syntax error.
  WriteFile(ConfigPath(), config().Toml() + "[collections.other\n");
  for (const char* cmd : {"check", "run", "status"}) {
    Outcome o = DuplexRaw({cmd, "--config", relative});
    EXPECT_EQ(o.code, 2) << cmd << "\n" << o;
    EXPECT_NE(o.err.find(relative + ":"), std::string::npos) << cmd << "\n" << o;
    EXPECT_EQ(WithoutRelative(o.All()).find(ConfigPath()), std::string::npos) << cmd << "\n" << o;
  }
}

// `check` goes on past a problem: every endpoint, every table, every field, then a count.
TEST_F(CliTest, CheckListsEveryProblemWithACount) {
  SqlExec(Db("crm"), kCrmSchema + std::string("CREATE TABLE orders(id INTEGER PRIMARY KEY);"));
  // billing: `full_name` missing (mapped), `balance` a type clash; no orders table.
  SqlExec(Db("billing"),
          "CREATE TABLE clients(id INTEGER PRIMARY KEY, email TEXT, tier TEXT, balance TEXT, "
          "notes TEXT);");
  SqlExec(Db("erp"), kErpSchema);
  ConfigBuilder config = MakeConfig({kCrm, kBilling});
  config.Sqlite("erp", "erp.db").Sqlite("gone", "gone.db");
  config.Collection("order").On("crm", "orders").On("billing", "orders");
  config.Collection("account").On("erp", "accounts").On("gone", "accounts");
  WriteConfig(config);
  Outcome o = Duplex({"check"});
  EXPECT_EQ(o.code, 2) << o;
  for (const std::string& e :
       {std::string("endpoint 'gone'"), std::string("gone.db"),
        std::string("endpoint 'billing', table 'clients'"), std::string("full_name"),
        std::string("type clash on field 'balance'"),
        std::string("endpoint 'billing', table 'orders': no such table"),
        std::string("4 problems found")}) {
    EXPECT_NE(o.err.find(e), std::string::npos) << "expected '" << e << "'\n" << o;
  }
  EXPECT_NE(o.out.find("endpoint erp (sqlite"), std::string::npos) << o;
  EXPECT_EQ(o.out.find("endpoint gone (sqlite"), std::string::npos) << o;
  EXPECT_FALSE(std::filesystem::exists(Db("gone"))) << "check created an endpoint file";

  // Only unreachable endpoints: a runtime failure (1), still counted.
  WriteConfig(MakeConfig({kCrm, kErp}).Sqlite("gone", "gone.db"));
  o = Duplex({"check"});
  EXPECT_EQ(o.code, 1) << o;
  EXPECT_NE(o.err.find("endpoint 'gone'"), std::string::npos) << o;
  EXPECT_NE(o.err.find("1 problem found"), std::string::npos) << o;
}

// `check --install` names the endpoint it could not install on (a file held locked).
TEST_F(CliTest, CheckInstallNamesTheEndpointItCouldNotInstallOn) {
  CreateTables();
  WriteConfig(MakeConfig({kCrm, kBilling}));
  auto db = sqlite::Db::Open(Db("billing"), /*create=*/false);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  ASSERT_TRUE(db->Exec("BEGIN EXCLUSIVE").ok());
  Outcome o = Duplex({"check", "--install"});
  ASSERT_TRUE(db->Exec("COMMIT").ok());
  EXPECT_EQ(o.code, 1) << o;
  EXPECT_NE(o.err.find("endpoint 'billing': change capture not installed"), std::string::npos) << o;
  EXPECT_EQ(o.err.find("endpoint 'crm': change capture not installed"), std::string::npos) << o;
  Outcome again = Duplex({"check", "--install"});
  EXPECT_EQ(again.code, 0) << again;
}

TEST_F(CliTest, UsageErrorsExitTwoAndEveryHelpHasAnExample) {
  EXPECT_EQ(DuplexRaw({}).code, 2);
  EXPECT_EQ(DuplexRaw({"--bogus"}).code, 2);
  EXPECT_EQ(DuplexRaw({"frobnicate"}).code, 2);
  EXPECT_EQ(DuplexRaw({"run", "--bogus"}).code, 2);
  EXPECT_EQ(DuplexRaw({"conflicts"}).code, 2);
  EXPECT_EQ(DuplexRaw({"conflicts", "show"}).code, 2);  // id required
  EXPECT_EQ(DuplexRaw({"--log-level", "loud", "status"}).code, 2);
  Outcome both = DuplexRaw({"conflicts", "resolve", "1", "--take", "crm", "--value", "1"});
  EXPECT_EQ(both.code, 2) << both;
  Outcome neither = DuplexRaw({"conflicts", "resolve", "1"});
  EXPECT_EQ(neither.code, 2) << neither;
  Outcome bad_id = DuplexRaw({"conflicts", "show", "abc"});
  EXPECT_EQ(bad_id.code, 2) << bad_id;

  Outcome top = DuplexRaw({"--help"});
  EXPECT_EQ(top.code, 0) << top;
  EXPECT_NE(top.All().find("Exit codes"), std::string::npos) << top;
  std::vector<std::vector<std::string>> subs = {{"init"},
                                                {"check"},
                                                {"run"},
                                                {"status"},
                                                {"uninstall"},
                                                {"conflicts"},
                                                {"conflicts", "list"},
                                                {"conflicts", "show"},
                                                {"conflicts", "resolve"},
                                                {"dead-letters"},
                                                {"dead-letters", "list"},
                                                {"dead-letters", "show"},
                                                {"dead-letters", "retry"},
                                                {"dead-letters", "drop"}};
  for (std::vector<std::string> sub : subs) {
    sub.push_back("--help");
    Outcome o = DuplexRaw(sub);
    EXPECT_EQ(o.code, 0) << sub[0] << "\n" << o;
    EXPECT_NE(o.All().find("Example"), std::string::npos) << sub[0] << " " << sub[1] << "\n" << o;
  }
  Outcome version = DuplexRaw({"--version"});
  EXPECT_EQ(version.code, 0) << version;
  EXPECT_NE(version.All().find("duplex"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// 3. sequential edits, and a long-running `run`

TEST_F(CliTest, P2SequentialEditsFlowBothWaysWithUntilIdle) {
  CreateTables();
  WriteConfig(MakeConfig({kCrm, kBilling}));
  SyncIdle();
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (1, 'Ada', 'ada@x', 'gold', 10, 'n1')");
  SyncIdle();
  EXPECT_EQ(Rows("billing"), "1|Ada|ada@x|gold|10|n1\n");
  SqlExec(Db("billing"), "UPDATE clients SET full_name = 'Ada L', balance = 20 WHERE id = 1");
  SyncIdle();
  EXPECT_EQ(Rows("crm"), "1|Ada L|ada@x|gold|20|n1\n");
  SqlExec(Db("crm"), "UPDATE customers SET balance = 5, notes = NULL WHERE id = 1");
  SqlExec(Db("billing"), "INSERT INTO clients VALUES (2, 'Bob', 'bob@x', 'silver', 7, NULL)");
  SyncIdle();
  EXPECT_EQ(Rows("crm"), "1|Ada L|ada@x|gold|5|NULL\n2|Bob|bob@x|silver|7|NULL\n");
  EXPECT_EQ(Rows("billing"), Rows("crm"));
  // Sequential edits are not conflicts.
  EXPECT_EQ(ConflictsJson(/*all=*/true), json::array());
}

TEST_F(CliTest, BackgroundRunPicksUpChangesAndExitsZeroOnSigterm) {
  CreateTables();
  WriteConfig(MakeConfig({kCrm, kBilling}));
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (1, 'Ada', 'ada@x', 'gold', 10, NULL)");
  std::unique_ptr<Process> run = Background({"run"});

  // The row that existed before duplex ever ran arrives (initial load).
  auto billing_has = [&](const std::string& sql_cond) {
    return SqlQuery(Db("billing"), "SELECT count(*) FROM clients WHERE " + sql_cond) == "1\n";
  };
  ASSERT_TRUE(
      PollUntil([&] { return billing_has("id = 1 AND full_name = 'Ada'"); }, milliseconds(20000)))
      << run->Err();

  // Now a change each way, timed (reported, never asserted).
  for (int i = 0; i < 2; ++i) {
    std::string target = i == 0 ? "crm" : "billing";
    std::string value = "v" + std::to_string(i);
    auto start = Clock::now();
    if (i == 0) {
      SqlExec(Db("billing"), "UPDATE clients SET email = '" + value + "' WHERE id = 1");
    } else {
      SqlExec(Db("crm"), "UPDATE customers SET email = '" + value + "' WHERE id = 1");
    }
    bool arrived = PollUntil(
        [&] {
          return SqlQuery(Db(target), std::string("SELECT email FROM ") +
                                          (i == 0 ? "customers" : "clients") + " WHERE id = 1") ==
                 value + "\n";
        },
        milliseconds(10000));
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    ASSERT_TRUE(arrived) << "change to " << target << " did not arrive within 10s\n" << run->Err();
    std::cout << "[latency] change reached " << target << " after " << ms << " ms\n";
    RecordProperty(target + "_latency_ms", static_cast<int>(ms));
  }
  ASSERT_TRUE(run->Running()) << run->Err();
  run->Signal(SIGTERM);
  EXPECT_EQ(run->Wait(milliseconds(10000)), 0) << run->Err();
  EXPECT_NE(run->Err().find("duplex stopped"), std::string::npos) << run->Err();
  EXPECT_EQ(Rows("crm"), Rows("billing"));

  // SIGINT too, and a restart continues where the last run stopped.
  run = Background({"run"});
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (2, 'Bob', NULL, NULL, NULL, NULL)");
  ASSERT_TRUE(PollUntil([&] { return billing_has("id = 2"); }, milliseconds(10000))) << run->Err();
  run->Signal(SIGINT);
  EXPECT_EQ(run->Wait(milliseconds(10000)), 0) << run->Err();
  EXPECT_EQ(Rows("crm"), Rows("billing"));
}

// ---------------------------------------------------------------------------------------------
// 4. concurrent writers on both sides while duplex runs (P2, P3, P4 converge; P5 no echo)

// One application connection making `ops` random writes on keys 1..50; returns "" or what
// went wrong.
std::string RandomWriter(const std::string& path, const std::string& table,
                         const std::string& name_col, const std::string& tag, uint32_t seed,
                         int ops) {
  Result<sqlite::Db> db = sqlite::Db::Open(path, /*create=*/false);
  if (!db.ok()) return db.status().ToString();
  std::mt19937 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
  const std::vector<std::string> fields = {name_col, "email", "tier", "balance", "notes"};
  const char* tiers[] = {"'bronze'", "'silver'", "'gold'", "NULL"};
  auto value = [&](const std::string& field, int i) -> std::string {
    if (field == "balance") return std::to_string(pick(1000));
    if (field == "tier") return tiers[pick(4)];
    if (field == "notes" && pick(5) == 0) return "NULL";
    return "'" + tag + "-" + field + "-" + std::to_string(i) + "'";
  };
  auto row_values = [&](int key, int i) {
    std::string v = std::to_string(key);
    for (const std::string& f : fields) v += ", " + value(f, i);
    return v;
  };
  const std::string columns = "id, " + name_col + ", email, tier, balance, notes";
  for (int i = 0; i < ops; ++i) {
    int key = 1 + pick(50);
    int r = pick(100);
    std::string sql;
    if (r < 50) {
      const std::string& f = fields[pick(static_cast<int>(fields.size()))];
      sql = "UPDATE " + table + " SET " + f + " = " + value(f, i) +
            " WHERE id = " + std::to_string(key);
    } else if (r < 60) {  // one transaction, several rows and fields
      int other = 1 + pick(50);
      // Sequenced: the same seed gives the same values whatever the compiler's evaluation order.
      std::string balance = value("balance", i);
      std::string email = value("email", i);
      std::string name = value(name_col, i);
      sql = "BEGIN; UPDATE " + table + " SET balance = " + balance + ", email = " + email +
            " WHERE id = " + std::to_string(key) + "; UPDATE " + table + " SET " + name_col +
            " = " + name + " WHERE id = " + std::to_string(other) + "; COMMIT;";
    } else if (r < 80) {
      sql = "INSERT OR IGNORE INTO " + table + "(" + columns + ") VALUES (" + row_values(key, i) +
            ")";
    } else if (r < 85) {  // upsert
      sql = "INSERT INTO " + table + "(" + columns + ") VALUES (" + row_values(key, i) +
            ") ON CONFLICT(id) DO UPDATE SET tier = excluded.tier, notes = excluded.notes";
    } else {
      sql = "DELETE FROM " + table + " WHERE id = " + std::to_string(key);
    }
    Status st;
    for (int attempt = 0; attempt < 20; ++attempt) {
      st = db->Exec(sql);
      if (st.ok() || !st.IsRetriable()) break;
      (void)db->Exec("ROLLBACK");
      std::this_thread::sleep_for(milliseconds(5));
    }
    if (!st.ok()) return tag + " op " + std::to_string(i) + " (" + sql + "): " + st.ToString();
    std::this_thread::sleep_for(std::chrono::microseconds(pick(1500)));
  }
  return "";
}

TEST_F(CliTest, P2P5ConcurrentWritersOnBothSidesConvergeWithoutEchoWrites) {
  uint32_t seed = 20240611;
  if (const char* s = std::getenv("DUPLEX_E2E_SEED")) seed = static_cast<uint32_t>(std::stoul(s));
  SCOPED_TRACE("seed " + std::to_string(seed) +
               " (rerun with DUPLEX_E2E_SEED=" + std::to_string(seed) + ")");
  CreateTables();
  WriteConfig(MakeConfig({kCrm, kBilling}, [](auto& c) {
    c.Policy("balance", "max").Policy("tier", "prefer", "billing").Policy("notes", "min");
  }));
  // Rows from before duplex ran, overlapping on 15..20 with different values.
  SqlExec(Db("crm"),
          "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20) "
          "INSERT INTO customers SELECT i, 'crm-' || i, i || '@crm', 'gold', i, NULL FROM c");
  SqlExec(Db("billing"),
          "WITH RECURSIVE c(i) AS (SELECT 15 UNION ALL SELECT i + 1 FROM c WHERE i < 30) "
          "INSERT INTO clients SELECT i, 'bil-' || i, i || '@bil', 'silver', 100 + i, 'b' FROM "
          "c");

  std::unique_ptr<Process> run = Background({"run"});
  std::string errors[2];
  {
    std::thread crm(
        [&] { errors[0] = RandomWriter(Db("crm"), "customers", "name", "crm", seed, 300); });
    std::thread billing([&] {
      errors[1] = RandomWriter(Db("billing"), "clients", "full_name", "bil", seed + 1, 300);
    });
    crm.join();
    billing.join();
  }
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");

  // Converged: same rows on both sides, and nothing waiting.
  EXPECT_TRUE(WaitConverged("customer", milliseconds(30000), /*idle=*/true))
      << run->Err().substr(0, 4000);
  ASSERT_TRUE(run->Running()) << run->Err();
  run->Signal(SIGTERM);
  ASSERT_EQ(run->Wait(milliseconds(20000)), 0) << run->Err();
  EXPECT_EQ(Rows("crm"), Rows("billing")) << FirstDifference(Rows("crm"), Rows("billing"));
  EXPECT_NE(Rows("crm"), "");

  // P5: duplex's own writes do not come back as changes; more runs write nothing.
  std::map<std::string, int64_t> applied = Applied();
  for (int i = 0; i < 2; ++i) {
    SyncIdle();
    EXPECT_EQ(Applied(), applied) << "run " << i + 1 << " after convergence applied writes";
  }
  EXPECT_EQ(Rows("crm"), Rows("billing")) << FirstDifference(Rows("crm"), Rows("billing"));
  json final_status = StatusJson();
  EXPECT_TRUE(NoBacklog(final_status)) << final_status.dump(2);
  for (const json& ep : final_status["endpoints"]) {
    EXPECT_EQ(ep["dead_letters"], 0) << ep.dump();
    EXPECT_TRUE(ep["last_error"].is_null()) << ep.dump();
  }
  // The state store agrees with the tables on how many records live.
  int64_t rows = std::stoll(SqlQuery(Db("crm"), "SELECT count(*) FROM customers"));
  EXPECT_EQ(final_status["collections"][0]["records"], rows) << final_status.dump(2);
}

// Minimal, deterministic cases the random writers above ran into. In each, duplex plans a
// write to billing, then billing's own concurrent edit is captured and wins; the planned write
// is still applied because billing's value happens to equal what it expects (compare-and-set
// on values cannot see that billing changed in between).

TEST_F(CliTest, P2StaleWriteDoesNotOverwriteATargetEditThatChangedBack) {
  CreateTables();
  WriteConfig(MakeConfig({kCrm, kBilling}));
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (1, 'a', 'a@', 'silver', 1, NULL)");
  SyncIdle();
  SqlExec(Db("crm"), "UPDATE customers SET tier = 'gold' WHERE id = 1");
  std::this_thread::sleep_for(milliseconds(20));  // billing's edits are later: they win (lww)
  SqlExec(Db("billing"), "UPDATE clients SET tier = 'bronze' WHERE id = 1");
  SqlExec(Db("billing"), "UPDATE clients SET tier = 'silver' WHERE id = 1");
  SyncIdle();
  SyncIdle();
  EXPECT_EQ(Rows("crm"), "1|a|a@|silver|1|NULL\n");
  EXPECT_EQ(Rows("billing"), Rows("crm")) << "endpoints diverged";
}

TEST_F(CliTest, P2ConcurrentInsertsWithEqualValuesConverge) {
  CreateTables();
  WriteConfig(MakeConfig({kCrm, kBilling}));
  SyncIdle();
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (4, 'c', 'c@', 'bronze', 1, NULL)");
  SqlExec(Db("crm"), "UPDATE customers SET tier = NULL, notes = 'cn' WHERE id = 4");
  std::this_thread::sleep_for(milliseconds(20));  // billing's insert is later: it wins (lww)
  SqlExec(Db("billing"), "INSERT INTO clients VALUES (4, 'b', 'b@', 'bronze', 2, NULL)");
  SyncIdle();
  SyncIdle();
  EXPECT_EQ(Rows("crm"), "4|b|b@|bronze|2|NULL\n");
  EXPECT_EQ(Rows("billing"), Rows("crm")) << "endpoints diverged";
}

TEST_F(CliTest, P2ConcurrentInsertThenDeleteDoesNotResurrectTheRow) {
  CreateTables();
  WriteConfig(MakeConfig({kCrm, kBilling}));
  SyncIdle();
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (2, 'c', 'c@', NULL, 1, NULL)");
  SqlExec(Db("billing"), "INSERT INTO clients VALUES (2, 'b', 'b@', 'silver', 2, 'n')");
  SqlExec(Db("billing"), "DELETE FROM clients WHERE id = 2");
  SyncIdle();
  SyncIdle();
  // billing's delete wins over crm's concurrent insert (on_delete_conflict = "delete").
  EXPECT_EQ(Rows("crm"), "");
  EXPECT_EQ(Rows("billing"), Rows("crm")) << "endpoints diverged";
}

// ---------------------------------------------------------------------------------------------
// 5. same-field conflicts by policy, independent of capture order (P4)

TEST_F(CliTest, P4SameFieldConflictsResolveTheSameInEitherEndpointOrder) {
  const Policies policies = [](ConfigBuilder::CollectionSpec& c) {
    c.DefaultPolicy("lww")
        .Policy("tier", "prefer", "billing")
        .Policy("balance", "max")
        .Policy("email", "min");
  };
  std::string rows[2];
  std::string conflicts[2];
  for (int order = 0; order < 2; ++order) {
    SCOPED_TRACE(order == 0 ? "crm first" : "billing first");
    for (const char* f : {"crm.db", "billing.db", "state.db", "state.db-wal", "state.db-shm",
                          "crm.db-wal", "crm.db-shm", "billing.db-wal", "billing.db-shm"}) {
      std::filesystem::remove(File(f));
    }
    CreateTables();
    WriteConfig(order == 0 ? MakeConfig({kCrm, kBilling}, policies)
                           : MakeConfig({kBilling, kCrm}, policies));
    SqlExec(Db("crm"),
            "INSERT INTO customers VALUES (1, 'Ada', 'm@x', 'gold', 50, 'n'), "
            "(2, 'Bob', 'b@x', 'gold', 50, 'n')");
    SyncIdle();
    ASSERT_EQ(Rows("billing"), Rows("crm"));
    // Both sides change the same fields of row 1 since the last sync; billing first, crm later.
    SqlExec(Db("billing"),
            "UPDATE clients SET full_name = 'Ada (billing)', tier = 'silver', balance = 90, "
            "email = 'z@billing' WHERE id = 1");
    SqlExec(Db("billing"), "UPDATE clients SET balance = 10 WHERE id = 2");
    std::this_thread::sleep_for(milliseconds(20));  // a later commit time for crm's edits
    SqlExec(Db("crm"),
            "UPDATE customers SET name = 'Ada (crm)', tier = 'platinum', balance = 70, "
            "email = 'a@crm' WHERE id = 1");
    SqlExec(Db("crm"), "UPDATE customers SET balance = 20 WHERE id = 2");
    SyncIdle();
    EXPECT_EQ(Rows("crm"), Rows("billing"));
    EXPECT_EQ(Rows("crm"),
              "1|Ada (crm)|a@crm|silver|90|n\n"  // lww: crm later; prefer billing; max; min
              "2|Bob|b@x|gold|20|n\n");
    rows[order] = Rows("crm");

    json all = ConflictsJson(/*all=*/true);
    ASSERT_EQ(all.size(), 5u) << all.dump(2);
    std::set<std::string> summary;
    for (const json& c : all) {
      for (const char* k :
           {"id", "collection", "key", "field", "policy", "base", "values", "status"}) {
        EXPECT_TRUE(c.contains(k)) << k << " missing in " << c.dump();
      }
      EXPECT_EQ(c["collection"], "customer");
      EXPECT_TRUE(c["values"].contains("crm") && c["values"].contains("billing")) << c.dump();
      EXPECT_TRUE(c["id"].is_number_integer()) << c.dump();
      summary.insert(c["key"].dump() + " " + c["field"].get<std::string>() + " " +
                     c["policy"].get<std::string>() + " winner=" +
                     c.value("winner", json()).dump() + " " + c["status"].get<std::string>());
    }
    std::string text;
    for (const std::string& s : summary) text += s + "\n";
    conflicts[order] = text;
    // Resolved by policy: none is open.
    EXPECT_EQ(ConflictsJson(/*all=*/false), json::array());
  }
  EXPECT_EQ(rows[0], rows[1]);
  EXPECT_EQ(conflicts[0], conflicts[1]);
  std::cout << conflicts[0];
}

// ---------------------------------------------------------------------------------------------
// 6. manual conflicts through the CLI

TEST_F(CliTest, ManualConflictParksUntilResolvedThroughTheCli) {
  CreateTables();
  WriteConfig(MakeConfig({kCrm, kBilling}, [](auto& c) { c.Policy("notes", "manual"); }));
  SqlExec(Db("crm"),
          "INSERT INTO customers VALUES (1, 'Ada', 'ada@x', 'gold', 10, 'base'), "
          "(2, 'Bob', 'bob@x', 'gold', 10, 'base2')");
  SyncIdle();
  SqlExec(Db("crm"), "UPDATE customers SET notes = 'crm says' WHERE id = 1");
  SqlExec(Db("billing"),
          "UPDATE clients SET notes = 'billing says', email = 'ada@billing' WHERE id = 1");
  SyncIdle();
  // Parked: each side keeps its own value; the other field flowed.
  EXPECT_EQ(Rows("crm"), "1|Ada|ada@billing|gold|10|crm says\n2|Bob|bob@x|gold|10|base2\n");
  EXPECT_EQ(Rows("billing"), "1|Ada|ada@billing|gold|10|billing says\n2|Bob|bob@x|gold|10|base2\n");
  // Later edits of other fields still flow while the conflict is open.
  SqlExec(Db("crm"), "UPDATE customers SET balance = 11 WHERE id = 1");
  SyncIdle();
  EXPECT_EQ(SqlQuery(Db("billing"), "SELECT balance, notes FROM clients WHERE id = 1"),
            "11|billing says\n");

  json open = ConflictsJson(/*all=*/false);
  ASSERT_EQ(open.size(), 1u) << open.dump(2);
  const json& c = open[0];
  EXPECT_EQ(c["status"], "open");
  EXPECT_EQ(c["field"], "notes");
  EXPECT_EQ(c["policy"], "manual");
  EXPECT_EQ(c["base"], "base");
  EXPECT_EQ(c["values"]["crm"]["value"], "crm says") << c.dump();
  EXPECT_EQ(c["values"]["billing"]["value"], "billing says") << c.dump();
  const std::string id = std::to_string(c["id"].get<int64_t>());
  json status = StatusJson();
  EXPECT_EQ(status["collections"][0]["open_conflicts"], 1) << status.dump(2);

  Outcome list = Duplex({"conflicts", "list"});
  EXPECT_EQ(list.code, 0) << list;
  EXPECT_NE(list.out.find("billing says"), std::string::npos) << list;
  EXPECT_NE(list.out.find("crm says"), std::string::npos) << list;
  EXPECT_NE(list.out.find("open"), std::string::npos) << list;
  Outcome show = Duplex({"conflicts", "show", id});
  ASSERT_EQ(show.code, 0) << show;
  EXPECT_NE(show.out.find("conflict " + id), std::string::npos) << show;
  EXPECT_NE(show.out.find("crm says"), std::string::npos) << show;
  EXPECT_NE(show.out.find("billing says"), std::string::npos) << show;
  EXPECT_NE(show.out.find("open"), std::string::npos) << show;
  Outcome show_json = Duplex({"conflicts", "show", id, "--json"});
  EXPECT_EQ(show_json.code, 0) << show_json;
  EXPECT_EQ(json::parse(show_json.out, nullptr, false)["id"], c["id"]) << show_json;

  Outcome unknown = Duplex({"conflicts", "resolve", "999", "--take", "billing"});
  EXPECT_EQ(unknown.code, 2) << unknown;
  Outcome show_unknown = Duplex({"conflicts", "show", "999"});
  EXPECT_EQ(show_unknown.code, 2) << show_unknown;
  Outcome bad_side = Duplex({"conflicts", "resolve", id, "--take", "erp"});
  EXPECT_EQ(bad_side.code, 2) << bad_side;
  EXPECT_NE(bad_side.err.find("crm"), std::string::npos) << bad_side;

  Outcome take = Duplex({"conflicts", "resolve", id, "--take", "billing"});
  ASSERT_EQ(take.code, 0) << take;
  SyncIdle();
  EXPECT_EQ(Rows("crm"), "1|Ada|ada@billing|gold|11|billing says\n2|Bob|bob@x|gold|10|base2\n");
  EXPECT_EQ(Rows("billing"), Rows("crm"));
  EXPECT_EQ(ConflictsJson(/*all=*/false), json::array());
  Outcome closed = Duplex({"conflicts", "resolve", id, "--take", "crm"});
  EXPECT_EQ(closed.code, 2) << closed;
  EXPECT_NE(closed.err.find("not open"), std::string::npos) << closed;

  // A second conflict, resolved with an explicit JSON value.
  SqlExec(Db("crm"), "UPDATE customers SET notes = 'c2' WHERE id = 2");
  SqlExec(Db("billing"), "UPDATE clients SET notes = 'b2' WHERE id = 2");
  SyncIdle();
  open = ConflictsJson(/*all=*/false);
  ASSERT_EQ(open.size(), 1u) << open.dump(2);
  const std::string id2 = std::to_string(open[0]["id"].get<int64_t>());
  EXPECT_NE(id2, id);
  Outcome notjson = Duplex({"conflicts", "resolve", id2, "--value", "notjson"});
  EXPECT_EQ(notjson.code, 2) << notjson;
  EXPECT_NE(notjson.err.find("JSON"), std::string::npos) << notjson;
  EXPECT_EQ(ConflictsJson(/*all=*/false).size(), 1u) << "a refused resolve changed the conflict";
  Outcome value = Duplex({"conflicts", "resolve", id2, "--value", "\"agreed\""});
  ASSERT_EQ(value.code, 0) << value;
  SyncIdle();
  EXPECT_EQ(SqlQuery(Db("crm"), "SELECT notes FROM customers WHERE id = 2"), "agreed\n");
  EXPECT_EQ(Rows("billing"), Rows("crm"));

  json log = ConflictsJson(/*all=*/true);
  ASSERT_EQ(log.size(), 2u) << log.dump(2);
  for (const json& e : log) EXPECT_NE(e["status"], "open") << e.dump();
  // Nothing more to do afterwards.
  std::map<std::string, int64_t> applied = Applied();
  SyncIdle();
  EXPECT_EQ(Applied(), applied);
}

// ---------------------------------------------------------------------------------------------
// 7. crash safety: kill -9 while a large backlog syncs (P6)

TEST_F(CliTest, P6KillDuringLargeBacklogLosesNothing) {
  uint32_t seed = 6061;
  if (const char* s = std::getenv("DUPLEX_E2E_SEED")) seed = static_cast<uint32_t>(std::stoul(s));
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937 rng(seed);
  CreateTables();
  // Smaller batches than the default: more commits to be killed between.
  WriteConfig(MakeConfig({kCrm, kBilling}, {}, /*batch_rows=*/2000));
  SqlExec(Db("billing"),
          "INSERT INTO clients VALUES (1000000, 'billing-only', NULL, NULL, 1, "
          "NULL)");
  SyncIdle();  // installs capture: what follows is a changelog backlog

  constexpr int kBig = 40000, kSmall = 5000, kUpdates = 1500, kDeletes = 500;
  std::map<int64_t, int64_t> expected;  // id -> balance
  SqlExec(Db("crm"),
          "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < " +
              std::to_string(kBig) +
              ") INSERT INTO customers SELECT i, 'name-' || i, 'e' || i || '@x.test', "
              "CASE i % 3 WHEN 0 THEN 'gold' WHEN 1 THEN 'silver' ELSE NULL END, i * 7 % 1000, "
              "CASE WHEN i % 5 = 0 THEN 'note ' || i END FROM c");
  for (int64_t i = 1; i <= kBig; ++i) expected[i] = i * 7 % 1000;
  {
    Result<sqlite::Db> db = sqlite::Db::Open(Db("crm"), false);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    Result<sqlite::Stmt> ins = db->Prepare(
        "INSERT INTO customers VALUES (?1, 'name-' || ?1, 'e' || ?1 || '@x.test', 'gold', ?2, "
        "NULL)");
    ASSERT_TRUE(ins.ok());
    for (int64_t i = kBig + 1; i <= kBig + kSmall; ++i) {  // one transaction each
      ins->Reset().Bind(1, i).Bind(2, i % 1000);
      ASSERT_TRUE(ins->Run().ok());
      expected[i] = i % 1000;
    }
    Result<sqlite::Stmt> upd =
        db->Prepare("UPDATE customers SET balance = balance + 1000 WHERE id = ?1");
    ASSERT_TRUE(upd.ok());
    for (int n = 0; n < kUpdates; ++n) {
      int64_t id = 1 + rng() % (kBig + kSmall);
      upd->Reset().Bind(1, id);
      ASSERT_TRUE(upd->Run().ok());
      expected[id] += 1000;
    }
    Result<sqlite::Stmt> del = db->Prepare("DELETE FROM customers WHERE id = ?1");
    ASSERT_TRUE(del.ok());
    for (int n = 0; n < kDeletes; ++n) {
      int64_t id = 1 + rng() % (kBig + kSmall);
      del->Reset().Bind(1, id);
      ASSERT_TRUE(del->Run().ok());
      expected.erase(id);
    }
  }
  expected[1000000] = 1;
  int64_t sum_id = 0, sum_balance = 0;
  for (const auto& [id, balance] : expected) {
    sum_id += id;
    sum_balance += balance;
  }
  const std::string want = std::to_string(expected.size()) + "|" + std::to_string(sum_id) + "|" +
                           std::to_string(sum_balance) + "\n";
  // The source holds exactly what was written (billing's row arrived in the first sync).
  ASSERT_EQ(SqlQuery(Db("crm"), "SELECT count(*), sum(id), sum(balance) FROM customers"), want);

  // Start, kill -9 at seeded moments, restart. The first kills come early (install, the first
  // capture); the later ones once rows reach billing, a seeded time after, so that they land
  // among capture, resolve and apply commits.
  auto billing_count = [&] {
    return std::stoll(SqlQuery(Db("billing"), "SELECT count(*) FROM clients"));
  };
  const int kEarlyDelays[] = {50, 200, 400};
  std::string kills;
  for (int k = 0; k < 5; ++k) {
    std::unique_ptr<Process> run = Background({"run"});
    int delay = 0;
    if (k < 2) {
      delay = kEarlyDelays[rng() % 3];
    } else {
      int64_t before = billing_count();
      ASSERT_TRUE(PollUntil([&] { return billing_count() > before; }, milliseconds(30000)))
          << "no progress after a restart\n"
          << run->Err();
      delay = static_cast<int>(rng() % 1500);
      kills += "(after progress) ";
    }
    kills += std::to_string(delay) + "ms, ";
    std::this_thread::sleep_for(milliseconds(delay));
    ASSERT_TRUE(run->Running()) << "run ended before the kill\n" << run->Err();
    run->Signal(SIGKILL);
    EXPECT_EQ(run->Wait(milliseconds(10000)), 128 + SIGKILL);
    std::cout << "[p6] kill " << k + 1 << " after " << delay << " ms; billing has "
              << billing_count() << " rows\n";
  }
  SCOPED_TRACE("kills after " + kills);
  Outcome last = Duplex({"run", "--until-idle"}, milliseconds(150000));
  ASSERT_EQ(last.code, 0) << last;

  const std::string checksum = "SELECT count(*), sum(id), sum(balance) FROM ";
  EXPECT_EQ(SqlQuery(Db("crm"), checksum + "customers"), want);
  EXPECT_EQ(SqlQuery(Db("billing"), checksum + "clients"), want);
  EXPECT_EQ(SqlQuery(Db("billing"),
                     "SELECT count(*) FROM clients WHERE full_name IS NOT "
                     "'name-' || id AND id != 1000000"),
            "0\n");
  std::string crm_rows = Rows("crm"), billing_rows = Rows("billing");
  EXPECT_TRUE(crm_rows == billing_rows) << FirstDifference(crm_rows, billing_rows);
  json status = StatusJson();
  EXPECT_TRUE(NoBacklog(status)) << status.dump(2);
  EXPECT_EQ(status["collections"][0]["records"], static_cast<int64_t>(expected.size()))
      << status.dump(2);
  for (const json& ep : status["endpoints"]) EXPECT_EQ(ep["dead_letters"], 0) << ep.dump();
  EXPECT_EQ(ConflictsJson(/*all=*/true), json::array());
}

// ---------------------------------------------------------------------------------------------
// 8. deletes, and three endpoints

TEST_F(CliTest, DeletesPropagateBothWays) {
  CreateTables();
  WriteConfig(MakeConfig({kCrm, kBilling}));
  SqlExec(Db("crm"),
          "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 6) "
          "INSERT INTO customers SELECT i, 'n' || i, NULL, NULL, i, NULL FROM c");
  SyncIdle();
  ASSERT_EQ(Rows("billing"), Rows("crm"));
  SqlExec(Db("crm"), "DELETE FROM customers WHERE id IN (2, 3)");
  SqlExec(Db("billing"), "DELETE FROM clients WHERE id = 5");
  SyncIdle();
  EXPECT_EQ(SqlQuery(Db("crm"), "SELECT group_concat(id) FROM customers"), "1,4,6\n");
  EXPECT_EQ(Rows("billing"), Rows("crm"));
  // Deleting on both sides at once, and re-inserting a deleted key.
  SqlExec(Db("crm"), "DELETE FROM customers WHERE id = 6");
  SqlExec(Db("billing"), "DELETE FROM clients WHERE id = 6");
  SqlExec(Db("billing"), "INSERT INTO clients VALUES (2, 'again', NULL, NULL, 2, NULL)");
  SyncIdle();
  EXPECT_EQ(Rows("crm"),
            "1|n1|NULL|NULL|1|NULL\n2|again|NULL|NULL|2|NULL\n4|n4|NULL|NULL|4|NULL\n");
  EXPECT_EQ(Rows("billing"), Rows("crm"));
  json status = StatusJson();
  EXPECT_EQ(status["collections"][0]["records"], 3) << status.dump(2);
  EXPECT_EQ(status["collections"][0]["tombstones"], 3) << status.dump(2);
}

TEST_F(CliTest, ThreeEndpointsConvergeAfterWritesOnAllThree) {
  CreateTables(/*erp=*/true);
  WriteConfig(MakeConfig({kCrm, kBilling, kErp}, [](auto& c) { c.Policy("balance", "max"); }));
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (1, 'a', NULL, NULL, 1, NULL)");
  SqlExec(Db("billing"), "INSERT INTO clients VALUES (2, 'b', NULL, NULL, 2, NULL)");
  SqlExec(Db("erp"), "INSERT INTO accounts VALUES (3, 'c', NULL, NULL, 3, NULL)");
  SyncIdle();
  EXPECT_EQ(Rows("crm"), "1|a|NULL|NULL|1|NULL\n2|b|NULL|NULL|2|NULL\n3|c|NULL|NULL|3|NULL\n");
  EXPECT_EQ(Rows("billing"), Rows("crm"));
  EXPECT_EQ(Rows("erp"), Rows("crm"));

  SqlExec(Db("crm"), "UPDATE customers SET email = 'crm@' WHERE id = 3");
  SqlExec(Db("billing"), "UPDATE clients SET tier = 'gold' WHERE id = 3");
  SqlExec(Db("erp"), "UPDATE accounts SET notes = 'erp' WHERE id = 3");
  SqlExec(Db("crm"), "UPDATE customers SET balance = 5 WHERE id = 1");
  SqlExec(Db("billing"), "UPDATE clients SET balance = 9 WHERE id = 1");
  SqlExec(Db("erp"), "UPDATE accounts SET balance = 7 WHERE id = 1");
  SqlExec(Db("erp"), "DELETE FROM accounts WHERE id = 2");
  SqlExec(Db("erp"), "INSERT INTO accounts VALUES (4, 'd', NULL, NULL, 4, NULL)");
  SyncIdle();
  EXPECT_EQ(Rows("crm"), "1|a|NULL|NULL|9|NULL\n3|c|crm@|gold|3|erp\n4|d|NULL|NULL|4|NULL\n");
  EXPECT_EQ(Rows("billing"), Rows("crm"));
  EXPECT_EQ(Rows("erp"), Rows("crm"));
}

TEST_F(CliTest, P2ConcurrentWritersOnThreeEndpointsConverge) {
  CreateTables(/*erp=*/true);
  WriteConfig(MakeConfig({kCrm, kBilling, kErp}, [](auto& c) { c.Policy("balance", "max"); }));
  SqlExec(Db("crm"),
          "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 30) "
          "INSERT INTO customers SELECT i, 'crm-' || i, NULL, 'gold', i, NULL FROM c");
  // Concurrent writers on all three endpoints at once, while duplex runs.
  SCOPED_TRACE("writer seeds 801 (crm), 802 (billing), 803 (erp)");
  std::unique_ptr<Process> run = Background({"run"});
  std::string errors[3];
  {
    std::vector<std::thread> writers;
    writers.emplace_back(
        [&] { errors[0] = RandomWriter(Db("crm"), "customers", "name", "crm", 801, 100); });
    writers.emplace_back(
        [&] { errors[1] = RandomWriter(Db("billing"), "clients", "full_name", "bil", 802, 100); });
    writers.emplace_back(
        [&] { errors[2] = RandomWriter(Db("erp"), "accounts", "name", "erp", 803, 100); });
    for (std::thread& t : writers) t.join();
  }
  for (const std::string& e : errors) EXPECT_EQ(e, "");
  EXPECT_TRUE(WaitConverged("customer", milliseconds(30000), /*idle=*/true));
  run->Signal(SIGTERM);
  EXPECT_EQ(run->Wait(milliseconds(20000)), 0) << run->Err();
  SyncIdle();
  EXPECT_EQ(Rows("billing"), Rows("crm")) << FirstDifference(Rows("crm"), Rows("billing"));
  EXPECT_EQ(Rows("erp"), Rows("crm")) << FirstDifference(Rows("crm"), Rows("erp"));
}

// ---------------------------------------------------------------------------------------------
// 9. status before the first run; uninstall

TEST_F(CliTest, StatusBeforeFirstRunShowsNothingInstalledAndCreatesNoState) {
  CreateTables();
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (1, 'a', NULL, NULL, 1, NULL)");
  WriteConfig(MakeConfig({kCrm, kBilling}));
  json status = StatusJson();
  ASSERT_TRUE(status.contains("endpoints")) << status.dump(2);
  ASSERT_EQ(status["endpoints"].size(), 2u);
  for (const json& ep : status["endpoints"]) {
    EXPECT_EQ(ep["position"], "0") << ep.dump();
    EXPECT_EQ(ep["apply_backlog"], 0) << ep.dump();
    EXPECT_EQ(ep["captured"], 0) << ep.dump();
    EXPECT_EQ(ep["applied"], 0) << ep.dump();
    EXPECT_EQ(ep["dead_letters"], 0) << ep.dump();
    EXPECT_TRUE(ep["last_error"].is_null()) << ep.dump();
  }
  EXPECT_EQ(status["journal_backlog"], 0);
  EXPECT_EQ(status["collections"][0]["records"], 0);
  Outcome text = Duplex({"status"});
  EXPECT_EQ(text.code, 0) << text;
  EXPECT_NE(text.out.find("crm"), std::string::npos) << text;
  EXPECT_NE(text.out.find("journal backlog: 0"), std::string::npos) << text;
  Outcome check = Duplex({"check"});
  EXPECT_EQ(check.code, 0) << check;
  EXPECT_NE(check.out.find("change capture: not installed"), std::string::npos) << check;
  EXPECT_FALSE(std::filesystem::exists(File("state.db"))) << "status created the state file";
  EXPECT_EQ(SqlQuery(Db("crm"),
                     "SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_duplex%' "
                     "ESCAPE '\\'"),
            "0\n");
  // And the row from before the first run is still synced by it.
  SyncIdle();
  EXPECT_EQ(Rows("billing"), "1|a|NULL|NULL|1|NULL\n");
}

TEST_F(CliTest, UninstallRemovesTriggersAndTablesAndTheApplicationStillWrites) {
  CreateTables();
  WriteConfig(MakeConfig({kCrm, kBilling}));
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (1, 'a', NULL, NULL, 1, NULL)");
  SyncIdle();
  const std::string objects =
      "SELECT type, name FROM sqlite_master WHERE name LIKE '\\_duplex%' ESCAPE '\\' "
      "ORDER BY name";
  for (const char* ep : {"crm", "billing"}) {
    std::string o = SqlQuery(Db(ep), objects);
    EXPECT_NE(o.find("trigger|"), std::string::npos) << ep << ": " << o;
    EXPECT_NE(o.find("table|_duplex_changelog"), std::string::npos) << ep << ": " << o;
  }
  Outcome installed = Duplex({"check"});
  EXPECT_NE(installed.out.find("change capture: installed"), std::string::npos) << installed;

  // One endpoint only.
  Outcome one = Duplex({"uninstall", "--endpoint", "crm"});
  ASSERT_EQ(one.code, 0) << one;
  EXPECT_EQ(SqlQuery(Db("crm"), objects), "");
  EXPECT_NE(SqlQuery(Db("billing"), objects), "");

  Outcome all = Duplex({"uninstall"});
  ASSERT_EQ(all.code, 0) << all;
  for (const char* ep : {"crm", "billing"}) EXPECT_EQ(SqlQuery(Db(ep), objects), "") << ep;
  Outcome check = Duplex({"check"});
  EXPECT_EQ(check.code, 0) << check;
  EXPECT_NE(check.out.find("not installed"), std::string::npos) << check;
  // Again: nothing left to remove is not an error.
  EXPECT_EQ(Duplex({"uninstall"}).code, 0);

  // The applications write as before.
  SqlExec(Db("crm"),
          "INSERT INTO customers VALUES (2, 'b', NULL, NULL, 2, NULL); "
          "UPDATE customers SET name = 'aa' WHERE id = 1; "
          "DELETE FROM customers WHERE id = 2;");
  SqlExec(Db("billing"),
          "INSERT INTO clients VALUES (7, 'x', NULL, NULL, 7, NULL); "
          "UPDATE clients SET balance = 70 WHERE id = 7;");
  EXPECT_EQ(Rows("crm"), "1|aa|NULL|NULL|1|NULL\n");
  EXPECT_EQ(Rows("billing"), "1|a|NULL|NULL|1|NULL\n7|x|NULL|NULL|70|NULL\n");
  for (const char* ep : {"crm", "billing"}) EXPECT_EQ(SqlQuery(Db(ep), objects), "") << ep;
}

// ---------------------------------------------------------------------------------------------
// 10. a row the target rejects: dead letter, exit 3, the rest flows

TEST_F(CliTest, RejectedRowIsADeadLetterAndUntilIdleExitsThree) {
  SqlExec(Db("crm"), kCrmSchema);
  SqlExec(Db("billing"),
          "CREATE TABLE clients(id INTEGER PRIMARY KEY, full_name TEXT, email TEXT, tier TEXT, "
          "balance INTEGER CHECK (balance < 1000), notes TEXT);");
  WriteConfig(MakeConfig({kCrm, kBilling}));
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (1, 'ok', NULL, NULL, 5, NULL)");
  SyncIdle();
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (2, 'too rich', NULL, NULL, 5000, NULL)");
  Outcome o = Duplex({"run", "--until-idle"});
  EXPECT_EQ(o.code, 3) << o;
  EXPECT_NE(o.err.find("CHECK constraint"), std::string::npos) << o;
  json status = StatusJson();
  EXPECT_EQ(EndpointStatus(status, "billing")["dead_letters"], 1) << status.dump(2);
  EXPECT_EQ(EndpointStatus(status, "crm")["dead_letters"], 0) << status.dump(2);
  EXPECT_EQ(Rows("billing"), "1|ok|NULL|NULL|5|NULL\n");

  // Later rows still flow, both ways; the parked one stays parked (exit 3 every time).
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (3, 'later', NULL, NULL, 7, NULL)");
  o = Duplex({"run", "--until-idle"});
  EXPECT_EQ(o.code, 3) << o;
  SqlExec(Db("billing"), "UPDATE clients SET email = 'b@' WHERE id = 1");
  o = Duplex({"run", "--until-idle"});
  EXPECT_EQ(o.code, 3) << o;
  EXPECT_EQ(Rows("billing"), "1|ok|b@|NULL|5|NULL\n3|later|NULL|NULL|7|NULL\n");
  EXPECT_EQ(SqlQuery(Db("crm"), "SELECT email FROM customers WHERE id = 1"), "b@\n");
  status = StatusJson();
  EXPECT_EQ(EndpointStatus(status, "billing")["dead_letters"], 1) << status.dump(2);
}

// SQLite cannot tell a trigger where a transaction ends: changes captured together are one
// unit (P7: never half applied). A row the target refuses parks that unit whole, and nothing
// captured apart from it; a later change to one of its records waits for it.
TEST_F(CliTest, RejectedRowParksWhatWasCapturedWithItAndNothingElse) {
  SqlExec(Db("crm"), kCrmSchema);
  SqlExec(Db("billing"),
          "CREATE TABLE clients(id INTEGER PRIMARY KEY, full_name TEXT, email TEXT, tier TEXT, "
          "balance INTEGER CHECK (balance < 1000), notes TEXT);");
  WriteConfig(MakeConfig({kCrm, kBilling}));
  SyncIdle();
  // Three application transactions, captured together by one run.
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (1, 'before', NULL, NULL, 5, NULL)");
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (2, 'too rich', NULL, NULL, 5000, NULL)");
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (3, 'after', NULL, NULL, 7, NULL)");
  Outcome o = Duplex({"run", "--until-idle"});
  EXPECT_EQ(o.code, 3) << o;
  json status = StatusJson();
  EXPECT_EQ(EndpointStatus(status, "billing")["dead_letters"], 1) << status.dump(2);
  EXPECT_EQ(Rows("billing"), "") << "part of a unit was applied";
  // Captured apart: flows.
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (4, 'later', NULL, NULL, 8, NULL)");
  o = Duplex({"run", "--until-idle"});
  EXPECT_EQ(o.code, 3) << o;
  EXPECT_EQ(Rows("billing"), "4|later|NULL|NULL|8|NULL\n");
  // A change to a parked record waits for it.
  SqlExec(Db("crm"), "UPDATE customers SET name = 'before2' WHERE id = 1");
  o = Duplex({"run", "--until-idle"});
  EXPECT_EQ(o.code, 3) << o;
  o = Duplex({"dead-letters", "list", "--json"});
  json list = json::parse(o.out, nullptr, false);
  ASSERT_TRUE(list.is_array() && list.size() == 2) << o;
  EXPECT_EQ(list[0]["keys"].size(), 3u) << o;
  EXPECT_EQ(list[1]["waits_for"], list[0]["id"]) << o;
  EXPECT_EQ(Rows("billing"), "4|later|NULL|NULL|8|NULL\n");
}

// The operator's side of dead letters: list, show, drop one (its record stays diverged),
// fix the cause, retry the rest with --all; the next run applies them and exits 0.
TEST_F(CliTest, DeadLettersAreShownDroppedAndRetriedFromTheCli) {
  CreateTables();
  // billing refuses rich new clients until its operator drops this trigger.
  SqlExec(Db("billing"),
          "CREATE TRIGGER too_rich BEFORE INSERT ON clients WHEN NEW.balance >= 1000 BEGIN "
          "SELECT RAISE(ABORT, 'billing refuses balances of 1000 or more'); END;");
  WriteConfig(MakeConfig({kCrm, kBilling}));
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (1, 'ok', NULL, NULL, 5, NULL)");
  SyncIdle();
  // Three application transactions billing refuses, one it takes, each captured on its own
  // (SQLite's changes captured together are one unit).
  Outcome o;
  for (const char* row :
       {"(2, 'rich', 'r@', NULL, 5000, NULL)", "(3, 'richer', NULL, NULL, 6000, NULL)",
        "(4, 'richest', NULL, NULL, 7000, NULL)", "(5, 'fine', NULL, NULL, 9, NULL)"}) {
    SqlExec(Db("crm"), std::string("INSERT INTO customers VALUES ") + row);
    o = Duplex({"run", "--until-idle"});
  }
  ASSERT_EQ(o.code, 3) << o;
  EXPECT_EQ(EndpointStatus(StatusJson(), "billing")["dead_letters"], 3);

  o = Duplex({"dead-letters", "list", "--json"});
  ASSERT_EQ(o.code, 0) << o;
  json list = json::parse(o.out, nullptr, false);
  ASSERT_TRUE(list.is_array() && list.size() == 3) << o;
  std::map<int, std::string> id_of;  // customer id -> dead letter id
  for (const json& d : list) {
    for (const char* k : {"id", "endpoint", "collection", "collections", "keys", "reason",
                          "created_at", "retry_requested", "ops"}) {
      EXPECT_TRUE(d.contains(k)) << k << " missing in " << d.dump();
    }
    EXPECT_EQ(d["endpoint"], "billing") << d.dump();
    EXPECT_EQ(d["collection"], "customer") << d.dump();
    EXPECT_EQ(d["collections"], json({"customer"})) << d.dump();
    ASSERT_EQ(d["keys"].size(), 1u) << d.dump();
    EXPECT_NE(d["reason"].get<std::string>().find("refuses balances"), std::string::npos);
    EXPECT_GT(d["created_at"].get<double>(), 0);
    EXPECT_EQ(d["retry_requested"], false);
    id_of[d["keys"][0]["id"].get<int>()] = std::to_string(d["id"].get<int64_t>());
  }
  ASSERT_EQ(id_of.size(), 3u) << list.dump(2);
  ASSERT_TRUE(id_of.count(2) && id_of.count(3) && id_of.count(4)) << list.dump(2);

  o = Duplex({"dead-letters", "list"});
  ASSERT_EQ(o.code, 0) << o;
  EXPECT_EQ(LineOf(o.out, "ID"), 1) << o;
  // One line per dead letter: its id first, then endpoint, collection, writes, first key.
  const size_t at = o.out.find("\n" + id_of[2] + " ");
  ASSERT_NE(at, std::string::npos) << o;
  const std::string line = o.out.substr(at + 1, o.out.find('\n', at + 1) - at - 1);
  EXPECT_NE(line.find(R"(billing    customer            1 {"id":2})"), std::string::npos) << line;
  // A long reason is cut in its middle: the cause at its end stays.
  for (const char* part : {R"({"id":3})", R"({"id":4})", "refuses balances of 1000 or more\n"}) {
    EXPECT_NE(o.out.find(part), std::string::npos) << part << "\n" << o;
  }

  // show: the whole entry, readable; --json: the list's object.
  o = Duplex({"dead-letters", "show", id_of[2]});
  ASSERT_EQ(o.code, 0) << o;
  for (const char* part : {"dead letter ", "billing", "refuses balances", "insert customer",
                           R"({"id":2})", "'rich'", "5000", "'r@'", "parked:", "20"}) {
    EXPECT_NE(o.out.find(part), std::string::npos) << part << "\n" << o;
  }
  o = Duplex({"dead-letters", "show", id_of[2], "--json"});
  ASSERT_EQ(o.code, 0) << o;
  json one = json::parse(o.out, nullptr, false);
  ASSERT_TRUE(one.is_object()) << o;
  EXPECT_EQ(one["id"].get<int64_t>(), std::stoll(id_of[2]));
  EXPECT_EQ(one["ops"][0]["op"], "insert") << one.dump();
  EXPECT_EQ(one["ops"][0]["values"]["balance"], 5000) << one.dump();
  o = Duplex({"dead-letters", "show", "999"});
  EXPECT_EQ(o.code, 2) << o;
  EXPECT_NE(o.err.find("no dead letter with id 999"), std::string::npos) << o;
  EXPECT_EQ(Duplex({"dead-letters", "show", "abc"}).code, 2);

  // Usage: retry needs exactly one of ID and --all; drop needs an existing id.
  o = Duplex({"dead-letters", "retry"});
  EXPECT_EQ(o.code, 2) << o;
  EXPECT_NE(o.err.find("--all"), std::string::npos) << o;
  EXPECT_EQ(Duplex({"dead-letters", "retry", id_of[3], "--all"}).code, 2);
  EXPECT_EQ(Duplex({"dead-letters", "drop"}).code, 2);
  EXPECT_EQ(Duplex({"dead-letters", "drop", "x"}).code, 2);
  o = Duplex({"dead-letters", "drop", "999"});
  EXPECT_EQ(o.code, 2) << o;
  EXPECT_NE(o.err.find("no dead letter with id 999"), std::string::npos) << o;

  // drop: gone, the count goes down, and its write is never applied.
  o = Duplex({"dead-letters", "drop", id_of[2]});
  ASSERT_EQ(o.code, 0) << o;
  EXPECT_NE(o.out.find("will not be applied"), std::string::npos) << o;
  EXPECT_NE(o.err.find("dropped"), std::string::npos) << o;
  EXPECT_EQ(EndpointStatus(StatusJson(), "billing")["dead_letters"], 2);
  EXPECT_EQ(Duplex({"dead-letters", "show", id_of[2]}).code, 2);
  EXPECT_EQ(Duplex({"dead-letters", "drop", id_of[2]}).code, 2);

  // Fix the cause, retry the rest.
  SqlExec(Db("billing"), "DROP TRIGGER too_rich");
  o = Duplex({"dead-letters", "retry", "--all"});
  ASSERT_EQ(o.code, 0) << o;
  EXPECT_NE(o.out.find("retry requested for 2 dead letters"), std::string::npos) << o;
  o = Duplex({"dead-letters", "list", "--json"});
  list = json::parse(o.out, nullptr, false);
  ASSERT_TRUE(list.is_array() && list.size() == 2) << o;
  for (const json& d : list) EXPECT_EQ(d["retry_requested"], true) << d.dump();
  SyncIdle();
  EXPECT_EQ(EndpointStatus(StatusJson(), "billing")["dead_letters"], 0);
  o = Duplex({"dead-letters", "list"});
  EXPECT_EQ(o.out, "no dead letters\n") << o;
  EXPECT_EQ(Rows("billing"),
            "1|ok|NULL|NULL|5|NULL\n3|richer|NULL|NULL|6000|NULL\n"
            "4|richest|NULL|NULL|7000|NULL\n5|fine|NULL|NULL|9|NULL\n");
  o = Duplex({"dead-letters", "retry", "--all"});
  EXPECT_EQ(o.code, 0) << o;
  EXPECT_NE(o.out.find("retry requested for 0 dead letters"), std::string::npos) << o;
}

// P8: an endpoint that cannot be written (its application holds the write lock) stops only
// its own apply; the others keep flowing, and it catches up when the lock goes.
TEST_F(CliTest, P8LockedEndpointStopsOnlyItselfAndCatchesUp) {
  CreateTables(/*erp=*/true);
  WriteConfig(MakeConfig({kCrm, kBilling, kErp}));
  SyncIdle();
  std::unique_ptr<Process> run = Background({"run"});
  std::atomic<bool> locked{false};
  std::thread locker([&] {
    auto db = sqlite::Db::Open(Db("billing"), /*create=*/false);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    ASSERT_TRUE(db->Exec("BEGIN EXCLUSIVE").ok());
    locked = true;
    std::this_thread::sleep_for(milliseconds(3000));
    ASSERT_TRUE(db->Exec("COMMIT").ok());
  });
  ASSERT_TRUE(PollUntil([&] { return locked.load(); }, milliseconds(5000)));
  for (int i = 1; i <= 20; ++i) {
    SqlExec(Db("crm"), "INSERT INTO customers VALUES (" + std::to_string(i) + ", 'n', NULL, " +
                           "NULL, 1, NULL)");
  }
  // erp gets the rows while billing is still locked (WAL: billing can still be read).
  EXPECT_TRUE(
      PollUntil([&] { return SqlQuery(Db("erp"), "SELECT count(*) FROM accounts") == "20\n"; },
                milliseconds(2500)))
      << run->Err();
  EXPECT_TRUE(locked.load());
  EXPECT_EQ(SqlQuery(Db("billing"), "SELECT count(*) FROM clients"), "0\n");
  locker.join();
  EXPECT_TRUE(WaitConverged("customer", milliseconds(30000), /*idle=*/true));
  run->Signal(SIGTERM);
  EXPECT_EQ(run->Wait(milliseconds(10000)), 0) << run->Err();
}

}  // namespace
}  // namespace duplex
