// Change Data Capture over CometD (src/connectors/salesforce/cdc.h): events to per-record
// changes, gaps and wildcards, and the stream against the local Salesforce: replay ids kept
// across a new stream, an expired replay id reported, the origin as a pre-filter only.
#include <gtest/gtest.h>

#include "connectors/salesforce/cdc.h"
#include "support/sf_emulator.h"

namespace duplex::sf {
namespace {

nlohmann::json Event(const nlohmann::json& header, int64_t replay,
                     const nlohmann::json& fields = nlohmann::json::object()) {
  nlohmann::json payload = fields;
  payload["ChangeEventHeader"] = header;
  return {{"channel", "/data/ChangeEvents"},
          {"data", {{"schema", "x"}, {"payload", payload}, {"event", {{"replayId", replay}}}}}};
}

TEST(SfCdcTest, EventsBecomePerRecordChanges) {
  CdcBatch b;
  ASSERT_TRUE(AppendChangeEvent(
                  Event({{"entityName", "Account"},
                         {"recordIds", {"001A0000006Vm9r", "001A0000006Vm9sIAC"}},
                         {"changeType", "UPDATE"},
                         {"changedFields", {"Rating", "LastModifiedDate"}},
                         {"changeOrigin", "com/salesforce/api/rest/61.0;client=duplex-crm"},
                         {"transactionKey", "tx1"},
                         {"sequenceNumber", 2},
                         {"commitTimestamp", 1700000000000}},
                        42, {{"Rating", "Hot"}, {"LastModifiedDate", "2023-11-14T22:13:20Z"}}),
                  b)
                  .ok());
  ASSERT_EQ(b.changes.size(), 2u);
  EXPECT_EQ(b.changes[0].id, "001A0000006Vm9rIAC");  // 18 characters
  EXPECT_EQ(b.changes[1].id, "001A0000006Vm9sIAC");
  EXPECT_EQ(b.changes[1].values["Rating"], "Hot");
  EXPECT_EQ(b.changes[0].changed_fields, (std::vector<std::string>{"Rating", "LastModifiedDate"}));
  EXPECT_EQ(b.changes[0].transaction_key, "tx1");
  EXPECT_EQ(b.changes[0].sequence, 2);
  EXPECT_EQ(b.changes[0].commit_ms, 1700000000000);
  EXPECT_EQ(b.changes[0].replay_id, 42);
  EXPECT_TRUE(b.changes[0].FromClient("duplex-crm"));
  EXPECT_FALSE(b.changes[0].FromClient("crm"));
  EXPECT_FALSE(b.changes[0].FromClient(""));
  EXPECT_EQ(b.last_replay_id, 42);

  // A gap names records to read again; an overflow's wildcard, the whole object.
  ASSERT_TRUE(AppendChangeEvent(Event({{"entityName", "Contact"},
                                       {"recordIds", {"003000000000001"}},
                                       {"changeType", "GAP_UPDATE"}},
                                      43),
                                b)
                  .ok());
  ASSERT_TRUE(AppendChangeEvent(Event({{"entityName", "Account"},
                                       {"recordIds", {"001*"}},
                                       {"changeType", "GAP_OVERFLOW"}},
                                      44),
                                b)
                  .ok());
  ASSERT_EQ(b.gaps.size(), 2u);
  EXPECT_EQ(b.gaps[0].ids, (std::vector<std::string>{"003000000000001AAA"}));
  EXPECT_TRUE(b.gaps[1].ids.empty());
  EXPECT_EQ(b.gaps[1].object, "Account");
  EXPECT_EQ(b.last_replay_id, 44);
  EXPECT_FALSE(AppendChangeEvent({{"channel", "/data/ChangeEvents"}, {"data", 1}}, b).ok());
  EXPECT_FALSE(
      AppendChangeEvent(
          Event({{"entityName", "Account"}, {"recordIds", {"not an id"}}, {"changeType", "CREATE"}},
                45),
          b)
          .ok());
}

ClientOptions Options(const testing::SfEmulator& emu) { return emu.ClientOptions(); }

// Next() until `n` changes came (each waits at most the emulator's 2 s long-poll).
std::vector<CdcChange> Take(CometdStream& s, size_t n, CdcBatch* last = nullptr) {
  std::vector<CdcChange> out;
  for (int i = 0; i < 10 && out.size() < n; ++i) {
    Result<CdcBatch> b = s.Next();
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    if (!b.ok()) break;
    for (CdcChange& c : b->changes) out.push_back(std::move(c));
    if (last) *last = *b;
  }
  return out;
}

TEST(SfCdcTest, TheStreamResumesFromItsReplayId) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  CometdStream s(Options(emu));
  ASSERT_TRUE(s.Start(-1).ok());
  Client writer(Options(emu));  // duplex's own writes: client=duplex-crm
  Result<nlohmann::json> created = writer.Send("POST", "/sobjects/Account", {{"Name", "Ours"}});
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  const std::string id = (*created)["id"];
  emu.Api("PATCH", "/sobjects/Account/" + id, {{"Industry", "Energy"}});  // a user's edit
  std::vector<CdcChange> got = Take(s, 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].change_type, "CREATE");
  EXPECT_EQ(got[0].values["Name"], "Ours");
  EXPECT_TRUE(got[0].FromClient("duplex-crm"));
  EXPECT_EQ(got[1].change_type, "UPDATE");
  EXPECT_FALSE(got[1].FromClient("duplex-crm"));
  EXPECT_EQ(got[1].changed_fields, (std::vector<std::string>{"Industry", "LastModifiedDate"}));
  const int64_t stored = s.replay_id();
  EXPECT_EQ(stored, got[1].replay_id);

