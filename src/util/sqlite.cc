#include "util/sqlite.h"

#include <utility>

#include "util/json_value.h"

namespace duplex::sqlite {

Stmt& Stmt::operator=(Stmt&& other) noexcept {
  if (this != &other) {
    if (stmt_) sqlite3_finalize(stmt_);
    stmt_ = std::exchange(other.stmt_, nullptr);
  }
  return *this;
}

Stmt::~Stmt() {
  if (stmt_) sqlite3_finalize(stmt_);
}

Stmt& Stmt::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  return *this;
}

Stmt& Stmt::Bind(int i, int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}

Stmt& Stmt::Bind(int i, double v) {
  sqlite3_bind_double(stmt_, i, v);
  return *this;
}

Stmt& Stmt::Bind(int i, std::string_view v) {
  sqlite3_bind_text64(stmt_, i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  return *this;
}

Stmt& Stmt::BindBlob(int i, const void* data, size_t n) {
  sqlite3_bind_blob64(stmt_, i, data, n, SQLITE_TRANSIENT);
  return *this;
}

Stmt& Stmt::BindNull(int i) {
  sqlite3_bind_null(stmt_, i);
  return *this;
}

Stmt& Stmt::BindValue(int i, const Value& v) {
  switch (v.type()) {
    case Value::value_t::null:
    case Value::value_t::discarded:
      return BindNull(i);
    case Value::value_t::boolean:
      return Bind(i, static_cast<int64_t>(v.get<bool>() ? 1 : 0));
    case Value::value_t::number_integer:
      return Bind(i, v.get<int64_t>());
    case Value::value_t::number_unsigned:
      return Bind(i, static_cast<int64_t>(v.get<uint64_t>()));
    case Value::value_t::number_float:
      return Bind(i, v.get<double>());
    case Value::value_t::string:
      return Bind(i, v.get_ref<const std::string&>());
    case Value::value_t::object:
      if (IsBlob(v)) {
        std::string bytes = BlobBytes(v);
        return BindBlob(i, bytes.data(), bytes.size());
      }
      return Bind(i, v.dump());
    default:
      return Bind(i, v.dump());
  }
}

Result<bool> Stmt::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  sqlite3* db = sqlite3_db_handle(stmt_);
  Status st = Db::FromCode(rc, sqlite3_sql(stmt_), db);
  sqlite3_reset(stmt_);
  return st;
}

Status Stmt::Run() {
  while (true) {
    Result<bool> r = Step();
    if (!r.ok()) return r.status();
    if (!*r) break;
  }
  sqlite3_reset(stmt_);
  return Status::Ok();
}

std::string Stmt::Text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  if (!p) return {};
  return std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(stmt_, col));
}

std::string Stmt::Blob(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  if (!p) return {};
  return std::string(static_cast<const char*>(p), sqlite3_column_bytes(stmt_, col));
}

Value Stmt::ColumnValue(int col) const {
  switch (sqlite3_column_type(stmt_, col)) {
    case SQLITE_INTEGER:
      return Value(Int(col));
    case SQLITE_FLOAT:
      return Value(Double(col));
    case SQLITE_TEXT:
      return Value(Text(col));
    case SQLITE_BLOB:
      return MakeBlob(Blob(col));
    default:
      return Value(nullptr);
  }
}

Db::Db(Db&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)), path_(std::move(other.path_)) {}

Db& Db::operator=(Db&& other) noexcept {
  if (this != &other) {
    if (db_) sqlite3_close_v2(db_);
    db_ = std::exchange(other.db_, nullptr);
    path_ = std::move(other.path_);
  }
  return *this;
}

Db::~Db() {
  if (db_) sqlite3_close_v2(db_);
}

Result<Db> Db::Open(const std::string& path, bool create, int busy_timeout_ms) {
  Db db;
  db.path_ = path;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (create) flags |= SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path.c_str(), &db.db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db.db_ ? sqlite3_errmsg(db.db_) : sqlite3_errstr(rc);
    if (!create && rc == SQLITE_CANTOPEN) {
      return Status::NotFound("cannot open SQLite file '" + path + "': " + msg);
    }
    return Status::Unavailable("cannot open SQLite file '" + path + "': " + msg);
  }
  sqlite3_busy_timeout(db.db_, busy_timeout_ms);
  sqlite3_extended_result_codes(db.db_, 1);
  // WAL lets the applications keep reading while duplex writes and the reverse; NORMAL
  // synchronous is durable against a killed process (not against power loss) in WAL mode.
  DUPLEX_RETURN_IF_ERROR(db.Exec("PRAGMA journal_mode=WAL").WithContext(path));
  DUPLEX_RETURN_IF_ERROR(db.Exec("PRAGMA synchronous=NORMAL").WithContext(path));
  return db;
}

Status Db::Exec(std::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    int primary = rc & 0xff;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
      return Status::Unavailable(path_ + ": database is busy (" + msg + ")");
    }
    return Status::IOError(path_ + ": " + msg + " (in: " + s.substr(0, 200) + ")");
  }
  return Status::Ok();
}

Result<Stmt> Db::Prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return FromCode(rc, sql, db_);
  return Stmt(stmt);
}

Status Db::Error(std::string_view what) const { return FromCode(sqlite3_errcode(db_), what, db_); }

Status Db::FromCode(int rc, std::string_view what, sqlite3* db) {
  std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const char* file = db ? sqlite3_db_filename(db, "main") : nullptr;
  std::string where = file && *file ? std::string(file) + ": " : std::string();
  int primary = rc & 0xff;
  std::string detail = where + msg + " (in: " + std::string(what.substr(0, 200)) + ")";
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) return Status::Unavailable(detail);
  if (primary == SQLITE_CONSTRAINT || primary == SQLITE_MISMATCH || primary == SQLITE_ERROR) {
    return Status::InvalidArgument(detail);
  }
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) return Status::Corruption(detail);
  if (primary == SQLITE_CANTOPEN) return Status::Unavailable(detail);
  return Status::IOError(detail);
}

std::string QuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string QuoteString(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  out += '\'';
  return out;
}

Result<Txn> Txn::Begin(Db& db, bool immediate) {
  DUPLEX_RETURN_IF_ERROR(db.Exec(immediate ? "BEGIN IMMEDIATE" : "BEGIN"));
  return Txn(&db);
}

Txn::~Txn() {
  if (db_) (void)db_->Exec("ROLLBACK");
}

Status Txn::Commit() {
  Db* db = std::exchange(db_, nullptr);
  Status st = db->Exec("COMMIT");
  if (!st.ok()) (void)db->Exec("ROLLBACK");
  return st;
}

}  // namespace duplex::sqlite
