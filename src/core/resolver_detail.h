// Helpers the resolver's files share (resolver.cc: merging captured changes;
// resolver_inputs.cc: the other inputs and planning). Internal to src/core/.
#pragma once

#include <cstdint>
#include <string>

#include "config/config.h"
#include "core/record_state.h"
#include "duplex/change.h"

namespace duplex::resolver_detail {

// Policies that merge concurrent edits of a field instead of picking one: they need exactly
// what each edit started from (RecordState::inflight).
bool MergesValues(Policy p);

// row[field], or null (a row that is not an object, a field it lacks).
const Value& FieldOf(const Row& row, const std::string& field);

// Whether duplex's write of `field` ("" the whole row) to `endpoint` is not yet observed there
// (its apply id is above the endpoint's watermark).
bool IsPending(const RecordState& s, const std::string& endpoint, const std::string& field,
               int64_t watermark);
bool AnyPending(const RecordState& s, const std::string& endpoint, int64_t watermark);

// Forgets writes the endpoint has observed: they no longer make anything concurrent.
void PruneObserved(RecordState& s, const std::string& endpoint, int64_t watermark);

// One side of a conflict as the conflict log keeps it: {"value": v, "ts": ms}.
nlohmann::json Side(const Value& value, double ts);

// The time a change counts with under lww. The initial load has no commit times: its rows
// count as written at time 0, so conflicts between two initial copies go by endpoint order.
double VersionTs(const Change& c);

// The newest field version's time, and the endpoint it came from.
double LatestTs(const RecordState& s);
std::string LatestOrigin(const RecordState& s);

}  // namespace duplex::resolver_detail
