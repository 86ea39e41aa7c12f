#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/record_state.h"
#include "core/resolver.h"
#include "duplex/change.h"
#include "duplex/result.h"
#include "store/conflict_log.h"
#include "store/dead_letters.h"
#include "store/ledger.h"
#include "store/progress.h"
#include "store/ref_index.h"

namespace duplex {

// A transaction on a Store: rolls back when dropped unless committed.
class StoreTxn {
 public:
  virtual ~StoreTxn() = default;
  virtual Status Commit() = 0;
};

// The state store (DESIGN §2, §6): everything durable the engine keeps besides the journal
// (src/store/journal.h): per-endpoint progress, record states, the outbox, the conflict log,
// dead letters, the reference index, counters and apply ids.
//
// The embedded default is StateStore (src/store/state_store.h), one SQLite file that also
// holds the journal. A store on PostgreSQL for several workers (../shared/DESIGN.md §7) is not
// built; it would implement this interface, and the stages would not change.
//
// Each arrow of DESIGN §2 is one transaction: the calls between Transaction() and Commit()
// take effect together or not at all. Outside a transaction each statement commits on its
// own, so a call that writes several rows (ResetRestored, AddCounters) is not atomic there. One
// writer (the engine); readers (the CLI, the admin server) open their own Store and may write
// operator requests (conflict resolutions, dead-letter retries). Used by one thread at a time.
class Store {
 public:
  virtual ~Store() = default;

  // Starts a transaction that takes the write lock at once: Unavailable if another writer
  // holds it longer than the busy timeout.
  virtual Result<std::unique_ptr<StoreTxn>> Transaction() = 0;

  // --- Progress (DESIGN §6, Positions) ---
  virtual Result<EndpointProgress> Progress(const std::string& endpoint) = 0;
  // Moves the capture position to `capture` and captured_ms up to `newest_commit_ms`: written
  // in the transaction that appends the changes up to `capture` to the journal.
  virtual Status SetCaptured(const std::string& endpoint, Position capture,
                             double newest_commit_ms) = 0;
  // Records what the resolver has merged of the endpoint's stream: its watermark and position.
  virtual Status SetResolved(const std::string& endpoint, int64_t watermark, Position resolved) = 0;
  virtual Status SetLastError(const std::string& endpoint, const std::string& error) = 0;
  virtual Status SetAcked(const std::string& endpoint, Position acked) = 0;
  // The endpoint went back in time: capture and resolution start again at `resume`, its
  // watermark is `watermark` (the apply id it holds now), what was captured before becomes the
  // guard, its rows are to be read back (rescan), and its planned batches are dropped (they
  // were planned for rows it no longer holds: the rescan plans them again).
  virtual Status ResetRestored(const std::string& endpoint, Position resume, int64_t watermark) = 0;
  // The rescan is done.
  virtual Status SetRescanned(const std::string& endpoint) = 0;
  // The endpoint's rows are to be read back (rescan) once its capture has caught up: it was
  // left out of the sync model while unreachable, so writes were not planned for it. No-op if
  // the state has never captured from it.
  virtual Status MarkRescan(const std::string& endpoint) = 0;

  // --- Record states (DESIGN §4) ---
  // Record states for `keys` of `collection`; absent records are not in the map.
  virtual Status LoadRecords(const std::string& collection, const std::vector<std::string>& keys,
                             std::map<std::string, RecordState>& out) = 0;
  virtual Status SaveRecord(const std::string& collection, const std::string& key,
                            const RecordState& state) = 0;
  virtual Result<int64_t> CountRecords(const std::string& collection, bool live_only) = 0;
  // The keys a rescan read, per collection (kept by this Store object only, not durable).
  virtual Status ClearScanned() = 0;
  virtual Status AddScanned(const std::string& collection,
                            const std::vector<std::string>& keys) = 0;
  // Keys of the live records of `collection` above `after`, in key order, at most `limit`.
  virtual Result<std::vector<std::string>> LiveKeys(const std::string& collection,
                                                    const std::string& after, size_t limit) = 0;
  // Keys of records of `collection` above `after` that the rescan did not read, at most `limit`.
  virtual Result<std::vector<std::string>> Unscanned(const std::string& collection,
                                                     const std::string& after, size_t limit) = 0;

  // --- Apply ids and the outbox (DESIGN §2, §6) ---
  // Makes every apply id allocated from now on larger than `id` (an endpoint that already
  // holds batches from an earlier state file must not skip new ones as replays).
  virtual Status EnsureApplyIdsAbove(int64_t id) = 0;
  // Allocates `n` consecutive apply ids; returns the first.
  virtual Result<int64_t> AllocateApplyIds(int n) = 0;
  virtual Status AddOutbox(const std::string& endpoint, const ApplyBatch& batch) = 0;
  // Planned batches for `endpoint` in id order, at least one and then up to `max_rows` rows.
  // Batches found in `cache` (by id; may be null) are moved from it instead of being decoded.
  virtual Result<std::vector<ApplyBatch>> ReadOutbox(const std::string& endpoint, size_t max_rows,
                                                     std::map<int64_t, ApplyBatch>* cache) = 0;
  virtual Status DeleteOutbox(const std::string& endpoint, int64_t upto_id) = 0;
  // One planned batch (nullopt if it is not in the outbox: applied, or parked).
  virtual Result<std::optional<ApplyBatch>> ReadOutboxBatch(const std::string& endpoint,
                                                            int64_t id) = 0;
  // Ids of the batches planned for `endpoint` in (after, upto], ascending.
  virtual Result<std::vector<int64_t>> OutboxIds(const std::string& endpoint, int64_t after,
                                                 int64_t upto) = 0;
  // Rewrites a planned batch (the outbox batch with its id), or removes it if it has no ops.
  virtual Status ReplaceOutbox(const std::string& endpoint, const ApplyBatch& batch) = 0;
  virtual Result<int64_t> OutboxRows(const std::string& endpoint) = 0;
  // The lowest RowOp::seen of the batches waiting for `endpoint` (nullopt if none): its
  // changelog must be kept after that position for their compare-and-set.
  virtual Result<std::optional<Position>> MinOutboxSeen(const std::string& endpoint) = 0;

