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

// Applies `ep`'s outbox batches (up to batch_rows rows). A refused apply is tried again twice,
// then transaction by transaction: the refused ones are parked (dead_letters.h), or planned
// again when a later write overtook them. Returns whether anything was applied or parked;
// an error other than a refusal is the endpoint's (endpoint_health.h).
Result<bool> ApplyTo(EngineState& es, EndpointState& ep);

// Telemetry of an apply that committed: row writes by collection, latency, batch size.
void ObserveApplied(EngineState& es, const EndpointState& ep,
                    const std::vector<ApplyBatch>& batches, const ApplyResult& result);

}  // namespace duplex
