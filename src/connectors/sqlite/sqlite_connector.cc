#include "connectors/sqlite/sqlite_connector.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <utility>

#include "connectors/binding.h"
#include "util/json_value.h"

namespace duplex::sqlite {

namespace {

// Commit time as the changelog stores it: ms since the Unix epoch. julianday('now') is fixed for
// the duration of one statement, so every row a statement logs gets the same time.
constexpr char kNowMs[] = "((julianday('now') - 2440587.5) * 86400000.0)";

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

// A column value as json_object() can hold it. Unwrapped, a BLOB makes json_object() fail, which
// would fail the APPLICATION's write that fired the trigger; a REAL would be rendered with 15
// digits (lossy), and an infinite REAL as the invalid JSON token Inf. SQLite's printf is not
// correctly rounded at 17 digits for large exponents (measured: ~0.3% of values above 1e100 lose
// an ulp); 18 digits round-trip every double we tried (12M, all exponents).
std::string JsonValueExpr(const std::string& ref) {
  return "CASE typeof(" + ref + ") WHEN 'blob' THEN json_object('$blob', hex(" + ref +
         ")) WHEN 'real' THEN CASE WHEN " + ref +
         " BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308 THEN json(printf('%!.18g', " +
         ref + ")) ELSE json_object('$real', printf('%!.18g', " + ref + ")) END ELSE " + ref +
         " END";
}

// Whether json_set('$."name"') can add `name` correctly: SQLite 3.40's JSON path has no escapes,
// and json_set writes the label unescaped.
// The key of a row as JSON text: json_array() of `refs` (columns or parameters), each wrapped
// like an image value, so that a trigger and Apply spell the same key the same way.
std::string KeyArray(const std::vector<std::string>& refs) {
  std::string out = "json_array(";
  for (size_t i = 0; i < refs.size(); ++i) out += (i ? ", " : "") + JsonValueExpr(refs[i]);
  return out + ")";
}

// A key value as JSON text, as the key map stores it: json_quote gives 5 for the integer 5 and
// "x" (quoted, escaped) for the text x, as nlohmann's dump() does for RecordId.
std::string NativeExpr(const std::string& ref) { return "json_quote(" + JsonValueExpr(ref) + ")"; }

bool SafeForJsonPath(const std::string& name) {
  return std::none_of(name.begin(), name.end(), [](char c) {
    return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
  });
}

// Replaces ill-formed UTF-8 with U+FFFD. SQLite TEXT may hold any bytes, json_object() copies
// them as they are, and a changelog row that never parses would stop capture for good.
std::string SanitizeUtf8(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    auto c = static_cast<unsigned char>(in[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    bool ok = len > 0 && i + len <= in.size();
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(in[i + k]) & 0xC0) == 0x80;
    }
    if (ok && len > 1) {
      // Reject overlong forms, surrogates and code points above U+10FFFF.
      uint32_t cp = c & (0xFF >> (len + 1));
      for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (in[i + k] & 0x3F);
      static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMin[len] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
    }
    if (ok) {
      out.append(in.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

// Values as the rest of duplex expects them: signed integers (nlohmann parses non-negative ones
// as unsigned), and the trigger's {"$real": "Inf"} (JSON has no infinity) as a float.
void NormalizeValue(Value& v) {
  if (v.is_number_unsigned()) {
    v = static_cast<int64_t>(v.get<uint64_t>());
  } else if (v.is_object() && v.size() == 1) {
    auto it = v.find("$real");
    if (it != v.end() && it->is_string()) {
      const std::string& s = it->get_ref<const std::string&>();
      double inf = std::numeric_limits<double>::infinity();
      v = (!s.empty() && s[0] == '-') ? -inf : inf;
    }
  }
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string JoinQuoted(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) {
    if (!out.empty()) out += ", ";
    out += QuoteIdent(n);
  }
  return out;
}

// Resets a statement when leaving a scope, so that a half-read SELECT does not keep its read
// transaction open (that would pin the WAL and block checkpoints).
class ResetOnExit {
 public:
  explicit ResetOnExit(Stmt& stmt) : stmt_(stmt) {}
  ~ResetOnExit() { sqlite3_reset(stmt_.get()); }
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;

 private:
  Stmt& stmt_;
};

}  // namespace

SqliteConnector::SqliteConnector(std::string name, std::string path)
    : name_(std::move(name)), path_(std::move(path)) {}

// Statements are members declared after db_, so they are finalized before the connection closes.
SqliteConnector::~SqliteConnector() = default;

std::string SqliteConnector::Where() const { return "endpoint '" + name_ + "' (" + path_ + ")"; }

std::string SqliteConnector::Where(const std::string& table) const {
  return Where() + ", table '" + table + "'";
}

Status SqliteConnector::CheckOpen() const {
  if (db_.get() == nullptr) return Status::InvalidArgument(Where() + ": not open (call Open())");
  return Status::Ok();
}

Status SqliteConnector::NotInstalled() const {
  return Status::InvalidArgument(Where() + ": change capture is not installed (run Install())");
}

Status SqliteConnector::Open() {
  if (db_.get() != nullptr) return Status::Ok();
  std::error_code ec;
  if (!std::filesystem::exists(path_, ec)) {
    return Status::Unavailable("endpoint '" + name_ + "': SQLite file '" + path_ +
                               "' does not exist");
  }
  // A short busy timeout: the engine is one thread, and waiting long on one application's
  // write lock would stall every other endpoint. Busy is Unavailable; the engine retries.
  Result<Db> db = Db::Open(path_, /*create=*/false, kBusyTimeoutMs);
  if (!db.ok()) {
    if (db.status().IsNotFound()) {
      return Status::Unavailable("endpoint '" + name_ + "': " + db.status().message());
    }
    return db.status().WithContext(Where());
  }
  // Off is SQLite's runtime default, but compile options can change it and our triggers insert
  // into a table that must never fire triggers of its own (CDC-FACTS Q5).
  DUPLEX_RETURN_IF_ERROR(db->Exec("PRAGMA recursive_triggers=0").WithContext(Where()));
  // Duplex's writes must not orphan rows: with foreign keys on, Apply's transactions check them
  // (deferred to commit, see Apply). The setting is per connection, so the applications' own
  // connections are not affected.
  DUPLEX_RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys=ON").WithContext(Where()));
  db_ = std::move(db).value();
  polled_ = false;
  own_commit_ = false;
  return Status::Ok();
}

void SqliteConnector::ClearStatements() {
  poll_stmt_ = Stmt();
  capture_stmt_ = Stmt();
  backlog_stmt_ = Stmt();
  ack_stmt_ = Stmt();
  ack_stamp_stmt_ = Stmt();
  acked_stamp_ = -1;
  applied_stmt_ = Stmt();
  apply_on_stmt_ = Stmt();
  apply_off_stmt_ = Stmt();
  marker_stmt_ = Stmt();
  set_applied_stmt_ = Stmt();
  op_stmts_.clear();
  reject_stmts_.clear();
  changed_stmts_.clear();
  own_row_stmts_.clear();
  keymap_get_stmt_ = Stmt();
  keymap_retire_stmt_ = Stmt();
  keymap_put_stmt_ = Stmt();
}

Result<Stmt*> SqliteConnector::Prepared(Stmt& slot, const char* sql) {
  if (!slot.valid()) {
    Result<Stmt> stmt = db_.Prepare(sql);
    if (!stmt.ok()) return stmt.status().WithContext(Where());
    slot = std::move(stmt).value();
  }
  return &slot;
}

Result<bool> SqliteConnector::BookkeepingExists() {
  DUPLEX_ASSIGN_OR_RETURN(Stmt stmt,
                          db_.Prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                      "AND name IN ('_duplex_changelog', '_duplex_apply', "
                                      "'_duplex_applied', '_duplex_captured')"));
  Result<bool> row = stmt.Step();
  if (!row.ok()) return row.status().WithContext(Where());
  return *row && stmt.Int(0) == 4;
}

Result<TableInfo> SqliteConnector::Describe(const std::string& table) {
  DUPLEX_RETURN_IF_ERROR(CheckOpen());
  Result<Stmt> stmt = db_.Prepare(
      "SELECT name, type, \"notnull\", dflt_value IS NOT NULL, pk FROM pragma_table_info(?1)");
  if (!stmt.ok()) return stmt.status().WithContext(Where(table));
  stmt->Bind(1, table);
  TableInfo info;
  info.name = table;
  while (true) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status().WithContext(Where(table));
    if (!*row) break;
    ColumnInfo col;
    col.name = stmt->Text(0);
    col.type = stmt->Text(1);
    col.not_null = stmt->Int(2) != 0;
    col.has_default = stmt->Int(3) != 0;
    col.pk = static_cast<int>(stmt->Int(4));
    info.columns.push_back(std::move(col));
  }
  info.exists = !info.columns.empty();
  if (!info.exists) return info;

  // A single-column INTEGER PRIMARY KEY is the rowid, which SQLite generates when an insert
  // leaves it out; unless the table is WITHOUT ROWID or the key is declared DESC, and then the
  // key has an index of its own (origin 'pk'), which a rowid alias never has.
  int pk_columns = 0;
  ColumnInfo* pk = nullptr;
  for (ColumnInfo& col : info.columns) {
    if (col.pk == 0) continue;
    ++pk_columns;
    pk = &col;
  }
  if (pk_columns == 1 && EqualsIgnoreCase(pk->type, "INTEGER")) {
    Result<Stmt> idx =
        db_.Prepare("SELECT count(*) FROM pragma_index_list(?1) WHERE origin = 'pk'");
    if (!idx.ok()) return idx.status().WithContext(Where(table));
    idx->Bind(1, table);
    Result<bool> row = idx->Step();
    if (!row.ok()) return row.status().WithContext(Where(table));
    pk->generated = *row && idx->Int(0) == 0;
  }

  // Every foreign key can be deferred: Apply sets PRAGMA defer_foreign_keys, which defers even
  // those declared NOT DEFERRABLE. A NULL `to` means the parent's primary key.
  Result<Stmt> fks = db_.Prepare(
      "SELECT id, \"table\", \"from\", \"to\" FROM pragma_foreign_key_list(?1) ORDER BY id, seq");
  if (!fks.ok()) return fks.status().WithContext(Where(table));
  fks->Bind(1, table);
  int64_t current = -1;
  while (true) {
    Result<bool> row = fks->Step();
    if (!row.ok()) return row.status().WithContext(Where(table));
    if (!*row) break;
    if (fks->Int(0) != current || info.foreign_keys.empty()) {
      current = fks->Int(0);
      info.foreign_keys.push_back(ForeignKeyInfo{{}, fks->Text(1), {}, /*deferrable=*/true});
    }
    ForeignKeyInfo& fk = info.foreign_keys.back();
    fk.columns.push_back(fks->Text(2));
    if (!fks->IsNull(3)) fk.ref_columns.push_back(fks->Text(3));
  }
  for (ForeignKeyInfo& fk : info.foreign_keys) {
    if (fk.ref_columns.size() == fk.columns.size()) continue;
    fk.ref_columns.clear();
    Result<Stmt> parent =
        db_.Prepare("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk");
    if (!parent.ok()) return parent.status().WithContext(Where(table));
    parent->Bind(1, fk.ref_table);
    while (true) {
      Result<bool> row = parent->Step();
      if (!row.ok()) return row.status().WithContext(Where(table));
      if (!*row) break;
      fk.ref_columns.push_back(parent->Text(0));
    }
  }
  return info;
}

Status SqliteConnector::Bind(std::vector<CollectionBinding> bindings) {
  DUPLEX_RETURN_IF_ERROR(ValidateBindings(Where(), bindings));
  std::vector<BoundTable> tables;
  std::unordered_map<std::string, size_t> by_table;
  std::unordered_map<std::string, size_t> by_collection;
  for (CollectionBinding& b : bindings) {
    by_table.emplace(b.table, tables.size());
    by_collection.emplace(b.collection, tables.size());
    BoundTable t;
    for (const auto& [field, column] : b.fields) {
      t.column_of_field.emplace(field, column);
      t.columns.push_back(column);
    }
    t.key_fields.insert(b.key.begin(), b.key.end());
    if (b.mapped_key)
      t.record_table_of_column.emplace(t.column_of_field.at(b.key.front()), b.table);
    t.binding = std::move(b);
    tables.push_back(std::move(t));
  }
  for (BoundTable& t : tables) {
    const std::string at = Where(t.binding.table) + ", collection '" + t.binding.collection + "'";
    for (const auto& [field, collection] : t.binding.mapped_refs) {
      auto column = t.column_of_field.find(field);
      if (column == t.column_of_field.end()) {
        return Status::InvalidArgument(at + ": mapped reference field '" + field +
                                       "' is not a mapped field");
      }
      auto parent = by_collection.find(collection);
      if (parent == by_collection.end() || !tables[parent->second].binding.mapped_key) {
        return Status::InvalidArgument(at + ": field '" + field + "' references collection '" +
                                       collection +
                                       "', which is not bound to this endpoint with a mapped key");
      }
      if (t.binding.mapped_key && field == t.binding.key.front()) {
        return Status::InvalidArgument(at + ": the mapped key field '" + field +
                                       "' cannot also reference another collection");
      }
      t.record_table_of_column[column->second] = tables[parent->second].binding.table;
      t.ref_fields.emplace_back(field, parent->second);
    }
  }
  tables_ = std::move(tables);
  by_table_ = std::move(by_table);
  by_collection_ = std::move(by_collection);
  op_stmts_.clear();  // their shapes refer to the old mapping
  reject_stmts_.clear();
  changed_stmts_.clear();
  own_row_stmts_.clear();
  return Status::Ok();
}

Result<bool> SqliteConnector::IsInstalled() {
  DUPLEX_RETURN_IF_ERROR(CheckOpen());
  DUPLEX_ASSIGN_OR_RETURN(bool exists, BookkeepingExists());
  if (!exists) return false;
  {
    // Installed before key maps existed: Install adds it (the rest keeps working meanwhile,
    // AppliedId included).
    DUPLEX_ASSIGN_OR_RETURN(Stmt keymap, db_.Prepare("SELECT count(*) FROM sqlite_master WHERE "
                                                     "type = 'table' AND name = '_duplex_keymap'"));
    Result<bool> row = keymap.Step();
    if (!row.ok()) return row.status().WithContext(Where());
    if (!*row || keymap.Int(0) != 1) return false;
  }
  DUPLEX_ASSIGN_OR_RETURN(Stmt cols,
                          db_.Prepare("SELECT columns FROM _duplex_captured WHERE tbl = ?1"));
  DUPLEX_ASSIGN_OR_RETURN(
      Stmt triggers, db_.Prepare("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND "
                                 "name IN (?1, ?2, ?3)"));
  for (const BoundTable& t : tables_) {
    const std::string& table = t.binding.table;
    cols.Reset().Bind(1, table);
    Result<bool> row = cols.Step();
    if (!row.ok()) return row.status().WithContext(Where(table));
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
    if (!row.ok()) return row.status().WithContext(Where(table));
    if (!*row || triggers.Int(0) != 3) return false;
  }
  return true;
}

std::string SqliteConnector::RecordExpr(const std::string& table, const std::string& ref) const {
  // The row's record; for a key no row has any more (a child logged after its parent was
  // deleted), the record that had it last.
  const std::string native = NativeExpr(ref);
  const std::string tbl = QuoteString(table);
  return "(CASE WHEN " + ref + " IS NULL THEN NULL ELSE COALESCE((SELECT record FROM " +
         "_duplex_keymap WHERE tbl = " + tbl + " AND native = " + native +
         "), (SELECT record FROM _duplex_keymap WHERE tbl = " + tbl + " AND was = " + native +
         " ORDER BY rowid DESC LIMIT 1), " + QuoteString(name_ + ":") + " || " + native + ") END)";
}

std::string SqliteConnector::ColumnJson(const BoundTable& t, const std::string& column,
                                        const std::string& prefix) const {
  auto it = t.record_table_of_column.find(column);
  if (it == t.record_table_of_column.end()) return JsonValueExpr(prefix + QuoteIdent(column));
  return RecordExpr(it->second, prefix + QuoteIdent(column));
}

std::string SqliteConnector::CapturedDescriptor(const BoundTable& t) const {
  if (t.record_table_of_column.empty()) return Value(t.columns).dump();
  std::vector<std::string> columns = t.columns;
  std::sort(columns.begin(), columns.end());
  Value records = Value::object();
  for (const auto& [column, table] : t.record_table_of_column) records[column] = table;
  return Value{{"columns", columns}, {"endpoint", name_}, {"records", records}}.dump();
}

Result<std::string> SqliteConnector::ImageExpr(const BoundTable& t,
                                               const std::string& prefix) const {
  const std::string& table = t.binding.table;
  const std::vector<std::string>& columns = t.columns;
  // A function takes at most SQLITE_LIMIT_FUNCTION_ARG arguments (127 by default), so wide tables
  // get their first columns from json_object() and the rest from nested json_set() calls. Names
  // json_set() cannot spell go first.
  int max_args = sqlite3_limit(db_.get(), SQLITE_LIMIT_FUNCTION_ARG, -1);
  size_t per_object = static_cast<size_t>(max_args) / 2;
  size_t per_set = static_cast<size_t>(max_args - 1) / 2;
  std::vector<std::string> cols = columns;
  auto safe_begin = std::stable_partition(cols.begin(), cols.end(),
                                          [](const std::string& c) { return !SafeForJsonPath(c); });
  if (static_cast<size_t>(safe_begin - cols.begin()) > per_object) {
    return Status::InvalidArgument(Where(table) + ": more than " + std::to_string(per_object) +
                                   " synced columns have a '\"', '\\' or control character in "
                                   "their name");
  }
  std::string expr = "json_object(";
  size_t i = 0;
  for (; i < cols.size() && i < per_object; ++i) {
    if (i) expr += ", ";
    expr += QuoteString(cols[i]) + ", " + ColumnJson(t, cols[i], prefix);
  }
  expr += ")";
  while (i < cols.size()) {
    std::string set = "json_set(" + expr;
    for (size_t n = 0; n < per_set && i < cols.size(); ++n, ++i) {
      set += ", " + QuoteString("$.\"" + cols[i] + "\"") + ", " + ColumnJson(t, cols[i], prefix);
    }
    expr = set + ")";
  }
  return expr;
}

Status SqliteConnector::CheckTable(const BoundTable& t) {
  const std::string& table = t.binding.table;
  DUPLEX_ASSIGN_OR_RETURN(TableInfo info, Describe(table));
  if (!info.exists) return Status::InvalidArgument(Where(table) + ": no such table");
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
          Where(table) + ": key_mode = \"mapped\" needs the key column '" + c.name +
          "' to be generated by SQLite (INTEGER PRIMARY KEY) or to have a DEFAULT");
    }
  }
  for (const auto& [field, column] : t.binding.fields) {
    if (!have.count(lower(column))) {
      return Status::InvalidArgument(Where(table) + ": column '" + column + "' (field '" + field +
                                     "') does not exist");
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
  Result<Stmt> probe = db_.Prepare("INSERT INTO " + QuoteIdent(table) + "(" + keys + ") VALUES(" +
                                   params + ") ON CONFLICT(" + keys + ") DO NOTHING");
  if (!probe.ok()) {
    return Status::InvalidArgument(Where(table) + ": the key column(s) " + keys +
                                   " must be the primary key or have a unique index (" +
                                   sqlite3_errmsg(db_.get()) + ")");
  }
  return Status::Ok();
}

Status SqliteConnector::DropTriggers(const std::string& table) {
  for (const char* suffix : kTriggerSuffixes) {
    DUPLEX_RETURN_IF_ERROR(
        db_.Exec("DROP TRIGGER IF EXISTS " + QuoteIdent(TriggerName(table, suffix)))
            .WithContext(Where(table)));
  }
  return Status::Ok();
}

std::string SqliteConnector::FreshRecordSql(const BoundTable& t, const std::string& ref,
                                            const std::string& cond) const {
  // SQLite reuses the largest rowid after that row is deleted, so a new row can get the key of
  // a record duplex already knows (deleted, or moved elsewhere by a resurrecting insert). Such a
  // row gets a live key map entry, so that it is not taken for that record: named after its key
  // if that id is unused, else that plus '#' and the seq of the changelog row about to log it,
  // which no other row can get.
  const std::string tbl = QuoteString(t.binding.table);
  const std::string native = NativeExpr(ref);
  const std::string own = QuoteString(name_ + ":") + " || " + native;
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

std::string SqliteConnector::RetireRecordSql(const BoundTable& t, const std::string& ref,
                                             const std::string& cond) const {
  // The row's record loses its key (kept in `was` for references logged later), but its id
  // stays in the key map so that no later row is given it (FreshRecordSql) and duplex may bring
  // the record back (PutKeyMap). A record named after its own key has no entry yet: it gets one.
  const std::string tbl = QuoteString(t.binding.table);
  const std::string native = NativeExpr(ref);
  const std::string own = QuoteString(name_ + ":") + " || " + native;
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

Status SqliteConnector::CreateTriggers(const BoundTable& t) {
  const std::string& table = t.binding.table;
  DUPLEX_ASSIGN_OR_RETURN(std::string new_image, ImageExpr(t, "NEW."));
  DUPLEX_ASSIGN_OR_RETURN(std::string old_image, ImageExpr(t, "OLD."));
  const std::string active = "(SELECT active FROM _duplex_apply WHERE id = 1) = 0";
  const std::string when = " FOR EACH ROW WHEN " + active;
  // Updates that touch only unsynced columns are not logged.
  std::string changed;
  for (const std::string& c : t.columns) {
    if (!changed.empty()) changed += " OR ";
    changed += "OLD." + QuoteIdent(c) + " IS NOT NEW." + QuoteIdent(c);
  }
  // `pk` (the row's key as JSON) lets Apply ask "did the application change this row after
  // the position the resolver had seen?" (see Apply).
  auto log = [&](const char* op, const std::string& old_expr, const std::string& new_expr,
                 const char* key_of) {
    return "INSERT INTO _duplex_changelog(tbl, op, old, new, at, pk) SELECT " + QuoteString(table) +
           ", '" + op + "', " + old_expr + ", " + new_expr + ", " + kNowMs + ", " +
           KeyExpr(t, key_of);
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
    const std::string key = QuoteIdent(t.column_of_field.at(t.binding.key.front()));
    const std::string moved = " AND OLD." + key + " IS NOT NEW." + key;
    ins = FreshRecordSql(t, "NEW." + key, "") + ins;
    upd = FreshRecordSql(t, "NEW." + key, moved) + upd + RetireRecordSql(t, "OLD." + key, moved);
    // Duplex's own deletes must update the key map too, so only the logging tests the flag.
    del_when = " FOR EACH ROW";
    del = log("D", old_image, "NULL", "OLD.") + " WHERE " + active + "; " +
          RetireRecordSql(t, "OLD." + key, "");
  }
  std::string sql[3] = {
      "CREATE TRIGGER " + QuoteIdent(TriggerName(table, "_ins")) + " AFTER INSERT" + on + when +
          " BEGIN " + ins + "END",
      "CREATE TRIGGER " + QuoteIdent(TriggerName(table, "_upd")) + " AFTER UPDATE" + on + when +
          " AND (" + changed + ") BEGIN " + upd + "END",
      "CREATE TRIGGER " + QuoteIdent(TriggerName(table, "_del")) + " AFTER DELETE" + on + del_when +
          " BEGIN " + del + "END",
  };
  for (const std::string& s : sql) DUPLEX_RETURN_IF_ERROR(db_.Exec(s).WithContext(Where(table)));
  return Status::Ok();
}

Status SqliteConnector::Install() {
  DUPLEX_RETURN_IF_ERROR(CheckOpen());
  for (const BoundTable& t : tables_) DUPLEX_RETURN_IF_ERROR(CheckTable(t));

  Result<Txn> txn = Txn::Begin(db_);
  if (!txn.ok()) return txn.status().WithContext(Where());
  DUPLEX_RETURN_IF_ERROR(db_.Exec(kCreateBookkeeping).WithContext(Where()));

  std::map<std::string, std::string> captured;  // table -> columns JSON
  {
    DUPLEX_ASSIGN_OR_RETURN(Stmt stmt, db_.Prepare("SELECT tbl, columns FROM _duplex_captured"));
    while (true) {
      Result<bool> row = stmt.Step();
      if (!row.ok()) return row.status().WithContext(Where());
      if (!*row) break;
      captured.emplace(stmt.Text(0), stmt.Text(1));
    }
  }
  DUPLEX_ASSIGN_OR_RETURN(Stmt forget, db_.Prepare("DELETE FROM _duplex_captured WHERE tbl = ?1"));
  for (const auto& [table, columns] : captured) {
    if (by_table_.count(table)) continue;
    // No longer bound: stop capturing it. Its changelog rows are skipped by Capture.
    DUPLEX_RETURN_IF_ERROR(DropTriggers(table));
    forget.Reset().Bind(1, table);
    DUPLEX_RETURN_IF_ERROR(forget.Run().WithContext(Where(table)));
  }

  DUPLEX_ASSIGN_OR_RETURN(Stmt remember,
                          db_.Prepare("INSERT INTO _duplex_captured(tbl, columns) VALUES(?1, ?2) "
                                      "ON CONFLICT(tbl) DO UPDATE SET columns = excluded.columns"));
  for (const BoundTable& t : tables_) {
    const std::string& table = t.binding.table;
    if (!captured.count(table)) {
      // First capture: every existing row becomes a snapshot change, in the same transaction as
      // the triggers, so no change made meanwhile is lost or doubled.
      DUPLEX_ASSIGN_OR_RETURN(std::string image, ImageExpr(t, ""));
      std::string sql = "INSERT INTO _duplex_changelog(tbl, op, new, snapshot, at, pk) SELECT " +
                        QuoteString(table) + ", 'I', " + image + ", 1, " + kNowMs + ", " +
                        KeyExpr(t, "") + " FROM " + QuoteIdent(table);
      DUPLEX_RETURN_IF_ERROR(db_.Exec(sql).WithContext(Where(table)));
    }
    DUPLEX_RETURN_IF_ERROR(DropTriggers(table));
    DUPLEX_RETURN_IF_ERROR(CreateTriggers(t));
    remember.Reset().Bind(1, table).Bind(2, CapturedDescriptor(t));
    DUPLEX_RETURN_IF_ERROR(remember.Run().WithContext(Where(table)));
  }
  DUPLEX_RETURN_IF_ERROR(txn->Commit().WithContext(Where()));
  own_commit_ = true;
  return Status::Ok();
}

Status SqliteConnector::Uninstall() {
  DUPLEX_RETURN_IF_ERROR(CheckOpen());
  ClearStatements();  // they refer to the tables about to be dropped
  Result<Txn> txn = Txn::Begin(db_);
  if (!txn.ok()) return txn.status().WithContext(Where());
  std::set<std::string> tables;
  for (const BoundTable& t : tables_) tables.insert(t.binding.table);
  DUPLEX_ASSIGN_OR_RETURN(bool exists, BookkeepingExists());
  if (exists) {
    DUPLEX_ASSIGN_OR_RETURN(Stmt stmt, db_.Prepare("SELECT tbl FROM _duplex_captured"));
    while (true) {
      Result<bool> row = stmt.Step();
      if (!row.ok()) return row.status().WithContext(Where());
      if (!*row) break;
      tables.insert(stmt.Text(0));
    }
  }
  for (const std::string& table : tables) DUPLEX_RETURN_IF_ERROR(DropTriggers(table));
  DUPLEX_RETURN_IF_ERROR(db_.Exec(kDropBookkeeping).WithContext(Where()));
  DUPLEX_RETURN_IF_ERROR(txn->Commit().WithContext(Where()));
  own_commit_ = true;
  return Status::Ok();
}

Result<bool> SqliteConnector::Poll() {
  DUPLEX_RETURN_IF_ERROR(CheckOpen());
  DUPLEX_ASSIGN_OR_RETURN(Stmt * stmt, Prepared(poll_stmt_, "PRAGMA data_version"));
  ResetOnExit reset(*stmt);
  Result<bool> row = stmt->Step();
  if (!row.ok()) return row.status().WithContext(Where());
  int64_t version = *row ? stmt->Int(0) : 0;
  // data_version only moves for other connections' commits; our own need the flag.
  bool changed = !polled_ || version != data_version_ || own_commit_;
  polled_ = true;
  data_version_ = version;
  own_commit_ = false;
  return changed;
}

Row SqliteConnector::MapImage(const BoundTable& t, Value&& image) {
  Row out = Row::object();
  for (const auto& [field, column] : t.binding.fields) {
    auto it = image.find(column);
    if (it == image.end()) continue;  // logged before the column was bound
    NormalizeValue(*it);
    out.emplace(field, std::move(*it));
  }
  return out;
}

Result<Value> SqliteConnector::ParseImage(const BoundTable& t, int64_t seq, int col) {
  const char* text = reinterpret_cast<const char*>(sqlite3_column_text(capture_stmt_.get(), col));
  if (text == nullptr) return Value();
  std::string_view sv(text, static_cast<size_t>(sqlite3_column_bytes(capture_stmt_.get(), col)));
  Value v = Value::parse(sv.begin(), sv.end(), nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) {
    std::string clean = SanitizeUtf8(sv);
    v = Value::parse(clean, nullptr, /*allow_exceptions=*/false);
    if (!v.is_discarded()) {
      spdlog::warn(
          "{}: changelog seq {}: text that is not valid UTF-8 was captured with U+FFFD "
          "in place of the invalid bytes",
          Where(t.binding.table), seq);
    }
  }
  if (!v.is_object()) {
    return Status::Corruption(Where(t.binding.table) + ": changelog seq " + std::to_string(seq) +
                              " holds an image that is not a JSON object");
  }
  return v;
}

Result<ChangeBatch> SqliteConnector::Capture(Position from, size_t max_changes) {
  DUPLEX_RETURN_IF_ERROR(CheckOpen());
  ChangeBatch batch;
  batch.end = from;
  if (max_changes == 0) return batch;
  if (!capture_stmt_.valid()) {
    Result<Stmt*> s = Prepared(capture_stmt_,
                               "SELECT seq, tbl, op, old, new, apply_id, snapshot, at FROM "
                               "_duplex_changelog WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    if (!s.ok()) {
      Result<bool> exists = BookkeepingExists();
      if (exists.ok() && !*exists) return NotInstalled();
      return s.status();
    }
  }
  Stmt& stmt = capture_stmt_;
  stmt.Reset();
  ResetOnExit reset(stmt);
  int64_t limit = static_cast<int64_t>(
      std::min<size_t>(max_changes, static_cast<size_t>(std::numeric_limits<int64_t>::max())));
  stmt.Bind(1, static_cast<int64_t>(from)).Bind(2, limit);
  batch.changes.reserve(std::min<size_t>(max_changes, 4096));
  std::string tbl;
  while (true) {
    Result<bool> row = stmt.Step();
    if (!row.ok()) return row.status().WithContext(Where());
    if (!*row) break;
    int64_t seq = stmt.Int(0);
    const unsigned char* op_text = sqlite3_column_text(stmt.get(), 2);
    char op = op_text ? static_cast<char>(op_text[0]) : '\0';
    if (op == 'M') {
      Change c;
      c.op = Op::kMarker;
      c.apply_id = stmt.Int(5);
      c.position = seq;
      c.commit_ms = stmt.Double(7);
      batch.changes.push_back(std::move(c));
      batch.end = seq;
      continue;
    }
    tbl.assign(reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 1)),
               static_cast<size_t>(sqlite3_column_bytes(stmt.get(), 1)));
    auto bound = by_table_.find(tbl);
    if (bound == by_table_.end() || (op != 'I' && op != 'U' && op != 'D' && op != 'R')) {
      batch.end = seq;  // a table no longer bound
      continue;
    }
    const BoundTable& t = tables_[bound->second];
    if (op == 'R') {
      Change c;
      c.op = Op::kRejected;
      c.collection = t.binding.collection;
      c.position = seq;
      c.commit_ms = stmt.Double(7);
      c.apply_id = stmt.Int(5);
      DUPLEX_ASSIGN_OR_RETURN(Value key_image, ParseImage(t, seq, 3));
      c.key = MapImage(t, std::move(key_image));
      if (!stmt.IsNull(4)) {
        DUPLEX_ASSIGN_OR_RETURN(Value actual, ParseImage(t, seq, 4));
        c.after = MapImage(t, std::move(actual));
      }
      batch.changes.push_back(std::move(c));
      batch.end = seq;
      continue;
    }

    Change c;
    c.collection = t.binding.collection;
    c.position = seq;
    c.commit_ms = stmt.Double(7);
    c.snapshot = stmt.Int(6) != 0;
    if (op != 'I') {
      DUPLEX_ASSIGN_OR_RETURN(Value old_image, ParseImage(t, seq, 3));
      c.before = MapImage(t, std::move(old_image));
    }
    if (op != 'D') {
      DUPLEX_ASSIGN_OR_RETURN(Value new_image, ParseImage(t, seq, 4));
      c.after = MapImage(t, std::move(new_image));
    }
    const Row& key_image = op == 'D' ? c.before : c.after;
    c.key = Row::object();
    for (const std::string& k : t.binding.key) {
      auto it = key_image.find(k);
      c.key.emplace(k, it == key_image.end() ? Value() : *it);
    }

    bool key_changed = false;
    if (op == 'U') {
      for (const std::string& k : t.binding.key) {
        auto b = c.before.find(k);
        Value none;
        if (!ValuesEqual(b == c.before.end() ? none : *b, c.key[k])) key_changed = true;
      }
    }
    size_t produced = key_changed ? 2 : 1;
    if (!batch.changes.empty() && batch.changes.size() + produced > max_changes) break;

    if (key_changed) {
      // The row moved to another key: for duplex, the old record is gone and a new one exists.
      Change del;
      del.op = Op::kDelete;
      del.collection = c.collection;
      del.position = seq;
      del.commit_ms = c.commit_ms;
      del.key = Row::object();
      for (const std::string& k : t.binding.key) {
        auto it = c.before.find(k);
        del.key.emplace(k, it == c.before.end() ? Value() : *it);
      }
      del.before = std::move(c.before);
      batch.changes.push_back(std::move(del));
      c.op = Op::kInsert;
      c.before = Row();
    } else {
      c.op = static_cast<Op>(op);
    }
    batch.changes.push_back(std::move(c));
    batch.end = seq;
  }
  return batch;
}

Result<int64_t> SqliteConnector::Backlog(Position from) {
  DUPLEX_RETURN_IF_ERROR(CheckOpen());
  if (!backlog_stmt_.valid()) {
    DUPLEX_ASSIGN_OR_RETURN(bool exists, BookkeepingExists());
    if (!exists) return int64_t{0};
  }
  DUPLEX_ASSIGN_OR_RETURN(
      Stmt * stmt,
      Prepared(backlog_stmt_, "SELECT count(*) FROM _duplex_changelog WHERE seq > ?1"));
  stmt->Reset().Bind(1, static_cast<int64_t>(from));
  ResetOnExit reset(*stmt);
  Result<bool> row = stmt->Step();
  if (!row.ok()) return row.status().WithContext(Where());
  return *row ? stmt->Int(0) : int64_t{0};
}

Status SqliteConnector::Ack(Position upto) {
  DUPLEX_RETURN_IF_ERROR(CheckOpen());
  if (!ack_stmt_.valid()) {
    DUPLEX_ASSIGN_OR_RETURN(bool exists, BookkeepingExists());
    if (!exists) return Status::Ok();  // nothing to release
  }
  // One autocommit statement: a short write transaction. Bounded so that a large backlog does
  // not hold the write lock (and the applications' writes) for long; the engine acks again.
  DUPLEX_ASSIGN_OR_RETURN(
      Stmt * stmt,
      Prepared(ack_stmt_,
               "DELETE FROM _duplex_changelog WHERE seq IN (SELECT seq FROM _duplex_changelog "
               "WHERE seq <= ?1 ORDER BY seq LIMIT ?2)"));
  // Chunk after chunk, each its own short transaction, so that the applications get the lock
  // between them.
  while (true) {
    stmt->Reset().Bind(1, static_cast<int64_t>(upto)).Bind(2, kAckMaxRows);
    DUPLEX_RETURN_IF_ERROR(stmt->Run().WithContext(Where()));
    const int64_t deleted = db_.Changes();
    // Only when something was deleted: an engine that acks after every (empty) capture must be
    // able to go idle.
    if (deleted > 0) own_commit_ = true;
    if (deleted < kAckMaxRows) break;
  }
  if (upto == acked_stamp_) return Status::Ok();
  // The endpoint's own record of what duplex acked: a file restored from a backup holds an
  // older one than the state file (CheckRestored).
  DUPLEX_ASSIGN_OR_RETURN(Stmt * stamp,
                          Prepared(ack_stamp_stmt_,
                                   "INSERT INTO _duplex_acked(id, seq) VALUES(1, ?1) "
                                   "ON CONFLICT(id) DO UPDATE SET seq = excluded.seq"));
  stamp->Reset().Bind(1, static_cast<int64_t>(upto));
  DUPLEX_RETURN_IF_ERROR(stamp->Run().WithContext(Where()));
  acked_stamp_ = upto;
  own_commit_ = true;
  return Status::Ok();
}

Result<RestoreCheck> SqliteConnector::CheckRestored(Position captured, Position acked) {
  DUPLEX_RETURN_IF_ERROR(CheckOpen());
  RestoreCheck check{"", captured};
  DUPLEX_ASSIGN_OR_RETURN(bool exists, BookkeepingExists());
  if (!exists) {
    if (captured > 0) {
      check.reason =
          "duplex's changelog is gone from it (a copy from before duplex was installed?)";
      check.resume = 0;
    }
    return check;
  }
  // Each a single value; a missing table (an older install) reads as none.
  auto scalar = [&](const char* sql) -> std::optional<int64_t> {
    Result<Stmt> stmt = db_.Prepare(sql);
    if (!stmt.ok()) return std::nullopt;
    Result<bool> row = stmt->Step();
    if (!row.ok() || !*row || stmt->IsNull(0)) return std::nullopt;
    return stmt->Int(0);
  };
  const std::optional<int64_t> stamp = scalar("SELECT seq FROM _duplex_acked WHERE id = 1");
  // AUTOINCREMENT's high-water mark: it never goes down while the file lives.
  const int64_t top =
      scalar("SELECT seq FROM sqlite_sequence WHERE name = '_duplex_changelog'").value_or(0);
  if (stamp && *stamp < acked) {
    check.reason = "its changelog records duplex's acknowledgements up to position " +
                   std::to_string(*stamp) + ", the state file up to " + std::to_string(acked);
  } else if (top < captured) {
    check.reason = "its changelog ends at position " + std::to_string(top) + ", before position " +
                   std::to_string(captured) + " that duplex captured";
  }
  if (!check.reason.empty()) {
    // The changelog keeps what was not acked when the copy was made: resume right after it.
    check.resume = stamp.value_or(0);
  }
  return check;
}

Status SqliteConnector::Scan(const std::string& collection, size_t max_rows,
                             const std::function<Status(std::vector<Change>&&)>& visit) {
  DUPLEX_RETURN_IF_ERROR(CheckOpen());
  auto bound = by_collection_.find(collection);
  if (bound == by_collection_.end()) {
    return Status::InvalidArgument(Where() + ": collection '" + collection + "' is not bound");
  }
  const BoundTable& t = tables_[bound->second];
  DUPLEX_ASSIGN_OR_RETURN(std::string image, ImageExpr(t, ""));
  Result<Stmt> stmt = db_.Prepare("SELECT " + image + " FROM " + QuoteIdent(t.binding.table));
  if (!stmt.ok()) return stmt.status().WithContext(Where(t.binding.table));
  std::vector<Change> chunk;
  int64_t txn = -1;
  while (true) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status().WithContext(Where(t.binding.table));
    if (!*row) break;
    Value v = Value::parse(stmt->Text(0), nullptr, false);
    if (!v.is_object()) {
      return Status::Corruption(Where(t.binding.table) + ": a row's image is not a JSON object");
    }
    Change c;
    c.op = Op::kPresent;
    c.collection = collection;
    c.after = MapImage(t, std::move(v));
    c.key = Row::object();
    for (const std::string& k : t.binding.key) {
      auto it = c.after.find(k);
      c.key.emplace(k, it == c.after.end() ? Value() : *it);
    }
    c.txn = --txn;  // one unit each (from -2: txn 0 and -1 mean other things)
    chunk.push_back(std::move(c));
    if (chunk.size() >= std::max<size_t>(max_rows, 1)) {
      DUPLEX_RETURN_IF_ERROR(visit(std::move(chunk)));
      chunk.clear();
    }
  }
  if (!chunk.empty()) DUPLEX_RETURN_IF_ERROR(visit(std::move(chunk)));
  return Status::Ok();
}

