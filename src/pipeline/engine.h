#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/planner.h"
#include "core/resolver.h"
#include "duplex/connector.h"
#include "duplex/env.h"
#include "pipeline/alerts.h"
#include "pipeline/telemetry.h"
#include "store/state_store.h"

namespace duplex {

// What `duplex check` prints: per collection, the synced fields and the columns left alone.
struct SchemaReport {
  struct Collection {
    const CollectionConfig* config = nullptr;  // the engine's own copy of the config
    std::string name;
    std::vector<std::string> key;
    std::vector<std::string> synced;  // canonical non-key fields synced on every endpoint
    // endpoint -> columns of its table that are not synced
    std::map<std::string, std::vector<std::string>> left_alone;
  };
  std::vector<Collection> collections;
};

// The whole pipeline of DESIGN §2 in one thread: capture -> journal -> resolver (+ planner)
// -> outbox -> applier, with the state store in the engine's SQLite file.
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
  // config against the endpoints' tables: a missing table or column, a key that is not the
  // table's primary key, a policy for a field that is not synced, or a type clash is
  // InvalidArgument naming the config line, endpoint, table and column.
  static Result<std::unique_ptr<Engine>> Open(const Config& config, bool create_state);
  // The same with the endpoints' connectors given (by endpoint name) instead of made from the
  // config's endpoint types, and the clocks from `env` (nullptr: Env::Default(); not owned, must
  // outlive the engine): for the simulation and fault-injection tests.
  static Result<std::unique_ptr<Engine>> OpenWith(
      const Config& config, std::map<std::string, std::unique_ptr<Connector>> connectors,
      bool create_state, Env* env = nullptr);

  const Config& config() const { return config_; }
  const SchemaReport& schema() const { return schema_; }
  StateStore& store() { return *store_; }

  // Installs change capture on every endpoint (idempotent; the first install snapshots the
  // existing rows for the initial load). An endpoint that is busy or unreachable now is
  // installed by a later Step instead; other errors fail.
  Status Install();
  // Removes capture from every endpoint (or only `endpoint` if not empty).
  Status Uninstall(const std::string& endpoint);
  // Whether capture is installed on every endpoint.
  Result<bool> IsInstalled();

  // One pass over every stage. Returns whether anything moved.
  Result<bool> Step();

  // Runs until `stop` becomes true, or with `until_idle` until nothing is left to do (fails
  // with Unavailable if an endpoint stays unreachable for `unavailable_timeout`).
  Status Run(const std::atomic<bool>& stop, bool until_idle,
             std::chrono::milliseconds unavailable_timeout = std::chrono::seconds(15));

  // Per endpoint: position, backlog, counters, last error; per collection: records, open
  // conflicts; dead letters. What `duplex status --json` prints.
  Result<nlohmann::json> StatusJson();

  // Per endpoint (config order), what it lacks for change capture, each with the statement
  // that fixes it (Connector::Preflight). Writes nothing.
  Result<std::vector<std::pair<std::string, std::vector<std::string>>>> Preflight();

  // Dead letters parked so far (all endpoints).
  Result<int64_t> DeadLetterCount();

  // Publishes telemetry snapshots (metrics, health, the status JSON, a few minutes of
  // throughput history) to `hub` from Step, a few times a second (`hub` is not owned, must
  // outlive the engine; nullptr stops it). Alerts are evaluated with or without a hub.
  void SetTelemetry(TelemetryHub* hub) { hub_ = hub; }

 private:
  // Record states loaded for one resolution step: collection -> key text -> state.
  using RecordStates = std::map<std::string, std::map<std::string, RecordState>>;

  struct Endpoint {
    std::string name;
    std::unique_ptr<Connector> connector;
    Position capture = 0;
    int64_t watermark = 0;
    Position acked = 0;
    Position resolved = 0;  // the resolver has merged the endpoint's changes up to here
    bool more = true;       // the last capture hit the batch limit (or nothing polled yet)
    std::chrono::steady_clock::time_point retry_at{};
    std::chrono::steady_clock::time_point failing_since{};
    std::chrono::steady_clock::time_point last_ack{};
    std::chrono::milliseconds backoff{0};
    std::string last_error;
    bool warned = false;     // the current failure has been logged
    bool installed = false;  // capture installed by this process (Install or Step)
    // After the endpoint went back in time (EndpointProgress): changes captured again, and
    // whether its rows are still to be read back (Rescan).
    Position guard_pos = 0;
    double guard_ms = 0;
    bool rescan = false;
    size_t index = 0;  // in endpoints_ and telemetry_.endpoints
    // When a capture last found nothing left to capture: the capture lag counts from here.
    std::chrono::steady_clock::time_point caught_up_at{};
    // Applies the target refused in a row, and when to try again.
    int refusals = 0;
    std::chrono::steady_clock::time_point refused_retry_at{};
    // Records (Planner::RecordOf) written by this endpoint's dead letters -> dead letter id,
    // as of the dead letters' DeadLetterVersion.
    std::map<std::string, int64_t> parked;
    std::pair<int64_t, int64_t> parked_version{0, 0};
  };

