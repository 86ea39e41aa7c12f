// End to end, issue 13 §3: the `duplex` binary between the local Salesforce
// (tools/sf-emulator/) and a SQLite file or a PostgreSQL database, ids generated on both sides
// (key_mode = "mapped"): the initial load both ways, a live edit each way, a delete each way,
// contacts following their accounts, no echo loop (an idle run writes nothing to the org: the polls
// go on, the writes stay flat), and a same-field edit on both sides logged as a conflict. `duplex
// check` names what the org lacks. Then faults (SalesforceFaultsTest): kill -9 in a backlog, the
// org's quota used up and freed, injected errors and lost replies, late-visible stamps, a Flow
// rule's change inside duplex's own write.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

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
  explicit SalesforceE2eTest(std::vector<std::string> org_args = {})
      : org_(std::make_unique<SfEmulator>(std::move(org_args))) {}

  static void SetUpTestSuite() {}  // the cluster starts with the first PostgreSQL case
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(org_->running());
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

  // duplex.toml; `engine` and `account_fields` are more TOML for [engine] and for the account
  // collection's Salesforce fields (e.g. ", rating = \"Rating\"").
  void Write(const std::string& external_id = "External_Id__c", const std::string& engine = "",
             const std::string& account_fields = "") {
    std::ofstream f(ConfigPath());
    f << "[engine]\nstate = \"state.db\"\n"
      << engine << "\n"
      << "[endpoints.crm]\ntype = \"salesforce\"\ninstance_url = \"" << emu().url() << "\"\n"
      << "client_id_env = \"SF_CLIENT_ID\"\nclient_secret_env = \"SF_CLIENT_SECRET\"\n"
      << "external_id = \"" << external_id << "\"\ncapture = \"" << GetParam().capture
      << "\"\npoll_interval = \"200ms\"\n\n"
      << (pg() ? "[endpoints.ops]\ntype = \"postgres\"\ndsn = \"" + cluster_->dsn(db_) + "\"\n\n"
               : std::string("[endpoints.ops]\ntype = \"sqlite\"\npath = \"ops.db\"\n\n"))
      << "[collections.account]\nkey = [\"id\"]\nkey_mode = \"mapped\"\n"
      << "endpoints.crm = { table = \"Account\", fields = { id = \"Id\", name = \"Name\", "
         "industry = \"Industry\""
      << account_fields << " } }\n"
      << "endpoints.ops = { table = \"accounts\" }\n\n"
      << "[collections.contact]\nkey = [\"id\"]\nkey_mode = \"mapped\"\n"
      << "endpoints.crm = { table = \"Contact\", fields = { id = \"Id\", last = \"LastName\", "
         "account_id = \"AccountId\" } }\n"
      << "endpoints.ops = { table = \"contacts\" }\n";
  }

  // The org's accounts as "Name|Industry" lines, by name.
  std::string OrgAccounts() {
    nlohmann::json q =
        emu().Api("GET", "/query?q=SELECT%20Name,Industry%20FROM%20Account%20ORDER%20BY%20Name");
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
  // API calls that write (Collections, Composite) so far; not the Composite calls that only
  // read (polls: composite/query).
  int64_t Writes() {
    nlohmann::json stats = emu().Hook("stats");
    int64_t n = 0;
    for (const auto& [resource, count] : stats["calls"].items()) {
      if (resource.find("composite") != std::string::npos && resource != "composite/query") {
        n += count.get<int64_t>();
      }
    }
    return n;
  }

  // The org, replaced by NewOrg (a test that needs its own schema).
  SfEmulator& emu() { return *org_; }
  void NewOrg(std::vector<std::string> args) {
    org_.reset();
    org_ = std::make_unique<SfEmulator>(std::move(args));
    ASSERT_TRUE(org_->running());
  }

  std::unique_ptr<SfEmulator> org_;
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
  const std::string acme = emu().Api("POST", "/sobjects/Account", {{"Name", "Acme"}})["id"];
  OpsExec("INSERT INTO accounts(name, industry) VALUES ('Local Co', 'Retail');");
  Write();
  ASSERT_NO_FATAL_FAILURE(Run());
  EXPECT_EQ(OrgAccounts(), "Acme|NULL\nLocal Co|Retail\n");
  EXPECT_EQ(OpsAccounts(), "Acme|NULL\nLocal Co|Retail\n");

  // A second run writes nothing: duplex's own writes came back as echoes, not edits.
  const int64_t writes = Writes();
  ASSERT_NO_FATAL_FAILURE(Run());
  EXPECT_EQ(Writes(), writes) << emu().Hook("stats").dump();

  // A live edit each way.
  emu().Api("PATCH", "/sobjects/Account/" + acme, {{"Industry", "Energy"}});
  OpsExec("UPDATE accounts SET name = 'Local Company' WHERE name = 'Local Co';");
  ASSERT_NO_FATAL_FAILURE(Run());
  EXPECT_EQ(OrgAccounts(), "Acme|Energy\nLocal Company|Retail\n");
  EXPECT_EQ(OpsAccounts(), "Acme|Energy\nLocal Company|Retail\n");

  // A delete each way.
  OpsExec("DELETE FROM accounts WHERE name = 'Acme';");
  ASSERT_NO_FATAL_FAILURE(Run());
  EXPECT_EQ(OrgAccounts(), "Local Company|Retail\n");
  nlohmann::json local = emu().Api(
      "GET", "/query?q=SELECT%20Id%20FROM%20Account%20WHERE%20Name%20=%20'Local%20Company'");
  ASSERT_EQ(local["records"].size(), 1u) << local.dump();
  emu().Api("DELETE", "/sobjects/Account/" + local["records"][0]["Id"].get<std::string>());
  ASSERT_NO_FATAL_FAILURE(Run());
  EXPECT_EQ(OpsAccounts(), "");
  EXPECT_EQ(OrgAccounts(), "");

  // Idle again: nothing written.
  const int64_t settled = Writes();
  ASSERT_NO_FATAL_FAILURE(Run());
  EXPECT_EQ(Writes(), settled) << emu().Hook("stats").dump();
}

