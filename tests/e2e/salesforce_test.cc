// End to end, issue 13 §3: the `duplex` binary between the local Salesforce
// (tools/sf-emulator/) and a SQLite file or a PostgreSQL database, ids generated on both sides
// (key_mode = "mapped"): the initial load both ways, a live edit each way, a delete each way,
// contacts following their accounts, no echo loop (an idle run writes nothing to the org: the polls
// go on, the writes stay flat), and a same-field edit on both sides logged as a conflict. `duplex
// check` names what the org lacks.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "support/pg_cluster.h"
#include "support/sf_emulator.h"
#include "support/sync_fixture.h"
#include "support/test_util.h"

namespace duplex {
namespace {

using testing::SfEmulator;
using testing::SqlExec;
using testing::SqlQuery;
using testing::SyncFixture;

// The parameter: the operational database ("sqlite", or "pg": PostgreSQL with logical
// capture) and the org's capture ("poll", or "cdc": change events cross-checked by polls).
struct Params {
  std::string ops;
  std::string capture;
};

class SalesforceE2eTest : public testing::SharedPgCluster<::testing::TestWithParam<Params>>,
                          protected SyncFixture {
 protected:
  static void SetUpTestSuite() {}  // the cluster starts with the first PostgreSQL case
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(emu_.running());
    setenv("SF_CLIENT_ID", "duplex", 1);
    setenv("SF_CLIENT_SECRET", "secret", 1);
    if (pg()) {
      if (cluster_ == nullptr) {
        cluster_ = new testing::PgCluster();
        Status st = cluster_->Start();
        ASSERT_TRUE(st.ok()) << st.ToString();
      }
      db_ = "sf" + std::to_string(++databases_);
      NewDatabase(db_,
                  "CREATE TABLE accounts(id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                  "name text NOT NULL, industry text);"
                  "CREATE TABLE contacts(id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                  "last text NOT NULL, account_id int REFERENCES accounts(id));");
    } else {
      OpsExec(
          "CREATE TABLE accounts(id INTEGER PRIMARY KEY, name TEXT NOT NULL, industry TEXT);"
          "CREATE TABLE contacts(id INTEGER PRIMARY KEY, last TEXT NOT NULL, "
          "account_id INTEGER REFERENCES accounts(id));");
    }
  }

  bool pg() const { return GetParam().ops == "pg"; }
  // An application's statement and query on the operational database.
  void OpsExec(const std::string& sql) {
    if (pg()) {
      PgExec(db_, sql);
    } else {
      SqlExec(File("ops.db"), sql);
    }
  }
  std::string OpsQuery(const std::string& sql) {
    return pg() ? PgQuery(db_, sql) : SqlQuery(File("ops.db"), sql);
  }

  void Write(const std::string& external_id = "External_Id__c") {
    std::ofstream f(ConfigPath());
    f << "[engine]\nstate = \"state.db\"\n\n"
      << "[endpoints.crm]\ntype = \"salesforce\"\ninstance_url = \"" << emu_.url() << "\"\n"
      << "client_id_env = \"SF_CLIENT_ID\"\nclient_secret_env = \"SF_CLIENT_SECRET\"\n"
      << "external_id = \"" << external_id << "\"\ncapture = \"" << GetParam().capture
      << "\"\npoll_interval = \"200ms\"\n\n"
      << (pg() ? "[endpoints.ops]\ntype = \"postgres\"\ndsn = \"" + cluster_->dsn(db_) + "\"\n\n"
               : std::string("[endpoints.ops]\ntype = \"sqlite\"\npath = \"ops.db\"\n\n"))
      << "[collections.account]\nkey = [\"id\"]\nkey_mode = \"mapped\"\n"
      << "endpoints.crm = { table = \"Account\", fields = { id = \"Id\", name = \"Name\", "
         "industry = \"Industry\" } }\n"
      << "endpoints.ops = { table = \"accounts\" }\n\n"
      << "[collections.contact]\nkey = [\"id\"]\nkey_mode = \"mapped\"\n"
      << "endpoints.crm = { table = \"Contact\", fields = { id = \"Id\", last = \"LastName\", "
         "account_id = \"AccountId\" } }\n"
      << "endpoints.ops = { table = \"contacts\" }\n";
  }

