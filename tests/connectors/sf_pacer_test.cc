// The quota pacer (src/connectors/salesforce/pacer.h): api_budget, the adaptive poll
// interval, writes paused near the budget, a 403 pausing the endpoint until a call gets
// through; alone and against the local Salesforce's limits (POST /__emulator/limits).
#include <gtest/gtest.h>

#include "connectors/salesforce/pacer.h"
#include "connectors/salesforce/settings.h"
#include "support/sf_emulator.h"

namespace duplex::sf {
namespace {

QuotaPacer::Options Opts(const std::string& budget) {
  QuotaPacer::Options o;
  o.budget = *ApiBudget::Parse(budget);
  return o;
}

TEST(SfApiBudgetTest, ASharePercentOrANumberOfCalls) {
  EXPECT_EQ(ApiBudget::Parse("50%")->Of(100000), 50000);
  EXPECT_EQ(ApiBudget::Parse("12.5%")->Of(1000), 125);
  EXPECT_EQ(ApiBudget::Parse("50%")->Of(-1), -1);  // unknown until a response says
  EXPECT_EQ(ApiBudget::Parse("20000")->Of(100000), 20000);
  EXPECT_EQ(ApiBudget::Parse("20000")->Of(15000), 15000);  // never more than the org has
  EXPECT_EQ(ApiBudget::Parse("50%")->ToString(), "50%");
  for (const char* bad : {"", "0%", "101%", "-3", "lots", "1.5", "50 %", "0"}) {
    Result<ApiBudget> b = ApiBudget::Parse(bad);
    ASSERT_FALSE(b.ok()) << bad;
    EXPECT_NE(b.status().message().find("api_budget"), std::string::npos);
  }
}

TEST(SfApiBudgetTest, PollIntervalsAreDurations) {
  EXPECT_EQ(ParseIntervalMs("2s"), 2000);
  EXPECT_EQ(ParseIntervalMs("1.5s"), 1500);
  EXPECT_EQ(ParseIntervalMs("500ms"), 500);
  EXPECT_EQ(ParseIntervalMs("5m"), 300000);
  EXPECT_EQ(ParseIntervalMs("1h"), 3600000);
  for (const char* bad : {"", "2", "s", "-1s", "2 s", "2d"}) {
    EXPECT_EQ(ParseIntervalMs(bad), std::nullopt) << bad;
  }
}

TEST(SfPacerTest, ThePollIntervalFollowsWhatIsLeft) {
  QuotaPacer p(Opts("50%"));
  const double t = 1'000'000;
  EXPECT_EQ(p.CallsLeft(t), -1);
  EXPECT_EQ(p.NextPollIn(t), 2);  // nothing known yet: the configured interval
  // 50000 a day, half for polls: one poll every 86400 / 25000 = 3.456 s.
  p.Observe({0, 100000}, 1, false, t);
  EXPECT_EQ(p.CallsLeft(t), 49999);
  EXPECT_NEAR(p.NextPollIn(t), 86400.0 / (49999 * 0.5), 1e-9);
  // The org's other integrations used most of the day's quota: what is left of the org's.
  p.Observe({99000, 100000}, 1, false, t);
  EXPECT_EQ(p.CallsLeft(t), 1000);
  EXPECT_NEAR(p.NextPollIn(t), 172.8, 1e-9);
  EXPECT_FALSE(p.WritesPaused(t));
  // Under the capture reserve: writes wait, polls go on, slowly.
  p.Observe({99960, 100000}, 1, false, t);
  EXPECT_TRUE(p.WritesPaused(t));
  EXPECT_EQ(p.NextPollIn(t), 300);
  // duplex's own calls count against its budget, and age out after 24 hours.
  QuotaPacer own(Opts("100"));
  own.Observe({10, 100000}, 60, false, t);
  EXPECT_EQ(own.OwnCalls(t), 60);
  EXPECT_EQ(own.CallsLeft(t), 40);
  EXPECT_TRUE(own.WritesPaused(t));
  EXPECT_EQ(own.OwnCalls(t + 25 * 3600), 0);
  EXPECT_EQ(own.CallsLeft(t + 25 * 3600), 100);
  EXPECT_FALSE(own.WritesPaused(t + 25 * 3600));
}

TEST(SfPacerTest, A403PausesUntilACallGoesThrough) {
  QuotaPacer p(Opts("50%"));
  const double t = 1'000'000;
  p.Observe({100000, 100000}, 1, true, t);
  EXPECT_TRUE(p.Paused(t + 1));
  EXPECT_TRUE(p.WritesPaused(t + 1));
  EXPECT_EQ(p.NextPollIn(t + 1), 59);  // the probe
  EXPECT_FALSE(p.Paused(t + 60));
  EXPECT_TRUE(p.WritesPaused(t + 60));           // until the probe goes through
  p.Observe({100000, 100000}, 1, true, t + 60);  // refused again
  EXPECT_TRUE(p.Paused(t + 61));
  p.Observe({10, 100000}, 1, false, t + 120);  // the rolling window freed some
  EXPECT_FALSE(p.Paused(t + 120));
  EXPECT_FALSE(p.WritesPaused(t + 120));
  EXPECT_FALSE(p.quota_exhausted());
}

TEST(SfPacerTest, AgainstTheEmulatorsLimits) {
  testing::SfEmulator emu({"--daily-limit", "1000"});
  ASSERT_TRUE(emu.running());
  ClientOptions o = emu.ClientOptions();
  Client c(o);
  QuotaPacer::Options opts = Opts("50%");
  opts.capture_reserve = 5;
  QuotaPacer p(opts);
  double t = 1'000'000;
  ASSERT_TRUE(c.Get("/limits").ok());
  p.Observe(c, t);
  EXPECT_EQ(p.org_usage().max, 1000);
  EXPECT_EQ(p.OwnCalls(t), 1);
  EXPECT_EQ(p.CallsLeft(t), 499);
  EXPECT_EQ(p.NextPollIn(t), 300);  // 500 a day leaves a poll every ~6 min: capped at 5
  // The org's other users bring it close to its limit.
  emu.Hook("limits", {{"used", 997}});
  ASSERT_TRUE(c.Get("/limits").ok());
  p.Observe(c, ++t);
  EXPECT_EQ(p.CallsLeft(t), 2);
  EXPECT_TRUE(p.WritesPaused(t));
  ASSERT_TRUE(c.Get("/limits").ok());
  ASSERT_TRUE(c.Get("/limits").ok());
  EXPECT_FALSE(c.Get("/limits").ok());
  p.Observe(c, ++t);
  EXPECT_TRUE(p.Paused(t));
  EXPECT_TRUE(p.quota_exhausted());
  EXPECT_EQ(p.OwnCalls(t), 5);  // the refused call is sent all the same
  // The quota frees: the probe goes through and the endpoint resumes.
  emu.Hook("limits", {{"used", 100}});
  t += 60;
  EXPECT_FALSE(p.Paused(t));
  ASSERT_TRUE(c.Get("/limits").ok());
  p.Observe(c, t);
  EXPECT_FALSE(p.WritesPaused(t));
  EXPECT_EQ(p.CallsLeft(t), 500 - 6);
}

}  // namespace
}  // namespace duplex::sf
