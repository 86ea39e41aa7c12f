// duplex-sim: the deterministic simulation (simulation.h) from the command line.
//
//   duplex-sim --seeds 2000 --steps 120          CI: seeds 1..2000, a summary line
//   duplex-sim --seed 51 --history               replay one seed, printing its history
//   duplex-sim --seeds 200 --contrast            duplex vs two one-way pipelines (CONTRAST.md)
//
// Exit code 0 if every seed passed, 1 if one failed (its seed, a shrunk history and the
// command that replays it are printed), 2 on bad usage.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "sim/simulation.h"

namespace {

using duplex::sim::SimMetrics;
using duplex::sim::SimOptions;
using duplex::sim::SimResult;

std::string Of(int64_t part, int64_t total) {
  return std::to_string(part) + " / " + std::to_string(total);
}

void PrintSummary(const char* mode, int64_t seeds, int failed, double secs, const SimMetrics& m) {
  std::printf(
      "duplex-sim %s: %lld seeds, %d failed, %.1f s; %lld client writes, %lld sync writes, "
      "%lld crashes (%lld mid-step), %lld faults, %lld outages, %lld delayed and %lld "
      "redelivered captures, %lld applies sent twice, %lld rejected writes, %lld conflicts "
      "(%lld logged), %lld race pairs, %lld events\n",
      mode, static_cast<long long>(seeds), failed, secs, static_cast<long long>(m.client_writes),
      static_cast<long long>(m.sync_writes), static_cast<long long>(m.crashes + m.midstep_crashes),
      static_cast<long long>(m.midstep_crashes), static_cast<long long>(m.faults),
      static_cast<long long>(m.outages), static_cast<long long>(m.delays),
      static_cast<long long>(m.duplicates), static_cast<long long>(m.double_applies),
      static_cast<long long>(m.rejected), static_cast<long long>(m.conflicts),
      static_cast<long long>(m.conflicts_logged), static_cast<long long>(m.race_total),
      static_cast<long long>(m.events_total));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"duplex-sim: deterministic simulation of duplex (tests/sim/README.md)"};
  SimOptions o;
  uint64_t seed = 0;
  int64_t seeds = 100, first = 1;
  std::string mode = "duplex";
  bool history = false, contrast = false, no_reorder = false, no_duplicate = false,
       no_outages = false;
  app.add_option("--seed", seed, "run this one seed (replay)");
  app.add_option("--seeds", seeds, "run seeds first..first+N-1")->capture_default_str();
  app.add_option("--first", first, "first seed of --seeds")->capture_default_str();
  app.add_option("--steps", o.steps, "scheduler steps of the main phase")->capture_default_str();
  app.add_option("--keys", o.keys, "keys 1..N (fewer: more conflicts)")->capture_default_str();
  app.add_option("--mode", mode, "duplex, or naive (two one-way pipelines)")
      ->check(CLI::IsMember({"duplex", "naive"}))
      ->capture_default_str();
  app.add_option("--crash", o.crash, "per mille of steps: engine killed between steps")
      ->capture_default_str();
  app.add_option("--midstep-crash", o.midstep_crash,
                 "per mille of connector calls: engine killed in mid-step")
      ->capture_default_str();
  app.add_option("--faults", o.faults, "per mille of failing capture/apply calls (-1: per seed)")
      ->capture_default_str();
  app.add_flag("--no-reorder", no_reorder, "no delayed captures");
  app.add_flag("--no-duplicate", no_duplicate, "no redelivered captures, no double applies");
  app.add_flag("--no-outages", no_outages, "no unreachable endpoints");
  app.add_option("--keep", o.keep,
                 "on_delete_conflict = keep for items and parents: 1 always, 0 never (default), "
                 "-1 a quarter of seeds")
      ->capture_default_str();
  app.add_flag("--parent-deletes", o.parent_deletes, "clients also delete parent rows");
  app.add_flag("--rest", o.rest,
               "endpoint e1 behaves like a REST API: no markers, transactions, compare-and-set");
  app.add_option("--forks", o.forks, "deliveries of the same concurrent writes (P4)")
      ->capture_default_str();
  app.add_option("--sabotage-drop", o.sabotage_drop,
                 "per mille of captures losing a change (tests the checks: must fail)");
  app.add_flag("--history", history, "print the whole history of a --seed run");
  app.add_flag("--contrast", contrast, "run duplex and naive on the same seeds; print the table");
  CLI11_PARSE(app, argc, argv);
  o.naive = mode == "naive";
  o.reorder = !no_reorder;
  o.duplicate = !no_duplicate;
  o.outages = !no_outages;
  spdlog::set_level(std::getenv("DUPLEX_SIM_LOG") ? spdlog::level::debug : spdlog::level::off);