// A Contact's AccountId and contacts.account_id name the same account, each side by its own
// ids: translated both ways, parents written before their children.
TEST_P(SalesforceE2eTest, ContactsFollowTheirAccountsBothWays) {
  const std::string acme = emu().Api("POST", "/sobjects/Account", {{"Name", "Acme"}})["id"];
  emu().Api("POST", "/sobjects/Contact", {{"LastName", "Org Kid"}, {"AccountId", acme}});
  OpsExec(
      "INSERT INTO accounts(name) VALUES ('Local Co');"
      "INSERT INTO contacts(last, account_id) SELECT 'Ops Kid', id FROM accounts;");
  Write();
  ASSERT_NO_FATAL_FAILURE(Run());
  EXPECT_EQ(OpsQuery("SELECT c.last, a.name FROM contacts c JOIN accounts a ON a.id = c.account_id "
                     "ORDER BY c.last"),
            "Ops Kid|Local Co\nOrg Kid|Acme\n");
  nlohmann::json q = emu().Api(
      "GET", "/query?q=SELECT%20LastName,AccountId%20FROM%20Contact%20ORDER%20BY%20LastName");
  ASSERT_EQ(q["records"].size(), 2u) << q.dump();
  nlohmann::json local =
      emu().Api("GET", "/query?q=SELECT%20Id%20FROM%20Account%20WHERE%20Name%20=%20'Local%20Co'");
  ASSERT_EQ(local["records"].size(), 1u) << local.dump();
  EXPECT_EQ(q["records"][0]["LastName"], "Ops Kid");
  EXPECT_EQ(q["records"][0]["AccountId"], local["records"][0]["Id"]);
  EXPECT_EQ(q["records"][1]["AccountId"], acme);
  // A contact moved to the other account in the org.
  nlohmann::json kid = emu().Api(
      "GET", "/query?q=SELECT%20Id%20FROM%20Contact%20WHERE%20LastName%20=%20'Org%20Kid'");
  emu().Api("PATCH", "/sobjects/Contact/" + kid["records"][0]["Id"].get<std::string>(),
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
  const std::string acme = emu().Api("POST", "/sobjects/Account", {{"Name", "Acme"}})["id"];
  Write();
  std::unique_ptr<testing::Process> run = Background({"run"});
  ASSERT_TRUE(testing::PollUntil([&] { return OpsAccounts() == "Acme|NULL\n"; },
                                 std::chrono::seconds(60), std::chrono::milliseconds(200)))
      << run->Err();
  emu().Api("PATCH", "/sobjects/Account/" + acme, {{"Industry", "Energy"}});
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
  const int64_t calls = emu().Hook("stats")["api_calls"].get<int64_t>();
  std::this_thread::sleep_for(std::chrono::seconds(4));
  EXPECT_EQ(Writes(), writes) << emu().Hook("stats").dump();
  EXPECT_EQ(OpsAccounts(), changelog);
  // Polls of two objects at most every 200 ms, and the change-event long-poll: bounded.
  const int64_t idle_calls = emu().Hook("stats")["api_calls"].get<int64_t>() - calls;
  EXPECT_LE(idle_calls, 4 * 2 * 5 + 10) << emu().Hook("stats").dump();
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
  const std::string acme = emu().Api("POST", "/sobjects/Account", {{"Name", "Acme"}})["id"];
  Write();
  ASSERT_NO_FATAL_FAILURE(Run());
  ASSERT_EQ(OpsAccounts(), "Acme|NULL\n");
  OpsExec("UPDATE accounts SET industry = 'Retail' WHERE name = 'Acme';");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  emu().Api("PATCH", "/sobjects/Account/" + acme, {{"Industry", "Energy"}});
  ASSERT_NO_FATAL_FAILURE(Run());
  // Whichever wins, both sides agree and the conflict is logged.
  const std::string org = OrgAccounts();
  EXPECT_EQ(org, OpsAccounts());
  EXPECT_TRUE(org == "Acme|Energy\n" || org == "Acme|Retail\n") << org;
  nlohmann::json conflicts = ConflictsJson(/*all=*/true);
  ASSERT_EQ(conflicts.size(), 1u) << conflicts.dump();
  EXPECT_NE(conflicts.dump().find("industry"), std::string::npos) << conflicts.dump();
}

// Faults, through the binary: kill -9 in a backlog, the org's daily quota used up, injected
// errors and lost replies, late-visible stamps, a Flow rule. The org allows enough calls that
// the pacer polls at poll_interval (a default org's 100000 a day would spread polls seconds
// apart), and two of the four sides run them, to keep the suite short.
class SalesforceFaultsTest : public SalesforceE2eTest {
 protected:
  SalesforceFaultsTest() : SalesforceE2eTest({"--daily-limit", "100000000"}) {}

  // Every record of `object` in the org (queryAll pages followed), with `fields`.
  std::vector<nlohmann::json> OrgRecords(const std::string& object, const std::string& fields) {
    std::vector<nlohmann::json> out;
    nlohmann::json page = emu().Api("GET", "/query?q=SELECT%20" + fields + "%20FROM%20" + object);
    for (;;) {
      if (!page.is_object() || !page.contains("records")) {
        ADD_FAILURE() << object << ": " << page.dump();
        return out;
      }
      for (const auto& r : page["records"]) out.push_back(r);
      if (page.value("done", true)) return out;
      static const std::string kApi = "/services/data/v61.0";
      page = emu().Api("GET", page["nextRecordsUrl"].get<std::string>().substr(kApi.size()));
    }
  }

  // Starts `duplex run` with its admin server on a free port; the port, or 0 if it did not start.
  int StartWithAdmin(std::unique_ptr<testing::Process>* run) {
    *run = Background({"run"});
    static const std::regex kListening(R"(admin server listening on http://[^:]+:(\d+)/)");
    int port = 0;
    testing::PollUntil(
        [&] {
          std::smatch m;
          const std::string err = (*run)->Err();
          if (!std::regex_search(err, m, kListening)) return !(*run)->Running();
          port = std::stoi(m[1]);
          return true;
        },
        std::chrono::seconds(30));
    return port;
  }

  // Waits until both sides hold `accounts` ("Name|Industry" lines, by name).
  ::testing::AssertionResult BothSidesHold(const std::string& accounts,
                                           std::chrono::seconds timeout) {
    std::string org, ops;
    const bool same = testing::PollUntil(
        [&] {
          org = OrgAccounts();
          ops = OpsAccounts();
          return org == accounts && ops == accounts;
        },
        timeout, std::chrono::milliseconds(250));
    if (same) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "want\n"
                                         << accounts << "org\n"
                                         << org << "ops\n"
                                         << ops;
  }

  void StopRun(std::unique_ptr<testing::Process>& run) {
    run->Signal(SIGTERM);
    EXPECT_EQ(run->Wait(std::chrono::seconds(30)), 0) << run->Err();
  }

  // No dead letter and no rejected write on any endpoint (`status --json`, run stopped).
  void ExpectNoFailedSyncs() {
    nlohmann::json status = StatusJson();
    ASSERT_TRUE(status.contains("endpoints")) << status.dump();
    for (const auto& ep : status["endpoints"]) {
      EXPECT_EQ(ep["dead_letters"], 0) << ep.dump();
    }
  }
};

// kill -9 of `duplex run` in the middle of a backlog each way (600 database rows on their way
// to the org, 200 org records on their way to the database), then a restart: every account
// exactly once on each side. The Collections upserts in flight when it died are repeated by
// external id, so the org gets no second copy (P6), and nothing captured before the kill is
// lost.
TEST_P(SalesforceFaultsTest, KillNineDuringABacklogNeitherDuplicatesNorLoses) {
  constexpr int kOrg = 200, kOps = 600;
  for (int base = 0; base < kOrg; base += 200) {
    nlohmann::json records = nlohmann::json::array();
    for (int i = base; i < base + 200; ++i) {
      records.push_back(
          {{"attributes", {{"type", "Account"}}}, {"Name", "Org " + std::to_string(i)}});
    }
    nlohmann::json r =
        emu().Api("POST", "/composite/sobjects", {{"allOrNone", true}, {"records", records}});
    ASSERT_TRUE(r.is_array() && r.size() == 200u) << r.dump();
  }
  const std::string last = std::to_string(kOps - 1);
  OpsExec(pg() ? "INSERT INTO accounts(name) SELECT 'Ops ' || g FROM generate_series(0, " + last +
                     ") g;"
               : "WITH RECURSIVE g(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM g WHERE i < " +
                     last + ") INSERT INTO accounts(name) SELECT 'Ops ' || i FROM g;");
  Write();
  const int64_t before = Writes();
  std::unique_ptr<testing::Process> run = Background({"run"});
  // Killed once the first of the three Collections calls the backlog needs has gone through.
  ASSERT_TRUE(testing::PollUntil([&] { return Writes() - before >= 1 || !run->Running(); },
                                 std::chrono::seconds(120), std::chrono::milliseconds(10)))
      << run->Err();
  run->Signal(SIGKILL);
  run->Wait(std::chrono::seconds(30));
  const int64_t at_kill = Writes() - before;
  EXPECT_LT(at_kill, kOps / 200) << "the backlog was gone before the kill: the test proves "
                                    "nothing; raise kOps";

  ASSERT_NO_FATAL_FAILURE(Run());
  std::vector<std::string> org_names, ops_names;
  std::set<std::string> external_ids;
  int64_t with_external_id = 0;
  for (const auto& r : OrgRecords("Account", "Name,External_Id__c")) {
    org_names.push_back(r["Name"].get<std::string>());
    if (!r["External_Id__c"].is_null()) {
      ++with_external_id;
      external_ids.insert(r["External_Id__c"].get<std::string>());
    }
  }
  EXPECT_EQ(static_cast<int64_t>(external_ids.size()), with_external_id)
      << "two org records carry one external id";
  std::stringstream lines(OpsQuery("SELECT name FROM accounts"));
  for (std::string line; std::getline(lines, line);) ops_names.push_back(line);
  std::sort(org_names.begin(), org_names.end());
  std::sort(ops_names.begin(), ops_names.end());
  std::vector<std::string> want;
  for (int i = 0; i < kOrg; ++i) want.push_back("Org " + std::to_string(i));
  for (int i = 0; i < kOps; ++i) want.push_back("Ops " + std::to_string(i));
  std::sort(want.begin(), want.end());
  // Sizes first: a duplicate or a loss, without thousands of names in the message.
  ASSERT_EQ(org_names.size(), want.size())
      << "org accounts after kill -9 at " << at_kill << " writes";
  ASSERT_EQ(ops_names.size(), want.size()) << "database accounts after kill -9";
  EXPECT_TRUE(org_names == want);
  EXPECT_TRUE(ops_names == want);
  ExpectNoFailedSyncs();
}

// The org's daily API requests used up while `duplex run` syncs: the endpoint pauses (status
// and /readyz say so) and writes nothing; a change made meanwhile in the database waits. Once
// the quota frees, duplex resumes on its own and both sides converge.
TEST_P(SalesforceFaultsTest, QuotaExhaustedPausesAndResumesLosingNothing) {
  emu().Api("POST", "/sobjects/Account", {{"Name", "Acme"}});
  Write("External_Id__c", "http = \"127.0.0.1:0\"\n");
  std::unique_ptr<testing::Process> run;
  const int port = StartWithAdmin(&run);
  ASSERT_GT(port, 0) << run->Err();
  ASSERT_TRUE(BothSidesHold("Acme|NULL\n", std::chrono::seconds(60))) << run->Err();

  const nlohmann::json limits = emu().Hook("limits", nlohmann::json::object());
  emu().Hook("limits", {{"used", limits["daily"]}});
  const int64_t writes = Writes();
  OpsExec("INSERT INTO accounts(name, industry) VALUES ('Local Co', 'Retail');");

  httplib::Client admin("127.0.0.1", port);
  admin.set_read_timeout(10);
  std::string status, readyz;
  const bool paused = testing::PollUntil(
      [&] {
        auto s = admin.Get("/api/v1/status");
        auto r = admin.Get("/readyz");
        status = s ? s->body : "";
        readyz = r ? std::to_string(r->status) + " " + r->body : "";
        return status.find("REQUEST_LIMIT_EXCEEDED") != std::string::npos &&
               readyz.rfind("503 ", 0) == 0 && readyz.find("crm") != std::string::npos;
      },
      std::chrono::seconds(30), std::chrono::milliseconds(250));
  EXPECT_TRUE(paused) << "status: " << status << "\nreadyz: " << readyz << "\n" << run->Err();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_EQ(Writes(), writes) << "written while the org refuses every call";

  emu().Hook("limits", {{"used", 0}});
  EXPECT_TRUE(BothSidesHold("Acme|NULL\nLocal Co|Retail\n", std::chrono::seconds(30)))
      << run->Err();
  // status is refreshed every 2 s: it says so soon after.
  const bool resumed = testing::PollUntil(
      [&] {
        auto s = admin.Get("/api/v1/status");
        auto r = admin.Get("/readyz");
        status = s ? s->body : "";
        readyz = r ? std::to_string(r->status) + " " + r->body : "";
        return s && status.find("REQUEST_LIMIT_EXCEEDED") == std::string::npos &&
               readyz.rfind("200 ", 0) == 0;
      },
      std::chrono::seconds(15), std::chrono::milliseconds(250));
  EXPECT_TRUE(resumed) << "status: " << status << "\nreadyz: " << readyz;
  StopRun(run);
  ExpectNoFailedSyncs();
}

// Injected faults while `duplex run` syncs: a polled or written call refused with 503, a
// record refused with UNABLE_TO_LOCK_ROW, and replies lost after their write committed. All
// retried: every account once in the org (a lost reply's write is repeated by external id, not
// duplicated: P6), both sides converged, nothing dead-lettered.
TEST_P(SalesforceFaultsTest, InjectedFaultsAreRetriedWithoutDuplicates) {
  emu().Api("POST", "/sobjects/Account", {{"Name", "Acme"}});
  Write();
  std::unique_ptr<testing::Process> run = Background({"run"});
  ASSERT_TRUE(BothSidesHold("Acme|NULL\n", std::chrono::seconds(60))) << run->Err();

  for (const char* kind : {"HTTP_503", "UNABLE_TO_LOCK_ROW", "DROP_RESPONSE_AFTER_COMMIT"}) {
    emu().Hook("faults", {{"kind", kind}, {"count", 2}});
  }
  std::string want = "Acme|NULL\n";
  for (int i = 0; i < 5; ++i) {
    const std::string name = "Local " + std::to_string(i);
    OpsExec("INSERT INTO accounts(name, industry) VALUES ('" + name + "', 'Retail');");
    want += name + "|Retail\n";
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  ASSERT_TRUE(testing::PollUntil([&] { return emu().Hook("stats")["faults_left"] == 0; },
                                 std::chrono::seconds(60)))
      << "duplex did not meet every injected fault: " << emu().Hook("stats").dump();
  // An edit in the org after the faults: capture still flows.
  nlohmann::json acme =
      emu().Api("GET", "/query?q=SELECT%20Id%20FROM%20Account%20WHERE%20Name%20=%20'Acme'");
  ASSERT_EQ(acme["records"].size(), 1u) << acme.dump();
  emu().Api("PATCH", "/sobjects/Account/" + acme["records"][0]["Id"].get<std::string>(),
            {{"Industry", "Energy"}});
  want.replace(0, std::string("Acme|NULL").size(), "Acme|Energy");
  EXPECT_TRUE(BothSidesHold(want, std::chrono::seconds(60))) << run->Err();
  StopRun(run);
  ExpectNoFailedSyncs();
}

// The transaction-start pitfall (shared/SALESFORCE.md §2.2): an org write stamped at its start
// but visible seconds later, while later writes are already visible and polled past. Its
// change still reaches the database.
TEST_P(SalesforceFaultsTest, LateVisibleStampIsStillCaptured) {
  const std::string acme = emu().Api("POST", "/sobjects/Account", {{"Name", "Acme"}})["id"];
  const std::string beta = emu().Api("POST", "/sobjects/Account", {{"Name", "Beta"}})["id"];
  Write();
  std::unique_ptr<testing::Process> run = Background({"run"});
  ASSERT_TRUE(BothSidesHold("Acme|NULL\nBeta|NULL\n", std::chrono::seconds(60))) << run->Err();

  emu().Hook("hold", {{"seconds", 3}});
  emu().Api("PATCH", "/sobjects/Account/" + acme, {{"Industry", "Held"}});
  // Later writes, visible at once, with newer stamps: polled before Acme's becomes visible.
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    emu().Api("PATCH", "/sobjects/Account/" + beta, {{"Industry", "Later " + std::to_string(i)}});
  }
  EXPECT_TRUE(BothSidesHold("Acme|Held\nBeta|Later 2\n", std::chrono::seconds(30))) << run->Err();
  StopRun(run);
}

// A Flow-like rule of the org (schema "rules"): when Industry changes, the same transaction
// sets Rating = Hot. duplex writes Industry; Rating's new value is the org's own change and
// must reach the database (not dropped as an echo of duplex's write), while Industry's echo
// must not come back as an edit: an idle run writes nothing more.
TEST_P(SalesforceFaultsTest, AFlowRuleChangeInDuplexsWriteReachesTheDatabase) {
  nlohmann::json schema = {
      {"objects",
       {{"Account",
         {{"fields",
           {{"Name", {{"type", "string"}, {"length", 255}, {"nillable", false}}},
            {"Industry", {{"type", "string"}, {"length", 40}}},
            {"Rating", {{"type", "picklist"}, {"picklistValues", {"Hot", "Warm", "Cold"}}}},
            {"External_Id__c",
             {{"type", "string"}, {"length", 255}, {"externalId", true}, {"unique", true}}}}},
          {"rules", {{{"when_changed", "Industry"}, {"set", {{"Rating", "Hot"}}}}}}}},
        {"Contact",
         {{"fields",
           {{"LastName", {{"type", "string"}, {"length", 80}, {"nillable", false}}},
            {"AccountId",
             {{"type", "reference"},
              {"length", 18},
              {"referenceTo", {"Account"}},
              {"relationshipName", "Account"}}},
            {"External_Id__c",
             {{"type", "string"}, {"length", 255}, {"externalId", true}, {"unique", true}}}}}}}}}};
  {
    std::ofstream f(File("schema.json"));
    f << schema.dump(2);
  }
  ASSERT_NO_FATAL_FAILURE(NewOrg({"--daily-limit", "100000000", "--schema", File("schema.json")}));
  OpsExec("ALTER TABLE accounts ADD COLUMN rating TEXT;");
  OpsExec("INSERT INTO accounts(name) VALUES ('Local Co');");
  Write("External_Id__c", "", ", rating = \"Rating\"");
  ASSERT_NO_FATAL_FAILURE(Run());
  ASSERT_EQ(OpsQuery("SELECT name, industry, rating FROM accounts"), "Local Co|NULL|NULL\n");

  OpsExec("UPDATE accounts SET industry = 'Energy' WHERE name = 'Local Co';");
  ASSERT_NO_FATAL_FAILURE(Run());
  nlohmann::json org = emu().Api("GET", "/query?q=SELECT%20Industry,Rating%20FROM%20Account");
  ASSERT_EQ(org["records"].size(), 1u) << org.dump();
  EXPECT_EQ(org["records"][0]["Industry"], "Energy") << org.dump();
  EXPECT_EQ(org["records"][0]["Rating"], "Hot") << "the rule did not run: " << org.dump();
  // `run --until-idle` waited for its write's echo: the rule's change came with it.
  EXPECT_EQ(OpsQuery("SELECT name, industry, rating FROM accounts"), "Local Co|Energy|Hot\n");
  const int64_t writes = Writes();
  ASSERT_NO_FATAL_FAILURE(Run());
  EXPECT_EQ(Writes(), writes) << "an echo went round again: " << emu().Hook("stats").dump();
  EXPECT_EQ(OpsQuery("SELECT name, industry, rating FROM accounts"), "Local Co|Energy|Hot\n");
  ExpectNoFailedSyncs();
}

INSTANTIATE_TEST_SUITE_P(Sides, SalesforceFaultsTest,
                         ::testing::Values(Params{"sqlite", "poll"}, Params{"pg", "cdc"}),
                         [](const ::testing::TestParamInfo<Params>& info) {
                           return info.param.ops + "_" + info.param.capture;
                         });

INSTANTIATE_TEST_SUITE_P(Sides, SalesforceE2eTest,
                         ::testing::Values(Params{"sqlite", "poll"}, Params{"sqlite", "cdc"},
                                           Params{"pg", "poll"}, Params{"pg", "cdc"}),
                         [](const ::testing::TestParamInfo<Params>& info) {
                           return info.param.ops + "_" + info.param.capture;
                         });

}  // namespace
}  // namespace duplex
