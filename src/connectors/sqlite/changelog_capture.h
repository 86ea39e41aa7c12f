#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "connectors/sqlite/endpoint.h"
#include "duplex/connector.h"
#include "util/sqlite.h"

namespace duplex::sqlite {

// The source side of the SQLite connector: reads `_duplex_changelog` (written by the triggers
// Installer creates and by Applier's markers and kRejected rows) as the endpoint's change stream
// (docs/DESIGN.md §3, §6). A position is a changelog `seq`; SQLite has a single writer, so `seq`
// order is commit order and there is no gap to poll around.
//
// Each read statement is prepared once and reset after every use, so it does not pin the WAL.
// One thread at a time; the SqliteConnector calls reach here after Open().
class ChangelogCapture {
 public:
  explicit ChangelogCapture(Endpoint& ep) : ep_(ep) {}
  ChangelogCapture(const ChangelogCapture&) = delete;
  ChangelogCapture& operator=(const ChangelogCapture&) = delete;

  // Rows pruned by one Ack transaction at most.
  static constexpr int64_t kAckMaxRows = 50000;

  // PRAGMA data_version: true on the first call, after another connection committed, and after
  // this connection's own Install/Apply/Ack committed something (Endpoint::NoteOwnCommit).
  Result<bool> Poll();
  // Changelog rows after `from`, at most `max_changes` changes. A changelog transaction larger
  // than `max_changes` is cut (the changelog does not record transaction boundaries). A
  // key-changing UPDATE becomes a kDelete and a kInsert at the same position, never split.
  Result<ChangeBatch> Capture(const Position& from, size_t max_changes);
  // How many changelog rows lie after `from` (0 if capture is not installed).
  Result<int64_t> Backlog(const Position& from);
  // Prunes the changelog up to `upto`, in transactions of at most kAckMaxRows rows (oldest
  // first), and records `upto` in `_duplex_acked` (when it moved). Unavailable if the database
  // is busy (what was pruned stays pruned; call again).
  Status Ack(const Position& upto);
  // Restored if `_duplex_acked` is behind `acked`, the changelog's AUTOINCREMENT counter behind
  // `captured`, or the bookkeeping tables are gone; capture resumes after `_duplex_acked`.
  Result<RestoreCheck> CheckRestored(const Position& captured, const Position& acked);
  // Every row of `collection` as a kPresent change, in chunks of `max_rows`, in one read
  // statement (WAL: the applications keep writing).
  Status Scan(const std::string& collection, size_t max_rows,
              const std::function<Status(std::vector<Change>&&)>& visit);

  // Drops every statement (before the bookkeeping tables are dropped).
  void ClearStatements();

 private:
  // The changelog image in column `col` of the current capture row, as a JSON object.
  Result<Value> ParseImage(const BoundTable& t, int64_t seq, int col);

  Endpoint& ep_;
  bool polled_ = false;
  int64_t data_version_ = 0;
  Stmt poll_stmt_;
  Stmt capture_stmt_;
  Stmt backlog_stmt_;
  Stmt ack_stmt_;
  Stmt ack_stamp_stmt_;
  int64_t acked_stamp_ = -1;  // what _duplex_acked holds, as far as this connection wrote it
};

}  // namespace duplex::sqlite