  // The org's accounts as "Name|Industry" lines, by name.
  std::string OrgAccounts() {
    nlohmann::json q =
        emu_.Api("GET", "/query?q=SELECT%20Name,Industry%20FROM%20Account%20ORDER%20BY%20Name");
    std::string out;
    for (const auto& r : q["records"]) {
      out += r["Name"].get<std::string>() + "|" +
             (r["Industry"].is_null() ? "NULL" : r["Industry"].get<std::string>()) + "\n";
    }
    return out;
  }
  std::string OpsAccounts() {
    return OpsQuery("SELECT name, industry FROM accounts ORDER BY name");
  }
  void Run() {
    testing::Outcome o = Duplex({"run", "--until-idle"});
    ASSERT_EQ(o.code, 0) << o.All();
  }
  // API calls that write (Collections, sObject rows) so far.
  int64_t Writes() {
    nlohmann::json stats = emu_.Hook("stats");
    int64_t n = 0;
    for (const auto& [resource, count] : stats["calls"].items()) {
      if (resource.find("composite") != std::string::npos) n += count.get<int64_t>();
    }
    return n;
  }

  SfEmulator emu_;
  std::string db_;
};

TEST_P(SalesforceE2eTest, CheckNamesWhatTheOrgLacks) {
  Write("Duplex_Key__c");
  testing::Outcome o = Duplex({"check"});
  EXPECT_EQ(o.code, 2) << o.All();
  EXPECT_NE(o.All().find("object 'Account' has no field 'Duplex_Key__c'"), std::string::npos)
      << o.All();
  Write();
  o = Duplex({"check"});
  EXPECT_EQ(o.code, 0) << o.All();
}

// What duplex cannot know it says so: an org cannot count the changes not yet captured
// (TO-CAPTURE "unknown", null in JSON, never -1); the api budget shown is the default in force.
TEST_P(SalesforceE2eTest, StatusSaysUnknownForABacklogTheOrgCannotCount) {
  Write();
  testing::Outcome check = Duplex({"check"});
  EXPECT_EQ(check.code, 0) << check.All();
  EXPECT_NE(check.out.find("api budget 100%"), std::string::npos) << check.All();
  ASSERT_NO_FATAL_FAILURE(Run());
  testing::Outcome status = Duplex({"status"});
  ASSERT_EQ(status.code, 0) << status.All();
  std::istringstream lines(status.out);
  std::string header, line, crm;
  std::getline(lines, header);
  EXPECT_NE(header.find("TO-CAPTURE"), std::string::npos) << status.out;
  while (std::getline(lines, line)) {
    if (line.rfind("crm ", 0) == 0) crm = line;
  }
  ASSERT_FALSE(crm.empty()) << status.out;
  // The position holds spaces (replay id, poll stamps); TO-CAPTURE follows it.
  EXPECT_NE(crm.find(" unknown "), std::string::npos) << status.out;
  EXPECT_EQ(crm.find(" -1 "), std::string::npos) << status.out;
  EXPECT_EQ(crm.find(" ? "), std::string::npos) << status.out;
  nlohmann::json j = StatusJson();
  for (const auto& ep : j["endpoints"]) {
    if (ep["name"] == "crm") {
      EXPECT_TRUE(ep["capture_backlog"].is_null()) << j.dump(2);
    } else if (!pg()) {
      // (A PostgreSQL slot is read only while `run` streams it: unknown here too.)
      EXPECT_EQ(ep["capture_backlog"], 0) << j.dump(2);
    }
  }
}

