#pragma once

#include <functional>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "pipeline/engine_state.h"

// Dead letters (docs/DESIGN.md §5 "Refused transactions, dead letters, holds"): transactions a
// target refused are parked; those that depend on a parked one are held to wait for it; a parked
// write a later one overtook is planned again instead; an operator's retry plans them again. Manual
// conflict resolutions are propagated here too (the same operator loop, every 200 ms).
namespace duplex {

// The dead letter (`parked`: record, as Planner::RecordOf names it -> dead letter id) that one
// of `ops` depends on: it writes a record of it, or refers to one; 0 if none.
int64_t ParkedDependency(const Planner& planner, const std::map<std::string, int64_t>& parked,
                         std::span<const RowOp> ops);

// Refreshes ep.parked if the endpoint's dead letters changed.
Status LoadParked(EngineState& es, EndpointState& ep);

// Takes out of `batches` the source transactions that depend on a parked one (write one of
// its records or refer to one): they are parked to wait for it (the pair's second).
std::vector<std::pair<FailedOp, int64_t>> HoldDependents(EngineState& es, EndpointState& ep,
                                                         std::vector<ApplyBatch>& batches);

// Plans the records of `ops`, writes `endpoint` refused, again from their current state
// (the refused writes changed nothing there): the states in `states` if given (a resolution
// step's, saved by it), else loaded and saved here.
Status ReplanRefused(EngineState& es, const std::string& endpoint, const std::vector<RowOp>& ops,
                     const PlanContext& ctx, ResolveOutput& out, RecordStates* states = nullptr);

// Whether a write of `f` was overtaken by a later one planned for `endpoint`: a delete of a
// record that exists again, an insert or update of one deleted (or made again) since.
Result<bool> Superseded(EngineState& es, const std::string& endpoint, const FailedOp& f);

// Operator retries of dead letters: their records are planned again for the target, one
// transaction per dead letter. Returns whether there were any.
Result<bool> RetryDeadLetters(EngineState& es);

// Operator resolutions of manual conflicts: the chosen value is planned for every endpoint,
// one transaction per conflict. Returns whether there were any.
Result<bool> PropagateResolutions(EngineState& es);

// Whether a dead letter of `ep` holds a write of `record` (RecordKey::ToString) that `match`
// accepts (ep.parked is as of the resolution step's start).
Result<bool> ParkedWrite(EngineState& es, const EndpointState& ep, const std::string& record,
                         const std::function<bool(const RowOp&)>& match);

}  // namespace duplex
