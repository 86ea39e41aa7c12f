#pragma once

#include <string>

#include "connectors/postgres/pg_conn.h"

namespace duplex::pg {

// One transaction on `conn` (RAII): Begin() opens it, Commit() commits it, and leaving the scope
// without a successful Commit() rolls it back (the ROLLBACK's own error is ignored: the
// connection may be the reason). A Begin() that failed leaves nothing to roll back.
//
//   TxnGuard txn(db);
//   DUPLEX_RETURN_IF_ERROR(txn.Begin());
//   DUPLEX_RETURN_IF_ERROR(db.Run("..."));  // an error returns, and the guard rolls back
//   DUPLEX_RETURN_IF_ERROR(txn.Commit());
class TxnGuard {
 public:
  explicit TxnGuard(Conn& conn) : conn_(conn) {}
  ~TxnGuard() {
    if (open_) (void)conn_.Run("ROLLBACK");
  }
  TxnGuard(const TxnGuard&) = delete;
  TxnGuard& operator=(const TxnGuard&) = delete;

  // Runs `begin` ("BEGIN", or BEGIN followed by statements of the transaction's own settings).
  Status Begin(const std::string& begin = "BEGIN") {
    Status st = conn_.Run(begin);
    open_ = st.ok();
    return st;
  }
  // COMMIT. A failed commit is rolled back on scope exit like any other failure.
  Status Commit() {
    Status st = conn_.Run("COMMIT");
    if (st.ok()) open_ = false;
    return st;
  }

 private:
  Conn& conn_;
  bool open_ = false;
};

}  // namespace duplex::pg