  // A new stream (a restart) from the stored replay id gets only what came after it.
  emu.Api("DELETE", "/sobjects/Account/" + id);
  CometdStream again(Options(emu));
  ASSERT_TRUE(again.Start(stored).ok());
  got = Take(again, 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].change_type, "DELETE");
  EXPECT_EQ(got[0].id, id);
  EXPECT_TRUE(got[0].values.empty());

  // The stored id aged past the retention: the stream says so, and goes on from what is kept.
  emu.Api("POST", "/sobjects/Account", {{"Name", "After"}});
  emu.Hook("events", {{"expire_through", stored}});
  CometdStream late(Options(emu));
  ASSERT_TRUE(late.Start(stored).ok());
  CdcBatch last;
  got = Take(late, 2, &last);
  ASSERT_EQ(got.size(), 2u);  // the delete and "After", still retained
  EXPECT_EQ(got[1].values["Name"], "After");

  // A gap event tells which object to read again.
  emu.Hook("events", {{"gap", {{"entity", "Account"}, {"changeType", "GAP_OVERFLOW"}}}});
  Result<CdcBatch> b = late.Next();
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->gaps.size(), 1u);
  EXPECT_EQ(b->gaps[0].object, "Account");
  EXPECT_TRUE(b->gaps[0].ids.empty());
}

TEST(SfCdcTest, AnExpiredReplayIdIsReported) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  CometdStream s(Options(emu));
  ASSERT_TRUE(s.Start(-1).ok());
  emu.Api("POST", "/sobjects/Account", {{"Name", "One"}});
  std::vector<CdcChange> got = Take(s, 1);
  ASSERT_EQ(got.size(), 1u);
  emu.Hook("events", {{"expire_through", s.replay_id()}});
  CometdStream late(Options(emu));
  ASSERT_TRUE(late.Start(s.replay_id()).ok());
  Result<CdcBatch> b = late.Next();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_TRUE(b->replay_expired);
  b = late.Next();
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(b->replay_expired);  // said once
}

}  // namespace
}  // namespace duplex::sf