Result<int64_t> SqliteConnector::AppliedId() {
  DUPLEX_RETURN_IF_ERROR(CheckOpen());
  if (!applied_stmt_.valid()) {
    DUPLEX_ASSIGN_OR_RETURN(bool exists, BookkeepingExists());
    if (!exists) return int64_t{0};
  }
  DUPLEX_ASSIGN_OR_RETURN(
      Stmt * stmt, Prepared(applied_stmt_, "SELECT apply_id FROM _duplex_applied WHERE id = 1"));
  stmt->Reset();
  ResetOnExit reset(*stmt);
  Result<bool> row = stmt->Step();
  if (!row.ok()) return row.status().WithContext(Where());
  return *row ? stmt->Int(0) : int64_t{0};
}

Result<SqliteConnector::OpStmt*> SqliteConnector::OpStatement(const BoundTable& t,
                                                              const RowOp& op) {
  // Shape key: op, collection, the fields of `values` and of `expected` (objects iterate sorted,
  // so the parameter order below follows the same order).
  std::string& key = shape_buf_;
  key.clear();
  key += static_cast<char>(op.op);
  key += t.binding.collection;
  key += '\x1f';
  if (op.values.is_object()) {
    for (const auto& item : op.values.items()) {
      key += item.key();
      key += '\x1e';
    }
  }
  key += '\x1f';
  if (op.expected.is_object()) {
    for (const auto& item : op.expected.items()) {
      key += item.key();
      key += '\x1e';
    }
  }
  auto hit = op_stmts_.find(key);
  if (hit != op_stmts_.end()) return &hit->second;

  const std::string where = Where(t.binding.table) + ", key " + op.key.dump();
  if (!op.values.is_null() && !op.values.is_object()) {
    return Status::InvalidArgument(where + ": values must be a JSON object");
  }
  if (!op.expected.is_null() && !op.expected.is_object()) {
    return Status::InvalidArgument(where + ": expected must be a JSON object");
  }
  auto column = [&](const std::string& field) -> Result<std::string> {
    auto it = t.column_of_field.find(field);
    if (it == t.column_of_field.end()) {
      return Status::InvalidArgument(where + ": field '" + field +
                                     "' is not mapped to a column of this table");
    }
    return QuoteIdent(it->second);
  };

  OpStmt out;
  using Source = OpStmt::Source;
  std::string table = QuoteIdent(t.binding.table);
  std::string cond;  // WHERE for update/delete: the key, then the expected values
  if (op.op != Op::kInsert) {
    for (const std::string& k : t.binding.key) {
      DUPLEX_ASSIGN_OR_RETURN(std::string c, column(k));
      cond += (cond.empty() ? " WHERE " : " AND ") + c + " IS ?";
      out.params.emplace_back(Source::kKey, k);
    }
    if (op.expected.is_object()) {
      for (const auto& item : op.expected.items()) {
        DUPLEX_ASSIGN_OR_RETURN(std::string c, column(item.key()));
        cond += " AND " + c + " IS ?";
        out.params.emplace_back(Source::kExpected, item.key());
      }
    }
  }
  std::string sql;
  switch (op.op) {
    case Op::kInsert: {
      if (t.binding.mapped_key) {
        // The endpoint generates the key (never written by duplex); RETURNING hands it back as
        // the key map spells it.
        std::string cols, params;
        if (op.values.is_object()) {
          for (const auto& item : op.values.items()) {
            if (t.key_fields.count(item.key())) continue;
            DUPLEX_ASSIGN_OR_RETURN(std::string c, column(item.key()));
            cols += (cols.empty() ? "" : ", ") + c;
            params += params.empty() ? "?" : ", ?";
            out.params.emplace_back(Source::kValues, item.key());
          }
        }
        sql = "INSERT INTO " + table +
              (cols.empty() ? " DEFAULT VALUES" : "(" + cols + ") VALUES(" + params + ")") +
              " RETURNING " + NativeExpr(QuoteIdent(t.column_of_field.at(t.binding.key.front())));
        break;
      }
      std::string cols, params, keys;
      for (const std::string& k : t.binding.key) {
        DUPLEX_ASSIGN_OR_RETURN(std::string c, column(k));
        cols += (cols.empty() ? "" : ", ") + c;
        keys += (keys.empty() ? "" : ", ") + c;
        params += params.empty() ? "?" : ", ?";
        out.params.emplace_back(Source::kKey, k);
      }
      if (op.values.is_object()) {
        for (const auto& item : op.values.items()) {
          if (t.key_fields.count(item.key())) continue;  // taken from `key`
          DUPLEX_ASSIGN_OR_RETURN(std::string c, column(item.key()));
          cols += ", " + c;
          params += ", ?";
          out.params.emplace_back(Source::kValues, item.key());
        }
      }
      // The conflict target is the key only, so NOT NULL, CHECK and other UNIQUE violations
      // still fail the transaction instead of silently dropping the row.
      sql = "INSERT INTO " + table + "(" + cols + ") VALUES(" + params + ") ON CONFLICT(" + keys +
            ") DO NOTHING";
      break;
    }
    case Op::kUpdate: {
      std::string set;
      std::vector<std::pair<Source, std::string>> set_params;
      if (op.values.is_object()) {
        for (const auto& item : op.values.items()) {
          if (t.key_fields.count(item.key())) continue;  // keys change by delete + insert
          DUPLEX_ASSIGN_OR_RETURN(std::string c, column(item.key()));
          set += (set.empty() ? "" : ", ") + c + " = ?";
          set_params.emplace_back(Source::kValues, item.key());
        }
      }
      if (set.empty()) {
        // Nothing to set: a pure compare-and-set check, which still counts the matching row.
        DUPLEX_ASSIGN_OR_RETURN(std::string c, column(t.binding.key.front()));
        set = c + " = " + c;
      }
      sql = "UPDATE " + table + " SET " + set + cond;
      set_params.insert(set_params.end(), out.params.begin(), out.params.end());
      out.params = std::move(set_params);
      break;
    }
    case Op::kDelete:
      sql = "DELETE FROM " + table + cond;
      break;
    case Op::kMarker:
    case Op::kRejected:
    case Op::kPresent:
      return Status::InvalidArgument(where + ": a marker is not a row write");
  }
  Result<Stmt> stmt = db_.Prepare(sql);
  if (!stmt.ok()) return stmt.status().WithContext(where);
  out.stmt = std::move(stmt).value();
  auto inserted = op_stmts_.emplace(key, std::move(out));
  return &inserted.first->second;
}

