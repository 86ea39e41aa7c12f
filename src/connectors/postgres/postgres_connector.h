#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "connectors/postgres/pg_conn.h"
#include "connectors/postgres/pgoutput.h"
#include "duplex/connector.h"

namespace duplex::pg {

// One PostgreSQL database (one schema) as a duplex endpoint (DESIGN §3, README "PostgreSQL").
//
// Capture, `logical` (default): a logical replication slot streaming pgoutput for a publication
// of the bound tables (CDC-FACTS Q1). duplex's apply session uses a replication origin, so its
// transactions arrive with an Origin message: they become one kMarker each, carrying the apply
// batch id that `pg_replication_origin_xact_setup` stored as the origin position, which is also
// the applied id committed atomically with the rows (P5, P6). Rejected writes travel as a
// transactional logical message inside the same transaction. The initial load reads each new
// table in key order in chunks, each chunk locking its rows (FOR SHARE) and emitting them as a
// logical message in its own transaction: a chunk lands in the stream after every change that
// committed before it, and no change to its rows can commit in between.
//
// Capture, `trigger`: AFTER triggers write a changelog table; duplex's own transactions set the
// transaction-local `duplex.origin` to this endpoint's tag, which the triggers skip (CDC-FACTS
// Q4). Positions are stamped by Capture in id order over committed rows only, so that a long
// transaction's rows cannot slip behind the cursor.
//
// Every server object is named from `tag` (from `[engine] name` and the endpoint's name), so two
// duplex configs on one server never clash. Not thread-safe: one engine thread at a time.
class PostgresConnector final : public Connector {
 public:
  enum class CaptureMode { kLogical, kTrigger };
  struct Options {
    std::string name;  // endpoint name in the config
    std::string dsn;   // libpq connection string or URI (may hold a password: never logged)
    std::string schema = "public";
    CaptureMode capture = CaptureMode::kLogical;
    std::string tag;  // [a-z0-9_], unique per (duplex config, endpoint)
    int64_t max_retained_wal_bytes = int64_t{1} << 30;  // Warnings() above this
  };

  explicit PostgresConnector(Options options);
  ~PostgresConnector() override;
  PostgresConnector(const PostgresConnector&) = delete;
  PostgresConnector& operator=(const PostgresConnector&) = delete;

  const std::string& name() const override { return opt_.name; }
  Status Open() override;
  Result<TableInfo> Describe(const std::string& table) override;
  Status Bind(std::vector<CollectionBinding> bindings) override;
  Result<bool> IsInstalled() override;
  Status Install() override;
  Status Uninstall() override;
  Result<bool> Poll() override;
  Result<ChangeBatch> Capture(Position from, size_t max_changes) override;
  Result<int64_t> Backlog(Position from) override;
  Status Ack(Position upto) override;
  // Trigger capture: restored if the `acked` table is behind `acked` or the stamped positions
  // behind `captured`. Logical: if the slot is gone or the server's WAL ends before
  // `captured`; capture then resumes from the slot's confirmed position.
  Result<RestoreCheck> CheckRestored(Position captured, Position acked) override;
  // In key order, a query per chunk.
  Status Scan(const std::string& collection, size_t max_rows,
              const std::function<Status(std::vector<Change>&&)>& visit) override;
  Result<int64_t> AppliedId() override;
  Result<ApplyResult> Apply(const std::vector<ApplyBatch>& batches,
                            bool isolate_txns = false) override;
  Result<std::vector<std::string>> Preflight() override;
  Result<std::vector<std::string>> Warnings() override;

  // Names of the server objects (for tests and `duplex check`).
  std::string SlotName() const { return "duplex_" + opt_.tag; }
  std::string OriginName() const { return "duplex_" + opt_.tag; }
  std::string PublicationName() const { return "duplex_" + opt_.tag; }
  std::string TableName(const std::string& what) const {
    return "_duplex_" + opt_.tag + "_" + what;
  }

  static constexpr int kSnapshotChunkRows = 5000;
  static constexpr size_t kMaxBufferedChanges = 200000;

 private:
  struct BoundTable {
    CollectionBinding binding;
    std::unordered_map<std::string, std::string> column_of_field;
    std::unordered_map<std::string, std::string> field_of_column;
    std::unordered_set<std::string> key_fields;
    std::vector<std::string> columns;      // bound columns, binding order
    std::vector<std::string> key_columns;  // in key order
    std::unordered_map<std::string, Oid> oid_of_column;
    std::unordered_map<std::string, std::string> type_of_column;  // format_type()
    // Fields whose values are record ids (the mapped key, mapped_refs) -> the table (bound here,
    // mapped key) whose key map translates them.
    std::unordered_map<std::string, std::string> record_table;
  };
  // A captured transaction, converted, waiting for Capture.
  struct PendingTxn {
    uint64_t end_lsn = 0;
    std::vector<Change> changes;
  };
  // One prepared apply statement.
  struct OpStmt {
    std::string name;
    enum class Source : uint8_t { kKey, kValues, kExpected, kSeen };
    std::vector<std::pair<Source, std::string>> params;
  };

