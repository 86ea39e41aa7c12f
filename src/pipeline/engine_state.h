#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/planner.h"
#include "core/resolver.h"
#include "duplex/connector.h"
#include "duplex/env.h"
#include "pipeline/alerts.h"
#include "pipeline/schema_binding.h"
#include "pipeline/telemetry.h"
#include "store/state_store.h"

namespace duplex {

// Record states loaded for one resolution step: collection -> key text -> state.
using RecordStates = std::map<std::string, std::map<std::string, RecordState>>;

// One endpoint as the engine's stages see it: its connector, how far each stage got, and its
// health (endpoint_health.h).
struct EndpointState {
  std::string name;
  std::unique_ptr<Connector> connector;
  // connector->capabilities(), read once when the engine opened it (constant: connector.h).
  Capabilities caps;
  Position capture;
  int64_t watermark = 0;
  Position acked;
  Position resolved;  // the resolver has merged the endpoint's changes up to here
  bool more = true;   // the last capture hit the batch limit (or nothing polled yet)
  std::chrono::steady_clock::time_point retry_at{};
  std::chrono::steady_clock::time_point failing_since{};
  std::chrono::steady_clock::time_point last_ack{};
  // When capture last polled the endpoint (Connector::Poll): the next poll waits
  // PollInterval(caps) after it.
  std::optional<std::chrono::steady_clock::time_point> last_poll;
  bool applied_since_poll = false;  // an Apply to it committed since that poll
  // Capabilities::apply_hold: since when writes wait for it, and when its capture last had
  // news (Source::Poll true).
  std::optional<std::chrono::steady_clock::time_point> held_since;
  std::optional<std::chrono::steady_clock::time_point> last_news;
  std::chrono::milliseconds backoff{0};
  std::string last_error;
  // Why capture stopped the endpoint (MarkStopped: a non-retriable capture error); OK while
  // it runs.
  Status stopped;
  bool warned = false;     // the current failure has been logged
  bool installed = false;  // capture installed by this process (Install or Step)
  // Opened (Connector::Open) and bound. An endpoint unreachable when the engine opened it is
  // left out of the sync model until it can be opened (an outage like any other, P8): then it
  // is bound, installed and read back whole (rescan).
  bool open = true;
  Status open_error;  // why it could not be opened when the engine opened it
  // After the endpoint went back in time (EndpointProgress): changes captured again, and
  // whether its rows are still to be read back (Rescan).
  Position guard_pos;
  double guard_ms = 0;
  bool rescan = false;
  size_t index = 0;  // in EngineState::endpoints and telemetry.endpoints
  // When a capture last found nothing left to capture: the capture lag counts from here.
  std::chrono::steady_clock::time_point caught_up_at{};
  // Batches up to this id may have reached the endpoint in an earlier attempt whose outcome
  // is unknown (a failed Apply, or one made before this process started): a write of theirs
  // that now finds nothing to do may be one that landed then, whose echo is still to come.
  // Set from the state file's next apply id at this process's first apply (-1 until then).
  ApplyId unsure_upto = -1;
  // Applies the target refused in a row, and when to try again.
  int refusals = 0;
  std::chrono::steady_clock::time_point refused_retry_at{};
  // Records (RecordKey::ToString, as Planner::RecordOf names them) written by this endpoint's
  // dead letters -> dead letter id, as of the dead letters' DeadLetterVersion.
  std::map<std::string, int64_t> parked;
  std::pair<int64_t, int64_t> parked_version{0, 0};
};

// Decoded journal entries and outbox batches kept at hand: a few at most (P9).
constexpr size_t kMaxFreshBatches = 4;
// Tries of an apply the target refuses before its transactions are isolated and parked.
constexpr int kApplyAttempts = 3;
// Failing shorter than this is not worth a warning, nor "unreachable" on the dashboard.
constexpr std::chrono::seconds kTransientFailure{2};
// A stopped endpoint (MarkStopped) is tried again after this long, or at the next `duplex run`.
constexpr std::chrono::minutes kStoppedRetry{5};

// What the engine's stages share (docs/DESIGN.md §2): the config, the state store, the endpoints,
// the sync model, and the few caches that spare decoding again what was just written. One thread
// (the engine's) uses it. The stages are free functions over it, one file each: capture.h,
// resolve.h, apply.h, dead_letters.h, references.h, endpoint_health.h, engine_telemetry.h.
struct EngineState {
  EngineState(const Config& c, std::unique_ptr<StateStore> s, Env* e);

  // The endpoint named `name`; nullptr if the config has none.
  EndpointState* Find(const std::string& name);
  // The model of `collection`; nullptr if the config has none.
  const CollectionModel* FindModel(const std::string& collection) const;

  Config config;
  // What the sync model is bound from (the models point into it): `config` without the
  // endpoints that are not open yet (EndpointState::open).
  std::unique_ptr<Config> bound;
  std::unique_ptr<StateStore> store;
  Env* env;                              // not owned
  std::vector<EndpointState> endpoints;  // config order: the capture order
  std::vector<CollectionModel> models;   // point into `bound`
  std::unique_ptr<Resolver> resolver;
  std::unique_ptr<Planner> planner;
  SchemaReport schema;
  std::chrono::steady_clock::time_point last_resolution_check{};
  std::deque<JournalEntry> fresh;  // journaled, not yet resolved, still decoded
  // endpoint -> planned batches in the outbox, not yet applied, still decoded
  std::map<std::string, std::map<int64_t, ApplyBatch>> fresh_outbox;
  int64_t synced_changes = 0;  // changes resolved by this process (progress output)
  // (endpoint, collection) -> rows of an initial load captured by this process (progress output)
  std::map<std::pair<std::string, std::string>, int64_t> loaded_rows;
  // When `duplex run` reconciles next ([engine] reconcile_every; reconcile.h).
  std::chrono::steady_clock::time_point next_reconcile{};
  // This step, an endpoint polled news that its capture did not deliver yet: not idle.
  bool news_pending = false;

  bool ref_index_ready = false;  // EnsureRefIndex has run
  // Collections that are the parent of a reference.
  std::set<std::string> parent_collections;

  TelemetryHub* hub = nullptr;  // not owned
  TelemetrySnapshot telemetry;  // counters and histograms
  AlertMonitor alerts;
  std::vector<pid_t> alert_pids;  // alert commands still running
  std::chrono::steady_clock::time_point last_alert_check{}, last_publish{}, last_status{},
      last_sample{};
};

// Apply ids for one resolution step's writes, and each endpoint's resolved position.
Result<PlanContext> NewPlanContext(EngineState& es);

// The state of `record` (RecordKey::ToString: how the engine names a record everywhere) in
// `states`, loaded from the store if need be; nullptr if unknown.
Result<RecordState*> LoadRecord(EngineState& es, RecordStates& states, const std::string& record);

}  // namespace duplex
