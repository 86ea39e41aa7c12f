#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/record_state.h"
#include "duplex/result.h"
#include "store/store_db.h"

namespace duplex {

// A record's parents: the records (each named RecordKey::ToString, "collection\nkey text")
// that `state`, a record of `collection`, refers to.
using ParentsOf =
    std::function<std::vector<std::string>(const std::string& collection, const RecordState&)>;

// The index of references between live records (DESIGN §4, A delete against a new reference),
// each named RecordKey::ToString ("collection\nkey text"): which children refer to a parent.
//   refs(parent, child, PK(parent, child)),  meta 'refs_signature'
// Every call joins the transaction open on the database, if any.
class RefIndex {
 public:
  explicit RefIndex(StoreDb& db) : db_(db) {}

  Status Add(const std::string& parent, const std::string& child);
  Status Remove(const std::string& parent, const std::string& child);
  // The children of `parent`, in order.
  Result<std::vector<std::string>> ChildrenOf(const std::string& parent);
  // Rebuilds the index from the live records of `collections` (`parents_of` gives a record's
  // parents) unless it was built for the same `signature` (the references in the config), in
  // one transaction.
  Status Rebuild(const std::string& signature, const std::vector<std::string>& collections,
                 const ParentsOf& parents_of);

 private:
  StoreDb& db_;
};

}  // namespace duplex
