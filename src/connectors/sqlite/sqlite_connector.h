#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "duplex/connector.h"
#include "util/sqlite.h"

namespace duplex::sqlite {

// One SQLite file as a duplex endpoint (DESIGN §3), captured by triggers (CDC-FACTS Q5).
//
// Install() creates, in the endpoint's own file, a changelog (`_duplex_changelog`, positions are
// its `seq`), a one-row flag (`_duplex_apply`) that the triggers test so that duplex's own writes
// are not logged (P5), the last applied batch id (`_duplex_applied`, written in the same
// transaction as the rows: P6) and the list of captured tables (`_duplex_captured`). Every bound
// table gets three AFTER triggers that log the bound columns as JSON objects. Apply() replaces
// the rows of its transaction with one marker row ('M', the last batch id): the causal marker of
// DESIGN §4. Applications keep writing the file from other processes throughout.
//
// Relationships (DESIGN §5): duplex's connection enforces foreign keys, deferred to the end of
// each apply transaction (or source transaction, with isolate_txns). Tables with a mapped key
// keep a key map (`_duplex_keymap`: record id -> native key) in the same file, maintained by
// Apply for duplex's inserts and by the triggers for the applications' inserts and deletes.
//
// Lifecycle: construct, Open(), Bind(), then Install() (once per schema/binding change) and the
// capture/apply calls. Not thread-safe: one engine thread at a time (the Connector contract).
// Prepared statements are cached for the life of the connection (or until Bind/Uninstall).
class SqliteConnector final : public Connector {
 public:
  // `name` is the endpoint's name in the config (used in every message); `path` the SQLite file.
  SqliteConnector(std::string name, std::string path);
  ~SqliteConnector() override;
  SqliteConnector(const SqliteConnector&) = delete;
  SqliteConnector& operator=(const SqliteConnector&) = delete;

  const std::string& name() const override { return name_; }
  // Opens the existing file (Unavailable if it does not exist or cannot be opened).
  Status Open() override;
  Result<TableInfo> Describe(const std::string& table) override;
  // InvalidArgument for an inconsistent binding (duplicate collection/table/column, a key field
  // that is not a field, a table named like duplex's own `_duplex_*` tables).
  Status Bind(std::vector<CollectionBinding> bindings) override;
  Result<bool> IsInstalled() override;
  // Also checks every bound table and column exists and that the key columns are the primary
  // key or a unique index (InvalidArgument naming the table otherwise), before writing anything.
  Status Install() override;
  Status Uninstall() override;
  // PRAGMA data_version: true on the first call, after another connection committed, and after
  // this connector's own Install/Apply/Ack committed something.
  Result<bool> Poll() override;
  // Positions are changelog seqs. A changelog transaction larger than `max_changes` is cut (the
  // changelog does not record transaction boundaries). A key-changing UPDATE becomes a kDelete
  // and a kInsert at the same position.
  Result<ChangeBatch> Capture(Position from, size_t max_changes) override;
  Result<int64_t> Backlog(Position from) override;
  // Prunes the changelog up to `upto`, in transactions of at most kAckMaxRows rows (oldest
  // first), to keep each hold of the write lock short. Unavailable if the database is busy
  // (what was pruned stays pruned; call again).
  // Also records `upto` in `_duplex_acked` (when it moved).
  Status Ack(Position upto) override;
  // Restored if `_duplex_acked` is behind `acked`, the changelog's AUTOINCREMENT counter behind
  // `captured`, or the bookkeeping tables are gone; capture resumes after `_duplex_acked`.
  Result<RestoreCheck> CheckRestored(Position captured, Position acked) override;
  // In one read transaction (WAL: the applications keep writing).
  Status Scan(const std::string& collection, size_t max_rows,
              const std::function<Status(std::vector<Change>&&)>& visit) override;
  Result<int64_t> AppliedId() override;
  Result<ApplyResult> Apply(const std::vector<ApplyBatch>& batches,
                            bool isolate_txns = false) override;

  static constexpr int64_t kAckMaxRows = 50000;
  static constexpr int kBusyTimeoutMs = 250;

 private:
  // A bound table with the lookups capture and apply need.
  struct BoundTable {
    CollectionBinding binding;
    std::unordered_map<std::string, std::string> column_of_field;
    std::unordered_set<std::string> key_fields;
    std::vector<std::string> columns;  // captured columns, in binding order
    // Columns captured as record ids (key_mode = "mapped"), each with the endpoint table whose
    // key map translates it: a mapped key column (its own table) and the columns of
    // mapped_refs fields (the referenced collection's table).
    std::unordered_map<std::string, std::string> record_table_of_column;
    // mapped_refs: field -> the referenced table (index in tables_).
    std::vector<std::pair<std::string, size_t>> ref_fields;
  };
  // A cached apply statement for one shape of RowOp, and where each parameter comes from.
  struct OpStmt {
    enum class Source : uint8_t { kKey, kValues, kExpected };
    Stmt stmt;
    std::vector<std::pair<Source, std::string>> params;  // in bind order: (object, field)
  };

  Status CheckOpen() const;
  // "endpoint 'crm' (/path/crm.db)" and "..., table 'customers'", the prefix of every message.
  std::string Where() const;
  std::string Where(const std::string& table) const;
  // Prepares `sql` into `slot` unless already prepared.
  Result<Stmt*> Prepared(Stmt& slot, const char* sql);
  // Whether the four bookkeeping tables exist.
  Result<bool> BookkeepingExists();
  Status NotInstalled() const;
  void ClearStatements();

