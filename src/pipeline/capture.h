#pragma once

#include "pipeline/engine_state.h"

// The capture stage (docs/DESIGN.md §2 step 1, §6): installs change capture on an endpoint, moves
// its changes into the journal, acks them to the source, and brings back an endpoint that went back
// in time (a backup restored).
namespace duplex {

// Installs capture on `ep` (idempotent; the first install snapshots the existing rows for the
// initial load). A state file that never captured from `ep` starts it afresh; one that did
// checks first whether `ep` went back in time (CheckRestored).
Status InstallOn(EngineState& es, EndpointState& ep);

// Whether `ep` went back in time since this state file last worked with it (a backup
// restored): if so, says so, merges what was captured before, and starts its capture again
// where the endpoint's own changelog resumes, with its rows to be read back (Rescan).
Status CheckRestored(EngineState& es, EndpointState& ep, const EndpointProgress& p);

// Reads back every row of a restored endpoint into the journal (Op::kPresent), and a row
// for each record it holds none of, so that the resolver brings it to the agreed values.
Status Rescan(EngineState& es, EndpointState& ep);

// For an endpoint without markers (Capabilities::markers): each captured change of a record
// duplex wrote there is checked against the ledger (docs/DESIGN.md §3.4). Values duplex wrote
// become an Op::kEcho before the change; a change that shows nothing but such values is
// dropped; an edit stays.
Status MatchLedger(EngineState& es, const EndpointState& ep, std::vector<Change>& changes);

// The shortest interval between two polls of an endpoint: Capabilities::min_poll_interval, or
// longer so that polls alone stay within the request quota (quota_period / quota_calls).
std::chrono::milliseconds PollInterval(const Capabilities& caps);

// Polls `ep` (no more often than PollInterval): whether it has news to capture (then ep.more is
// set, and the next CaptureFrom captures without polling again). True while ep.more.
Result<bool> PollNow(EngineState& es, EndpointState& ep);

// Polls `ep` (no more often than PollInterval) and captures one batch after its capture position
// into the journal, moving the position in the same transaction (P6). Returns whether a batch was
// journaled.
Result<bool> CaptureFrom(EngineState& es, EndpointState& ep);

// Acks to `ep` what the engine no longer needs from its changelog: at most every 500 ms
// unless `force`. Failures are left for the next time.
void AckCaptured(EngineState& es, EndpointState& ep, bool force);

}  // namespace duplex
