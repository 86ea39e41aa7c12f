// One org as duplex syncs it (src/connectors/salesforce/endpoint.h) against the local
// Salesforce: what the org lacks named at Open, capture from events and polls under one
// position that survives a restart, writes paused when the budget is spent.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "connectors/salesforce/endpoint.h"
#include "support/sf_emulator.h"

namespace duplex::sf {
namespace {

SfEndpoint::Options Opts(const testing::SfEmulator& emu, bool events) {
  SfEndpoint::Options o;
  o.client = emu.ClientOptions();
  o.external_id = "External_Id__c";
  o.objects = {{"Account", {"Name", "Industry"}}, {"Contact", {"LastName", "AccountId"}}};
  o.events = events;
  o.pacing.min_poll_seconds = 0.1;
  o.overlap_seconds = 2;
  return o;
}

// Capture() until `n` changes came or 10 s passed.
std::vector<SfChange> CaptureN(SfEndpoint& ep, std::string& pos, size_t n) {
  std::vector<SfChange> out;
  for (int i = 0; i < 100 && out.size() < n; ++i) {
    Result<std::vector<SfChange>> got = ep.Capture(pos);
    EXPECT_TRUE(got.ok()) << got.status().ToString();
    if (!got.ok()) break;
    for (SfChange& c : *got) out.push_back(std::move(c));
    if (out.size() < n) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return out;
}

TEST(SfEndpointTest, OpenNamesWhatTheOrgLacks) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  SfEndpoint::Options o = Opts(emu, false);
  o.external_id = "duplex_key__c";
  o.objects.push_back({"Opportunity", {"Name"}});
  SfEndpoint ep(o, *Env::Default());
  Status st = ep.Open("");
  ASSERT_TRUE(st.IsInvalidArgument()) << st.ToString();
  EXPECT_NE(st.message().find("object 'Account' has no field 'duplex_key__c': create a Text(255) "
                              "custom field marked External ID and Unique"),
            std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("object 'Opportunity'"), std::string::npos) << st.message();
}

TEST(SfEndpointTest, EventsAndPollsUnderOnePositionAcrossARestart) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  emu.Api("POST", "/sobjects/Account", {{"Name", "Before"}, {"External_Id__c", "A-0"}});
  std::string pos;
  {
    SfEndpoint ep(Opts(emu, true), *Env::Default());
    ASSERT_TRUE(ep.Open(pos).ok());
    std::vector<SfChange> got = CaptureN(ep, pos, 1);  // the first poll: the initial rows
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].source, SfChange::Source::kPoll);
    EXPECT_EQ(got[0].values["External_Id__c"], "A-0");
    // duplex's own write and a user's edit come as events, once (the polls cross-check).
    Result<std::vector<RecordResult>> w =
        ep.Upsert("Account", {{{"External_Id__c", "A-1"}, {"Name", "Ours"}}});
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    emu.Api("PATCH", "/sobjects/Account/External_Id__c/A-0", {{"Industry", "Energy"}});
    got = CaptureN(ep, pos, 2);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].source, SfChange::Source::kEvent);
    EXPECT_NE(got[0].change_origin.find("client=duplex-crm"), std::string::npos);
    EXPECT_EQ(got[1].values["Industry"], "Energy");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    Result<std::vector<SfChange>> more = ep.Capture(pos);
    ASSERT_TRUE(more.ok());
    EXPECT_TRUE(more->empty()) << more->size();
  }
  // Restarted from the stored position: only what came after it.
  emu.Api("POST", "/sobjects/Contact", {{"LastName", "Kid"}, {"External_Id__c", "C-1"}});
  SfEndpoint again(Opts(emu, true), *Env::Default());
  ASSERT_TRUE(again.Open(pos).ok());
  std::vector<SfChange> got = CaptureN(again, pos, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].object, "Contact");
  EXPECT_EQ(got[0].values["LastName"], "Kid");
}

