#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "duplex/connector.h"
#include "duplex/env.h"
#include "pipeline/reconcile_report.h"
#include "pipeline/schema_binding.h"
#include "pipeline/telemetry.h"
#include "store/state_store.h"

namespace duplex {

struct EngineState;

// What Engine::Run reports as it goes, for progress output (the CLI's, cli/progress.h). Called
// on the engine thread; times are the engine's clock (Env).
class RunObserver {
 public:
  virtual ~RunObserver() = default;
  // Before the first pass.
  virtual void Started(std::chrono::steady_clock::time_point now) = 0;
  // After every pass.
  virtual void Passed(std::chrono::steady_clock::time_point now) = 0;
  // Run gives up: an endpoint stayed unreachable for the timeout.
  virtual void GaveUp() = 0;
  // Run stops: stopped, or idle.
  virtual void Stopped() = 0;
};

// The whole pipeline of docs/DESIGN.md §2 in one thread: capture -> journal -> resolver
// (+ planner) -> outbox -> applier, with the state store in the engine's SQLite file. The
// engine is the scheduler; each stage is a file of its own over the shared EngineState
// (engine_state.h): schema_binding.h, capture.h, resolve.h, apply.h, dead_letters.h,
// references.h, endpoint_health.h, engine_telemetry.h.
//
// Crash safety (P6): each arrow is one transaction. Capture appends a batch to the journal and
// moves the capture position together; the source's changelog is pruned only after that
// commit. Resolving a journal entry updates record states, writes the planned batches to the
// outbox and deletes the entry together. The applier writes a batch in the target's own
// transaction with the batch's id, so a batch applied just before a crash is skipped when it
// is replayed. Memory stays bounded (P9): every step moves at most `batch_rows` changes.
class Engine {
 public:
  ~Engine();

  // Opens the state file (creating it if `create_state`) and every endpoint, and checks the
  // config against the endpoints' tables (BindSchema): a missing table or column, a key that
  // is not the table's primary key, a policy for a field that is not synced, or a type clash
  // is InvalidArgument naming the config line, endpoint, table and column. An endpoint whose
  // Open is Unavailable (unreachable) is left out of the sync model and opened by a later Step
  // (docs/DESIGN.md §6 "Outages"); any other error of Open fails.
  static Result<std::unique_ptr<Engine>> Open(const Config& config, bool create_state);
  // The same with the endpoints' connectors given (by endpoint name) instead of made from the
  // config's endpoint types, and the clocks from `env` (nullptr: Env::Default(); not owned, must
  // outlive the engine): for the simulation and fault-injection tests.
  static Result<std::unique_ptr<Engine>> OpenWith(
      const Config& config, std::map<std::string, std::unique_ptr<Connector>> connectors,
      bool create_state, Env* env = nullptr);

  const Config& config() const;
  const SchemaReport& schema() const;
  StateStore& store();

  // Installs change capture on every endpoint (idempotent; the first install snapshots the
  // existing rows for the initial load). An endpoint that is busy or unreachable now is
  // installed by a later Step instead; other errors fail.
  Status Install();
  // Removes capture from every endpoint (or only `endpoint` if not empty).
  Status Uninstall(const std::string& endpoint);
  // Whether capture is installed on every endpoint.
  Result<bool> IsInstalled();
  // The endpoints (config order) where capture is not installed, each with why: the error that
  // kept Install from it (an endpoint busy or unreachable), else "not installed".
  std::vector<std::pair<std::string, std::string>> NotInstalled();

  // One pass over every stage. Returns whether anything moved.
  Result<bool> Step();

  // Runs until `stop` becomes true, or with `until_idle` until nothing is left to do (fails
  // with Unavailable if an endpoint stays unreachable for `unavailable_timeout`, and with the
  // cause, once the others are idle, if an endpoint was stopped: endpoint_health.h). `observer`
  // (optional, not owned) is told of each pass.
  Status Run(const std::atomic<bool>& stop, bool until_idle,
             std::chrono::milliseconds unavailable_timeout = std::chrono::seconds(15),
             RunObserver* observer = nullptr);

  // Changes resolved by this process.
  int64_t synced_changes() const;
  // (endpoint, collection) -> rows an initial load read from that endpoint's table so far, in
  // this process (for progress output).
  const std::map<std::pair<std::string, std::string>, int64_t>& loaded_rows() const;
  // Changes left: in the journal, and not yet captured from the endpoints that work (as far
  // as they can tell; what cannot be counted counts 0).
  int64_t Backlog();

  // Per endpoint: position, backlog, counters, last error; per collection: records, open
  // conflicts; dead letters. What `duplex status --json` prints.
  Result<nlohmann::json> StatusJson();

  // Per endpoint (config order), what it lacks for change capture, each with the statement
  // that fixes it (Connector::Preflight). Writes nothing.
  Result<std::vector<std::pair<std::string, std::vector<std::string>>>> Preflight();

  // Reconcile (docs/DESIGN.md §6): compares every collection (or o.collection) across its
  // endpoints by key-range digests; writes nothing. Every endpoint must be open and installed.
  Result<ReconcileReport> CompareEndpoints(const ReconcileOptions& o);
  // Feeds the records of `report` that differ into the journal as what their endpoints hold;
  // Step resolves and applies them. Returns the records fed.
  Result<int64_t> FeedRepairs(const ReconcileReport& report, const ReconcileOptions& o);
  // Records a reconcile in the state file (`duplex status`: "last_reconcile").
  Status RecordReconcile(const ReconcileReport& report, int64_t repaired);

  // Dead letters parked so far (all endpoints).
  Result<int64_t> DeadLetterCount();

  // Publishes telemetry snapshots (metrics, health, the status JSON, a few minutes of
  // throughput history) to `hub` from Step, a few times a second (`hub` is not owned, must
  // outlive the engine; nullptr stops it). Alerts are evaluated with or without a hub.
  void SetTelemetry(TelemetryHub* hub);

 private:
  explicit Engine(std::unique_ptr<EngineState> es);

  std::unique_ptr<EngineState> es_;
};

}  // namespace duplex
