#pragma once

#include <vector>

#include "pipeline/engine_state.h"

// The apply stage (docs/DESIGN.md §2 step 3, §5 "Refused transactions"): outbox batches go to the
// target in one of its transactions; refused source transactions are parked as dead letters.
namespace duplex {

// For an endpoint without markers (Capabilities::markers): records in the ledger what
// `batches` write there, before they are applied (docs/DESIGN.md §3.4).
Status RecordLedger(EngineState& es, const EndpointState& ep,
                    const std::vector<ApplyBatch>& batches);

// How `batches` go to a sink in calls of at most Capabilities::max_apply_rows row writes (0: one
// call): whole batches while they fit. A batch over the limit goes alone, whole, to a sink with
// atomic_applied_id (it skips a batch by id: a second call with the same id would be skipped);
// to one without, it is cut into parts of the same id at source-transaction boundaries (TxnEnd),
// a transaction split only when it alone is over the limit (P7).
std::vector<std::vector<ApplyBatch>> ApplyCalls(const Capabilities& caps,
                                                std::vector<ApplyBatch> batches);

// Applies `ep`'s outbox batches (up to batch_rows rows, and max_apply_rows, in ApplyCalls'
// calls). A refused apply is tried again twice,
// then transaction by transaction: the refused ones are parked (dead_letters.h), or planned
// again when a later write overtook them. Returns whether anything was applied or parked;
// an error other than a refusal is the endpoint's (endpoint_health.h).
Result<bool> ApplyTo(EngineState& es, EndpointState& ep);

// Telemetry of an apply that committed: row writes by collection, latency, batch size.
void ObserveApplied(EngineState& es, const EndpointState& ep,
                    const std::vector<ApplyBatch>& batches, const ApplyResult& result);

}  // namespace duplex