std::string SqliteConnector::KeyExpr(const BoundTable& t, const std::string& prefix) const {
  // Spelled like KeyArray of the values Apply receives (record ids for mapped columns), so that
  // ChangedSince finds the rows the triggers logged.
  std::string out = "json_array(";
  for (size_t i = 0; i < t.binding.key.size(); ++i) {
    out += (i ? ", " : "") + ColumnJson(t, t.column_of_field.at(t.binding.key[i]), prefix);
  }
  return out + ")";
}

Result<bool> SqliteConnector::ChangedSince(const BoundTable& t, const RowOp& op) {
  Stmt& stmt = changed_stmts_[t.binding.table];
  if (!stmt.valid()) {
    std::vector<std::string> refs;
    for (size_t i = 0; i < t.binding.key.size(); ++i) refs.push_back("?" + std::to_string(i + 2));
    std::string sql =
        "SELECT 1 FROM _duplex_changelog WHERE tbl = " + QuoteString(t.binding.table) +
        " AND pk = " + KeyArray(refs) + " AND seq > ?1 AND op IN ('I', 'U', 'D') LIMIT 1";
    DUPLEX_ASSIGN_OR_RETURN(stmt, db_.Prepare(sql));
  }
  stmt.Reset();
  stmt.Bind(1, static_cast<int64_t>(op.seen));
  int i = 2;
  for (const std::string& k : t.binding.key) {
    auto it = op.key.find(k);
    stmt.BindValue(i++, it == op.key.end() ? Value() : *it);
  }
  Result<bool> row = stmt.Step();
  stmt.Reset();
  if (!row.ok()) return row.status().WithContext(Where(t.binding.table));
  return *row;
}

