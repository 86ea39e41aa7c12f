#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "duplex/change.h"
#include "duplex/result.h"
#include "store/store_db.h"

namespace duplex {

// The outbox (DESIGN §2): planned apply batches not yet applied, per target, keyed by apply id.
//   outbox(id PK = apply id, endpoint, payload, rows, seen)
// `payload` is the batch as MessagePack (EncodeApplyBatch, src/store/codec.h), `rows` its
// number of writes, `seen` the lowest RowOp::seen of its writes (DESIGN §4, Compare-and-set).
// Every call joins the transaction open on the database, if any.
class Outbox {
 public:
  explicit Outbox(StoreDb& db) : db_(db) {}

  Status Add(const std::string& endpoint, const ApplyBatch& batch);
  // Planned batches for `endpoint` in id order, at least one and then up to `max_rows` rows.
  // Batches found in `cache` (by id) are moved from it instead of being decoded.
  Result<std::vector<ApplyBatch>> Read(const std::string& endpoint, size_t max_rows,
                                       std::map<int64_t, ApplyBatch>* cache);
  // Removes the batches for `endpoint` up to apply id `upto_id` (applied).
  Status Delete(const std::string& endpoint, int64_t upto_id);
  // Removes every batch planned for `endpoint`.
  Status DeleteAll(const std::string& endpoint);
  // One planned batch (nullopt if it is not in the outbox: applied, or parked).
  Result<std::optional<ApplyBatch>> ReadBatch(const std::string& endpoint, int64_t id);
  // Ids of the batches planned for `endpoint` in (after, upto], ascending.
  Result<std::vector<int64_t>> Ids(const std::string& endpoint, int64_t after, int64_t upto);
  // Rewrites a planned batch (the outbox batch with its id), or removes it if it has no ops.
  Status Replace(const std::string& endpoint, const ApplyBatch& batch);
  Result<int64_t> Rows(const std::string& endpoint);
  // The lowest RowOp::seen of the batches waiting for `endpoint` (nullopt if none).
  Result<std::optional<Position>> MinSeen(const std::string& endpoint);

 private:
  StoreDb& db_;
};

}  // namespace duplex