TEST_P(SalesforceE2eTest, BothWaysWithoutAnEchoLoop) {
  const std::string acme = emu_.Api("POST", "/sobjects/Account", {{"Name", "Acme"}})["id"];
  OpsExec("INSERT INTO accounts(name, industry) VALUES ('Local Co', 'Retail');");
  Write();
  ASSERT_NO_FATAL_FAILURE(Run());
  EXPECT_EQ(OrgAccounts(), "Acme|NULL\nLocal Co|Retail\n");
  EXPECT_EQ(OpsAccounts(), "Acme|NULL\nLocal Co|Retail\n");

  // A second run writes nothing: duplex's own writes came back as echoes, not edits.
  const int64_t writes = Writes();
  ASSERT_NO_FATAL_FAILURE(Run());
  EXPECT_EQ(Writes(), writes) << emu_.Hook("stats").dump();

  // A live edit each way.
  emu_.Api("PATCH", "/sobjects/Account/" + acme, {{"Industry", "Energy"}});
  OpsExec("UPDATE accounts SET name = 'Local Company' WHERE name = 'Local Co';");
  ASSERT_NO_FATAL_FAILURE(Run());
  EXPECT_EQ(OrgAccounts(), "Acme|Energy\nLocal Company|Retail\n");
  EXPECT_EQ(OpsAccounts(), "Acme|Energy\nLocal Company|Retail\n");

  // A delete each way.
  OpsExec("DELETE FROM accounts WHERE name = 'Acme';");
  ASSERT_NO_FATAL_FAILURE(Run());
  EXPECT_EQ(OrgAccounts(), "Local Company|Retail\n");
  nlohmann::json local = emu_.Api(
      "GET", "/query?q=SELECT%20Id%20FROM%20Account%20WHERE%20Name%20=%20'Local%20Company'");
  ASSERT_EQ(local["records"].size(), 1u) << local.dump();
  emu_.Api("DELETE", "/sobjects/Account/" + local["records"][0]["Id"].get<std::string>());
  ASSERT_NO_FATAL_FAILURE(Run());
  EXPECT_EQ(OpsAccounts(), "");
  EXPECT_EQ(OrgAccounts(), "");

  // Idle again: nothing written.
  const int64_t settled = Writes();
  ASSERT_NO_FATAL_FAILURE(Run());
  EXPECT_EQ(Writes(), settled) << emu_.Hook("stats").dump();
}

// A Contact's AccountId and contacts.account_id name the same account, each side by its own
// ids: translated both ways, parents written before their children.
TEST_P(SalesforceE2eTest, ContactsFollowTheirAccountsBothWays) {
  const std::string acme = emu_.Api("POST", "/sobjects/Account", {{"Name", "Acme"}})["id"];
  emu_.Api("POST", "/sobjects/Contact", {{"LastName", "Org Kid"}, {"AccountId", acme}});
  OpsExec(
      "INSERT INTO accounts(name) VALUES ('Local Co');"
      "INSERT INTO contacts(last, account_id) SELECT 'Ops Kid', id FROM accounts;");
  Write();
  ASSERT_NO_FATAL_FAILURE(Run());
  EXPECT_EQ(OpsQuery("SELECT c.last, a.name FROM contacts c JOIN accounts a ON a.id = c.account_id "
                     "ORDER BY c.last"),
            "Ops Kid|Local Co\nOrg Kid|Acme\n");
  nlohmann::json q = emu_.Api(
      "GET", "/query?q=SELECT%20LastName,AccountId%20FROM%20Contact%20ORDER%20BY%20LastName");
  ASSERT_EQ(q["records"].size(), 2u) << q.dump();
  nlohmann::json local =
      emu_.Api("GET", "/query?q=SELECT%20Id%20FROM%20Account%20WHERE%20Name%20=%20'Local%20Co'");
  ASSERT_EQ(local["records"].size(), 1u) << local.dump();
  EXPECT_EQ(q["records"][0]["LastName"], "Ops Kid");
  EXPECT_EQ(q["records"][0]["AccountId"], local["records"][0]["Id"]);
  EXPECT_EQ(q["records"][1]["AccountId"], acme);
  // A contact moved to the other account in the org.
  nlohmann::json kid =
      emu_.Api("GET", "/query?q=SELECT%20Id%20FROM%20Contact%20WHERE%20LastName%20=%20'Org%20Kid'");
  emu_.Api("PATCH", "/sobjects/Contact/" + kid["records"][0]["Id"].get<std::string>(),
           {{"AccountId", local["records"][0]["Id"]}});
  ASSERT_NO_FATAL_FAILURE(Run());
  EXPECT_EQ(OpsQuery("SELECT a.name FROM contacts c JOIN accounts a ON a.id = c.account_id "
                     "WHERE c.last = 'Org Kid'"),
            "Local Co\n");
}