Status SqliteConnector::LogRejected(const BoundTable& t, const RowOp& op, int64_t apply_id) {
  Stmt& stmt = reject_stmts_[t.binding.table];
  if (!stmt.valid()) {
    std::string where;
    int i = 3;
    for (const std::string& k : t.binding.key) {
      where += (where.empty() ? "" : " AND ") + QuoteIdent(t.column_of_field.at(k)) + " IS ?" +
               std::to_string(i++);
    }
    DUPLEX_ASSIGN_OR_RETURN(std::string image, ImageExpr(t, ""));
    std::string sql = "INSERT INTO _duplex_changelog(tbl, op, old, new, apply_id, at) VALUES(" +
                      QuoteString(t.binding.table) + ", 'R', ?1, (SELECT " + image + " FROM " +
                      QuoteIdent(t.binding.table) + " WHERE " + where + "), ?2, " + kNowMs + ")";
    DUPLEX_ASSIGN_OR_RETURN(stmt, db_.Prepare(sql));
  }
  // The key goes into `old` under column names, like a trigger's image (record ids for mapped
  // columns); the row is found by its native key.
  Value key = Value::object();
  for (const std::string& k : t.binding.key) {
    auto it = op.key.find(k);
    key[t.column_of_field.at(k)] = it == op.key.end() ? Value() : *it;
  }
  DUPLEX_ASSIGN_OR_RETURN(Row native, NativeKey(t, op.key));
  stmt.Reset();
  stmt.Bind(1, key.dump()).Bind(2, apply_id);
  int i = 3;
  for (const std::string& k : t.binding.key) {
    auto it = native.is_object() ? native.find(k) : native.end();
    stmt.BindValue(i++, it == native.end() ? Value() : *it);
  }
  return stmt.Run().WithContext(Where(t.binding.table));
}