  Engine(const Config& config, std::unique_ptr<StateStore> store, Env* env);
  Status CheckSchema();
  Status InstallOn(Endpoint& ep);
  Endpoint* Find(const std::string& name);
  const CollectionModel* FindModel(const std::string& collection) const;

  // Whether `ep` went back in time since this state file last worked with it (a backup
  // restored): if so, says so, merges what was captured before, and starts its capture again
  // where the endpoint's own changelog resumes, with its rows to be read back (Rescan).
  Status CheckRestored(Endpoint& ep, const EndpointProgress& p);
  // Reads back every row of a restored endpoint into the journal (Op::kPresent), and a row
  // for each record it holds none of, so that the resolver brings it to the agreed values.
  Status Rescan(Endpoint& ep);
  Result<bool> CaptureFrom(Endpoint& ep);
  Result<bool> ResolveJournal();
  Status ResolveEntry(const JournalEntry& entry);
  Result<bool> ApplyTo(Endpoint& ep);
  // Refreshes ep.parked if the endpoint's dead letters changed.
  Status LoadParked(Endpoint& ep);
  // Takes out of `batches` the source transactions that depend on a parked one (write one of
  // its records or refer to one): they are parked to wait for it (the pair's second).
  std::vector<std::pair<FailedOp, int64_t>> HoldDependents(Endpoint& ep,
                                                           std::vector<ApplyBatch>& batches);
  Result<bool> PropagateResolutions();
  // Plans the records of `ops`, writes `endpoint` refused, again from their current state
  // (the refused writes changed nothing there): the states in `states` if given (a resolution
  // step's, saved by it), else loaded and saved here.
  Status ReplanRefused(const std::string& endpoint, const std::vector<RowOp>& ops,
                       const PlanContext& ctx, ResolveOutput& out, RecordStates* states = nullptr);
  // Whether a write of `f` was overtaken by a later one planned for `endpoint`: a delete of a
  // record that exists again, an insert or update of one deleted (or made again) since.
  Result<bool> Superseded(const std::string& endpoint, const FailedOp& f);
  // Operator retries of dead letters: their records are planned again for the target.
  Result<bool> RetryDeadLetters();
  // Alerts, and the telemetry snapshot when a hub is set; cheap unless something is due.
  void UpdateTelemetry();
  double LagSeconds(const Endpoint& ep, std::chrono::steady_clock::time_point now) const;
  Status StoreOutput(ResolveOutput& out, const PlanContext& ctx);
  void AckCaptured(Endpoint& ep, bool force);
  // Telemetry of an apply that committed: row writes by collection, latency, batch size.
  void ObserveApplied(const Endpoint& ep, const std::vector<ApplyBatch>& batches,
                      const ApplyResult& result);
  void MarkFailure(Endpoint& ep, const Status& st, const char* stage);
  void MarkSuccess(Endpoint& ep);
  // Apply ids for one resolution step's writes, and each endpoint's resolved position.
  Result<PlanContext> NewPlanContext();

  void PrintProgress(double secs);

  // --- A delete against a new reference (DESIGN §4), in engine_refs.cc. Records are named
  // "collection\nkey text", as the state store's index of references names them.

