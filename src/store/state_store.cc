#include "store/state_store.h"

#include <algorithm>
#include <filesystem>

#include "store/schema.h"
#include "store/sqlite_journal.h"

namespace duplex {

namespace {

// Store::Transaction on the state file: a sqlite::Txn.
class SqliteStoreTxn final : public StoreTxn {
 public:
  explicit SqliteStoreTxn(sqlite::Txn txn) : txn_(std::move(txn)) {}
  Status Commit() override { return txn_.Commit(); }

 private:
  sqlite::Txn txn_;
};

}  // namespace

StateStore::StateStore(sqlite::Db db)
    : db_(std::move(db)),
      journal_(std::make_unique<SqliteJournal>(db_)),
      progress_(db_),
      counters_(db_),
      apply_ids_(db_),
      records_(db_),
      outbox_(db_),
      ledger_(db_),
      conflicts_(db_),
      dead_letters_(db_),
      refs_(db_) {}

Result<std::unique_ptr<StateStore>> StateStore::Open(const std::string& path, bool create) {
  if (!create && !std::filesystem::exists(path)) {
    return Status::NotFound("state file '" + path + "' does not exist (has `duplex run` run?)");
  }
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Db db, sqlite::Db::Open(path, create, 10000));
  std::unique_ptr<StateStore> store(new StateStore(std::move(db)));
  DUPLEX_RETURN_IF_ERROR(InitSchema(store->db()));
  return store;
}

Result<std::unique_ptr<StoreTxn>> StateStore::Transaction() {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, Begin());
  return std::unique_ptr<StoreTxn>(std::make_unique<SqliteStoreTxn>(std::move(txn)));
}

Result<int64_t> StateStore::AppendJournal(const std::string& endpoint, const ChangeBatch& batch) {
  int64_t id = 0;
  if (!batch.changes.empty()) {
    DUPLEX_ASSIGN_OR_RETURN(id, journal_->Append(endpoint, batch));
  }
  double newest = 0;
  for (const Change& c : batch.changes) newest = std::max(newest, c.commit_ms);
  DUPLEX_RETURN_IF_ERROR(progress_.SetCaptured(endpoint, batch.end, newest));
  return id;
}

Result<EndpointProgress> StateStore::Progress(const std::string& endpoint) {
  return progress_.Get(endpoint);
}
Status StateStore::SetCaptured(const std::string& endpoint, Position capture,
                               double newest_commit_ms) {
  return progress_.SetCaptured(endpoint, capture, newest_commit_ms);
}
Status StateStore::SetResolved(const std::string& endpoint, int64_t watermark, Position resolved) {
  return progress_.SetResolved(endpoint, watermark, resolved);
}
Status StateStore::SetLastError(const std::string& endpoint, const std::string& error) {
  return progress_.SetLastError(endpoint, error);
}
Status StateStore::SetAcked(const std::string& endpoint, Position acked) {
  return progress_.SetAcked(endpoint, acked);
}
Status StateStore::ResetRestored(const std::string& endpoint, Position resume, int64_t watermark) {
  DUPLEX_RETURN_IF_ERROR(progress_.ResetRestored(endpoint, resume, watermark));
  DUPLEX_RETURN_IF_ERROR(ledger_.DeleteAll(endpoint));
  return outbox_.DeleteAll(endpoint);
}
Status StateStore::SetRescanned(const std::string& endpoint) {
  return progress_.SetRescanned(endpoint);
}

Status StateStore::MarkRescan(const std::string& endpoint) {
  return progress_.MarkRescan(endpoint);
}

Status StateStore::LoadRecords(const std::string& collection, const std::vector<std::string>& keys,
                               std::map<std::string, RecordState>& out) {
  return records_.Load(collection, keys, out);
}
Status StateStore::SaveRecord(const std::string& collection, const std::string& key,
                              const RecordState& state) {
  return records_.Save(collection, key, state);
}
Result<int64_t> StateStore::CountRecords(const std::string& collection, bool live_only) {
  return records_.Count(collection, live_only);
}
Status StateStore::ClearScanned() { return records_.ClearScanned(); }
Status StateStore::AddScanned(const std::string& collection, const std::vector<std::string>& keys) {
  return records_.AddScanned(collection, keys);
}
Result<std::vector<std::string>> StateStore::Unscanned(const std::string& collection,
                                                       const std::string& after, size_t limit) {
  return records_.Unscanned(collection, after, limit);
}

Result<std::vector<std::string>> StateStore::LiveKeys(const std::string& collection,
                                                      const std::string& after, size_t limit) {
  return records_.LiveKeys(collection, after, limit);
}

