// The Prometheus text rendering of /metrics (format 0.0.4).
#include "admin/prometheus.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>

namespace duplex {
namespace {

bool Has(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l == line) return true;
  }
  return false;
}

TelemetrySnapshot Sample() {
  TelemetrySnapshot s;
  s.latency_objective_seconds = 5;
  EndpointTelemetry crm;
  crm.name = "crm";
  crm.echoes_skipped = 3;
  crm.dead_letters = 0;
  crm.lag_seconds = 0.5;
  crm.capture_backlog = 7;
  crm.apply_backlog = 2;
  crm.batch_rows.Observe(1);
  crm.batch_rows.Observe(50);
  EndpointTelemetry billing;
  billing.name = "bill\"ing";
  billing.connected = false;
  billing.dead_letters = 4;
  s.endpoints = {crm, billing};
  s.captured[{"crm", "customer"}] = 12;
  s.applied[{"bill\"ing", "customer"}] = 10;
  s.conflicts[{"customer", "notes", "manual"}] = 1;
  Histogram h(LatencyBuckets());
  h.Observe(0.003);
  h.Observe(0.2);
  h.Observe(1000);
  s.latency[{"crm", "bill\"ing"}] = h;
  s.journal_backlog = 9;
  return s;
}

TEST(PrometheusTest, CountersAndGaugesWithLabelsHelpAndType) {
  const std::string text = RenderPrometheus(Sample());
  EXPECT_TRUE(Has(text, "# TYPE duplex_changes_captured_total counter")) << text;
  EXPECT_TRUE(
      Has(text, R"(duplex_changes_captured_total{endpoint="crm",collection="customer"} 12)"))
      << text;
  EXPECT_TRUE(
      Has(text, R"(duplex_changes_applied_total{endpoint="bill\"ing",collection="customer"} 10)"))
      << text;
  EXPECT_TRUE(
      Has(text, R"(duplex_conflicts_total{collection="customer",field="notes",policy="manual"} 1)"))
      << text;
  EXPECT_TRUE(Has(text, R"(duplex_echoes_skipped_total{endpoint="crm"} 3)")) << text;
  EXPECT_TRUE(Has(text, "# TYPE duplex_dead_letters gauge")) << text;
  EXPECT_TRUE(Has(text, R"(duplex_dead_letters{endpoint="bill\"ing"} 4)")) << text;
  EXPECT_TRUE(Has(text, R"(duplex_capture_lag_seconds{endpoint="crm"} 0.5)")) << text;
  EXPECT_TRUE(Has(text, R"(duplex_capture_backlog_changes{endpoint="crm"} 7)")) << text;
  // Unknown values are left out rather than shown as -1.
  EXPECT_EQ(text.find(R"(duplex_capture_backlog_changes{endpoint="bill\"ing"})"), std::string::npos)
      << text;
  EXPECT_TRUE(Has(text, R"(duplex_endpoint_up{endpoint="crm"} 1)")) << text;
  EXPECT_TRUE(Has(text, R"(duplex_endpoint_up{endpoint="bill\"ing"} 0)")) << text;
  EXPECT_TRUE(Has(text, "duplex_journal_backlog_changes 9")) << text;
  EXPECT_TRUE(Has(text, "duplex_latency_objective_seconds 5")) << text;
  EXPECT_TRUE(Has(text, "duplex_ready 0")) << text;  // billing is down
  // Every family has HELP before TYPE, and every sample line belongs to a declared family.
  std::istringstream in(text);
  std::string family;
  for (std::string l; std::getline(in, l);) {
    if (l.rfind("# HELP ", 0) == 0) {
      family = l.substr(7, l.find(' ', 7) - 7);
      continue;
    }
    if (l.rfind("# TYPE ", 0) == 0) {
      EXPECT_EQ(l.substr(7, l.find(' ', 7) - 7), family) << l;
      continue;
    }
    EXPECT_EQ(l.rfind(family, 0), 0u) << "sample outside its family: " << l;
  }
}

TEST(PrometheusTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  const std::string text = RenderPrometheus(Sample());
  const std::string labels = R"(source="crm",target="bill\"ing")";
  EXPECT_TRUE(Has(text, "# TYPE duplex_sync_latency_seconds histogram")) << text;
  EXPECT_TRUE(Has(text, "duplex_sync_latency_seconds_bucket{" + labels + R"(,le="0.005"} 1)"))
      << text;
  EXPECT_TRUE(Has(text, "duplex_sync_latency_seconds_bucket{" + labels + R"(,le="0.1"} 1)"))
      << text;
  EXPECT_TRUE(Has(text, "duplex_sync_latency_seconds_bucket{" + labels + R"(,le="0.25"} 2)"))
      << text;
  EXPECT_TRUE(Has(text, "duplex_sync_latency_seconds_bucket{" + labels + R"(,le="300"} 2)"))
      << text;
  EXPECT_TRUE(Has(text, "duplex_sync_latency_seconds_bucket{" + labels + R"(,le="+Inf"} 3)"))
      << text;
  EXPECT_TRUE(Has(text, "duplex_sync_latency_seconds_sum{" + labels + "} 1000.203")) << text;
  EXPECT_TRUE(Has(text, "duplex_sync_latency_seconds_count{" + labels + "} 3")) << text;
  EXPECT_TRUE(Has(text, R"(duplex_apply_batch_rows_bucket{endpoint="crm",le="1"} 1)")) << text;
  EXPECT_TRUE(Has(text, R"(duplex_apply_batch_rows_bucket{endpoint="crm",le="100"} 2)")) << text;
  EXPECT_TRUE(Has(text, R"(duplex_apply_batch_rows_count{endpoint="crm"} 2)")) << text;
}

TEST(PrometheusTest, LabelValuesAreEscaped) {
  EXPECT_EQ(EscapeLabel("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(EscapeLabel("plain"), "plain");
}

TEST(PrometheusTest, ReadyWhenEveryEndpointIsUpAndUnderTheObjective) {
  TelemetrySnapshot s = Sample();
  s.endpoints[1].connected = true;
  EXPECT_TRUE(s.Ready());
  s.endpoints[0].lag_seconds = 6;
  EXPECT_FALSE(s.Ready());
  EXPECT_TRUE(Has(RenderPrometheus(s), "duplex_ready 0"));
}

}  // namespace
}  // namespace duplex
