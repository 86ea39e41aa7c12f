#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "connectors/sqlite/applier.h"
#include "connectors/sqlite/changelog_capture.h"
#include "connectors/sqlite/endpoint.h"
#include "connectors/sqlite/installer.h"
#include "connectors/sqlite/key_map.h"
#include "duplex/connector.h"

namespace duplex::sqlite {

// One SQLite file as a duplex endpoint (docs/DESIGN.md §3), captured by triggers (CDC-FACTS Q5).
//
// Install() creates, in the endpoint's own file, a changelog (`_duplex_changelog`, positions are
// its `seq`), a one-row flag (`_duplex_apply`) that the triggers test so that duplex's own writes
// are not logged (P5), the last applied batch id (`_duplex_applied`, written in the same
// transaction as the rows: P6) and the list of captured tables (`_duplex_captured`). Every bound
// table gets three AFTER triggers that log the bound columns as JSON objects. Apply() replaces
// the rows of its transaction with one marker row ('M', the last batch id): the causal marker of
// docs/DESIGN.md §4. Applications keep writing the file from other processes throughout.
//
// Relationships (docs/DESIGN.md §5): duplex's connection enforces foreign keys, deferred to the end
// of each apply transaction (or source transaction, with isolate_txns). Tables with a mapped key
// keep a key map (`_duplex_keymap`: record id -> native key) in the same file, maintained by
// Apply for duplex's inserts and by the triggers for the applications' inserts and deletes.
//
// The work is done by parts, each in its own file, that share one Endpoint (the connection, the
// endpoint's name for messages, the bound tables):
//   endpoint.h           Endpoint: Open, Describe, Bind; what the parts share
//   installer.h          Installer: bookkeeping tables, triggers, snapshot; install/uninstall
//   changelog_capture.h  ChangelogCapture: Poll, Capture, Backlog, Ack, CheckRestored, Scan
//   applier.h            Applier: Apply and AppliedId (op_statements.h: its statement cache)
//   key_map.h            KeyMap: record ids <-> this file's keys (and the triggers' SQL for it)
//   images.h             how rows are spelled in the changelog, written and read back
// They are separate objects rather than member functions of this class spread over files
// because each owns state the others never touch (its prepared statements, Poll's version, the
// acked stamp), so each reads on its own; what they share is only the Endpoint. This class
// keeps the Connector interface and forwards each call to its part.
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

  const std::string& name() const override { return ep_.name(); }
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
  Result<ChangeBatch> Capture(const Position& from, size_t max_changes) override;
  Result<int64_t> Backlog(const Position& from) override;
  // Prunes the changelog up to `upto`, in transactions of at most kAckMaxRows rows (oldest
  // first), to keep each hold of the write lock short. Unavailable if the database is busy
  // (what was pruned stays pruned; call again).
  // Also records `upto` in `_duplex_acked` (when it moved).
  Status Ack(const Position& upto) override;
  // Restored if `_duplex_acked` is behind `acked`, the changelog's AUTOINCREMENT counter behind
  // `captured`, or the bookkeeping tables are gone; capture resumes after `_duplex_acked`.
  Result<RestoreCheck> CheckRestored(const Position& captured, const Position& acked) override;
  // In one read transaction (WAL: the applications keep writing).
  Status Scan(const std::string& collection, size_t max_rows,
              const std::function<Status(std::vector<Change>&&)>& visit) override;
  Result<int64_t> AppliedId() override;
  Result<ApplyResult> Apply(const std::vector<ApplyBatch>& batches,
                            bool isolate_txns = false) override;

  static constexpr int64_t kAckMaxRows = ChangelogCapture::kAckMaxRows;
  static constexpr int kBusyTimeoutMs = Endpoint::kBusyTimeoutMs;

 private:
  // Drops the prepared statements of every part (before Uninstall drops the tables they name).
  void ClearStatements();

  // Declared first: the parts' statements are finalized before its connection closes.
  Endpoint ep_;
  KeyMap key_map_;
  Installer installer_;
  ChangelogCapture capture_;
  Applier applier_;
};

}  // namespace duplex::sqlite
