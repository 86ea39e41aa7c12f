#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "connectors/sqlite/endpoint.h"
#include "connectors/sqlite/key_map.h"
#include "connectors/sqlite/op_statements.h"
#include "duplex/connector.h"
#include "util/sqlite.h"

namespace duplex::sqlite {

// The sink side of the SQLite connector: writes apply batches into the endpoint's file (the
// Connector contract's "Apply"; docs/DESIGN.md §4, §5, §6). One Apply is one Txn (BEGIN IMMEDIATE:
// a busy file fails before anything is written) that
// - skips batches whose id is at most `_duplex_applied` (P6);
// - sets `_duplex_apply.active` so that the triggers leave duplex's rows out (P5); the flag only
//   exists inside the uncommitted transaction, so it can never be left set;
// - writes each row op as a compare-and-set (OpStatements) that also fails when the application
//   changed the row after `seen` (ChangedSince); a failed one changes nothing and is logged as a
//   kRejected ('R') changelog row;
// - translates record ids of mapped keys and references through the KeyMap;
// - checks foreign keys at commit (`defer_foreign_keys`), so row order and cycles inside the
//   transaction do not matter; with isolate_txns, each source transaction is a unit in its own
//   Savepoint, rolled back alone when refused or when it leaves a reference unresolved;
// - ends with one marker row ('M', the last batch id) and `_duplex_applied`.
//
// Statements are prepared once and kept until the bindings change (ForgetTables) or capture is
// uninstalled (ClearStatements). One thread at a time.
class Applier {
 public:
  Applier(Endpoint& ep, KeyMap& key_map) : ep_(ep), key_map_(key_map), op_stmts_(ep) {}
  Applier(const Applier&) = delete;
  Applier& operator=(const Applier&) = delete;

  // The last apply id committed here (`_duplex_applied`); 0 if none or not installed.
  Result<int64_t> AppliedId();
  // Connector::Apply: the counts, or Unavailable (busy, nothing written), Refused (a row
  // refused, nothing written; naming table and key) or IOError.
  Result<ApplyResult> Apply(const std::vector<ApplyBatch>& batches, bool isolate_txns);

  // Drops the statements shaped by the bound tables (after Bind).
  void ForgetTables();
  // Drops every statement (before the bookkeeping tables are dropped).
  void ClearStatements();

 private:
  // Writes ops [begin, end) of `batch` (one source transaction), adding to `counts`.
  // Refused if the endpoint refuses one of them.
  Status ApplyUnit(const ApplyBatch& batch, size_t begin, size_t end, ApplyResult* counts);
  // ApplyOne with record ids translated to this endpoint's keys (KeyMap): the key of a mapped
  // table and mapped_refs fields. Refused for a reference to a record this endpoint
  // does not hold.
  Result<bool> ApplyRow(const BoundTable& t, const RowOp& op);
  // Returns whether the row write took effect (false: compare-and-set rejected it).
  // `generated`: for an insert into a mapped table, receives the key the endpoint generated
  // (JSON text, as the key map holds it).
  Result<bool> ApplyOne(const BoundTable& t, const RowOp& op, std::string* generated = nullptr);
  // Whether the application changed the row of `op` after position `op.seen`: the resolver
  // planned the write without having seen that change, so it must not overwrite it.
  Result<bool> ChangedSince(const BoundTable& t, const RowOp& op);
  // Logs a rejected row write: its key and the row as it is now (kRejected).
  Status LogRejected(const BoundTable& t, const RowOp& op, int64_t apply_id);
  // Whether the open transaction holds a foreign key violation it would fail to commit.
  bool DeferredFkViolation();
  // "FOREIGN KEY constraint failed: table 'orders' key [3] references a missing row of table
  // 'customers'", naming the first few violations.
  std::string FkViolations();

  Endpoint& ep_;
  KeyMap& key_map_;
  OpStatements op_stmts_;
  Stmt applied_stmt_;
  Stmt apply_on_stmt_;
  Stmt apply_off_stmt_;
  Stmt marker_stmt_;
  Stmt set_applied_stmt_;
  std::unordered_map<std::string, Stmt> reject_stmts_;   // table -> kRejected logging statement
  std::unordered_map<std::string, Stmt> changed_stmts_;  // table -> ChangedSince statement
};

}  // namespace duplex::sqlite
