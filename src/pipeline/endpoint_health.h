#pragma once

#include "pipeline/engine_state.h"

// Endpoint health (docs/DESIGN.md §6 "Outages"): an endpoint that fails backs off (20 ms doubling
// to 2 s) without stopping the others (P8); its last error is kept in the state file for `duplex
// status`.
namespace duplex {

// Records a failure of `ep` in `stage` ("install", "capture", "rescan", "apply"): logged once
// it lasts, counted, and the next try put off by the backoff.
void MarkFailure(EngineState& es, EndpointState& ep, const Status& st, const char* stage);

// Records that `ep` works again (logged if its failure was).
void MarkSuccess(EngineState& es, EndpointState& ep);

}  // namespace duplex
