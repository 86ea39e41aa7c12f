#pragma once

#include <map>
#include <string>
#include <vector>

#include "pipeline/engine_state.h"

// A delete against a new reference (docs/DESIGN.md §4 "A delete against a new reference"), and the
// state store's index of references it needs. Records are named "collection\nkey text", as
// that index names them.
namespace duplex {

// Builds that index once per process, anew if the references between collections changed.
Status EnsureRefIndex(EngineState& es);

// The records a record of `collection` with `values` refers to.
std::vector<std::string> ParentRecords(const EngineState& es, const std::string& collection,
                                       const Row& values);

// The fields of collection `child` that refer to collection `parent`.
std::vector<std::string> ReferenceFields(const EngineState& es, const std::string& child,
                                         const std::string& parent);

// Moves `record`'s entries in the index from the parents it referred to to those it does.
Status UpdateRefIndex(EngineState& es, const std::string& record,
                      const std::vector<std::string>& before,
                      const std::vector<std::string>& after);

// After the change `c` from endpoint `from` (watermark `watermark`) was merged into the state
// of `record`, which was live (`was_live`) with `parents_before`, and planned writes into
// `out` from `first_op` on (per target): updates the index, and settles the deletes against
// new references the change reveals, either way round (the row now refers to a parent
// deleted elsewhere, or `from` deleted a parent that a row refers to in a write it had not
// seen). A parent's delete waiting on a target for a row that a write planned now moves
// away (or deletes) is planned again after that write.
Status CheckReferences(EngineState& es, const Change& c, const std::string& from, int64_t watermark,
                       const std::string& record, bool was_live,
                       const std::vector<std::string>& parents_before,
                       const std::map<std::string, size_t>& first_op, RecordStates& states,
                       const PlanContext& ctx, ResolveOutput& out);

// Plans `parent`'s writes to `target` again (after those planned now) if its delete there
// has not landed yet, or was refused.
Status ReplanWaiting(EngineState& es, const std::string& parent, const std::string& target,
                     int64_t watermark, RecordStates& states, const PlanContext& ctx,
                     ResolveOutput& out);

// `parent`, deleted by `deleter`, against `child`, made to refer to it by `writer`: the
// parent's on_delete_conflict decides (DecideReference, core/reference_conflict.h: cascade
// the delete, or bring the parent back), and this carries the decision out.
Status SettleReference(EngineState& es, const std::string& parent, const std::string& child,
                       const std::string& deleter, const std::string& writer, RecordStates& states,
                       const PlanContext& ctx, ResolveOutput& out);

// Takes `record`'s writes that have not landed (in `out`, the outbox, dead letters) back
// from every endpoint (or only from `only`), so that they can be planned again in a new
// order.
Status RetractWrites(EngineState& es, const std::string& record, RecordState& state,
                     RecordStates& states, const PlanContext& ctx, ResolveOutput& out,
                     const std::string& only = "");

}  // namespace duplex
