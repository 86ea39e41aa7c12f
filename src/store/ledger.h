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
//   ledger(endpoint, collection, key, field, value, apply_id), PK(endpoint, collection, key, field)
// Written before an apply reaches the endpoint (so an echo captured after a crash still finds
// it), an entry is consumed when capture shows its value there. Only the latest write of a
// field counts: a later one replaces the entry.
class Ledger {
 public:
  explicit Ledger(StoreDb& db) : db_(db) {}

  // Records the writes of `ops` to `endpoint` (key texts in `key_texts`, one per op).
  Status Record(const std::string& endpoint, ApplyId apply_id, const std::vector<RowOp>& ops,
                const std::vector<std::string>& key_texts);
  // The entries of one record (field -> entry; empty if none).
  Result<std::map<std::string, LedgerEntry>> Of(const std::string& endpoint,
                                                const std::string& collection,
                                                const std::string& key_text);
  // Consumes entries of one record.
  Status Drop(const std::string& endpoint, const std::string& collection,
              const std::string& key_text, const std::vector<std::string>& fields);
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
