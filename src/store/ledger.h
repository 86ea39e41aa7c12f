#pragma once

#include <map>
#include <string>
#include <vector>

#include "duplex/change.h"
#include "duplex/result.h"
#include "store/store_db.h"

namespace duplex {

// What duplex wrote to one record of an endpoint without markers, per field: the value and
// the apply that wrote it (docs/DESIGN.md §3.4). The field "" is the row itself: true after
// an insert, null after a delete.
struct LedgerEntry {
  Value value;
  ApplyId apply_id = 0;
};

// The `ledger` table:
//   ledger(endpoint, collection, key, field, apply_id, value), PK(endpoint, collection, key,
//   field, apply_id)
// Written before an apply reaches the endpoint (so an echo captured after a crash still finds
// it). Every write of a field has its entry until capture shows it: the stream shows an older
// write before a newer one, and the older one's value must still be known as duplex's. When
// capture shows one, it and the older entries of that field are consumed.
class Ledger {
 public:
  explicit Ledger(StoreDb& db) : db_(db) {}

  // Records the writes of `ops` to `endpoint` (key texts in `key_texts`, one per op; an op
  // with an empty key text is not recorded).
  Status Record(const std::string& endpoint, ApplyId apply_id, const std::vector<RowOp>& ops,
                const std::vector<std::string>& key_texts);
  // The entries of one record (field -> its entries, oldest first; empty if none).
  Result<std::map<std::string, std::vector<LedgerEntry>>> Of(const std::string& endpoint,
                                                             const std::string& collection,
                                                             const std::string& key_text);
  // Consumes the entries of `field` up to apply id `upto`, for each (field, upto).
  Status Drop(const std::string& endpoint, const std::string& collection,
              const std::string& key_text,
              const std::vector<std::pair<std::string, ApplyId>>& fields);
  // Forgets the entries `op` of apply `apply_id` made (a write that found nothing to do: it
  // will never show). An entry a later op of the same apply overwrote stays.
  Status Forget(const std::string& endpoint, ApplyId apply_id, const RowOp& op,
                const std::string& key_text);
  // Whether `endpoint` has any entry (a cheap check before looking records up).
  Result<bool> Any(const std::string& endpoint);
  Status DeleteAll(const std::string& endpoint);

 private:
  Status Put(const std::string& endpoint, const std::string& collection,
             const std::string& key_text, const std::string& field, const Value& value,
             ApplyId apply_id);

  StoreDb& db_;
};

}  // namespace duplex
