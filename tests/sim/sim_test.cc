// The deterministic simulation (simulation.h) under the sanitizers: a range of seeds, the seeds
// that found engine bugs, determinism, and the contrast's premise (the naive setup loses).
//
//   DUPLEX_SIM_SEED=<n>    run that seed only (replay), printing its whole history
//   DUPLEX_SIM_SEEDS=<n>   run seeds 1..n (default: kDefaultSeeds)
//   DUPLEX_SIM_STEPS=<n>   scheduler steps per seed (default: kDefaultSteps)
//   DUPLEX_SIM_KEYS=<n>    keys 1..n (default 20; fewer keys, more conflicts)
// duplex-sim (duplex_sim_main.cc) runs the same simulation, faster, with every knob.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <tuple>
#include <utility>

#include "connectors/memory/memory_connector.h"
#include "sim/simulation.h"

namespace duplex::sim {

using memory::MemoryConnector;
using memory::MemoryEndpoint;
namespace {

constexpr int kDefaultSeeds = 25;  // under ASan on 2 cores; CI runs thousands with duplex-sim
constexpr int kDefaultSteps = 250;

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoll(v, nullptr, 10) : fallback;
}

SimOptions Options(uint64_t seed) {
  SimOptions o;
  o.seed = seed;
  o.steps = static_cast<int>(EnvInt("DUPLEX_SIM_STEPS", kDefaultSteps));
  o.keys = static_cast<int>(EnvInt("DUPLEX_SIM_KEYS", 20));
  return o;
}

TEST(SimTest, Seeds) {
  spdlog::set_level(spdlog::level::off);  // conflicts are logged at info: thousands of lines
  int64_t one = EnvInt("DUPLEX_SIM_SEED", 0);
  if (one > 0) {
    SimResult r = RunSimulation(Options(static_cast<uint64_t>(one)));
    for (const std::string& e : r.history) std::printf("%s\n", e.c_str());
    EXPECT_TRUE(r.ok) << r.failure;
    return;
  }
  int64_t seeds = EnvInt("DUPLEX_SIM_SEEDS", kDefaultSeeds);
  auto start = std::chrono::steady_clock::now();
  int failed = 0;
  SimMetrics m;
  for (int64_t seed = 1; seed <= seeds && failed < 3; ++seed) {
    SimResult r = RunAndShrink(Options(static_cast<uint64_t>(seed)));
    m.Add(r.metrics);
    if (!r.ok) {
      ++failed;
      ADD_FAILURE() << r.failure;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "sim: %lld seeds in %.1f s, %d failed; %lld client writes, %lld sync writes, %lld crashes "
      "(%lld mid-step), %lld faults, %lld outages, %lld delays, %lld redeliveries, %lld "
      "conflicts\n",
      static_cast<long long>(seeds), secs, failed, static_cast<long long>(m.client_writes),
      static_cast<long long>(m.sync_writes), static_cast<long long>(m.crashes + m.midstep_crashes),
      static_cast<long long>(m.midstep_crashes), static_cast<long long>(m.faults),
      static_cast<long long>(m.outages), static_cast<long long>(m.delays),
      static_cast<long long>(m.duplicates), static_cast<long long>(m.conflicts));
}

// Seeds that found engine bugs, kept whatever the default seed range becomes (README).
//   51: (first slice's generator) a capture failing right after a successful Poll lost the
//       news of the change (CaptureFrom, src/pipeline/capture.cc); kept as a plain seed of today's
//       generator.
//   6, 32, 33: a connector redelivering changes it had delivered (a capture from an earlier
//       position) made the engine merge them twice, bringing old values back (P1, P4).
//       CaptureFrom now drops changes at or before the capture position.
TEST(SimTest, RegressionSeeds) {
  spdlog::set_level(spdlog::level::off);
  for (uint64_t seed : {6, 32, 33, 51}) {
    SimResult r = RunSimulation(Options(seed));
    EXPECT_TRUE(r.ok) << r.failure;
  }
}

// Endpoints whose updates carry no before-image (PostgreSQL's default replica identity): a
// write of duplex's the endpoint had observed still counted as unobserved, so a later change
// looked like a concurrent edit of the old value (seeds 3 and 4, 120 steps; fixed by giving
// the planner every endpoint's watermark).
TEST(SimTest, RegressionSeedsWithoutBeforeImages) {
  spdlog::set_level(spdlog::level::off);
  for (uint64_t seed : {3, 4}) {
    SimOptions o = Options(seed);
    o.steps = 120;
    o.keys = 20;
    SimResult r = RunSimulation(o);
    EXPECT_TRUE(r.ok) << r.failure;
  }
}

// Delete against a concurrent re-insert (P4, checked as "a row whose last client write was a
// delete is gone"): an endpoint's delete of a row another endpoint's unseen delete had removed
// dropped its pending entry, so a re-insert (its own, seeds 19 and 264, or a third endpoint's
// that had seen only the first delete, seed 115) counted as after both deletes when they were
// merged first. Fixed in Resolver::Merge. Seed 180 (8 keys): a re-insert after deleting a
// re-insert the tombstone had refused.
TEST(SimTest, RegressionSeedsDeleteAgainstReinsert) {
  spdlog::set_level(spdlog::level::off);
  for (auto [seed, keys] : {std::pair{19, 20}, {115, 20}, {264, 20}, {180, 8}}) {
    SimOptions o = Options(static_cast<uint64_t>(seed));
    o.steps = 250;
    o.keys = keys;
    SimResult r = RunSimulation(o);
    EXPECT_TRUE(r.ok) << r.failure;
  }
}

// on_delete_conflict = "keep": an update concurrent with a merged delete re-created the record
// from its whole after-image, every field its endpoint's, so a third endpoint's concurrent
// update of another field lost under lww (P3). Fixed in Resolver::MergeUpsert: the update
// brings the tombstone's values back and is merged field by field. Seed 201 (120 steps, 20
// keys): without before-images, the row held when the delete was planned (prior_row).
TEST(SimTest, RegressionSeedsKeepDeleteConflict) {
  spdlog::set_level(spdlog::level::off);
  for (auto [seed, steps, keys] :
       {std::tuple{1067, 250, 8}, {1085, 250, 8}, {1126, 250, 8}, {201, 120, 20}}) {
    SimOptions o = Options(static_cast<uint64_t>(seed));
    o.steps = steps;
    o.keys = keys;
    o.keep = 1;
    SimResult r = RunSimulation(o);
    EXPECT_TRUE(r.ok) << r.failure;
  }
}

// A parent deleted on one endpoint while another adds a child to it (`--parent-deletes`):
// each target refused the other's write by its foreign key, and the endpoints diverged with
// two dead letters (seed 47, 120 steps, 4 keys). Fixed by the rule of DESIGN §4 for a delete
// against a new reference (src/pipeline/references.cc): delete wins takes the child along,
// keep brings the parent back. Found on the way: the parent's delete refused for a child the
// engine had not captured yet, when the parent was made again before that child arrived
// (1921, and 1745 with keep); refused for a child moved away from it by a concurrent insert
// of the same key (2826); a child's insert sent before the parent's re-insert that keep planned
// (11, 665, 1394). With 6 keys and 200 steps: the parent's refused delete and its re-insert
// planned in one batch (20633); an earlier delete hidden behind a repeated delete's empty
// batch (30268); what was left of a dead letter (a child moved away) planned after the
// parent's delete it had to precede (30482). With 300 steps: a child's insert refused for its
// deleted parent, after the child had been deleted and made again with another parent
// (63305): the refused insert is overtaken (Superseded, src/pipeline/dead_letters.cc), not parked;
// a refused transaction of a cascaded child's delete and its parent's delete, where the parent was
// made again since (71560, 150 steps, 4 keys): planned again whole, as one write of it was
// overtaken.
TEST(SimTest, RegressionSeedsParentDeletedWhileAChildIsAdded) {
  spdlog::set_level(spdlog::level::off);
  for (auto [seed, steps, keys, keep] : {std::tuple{47, 120, 4, 0},
                                         {1921, 150, 4, 0},
                                         {2826, 150, 4, 0},
                                         {11, 120, 4, 1},
                                         {665, 120, 4, 1},
                                         {1394, 120, 4, 1},
                                         {1745, 120, 4, 1},
                                         {20633, 200, 6, -1},
                                         {30268, 200, 6, -1},
                                         {30482, 200, 6, -1},
                                         {63305, 300, 6, -1},
                                         {71560, 150, 4, -1}}) {
    SimOptions o = Options(static_cast<uint64_t>(seed));
    o.steps = steps;
    o.keys = keys;
    o.keep = keep;
    o.parent_deletes = true;
    SimResult r = RunSimulation(o);
    EXPECT_TRUE(r.ok) << "seed " << seed << ": " << r.failure;
  }
}

// Two endpoints delete a row concurrently; the second delete reaches no one, and every other
// endpoint counted as not having seen it until some later apply: a re-insert made after the
// sync settled lost to it (P2 phase; --parent-deletes only shapes the schedule). Fixed by an
// empty batch, observed through its marker (ResolveOutput::observe).
TEST(SimTest, RegressionSeedsRepeatedDeleteIsObserved) {
  spdlog::set_level(spdlog::level::off);
  for (uint64_t seed : {2154, 2848, 4501}) {
    SimOptions o = Options(seed);
    o.steps = 150;
    o.keys = 4;
    o.parent_deletes = true;
    SimResult r = RunSimulation(o);
    EXPECT_TRUE(r.ok) << "seed " << seed << ": " << r.failure;
  }
}

// The writes an initial load's rows caused carried the install's time as a source commit
// time, as if a transaction: the P7 check took one for a later transaction of that endpoint
// stamped with the same millisecond, split across two applies (seed 60492, 300 steps, 6 keys,
// --parent-deletes), and the sync latency metric counted the time since the install. They
// carry none now, as ResolveEntry's comment said.
TEST(SimTest, RegressionSeedInitialLoadRowsCarryNoSourceTime) {
  spdlog::set_level(spdlog::level::off);
  SimOptions o = Options(60492);
  o.steps = 300;
  o.keys = 6;
  o.parent_deletes = true;
  SimResult r = RunSimulation(o);
  EXPECT_TRUE(r.ok) << r.failure;
}

// The memory connector's side of the contract (connector.h): Describe reports the foreign key,
// captured changes carry their source transaction, and Apply with isolate_txns rolls back a
// refused source transaction whole (one FailedOp with all its ops) and commits the others.
TEST(MemoryConnectorTest, ForeignKeysTransactionsAndIsolatedApply) {
  auto ep = std::make_shared<MemoryEndpoint>("e0");
  auto col = [](const char* name, int pk) {
    ColumnInfo c;
    c.name = name;
    c.type = "INTEGER";
    c.pk = pk;
    return c;
  };
  ep->DeclareTable({"parent", true, {col("id", 1), col("name", 0)}, {}});
  ep->DeclareTable({"child", true, {col("id", 1), col("parent_id", 0)}, {}});
  ep->DeclareForeignKey({"child", "parent_id", "parent"});
  MemoryConnector conn(ep);
  Result<TableInfo> child = conn.Describe("child");
  ASSERT_TRUE(child.ok());
  ASSERT_EQ(child->foreign_keys.size(), 1u);
  EXPECT_EQ(child->foreign_keys[0].columns, std::vector<std::string>{"parent_id"});
  EXPECT_EQ(child->foreign_keys[0].ref_table, "parent");
  EXPECT_EQ(child->foreign_keys[0].ref_columns, std::vector<std::string>{"id"});
  EXPECT_FALSE(child->foreign_keys[0].deferrable);

  auto binding = [](const char* collection, const char* table,
                    std::vector<std::pair<std::string, std::string>> fields) {
    CollectionBinding b;
    b.collection = collection;
    b.table = table;
    b.key = {"id"};
    b.fields = std::move(fields);
    return b;
  };
  ASSERT_TRUE(conn.Bind({binding("parents", "parent", {{"id", "id"}, {"name", "name"}}),
                         binding("children", "child", {{"id", "id"}, {"parent_id", "parent_id"}})})
                  .ok());
  ASSERT_TRUE(conn.Install().ok());
  ep->Begin();
  ASSERT_TRUE(ep->Insert("parent", {{"id", 1}, {"name", "p"}}));
  ASSERT_TRUE(ep->Insert("child", {{"id", 1}, {"parent_id", 1}}));
  ep->Commit();
  ASSERT_TRUE(ep->Insert("parent", {{"id", 2}, {"name", "q"}}));
  Result<ChangeBatch> cap = conn.Capture(Position(), 100);
  ASSERT_TRUE(cap.ok());
  ASSERT_EQ(cap->changes.size(), 3u);
  EXPECT_NE(cap->changes[0].txn, 0);
  EXPECT_EQ(cap->changes[0].txn, cap->changes[1].txn);
  EXPECT_NE(cap->changes[1].txn, cap->changes[2].txn);

  auto insert = [](const char* collection, Row values, int64_t txn) {
    RowOp op;
    op.op = WriteOp::kInsert;
    op.collection = collection;
    op.key = {{"id", values["id"]}};
    op.values = std::move(values);
    op.seen = Position::FromInt(1000);
    op.txn = txn;
    return op;
  };
  // Unit 7: parent 3 and its child; unit 8: parent 4 and a child of the absent parent 9.
  ApplyBatch batch{1,
                   {insert("parents", {{"id", 3}, {"name", "r"}}, 7),
                    insert("children", {{"id", 3}, {"parent_id", 3}}, 7),
                    insert("parents", {{"id", 4}, {"name", "s"}}, 8),
                    insert("children", {{"id", 4}, {"parent_id", 9}}, 8)}};
  Result<ApplyResult> whole = conn.Apply({batch});
  EXPECT_TRUE(whole.status().IsRefused());
  EXPECT_FALSE(ep->Get("parent", {{"id", 3}}));
  Result<ApplyResult> isolated = conn.Apply({batch}, /*isolate_txns=*/true);
  ASSERT_TRUE(isolated.ok());
  EXPECT_EQ(isolated->applied, 2u);
  ASSERT_EQ(isolated->failed.size(), 1u);
  EXPECT_EQ(isolated->failed[0].batch_id, 1);
  EXPECT_EQ(isolated->failed[0].txn, 8);
  EXPECT_EQ(isolated->failed[0].ops.size(), 2u);
  EXPECT_TRUE(ep->Get("child", {{"id", 3}}));
  EXPECT_FALSE(ep->Get("parent", {{"id", 4}}));  // rolled back with its transaction
  EXPECT_EQ(ep->applied_id(), 1);
}

// The same seed twice gives the same history (determinism of the simulator itself).
TEST(SimTest, Deterministic) {
  spdlog::set_level(spdlog::level::off);
  for (uint64_t seed : {7, 12}) {
    SimOptions o = Options(seed);
    o.steps = 150;
    SimResult a = RunSimulation(o), b = RunSimulation(o);
    EXPECT_EQ(a.history, b.history) << "seed " << seed;
    EXPECT_EQ(a.ok, b.ok);
  }
}

// The checks have teeth: a connector that loses captured changes is caught on most seeds
// (a lost change can be hidden by a later write of the same row, so not on every one).
TEST(SimTest, ChecksCatchALossyConnector) {
  spdlog::set_level(spdlog::level::off);
  int caught = 0;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimOptions o = Options(seed);
    o.steps = 150;
    o.sabotage_drop = 100;
    caught += RunSimulation(o).ok ? 0 : 1;
  }
  EXPECT_GE(caught, 7);
}

// The contrast's premise: on the same seeds, two one-way pipelines lose what duplex keeps.
TEST(SimTest, NaivePipelinesLose) {
  spdlog::set_level(spdlog::level::off);
  SimMetrics m;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    SimOptions o = Options(seed);
    o.naive = true;
    m.Add(RunSimulation(o).metrics);
  }
  EXPECT_GT(m.diverged_runs, 0);
  EXPECT_GT(m.race_lost, 0);
  EXPECT_GT(m.field_lost, 0);
  EXPECT_GT(m.echo_writes, 0);
  EXPECT_EQ(m.conflicts_logged, 0);
}