Result<bool> SqliteConnector::ApplyOne(const BoundTable& t, const RowOp& op,
                                       std::string* generated) {
  DUPLEX_ASSIGN_OR_RETURN(OpStmt * s, OpStatement(t, op));
  Stmt& stmt = s->stmt;
  stmt.Reset();
  int i = 1;
  for (const auto& [source, field] : s->params) {
    const Row& obj = source == OpStmt::Source::kKey      ? op.key
                     : source == OpStmt::Source::kValues ? op.values
                                                         : op.expected;
    auto it = obj.is_object() ? obj.find(field) : obj.end();
    if (!obj.is_object() || it == obj.end()) {
      return Status::InvalidArgument(Where(t.binding.table) + ", key " + op.key.dump() +
                                     ": key field '" + field + "' is missing");
    }
    stmt.BindValue(i++, *it);
  }
  Result<bool> done = stmt.Step();
  if (!done.ok()) {
    std::string msg =
        Where(t.binding.table) + ", key " + op.key.dump() + ": " + sqlite3_errmsg(db_.get());
    if (done.status().IsRetriable()) return Status::Unavailable(msg);
    // Only what the row itself causes (constraint, type) may park it; a disk or I/O error
    // says nothing about the row and is retried.
    if (done.status().IsInvalidArgument()) return Status::InvalidArgument(msg);
    return Status::IOError(msg);
  }
  if (generated != nullptr) {
    if (!*done || stmt.IsNull(0)) {
      return Status::InvalidArgument(Where(t.binding.table) + ", record " + op.key.dump() +
                                     ": SQLite generated no key for the inserted row");
    }
    *generated = stmt.Text(0);
    stmt.Reset();  // the insert is complete after the first step
    return true;
  }
  return db_.Changes() > 0;
}

