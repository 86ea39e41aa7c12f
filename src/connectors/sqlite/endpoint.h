#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "duplex/connector.h"
#include "util/sqlite.h"

namespace duplex::sqlite {

// A bound table with the lookups capture and apply need.
struct BoundTable {
  CollectionBinding binding;
  std::unordered_map<std::string, std::string> column_of_field;
  std::unordered_set<std::string> key_fields;
  std::vector<std::string> columns;  // captured columns, in binding order
  // Columns captured as record ids (key_mode = "mapped"), each with the endpoint table whose
  // key map translates it: a mapped key column (its own table) and the columns of mapped_refs
  // fields (the referenced collection's table).
  std::unordered_map<std::string, std::string> record_table_of_column;
  // mapped_refs: field -> the referenced table (index in Endpoint::tables()).
  std::vector<std::pair<std::string, size_t>> ref_fields;
};

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

// The SQLite file of one endpoint as every part of the connector sees it (docs/DESIGN.md §3): the
// open connection, the endpoint's name for messages, its tables (Describe) and the bound ones
// (Bind), and whether this connection committed something since the last Poll. SqliteConnector owns
// one and hands it by reference to its parts (Installer, ChangelogCapture, Applier, KeyMap), which
// it declares after it: their prepared statements are finalized before the connection closes.
//
// Not thread-safe: one engine thread at a time (the Connector contract).
class Endpoint {
 public:
  // `name` is the endpoint's name in the config (used in every message); `path` the SQLite file.
  Endpoint(std::string name, std::string path);
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  // A short busy timeout: the engine is one thread, and waiting long on one application's write
  // lock would stall every other endpoint. Busy is Unavailable; the engine retries.
  static constexpr int kBusyTimeoutMs = 250;

  const std::string& name() const { return name_; }
  Db& db() { return db_; }
  sqlite3* handle() const { return db_.get(); }

  // Opens the existing file (Unavailable if it does not exist or cannot be opened), with
  // foreign keys on and recursive triggers off. Ok at once if already open.
  Status Open();
  // InvalidArgument unless Open() succeeded.
  Status CheckOpen() const;
  // "endpoint 'crm' (/path/crm.db)" and "..., table 'customers'", the prefix of every message.
  std::string Where() const;
  std::string Where(const std::string& table) const;
  // InvalidArgument: change capture is not installed.
  Status NotInstalled() const;
  // Prepares `sql` into `slot` unless already prepared.
  Result<Stmt*> Prepared(Stmt& slot, const char* sql);
  // Whether the four bookkeeping tables the changelog needs exist.
  Result<bool> BookkeepingExists();

  // The table's columns, primary key, generated key and foreign keys (Connector::Describe).
  Result<TableInfo> Describe(const std::string& table);

  // Replaces the bound tables. InvalidArgument for an inconsistent binding (ValidateBindings,
  // and mapped references to a collection that is not bound here with a mapped key); the old
  // ones are kept then.
  Status Bind(std::vector<CollectionBinding> bindings);
  const std::vector<BoundTable>& tables() const { return tables_; }
  const BoundTable& table(size_t index) const { return tables_[index]; }
  // The bound table of an endpoint table or of a collection; nullptr if none.
  const BoundTable* ByTable(const std::string& table) const;
  const BoundTable* ByCollection(const std::string& collection) const;

  // PRAGMA data_version moves only for other connections' commits: the parts note their own
  // (Install, Uninstall, Ack, Apply) here, and Poll takes the note.
  void NoteOwnCommit() { own_commit_ = true; }
  bool TakeOwnCommit() { return std::exchange(own_commit_, false); }

 private:
  std::string name_;
  std::string path_;
  Db db_;
  std::vector<BoundTable> tables_;
  std::unordered_map<std::string, size_t> by_table_;       // endpoint table -> tables_ index
  std::unordered_map<std::string, size_t> by_collection_;  // collection -> tables_ index
  bool own_commit_ = false;
};

}  // namespace duplex::sqlite
