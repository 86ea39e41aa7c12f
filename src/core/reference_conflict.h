#pragma once

#include <string>
#include <vector>

#include "core/record_state.h"
#include "core/resolver.h"
#include "duplex/result.h"

// The cross-record decision (docs/DESIGN.md §4 "A delete against a new reference"): a parent
// deleted on one endpoint while another made a row refer to it, neither having seen the other's
// write. The parent collection's `on_delete_conflict` decides: delete (default) cascades the
// delete to the child and every live row referring to it; keep brings the parent back, with any
// deleted record it refers to. Pure: the records come from a RecordLookup.
namespace duplex {

// Where the decision looks records up. Records are named as RecordKey::ToString names them
// ("customer\n[1]").
class RecordLookup {
 public:
  virtual ~RecordLookup() = default;
  // The state of `record`; nullptr if there is none.
  virtual Result<const RecordState*> Find(const std::string& record) = 0;
  // The records whose values refer to `record` (the index of references).
  virtual Result<std::vector<std::string>> ReferringTo(const std::string& record) = 0;
  // The records a record of `collection` with `values` refers to.
  virtual std::vector<std::string> ReferredBy(const std::string& collection, const Row& values) = 0;
};

// A delete against a new reference: `parent`, deleted by endpoint `deleter`, and `child`, made
// to refer to it (through the child's `fields`) by endpoint `writer`.
struct ReferenceConflict {
  std::string parent, child;
  const CollectionModel* parent_model = nullptr;
  const CollectionModel* child_model = nullptr;
  std::string deleter, writer;
  std::vector<std::string> fields;
};

struct ReferenceDecision {
  bool cascade = true;      // the child goes with the parent; else the parent comes back
  Version deleted;          // the parent's delete
  ConflictRecord conflict;  // for the conflict log: the child's (cascade) or the parent's
  // What the decision settles, breadth first: cascade, the child and every live record that
  // refers to it, at any depth; keep, the parent and every deleted record it refers to, at
  // any depth.
  std::vector<std::string> settled;
};

// Decides `c` by the parent collection's on_delete_conflict. Both records must exist in
// `lookup`. Errors are the lookup's.
Result<ReferenceDecision> DecideReference(const ReferenceConflict& c, RecordLookup& lookup);

// `start` and the records reached from it, breadth first: `down`, the live records referring
// to it, at any depth; else the deleted records it refers to, at any depth.
Result<std::vector<std::string>> Reach(RecordLookup& lookup, const std::string& start, bool down);

// The version a record's reference `fields` got their values with (the write that made it
// refer to its parent).
Version ReferenceVersion(const RecordState& state, const std::vector<std::string>& fields);

}  // namespace duplex
