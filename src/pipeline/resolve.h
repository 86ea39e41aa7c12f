#pragma once

#include "pipeline/engine_state.h"

// The resolve stage (docs/DESIGN.md §2 step 2, §4): journal entries are merged into record states
// by the resolver, the planned writes ordered by the planner and stored in the outbox, one
// transaction per entry.
namespace duplex {

// Resolves the oldest journal entries (at most two). Returns whether there were any. On
// failure the transaction rolled back, and the decoded outbox cache with it.
Result<bool> ResolveJournal(EngineState& es);

// Resolves one journal entry in one transaction: record states, outbox batches, conflict log,
// the endpoint's watermark and resolved position, the entry deleted.
Status ResolveEntry(EngineState& es, const JournalEntry& entry);

// Writes what a resolution step planned: each target's writes ordered by the planner as one
// outbox batch (with the step's apply id), and its conflicts to the conflict log. Runs inside
// the caller's transaction.
Status StoreOutput(EngineState& es, ResolveOutput& out, const PlanContext& ctx);

}  // namespace duplex
