#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/codec.h"
#include "store/conflict_log.h"
#include "store/dead_letters.h"
#include "store/journal.h"
#include "store/ledger.h"
#include "store/outbox.h"
#include "store/progress.h"
#include "store/records.h"
#include "store/ref_index.h"
#include "store/store.h"
#include "store/store_db.h"
#include "util/sqlite.h"

namespace duplex {

// The engine's own SQLite file (the embedded default, DESIGN §6, §7): the state store and the
// journal over one database handle (WAL mode). One writer (the engine); the CLI and the admin
// server read it and write operator requests. Calls join the transaction open on it (Begin,
// or Store::Transaction), if any.
//
// A facade: each table has its own class over the shared StoreDb (schema.h lists the tables),
// and this class forwards to them. The journal sits behind its own interface (journal.h);
// here it is a SqliteJournal in the same file, so one transaction covers it and the rest.
// The contract of each method is in Store (store.h).
class StateStore final : public Store {
 public:
  // Opens or creates the state file and creates or upgrades its tables (InitSchema).
  // `create` false: NotFound if it does not exist.
  static Result<std::unique_ptr<StateStore>> Open(const std::string& path, bool create);

  sqlite::Db& db() { return db_.db(); }
  // A transaction on the state file (BEGIN IMMEDIATE); rolls back unless committed.
  Result<sqlite::Txn> Begin() { return sqlite::Txn::Begin(db_.db()); }
  Result<std::unique_ptr<StoreTxn>> Transaction() override;

  // The journal (DESIGN §2), in this file.
  Journal& journal() { return *journal_; }
  // Appends a captured batch and moves the endpoint's capture position to batch.end. Returns
  // the entry's id (0 if the batch had no changes: only the position moved).
  Result<int64_t> AppendJournal(const std::string& endpoint, const ChangeBatch& batch);
  // Ids and endpoints of the oldest unresolved entries, at most `max_entries`.
  Result<std::vector<std::pair<int64_t, std::string>>> JournalHeads(size_t max_entries) {
    return journal_->Heads(max_entries);
  }
  Result<ChangeBatch> ReadJournalBatch(int64_t id) { return journal_->Read(id); }
  Status DeleteJournal(int64_t id) { return journal_->Delete(id); }
  Result<int64_t> JournalBacklog() { return journal_->Backlog(); }  // changes in the journal

  Result<EndpointProgress> Progress(const std::string& endpoint) override;
  Status SetCaptured(const std::string& endpoint, Position capture,
                     double newest_commit_ms) override;
  Status SetResolved(const std::string& endpoint, int64_t watermark, Position resolved) override;
  Status SetLastError(const std::string& endpoint, const std::string& error) override;
  Status SetAcked(const std::string& endpoint, Position acked) override;
  Status ResetRestored(const std::string& endpoint, Position resume, int64_t watermark) override;
  Status SetRescanned(const std::string& endpoint) override;
  Status MarkRescan(const std::string& endpoint) override;

  Status LoadRecords(const std::string& collection, const std::vector<std::string>& keys,
                     std::map<std::string, RecordState>& out) override;
  Status SaveRecord(const std::string& collection, const std::string& key,
                    const RecordState& state) override;
  Result<int64_t> CountRecords(const std::string& collection, bool live_only) override;
  // The scanned keys live in a temporary table of this connection.
  Status ClearScanned() override;
  Status AddScanned(const std::string& collection, const std::vector<std::string>& keys) override;
  Result<std::vector<std::string>> Unscanned(const std::string& collection,
                                             const std::string& after, size_t limit) override;
  Result<std::vector<std::string>> LiveKeys(const std::string& collection, const std::string& after,
                                            size_t limit) override;

