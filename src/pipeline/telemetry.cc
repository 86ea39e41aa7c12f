#include "pipeline/telemetry.h"

#include <algorithm>

namespace duplex {

Histogram::Histogram(std::vector<double> b) : bounds(std::move(b)), counts(bounds.size() + 1) {}

void Histogram::Observe(double v) {
  const size_t i = std::lower_bound(bounds.begin(), bounds.end(), v) - bounds.begin();
  ++counts[i];
  sum += v;
  ++count;
}

std::vector<double> LatencyBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
}

std::vector<double> BatchRowsBuckets() { return {1, 10, 100, 1000, 10000, 100000}; }

bool TelemetrySnapshot::Ready() const {
  for (const EndpointTelemetry& ep : endpoints) {
    if (!ep.connected || ep.lag_seconds > latency_objective_seconds) return false;
  }
  return true;
}

void TelemetryHub::Publish(std::shared_ptr<const TelemetrySnapshot> s) {
  std::lock_guard<std::mutex> lock(mu_);
  latest_ = std::move(s);
}

std::shared_ptr<const TelemetrySnapshot> TelemetryHub::Latest() const {
  std::lock_guard<std::mutex> lock(mu_);
  return latest_;
}

}  // namespace duplex
