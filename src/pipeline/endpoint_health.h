#pragma once

#include <string_view>

#include "pipeline/engine_state.h"

// Endpoint health (docs/DESIGN.md §6 "Outages", "Errors"): an endpoint that fails backs off (20 ms
// doubling to 2 s) without stopping the others (P8); one whose capture fails in a way a retry
// cannot mend is stopped. Its last error is kept in the state file for `duplex status`.
namespace duplex {

// The last error of a stopped endpoint starts with this (in the state file as well, so that
// `duplex status` tells it from an endpoint that is only unreachable).
inline constexpr std::string_view kStoppedPrefix = "stopped: ";

// Records a failure of `ep` in `stage` ("install", "capture", "rescan", "apply"): logged once
// it lasts, counted, and the next try put off by the backoff.
void MarkFailure(EngineState& es, EndpointState& ep, const Status& st, const char* stage);

// Stops `ep` after a capture error that retrying will not mend (any but Unavailable, status.h:
// an undecodable change, a file that is no database): logged as an error naming the endpoint
// and the cause, kept as its last error with kStoppedPrefix, reported as stopped (telemetry,
// alert); its capture and apply wait kStoppedRetry. The other endpoints go on.
void MarkStopped(EngineState& es, EndpointState& ep, const Status& st, const char* stage);

// Records that `ep` works again (logged if its failure was).
void MarkSuccess(EngineState& es, EndpointState& ep);

}  // namespace duplex