TEST(SfEndpointTest, StoppingBreaksOffTheLongPoll) {
  testing::SfEmulator emu({"--cometd-timeout", "60"});  // a /meta/connect waits 60 s
  ASSERT_TRUE(emu.running());
  const auto start = std::chrono::steady_clock::now();
  {
    SfEndpoint ep(Opts(emu, true), *Env::Default());
    ASSERT_TRUE(ep.Open("").ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the thread is waiting
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

TEST(SfEndpointTest, IdsAndExternalIdsBothWays) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  SfEndpoint ep(Opts(emu, false), *Env::Default());
  ASSERT_TRUE(ep.Open("").ok());
  Result<std::vector<RecordResult>> w =
      ep.Upsert("Account", {{{"External_Id__c", "ops:1"}, {"Name", "One"}},
                            {{"External_Id__c", "ops:\"it's\""}, {"Name", "Quoted"}}});
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  const std::string users = emu.Api("POST", "/sobjects/Account", {{"Name", "A user's"}})["id"];
  Result<std::map<std::string, std::string>> ids =
      ep.IdsByExternalId("Account", {"OPS:1", "ops:\"it's\"", "ops:404"});
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  EXPECT_EQ(*ids, (std::map<std::string, std::string>{{"OPS:1", (*w)[0].id},
                                                      {"ops:\"it's\"", (*w)[1].id}}));
  Result<std::map<std::string, std::string>> keys =
      ep.ExternalIdsById("Account", {(*w)[0].id, users.substr(0, 15)});
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  EXPECT_EQ(*keys, (std::map<std::string, std::string>{{(*w)[0].id, "ops:1"}, {users, ""}}));
  EXPECT_TRUE(ep.ExternalIdsById("Account", {"nope"}).status().IsInvalidArgument());
  // A deleted record's key, for a captured delete (which carries only the Id).
  ASSERT_TRUE(ep.Delete("Account", {(*w)[0].id}).ok());
  keys = ep.ExternalIdsById("Account", {(*w)[0].id});
  ASSERT_TRUE(keys.ok());
  EXPECT_TRUE(keys->empty());
  keys = ep.ExternalIdsById("Account", {(*w)[0].id}, /*include_deleted=*/true);
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(*keys, (std::map<std::string, std::string>{{(*w)[0].id, "ops:1"}}));
  Result<std::vector<RecordResult>> u = ep.Update("Account", {{{"Id", users}, {"Name", "Ed"}}});
  ASSERT_TRUE(u.ok());
  EXPECT_EQ((*u)[0].outcome, WriteOutcome::kUpdated);
}

TEST(SfEndpointTest, PollingAloneAndWritesPausedByTheBudget) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  SfEndpoint::Options o = Opts(emu, false);
  o.pacing.budget = *ApiBudget::Parse("12");
  o.pacing.capture_reserve = 4;
  SfEndpoint ep(o, *Env::Default());
  std::string pos;
  ASSERT_TRUE(ep.Open(pos).ok());  // two describes (a login is no API request)
  ASSERT_TRUE(ep.Upsert("Account", {{{"External_Id__c", "P-1"}, {"Name", "One"}}}).ok());
  std::vector<SfChange> got = CaptureN(ep, pos, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].values["Name"], "One");
  // Two describes, an upsert, a poll of both objects (one Composite call) and a sweep (updated
  // and deleted of each, a query of the updated id): 9 calls of 12, under the reserve of 4.
  Result<std::vector<RecordResult>> w =
      ep.Upsert("Account", {{{"External_Id__c", "P-2"}, {"Name", "Two"}}});
  ASSERT_FALSE(w.ok());
  EXPECT_TRUE(w.status().IsRetriable());
  EXPECT_NE(w.status().message().find("writes to Account paused"), std::string::npos)
      << w.status().message();
  EXPECT_NE(w.status().message().find("budget 12 calls"), std::string::npos);
}

// Writes of two objects go in one call, and a poll due then rides in it: the next Capture takes
// the poll's rows without a call of its own.
TEST(SfEndpointTest, AWriteCarriesTheDuePoll) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  SfEndpoint::Options o = Opts(emu, false);
  SfEndpoint ep(o, *Env::Default());
  std::string pos;
  ASSERT_TRUE(ep.Open(pos).ok());
  ASSERT_TRUE(ep.Capture(pos).ok());  // the initial load (nothing) and the first sweep
  // Until a poll is due (the pacer spreads the daily limit: about 1.7 s here).
  for (int i = 0; i < 100 && !ep.HasNews(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(ep.HasNews());

  const int64_t before = ep.client().calls();
  Writer::Request accounts;
  accounts.object = "Account";
  accounts.external_id_field = "External_Id__c";
  accounts.records = {{{"External_Id__c", "P-1"}, {"Name", "One"}}};
  Writer::Request contacts = accounts;
  contacts.object = "Contact";
  contacts.records = {{{"External_Id__c", "C-1"}, {"LastName", "Doe"}}};
  Result<std::vector<std::vector<RecordResult>>> w = ep.Write({accounts, contacts});
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ((*w)[0][0].outcome, WriteOutcome::kCreated);
  EXPECT_EQ((*w)[1][0].outcome, WriteOutcome::kCreated);
  EXPECT_EQ(ep.client().calls() - before, 1);
  EXPECT_TRUE(ep.HasNews());  // the poll's rows wait for the next Capture

  Result<std::vector<SfChange>> first = ep.Capture(pos);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(ep.client().calls() - before, 1) << "the capture polled again";
  // Both writes show in capture (in that poll or the next).
  std::vector<SfChange> got = CaptureN(ep, pos, 2 - std::min<size_t>(2, first->size()));
  EXPECT_EQ(first->size() + got.size(), 2u);
}

}  // namespace
}  // namespace duplex::sf
