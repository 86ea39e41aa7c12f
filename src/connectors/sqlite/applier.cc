#include "connectors/sqlite/applier.h"

#include <optional>
#include <utility>

#include "connectors/sqlite/images.h"

namespace duplex::sqlite {

namespace {

// One unit of an isolated apply (a source transaction) inside the open Txn: rolled back to its
// start and released unless Release() keeps it. Refused units end with Rollback(); a unit left
// by an error that fails the whole apply is rolled back by the destructor, before the Txn is.
class Savepoint {
 public:
  static Result<Savepoint> Begin(Db& db) {
    DUPLEX_RETURN_IF_ERROR(db.Exec("SAVEPOINT duplex_txn"));
    return Savepoint(&db);
  }
  Savepoint(Savepoint&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  Savepoint& operator=(Savepoint&&) = delete;
  ~Savepoint() { (void)Rollback(); }

  // Keeps the unit's writes in the transaction.
  Status Release() {
    Db* db = std::exchange(db_, nullptr);
    return db->Exec("RELEASE duplex_txn");
  }
  // Undoes the unit's writes (and SQLITE_DBSTATUS_DEFERRED_FKS with them).
  Status Rollback() {
    Db* db = std::exchange(db_, nullptr);
    if (db == nullptr) return Status::Ok();
    DUPLEX_RETURN_IF_ERROR(db->Exec("ROLLBACK TO duplex_txn"));
    return db->Exec("RELEASE duplex_txn");
  }

 private:
  explicit Savepoint(Db* db) : db_(db) {}
  Db* db_;
};

}  // namespace

void Applier::ForgetTables() {
  op_stmts_.Clear();  // their shapes refer to the old mapping
  reject_stmts_.clear();
  changed_stmts_.clear();
}

void Applier::ClearStatements() {
  applied_stmt_ = Stmt();
  apply_on_stmt_ = Stmt();
  apply_off_stmt_ = Stmt();
  marker_stmt_ = Stmt();
  set_applied_stmt_ = Stmt();
  op_stmts_.Clear();
  reject_stmts_.clear();
  changed_stmts_.clear();
}

Result<int64_t> Applier::AppliedId() {
  DUPLEX_RETURN_IF_ERROR(ep_.CheckOpen());
  if (!applied_stmt_.valid()) {
    DUPLEX_ASSIGN_OR_RETURN(bool exists, ep_.BookkeepingExists());
    if (!exists) return int64_t{0};
  }
  DUPLEX_ASSIGN_OR_RETURN(
      Stmt * stmt,
      ep_.Prepared(applied_stmt_, "SELECT apply_id FROM _duplex_applied WHERE id = 1"));
  stmt->Reset();
  ResetOnExit reset(*stmt);
  Result<bool> row = stmt->Step();
  if (!row.ok()) return row.status().WithContext(ep_.Where());
  return *row ? stmt->Int(0) : int64_t{0};
}

Result<bool> Applier::ChangedSince(const BoundTable& t, const RowOp& op) {
  Stmt& stmt = changed_stmts_[t.binding.table];
  if (!stmt.valid()) {
    std::vector<std::string> refs;
    for (size_t i = 0; i < t.binding.key.size(); ++i) refs.push_back("?" + std::to_string(i + 2));
    std::string sql =
        "SELECT 1 FROM _duplex_changelog WHERE tbl = " + QuoteString(t.binding.table) +
        " AND pk = " + KeyArray(refs) + " AND seq > ?1 AND op IN ('I', 'U', 'D') LIMIT 1";
    DUPLEX_ASSIGN_OR_RETURN(stmt, ep_.db().Prepare(sql));
  }
  stmt.Reset();
  stmt.Bind(1, op.seen.ToInt());
  int i = 2;
  for (const std::string& k : t.binding.key) {
    auto it = op.key.find(k);
    stmt.BindValue(i++, it == op.key.end() ? Value() : *it);
  }
  Result<bool> row = stmt.Step();
  stmt.Reset();
  if (!row.ok()) return row.status().WithContext(ep_.Where(t.binding.table));
  return *row;
}

Status Applier::LogRejected(const BoundTable& t, const RowOp& op, int64_t apply_id) {
  Stmt& stmt = reject_stmts_[t.binding.table];
  if (!stmt.valid()) {
    std::string where;
    int i = 3;
    for (const std::string& k : t.binding.key) {
      where += (where.empty() ? "" : " AND ") + QuoteIdent(t.column_of_field.at(k)) + " IS ?" +
               std::to_string(i++);
    }
    DUPLEX_ASSIGN_OR_RETURN(std::string image, ImageExpr(ep_, t, ""));
    std::string sql = "INSERT INTO _duplex_changelog(tbl, op, old, new, apply_id, at) VALUES(" +
                      QuoteString(t.binding.table) + ", 'R', ?1, (SELECT " + image + " FROM " +
                      QuoteIdent(t.binding.table) + " WHERE " + where + "), ?2, " + kNowMs + ")";
    DUPLEX_ASSIGN_OR_RETURN(stmt, ep_.db().Prepare(sql));
  }
  // The key goes into `old` under column names, like a trigger's image (record ids for mapped
  // columns); the row is found by its native key.
  Value key = Value::object();
  for (const std::string& k : t.binding.key) {
    auto it = op.key.find(k);
    key[t.column_of_field.at(k)] = it == op.key.end() ? Value() : *it;
  }
  DUPLEX_ASSIGN_OR_RETURN(Row native, key_map_.NativeKey(t, op.key));
  stmt.Reset();
  stmt.Bind(1, key.dump()).Bind(2, apply_id);
  int i = 3;
  for (const std::string& k : t.binding.key) {
    auto it = native.is_object() ? native.find(k) : native.end();
    stmt.BindValue(i++, it == native.end() ? Value() : *it);
  }
  return stmt.Run().WithContext(ep_.Where(t.binding.table));
}

Result<bool> Applier::ApplyOne(const BoundTable& t, const RowOp& op, std::string* generated) {
  DUPLEX_ASSIGN_OR_RETURN(OpStmt * s, op_stmts_.For(t, op));
  Stmt& stmt = s->stmt;
  stmt.Reset();
  int i = 1;
  for (const auto& [source, field] : s->params) {
    const Row& obj = source == OpStmt::Source::kKey      ? op.key
                     : source == OpStmt::Source::kValues ? op.values
                                                         : op.expected;
    auto it = obj.is_object() ? obj.find(field) : obj.end();
    if (!obj.is_object() || it == obj.end()) {
      return Status::Refused(ep_.Where(t.binding.table) + ", key " + op.key.dump() +
                             ": key field '" + field + "' is missing");
    }
    stmt.BindValue(i++, *it);
  }
  Result<bool> done = stmt.Step();
  if (!done.ok()) {
    std::string msg =
        ep_.Where(t.binding.table) + ", key " + op.key.dump() + ": " + sqlite3_errmsg(ep_.handle());
    if (done.status().IsRetriable()) return Status::Unavailable(msg);
    // Only what the row itself causes (constraint, type) may park it; a disk or I/O error
    // says nothing about the row and is retried.
    if (done.status().IsInvalidArgument()) return Status::Refused(msg);
    return Status::IOError(msg);
  }
  if (generated != nullptr) {
    if (!*done || stmt.IsNull(0)) {
      return Status::Refused(ep_.Where(t.binding.table) + ", record " + op.key.dump() +
                             ": SQLite generated no key for the inserted row");
    }
    *generated = stmt.Text(0);
    stmt.Reset();  // the insert is complete after the first step
    return true;
  }
  return ep_.db().Changes() > 0;
}

Result<bool> Applier::ApplyRow(const BoundTable& t, const RowOp& op) {
  if (!t.binding.mapped_key && t.ref_fields.empty()) return ApplyOne(t, op);
  const std::string where = ep_.Where(t.binding.table) + ", key " + op.key.dump();
  RowOp native = op;  // record ids replaced by this endpoint's keys
  DUPLEX_RETURN_IF_ERROR(key_map_.TranslateRefs(t, where, native));
  if (!t.binding.mapped_key) return ApplyOne(t, native);

  const std::string& field = t.binding.key.front();
  auto record = op.key.is_object() ? op.key.find(field) : op.key.end();
  if (record == op.key.end() || !record->is_string()) {
    return Status::Refused(where + ": key field '" + field +
                           "' must hold a record id (key_mode = \"mapped\")");
  }
  DUPLEX_ASSIGN_OR_RETURN(std::optional<Value> held, key_map_.HeldKey(t, *record));
  if (op.op == WriteOp::kInsert) {
    if (held) return false;  // the record has a row here already: like a key conflict
    std::string generated;
    DUPLEX_ASSIGN_OR_RETURN(bool done, ApplyOne(t, native, &generated));
    if (!done) return false;
    DUPLEX_RETURN_IF_ERROR(key_map_.Put(t, record->get<std::string>(), generated));
    return true;
  }
  if (!held) return false;  // no row for the record: the write finds nothing to change
  native.key[field] = *held;
  if (native.expected.is_object() && native.expected.contains(field)) {
    native.expected[field] = std::move(*held);
  }
  return ApplyOne(t, native);
}

bool Applier::DeferredFkViolation() {
  // Non-zero exactly while some foreign key checked at commit is unresolved; a savepoint rolled
  // back restores it.
  int current = 0, highwater = 0;
  if (sqlite3_db_status(ep_.handle(), SQLITE_DBSTATUS_DEFERRED_FKS, &current, &highwater, 0) !=
      SQLITE_OK) {
    return false;  // not reachable with a valid connection; COMMIT checks again
  }
  return current != 0;
}

std::string Applier::FkViolations() {
  // A whole-file check: only on the failure path. It also lists violations the application left
  // (with foreign_keys off), so a few are named, not all.
  constexpr int kMaxNamed = 3;
  std::string out = "FOREIGN KEY constraint failed";
  Result<Stmt> check =
      ep_.db().Prepare("SELECT \"table\", rowid, parent FROM pragma_foreign_key_check LIMIT " +
                       std::to_string(kMaxNamed + 1));
  if (!check.ok()) return out;
  for (int n = 0;; ++n) {
    Result<bool> row = check->Step();
    if (!row.ok() || !*row) break;
    if (n == kMaxNamed) {
      out += "; ...";
      break;
    }
    std::string table = check->Text(0);
    out += (n ? "; " : ": ") + std::string("table '") + table + "' ";
    const BoundTable* bound = ep_.ByTable(table);
    std::string key;
    if (bound != nullptr && !check->IsNull(1)) {
      // The row's key as duplex names it (record ids for a mapped key).
      Result<Stmt> k = ep_.db().Prepare("SELECT " + KeyExpr(ep_, *bound, "") + " FROM " +
                                        QuoteIdent(table) + " WHERE rowid = ?1");
      if (k.ok()) {
        k->Bind(1, check->Int(1));
        Result<bool> found = k->Step();
        if (found.ok() && *found) key = "key " + k->Text(0);
      }
    }
    if (key.empty()) key = check->IsNull(1) ? "a row" : "rowid " + check->Text(1);
    out += key + " references a missing row of table '" + check->Text(2) + "'";
  }
  return out;
}

Status Applier::ApplyUnit(const ApplyBatch& batch, size_t begin, size_t end, ApplyResult* counts) {
  for (size_t i = begin; i < end; ++i) {
    const RowOp& op = batch.ops[i];
    const BoundTable& t = *ep_.ByCollection(op.collection);  // Apply checked every collection
    DUPLEX_ASSIGN_OR_RETURN(bool changed_since, ChangedSince(t, op));
    bool applied = false;
    if (!changed_since) {
      DUPLEX_ASSIGN_OR_RETURN(applied, ApplyRow(t, op));
    }
    if (applied) {
      ++counts->applied;
    } else {
      ++counts->rejected;
      DUPLEX_RETURN_IF_ERROR(LogRejected(t, op, batch.id));
    }
  }
  return Status::Ok();
}

Result<ApplyResult> Applier::Apply(const std::vector<ApplyBatch>& batches, bool isolate_txns) {
  DUPLEX_RETURN_IF_ERROR(ep_.CheckOpen());
  ApplyResult result;
  if (batches.empty()) return result;
  for (const ApplyBatch& batch : batches) {
    for (const RowOp& op : batch.ops) {
      if (ep_.ByCollection(op.collection) == nullptr) {
        return Status::InvalidArgument(ep_.Where() + ": collection '" + op.collection +
                                       "' is not bound to this endpoint");
      }
    }
  }
  Db& db = ep_.db();
  // IMMEDIATE: a busy database fails here, before anything is written.
  Result<Txn> txn = Txn::Begin(db);
  if (!txn.ok()) return txn.status().WithContext(ep_.Where());
  // Foreign keys are checked at commit (or at the end of each source transaction, below), so
  // the order of rows inside a transaction and reference cycles do not matter. SQLite switches
  // this off again at COMMIT and ROLLBACK.
  DUPLEX_RETURN_IF_ERROR(db.Exec("PRAGMA defer_foreign_keys = ON").WithContext(ep_.Where()));

  if (!applied_stmt_.valid()) {
    DUPLEX_ASSIGN_OR_RETURN(bool exists, ep_.BookkeepingExists());
    if (!exists) return ep_.NotInstalled();
  }
  DUPLEX_ASSIGN_OR_RETURN(int64_t last, AppliedId());
  bool any = false;
  for (const ApplyBatch& batch : batches) {
    if (batch.id <= last) {
      ++result.skipped_batches;  // applied before (replay after a crash): P6
      continue;
    }
    if (!any) {
      // Our writes must not be logged as the application's (P5). The flag lives in this
      // transaction: if it never commits, the flag rolls back with it.
      DUPLEX_ASSIGN_OR_RETURN(
          Stmt * on,
          ep_.Prepared(apply_on_stmt_, "UPDATE _duplex_apply SET active = 1 WHERE id = 1"));
      DUPLEX_RETURN_IF_ERROR(on->Run().WithContext(ep_.Where()));
      any = true;
    }
    // Units: the contiguous ops of one source transaction (P7).
    for (size_t begin = 0, end = 0; begin < batch.ops.size(); begin = end) {
      end = TxnEnd(batch.ops, begin);
      if (!isolate_txns) {
        DUPLEX_RETURN_IF_ERROR(ApplyUnit(batch, begin, end, &result));
        continue;
      }
      Result<Savepoint> unit_txn = Savepoint::Begin(db);
      if (!unit_txn.ok()) return unit_txn.status().WithContext(ep_.Where());
      ApplyResult unit;
      Status st = ApplyUnit(batch, begin, end, &unit);
      if (!st.ok() && !st.IsRefused()) return st;  // the transaction rolls back
      std::string reason;
      if (!st.ok()) {
        reason = st.message();
      } else if (DeferredFkViolation()) {
        // The unit leaves a row without its parent (or a parent deleted under its children):
        // SQLite would refuse the COMMIT of everything.
        reason = ep_.Where() + ": " + FkViolations();
      }
      if (!reason.empty()) {
        DUPLEX_RETURN_IF_ERROR(unit_txn->Rollback().WithContext(ep_.Where()));
        FailedOp failed{batch.id, batch.ops[begin].txn, {}, std::move(reason)};
        failed.ops.assign(batch.ops.begin() + static_cast<std::ptrdiff_t>(begin),
                          batch.ops.begin() + static_cast<std::ptrdiff_t>(end));
        result.failed.push_back(std::move(failed));
        continue;
      }
      DUPLEX_RETURN_IF_ERROR(unit_txn->Release().WithContext(ep_.Where()));
      result.applied += unit.applied;
      result.rejected += unit.rejected;
    }
    last = batch.id;
  }
  if (!any) return result;  // nothing new: the transaction rolls back, nothing written

  // One marker row per apply transaction: what this endpoint has now observed (docs/DESIGN.md §4).
  static const std::string kMarkerSql =
      std::string("INSERT INTO _duplex_changelog(tbl, op, apply_id, at) VALUES('', 'M', ?1, ") +
      kNowMs + ")";
  DUPLEX_ASSIGN_OR_RETURN(Stmt * marker, ep_.Prepared(marker_stmt_, kMarkerSql.c_str()));
  marker->Reset().Bind(1, last);
  DUPLEX_RETURN_IF_ERROR(marker->Run().WithContext(ep_.Where()));
  DUPLEX_ASSIGN_OR_RETURN(
      Stmt * set_applied,
      ep_.Prepared(set_applied_stmt_,
                   "INSERT INTO _duplex_applied(id, apply_id) VALUES(1, ?1) "
                   "ON CONFLICT(id) DO UPDATE SET apply_id = excluded.apply_id"));
  set_applied->Reset().Bind(1, last);
  DUPLEX_RETURN_IF_ERROR(set_applied->Run().WithContext(ep_.Where()));
  DUPLEX_ASSIGN_OR_RETURN(
      Stmt * off,
      ep_.Prepared(apply_off_stmt_, "UPDATE _duplex_apply SET active = 0 WHERE id = 1"));
  DUPLEX_RETURN_IF_ERROR(off->Run().WithContext(ep_.Where()));
  // COMMIT would fail on the same check, with a message that names nothing.
  if (DeferredFkViolation()) return Status::Refused(ep_.Where() + ": " + FkViolations());
  DUPLEX_RETURN_IF_ERROR(txn->Commit().WithContext(ep_.Where()));
  ep_.NoteOwnCommit();  // the marker must be captured, and data_version ignores our commits
  return result;
}

}  // namespace duplex::sqlite
