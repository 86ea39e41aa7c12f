#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "connectors/postgres/capture.h"
#include "connectors/postgres/key_map.h"

namespace duplex::pg {

// Apply (README "Echo, marker, exactly once", "Causal compare-and-set", "Relationships"): the
// engine's batches in one transaction on the apply connection, with prepared statements per
// shape of write, compare-and-set on `expected` and `seen`, the capture mode's echo marker and
// applied id, rejected writes reported through the capture, and with `isolate_txns` each source
// transaction in a savepoint. One engine thread at a time.
class Applier {
 public:
  Applier(PgEndpoint& ep, KeyMap& keys, PgCapture& capture)
      : ep_(ep), keys_(keys), capture_(capture) {}
  Applier(const Applier&) = delete;
  Applier& operator=(const Applier&) = delete;

  // Connector::Apply, without the reconnecting retry.
  Result<ApplyResult> Apply(const std::vector<ApplyBatch>& batches, bool isolate_txns);
  // Forgets the prepared statements (the tables were bound again).
  void ClearStatements() { stmts_.clear(); }
  // Closes the apply session and forgets its prepared statements.
  void Reset() {
    ep_.apply.Close();
    stmts_.clear();
  }

 private:
  // One prepared apply statement.
  struct OpStmt {
    std::string name;
    enum class Source : uint8_t { kKey, kValues, kExpected, kSeen };
    std::vector<std::pair<Source, std::string>> params;
  };

  // The prepared statement for `op`'s shape (op, collection, value and expected fields).
  Result<OpStmt*> Statement(const BoundTable& t, const RowOp& op);
  // One attempt: `stale` ops are left out (rejected); a write found stale after the writes adds
  // to `stale` and rolls back (the result is then empty: the caller runs it again).
  Result<ApplyResult> ApplyOnce(const std::vector<const ApplyBatch*>& todo,
                                const std::vector<std::vector<std::string>>& native_keys,
                                bool isolate_txns, std::set<std::pair<size_t, size_t>>* stale);

  PgEndpoint& ep_;
  KeyMap& keys_;
  PgCapture& capture_;
  std::unordered_map<std::string, OpStmt> stmts_;
  int stmt_counter_ = 0;
};

}  // namespace duplex::pg