  // --- The ledger of endpoints without markers (docs/DESIGN.md §3.4, store/ledger.h) ---
  // Records the writes of `ops` (key texts `key_texts`, one per op; "": skip) of `apply_id`.
  virtual Status RecordLedger(const std::string& endpoint, ApplyId apply_id,
                              const std::vector<RowOp>& ops,
                              const std::vector<std::string>& key_texts) = 0;
  // field -> what duplex last wrote there, for one record ("" is the row: true or null).
  virtual Result<std::map<std::string, std::vector<LedgerEntry>>> LedgerOf(
      const std::string& endpoint, const std::string& collection, const std::string& key_text) = 0;
  virtual Status DropLedger(const std::string& endpoint, const std::string& collection,
                            const std::string& key_text,
                            const std::vector<std::pair<std::string, ApplyId>>& fields) = 0;
  // Forgets the entries `op` of apply `apply_id` made (Ledger::Forget).
  virtual Status ForgetLedger(const std::string& endpoint, ApplyId apply_id, const RowOp& op,
                              const std::string& key_text) = 0;
  virtual Result<bool> AnyLedger(const std::string& endpoint) = 0;

  // --- The conflict log (DESIGN §4) ---
  virtual Result<int64_t> AddConflict(const ConflictRecord& c, double now_ms) = 0;
  virtual Status UpdateOpenConflict(const ConflictValueUpdate& u) = 0;
  // Conflicts, newest last; `all` false: only open ones (and resolved ones still propagating).
  virtual Result<std::vector<ConflictRow>> ListConflicts(bool all) = 0;
  virtual Result<ConflictRow> GetConflict(int64_t id) = 0;
  virtual Result<int64_t> CountOpenConflicts(const std::string& collection) = 0;
  // An operator's decision: marks the conflict resolved (pending propagation) with `value`.
  virtual Status ResolveConflict(int64_t id, const std::string& how, const Value& value,
                                 double now_ms) = 0;
  // Operator resolutions not yet propagated by the engine.
  virtual Result<std::vector<ConflictRow>> PendingResolutions() = 0;
  virtual Status MarkPropagated(int64_t id) = 0;

  // --- Dead letters (DESIGN §5) ---
  // Parks `batch` (one source transaction's writes); returns the dead letter's id.
  virtual Result<int64_t> AddDeadLetter(const std::string& endpoint, const ApplyBatch& batch,
                                        const std::string& reason, double now_ms,
                                        int64_t waits_for) = 0;
  // The number of dead letters for `endpoint` and their highest id: changes whenever one is
  // added or removed (by the engine or an operator's command).
  virtual Result<std::pair<int64_t, int64_t>> DeadLetterVersion(const std::string& endpoint) = 0;
  virtual Result<int64_t> CountDeadLetters(const std::string& endpoint) = 0;
  // Dead letters, oldest first; only those with a retry requested if `retry_requested_only`.
  virtual Result<std::vector<DeadLetterRow>> ListDeadLetters(bool retry_requested_only) = 0;
  // NotFound if there is no such dead letter.
  virtual Result<DeadLetterRow> GetDeadLetter(int64_t id) = 0;
  // An operator's request: the engine re-plans the dead letter's records, and those of the
  // dead letters waiting for it (NotFound if none).
  virtual Status RequestRetry(int64_t id) = 0;
  // The same request for every dead letter; returns how many there are.
  virtual Result<int64_t> RequestRetryAll() = 0;
  virtual Status DeleteDeadLetter(int64_t id) = 0;
  // Rewrites a dead letter's writes (some were taken out of it).
  virtual Status ReplaceDeadLetterOps(int64_t id, const ApplyBatch& batch) = 0;

  // --- The reference index (DESIGN §4, a delete against a new reference) ---
  // References between live records, each named RecordKey::ToString ("collection\nkey text").
  virtual Status AddRef(const std::string& parent, const std::string& child) = 0;
  virtual Status RemoveRef(const std::string& parent, const std::string& child) = 0;
  virtual Result<std::vector<std::string>> ChildrenOf(const std::string& parent) = 0;
  // Rebuilds the index from the live records of `collections` (`parents_of` gives a record's
  // parents) unless it was built for the same `signature` (the references in the config).
  virtual Status RebuildRefs(const std::string& signature,
                             const std::vector<std::string>& collections,
                             const ParentsOf& parents_of) = 0;

  // --- Counters ---
  virtual Status AddCounters(const std::string& endpoint, const Counters& delta) = 0;
  virtual Result<Counters> GetCounters(const std::string& endpoint) = 0;
};

}  // namespace duplex
