// Capture of one object (src/connectors/salesforce/capture.h) against the local Salesforce:
// a write that commits after later ones, beyond the poll's overlap window, is found by the
// updated/deleted sweep; change events and polls deliver a change once; a gap re-reads.
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <set>
#include <thread>

#include "connectors/salesforce/capture.h"
#include "support/sf_emulator.h"

namespace duplex::sf {
namespace {

ClientOptions Options(const testing::SfEmulator& emu) { return emu.ClientOptions(); }

std::vector<std::string> Names(const Result<std::vector<SfChange>>& r) {
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  std::vector<std::string> out;
  if (!r.ok()) return out;
  for (const SfChange& c : *r) {
    out.push_back(c.deleted ? "-" + c.id : c.values.value("Name", std::string("?")));
  }
  return out;
}

void Sleep(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

TEST(SfCaptureTest, ALateCommitBeyondTheOverlapIsFoundByTheSweep) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  Client client(Options(emu));
  ObjectCapture cap(client, "Account", {"Name"}, 1);
  ObjectPosition pos;
  emu.Hook("hold", {{"seconds", 4}});
  emu.Api("POST", "/sobjects/Account", {{"Name", "held"}});  // stamped now, visible in 4 s
  Sleep(2200);
  const std::string later = emu.Api("POST", "/sobjects/Account", {{"Name", "later"}})["id"];
  EXPECT_EQ(Names(cap.Poll(pos)), (std::vector<std::string>{"later"}));
  // The open transaction holds latestDateCovered back; nothing new yet.
  EXPECT_TRUE(Names(cap.Sweep(pos, static_cast<double>(std::time(nullptr)))).empty());
  Sleep(2200);  // "held" is visible now, stamped 2 s before "later": outside the overlap
  emu.Api("POST", "/sobjects/Account", {{"Name", "after"}});
  EXPECT_EQ(Names(cap.Poll(pos)), (std::vector<std::string>{"after"}));
  EXPECT_EQ(Names(cap.Sweep(pos, static_cast<double>(std::time(nullptr)))),
            (std::vector<std::string>{"held"}));
  // Once found, not again; a delete comes once, from the poll or the sweep.
  EXPECT_TRUE(Names(cap.Sweep(pos, static_cast<double>(std::time(nullptr)))).empty());
  emu.Api("DELETE", "/sobjects/Account/" + later);
  EXPECT_EQ(Names(cap.Poll(pos)), (std::vector<std::string>{"-" + later}));
  EXPECT_TRUE(Names(cap.Sweep(pos, static_cast<double>(std::time(nullptr)))).empty());

  // The position survives a restart.
  Result<ObjectPosition> again = ObjectPosition::FromJson(pos.ToJson());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->sweep_from, pos.sweep_from);
  EXPECT_EQ(again->poll.recent, pos.poll.recent);
  EXPECT_TRUE(Names(cap.Poll(*again)).empty());
  EXPECT_FALSE(ObjectPosition::FromJson(nlohmann::json::array()).ok());
}

TEST(SfCaptureTest, ASweepOfManyChangesReadsTheWindowInOneQuery) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  Client client(Options(emu));
  ObjectCapture cap(client, "Account", {"Name"}, 1);
  ObjectPosition pos;
  emu.Hook("hold", {{"seconds", 4}});
  emu.Api("POST", "/sobjects/Account", {{"Name", "held"}});
  Sleep(2200);
  nlohmann::json records = nlohmann::json::array();
  for (int i = 0; i < 250; ++i) {
    records.push_back({{"attributes", {{"type", "Account"}}}, {"Name", "n" + std::to_string(i)}});
    if (records.size() == 200 || i == 249) {
      emu.Api("POST", "/composite/sobjects", {{"records", records}});
      records = nlohmann::json::array();
    }
  }
  EXPECT_EQ(Names(cap.Poll(pos)).size(), 250u);
  Sleep(2200);
  EXPECT_TRUE(Names(cap.Poll(pos)).empty());
  const int64_t before = client.calls();
  EXPECT_EQ(Names(cap.Sweep(pos, static_cast<double>(std::time(nullptr)))),
            (std::vector<std::string>{"held"}));
  EXPECT_EQ(client.calls() - before, 3);  // updated, deleted, one queryAll for 251 rows
}

TEST(SfCaptureTest, ADeleteCommittingLateIsFoundByTheSweep) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  Client client(Options(emu));
  ObjectCapture cap(client, "Account", {"Name"}, 1);
  ObjectPosition pos;
  const std::string gone = emu.Api("POST", "/sobjects/Account", {{"Name", "gone"}})["id"];
  EXPECT_EQ(Names(cap.Poll(pos)), (std::vector<std::string>{"gone"}));
  emu.Hook("hold", {{"seconds", 4}});
  emu.Api("DELETE", "/sobjects/Account/" + gone);
  Sleep(2200);
  emu.Api("POST", "/sobjects/Account", {{"Name", "later"}});
  EXPECT_EQ(Names(cap.Poll(pos)), (std::vector<std::string>{"later"}));
  Sleep(2200);
  EXPECT_TRUE(Names(cap.Poll(pos)).empty());  // the delete's stamp is outside the overlap
  EXPECT_EQ(Names(cap.Sweep(pos, static_cast<double>(std::time(nullptr)))),
            (std::vector<std::string>{"-" + gone}));
}

TEST(SfCaptureTest, EventsAndPollsDeliverAChangeOnceAndAGapReads) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  Client client(Options(emu));
  ObjectCapture cap(client, "Account", {"Name", "Industry"}, 5);
  ObjectPosition pos;
  EXPECT_TRUE(Names(cap.Poll(pos)).empty());
  CometdStream stream(Options(emu));
  ASSERT_TRUE(stream.Start(-1).ok());
  const std::string id = emu.Api("POST", "/sobjects/Account", {{"Name", "A"}})["id"];
  emu.Api("PATCH", "/sobjects/Account/" + id, {{"Industry", "Energy"}});
  std::vector<SfChange> seen;
  for (int i = 0; i < 10 && seen.size() < 2; ++i) {
    Result<CdcBatch> b = stream.Next();
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    for (const CdcChange& c : b->changes) seen.push_back(cap.NoteEvent(pos, c));
  }
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].source, SfChange::Source::kEvent);
  EXPECT_EQ(seen[1].changed_fields, (std::vector<std::string>{"Industry", "LastModifiedDate"}));
  EXPECT_EQ(seen[1].values["Industry"], "Energy");
  EXPECT_GT(seen[1].stamp, 0);
  // The poll that cross-checks the events finds nothing they did not deliver.
  EXPECT_TRUE(Names(cap.Poll(pos)).empty());
  // A gap names the record: read again.
  Result<std::vector<SfChange>> again = cap.Reread(pos, {id});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0].values["Industry"], "Energy");
  EXPECT_EQ((*again)[0].source, SfChange::Source::kReread);
  // An overflow: every row in the poll's window again.
  cap.ForgetDelivered(pos);
  EXPECT_EQ(Names(cap.Poll(pos)), (std::vector<std::string>{"A"}));
}

}  // namespace
}  // namespace duplex::sf