  std::string Where() const;
  std::string Where(const std::string& table) const;
  std::string Q(const std::string& name) const;  // schema-qualified, quoted
  Status Connect(Conn& conn, bool origin_session);
  Status EnsureDb();
  Status LoadTypes();
  Result<bool> ObjectsExist();

  // Logical mode.
  Status EnsureStream();
  Status DrainStream(int wait_ms);
  Status Convert(StreamTxn&& txn);
  Row TupleRow(const BoundTable& t, const Relation& rel, const Tuple& tuple, bool* unchanged_toast);
  Status FillUnchanged(const BoundTable& t, Row& after);
  Status SnapshotTable(const BoundTable& t);
  Status ReadSnapshotMessage(const std::string& content, uint64_t end_lsn, int64_t commit_ms,
                             std::vector<Change>* out);

  // Trigger mode.
  Status InstallTriggers(const BoundTable& t, bool snapshot);
  Result<ChangeBatch> CaptureLog(Position from, size_t max_changes);
  Result<bool> PollOnce();
  Result<ChangeBatch> CaptureOnce(Position from, size_t max_changes);
  Result<ApplyResult> ApplyBatches(const std::vector<ApplyBatch>& batches, bool isolate_txns);
  template <typename F>
  auto Reconnecting(F&& call) -> decltype(call());
  Status StampLog();

  // Apply.
  Result<OpStmt*> Statement(const BoundTable& t, const RowOp& op);
  Result<std::string> ImageSql(const BoundTable& t, const std::string& prefix) const;
  // The log's `pk`: the key columns' text as a JSON array, each read as `prefix` + column.
  std::string KeyTextSql(const BoundTable& t, const std::string& prefix) const;
  // The row of `key` as a text image (column -> text or null), null if there is none. `records`:
  // the key is as duplex sends it (record ids), else native.
  Result<Value> ReadImage(const BoundTable& t, const Row& key, bool records);

  // Mapped keys (README "Mapped keys").
  // `ph` (a placeholder) as a value of `field`'s column: a record id becomes the native key
  // (key map, else the endpoint's own record), NULL if there is none; with `refuse`, an unknown
  // record is an error instead (SQLSTATE 23503) naming the field, its collection and the record.
  std::string ValueSql(const BoundTable& t, const std::string& field, const std::string& ph,
                       bool refuse) const;
  // Replaces native keys in the key, mapped key and mapped_refs fields of captured changes by
  // record ids: one key map query per table for what the cache lacks.
  Status PresentRecords(std::vector<Change>* changes);
  // Per op of `todo`, the text of its key as captured (native) for app_changed_.
  Result<std::vector<std::vector<std::string>>> NativeKeyTexts(
      const std::vector<const ApplyBatch*>& todo);
  Row ImageToRow(const BoundTable& t, const Value& image) const;
  Result<ApplyResult> ApplyOnce(const std::vector<const ApplyBatch*>& todo,
                                const std::vector<std::vector<std::string>>& native_keys,
                                bool isolate_txns, std::set<std::pair<size_t, size_t>>* stale);
  const BoundTable* ByCollection(const std::string& c) const;

  Options opt_;
  Conn db_;     // describe, install, snapshots, trigger capture, acks
  Conn apply_;  // apply only; in logical mode its session carries the replication origin
  ReplicationStream stream_;

  std::vector<BoundTable> tables_;
  std::unordered_map<std::string, size_t> by_table_;
  std::unordered_map<std::string, size_t> by_collection_;
  bool types_loaded_ = false;
  bool objects_exist_ = false;  // duplex's tables were seen on the server (ObjectsExist)
  Position acked_stamp_ = -1;   // trigger capture: what the `acked` table holds, as last written

  // Logical capture state.
  std::deque<PendingTxn> pending_;
  size_t pending_changes_ = 0;
  uint64_t delivered_ = 0;  // end of the last transaction Capture returned
  uint64_t acked_ = 0;      // highest position Ack confirmed
  // Per table, key text -> end LSN of the application's last change to it (not yet acked):
  // what Apply needs to tell a write planned without seeing that change.
  std::unordered_map<std::string, std::unordered_map<std::string, uint64_t>> app_changed_;
  // The same entries in stream order, so that Ack forgets them without scanning the maps.
  std::deque<std::tuple<uint64_t, std::string, std::string>> app_changed_order_;
  void NoteAppChange(const std::string& table, std::string key, uint64_t lsn);
  bool first_poll_ = true;
  uint64_t previous_flush_ = 0;  // the server's flushed WAL end at the previous idle poll
  int64_t last_stamped_ = 0;     // trigger mode: highest stamped position seen
  int64_t snapshot_txn_ = -1;    // logical mode: the last Change::txn given to an initial-load row

  bool any_records_ = false;  // some bound field holds record ids
  // Per table, native key (JSON) -> record id, as captured. Entries never change: PostgreSQL
  // does not reuse generated keys, and a key map row is committed with its row.
  std::unordered_map<std::string, std::unordered_map<std::string, std::string>> records_;
  size_t records_cached_ = 0;

  std::unordered_map<std::string, OpStmt> stmts_;
  int stmt_counter_ = 0;
};

}  // namespace duplex::pg