  // Install helpers (inside Install's transaction).
  Status CheckTable(const BoundTable& t);
  Status CreateTriggers(const BoundTable& t);
  Status DropTriggers(const std::string& table);
  // The json_object(...) expression for the captured columns of `t`, each read as `prefix` +
  // "col" (record ids for mapped columns).
  Result<std::string> ImageExpr(const BoundTable& t, const std::string& prefix) const;
  // A column's value as the changelog holds it: ColumnJson for most, RecordExpr for mapped.
  std::string ColumnJson(const BoundTable& t, const std::string& column,
                         const std::string& prefix) const;
  // The record id of the row of `table` whose key is `ref` (NULL for NULL): the key map's entry,
  // else name_ + ":" + the key as JSON (RecordId). Agrees with RecordId for integers and text.
  std::string RecordExpr(const std::string& table, const std::string& ref) const;
  // The key map statements of a mapped table's triggers (see CreateTriggers).
  std::string FreshRecordSql(const BoundTable& t, const std::string& ref,
                             const std::string& cond) const;
  std::string RetireRecordSql(const BoundTable& t, const std::string& ref,
                              const std::string& cond) const;
  // What _duplex_captured.columns holds for `t`: the columns, and for a table with record
  // columns also the endpoint name and the translated columns (the triggers depend on them).
  std::string CapturedDescriptor(const BoundTable& t) const;

  // Capture helper: `image` (changelog JSON of columns) to canonical fields of `t`.
  static Row MapImage(const BoundTable& t, Value&& image);
  Result<Value> ParseImage(const BoundTable& t, int64_t seq, int col);

  // Apply helpers.
  Result<OpStmt*> OpStatement(const BoundTable& t, const RowOp& op);
  // Writes ops [begin, end) of `batch` (one source transaction), adding to `counts`.
  // InvalidArgument if the endpoint refuses one of them.
  Status ApplyUnit(const ApplyBatch& batch, size_t begin, size_t end, ApplyResult* counts);
  // Whether the open transaction holds a foreign key violation it would fail to commit.
  bool DeferredFkViolation();
  // "FOREIGN KEY constraint failed: table 'orders' key [3] references a missing row of table
  // 'customers'", naming the first few violations.
  std::string FkViolations();
  // Returns whether the row write took effect (false: compare-and-set rejected it).
  // `generated`: for an insert into a mapped table, receives the key the endpoint generated
  // (JSON text, as the key map holds it).
  Result<bool> ApplyOne(const BoundTable& t, const RowOp& op, std::string* generated = nullptr);
  // ApplyOne with record ids translated to this endpoint's keys (key map, OwnNativeKey): the key
  // of a mapped table and mapped_refs fields. InvalidArgument for a reference to a record this
  // endpoint does not hold.
  Result<bool> ApplyRow(const BoundTable& t, const RowOp& op);
  // The key of `record` in table `t` (mapped key) if this endpoint holds a row for it.
  Result<std::optional<Value>> HeldKey(const BoundTable& t, const Value& record);
  // `key` with record ids translated to native keys (null where the endpoint holds none).
  Result<Row> NativeKey(const BoundTable& t, const Row& key);
  // Records (t, record) -> native in the key map (native taken from whoever held it).
  Status PutKeyMap(const BoundTable& t, const std::string& record, const std::string& native);
  // json_array() of the key columns of `t`, each read as `prefix` + column.
  std::string KeyExpr(const BoundTable& t, const std::string& prefix) const;
  // Whether the application changed the row of `op` after position `op.seen`: the resolver
  // planned the write without having seen that change, so it must not overwrite it.
  Result<bool> ChangedSince(const BoundTable& t, const RowOp& op);
  // Logs a rejected row write: its key and the row as it is now (kRejected).
  Status LogRejected(const BoundTable& t, const RowOp& op, int64_t apply_id);

  std::string name_;
  std::string path_;
  Db db_;

  std::vector<BoundTable> tables_;
  std::unordered_map<std::string, size_t> by_table_;       // endpoint table -> tables_ index
  std::unordered_map<std::string, size_t> by_collection_;  // collection -> tables_ index

  // Poll state.
  bool polled_ = false;
  int64_t data_version_ = 0;
  bool own_commit_ = false;

  // Statements prepared once and reused.
  Stmt poll_stmt_;
  Stmt capture_stmt_;
  Stmt backlog_stmt_;
  Stmt ack_stmt_;
  Stmt ack_stamp_stmt_;
  Position acked_stamp_ = -1;  // what _duplex_acked holds, as far as this connection wrote it
  Stmt applied_stmt_;
  Stmt apply_on_stmt_;
  Stmt apply_off_stmt_;
  Stmt marker_stmt_;
  Stmt set_applied_stmt_;
  std::unordered_map<std::string, OpStmt> op_stmts_;     // shape key -> statement
  std::unordered_map<std::string, Stmt> reject_stmts_;   // table -> kRejected logging statement
  std::unordered_map<std::string, Stmt> changed_stmts_;  // table -> ChangedSince statement
  std::unordered_map<std::string, Stmt> own_row_stmts_;  // table -> HeldKey's own-row probe
  Stmt keymap_get_stmt_;
  Stmt keymap_retire_stmt_;
  Stmt keymap_put_stmt_;
  std::string shape_buf_;  // reused to build shape keys
};

}  // namespace duplex::sqlite