// An endpoint like a REST API (Salesforce): no markers, no transactions, no compare-and-set,
// no applied id (MemoryEndpoint::rest_like). The engine's ledger tells duplex's writes from
// edits there (docs/DESIGN.md §3.4). Under the same faults every endpoint converges, nothing
// is lost, no echo loops, a sequential write wins (P1, P2, P5, P6). P7 has nothing to hold on
// an endpoint without transactions; P3/P4 do not hold yet: some concurrent writes converge to
// another value than the policies' (seeds 3, 7, 8, 9, 18, 23 of the first 60). Those are
// counted, and must stay rare.
TEST(SimTest, RestLikeEndpoint) {
  spdlog::set_level(spdlog::level::off);
  int64_t wrong = 0, conflicts = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    SimOptions o = Options(seed);
    o.rest = true;
    SimResult r = RunSimulation(o);
    EXPECT_TRUE(r.ok) << r.failure;
    if (!r.ok) break;
    wrong += r.metrics.conflicts_wrong;
    conflicts += r.metrics.conflicts;
  }
  std::printf("REST-like endpoint: %lld of %lld concurrent-write cases ended off the policy\n",
              static_cast<long long>(wrong), static_cast<long long>(conflicts));
  EXPECT_LT(wrong * 5, conflicts);
}

