#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "duplex/ids.h"
#include "duplex/result.h"
#include "util/sqlite.h"

namespace duplex {

// The one database handle of the embedded state store (DESIGN §2, §6): the SQLite connection
// of the state file and its prepared statements. Every part of the store (journal, outbox,
// conflict log, ...) works over the same StoreDb, so one sqlite::Txn on it covers them all:
// that is how each arrow of DESIGN §2 is one transaction. Not thread-safe; one owner at a time.
class StoreDb {
 public:
  explicit StoreDb(sqlite::Db db) : db_(std::move(db)) {}
  StoreDb(const StoreDb&) = delete;
  StoreDb& operator=(const StoreDb&) = delete;

  sqlite::Db& db() { return db_; }

  // The statement for `sql`, prepared on first use and reset on every later one. `sql` must be
  // a string literal: the cache is keyed by its address.
  Result<sqlite::Stmt*> Cached(const char* sql);
  // The first column of the first row of `s` (0 if none); resets `s`.
  static Result<int64_t> ScalarInt(sqlite::Stmt& s);
  // The first column of every row of `s`, as text; resets `s`.
  static Result<std::vector<std::string>> Texts(sqlite::Stmt& s);

  // Positions are stored as blobs of their bytes (SQLite orders blobs bytewise, as Position
  // does). State files before version 7 hold integers (Position::FromInt's numbers): read
  // either.
  static void BindPosition(sqlite::Stmt& s, int i, const Position& p) {
    s.BindBlob(i, p.bytes().data(), p.bytes().size());
  }
  static Position ColumnPosition(const sqlite::Stmt& s, int col) {
    if (s.IsNull(col)) return Position();
    if (s.IsInteger(col)) return Position::FromInt(s.Int(col));
    return Position::FromBytes(s.Blob(col));
  }

 private:
  sqlite::Db db_;
  std::map<const char*, sqlite::Stmt> stmts_;  // destroyed before db_
};

}  // namespace duplex
