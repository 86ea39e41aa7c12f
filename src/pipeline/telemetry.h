#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace duplex {

// A Prometheus-style histogram: counts per upper bound (not cumulative; the renderer sums),
// plus the +Inf bucket, the sum and the count of observations.
struct Histogram {
  std::vector<double> bounds;    // ascending upper bounds
  std::vector<uint64_t> counts;  // bounds.size() + 1 (the last is +Inf)
  double sum = 0;
  uint64_t count = 0;

  explicit Histogram(std::vector<double> b = {});
  void Observe(double v);
};

// Sync latency buckets in seconds (source commit -> committed on the target).
std::vector<double> LatencyBuckets();
// Apply batch size buckets in rows.
std::vector<double> BatchRowsBuckets();

// One endpoint as the engine sees it right now.
struct EndpointTelemetry {
  std::string name;
  // The last capture and apply attempts worked (or failed for less than 2 s: busy a moment).
  bool connected = true;
  // Capture stopped it (a non-retriable error, MarkStopped); `last_error` says why.
  bool stopped = false;
  std::string last_error;          // empty when connected
  double lag_seconds = 0;          // time since the endpoint's changes were last all captured
  double unreachable_seconds = 0;  // how long it has been failing (0 when it is not)
  bool alerting = false;
  std::string alert;  // why it alerts ("lag 7.2s over the objective 5s", "unreachable 31s: ...")
  int64_t echoes_skipped = 0;    // duplex's own writes seen in capture (markers), this process
  int64_t writes_rejected = 0;   // compare-and-set rejections, this process
  int64_t apply_errors = 0;      // failed apply attempts (busy, unreachable), this process
  int64_t capture_errors = 0;    // failed capture or install attempts, this process
  int64_t dead_letters = -1;     // parked row writes (-1 until the first status refresh)
  int64_t capture_backlog = -1;  // changes not yet captured (-1 unknown)
  int64_t apply_backlog = -1;    // planned row writes not yet applied (-1 unknown)
  Histogram batch_rows{BatchRowsBuckets()};
};

// One point of the throughput/lag history the dashboard charts.
struct HistorySample {
  double wall_ms = 0;
  // endpoint -> (changes captured total, row writes applied total, lag seconds)
  std::map<std::string, std::tuple<int64_t, int64_t, double>> endpoints;
};

// What the engine publishes for the admin server: metrics, health and the status JSON. Taken
// on the engine thread and never changed after publishing, so readers need no lock.
struct TelemetrySnapshot {
  double wall_ms = 0;  // when it was taken
  double latency_objective_seconds = 5;
  std::vector<EndpointTelemetry> endpoints;  // config order
  // (endpoint, collection) -> count, this process
  std::map<std::pair<std::string, std::string>, int64_t> captured, applied;
  // (collection, field, policy) -> count, this process ("(row)" for delete-vs-update conflicts)
  std::map<std::tuple<std::string, std::string, std::string>, int64_t> conflicts;
  // (source, target) -> latency histogram
  std::map<std::pair<std::string, std::string>, Histogram> latency;
  int64_t journal_backlog = -1;
  // Reconciles of this process (`duplex run` with [engine] reconcile_every): rows hashed on
  // every endpoint, and per collection the records found differing.
  int64_t reconcile_rows_compared = 0;
  std::map<std::string, int64_t> drift_rows;
  nlohmann::json status;  // what `duplex status --json` prints; null until the first refresh
  std::vector<HistorySample> history;  // oldest first, a few minutes

  // Every endpoint connected and not lagging over the objective.
  bool Ready() const;
};

// Where the engine thread publishes snapshots and other threads read the latest. Thread-safe.
class TelemetryHub {
 public:
  void Publish(std::shared_ptr<const TelemetrySnapshot> s);
  // The latest snapshot; nullptr before the first.
  std::shared_ptr<const TelemetrySnapshot> Latest() const;

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const TelemetrySnapshot> latest_;
};

}  // namespace duplex