// A user's delete on the REST-like endpoint made before duplex's delete of the same row got
// there: duplex's found nothing to delete, and the user's passed for its echo, so a re-insert
// concurrent with the user's delete won (seeds 212 and 248 of `duplex-sim --seeds 1000 --steps
// 120 --rest`). The sink reports writes without effect (ApplyResult::no_effect); their ledger
// entries go.
TEST(SimTest, RestLikeDeleteBeforeDuplexsIsNotItsEcho) {
  spdlog::set_level(spdlog::level::off);
  for (uint64_t seed : {212, 248}) {
    SimOptions o;
    o.seed = seed;
    o.steps = 120;
    o.rest = true;
    SimResult r = RunSimulation(o);
    EXPECT_TRUE(r.ok) << "seed " << seed << ": " << r.failure;
  }
}

// Seed 548 of `duplex-sim --seeds 1000 --steps 120 --rest`: the P7 check took a write of
// duplex's, captured back on the REST-like endpoint in the millisecond of an application
// transaction that wrote the same row, for part of that transaction (the check was wrong, not
// duplex; it now matches a write to its transaction by the captured transaction's id).
TEST(SimTest, RestLikeWriteBackIsNotPartOfAnApplicationTransaction) {
  spdlog::set_level(spdlog::level::off);
  SimOptions o;
  o.seed = 548;
  o.steps = 120;
  o.rest = true;
  SimResult r = RunSimulation(o);
  EXPECT_TRUE(r.ok) << r.failure;
}

}  // namespace
}  // namespace duplex::sim
