#pragma once

#include "pipeline/engine_state.h"
#include "pipeline/reconcile_report.h"

// The reconcile stage (docs/DESIGN.md §6 "Reconcile"): finds the records whose rows differ
// across a collection's endpoints, by digests of key-hash ranges computed where the data lives
// (Connector::DigestRanges), splitting only the ranges that differ, and feeds each such
// record's rows into the journal as what its endpoints hold, so that the resolver and the
// applier repair them like any change.
namespace duplex {

// Compares every collection (or `o.collection`) across its endpoints. Writes nothing. Every
// endpoint of a compared collection must be open and installed (Unavailable otherwise);
// unknown collection or endpoint: InvalidArgument.
Result<ReconcileReport> CompareEndpoints(EngineState& es, const ReconcileOptions& o);

// Feeds the differing records of `report` into the journal, as what each endpoint holds
// (docs/DESIGN.md §6 "Reconcile" says which side each repair keeps). The next resolution
// steps plan the writes. Returns the records fed.
Result<int64_t> FeedRepairs(EngineState& es, const ReconcileReport& report,
                            const ReconcileOptions& o);

// Records a reconcile in the state file (`duplex status` shows the last one) and in the
// telemetry (metrics): what `report` compared and found, and the records fed for repair.
Status RecordReconcile(EngineState& es, const ReconcileReport& report, int64_t repaired);

// The last reconcile recorded in the state file: {at_ms, rows_compared, records_differing,
// repaired}; null if none.
Result<nlohmann::json> LastReconcile(EngineState& es);

// `duplex run` with [engine] reconcile_every: once the interval has passed since the engine
// started (or since the last one), and the engine is idle, compares every collection and feeds
// what differs. An endpoint that cannot be compared now (unreachable) puts it off to the next
// interval, logged. Returns whether it fed anything.
Result<bool> ReconcileIfDue(EngineState& es);

}  // namespace duplex
