#include "connectors/sqlite/installer.h"

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "connectors/sqlite/images.h"
#include "connectors/sqlite/key_map.h"
#include "util/json_value.h"

namespace duplex::sqlite {

namespace {

constexpr char kCreateBookkeeping[] = R"sql(
CREATE TABLE IF NOT EXISTS _duplex_changelog(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, op TEXT NOT NULL, old TEXT, new TEXT,
  apply_id INTEGER, snapshot INTEGER NOT NULL DEFAULT 0, at REAL NOT NULL, pk TEXT);
CREATE INDEX IF NOT EXISTS _duplex_changelog_pk ON _duplex_changelog(tbl, pk, seq);
CREATE TABLE IF NOT EXISTS _duplex_apply(id INTEGER PRIMARY KEY CHECK (id = 1),
  active INTEGER NOT NULL);
INSERT OR IGNORE INTO _duplex_apply(id, active) VALUES(1, 0);
CREATE TABLE IF NOT EXISTS _duplex_applied(id INTEGER PRIMARY KEY CHECK (id = 1),
  apply_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS _duplex_captured(tbl TEXT PRIMARY KEY, columns TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _duplex_acked(id INTEGER PRIMARY KEY CHECK (id = 1),
  seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS _duplex_keymap(tbl TEXT NOT NULL, record TEXT NOT NULL, native TEXT,
  was TEXT, PRIMARY KEY(tbl, record));
CREATE UNIQUE INDEX IF NOT EXISTS _duplex_keymap_native ON _duplex_keymap(tbl, native);
CREATE INDEX IF NOT EXISTS _duplex_keymap_was ON _duplex_keymap(tbl, was);
)sql";

constexpr char kDropBookkeeping[] = R"sql(
DROP TABLE IF EXISTS _duplex_changelog;
DROP TABLE IF EXISTS _duplex_apply;
DROP TABLE IF EXISTS _duplex_applied;
DROP TABLE IF EXISTS _duplex_captured;
DROP TABLE IF EXISTS _duplex_acked;
DROP TABLE IF EXISTS _duplex_keymap;
)sql";

constexpr const char* kTriggerSuffixes[] = {"_ins", "_upd", "_del"};

std::string TriggerName(const std::string& table, const char* suffix) {
  return "_duplex_" + table + suffix;
}

std::string JoinQuoted(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) {
    if (!out.empty()) out += ", ";
    out += QuoteIdent(n);
  }
  return out;
}

}  // namespace

Result<bool> Installer::IsInstalled() {
  DUPLEX_RETURN_IF_ERROR(ep_.CheckOpen());
  Db& db = ep_.db();
  DUPLEX_ASSIGN_OR_RETURN(bool exists, ep_.BookkeepingExists());
  if (!exists) return false;
  {
    // Installed before key maps existed: Install adds it (the rest keeps working meanwhile,
    // AppliedId included).
    DUPLEX_ASSIGN_OR_RETURN(Stmt keymap, db.Prepare("SELECT count(*) FROM sqlite_master WHERE "
                                                    "type = 'table' AND name = '_duplex_keymap'"));
    Result<bool> row = keymap.Step();
    if (!row.ok()) return row.status().WithContext(ep_.Where());
    if (!*row || keymap.Int(0) != 1) return false;
  }
  DUPLEX_ASSIGN_OR_RETURN(Stmt cols,
                          db.Prepare("SELECT columns FROM _duplex_captured WHERE tbl = ?1"));
  DUPLEX_ASSIGN_OR_RETURN(
      Stmt triggers, db.Prepare("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND "
                                "name IN (?1, ?2, ?3)"));
  for (const BoundTable& t : ep_.tables()) {
    const std::string& table = t.binding.table;
    cols.Reset().Bind(1, table);
    Result<bool> row = cols.Step();
    if (!row.ok()) return row.status().WithContext(ep_.Where(table));
    if (!*row) return false;
    if (!t.record_table_of_column.empty()) {
      if (cols.Text(0) != CapturedDescriptor(t)) return false;
    }
    Value stored = Value::parse(cols.Text(0), nullptr, /*allow_exceptions=*/false);
    if (stored.is_object() && !t.record_table_of_column.empty()) stored = stored["columns"];
    if (!stored.is_array()) return false;
    std::vector<std::string> have;
    for (const Value& c : stored) {
      if (!c.is_string()) return false;
      have.push_back(c.get<std::string>());
    }
    std::vector<std::string> want = t.columns;
    std::sort(have.begin(), have.end());
    std::sort(want.begin(), want.end());
    if (have != want) return false;

    triggers.Reset();
    for (int i = 0; i < 3; ++i) triggers.Bind(i + 1, TriggerName(table, kTriggerSuffixes[i]));
    row = triggers.Step();
    if (!row.ok()) return row.status().WithContext(ep_.Where(table));
    if (!*row || triggers.Int(0) != 3) return false;
  }
  return true;
}

std::string Installer::CapturedDescriptor(const BoundTable& t) const {
  if (t.record_table_of_column.empty()) return Value(t.columns).dump();
  std::vector<std::string> columns = t.columns;
  std::sort(columns.begin(), columns.end());
  Value records = Value::object();
  for (const auto& [column, table] : t.record_table_of_column) records[column] = table;
  return Value{{"columns", columns}, {"endpoint", ep_.name()}, {"records", records}}.dump();
}

Status Installer::CheckTable(const BoundTable& t) {
  const std::string& table = t.binding.table;
  DUPLEX_ASSIGN_OR_RETURN(TableInfo info, ep_.Describe(table));
  if (!info.exists) return Status::InvalidArgument(ep_.Where(table) + ": no such table");
  std::set<std::string> have;
  // SQLite column names are case-insensitive (ASCII).
  auto lower = [](std::string s) {
    for (char& c : s) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return s;
  };
  for (const ColumnInfo& c : info.columns) {
    have.insert(lower(c.name));
    if (t.binding.mapped_key &&
        lower(c.name) == lower(t.column_of_field.at(t.binding.key.front())) && !c.generated &&
        !c.has_default) {
      return Status::InvalidArgument(
          ep_.Where(table) + ": key_mode = \"mapped\" needs the key column '" + c.name +
          "' to be generated by SQLite (INTEGER PRIMARY KEY) or to have a DEFAULT");
    }
  }
  for (const auto& [field, column] : t.binding.fields) {
    if (!have.count(lower(column))) {
      return Status::InvalidArgument(ep_.Where(table) + ": column '" + column + "' (field '" +
                                     field + "') does not exist");
    }
  }
  // Apply's inserts use ON CONFLICT(<key columns>), which needs a primary key or unique index on
  // exactly those columns. Preparing (not running) such an insert checks that now.
  std::vector<std::string> key_cols;
  std::string params;
  for (const std::string& k : t.binding.key) {
    key_cols.push_back(t.column_of_field.at(k));
    params += params.empty() ? "?" : ", ?";
  }
  std::string keys = JoinQuoted(key_cols);
  Result<Stmt> probe =
      ep_.db().Prepare("INSERT INTO " + QuoteIdent(table) + "(" + keys + ") VALUES(" + params +
                       ") ON CONFLICT(" + keys + ") DO NOTHING");
  if (!probe.ok()) {
    return Status::InvalidArgument(ep_.Where(table) + ": the key column(s) " + keys +
                                   " must be the primary key or have a unique index (" +
                                   sqlite3_errmsg(ep_.handle()) + ")");
  }
  return Status::Ok();
}

Status Installer::DropTriggers(const std::string& table) {
  for (const char* suffix : kTriggerSuffixes) {
    DUPLEX_RETURN_IF_ERROR(
        ep_.db()
            .Exec("DROP TRIGGER IF EXISTS " + QuoteIdent(TriggerName(table, suffix)))
            .WithContext(ep_.Where(table)));
  }
  return Status::Ok();
}

Status Installer::CreateTriggers(const BoundTable& t) {
  const std::string& table = t.binding.table;
  DUPLEX_ASSIGN_OR_RETURN(std::string new_image, ImageExpr(ep_, t, "NEW."));
  DUPLEX_ASSIGN_OR_RETURN(std::string old_image, ImageExpr(ep_, t, "OLD."));
  const std::string active = "(SELECT active FROM _duplex_apply WHERE id = 1) = 0";
  const std::string when = " FOR EACH ROW WHEN " + active;
  // Updates that touch only unsynced columns are not logged.
  std::string changed;
  for (const std::string& c : t.columns) {
    if (!changed.empty()) changed += " OR ";
    changed += "OLD." + QuoteIdent(c) + " IS NOT NEW." + QuoteIdent(c);
  }
  // `pk` (the row's key as JSON) lets Apply ask "did the application change this row after
  // the position the resolver had seen?" (Applier::ChangedSince).
  auto log = [&](const char* op, const std::string& old_expr, const std::string& new_expr,
                 const char* key_of) {
    return "INSERT INTO _duplex_changelog(tbl, op, old, new, at, pk) SELECT " + QuoteString(table) +
           ", '" + op + "', " + old_expr + ", " + new_expr + ", " + kNowMs + ", " +
           KeyExpr(ep_, t, key_of);
  };
  const std::string on = " ON " + QuoteIdent(table);
  std::string ins = log("I", "NULL", new_image, "NEW.") + "; ";
  std::string upd = log("U", old_image, new_image, "NEW.") + "; ";
  std::string del_when = when;
  std::string del = log("D", old_image, "NULL", "OLD.") + "; ";
  if (t.binding.mapped_key) {
    // The key map follows the application's rows: a new row whose key a known record had gets
    // its own record id first (so that it is logged with it); a deleted row's record, and the
    // old record of a row whose key changed, lose their key after being logged.
    const std::string& name = ep_.name();
    const std::string key = QuoteIdent(t.column_of_field.at(t.binding.key.front()));
    const std::string moved = " AND OLD." + key + " IS NOT NEW." + key;
    ins = FreshRecordSql(name, t, "NEW." + key, "") + ins;
    upd = FreshRecordSql(name, t, "NEW." + key, moved) + upd +
          RetireRecordSql(name, t, "OLD." + key, moved);
    // Duplex's own deletes must update the key map too, so only the logging tests the flag.
    del_when = " FOR EACH ROW";
    del = log("D", old_image, "NULL", "OLD.") + " WHERE " + active + "; " +
          RetireRecordSql(name, t, "OLD." + key, "");
  }
  std::string sql[3] = {
      "CREATE TRIGGER " + QuoteIdent(TriggerName(table, "_ins")) + " AFTER INSERT" + on + when +
          " BEGIN " + ins + "END",
      "CREATE TRIGGER " + QuoteIdent(TriggerName(table, "_upd")) + " AFTER UPDATE" + on + when +
          " AND (" + changed + ") BEGIN " + upd + "END",
      "CREATE TRIGGER " + QuoteIdent(TriggerName(table, "_del")) + " AFTER DELETE" + on + del_when +
          " BEGIN " + del + "END",
  };
  for (const std::string& s : sql) {
    DUPLEX_RETURN_IF_ERROR(ep_.db().Exec(s).WithContext(ep_.Where(table)));
  }
  return Status::Ok();
}

Status Installer::Install() {
  DUPLEX_RETURN_IF_ERROR(ep_.CheckOpen());
  for (const BoundTable& t : ep_.tables()) DUPLEX_RETURN_IF_ERROR(CheckTable(t));

  Db& db = ep_.db();
  Result<Txn> txn = Txn::Begin(db);
  if (!txn.ok()) return txn.status().WithContext(ep_.Where());
  DUPLEX_RETURN_IF_ERROR(db.Exec(kCreateBookkeeping).WithContext(ep_.Where()));

  std::map<std::string, std::string> captured;  // table -> columns JSON
  {
    DUPLEX_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare("SELECT tbl, columns FROM _duplex_captured"));
    while (true) {
      Result<bool> row = stmt.Step();
      if (!row.ok()) return row.status().WithContext(ep_.Where());
      if (!*row) break;
      captured.emplace(stmt.Text(0), stmt.Text(1));
    }
  }
  DUPLEX_ASSIGN_OR_RETURN(Stmt forget, db.Prepare("DELETE FROM _duplex_captured WHERE tbl = ?1"));
  for (const auto& [table, columns] : captured) {
    if (ep_.ByTable(table) != nullptr) continue;
    // No longer bound: stop capturing it. Its changelog rows are skipped by Capture.
    DUPLEX_RETURN_IF_ERROR(DropTriggers(table));
    forget.Reset().Bind(1, table);
    DUPLEX_RETURN_IF_ERROR(forget.Run().WithContext(ep_.Where(table)));
  }