Status StateStore::EnsureApplyIdsAbove(int64_t id) { return apply_ids_.EnsureAbove(id); }
Result<int64_t> StateStore::AllocateApplyIds(int n) { return apply_ids_.Allocate(n); }
Status StateStore::AddOutbox(const std::string& endpoint, const ApplyBatch& batch) {
  return outbox_.Add(endpoint, batch);
}
Result<std::vector<ApplyBatch>> StateStore::ReadOutbox(const std::string& endpoint, size_t max_rows,
                                                       std::map<int64_t, ApplyBatch>* cache) {
  return outbox_.Read(endpoint, max_rows, cache);
}
Status StateStore::DeleteOutbox(const std::string& endpoint, int64_t upto_id) {
  return outbox_.Delete(endpoint, upto_id);
}
Result<std::optional<ApplyBatch>> StateStore::ReadOutboxBatch(const std::string& endpoint,
                                                              int64_t id) {
  return outbox_.ReadBatch(endpoint, id);
}
Result<std::vector<int64_t>> StateStore::OutboxIds(const std::string& endpoint, int64_t after,
                                                   int64_t upto) {
  return outbox_.Ids(endpoint, after, upto);
}
Status StateStore::ReplaceOutbox(const std::string& endpoint, const ApplyBatch& batch) {
  return outbox_.Replace(endpoint, batch);
}
Result<int64_t> StateStore::OutboxRows(const std::string& endpoint) {
  return outbox_.Rows(endpoint);
}
Status StateStore::RecordLedger(const std::string& endpoint, ApplyId apply_id,
                                const std::vector<RowOp>& ops,
                                const std::vector<std::string>& key_texts) {
  return ledger_.Record(endpoint, apply_id, ops, key_texts);
}
Result<std::map<std::string, std::vector<LedgerEntry>>> StateStore::LedgerOf(
    const std::string& endpoint, const std::string& collection, const std::string& key_text) {
  return ledger_.Of(endpoint, collection, key_text);
}
Status StateStore::DropLedger(const std::string& endpoint, const std::string& collection,
                              const std::string& key_text,
                              const std::vector<std::pair<std::string, ApplyId>>& fields) {
  return ledger_.Drop(endpoint, collection, key_text, fields);
}
Status StateStore::ForgetLedger(const std::string& endpoint, ApplyId apply_id, const RowOp& op,
                                const std::string& key_text) {
  return ledger_.Forget(endpoint, apply_id, op, key_text);
}
Result<bool> StateStore::AnyLedger(const std::string& endpoint) { return ledger_.Any(endpoint); }
Result<std::optional<Position>> StateStore::MinOutboxSeen(const std::string& endpoint) {
  return outbox_.MinSeen(endpoint);
}

Result<int64_t> StateStore::AddConflict(const ConflictRecord& c, double now_ms) {
  return conflicts_.Add(c, now_ms);
}
Status StateStore::UpdateOpenConflict(const ConflictValueUpdate& u) {
  return conflicts_.UpdateOpen(u);
}
Result<std::vector<ConflictRow>> StateStore::ListConflicts(bool all) {
  return conflicts_.List(all);
}
Result<ConflictRow> StateStore::GetConflict(int64_t id) { return conflicts_.Get(id); }
Result<int64_t> StateStore::CountOpenConflicts(const std::string& collection) {
  return conflicts_.CountOpen(collection);
}
Status StateStore::ResolveConflict(int64_t id, const std::string& how, const Value& value,
                                   double now_ms) {
  return conflicts_.Resolve(id, how, value, now_ms);
}
Result<std::vector<ConflictRow>> StateStore::PendingResolutions() {
  return conflicts_.PendingResolutions();
}
Status StateStore::MarkPropagated(int64_t id) { return conflicts_.MarkPropagated(id); }

Result<int64_t> StateStore::AddDeadLetter(const std::string& endpoint, const ApplyBatch& batch,
                                          const std::string& reason, double now_ms,
                                          int64_t waits_for) {
  return dead_letters_.Add(endpoint, batch, reason, now_ms, waits_for);
}
Result<std::pair<int64_t, int64_t>> StateStore::DeadLetterVersion(const std::string& endpoint) {
  return dead_letters_.Version(endpoint);
}
Result<int64_t> StateStore::CountDeadLetters(const std::string& endpoint) {
  return dead_letters_.Count(endpoint);
}
Result<std::vector<DeadLetterRow>> StateStore::ListDeadLetters(bool retry_requested_only) {
  return dead_letters_.List(retry_requested_only);
}
Result<DeadLetterRow> StateStore::GetDeadLetter(int64_t id) { return dead_letters_.Get(id); }
Status StateStore::RequestRetry(int64_t id) { return dead_letters_.RequestRetry(id); }
Result<int64_t> StateStore::RequestRetryAll() { return dead_letters_.RequestRetryAll(); }
Status StateStore::DeleteDeadLetter(int64_t id) { return dead_letters_.Delete(id); }
Status StateStore::ReplaceDeadLetterOps(int64_t id, const ApplyBatch& batch) {
  return dead_letters_.ReplaceOps(id, batch);
}

Status StateStore::AddRef(const std::string& parent, const std::string& child) {
  return refs_.Add(parent, child);
}
Status StateStore::RemoveRef(const std::string& parent, const std::string& child) {
  return refs_.Remove(parent, child);
}
Result<std::vector<std::string>> StateStore::ChildrenOf(const std::string& parent) {
  return refs_.ChildrenOf(parent);
}
Status StateStore::RebuildRefs(const std::string& signature,
                               const std::vector<std::string>& collections,
                               const ParentsOf& parents_of) {
  return refs_.Rebuild(signature, collections, parents_of);
}

Status StateStore::AddCounters(const std::string& endpoint, const Counters& delta) {
  return counters_.Add(endpoint, delta);
}
Result<Counters> StateStore::GetCounters(const std::string& endpoint) {
  return counters_.Get(endpoint);
}

}  // namespace duplex
