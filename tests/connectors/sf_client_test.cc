// The Salesforce REST client against the local Salesforce (scripts/sf-emulator.sh): login,
// calls, paging, sessions renewed, quota and faults mapped to what the engine must do.
#include <gtest/gtest.h>

#include <string>

#include "connectors/salesforce/client.h"
#include "support/sf_emulator.h"

namespace duplex::sf {
namespace {

using testing::SfEmulator;

ClientOptions Options(const SfEmulator& emu, const std::string& secret = "secret") {
  ClientOptions o = emu.ClientOptions();
  o.client_secret = secret;
  return o;
}

TEST(SfIdTest, EighteenCharacterIdsHaveTheirChecksum) {
  // 001A0: A at 3 (bit 8, I); 00000: none (A); 6Vm9r: V at 1 (bit 2, C).
  EXPECT_EQ(Id18("001A0000006Vm9r"), "001A0000006Vm9rIAC");
  EXPECT_EQ(NormalizeId("001A0000006Vm9r"), "001A0000006Vm9rIAC");
  EXPECT_EQ(NormalizeId("001a0000006vm9riac"), std::nullopt);  // 15 chars are case-sensitive
  EXPECT_EQ(NormalizeId("001A0000006Vm9riac"), "001A0000006Vm9rIAC");
  EXPECT_EQ(NormalizeId("001A0000006Vm9rIAD"), std::nullopt);
  EXPECT_EQ(NormalizeId("001"), std::nullopt);
}

TEST(SfDateTimeTest, ApiDateTimesParseWithTheirOffsets) {
  EXPECT_EQ(ParseDateTime("2013-05-07T22:07:19.000+0000"), 1367964439.0);
  EXPECT_EQ(ParseDateTime("2013-05-07T22:07:19.500+0000"), 1367964439.5);
  EXPECT_EQ(ParseDateTime("2013-05-08T00:07:19+02:00"), 1367964439.0);
  EXPECT_EQ(ParseDateTime("yesterday"), std::nullopt);
  EXPECT_EQ(SoqlDateTime(1367964439), "2013-05-07T22:07:19Z");
}

TEST(SfClientTest, CallsPagesAndCountsTheQuota) {
  SfEmulator emu;
  ASSERT_TRUE(emu.running());
  Client c(Options(emu));
  ASSERT_TRUE(c.Login().ok());
  nlohmann::json records = nlohmann::json::array();
  for (int i = 0; i < 205; ++i) {
    records.push_back({{"attributes", {{"type", "Account"}}}, {"Name", "A" + std::to_string(i)}});
    if (records.size() == 200 || i == 204) {
      Result<nlohmann::json> r =
          c.Send("POST", "/composite/sobjects", {{"allOrNone", true}, {"records", records}});
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      records = nlohmann::json::array();
    }
  }
  int pages = 0, rows = 0;
  Status st =
      c.Query("SELECT Id, Name FROM Account ORDER BY Name", false, [&](nlohmann::json& page) {
        ++pages;
        rows += static_cast<int>(page.size());
        return Status::Ok();
      });
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(rows, 205);
  EXPECT_EQ(pages, 1);  // 2000 a page by default
  EXPECT_EQ(c.calls(), 3);
  EXPECT_EQ(c.usage().used, 3);
  EXPECT_EQ(c.usage().max, 100000);
  EXPECT_EQ(emu.Hook("stats")["api_calls"], 3);
}

// Several queries in one Composite call; a query of more than one page follows its
// nextRecordsUrl with a call per page; a malformed one fails the whole, naming it.
TEST(SfClientTest, SeveralQueriesInOneCall) {
  SfEmulator emu;
  ASSERT_TRUE(emu.running());
  Client c(Options(emu));
  ASSERT_TRUE(c.Login().ok());
  nlohmann::json records = nlohmann::json::array();
  for (int i = 0; i < 2100; ++i) {
    records.push_back({{"attributes", {{"type", "Account"}}}, {"Name", "A" + std::to_string(i)}});
    if (records.size() == 200 || i == 2099) {
      const nlohmann::json body = {{"allOrNone", true}, {"records", records}};
      ASSERT_TRUE(c.Send("POST", "/composite/sobjects", body).ok());
      records = nlohmann::json::array();
    }
  }
  nlohmann::json contact = {{"attributes", {{"type", "Contact"}}}, {"LastName", "L"}};
  const nlohmann::json body = {{"allOrNone", true}, {"records", nlohmann::json::array({contact})}};
  ASSERT_TRUE(c.Send("POST", "/composite/sobjects", body).ok());
  const int64_t before = c.calls();
  std::vector<int> rows(3, 0), pages(3, 0);
  const std::vector<std::string> queries = {"SELECT Id FROM Account WHERE Name = 'A7'",
                                            "SELECT Id, LastName FROM Contact",
                                            "SELECT Id FROM Account"};
  Status st = c.QueryMany(queries, true, [&](size_t i, nlohmann::json& page) {
    ++pages[i];
    rows[i] += static_cast<int>(page.size());
    return Status::Ok();
  });
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(rows, (std::vector<int>{1, 1, 2100}));
  EXPECT_EQ(pages, (std::vector<int>{1, 1, 2}));
  EXPECT_EQ(c.calls() - before, 2);  // the composite, and the second page of the third

  st = c.QueryMany({"SELECT Id FROM Account", "SELECT Nope FROM Contact"}, true,
                   [&](size_t, nlohmann::json&) { return Status::Ok(); });
  EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
  EXPECT_NE(st.message().find("Nope"), std::string::npos) << st.ToString();
}

TEST(SfClientTest, ErrorsSayWhatTheEngineMustDo) {
  SfEmulator emu({"--daily-limit", "3"});
  ASSERT_TRUE(emu.running());
  Client bad(Options(emu, "wrong"));
  Status st = bad.Login();
  EXPECT_TRUE(st.IsInvalidArgument()) << st.ToString();
  EXPECT_NE(st.message().find("endpoint 'crm'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("invalid_client"), std::string::npos) << st.message();

  Client c(Options(emu));
  // A validation error names the code, the message and the field.
  Result<nlohmann::json> r = c.Send("POST", "/sobjects/Account", {{"Industry", "no name"}});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_NE(r.status().message().find("REQUIRED_FIELD_MISSING"), std::string::npos);
  EXPECT_NE(r.status().message().find("Name"), std::string::npos);
  // An expired session is renewed within the call.
  emu.Hook("expire-sessions", nlohmann::json::object());
  EXPECT_TRUE(c.Get("/limits").ok());
  // Lock contention and 503 are retried later; a lost reply too.
  emu.Hook("faults", {{"kind", "HTTP_503"}, {"count", 1}});
  r = c.Get("/limits");
  EXPECT_TRUE(r.status().IsRetriable()) << r.status().ToString();
  emu.Hook("faults", {{"kind", "DROP_RESPONSE_AFTER_COMMIT"}, {"count", 1}});
  r = c.Send("POST", "/sobjects/Account", {{"Name", "Lost reply"}});
  EXPECT_TRUE(r.status().IsRetriable()) << r.status().ToString();
  // The daily quota: paused, not failed.
  r = c.Get("/limits");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsRetriable());
  EXPECT_TRUE(c.quota_exhausted());
  EXPECT_NE(r.status().message().find("REQUEST_LIMIT_EXCEEDED"), std::string::npos);
  emu.Hook("limits", {{"daily", 100}});
  EXPECT_TRUE(c.Get("/limits").ok());
  EXPECT_FALSE(c.quota_exhausted());
  // Unreachable.
  ClientOptions gone = Options(emu);
  gone.instance_url = "http://127.0.0.1:1";
  Client nowhere(gone);
  EXPECT_TRUE(nowhere.Login().IsRetriable());
}

}  // namespace
}  // namespace duplex::sf
