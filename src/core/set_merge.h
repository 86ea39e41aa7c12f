#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "duplex/change.h"

namespace duplex {

// The `union` policy's three-way set merge (DESIGN §4). A field value is read as a set of
// elements in one of these forms, and the merge is written back in the same form:
//  - a JSON array value ([1, "a"]): elements are JSON values;
//  - text holding a JSON array ("[\"a\", \"b\"]": json/jsonb, or TEXT), written back as
//    PostgreSQL's jsonb prints it (", " between elements);
//  - a PostgreSQL array literal ("{a,b,\"c d\"}": text[], int[] as the PostgreSQL connector
//    hands them over), one dimension only;
//  - with a non-empty `separator`, delimited text ("a;b;c", a Salesforce multipicklist); the
//    empty text is the empty set.
// NULL is the empty set in whichever form the other values have. Elements compare by their
// text (JSON elements by their compact JSON text): 1 and "1" differ in a JSON array, as
// they do for the application.

// The merge of `sides` (the values the endpoints hold) against `base`, the value they all
// started from: an element is present if it is in the base and every side kept it, or if
// some side holds it and the base did not. Order: the base's surviving elements in the base's
// order, then the added elements in their text's byte order, each once. Symmetric in the
// sides by construction, so merging them one pair at a time, in any order, against the same
// base gives the same value (P4). NULL if every value is NULL; nullopt if a value is not a
// set, or the values are sets of different forms (the caller falls back to lww).
std::optional<Value> UnionMerge(const Value& base, const std::vector<Value>& sides,
                                std::string_view separator);

// An edit `edited` of the set `held`, with the elements it removed that `current` holds again
// after one of `unseen` (values written to the editing endpoint after `held`, which it had not
// seen) lacked them, put back: another endpoint removed such an element and added it back
// concurrently with this removal, and an addition concurrent with a removal stands. `edited`
// itself if there are none; nullopt if a value is not a set.
std::optional<Value> KeepReAdded(const Value& held, const Value& edited, const Value& current,
                                 const std::vector<Value>& unseen, std::string_view separator);

// Whether `v` reads as a set under `separator` (above); NULL does.
bool IsSetValue(const Value& v, std::string_view separator);

}  // namespace duplex
