// When an endpoint's alert fires and clears: once each, not once per check.
#include "pipeline/alerts.h"

#include <gtest/gtest.h>

namespace duplex {
namespace {

TEST(AlertMonitorTest, LagOverTheObjectiveFiresOnceAndClearsOnce) {
  AlertMonitor m(/*objective_seconds=*/5, /*alert_after_seconds=*/30);
  EXPECT_FALSE(m.Update("crm", 4.9, 0, ""));
  std::optional<AlertEvent> e = m.Update("crm", 5.1, 0, "");
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->firing);
  EXPECT_EQ(e->reason, "lag");
  EXPECT_NE(e->message.find("crm"), std::string::npos) << e->message;
  EXPECT_FALSE(m.Update("crm", 9, 0, ""));  // still firing: no second event
  EXPECT_FALSE(m.Active("crm").empty());
  EXPECT_TRUE(m.Active("billing").empty());
  e = m.Update("crm", 0, 0, "");
  ASSERT_TRUE(e);
  EXPECT_FALSE(e->firing);
  EXPECT_EQ(e->reason, "lag");
  EXPECT_FALSE(m.Update("crm", 0, 0, ""));
  EXPECT_TRUE(m.Active("crm").empty());
}

TEST(AlertMonitorTest, UnreachableFiresOnlyAfterAlertAfter) {
  AlertMonitor m(5, 30);
  // Unreachable but not for long: its growing lag alone does not fire.
  EXPECT_FALSE(m.Update("crm", 20, 20, "apply: database is locked"));
  std::optional<AlertEvent> e = m.Update("crm", 31, 31, "apply: database is locked");
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->firing);
  EXPECT_EQ(e->reason, "unreachable");
  EXPECT_EQ(e->error, "apply: database is locked");
  EXPECT_FALSE(m.Update("crm", 40, 40, "apply: database is locked"));
  // Back, and caught up: cleared.
  e = m.Update("crm", 0, 0, "");
  ASSERT_TRUE(e);
  EXPECT_FALSE(e->firing);
  EXPECT_EQ(e->reason, "unreachable");
}

TEST(AlertMonitorTest, StoppedFiresAtOnceEvenOverALagAlertAndClearsWhenItRunsAgain) {
  AlertMonitor m(5, 30);
  ASSERT_TRUE(m.Update("crm", 6, 0, ""));  // the lag alert fires first
  const std::string error = "stopped: capture: corruption: change 7 cannot be decoded";
  // Stopped a moment ago: no alert_after to wait for, and it says more than the lag did.
  std::optional<AlertEvent> e = m.Update("crm", 7, 0.1, error, /*stopped=*/true);
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->firing);
  EXPECT_EQ(e->reason, "stopped");
  EXPECT_EQ(e->error, error);
  EXPECT_NE(e->message.find("crm"), std::string::npos) << e->message;
  EXPECT_NE(m.Active("crm").find("cannot be decoded"), std::string::npos) << m.Active("crm");
  EXPECT_FALSE(m.Update("crm", 60, 60, error, true));  // once, not once per check
  e = m.Update("crm", 0, 0, "");
  ASSERT_TRUE(e);
  EXPECT_FALSE(e->firing);
  EXPECT_EQ(e->reason, "stopped");
}

}  // namespace
}  // namespace duplex
