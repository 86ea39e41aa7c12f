#pragma once

#include <cstddef>
#include <string>
#include <unordered_map>
#include <vector>

#include "connectors/postgres/endpoint.h"

namespace duplex::pg {

// Mapped keys (README "Mapped keys"): record ids <-> the native keys the endpoint generates.
// The key map table `_duplex_<tag>_keymap` and its lookup function `_duplex_<tag>_native` on the
// server, written by apply in the row's transaction; a cache of what capture translated.
class KeyMap {
 public:
  explicit KeyMap(PgEndpoint& ep) : ep_(ep) {}
  KeyMap(const KeyMap&) = delete;
  KeyMap& operator=(const KeyMap&) = delete;

  // After the tables are bound: which fields hold record ids (BoundTable::record_table).
  // InvalidArgument for a mapped_refs field not mapped, or naming a collection not bound here
  // with a mapped key. Forgets the cache.
  Status Bind();
  // Forgets the cache (the key map is gone: what it said no longer holds).
  void Reset();
  // Creates the key map table and the lookup function (Install), on `db`.
  Status Install();

  // `ph` (a placeholder) as a value of `field`'s column: a record id becomes the native key
  // (key map, else the endpoint's own record), NULL if there is none; with `refuse`, an unknown
  // record is an error instead (SQLSTATE 23503) naming the field, its collection and the record.
  std::string ValueSql(const BoundTable& t, const std::string& field, const std::string& ph,
                       bool refuse) const;
  // Replaces native keys in the key, mapped key and mapped_refs fields of captured changes by
  // record ids: one key map query per table for what the cache lacks.
  Status PresentRecords(std::vector<Change>* changes);
  // Per op of `todo`, the text of its key as captured (native), on the apply connection.
  Result<std::vector<std::vector<std::string>>> NativeKeyTexts(
      const std::vector<const ApplyBatch*>& todo);
  // The row of `key` as a text image (column -> text or null), null if there is none. `records`:
  // the key is as duplex sends it (record ids), else native. On the apply connection if open.
  Result<Value> ReadImage(const BoundTable& t, const Row& key, bool records);

 private:
  PgEndpoint& ep_;
  bool any_records_ = false;  // some bound field holds record ids
  // Per table, native key (JSON) -> record id, as captured. Entries never change: PostgreSQL
  // does not reuse generated keys, and a key map row is committed with its row.
  std::unordered_map<std::string, std::unordered_map<std::string, std::string>> records_;
  size_t records_cached_ = 0;
};

}  // namespace duplex::pg
