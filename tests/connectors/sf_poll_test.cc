// Polling capture's cursor (src/connectors/salesforce/poll.h), alone and against the local
// Salesforce with a transaction that becomes visible after later ones (the transaction-start
// pitfall of shared/SALESFORCE.md §2.2).
#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <thread>

#include "connectors/salesforce/client.h"
#include "connectors/salesforce/poll.h"
#include "support/sf_emulator.h"

namespace duplex::sf {
namespace {

nlohmann::json Row(const std::string& id, const std::string& stamp, const std::string& name) {
  return {{"attributes", {{"type", "Account"}}},
          {"Id", id},
          {"SystemModstamp", stamp},
          {"IsDeleted", false},
          {"Name", name}};
}

TEST(SfPollTest, OverlapReadsAgainAndDropsWhatWasDelivered) {
  Poller p("Account", {"Name"}, 10);
  PollCursor c;
  EXPECT_EQ(p.Query(c),
            "SELECT Id, SystemModstamp, IsDeleted, Name FROM Account ORDER BY "
            "SystemModstamp, Id");
  auto out = p.Take(c, {Row("001a", "2024-01-01T00:00:10.000+0000", "a"),
                        Row("001b", "2024-01-01T00:00:20.000+0000", "b")});
  EXPECT_EQ(out.size(), 2u);
  EXPECT_EQ(c.id, "001b");
  EXPECT_EQ(p.Query(c),
            "SELECT Id, SystemModstamp, IsDeleted, Name FROM Account WHERE "
            "SystemModstamp >= 2024-01-01T00:00:10Z ORDER BY SystemModstamp, Id");
  // The same rows again, a late one stamped before b, and b written again in the same second.
  out = p.Take(c, {Row("001a", "2024-01-01T00:00:10.000+0000", "a"),
                   Row("001c", "2024-01-01T00:00:15.000+0000", "late"),
                   Row("001b", "2024-01-01T00:00:20.000+0000", "b"),
                   Row("001b", "2024-01-01T00:00:20.000+0000", "b2")});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0]["Name"], "late");
  EXPECT_EQ(out[1]["Name"], "b2");
  // Survives a restart as the endpoint's position.
  Result<PollCursor> again = PollCursor::Parse(c.Serialize());
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(p.Take(*again, {Row("001b", "2024-01-01T00:00:20.000+0000", "b2")}).empty());
  // The window moves on: what fell out of it is forgotten.
  p.Take(c, {Row("001d", "2024-01-01T00:01:00.000+0000", "d")});
  EXPECT_EQ(c.recent.size(), 1u);
  EXPECT_FALSE(PollCursor::Parse("[1]").ok());
}

// With change events on, the polls read rows the events delivered already. They are dropped,
// but the cursor still moves past them: otherwise every later poll reads again everything
// changed since, and `recent` (held in the position) keeps every row of it.
TEST(SfPollTest, RowsEventsDeliveredMoveTheCursor) {
  Poller p("Account", {"Name"}, 10, 30);
  PollCursor c;
  c.recent["001a"] = {1704067210, kDeliveredByEvent};  // 2024-01-01T00:00:10Z
  c.recent["001b"] = {1704067220, kDeliveredByEvent};  // 2024-01-01T00:00:20Z
  EXPECT_TRUE(p.Take(c, {Row("001a", "2024-01-01T00:00:10.000+0000", "a"),
                         Row("001b", "2024-01-01T00:00:20.000+0000", "b")})
                  .empty());
  EXPECT_EQ(c.id, "001b");
  EXPECT_EQ(p.Query(c),
            "SELECT Id, SystemModstamp, IsDeleted, Name FROM Account WHERE "
            "SystemModstamp >= 2024-01-01T00:00:10Z ORDER BY SystemModstamp, Id");
  // An event-delivered row a minute later: the window moves, the old entries are forgotten.
  c.recent["001c"] = {1704067280, kDeliveredByEvent};  // 2024-01-01T00:01:20Z
  EXPECT_TRUE(p.Take(c, {Row("001c", "2024-01-01T00:01:20.000+0000", "c")}).empty());
  EXPECT_EQ(c.recent.size(), 1u);
}

TEST(SfPollTest, AHeldTransactionIsNotMissedAgainstTheEmulator) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  ClientOptions o = emu.ClientOptions();
  Client client(o);
  Poller p("Account", {"Name"}, 5);
  PollCursor c;
  std::set<std::string> delivered;
  auto poll = [&] {
    std::vector<nlohmann::json> rows;
    Status st = client.Query(p.Query(c), true, [&](nlohmann::json& page) {
      for (nlohmann::json& r : page) rows.push_back(std::move(r));
      return Status::Ok();
    });
    ASSERT_TRUE(st.ok()) << st.ToString();
    for (const nlohmann::json& r : p.Take(c, std::move(rows))) delivered.insert(r["Name"]);
  };
  emu.Hook("hold", {{"seconds", 2}});
  emu.Api("POST", "/sobjects/Account", {{"Name", "held"}});  // stamped now, visible in 2 s
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  emu.Api("POST", "/sobjects/Account", {{"Name", "later"}});
  poll();
  EXPECT_EQ(delivered, (std::set<std::string>{"later"}));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  poll();
  EXPECT_EQ(delivered, (std::set<std::string>{"held", "later"}));
  const size_t before = delivered.size();
  poll();
  EXPECT_EQ(delivered.size(), before);
}

}  // namespace
}  // namespace duplex::sf
