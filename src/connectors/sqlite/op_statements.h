#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "connectors/sqlite/endpoint.h"
#include "duplex/change.h"
#include "duplex/result.h"
#include "util/sqlite.h"

namespace duplex::sqlite {

// An apply statement for one shape of RowOp, and where each of its parameters comes from.
struct OpStmt {
  enum class Source : uint8_t { kKey, kValues, kExpected };
  Stmt stmt;
  std::vector<std::pair<Source, std::string>> params;  // in bind order: (object, field)
};

// Applier's statement cache: one compare-and-set statement per shape of row write (op,
// collection, the fields of `values` and of `expected`), prepared on first use and kept for the
// life of the connection or until the bindings change (docs/DESIGN.md §4 "Compare-and-set"):
// - insert: `INSERT ... ON CONFLICT(<key>) DO NOTHING` (only if the row is absent); for a mapped
//   key, an insert without the key column, `RETURNING` the key SQLite generated;
// - update: `UPDATE ... SET <values> WHERE <key> IS ? AND <expected> IS ?`;
// - delete: `DELETE ... WHERE <key> IS ? AND <expected> IS ?`.
// Zero rows changed means the compare-and-set failed. Uses the Endpoint's connection.
class OpStatements {
 public:
  explicit OpStatements(Endpoint& ep) : ep_(ep) {}
  OpStatements(const OpStatements&) = delete;
  OpStatements& operator=(const OpStatements&) = delete;

  // The statement for `op` on `t`, owned by the cache (valid until Clear). InvalidArgument,
  // naming table and key, if `values` or `expected` is not an object, a field has no column in
  // `t`, or `op` is not a row write.
  Result<OpStmt*> For(const BoundTable& t, const RowOp& op);
  void Clear() { stmts_.clear(); }

 private:
  Endpoint& ep_;
  std::unordered_map<std::string, OpStmt> stmts_;  // shape key -> statement
  std::string shape_buf_;                          // reused to build shape keys
};

}  // namespace duplex::sqlite