  Status EnsureApplyIdsAbove(int64_t id) override;
  Result<int64_t> AllocateApplyIds(int n) override;
  Status AddOutbox(const std::string& endpoint, const ApplyBatch& batch) override;
  Result<std::vector<ApplyBatch>> ReadOutbox(
      const std::string& endpoint, size_t max_rows,
      std::map<int64_t, ApplyBatch>* cache = nullptr) override;
  Status DeleteOutbox(const std::string& endpoint, int64_t upto_id) override;
  Result<std::optional<ApplyBatch>> ReadOutboxBatch(const std::string& endpoint,
                                                    int64_t id) override;
  Result<std::vector<int64_t>> OutboxIds(const std::string& endpoint, int64_t after,
                                         int64_t upto) override;
  Status ReplaceOutbox(const std::string& endpoint, const ApplyBatch& batch) override;
  Result<int64_t> OutboxRows(const std::string& endpoint) override;
  Result<std::optional<Position>> MinOutboxSeen(const std::string& endpoint) override;
  Status RecordLedger(const std::string& endpoint, ApplyId apply_id, const std::vector<RowOp>& ops,
                      const std::vector<std::string>& key_texts) override;
  Result<std::map<std::string, std::vector<LedgerEntry>>> LedgerOf(
      const std::string& endpoint, const std::string& collection,
      const std::string& key_text) override;
  Status DropLedger(const std::string& endpoint, const std::string& collection,
                    const std::string& key_text,
                    const std::vector<std::pair<std::string, ApplyId>>& fields) override;
  Status ForgetLedger(const std::string& endpoint, ApplyId apply_id, const RowOp& op,
                      const std::string& key_text) override;
  Result<bool> AnyLedger(const std::string& endpoint) override;

  Result<int64_t> AddConflict(const ConflictRecord& c, double now_ms) override;
  Status UpdateOpenConflict(const ConflictValueUpdate& u) override;
  Result<std::vector<ConflictRow>> ListConflicts(bool all) override;
  Result<ConflictRow> GetConflict(int64_t id) override;
  Result<int64_t> CountOpenConflicts(const std::string& collection) override;
  Status ResolveConflict(int64_t id, const std::string& how, const Value& value,
                         double now_ms) override;
  Result<std::vector<ConflictRow>> PendingResolutions() override;
  Status MarkPropagated(int64_t id) override;

  Result<int64_t> AddDeadLetter(const std::string& endpoint, const ApplyBatch& batch,
                                const std::string& reason, double now_ms,
                                int64_t waits_for = 0) override;
  Result<std::pair<int64_t, int64_t>> DeadLetterVersion(const std::string& endpoint) override;
  Result<int64_t> CountDeadLetters(const std::string& endpoint) override;
  Result<std::vector<DeadLetterRow>> ListDeadLetters(bool retry_requested_only) override;
  Result<DeadLetterRow> GetDeadLetter(int64_t id) override;
  Status RequestRetry(int64_t id) override;
  Result<int64_t> RequestRetryAll() override;
  Status DeleteDeadLetter(int64_t id) override;
  Status ReplaceDeadLetterOps(int64_t id, const ApplyBatch& batch) override;

  Status AddRef(const std::string& parent, const std::string& child) override;
  Status RemoveRef(const std::string& parent, const std::string& child) override;
  Result<std::vector<std::string>> ChildrenOf(const std::string& parent) override;
  Status RebuildRefs(const std::string& signature, const std::vector<std::string>& collections,
                     const ParentsOf& parents_of) override;

  Status AddCounters(const std::string& endpoint, const Counters& delta) override;
  Result<Counters> GetCounters(const std::string& endpoint) override;

 private:
  explicit StateStore(sqlite::Db db);

  StoreDb db_;  // first: every part below holds a reference to it
  std::unique_ptr<Journal> journal_;
  ProgressTable progress_;
  CounterTable counters_;
  ApplyIds apply_ids_;
  RecordTable records_;
  Outbox outbox_;
  Ledger ledger_;
  ConflictLog conflicts_;
  DeadLetters dead_letters_;
  RefIndex refs_;
};

}  // namespace duplex
