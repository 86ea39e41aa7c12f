#include "core/policy.h"

#include <cassert>

#include "util/json_value.h"

namespace duplex {

namespace {

bool LwwIncomingWins(const Version& current, const Version& incoming) {
  if (incoming.ts != current.ts) return incoming.ts > current.ts;
  return incoming.origin < current.origin;
}

}  // namespace

FieldPolicy NestedRule(const FieldPolicy& rule) {
  if (rule.policy != Policy::kMerge) return rule;
  FieldPolicy nested;
  // The config refuses merge_policy = "merge"; lww rather than a loop if one got here.
  nested.policy = rule.merge_policy == Policy::kMerge ? Policy::kLww : rule.merge_policy;
  nested.prefer_endpoint = rule.prefer_endpoint;
  return nested;
}

bool IncomingWins(const FieldPolicy& rule, const Candidate& current, const Candidate& incoming) {
  switch (rule.policy) {
    case Policy::kLww:
    // sum adds deltas (AddDelta); it comes here only where there is no delta to add: values
    // that are not numbers, or two values with no common base (concurrent inserts of one key,
    // initial-load copies that differ).
    case Policy::kSum:
    // union merges sets (UnionMerge, core/set_merge.h) and likewise comes here only for values
    // that are not sets of one form, or with no common base.
    case Policy::kUnion:
      return LwwIncomingWins(current.version, incoming.version);
    case Policy::kPrefer:
      if (incoming.version.origin == rule.prefer_endpoint &&
          current.version.origin != rule.prefer_endpoint) {
        return true;
      }
      if (current.version.origin == rule.prefer_endpoint &&
          incoming.version.origin != rule.prefer_endpoint) {
        return false;
      }
      return LwwIncomingWins(current.version, incoming.version);
    case Policy::kMax:
    case Policy::kMin: {
      int c = CompareValues(incoming.value, current.value);
      if (c == 0) return LwwIncomingWins(current.version, incoming.version);
      return rule.policy == Policy::kMax ? c > 0 : c < 0;
    }
    case Policy::kMerge:
      return IncomingWins(NestedRule(rule), current, incoming);
    case Policy::kManual:
      assert(false);  // Manual conflicts are parked by the resolver, never decided here.
      return false;
  }
  return false;
}

}  // namespace duplex