Result<std::optional<Value>> SqliteConnector::HeldKey(const BoundTable& t, const Value& record) {
  if (!record.is_string()) return std::optional<Value>();
  const std::string& id = record.get_ref<const std::string&>();
  DUPLEX_ASSIGN_OR_RETURN(
      Stmt * get, Prepared(keymap_get_stmt_,
                           "SELECT native FROM _duplex_keymap WHERE tbl = ?1 AND record = ?2"));
  get->Reset().Bind(1, t.binding.table).Bind(2, id);
  {
    ResetOnExit reset(*get);
    Result<bool> row = get->Step();
    if (!row.ok()) return row.status().WithContext(Where(t.binding.table));
    if (*row) {
      if (get->IsNull(0)) return std::optional<Value>();  // the record's row was deleted
      Value native = Value::parse(get->Text(0), nullptr, /*allow_exceptions=*/false);
      if (native.is_discarded()) {
        return Status::Corruption(Where(t.binding.table) + ": key map entry of record '" + id +
                                  "' holds a key that is not JSON: " + get->Text(0));
      }
      NormalizeValue(native);
      return std::optional<Value>(std::move(native));
    }
  }
  // No entry: a record first seen here is named after its key, if that row is still its own
  // (not given to another record after a delete).
  std::optional<Value> own = OwnNativeKey(name_, id);
  if (!own) return own;
  NormalizeValue(*own);
  Stmt& probe = own_row_stmts_[t.binding.table];
  if (!probe.valid()) {
    const std::string key = QuoteIdent(t.column_of_field.at(t.binding.key.front()));
    DUPLEX_ASSIGN_OR_RETURN(
        probe,
        db_.Prepare("SELECT 1 FROM " + QuoteIdent(t.binding.table) + " WHERE " + key +
                    " IS ?1 AND NOT EXISTS (SELECT 1 FROM _duplex_keymap WHERE tbl = " +
                    QuoteString(t.binding.table) + " AND native = " + NativeExpr("?1") + ")"));
  }
  probe.Reset().BindValue(1, *own);
  ResetOnExit reset(probe);
  Result<bool> row = probe.Step();
  if (!row.ok()) return row.status().WithContext(Where(t.binding.table));
  if (!*row) return std::optional<Value>();
  return own;
}

