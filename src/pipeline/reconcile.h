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

}  // namespace duplex
