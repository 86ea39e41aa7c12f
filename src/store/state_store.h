#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/record_state.h"
#include "core/resolver.h"
#include "duplex/change.h"
#include "duplex/result.h"
#include "util/sqlite.h"

namespace duplex {

// Per-endpoint durable progress.
struct EndpointProgress {
  Position capture = 0;    // changes up to here are in the journal
  int64_t watermark = 0;   // highest apply id whose marker the resolver has seen
  std::string last_error;  // empty when the last attempt worked
  Position resolved = 0;   // changes up to here have been merged by the resolver
  bool exists = false;     // false: this state file has never captured from the endpoint
  Position acked = 0;      // the last position Connector::Ack succeeded for
  double captured_ms = 0;  // the newest source commit time captured from it
  // After the endpoint went back in time (a backup restored): a change at or before guard_pos
  // committed at or before guard_ms was captured before the restore and comes again.
  Position guard_pos = 0;
  double guard_ms = 0;
  bool rescan = false;  // its rows are to be read back and brought to the agreed values
};

struct JournalEntry {
  int64_t id = 0;
  std::string endpoint;
  ChangeBatch batch;
};

// A logged conflict as listed by `duplex conflicts`.
struct ConflictRow {
  int64_t id = 0;
  std::string collection;
  nlohmann::json key;
  std::string key_text;
  std::string field;
  std::string policy;
  Value base;
  nlohmann::json values;
  std::string winner;
  // "open", "resolved:<policy>" (decided automatically), "resolved:take:<endpoint>",
  // "resolved:value" (operator); an operator resolution not yet propagated also has
  // `pending` set.
  std::string status;
  Value resolution;  // the chosen value of an operator resolution
  bool pending = false;
  double created_at = 0;
  double resolved_at = 0;

  nlohmann::json ToJson() const;
};

// A row write (or a whole batch) a target refused, parked with its reason.
struct DeadLetterRow {
  int64_t id = 0;
  std::string endpoint;  // the target that refused it
  ApplyBatch batch;      // the refused write(s), as planned
  std::string reason;
  double created_at = 0;
  bool retry_requested = false;  // an operator asked for a retry; the engine has not yet
  // Another dead letter this one depends on (it writes a record that one holds, or refers to
  // a row that one inserts): it waits for that one and is retried with it. 0: none.
  int64_t waits_for = 0;

  nlohmann::json ToJson() const;
};

struct Counters {
  int64_t captured = 0, applied = 0, echoes = 0, rejected = 0, conflicts = 0, dead_letters = 0;
};

// The engine's own SQLite file (embedded default): sync state, journal, outbox, conflict log,
// dead letters, positions. One writer (the engine); the CLI reads it and writes operator
// resolutions. Every method that writes is one transaction unless a Txn is open.
//
// Tables:
//   progress(endpoint PK, capture, watermark, last_error)
//   journal(id PK AUTOINCREMENT, endpoint, payload msgpack)        captured, not yet resolved
//   records(collection, key, state msgpack, PK(collection, key))   RecordState per record
//   outbox(id PK, endpoint, payload msgpack, rows)                 planned, not yet applied
//   conflicts(id PK AUTOINCREMENT, ...)                            the conflict log
//   dead_letters(id PK AUTOINCREMENT, endpoint, batch_id, payload, reason, created_at, retry,
//                waits_for)
//   counters(endpoint, name, value, PK(endpoint, name))
//   refs(parent, child, PK(parent, child))                         references between records
//   meta(k PK, v)                                       next_apply_id, refs_signature
class StateStore {
 public:
  // Opens or creates the state file. `create` false: NotFound if it does not exist.
  static Result<std::unique_ptr<StateStore>> Open(const std::string& path, bool create);

  sqlite::Db& db() { return db_; }
  Result<sqlite::Txn> Begin() { return sqlite::Txn::Begin(db_); }

  Result<EndpointProgress> Progress(const std::string& endpoint);
  // Records what the resolver has merged of the endpoint's stream: its watermark and position.
  Status SetResolved(const std::string& endpoint, int64_t watermark, Position resolved);
  Status SetLastError(const std::string& endpoint, const std::string& error);
  Status SetAcked(const std::string& endpoint, Position acked);
  // The endpoint went back in time: capture and resolution start again at `resume`, its
  // watermark is `watermark` (the apply id it holds now), what was captured before becomes the
  // guard, its rows are to be read back (rescan), and its planned batches are dropped (they
  // were planned for rows it no longer holds: the rescan plans them again).
  Status ResetRestored(const std::string& endpoint, Position resume, int64_t watermark);
  // The rescan is done.
  Status SetRescanned(const std::string& endpoint);

  // The keys a rescan read, per collection, in a temporary table of this connection.
  Status ClearScanned();
  Status AddScanned(const std::string& collection, const std::vector<std::string>& keys);
  // Keys of records of `collection` above `after` that the rescan did not read, at most `limit`.
  Result<std::vector<std::string>> Unscanned(const std::string& collection,
                                             const std::string& after, size_t limit);

  // Appends a captured batch and moves the endpoint's capture position to batch.end. Returns
  // the entry's id (0 if the batch had no changes: only the position moved).
  Result<int64_t> AppendJournal(const std::string& endpoint, const ChangeBatch& batch);
  // Ids and endpoints of the oldest unresolved entries, at most `max_entries`.
  Result<std::vector<std::pair<int64_t, std::string>>> JournalHeads(size_t max_entries);
  Result<ChangeBatch> ReadJournalBatch(int64_t id);
  Status DeleteJournal(int64_t id);
  Result<int64_t> JournalBacklog();  // changes in the journal