  // Builds that index once per process, anew if the references between collections changed.
  Status EnsureRefIndex();
  // The records a record of `collection` with `values` refers to.
  std::vector<std::string> ParentRecords(const std::string& collection, const Row& values) const;
  // The fields of collection `child` that refer to collection `parent`.
  std::vector<std::string> ReferenceFields(const std::string& child,
                                           const std::string& parent) const;
  // Moves `record`'s entries in the index from the parents it referred to to those it does.
  Status UpdateRefIndex(const std::string& record, const std::vector<std::string>& before,
                        const std::vector<std::string>& after);
  // Whether a dead letter of `ep` holds a write of the record (`collection`, `key`) that
  // `match` accepts (ep.parked is as of the resolution step's start).
  Result<bool> ParkedWrite(const Endpoint& ep, const std::string& collection, const Row& key,
                           const std::function<bool(const RowOp&)>& match);
  // The state of `record` in `states`, loaded from the store if need be; nullptr if unknown.
  Result<RecordState*> LoadRecord(RecordStates& states, const std::string& record);
  // After the change `c` from endpoint `from` (watermark `watermark`) was merged into the state
  // of `record`, which was live (`was_live`) with `parents_before`, and planned writes into
  // `out` from `first_op` on (per target): updates the index, and settles the deletes against
  // new references the change reveals, either way round (the row now refers to a parent
  // deleted elsewhere, or `from` deleted a parent that a row refers to in a write it had not
  // seen). A parent's delete waiting on a target for a row that a write planned now moves
  // away (or deletes) is planned again after that write.
  Status CheckReferences(const Change& c, const std::string& from, int64_t watermark,
                         const std::string& record, bool was_live,
                         const std::vector<std::string>& parents_before,
                         const std::map<std::string, size_t>& first_op, RecordStates& states,
                         const PlanContext& ctx, ResolveOutput& out);
  // Plans `parent`'s writes to `target` again (after those planned now) if its delete there
  // has not landed yet, or was refused.
  Status ReplanWaiting(const std::string& parent, const std::string& target, int64_t watermark,
                       RecordStates& states, const PlanContext& ctx, ResolveOutput& out);
  // `parent`, deleted by `deleter`, against `child`, made to refer to it by `writer`: the
  // parent's on_delete_conflict decides (cascade the delete, or bring the parent back).
  Status SettleReference(const std::string& parent, const std::string& child,
                         const std::string& deleter, const std::string& writer,
                         RecordStates& states, const PlanContext& ctx, ResolveOutput& out);
  // `start` and the records reached from it, breadth first: `down`, the live rows referring to
  // it (the index), at any depth; else the deleted records it refers to, at any depth.
  Result<std::vector<std::string>> Reach(RecordStates& states, const std::string& start, bool down);
  // Takes `record`'s writes that have not landed (in `out`, the outbox, dead letters) back
  // from every endpoint (or only from `only`), so that they can be planned again in a new
  // order.
  Status RetractWrites(const std::string& record, RecordState& state, RecordStates& states,
                       const PlanContext& ctx, ResolveOutput& out, const std::string& only = "");

  static constexpr size_t kMaxFreshBatches = 4;
  // Tries of an apply the target refuses before its transactions are isolated and parked.
  static constexpr int kApplyAttempts = 3;
  // FailedOp::txn of a batch parked whole.
  static constexpr int64_t kWholeBatch = -1;
  // Failing shorter than this is not worth a warning, nor "unreachable" on the dashboard.
  static constexpr std::chrono::seconds kTransientFailure{2};

  Config config_;
  std::unique_ptr<StateStore> store_;
  Env* env_;                         // not owned
  std::vector<Endpoint> endpoints_;  // config order: the capture order
  std::vector<CollectionModel> models_;
  std::unique_ptr<Resolver> resolver_;
  std::unique_ptr<Planner> planner_;
  SchemaReport schema_;
  std::chrono::steady_clock::time_point last_resolution_check_{};
  std::deque<JournalEntry> fresh_;  // journaled, not yet resolved, still decoded
  // endpoint -> planned batches in the outbox, not yet applied, still decoded
  std::map<std::string, std::map<int64_t, ApplyBatch>> fresh_outbox_;
  int64_t synced_changes_ = 0;  // changes resolved by this process (progress output)
  // This step, an endpoint polled news that its capture did not deliver yet: not idle.
  bool news_pending_ = false;

  bool ref_index_ready_ = false;  // EnsureRefIndex has run
  // Collections that are the parent of a reference.
  std::set<std::string> parent_collections_;

  TelemetryHub* hub_ = nullptr;  // not owned
  TelemetrySnapshot telemetry_;  // counters and histograms; engine thread only
  AlertMonitor alerts_;
  std::vector<pid_t> alert_pids_;  // alert commands still running
  std::chrono::steady_clock::time_point last_alert_check_{}, last_publish_{}, last_status_{},
      last_sample_{};
};

}  // namespace duplex
