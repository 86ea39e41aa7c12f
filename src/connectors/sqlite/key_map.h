#pragma once

#include <optional>
#include <string>
#include <unordered_map>

#include "connectors/sqlite/endpoint.h"
#include "duplex/change.h"
#include "duplex/result.h"
#include "duplex/status.h"
#include "util/sqlite.h"

namespace duplex::sqlite {

// The key map of tables with a mapped key (docs/DESIGN.md §5 "Mapped keys and key maps";
// `_duplex_keymap(tbl, record, native, was)`: record id -> this file's key as JSON, `native`
// NULL and `was` the old key once the record's row is deleted).
//
// Two sides keep it. The triggers translate at capture time (SQLite reuses the largest rowid after
// its row is deleted, so only trigger time knows which record a key meant): RecordExpr,
// FreshRecordSql and RetireRecordSql below are the SQL that Installer puts into them and into
// every image. Apply translates the other way (KeyMap): record ids in a write to the keys of this
// file, and an insert's generated key into a new entry, in Apply's transaction.

// The record id of the row of `table` whose key is `ref` (NULL for NULL): the key map's entry,
// else `endpoint` + ":" + the key as JSON (RecordId). Agrees with RecordId for integers and text.
std::string RecordExpr(const std::string& endpoint, const std::string& table,
                       const std::string& ref);
// The key map statement of a mapped table's insert (and key-changing update) trigger: a new row
// whose key a known record had gets an entry of its own. `ref` is the key ("NEW.id"), `cond` an
// extra " AND ..." condition (may be empty).
std::string FreshRecordSql(const std::string& endpoint, const BoundTable& t, const std::string& ref,
                           const std::string& cond);
// The key map statements of a mapped table's delete (and key-changing update) trigger: the
// deleted row's record loses its key. `ref` is the old key ("OLD.id").
std::string RetireRecordSql(const std::string& endpoint, const BoundTable& t,
                            const std::string& ref, const std::string& cond);

// Apply's side of the key map: lookups and entries through statements prepared once. Uses the
// Endpoint's connection (inside Apply's transaction); one thread at a time.
class KeyMap {
 public:
  explicit KeyMap(Endpoint& ep) : ep_(ep) {}
  KeyMap(const KeyMap&) = delete;
  KeyMap& operator=(const KeyMap&) = delete;

  // The key of `record` in table `t` (mapped key) if this endpoint holds a row for it: its
  // entry's key, or for a record without an entry, named after this endpoint (OwnNativeKey),
  // that key if the row exists and no other record holds it.
  Result<std::optional<Value>> HeldKey(const BoundTable& t, const Value& record);
  // `key` with record ids translated to native keys (null where the endpoint holds none).
  Result<Row> NativeKey(const BoundTable& t, const Row& key);
  // Replaces the record ids of `t`'s mapped_refs fields in `op` (key, values, expected) by the
  // keys this endpoint holds for them. Refused (prefixed by `where`) for a value that is
  // not a record id or names a record this endpoint does not hold.
  Status TranslateRefs(const BoundTable& t, const std::string& where, RowOp& op);
  // Records (t, record) -> native (a key as the key map spells it), taking the key from whatever
  // entry held it and bringing back a retired entry of `record`.
  Status Put(const BoundTable& t, const std::string& record, const std::string& native);

  // Drops the statements that name a bound table (after Bind).
  void ForgetTables() { own_row_stmts_.clear(); }
  // Drops every statement (before the bookkeeping tables are dropped).
  void ClearStatements();

 private:
  Endpoint& ep_;
  Stmt get_stmt_;
  Stmt retire_stmt_;
  Stmt put_stmt_;
  std::unordered_map<std::string, Stmt> own_row_stmts_;  // table -> HeldKey's own-row probe
};

}  // namespace duplex::sqlite