  // Record states for `keys` of `collection`; absent records are not in the map.
  Status LoadRecords(const std::string& collection, const std::vector<std::string>& keys,
                     std::map<std::string, RecordState>& out);
  Status SaveRecord(const std::string& collection, const std::string& key,
                    const RecordState& state);
  Result<int64_t> CountRecords(const std::string& collection, bool live_only);

  // Makes every apply id allocated from now on larger than `id` (an endpoint that already
  // holds batches from an earlier state file must not skip new ones as replays).
  Status EnsureApplyIdsAbove(int64_t id);
  // Allocates `n` consecutive apply ids; returns the first.
  Result<int64_t> AllocateApplyIds(int n);
  Status AddOutbox(const std::string& endpoint, const ApplyBatch& batch);
  // Planned batches for `endpoint` in id order, at least one and then up to `max_rows` rows.
  // Batches found in `cache` (by id) are moved from it instead of being decoded.
  Result<std::vector<ApplyBatch>> ReadOutbox(const std::string& endpoint, size_t max_rows,
                                             std::map<int64_t, ApplyBatch>* cache = nullptr);
  Status DeleteOutbox(const std::string& endpoint, int64_t upto_id);
  // One planned batch (nullopt if it is not in the outbox: applied, or parked).
  Result<std::optional<ApplyBatch>> ReadOutboxBatch(const std::string& endpoint, int64_t id);
  // Ids of the batches planned for `endpoint` in (after, upto], ascending.
  Result<std::vector<int64_t>> OutboxIds(const std::string& endpoint, int64_t after, int64_t upto);
  // Rewrites a planned batch (the outbox batch with its id), or removes it if it has no ops.
  Status ReplaceOutbox(const std::string& endpoint, const ApplyBatch& batch);
  Result<int64_t> OutboxRows(const std::string& endpoint);
  // The lowest RowOp::seen of the batches waiting for `endpoint` (nullopt if none): its
  // changelog must be kept after that position for their compare-and-set.
  Result<std::optional<Position>> MinOutboxSeen(const std::string& endpoint);

  Result<int64_t> AddConflict(const ConflictRecord& c, double now_ms);
  Status UpdateOpenConflict(const ConflictValueUpdate& u);
  // Conflicts, newest last; `all` false: only open ones (and resolved ones still propagating).
  Result<std::vector<ConflictRow>> ListConflicts(bool all);
  Result<ConflictRow> GetConflict(int64_t id);
  Result<int64_t> CountOpenConflicts(const std::string& collection);
  // An operator's decision: marks the conflict resolved (pending propagation) with `value`.
  Status ResolveConflict(int64_t id, const std::string& how, const Value& value, double now_ms);
  // Operator resolutions not yet propagated by the engine.
  Result<std::vector<ConflictRow>> PendingResolutions();
  Status MarkPropagated(int64_t id);

  // Parks `batch` (one source transaction's writes); returns the dead letter's id.
  Result<int64_t> AddDeadLetter(const std::string& endpoint, const ApplyBatch& batch,
                                const std::string& reason, double now_ms, int64_t waits_for = 0);
  // The number of dead letters for `endpoint` and their highest id: changes whenever one is
  // added or removed (by the engine or an operator's command).
  Result<std::pair<int64_t, int64_t>> DeadLetterVersion(const std::string& endpoint);
  Result<int64_t> CountDeadLetters(const std::string& endpoint);
  // Dead letters, oldest first; only those with a retry requested if `retry_requested_only`.
  Result<std::vector<DeadLetterRow>> ListDeadLetters(bool retry_requested_only);
  // NotFound if there is no such dead letter.
  Result<DeadLetterRow> GetDeadLetter(int64_t id);
  // An operator's request: the engine re-plans the dead letter's records, and those of the
  // dead letters waiting for it (NotFound if none).
  Status RequestRetry(int64_t id);
  // The same request for every dead letter; returns how many there are.
  Result<int64_t> RequestRetryAll();
  Status DeleteDeadLetter(int64_t id);
  // Rewrites a dead letter's writes (some were taken out of it).
  Status ReplaceDeadLetterOps(int64_t id, const ApplyBatch& batch);

  // The index of references between live records, each spelled "collection\nkey text": which
  // children refer to a parent (DESIGN §4, a delete against a new reference).
  Status AddRef(const std::string& parent, const std::string& child);
  Status RemoveRef(const std::string& parent, const std::string& child);
  Result<std::vector<std::string>> ChildrenOf(const std::string& parent);
  // Rebuilds the index from the live records of `collections` (`parents_of` gives a record's
  // parents) unless it was built for the same `signature` (the references in the config).
  Status RebuildRefs(const std::string& signature, const std::vector<std::string>& collections,
                     const std::function<std::vector<std::string>(const std::string&,
                                                                  const RecordState&)>& parents_of);

  Status AddCounters(const std::string& endpoint, const Counters& delta);
  Result<Counters> GetCounters(const std::string& endpoint);

 private:
  explicit StateStore(sqlite::Db db) : db_(std::move(db)) {}
  Status Init();
  Result<sqlite::Stmt*> Cached(const char* sql);
  // The first column of the first row of `s` (0 if none); resets `s`.
  static Result<int64_t> ScalarInt(sqlite::Stmt& s);

  sqlite::Db db_;
  std::map<const char*, sqlite::Stmt> stmts_;
};

// MessagePack encoding of change batches and apply batches (journal and outbox payloads).
std::string EncodeChangeBatch(const ChangeBatch& batch);
Result<ChangeBatch> DecodeChangeBatch(std::string_view bytes);
std::string EncodeApplyBatch(const ApplyBatch& batch);
Result<ApplyBatch> DecodeApplyBatch(std::string_view bytes);

}  // namespace duplex