  if (seed > 0) {
    o.seed = seed;
    SimResult r = duplex::sim::RunSimulation(o);
    if (history) {
      for (const std::string& e : r.history) std::printf("%s\n", e.c_str());
    }
    PrintSummary(mode.c_str(), 1, r.ok ? 0 : 1, 0, r.metrics);
    if (!r.ok) std::printf("%s\n", r.failure.c_str());
    return r.ok ? 0 : 1;
  }

  auto start = std::chrono::steady_clock::now();
  SimMetrics duplex_m, naive_m;
  int failed = 0;
  for (int64_t s = first; s < first + seeds; ++s) {
    o.seed = static_cast<uint64_t>(s);
    if (contrast || !o.naive) {
      SimOptions d = o;
      d.naive = false;
      SimResult r = duplex::sim::RunAndShrink(d);
      duplex_m.Add(r.metrics);
      if (!r.ok) {
        ++failed;
        std::printf("%s\n", r.failure.c_str());
        if (!contrast && failed >= 3) break;
      }
    }
    if (contrast || o.naive) {
      SimOptions n = o;
      n.naive = true;
      naive_m.Add(duplex::sim::RunSimulation(n).metrics);
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!contrast) {
    PrintSummary(mode.c_str(), seeds, failed, secs, o.naive ? naive_m : duplex_m);
    return failed == 0 ? 0 : 1;
  }
  const SimMetrics& d = duplex_m;
  const SimMetrics& n = naive_m;
  std::printf("seeds %lld..%lld, %d steps, %d keys, %.0f s\n\n", static_cast<long long>(first),
              static_cast<long long>(first + seeds - 1), o.steps, o.keys, secs);
  std::printf("| what is lost (guarantee) | duplex | two one-way pipelines |\n|---|---|---|\n");
  auto row = [](const char* what, const std::string& a, const std::string& b) {
    std::printf("| %s | %s | %s |\n", what, a.c_str(), b.c_str());
  };
  row("runs whose endpoints differ after sync (P1)", Of(d.diverged_runs, d.runs),
      Of(n.diverged_runs, n.runs));
  row("rows that differ between endpoints after sync (P1)", std::to_string(d.diverged_rows),
      std::to_string(n.diverged_rows));
  row("race of two writes 10 ms apart, the later one made after seeing the first: it loses (P2)",
      Of(d.race_lost, d.race_total), Of(n.race_lost, n.race_total));
  row("concurrent updates of different fields of a row: an update lost (P3)",
      Of(d.field_lost, d.field_total), Of(n.field_lost, n.field_total));
  row("same-field concurrent updates: in the conflict log (P4)",
      Of(d.conflicts_logged, d.conflicts), Of(n.conflicts_logged, n.conflicts));
  row("same concurrent writes, another delivery order: another outcome (P4)",
      std::to_string(d.conflicts_wrong), std::to_string(n.conflicts_wrong));
  row("loops: echo writes that changed nothing (P5)", std::to_string(d.echo_writes),
      std::to_string(n.echo_writes));
  row("insert-only rows missing on some endpoint after sync (P6)",
      Of(d.events_lost, d.events_total), Of(n.events_lost, n.events_total));
  row("rows whose last client write was a delete, present somewhere after sync",
      std::to_string(d.deletes_lost), std::to_string(n.deletes_lost));
  row("orphans: a child seen without its parent (P7)", std::to_string(d.orphan_seen),
      std::to_string(n.orphan_seen));
  row("a source transaction seen partly applied (P7)", std::to_string(d.partial_txn_seen),
      std::to_string(n.partial_txn_seen));
  row("seeds failing a duplex check", std::to_string(failed), "-");
  return failed == 0 ? 0 : 1;
}
