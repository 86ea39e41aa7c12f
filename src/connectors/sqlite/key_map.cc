#include "connectors/sqlite/key_map.h"

#include <utility>

#include "connectors/sqlite/images.h"

namespace duplex::sqlite {

std::string RecordExpr(const std::string& endpoint, const std::string& table,
                       const std::string& ref) {
  // The row's record; for a key no row has any more (a child logged after its parent was
  // deleted), the record that had it last.
  const std::string native = NativeExpr(ref);
  const std::string tbl = QuoteString(table);
  return "(CASE WHEN " + ref + " IS NULL THEN NULL ELSE COALESCE((SELECT record FROM " +
         "_duplex_keymap WHERE tbl = " + tbl + " AND native = " + native +
         "), (SELECT record FROM _duplex_keymap WHERE tbl = " + tbl + " AND was = " + native +
         " ORDER BY rowid DESC LIMIT 1), " + QuoteString(endpoint + ":") + " || " + native +
         ") END)";
}

std::string FreshRecordSql(const std::string& endpoint, const BoundTable& t, const std::string& ref,
                           const std::string& cond) {
  // SQLite reuses the largest rowid after that row is deleted, so a new row can get the key of
  // a record duplex already knows (deleted, or moved elsewhere by a resurrecting insert). Such a
  // row gets a live key map entry, so that it is not taken for that record: named after its key
  // if that id is unused, else that plus '#' and the seq of the changelog row about to log it,
  // which no other row can get.
  const std::string tbl = QuoteString(t.binding.table);
  const std::string native = NativeExpr(ref);
  const std::string own = QuoteString(endpoint + ":") + " || " + native;
  const std::string own_used =
      "EXISTS (SELECT 1 FROM _duplex_keymap WHERE tbl = " + tbl + " AND record = " + own + ")";
  return "INSERT INTO _duplex_keymap(tbl, record, native) SELECT " + tbl + ", CASE WHEN " +
         own_used + " THEN " + own +
         " || '#' || (COALESCE((SELECT seq FROM sqlite_sequence WHERE name = "
         "'_duplex_changelog'), 0) + 1) ELSE " +
         own + " END, " + native + " WHERE " + ref + " IS NOT NULL" + cond +
         " AND NOT EXISTS (SELECT 1 FROM _duplex_keymap WHERE tbl = " + tbl +
         " AND native = " + native + ") AND (" + own_used +
         " OR EXISTS (SELECT 1 FROM _duplex_keymap WHERE tbl = " + tbl + " AND was = " + native +
         ")); ";
}

std::string RetireRecordSql(const std::string& endpoint, const BoundTable& t,
                            const std::string& ref, const std::string& cond) {
  // The row's record loses its key (kept in `was` for references logged later), but its id
  // stays in the key map so that no later row is given it (FreshRecordSql) and duplex may bring
  // the record back (KeyMap::Put). A record named after its own key has no entry yet: it gets
  // one.
  const std::string tbl = QuoteString(t.binding.table);
  const std::string native = NativeExpr(ref);
  const std::string own = QuoteString(endpoint + ":") + " || " + native;
  return "INSERT INTO _duplex_keymap(tbl, record, native, was) SELECT " + tbl + ", " + own +
         ", NULL, " + native + " WHERE " + ref + " IS NOT NULL" + cond +
         " AND NOT EXISTS (SELECT 1 FROM _duplex_keymap WHERE tbl = " + tbl +
         " AND native = " + native +
         ") AND NOT EXISTS (SELECT 1 FROM _duplex_keymap WHERE tbl = " + tbl +
         " AND record = " + own +
         "); UPDATE _duplex_keymap SET was = native, native = NULL "
         "WHERE tbl = " +
         tbl + " AND native = " + native + cond + "; ";
}

void KeyMap::ClearStatements() {
  own_row_stmts_.clear();
  get_stmt_ = Stmt();
  retire_stmt_ = Stmt();
  put_stmt_ = Stmt();
}

Result<std::optional<Value>> KeyMap::HeldKey(const BoundTable& t, const Value& record) {
  if (!record.is_string()) return std::optional<Value>();
  const std::string& id = record.get_ref<const std::string&>();
  DUPLEX_ASSIGN_OR_RETURN(
      Stmt * get,
      ep_.Prepared(get_stmt_, "SELECT native FROM _duplex_keymap WHERE tbl = ?1 AND record = ?2"));
  get->Reset().Bind(1, t.binding.table).Bind(2, id);
  {
    ResetOnExit reset(*get);
    Result<bool> row = get->Step();
    if (!row.ok()) return row.status().WithContext(ep_.Where(t.binding.table));
    if (*row) {
      if (get->IsNull(0)) return std::optional<Value>();  // the record's row was deleted
      Value native = Value::parse(get->Text(0), nullptr, /*allow_exceptions=*/false);
      if (native.is_discarded()) {
        return Status::Corruption(ep_.Where(t.binding.table) + ": key map entry of record '" + id +
                                  "' holds a key that is not JSON: " + get->Text(0));
      }
      NormalizeValue(native);
      return std::optional<Value>(std::move(native));
    }
  }
  // No entry: a record first seen here is named after its key, if that row is still its own
  // (not given to another record after a delete).
  std::optional<Value> own = OwnNativeKey(ep_.name(), id);
  if (!own) return own;
  NormalizeValue(*own);
  Stmt& probe = own_row_stmts_[t.binding.table];
  if (!probe.valid()) {
    const std::string key = QuoteIdent(t.column_of_field.at(t.binding.key.front()));
    DUPLEX_ASSIGN_OR_RETURN(
        probe,
        ep_.db().Prepare("SELECT 1 FROM " + QuoteIdent(t.binding.table) + " WHERE " + key +
                         " IS ?1 AND NOT EXISTS (SELECT 1 FROM _duplex_keymap WHERE tbl = " +
                         QuoteString(t.binding.table) + " AND native = " + NativeExpr("?1") + ")"));
  }
  probe.Reset().BindValue(1, *own);
  ResetOnExit reset(probe);
  Result<bool> row = probe.Step();
  if (!row.ok()) return row.status().WithContext(ep_.Where(t.binding.table));
  if (!*row) return std::optional<Value>();
  return own;
}

Result<Row> KeyMap::NativeKey(const BoundTable& t, const Row& key) {
  if (!t.binding.mapped_key && t.ref_fields.empty()) return key;
  Row out = key;
  if (!out.is_object()) return out;
  if (t.binding.mapped_key) {
    auto it = out.find(t.binding.key.front());
    if (it != out.end()) {
      DUPLEX_ASSIGN_OR_RETURN(std::optional<Value> held, HeldKey(t, *it));
      *it = held ? std::move(*held) : Value();
    }
  }
  for (const auto& [field, parent] : t.ref_fields) {
    auto it = out.find(field);
    if (it == out.end() || it->is_null()) continue;
    DUPLEX_ASSIGN_OR_RETURN(std::optional<Value> held, HeldKey(ep_.table(parent), *it));
    *it = held ? std::move(*held) : Value();
  }
  return out;
}

Status KeyMap::TranslateRefs(const BoundTable& t, const std::string& where, RowOp& op) {
  for (const auto& [field, parent] : t.ref_fields) {
    const BoundTable& p = ep_.table(parent);
    for (Row* obj : {&op.key, &op.values, &op.expected}) {
      if (!obj->is_object()) continue;
      auto it = obj->find(field);
      if (it == obj->end() || it->is_null()) continue;
      if (!it->is_string()) {
        return Status::Refused(where + ": field '" + field + "' must hold a record id of " +
                               p.binding.collection + " (a mapped reference), not " + it->dump());
      }
      DUPLEX_ASSIGN_OR_RETURN(std::optional<Value> held, HeldKey(p, *it));
      if (!held) {
        return Status::Refused(where + ": field '" + field + "' references " +
                               p.binding.collection + " record '" + it->get<std::string>() +
                               "', which endpoint '" + ep_.name() + "' does not hold");
      }
      *it = std::move(*held);
    }
  }
  return Status::Ok();
}

Status KeyMap::Put(const BoundTable& t, const std::string& record, const std::string& native) {
  // An entry still holding this key is stale (its row went while capture was not installed):
  // the key belongs to the row just inserted.
  DUPLEX_ASSIGN_OR_RETURN(
      Stmt * retire,
      ep_.Prepared(retire_stmt_,
                   "UPDATE _duplex_keymap SET was = native, native = NULL WHERE tbl = ?1 AND "
                   "native = ?2"));
  retire->Reset().Bind(1, t.binding.table).Bind(2, native);
  DUPLEX_RETURN_IF_ERROR(retire->Run().WithContext(ep_.Where(t.binding.table)));
  // A retired entry (the record's row was deleted here) comes back with the new key.
  DUPLEX_ASSIGN_OR_RETURN(
      Stmt * put,
      ep_.Prepared(put_stmt_,
                   "INSERT INTO _duplex_keymap(tbl, record, native) VALUES(?1, ?2, ?3) "
                   "ON CONFLICT(tbl, record) DO UPDATE SET native = excluded.native, was = NULL"));
  put->Reset().Bind(1, t.binding.table).Bind(2, record).Bind(3, native);
  return put->Run().WithContext(ep_.Where(t.binding.table) + ", record '" + record + "'");
}

}  // namespace duplex::sqlite
