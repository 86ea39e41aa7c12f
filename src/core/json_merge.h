#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/policy.h"
#include "duplex/change.h"

namespace duplex {

// The `merge` policy's three-way merge of JSON documents by path (DESIGN §4). A field value is
// a document if it is a JSON object, as a value ({"a": 1}) or as text holding one ("{\"a\": 1}":
// json/jsonb as the PostgreSQL connector hands them over, TEXT). Anything else (NULL, an array,
// a number, text that is not a JSON object, invalid JSON) is a leaf: no paths to merge.

// A path both sides changed, to different values: decided by the field's nested policy
// (merge_policy).
struct PathConflict {
  std::string path;  // JSON Pointer (RFC 6901) into the document: "/address/city"
  // nullopt: the key is absent there (not in the base; removed by that side; the decision
  // removed it). No result under a manual nested policy (kManual).
  std::optional<Value> base, current, incoming, result;
  enum class Outcome { kCurrent, kIncoming, kMerged, kManual } outcome = Outcome::kCurrent;
};

struct JsonMerge {
  // The merged document, in the form the sides came in: text (PostgreSQL jsonb's layout: keys
  // by length then bytes, ", " and ": ") if either side is text, else a JSON object value.
  Value value;
  std::vector<PathConflict> conflicts;  // in path order
  // A conflict under merge_policy = "manual": `value` is not set, the caller parks the field.
  bool manual = false;
};

// The merge of the documents `current` (the agreed value) and `incoming` (an endpoint's edit)
// against `base`, what the edit started from. Objects merge key by key, recursively; a key
// added, changed or removed on one side only takes that side's value; a path changed on both
// sides to different values goes to `rule`'s nested policy (NestedRule), the versions of the
// two candidates deciding lww and prefer:
//  - lww, prefer, max, min: one side's value (a removed key counts as null for max and min;
//    if the removed side wins, the key is removed);
//  - sum: base + both deltas where all three are numbers; union: UnionMerge of JSON arrays
//    (core/set_merge.h) where both sides are arrays; otherwise lww;
//  - manual: `manual` is set.
// Arrays and scalars are leaves. A base that is no object (NULL) counts as {} when both sides
// are documents. Symmetric in `current` and `incoming` for a symmetric nested policy (P4).
// nullopt if `current` or `incoming` is not a document: the caller decides the whole value by
// the nested policy.
std::optional<JsonMerge> MergeJson(const Value& base, const Candidate& current,
                                   const Candidate& incoming, const FieldPolicy& rule);

// Whether `a` and `b` are equal values, or the same document in two forms (a JSON value and
// text holding it, or two texts that differ in layout only): a connector may hand over one
// column's document either way (SQLite gives the value a JSON function just wrote, and the
// text otherwise).
bool SameDocument(const Value& a, const Value& b);

// `v` as PostgreSQL's jsonb prints it (the text form MergeJson writes).
std::string JsonbText(const Value& v);

}  // namespace duplex
