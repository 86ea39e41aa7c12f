#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "duplex/change.h"
#include "duplex/result.h"
#include "duplex/status.h"

namespace duplex::sqlite {

// A prepared statement (RAII over sqlite3_stmt). Bind indexes are 1-based, column indexes
// 0-based, as in SQLite's C API.
class Stmt {
 public:
  Stmt() = default;
  explicit Stmt(sqlite3_stmt* stmt) : stmt_(stmt) {}
  Stmt(Stmt&& other) noexcept : stmt_(std::exchange(other.stmt_, nullptr)) {}
  Stmt& operator=(Stmt&& other) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt();

  bool valid() const { return stmt_ != nullptr; }
  sqlite3_stmt* get() const { return stmt_; }

  Stmt& Reset();  // resets and clears bindings
  Stmt& Bind(int i, int64_t v);
  Stmt& Bind(int i, int v) { return Bind(i, static_cast<int64_t>(v)); }
  Stmt& Bind(int i, double v);
  Stmt& Bind(int i, std::string_view v);
  Stmt& Bind(int i, const char* v) { return Bind(i, std::string_view(v)); }
  Stmt& Bind(int i, const std::string& v) { return Bind(i, std::string_view(v)); }
  Stmt& BindBlob(int i, const void* data, size_t n);
  Stmt& BindNull(int i);
  // Binds a duplex Value: null, integer, float, string or {"$blob": hex}; other JSON (arrays,
  // objects, booleans) is bound as its JSON text (booleans as 0/1).
  Stmt& BindValue(int i, const Value& v);

  // Steps once. Returns true for a row, false when done; the status on error.
  Result<bool> Step();
  // Steps to completion, ignoring rows.
  Status Run();

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const { return sqlite3_column_double(stmt_, col); }
  std::string Text(int col) const;
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  bool IsInteger(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_INTEGER; }
  std::string Blob(int col) const;
  // Reads a column as a duplex Value (blobs become {"$blob": hex}).
  Value ColumnValue(int col) const;

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// One SQLite connection. Not thread-safe; one owner at a time.
class Db {
 public:
  Db() = default;
  Db(Db&&) noexcept;
  Db& operator=(Db&&) noexcept;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  // Opens (creating if `create`) the file, sets WAL mode, a busy timeout and synchronous=NORMAL.
  // Unavailable if the file cannot be opened; NotFound if it does not exist and !create.
  static Result<Db> Open(const std::string& path, bool create, int busy_timeout_ms = 5000);

  sqlite3* get() const { return db_; }
  const std::string& path() const { return path_; }

  Status Exec(std::string_view sql);
  Result<Stmt> Prepare(std::string_view sql);
  int64_t Changes() const { return sqlite3_changes64(db_); }
  int64_t LastInsertRowid() const { return sqlite3_last_insert_rowid(db_); }

  // The status for the connection's last error, naming `what`.
  Status Error(std::string_view what) const;
  static Status FromCode(int rc, std::string_view what, sqlite3* db);

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

// Quotes an identifier for SQL: "name" with embedded quotes doubled.
std::string QuoteIdent(std::string_view name);
// Quotes a string literal: 'text' with embedded quotes doubled.
std::string QuoteString(std::string_view text);

// A transaction that rolls back unless committed.
class Txn {
 public:
  // Starts with BEGIN IMMEDIATE (takes the write lock now, so a busy database fails here
  // with Unavailable rather than halfway through).
  static Result<Txn> Begin(Db& db, bool immediate = true);
  Txn(Txn&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  Txn& operator=(Txn&&) = delete;
  ~Txn();
  Status Commit();

 private:
  explicit Txn(Db* db) : db_(db) {}
  Db* db_;
};

}  // namespace duplex::sqlite
