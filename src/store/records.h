#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/record_state.h"
#include "duplex/result.h"
#include "store/store_db.h"

namespace duplex {

// The `records` table: the RecordState of every record (DESIGN §4), keyed by collection and
// key text, encoded by RecordState::Encode; `live` is 0 for a tombstone. Also the keys a
// rescan read (DESIGN §6, An endpoint that went back in time), in a temporary table of this
// connection. Every call joins the transaction open on the database, if any.
class RecordTable {
 public:
  explicit RecordTable(StoreDb& db) : db_(db) {}

  // Adds to `out` the states of those `keys` of `collection` that are not in it already;
  // absent records stay absent.
  Status Load(const std::string& collection, const std::vector<std::string>& keys,
              std::map<std::string, RecordState>& out);
  Status Save(const std::string& collection, const std::string& key, const RecordState& state);
  Result<int64_t> Count(const std::string& collection, bool live_only);

  // Keys of the live records of `collection` above `after`, in key order, at most `limit`.
  Result<std::vector<std::string>> LiveKeys(const std::string& collection, const std::string& after,
                                            size_t limit);

  // Empties the keys a rescan read (creating their table on first use).
  Status ClearScanned();
  Status AddScanned(const std::string& collection, const std::vector<std::string>& keys);
  // Keys of records of `collection` above `after` that the rescan did not read, in key order,
  // at most `limit`.
  Result<std::vector<std::string>> Unscanned(const std::string& collection,
                                             const std::string& after, size_t limit);

 private:
  StoreDb& db_;
};

}  // namespace duplex
