#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "connectors/postgres/capture.h"
#include "connectors/postgres/key_map.h"
#include "connectors/postgres/pgoutput.h"

namespace duplex::pg {

// Capture `logical` (default): a logical replication slot streaming pgoutput for a publication
// of the bound tables (CDC-FACTS Q1). duplex's apply session uses a replication origin, so its
// transactions arrive with an Origin message: they become one kMarker each, carrying the apply
// batch id that `pg_replication_origin_xact_setup` stored as the origin position, which is also
// the applied id committed atomically with the rows (P5, P6). Rejected writes travel as a
// transactional logical message inside the same transaction. The initial load reads each new
// table in key order in chunks, each chunk locking its rows (FOR SHARE) and emitting them as a
// logical message in its own transaction: a chunk lands in the stream after every change that
// committed before it, and no change to its rows can commit in between.
//
// logical_capture.cc holds the install and the connector's calls; logical_stream.cc turns the
// stream's transactions into changes and checks apply's writes against the stream.
class LogicalCapture final : public PgCapture {
 public:
  LogicalCapture(PgEndpoint& ep, KeyMap& keys) : ep_(ep), keys_(keys) {
    ep_.on_refused = [this] { stream_.Close(); };
  }
  ~LogicalCapture() override { ep_.on_refused = nullptr; }

  Status Preflight(bool super, bool repl, const std::string& user, const std::string& dbname,
                   std::vector<std::string>* problems) override;
  bool NeedsReplicaIdentity() const override { return true; }
  const char* OwnershipNeededFor() const override { return "adding it to a publication needs"; }
  Result<bool> ObjectsInstalled() override;
  std::string LogTable() const override { return std::string(); }
  Result<bool> TablesInstalled() override;
  Status InstallObjects() override;
  Status InstallTable(const BoundTable& t, bool snapshot) override;
  Status ForgetTable(const std::string&) override { return Status::Ok(); }
  void Reset() override;
  Result<std::vector<std::string>> Warnings() override;

  Result<bool> Poll() override;
  Result<ChangeBatch> Capture(const Position& from, size_t max_changes) override;
  Result<int64_t> Backlog(const Position& from) override;
  Status Ack(const Position& upto) override;
  Result<RestoreCheck> CheckRestored(const Position& captured, const Position& acked) override;
  Result<int64_t> AppliedId() override;
  bool Dead() const override { return !stream_.running(); }

  Status SetUpApplySession(Conn& apply) override;
  Status BeginApply(Conn& apply, int64_t top) override;
  bool SeenInStatement() const override { return false; }
  std::string UnseenSql(const BoundTable&, const std::string&, const std::string&) const override {
    return std::string();
  }
  Status CatchUp(Conn& apply) override;
  bool ChangedAfter(const std::string& table, const std::string& key_text,
                    const Position& seen) const override;
  Status Reject(Conn& apply, const BoundTable& t, const RowOp& op, const Value& image,
                int64_t batch_id) override;
  Status Mark(Conn& apply, int64_t top, bool writes) override;

 private:
  // A captured transaction, converted, waiting for Capture.
  struct PendingTxn {
    uint64_t end_lsn = 0;
    std::vector<Change> changes;
  };

  // The initial load of `t`, in chunks (README "initial load").
  Status SnapshotTable(const BoundTable& t);

  // logical_stream.cc
  Status EnsureStream();
  Status DrainStream(int wait_ms);
  // Converts the transactions the stream has ready into pending_.
  Status ConvertReady();
  Status Convert(StreamTxn&& txn);
  Row TupleRow(const BoundTable& t, const Relation& rel, const Tuple& tuple, bool* unchanged_toast);
  Status FillUnchanged(const BoundTable& t, Row& after);
  Status ReadSnapshotMessage(const std::string& content, uint64_t end_lsn, int64_t commit_ms,
                             std::vector<Change>* out);
  void NoteAppChange(const std::string& table, std::string key, uint64_t lsn);

  PgEndpoint& ep_;
  KeyMap& keys_;
  ReplicationStream stream_;

  std::deque<PendingTxn> pending_;
  size_t pending_changes_ = 0;
  uint64_t delivered_ = 0;  // end of the last transaction Capture returned
  uint64_t acked_ = 0;      // highest position Ack confirmed
  // Per table, key text -> end LSN of the application's last change to it (not yet acked):
  // what Apply needs to tell a write planned without seeing that change.
  std::unordered_map<std::string, std::unordered_map<std::string, uint64_t>> app_changed_;
  // The same entries in stream order, so that Ack forgets them without scanning the maps.
  std::deque<std::tuple<uint64_t, std::string, std::string>> app_changed_order_;
  bool first_poll_ = true;
  uint64_t previous_flush_ = 0;  // the server's flushed WAL end at the previous idle poll
  size_t snapshot_units_ = 0;    // initial-load rows given a Change::txn of their own (MadeUpTxn)
  // The rejected writes of the apply transaction being built, sent by Mark.
  Value rejected_ = Value::array();
};

}  // namespace duplex::pg