Result<Row> SqliteConnector::NativeKey(const BoundTable& t, const Row& key) {
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
    DUPLEX_ASSIGN_OR_RETURN(std::optional<Value> held, HeldKey(tables_[parent], *it));
    *it = held ? std::move(*held) : Value();
  }
  return out;
}

Status SqliteConnector::PutKeyMap(const BoundTable& t, const std::string& record,
                                  const std::string& native) {
  // An entry still holding this key is stale (its row went while capture was not installed):
  // the key belongs to the row just inserted.
  DUPLEX_ASSIGN_OR_RETURN(
      Stmt * retire,
      Prepared(keymap_retire_stmt_,
               "UPDATE _duplex_keymap SET was = native, native = NULL WHERE tbl = ?1 AND "
               "native = ?2"));
  retire->Reset().Bind(1, t.binding.table).Bind(2, native);
  DUPLEX_RETURN_IF_ERROR(retire->Run().WithContext(Where(t.binding.table)));
  // A retired entry (the record's row was deleted here) comes back with the new key.
  DUPLEX_ASSIGN_OR_RETURN(
      Stmt * put,
      Prepared(keymap_put_stmt_,
               "INSERT INTO _duplex_keymap(tbl, record, native) VALUES(?1, ?2, ?3) "
               "ON CONFLICT(tbl, record) DO UPDATE SET native = excluded.native, was = NULL"));
  put->Reset().Bind(1, t.binding.table).Bind(2, record).Bind(3, native);
  return put->Run().WithContext(Where(t.binding.table) + ", record '" + record + "'");
}