  DUPLEX_ASSIGN_OR_RETURN(Stmt remember,
                          db.Prepare("INSERT INTO _duplex_captured(tbl, columns) VALUES(?1, ?2) "
                                     "ON CONFLICT(tbl) DO UPDATE SET columns = excluded.columns"));
  for (const BoundTable& t : ep_.tables()) {
    const std::string& table = t.binding.table;
    if (!captured.count(table)) {
      // First capture: every existing row becomes a snapshot change, in the same transaction as
      // the triggers, so no change made meanwhile is lost or doubled.
      DUPLEX_ASSIGN_OR_RETURN(std::string image, ImageExpr(ep_, t, ""));
      std::string sql = "INSERT INTO _duplex_changelog(tbl, op, new, snapshot, at, pk) SELECT " +
                        QuoteString(table) + ", 'I', " + image + ", 1, " + kNowMs + ", " +
                        KeyExpr(ep_, t, "") + " FROM " + QuoteIdent(table);
      DUPLEX_RETURN_IF_ERROR(db.Exec(sql).WithContext(ep_.Where(table)));
    }
    DUPLEX_RETURN_IF_ERROR(DropTriggers(table));
    DUPLEX_RETURN_IF_ERROR(CreateTriggers(t));
    remember.Reset().Bind(1, table).Bind(2, CapturedDescriptor(t));
    DUPLEX_RETURN_IF_ERROR(remember.Run().WithContext(ep_.Where(table)));
  }
  DUPLEX_RETURN_IF_ERROR(txn->Commit().WithContext(ep_.Where()));
  ep_.NoteOwnCommit();
  return Status::Ok();
}

Status Installer::Uninstall() {
  DUPLEX_RETURN_IF_ERROR(ep_.CheckOpen());
  Db& db = ep_.db();
  Result<Txn> txn = Txn::Begin(db);
  if (!txn.ok()) return txn.status().WithContext(ep_.Where());
  std::set<std::string> tables;
  for (const BoundTable& t : ep_.tables()) tables.insert(t.binding.table);
  DUPLEX_ASSIGN_OR_RETURN(bool exists, ep_.BookkeepingExists());
  if (exists) {
    DUPLEX_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare("SELECT tbl FROM _duplex_captured"));
    while (true) {
      Result<bool> row = stmt.Step();
      if (!row.ok()) return row.status().WithContext(ep_.Where());
      if (!*row) break;
      tables.insert(stmt.Text(0));
    }
  }
  for (const std::string& table : tables) DUPLEX_RETURN_IF_ERROR(DropTriggers(table));
  DUPLEX_RETURN_IF_ERROR(db.Exec(kDropBookkeeping).WithContext(ep_.Where()));
  DUPLEX_RETURN_IF_ERROR(txn->Commit().WithContext(ep_.Where()));
  ep_.NoteOwnCommit();
  return Status::Ok();
}

}  // namespace duplex::sqlite
