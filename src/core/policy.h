#pragma once

#include <string>

#include "config/config.h"
#include "core/record_state.h"

namespace duplex {

// One side of a same-field conflict.
struct Candidate {
  Value value;
  Version version;
};

// Whether `incoming` beats `current` under `rule`. Symmetric by construction: for two
// different candidates exactly one beats the other, whichever is "current", so the outcome
// does not depend on arrival order (P4).
//  - lww: later commit time wins; equal times: the smaller endpoint name wins.
//  - prefer: the preferred endpoint's value wins; between two others, lww.
//  - max / min: the larger / smaller value (CompareValues order); equal values: lww.
//  - sum: lww. The resolver merges sum fields by adding deltas (AddDelta, core/decimal.h) and
//    asks here only when it cannot: a value that is not a number, or no common base.
//  - union: lww, likewise, where the resolver cannot merge the sets (UnionMerge,
//    core/set_merge.h): a value that is not a set, or no common base.
//  - merge: the nested policy (NestedRule), for values that are not both JSON documents
//    (MergeJson, core/json_merge.h, decides same-path conflicts inside documents).
// Not defined for kManual, nor for merge with a manual nested policy (the caller parks the
// conflict instead).
bool IncomingWins(const FieldPolicy& rule, const Candidate& current, const Candidate& incoming);

// The policy that decides a merge field's same-path conflicts (merge_policy, with `endpoint`
// for prefer); `rule` itself for the other policies.
FieldPolicy NestedRule(const FieldPolicy& rule);

}  // namespace duplex