Result<bool> SqliteConnector::ApplyRow(const BoundTable& t, const RowOp& op) {
  if (!t.binding.mapped_key && t.ref_fields.empty()) return ApplyOne(t, op);
  const std::string where = Where(t.binding.table) + ", key " + op.key.dump();
  RowOp native = op;  // record ids replaced by this endpoint's keys
  for (const auto& [field, parent] : t.ref_fields) {
    const BoundTable& p = tables_[parent];
    for (Row* obj : {&native.key, &native.values, &native.expected}) {
      if (!obj->is_object()) continue;
      auto it = obj->find(field);
      if (it == obj->end() || it->is_null()) continue;
      if (!it->is_string()) {
        return Status::InvalidArgument(where + ": field '" + field + "' must hold a record id of " +
                                       p.binding.collection + " (a mapped reference), not " +
                                       it->dump());
      }
      DUPLEX_ASSIGN_OR_RETURN(std::optional<Value> held, HeldKey(p, *it));
      if (!held) {
        return Status::InvalidArgument(where + ": field '" + field + "' references " +
                                       p.binding.collection + " record '" + it->get<std::string>() +
                                       "', which endpoint '" + name_ + "' does not hold");
      }
      *it = std::move(*held);
    }
  }
  if (!t.binding.mapped_key) return ApplyOne(t, native);

  const std::string& field = t.binding.key.front();
  auto record = op.key.is_object() ? op.key.find(field) : op.key.end();
  if (record == op.key.end() || !record->is_string()) {
    return Status::InvalidArgument(where + ": key field '" + field +
                                   "' must hold a record id (key_mode = \"mapped\")");
  }
  DUPLEX_ASSIGN_OR_RETURN(std::optional<Value> held, HeldKey(t, *record));
  if (op.op == Op::kInsert) {
    if (held) return false;  // the record has a row here already: like a key conflict
    std::string generated;
    DUPLEX_ASSIGN_OR_RETURN(bool done, ApplyOne(t, native, &generated));
    if (!done) return false;
    DUPLEX_RETURN_IF_ERROR(PutKeyMap(t, record->get<std::string>(), generated));
    return true;
  }
  if (!held) return false;  // no row for the record: the write finds nothing to change
  native.key[field] = *held;
  if (native.expected.is_object() && native.expected.contains(field)) {
    native.expected[field] = std::move(*held);
  }
  return ApplyOne(t, native);
}

bool SqliteConnector::DeferredFkViolation() {
  // Non-zero exactly while some foreign key checked at commit is unresolved; a savepoint rolled
  // back restores it.
  int current = 0, highwater = 0;
  if (sqlite3_db_status(db_.get(), SQLITE_DBSTATUS_DEFERRED_FKS, &current, &highwater, 0) !=
      SQLITE_OK) {
    return false;  // not reachable with a valid connection; COMMIT checks again
  }
  return current != 0;
}

std::string SqliteConnector::FkViolations() {
  // A whole-file check: only on the failure path. It also lists violations the application left
  // (with foreign_keys off), so a few are named, not all.
  constexpr int kMaxNamed = 3;
  std::string out = "FOREIGN KEY constraint failed";
  Result<Stmt> check =
      db_.Prepare("SELECT \"table\", rowid, parent FROM pragma_foreign_key_check LIMIT " +
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
    auto bound = by_table_.find(table);
    std::string key;
    if (bound != by_table_.end() && !check->IsNull(1)) {
      // The row's key as duplex names it (record ids for a mapped key).
      Result<Stmt> k = db_.Prepare("SELECT " + KeyExpr(tables_[bound->second], "") + " FROM " +
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

Status SqliteConnector::ApplyUnit(const ApplyBatch& batch, size_t begin, size_t end,
                                  ApplyResult* counts) {
  for (size_t i = begin; i < end; ++i) {
    const RowOp& op = batch.ops[i];
    const BoundTable& t = tables_[by_collection_.at(op.collection)];
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

Result<ApplyResult> SqliteConnector::Apply(const std::vector<ApplyBatch>& batches,
                                           bool isolate_txns) {
  DUPLEX_RETURN_IF_ERROR(CheckOpen());
  ApplyResult result;
  if (batches.empty()) return result;
  for (const ApplyBatch& batch : batches) {
    for (const RowOp& op : batch.ops) {
      if (!by_collection_.count(op.collection)) {
        return Status::InvalidArgument(Where() + ": collection '" + op.collection +
                                       "' is not bound to this endpoint");
      }
    }
  }
  // IMMEDIATE: a busy database fails here, before anything is written.
  Result<Txn> txn = Txn::Begin(db_);
  if (!txn.ok()) return txn.status().WithContext(Where());
  // Foreign keys are checked at commit (or at the end of each source transaction, below), so
  // the order of rows inside a transaction and reference cycles do not matter. SQLite switches
  // this off again at COMMIT and ROLLBACK.
  DUPLEX_RETURN_IF_ERROR(db_.Exec("PRAGMA defer_foreign_keys = ON").WithContext(Where()));

  if (!applied_stmt_.valid()) {
    DUPLEX_ASSIGN_OR_RETURN(bool exists, BookkeepingExists());
    if (!exists) return NotInstalled();
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
          Stmt * on, Prepared(apply_on_stmt_, "UPDATE _duplex_apply SET active = 1 WHERE id = 1"));
      DUPLEX_RETURN_IF_ERROR(on->Run().WithContext(Where()));
      any = true;
    }
    // Units: the contiguous ops of one source transaction (P7).
    for (size_t begin = 0, end = 0; begin < batch.ops.size(); begin = end) {
      end = TxnEnd(batch.ops, begin);
      if (!isolate_txns) {
        DUPLEX_RETURN_IF_ERROR(ApplyUnit(batch, begin, end, &result));
        continue;
      }
      DUPLEX_RETURN_IF_ERROR(db_.Exec("SAVEPOINT duplex_txn").WithContext(Where()));
      ApplyResult unit;
      Status st = ApplyUnit(batch, begin, end, &unit);
      if (!st.ok() && !st.IsInvalidArgument()) return st;  // the transaction rolls back
      std::string reason;
      if (!st.ok()) {
        reason = st.message();
      } else if (DeferredFkViolation()) {
        // The unit leaves a row without its parent (or a parent deleted under its children):
        // SQLite would refuse the COMMIT of everything.
        reason = Where() + ": " + FkViolations();
      }
      if (!reason.empty()) {
        DUPLEX_RETURN_IF_ERROR(db_.Exec("ROLLBACK TO duplex_txn").WithContext(Where()));
        DUPLEX_RETURN_IF_ERROR(db_.Exec("RELEASE duplex_txn").WithContext(Where()));
        FailedOp failed{batch.id, batch.ops[begin].txn, {}, std::move(reason)};
        failed.ops.assign(batch.ops.begin() + static_cast<std::ptrdiff_t>(begin),
                          batch.ops.begin() + static_cast<std::ptrdiff_t>(end));
        result.failed.push_back(std::move(failed));
        continue;
      }
      DUPLEX_RETURN_IF_ERROR(db_.Exec("RELEASE duplex_txn").WithContext(Where()));
      result.applied += unit.applied;
      result.rejected += unit.rejected;
    }
    last = batch.id;
  }
  if (!any) return result;  // nothing new: the transaction rolls back, nothing written

  // One marker row per apply transaction: what this endpoint has now observed (DESIGN §4).
  static const std::string kMarkerSql =
      std::string("INSERT INTO _duplex_changelog(tbl, op, apply_id, at) VALUES('', 'M', ?1, ") +
      kNowMs + ")";
  DUPLEX_ASSIGN_OR_RETURN(Stmt * marker, Prepared(marker_stmt_, kMarkerSql.c_str()));
  marker->Reset().Bind(1, last);
  DUPLEX_RETURN_IF_ERROR(marker->Run().WithContext(Where()));
  DUPLEX_ASSIGN_OR_RETURN(Stmt * set_applied,
                          Prepared(set_applied_stmt_,
                                   "INSERT INTO _duplex_applied(id, apply_id) VALUES(1, ?1) "
                                   "ON CONFLICT(id) DO UPDATE SET apply_id = excluded.apply_id"));
  set_applied->Reset().Bind(1, last);
  DUPLEX_RETURN_IF_ERROR(set_applied->Run().WithContext(Where()));
  DUPLEX_ASSIGN_OR_RETURN(
      Stmt * off, Prepared(apply_off_stmt_, "UPDATE _duplex_apply SET active = 0 WHERE id = 1"));
  DUPLEX_RETURN_IF_ERROR(off->Run().WithContext(Where()));
  // COMMIT would fail on the same check, with a message that names nothing.
  if (DeferredFkViolation()) return Status::InvalidArgument(Where() + ": " + FkViolations());
  DUPLEX_RETURN_IF_ERROR(txn->Commit().WithContext(Where()));
  own_commit_ = true;  // the marker must be captured, and data_version ignores our commits
  return result;
}

}  // namespace duplex::sqlite