// `duplex run` left running: edits each way arrive, and once idle it writes nothing more to
// the org or to the database (no change goes back and forth), while capture keeps polling
// within poll_interval.
TEST_P(SalesforceE2eTest, RunningIdleWritesNothing) {
  const std::string acme = emu_.Api("POST", "/sobjects/Account", {{"Name", "Acme"}})["id"];
  Write();
  std::unique_ptr<testing::Process> run = Background({"run"});
  ASSERT_TRUE(testing::PollUntil([&] { return OpsAccounts() == "Acme|NULL\n"; },
                                 std::chrono::seconds(60), std::chrono::milliseconds(200)))
      << run->Err();
  emu_.Api("PATCH", "/sobjects/Account/" + acme, {{"Industry", "Energy"}});
  OpsExec("INSERT INTO accounts(name) VALUES ('Local Co');");
  ASSERT_TRUE(testing::PollUntil(
      [&] {
        return OpsAccounts() == "Acme|Energy\nLocal Co|NULL\n" &&
               OrgAccounts() == "Acme|Energy\nLocal Co|NULL\n";
      },
      std::chrono::seconds(60), std::chrono::milliseconds(200)))
      << OpsAccounts() << OrgAccounts() << run->Err();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const int64_t writes = Writes();
  const std::string changelog = OpsAccounts();
  const int64_t calls = emu_.Hook("stats")["api_calls"].get<int64_t>();
  std::this_thread::sleep_for(std::chrono::seconds(4));
  EXPECT_EQ(Writes(), writes) << emu_.Hook("stats").dump();
  EXPECT_EQ(OpsAccounts(), changelog);
  // Polls of two objects at most every 200 ms, and the change-event long-poll: bounded.
  const int64_t idle_calls = emu_.Hook("stats")["api_calls"].get<int64_t>() - calls;
  EXPECT_LE(idle_calls, 4 * 2 * 5 + 10) << emu_.Hook("stats").dump();
  run->Signal(SIGTERM);
  EXPECT_EQ(run->Wait(std::chrono::seconds(30)), 0) << run->Err();
}

// A record the org refuses (a Name longer than its 255 characters) becomes a dead letter that
// names object, record, field and the org's message; the others flow.
TEST_P(SalesforceE2eTest, ARefusedRecordIsADeadLetterAndTheRestFlows) {
  OpsExec("INSERT INTO accounts(name) VALUES ('" + std::string(300, 'x') +
          "'); INSERT INTO accounts(name) VALUES ('Fine');");
  Write();
  testing::Outcome o = Duplex({"run", "--until-idle"});
  EXPECT_EQ(o.code, 3) << "exit 3: done, with dead letters\n" << o.All();
  EXPECT_EQ(OrgAccounts(), "Fine|NULL\n");
  o = Duplex({"dead-letters", "show", "1"});
  EXPECT_EQ(o.code, 0) << o.All();
  EXPECT_NE(o.out.find("object 'Account', record 'ops:1', field 'Name'"), std::string::npos)
      << o.All();
  EXPECT_NE(o.out.find("STRING_TOO_LONG"), std::string::npos) << o.All();
}

TEST_P(SalesforceE2eTest, SameFieldEditedOnBothSidesIsAConflict) {
  const std::string acme = emu_.Api("POST", "/sobjects/Account", {{"Name", "Acme"}})["id"];
  Write();
  ASSERT_NO_FATAL_FAILURE(Run());
  ASSERT_EQ(OpsAccounts(), "Acme|NULL\n");
  OpsExec("UPDATE accounts SET industry = 'Retail' WHERE name = 'Acme';");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  emu_.Api("PATCH", "/sobjects/Account/" + acme, {{"Industry", "Energy"}});
  ASSERT_NO_FATAL_FAILURE(Run());
  // Whichever wins, both sides agree and the conflict is logged.
  const std::string org = OrgAccounts();
  EXPECT_EQ(org, OpsAccounts());
  EXPECT_TRUE(org == "Acme|Energy\n" || org == "Acme|Retail\n") << org;
  nlohmann::json conflicts = ConflictsJson(/*all=*/true);
  ASSERT_EQ(conflicts.size(), 1u) << conflicts.dump();
  EXPECT_NE(conflicts.dump().find("industry"), std::string::npos) << conflicts.dump();
}

INSTANTIATE_TEST_SUITE_P(Sides, SalesforceE2eTest,
                         ::testing::Values(Params{"sqlite", "poll"}, Params{"sqlite", "cdc"},
                                           Params{"pg", "poll"}, Params{"pg", "cdc"}),
                         [](const ::testing::TestParamInfo<Params>& info) {
                           return info.param.ops + "_" + info.param.capture;
                         });

}  // namespace
}  // namespace duplex
