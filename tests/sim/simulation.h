// Deterministic simulation of duplex (issue 3): the real engine (resolver, planner, applier,
// state store, journal) driven by one seed against in-memory endpoints (memory_connector.h)
// behind fault injection (faulty_connector.h), then checked against P1..P7 (DESIGN §1). The
// same scheduler can drive a naive "two one-way pipelines" setup instead (naive_sync.h), for
// the contrast in CONTRAST.md. Used by sim_test (ctest, under the sanitizers) and duplex-sim.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace duplex::sim {

struct SimOptions {
  uint64_t seed = 1;
  int steps = 250;     // scheduler steps of the main phase
  int keys = 20;       // keys 1..keys (fewer keys, more conflicts)
  bool naive = false;  // two one-way pipelines instead of duplex (measured, never "fails")
  // Rates, -1: drawn per seed (0 for some seeds, so that rare paths get quiet runs too).
  int crash = -1;          // per mille of scheduler steps: the engine is killed between steps
  int midstep_crash = -1;  // per mille of connector calls: the engine is killed in mid-step
  int faults = -1;         // per mille of capture/apply calls failing (each kind)
  bool reorder = true;     // delayed captures (other endpoints overtake)
  bool duplicate = true;   // redelivered captures, applies sent twice
  bool outages = true;     // endpoints unreachable for several steps
  // on_delete_conflict "keep" for items and parents: 1 always, 0 never (default), -1 a quarter
  // of the seeds.
  int keep = 0;
  bool parent_deletes = false;  // clients also delete parent rows
  int forks = 2;                // deliveries of the same concurrent writes (P4: same outcome)
  // Endpoint e1 behaves like a REST API (MemoryEndpoint::rest_like): no markers, no
  // transactions, no compare-and-set, no applied id; duplex's ledger stands in (DESIGN §3.4).
  // P7 is not checked on it (it has no transactions), and P3/P4 outcomes that differ from the
  // policies' are counted (SimMetrics::conflicts_wrong), not failed: they do not hold yet
  // (docs/DESIGN.md §3.4).
  bool rest = false;
  // Test of the checks themselves: per mille of captures that silently lose a change (a
  // broken connector). Runs with a loss must fail.
  int sabotage_drop = 0;
};

// What one run (or a sum of runs) saw; the contrast table is made of these.
struct SimMetrics {
  int64_t runs = 0, client_writes = 0, sync_writes = 0, echo_writes = 0, rejected = 0;
  int64_t crashes = 0, midstep_crashes = 0, faults = 0, outages = 0, delays = 0, duplicates = 0,
          double_applies = 0;
  int64_t diverged_runs = 0;  // P1: endpoints differ after the writes stop and sync ends
  int64_t diverged_rows = 0;  // P1: rows (any table) not identical everywhere
  int64_t race_total = 0, race_lost = 0;    // P2: a write 10 ms after another endpoint's
  int64_t field_total = 0, field_lost = 0;  // P3: concurrent writes to different fields
  int64_t conflicts = 0, conflicts_logged = 0, conflicts_wrong = 0;  // P4: same field
  int64_t events_total = 0, events_lost = 0;      // P6: insert-only rows missing somewhere
  int64_t orphan_seen = 0, partial_txn_seen = 0;  // P7: observations
  int64_t deletes_lost = 0;  // deleted rows still present on some endpoint at the end

  void Add(const SimMetrics& o);
};

struct SimResult {
  bool ok = true;
  std::string failure;  // what failed, with the seed and the replay command
  std::vector<std::string> history;
  SimMetrics metrics;
};

// Runs one seed.
SimResult RunSimulation(const SimOptions& options);

// Runs one seed; on failure, shrinks it (fewer steps, then fewer keys, while it still fails)
// and reports the smallest failing run: its history and the command that replays it.
SimResult RunAndShrink(const SimOptions& options);

// The duplex-sim command line that replays `options`.
std::string ReplayCommand(const SimOptions& options);

}  // namespace duplex::sim
