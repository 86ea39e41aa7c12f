#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "duplex/change.h"
#include "duplex/result.h"
#include "store/store_db.h"

namespace duplex {

// A row write (or a whole batch) a target refused, parked with its reason.
struct DeadLetterRow {
  int64_t id = 0;
  std::string endpoint;  // the target that refused it
  ApplyBatch batch;      // the refused write(s), as planned
  std::string reason;
  double created_at = 0;
  bool retry_requested = false;  // an operator asked for a retry; the engine has not yet
  // Another dead letter this one depends on (it writes a record that one holds, or refers to
  // a row that one inserts): it waits for that one and is retried with it. 0: none.
  int64_t waits_for = 0;

  nlohmann::json ToJson() const;
};

// The dead letters (DESIGN §5, Refused transactions, dead letters, holds): source transactions
// a target refused, parked whole with the target's reason until an operator retries or drops
// them.
//   dead_letters(id PK AUTOINCREMENT, endpoint, batch_id, payload, reason, created_at, retry,
//                waits_for)
// `payload` is the refused writes as MessagePack (EncodeApplyBatch, src/store/codec.h). Every
// call joins the transaction open on the database, if any.
class DeadLetters {
 public:
  explicit DeadLetters(StoreDb& db) : db_(db) {}

  // Parks `batch` (one source transaction's writes); returns the dead letter's id.
  Result<int64_t> Add(const std::string& endpoint, const ApplyBatch& batch,
                      const std::string& reason, double now_ms, int64_t waits_for);
  // The number of dead letters for `endpoint` and their highest id: changes whenever one is
  // added or removed (by the engine or an operator's command).
  Result<std::pair<int64_t, int64_t>> Version(const std::string& endpoint);
  Result<int64_t> Count(const std::string& endpoint);
  // Dead letters, oldest first; only those with a retry requested if `retry_requested_only`.
  Result<std::vector<DeadLetterRow>> List(bool retry_requested_only);
  // NotFound if there is no such dead letter.
  Result<DeadLetterRow> Get(int64_t id);
  // An operator's request: the engine re-plans the dead letter's records, and those of the
  // dead letters waiting for it (NotFound if none).
  Status RequestRetry(int64_t id);
  // The same request for every dead letter; returns how many there are.
  Result<int64_t> RequestRetryAll();
  Status Delete(int64_t id);
  // Rewrites a dead letter's writes (some were taken out of it).
  Status ReplaceOps(int64_t id, const ApplyBatch& batch);

 private:
  StoreDb& db_;
};

}  // namespace duplex
