#include "sim/simulation.h"

#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include "config/config.h"
#include "connectors/memory/memory_connector.h"
#include "duplex/env.h"
#include "pipeline/engine.h"
#include "sim/faulty_connector.h"
#include "sim/naive_sync.h"
#include "util/json_value.h"

namespace duplex::sim {

using memory::AppliedWrite;
using memory::MemoryEndpoint;

void SimMetrics::Add(const SimMetrics& o) {
  runs += o.runs;
  client_writes += o.client_writes;
  sync_writes += o.sync_writes;
  echo_writes += o.echo_writes;
  rejected += o.rejected;
  crashes += o.crashes;
  midstep_crashes += o.midstep_crashes;
  faults += o.faults;
  outages += o.outages;
  delays += o.delays;
  duplicates += o.duplicates;
  double_applies += o.double_applies;
  diverged_runs += o.diverged_runs;
  diverged_rows += o.diverged_rows;
  race_total += o.race_total;
  race_lost += o.race_lost;
  field_total += o.field_total;
  field_lost += o.field_lost;
  conflicts += o.conflicts;
  conflicts_logged += o.conflicts_logged;
  conflicts_wrong += o.conflicts_wrong;
  events_total += o.events_total;
  events_lost += o.events_lost;
  orphan_seen += o.orphan_seen;
  partial_txn_seen += o.partial_txn_seen;
  deletes_lost += o.deletes_lost;
}

namespace {

// Tables (the same name on every endpoint) and their collections.
constexpr const char* kItems = "t";         // items: id, a, b, c
constexpr const char* kParents = "parent";  // parents: id, name
constexpr const char* kChildren = "child";  // children: id, parent_id -> parent.id, v
constexpr const char* kEvents = "ev";       // events: id, origin, n (insert-only)
const std::vector<std::string> kTables = {kItems, kParents, kChildren, kEvents};

// The engine's clocks, advanced only by the scheduler: retries, backoff and pacing depend on the
// seed, not on how fast the machine runs.
class SimEnv final : public Env {
 public:
  std::chrono::steady_clock::time_point Now() override {
    return std::chrono::steady_clock::time_point(std::chrono::milliseconds(now_ms_));
  }
  double WallMs() override { return static_cast<double>(now_ms_); }
  void Sleep(std::chrono::milliseconds d) override { now_ms_ += d.count(); }
  void Advance(int64_t ms) { now_ms_ += ms; }
  int64_t now_ms() const { return now_ms_; }
  void set_now_ms(int64_t ms) { now_ms_ = ms; }

 private:
  int64_t now_ms_ = 1'000'000;
};

// A fresh directory for the engine's state file, removed at the end. In memory (/dev/shm)
// where there is one: the simulation kills processes, not machines, so the disk's syncs only
// cost time.
class ScratchDir {
 public:
  ScratchDir() {
    std::error_code ec;
    std::filesystem::path base = std::filesystem::is_directory("/dev/shm", ec)
                                     ? std::filesystem::path("/dev/shm")
                                     : std::filesystem::temp_directory_path();
    std::string tmpl = (base / "duplex-sim-XXXXXX").string();
    if (mkdtemp(tmpl.data())) path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string Show(const std::optional<Row>& row) { return row ? row->dump() : "absent"; }

// A field written in the concurrency phase: by one endpoint (P3) or several (P4).
struct FieldCase {
  int id = 0;
  std::string field;
  int writers = 0;  // distinct values written
};

// A client write of the concurrency phase.
struct PhaseWrite {
  size_t endpoint = 0;
  int id = 0;
  char op = 'U';  // I U D
  Row values;     // I, U: the fields written
  double ts = 0;  // the endpoint's clock when it wrote
};

class Simulation {
 public:
  explicit Simulation(const SimOptions& o) : o_(o), rng_(o.seed) {
    faults_.rng.seed(o.seed ^ 0x9e3779b97f4a7c15ULL);
    faults_.log = [this](const std::string& s) { Event(s); };
    faults_.observe = [this](MemoryEndpoint& ep) { Observe(ep); };
  }

  SimResult Run() {
    SimResult r = RunInner();
    Collect(r.metrics);
    if (!r.ok) {
      r.failure = "seed " + std::to_string(o_.seed) + " FAILED: " + r.failure +
                  "\nreplay: " + ReplayCommand(o_);
    }
    r.history = std::move(history_);
    return r;
  }

 private:
  uint64_t Rand(uint64_t n) { return rng_() % n; }
  bool Chance(int per_mille) { return Rand(1000) < static_cast<uint64_t>(per_mille); }
  void Event(std::string s) { history_.push_back(std::to_string(step_) + ": " + std::move(s)); }
  SimResult Fail(const std::string& why) { return SimResult{false, why, {}, {}}; }
  int Parents() const { return std::max(2, o_.keys / 4); }

  void Collect(SimMetrics& m) {
    m_.runs = 1;
    m_.client_writes = client_writes_;
    for (const auto& ep : all_endpoints_) {
      m_.sync_writes += ep->sync_writes();
      m_.echo_writes += ep->noop_writes();
      m_.rejected += ep->rejected_writes();
    }
    m_.crashes = crashes_;
    m_.midstep_crashes = faults_.crashes;
    m_.faults = faults_.faults;
    m_.outages = outages_;
    m_.delays = faults_.delays;
    m_.duplicates = faults_.duplicates;
    m_.double_applies = faults_.double_applies;
    m = m_;
  }

  // --- Setup.

  std::string ConfigText() const {
    std::string toml =
        "[engine]\nstate = \"state.db\"\nbatch_rows = " + std::to_string(batch_rows_) + "\n";
    for (const auto& ep : endpoints_) {
      toml +=
          "[endpoints." + ep->name() + "]\ntype = \"sqlite\"\npath = \"" + ep->name() + ".db\"\n";
    }
    auto collection = [&](const std::string& name, const std::string& table,
                          const std::string& extra) {
      toml += "[collections." + name + "]\nkey = [\"id\"]\n" + extra;
      for (const auto& ep : endpoints_) {
        toml += "endpoints." + ep->name() + " = { table = \"" + table + "\" }\n";
      }
    };
    std::string items = max_b_ ? "fields.b = { policy = \"max\" }\n" : "";
    if (c_policy_ == "min") items += "fields.c = { policy = \"min\" }\n";
    if (c_policy_ == "prefer") items += "fields.c = { policy = \"prefer\", endpoint = \"e1\" }\n";
    if (keep_) items += "on_delete_conflict = \"keep\"\n";
    collection("items", kItems, items);
    collection("parents", kParents, keep_ ? "on_delete_conflict = \"keep\"\n" : "");
    collection("children", kChildren, "");
    collection("events", kEvents, "");
    return toml;
  }

  Status Setup() {
    int n = 2 + static_cast<int>(Rand(2));
    max_b_ = Chance(500);
    {
      // Drawn from their own stream, so that a seed's schedule stays what it was before these
      // knobs existed (the regression seeds).
      std::mt19937_64 policy_rng(o_.seed ^ 0x243f6a8885a308d3ULL);
      const uint64_t p = policy_rng() % 3;
      c_policy_ = p == 0 ? "lww" : p == 1 ? "min" : "prefer";
      keep_ = o_.keep >= 0 ? o_.keep > 0 : policy_rng() % 4 == 0;
    }
    batch_rows_ = Chance(300) ? 1 + static_cast<int>(Rand(6)) : 10000;
    auto knob = [&](bool on) { return on ? static_cast<int>(Rand(60)) : 0; };
    bool f1 = Chance(500), f2 = Chance(500), f3 = Chance(500);
    faults_.capture_per_mille = o_.faults >= 0 ? o_.faults : knob(f1);
    faults_.apply_per_mille = o_.faults >= 0 ? o_.faults : knob(f2);
    faults_.lost_reply_per_mille = o_.faults >= 0 ? o_.faults : knob(f3);
    crash_ = o_.crash >= 0 ? o_.crash : (Chance(300) ? 0 : static_cast<int>(Rand(60)));
    int midstep =
        o_.midstep_crash >= 0 ? o_.midstep_crash : (Chance(300) ? 0 : static_cast<int>(Rand(10)));
    faults_.crash_per_mille = o_.naive ? 0 : midstep;
    faults_.delay_per_mille = o_.reorder ? 150 : 0;
    faults_.duplicate_per_mille = o_.duplicate ? 50 : 0;
    faults_.apply_twice_per_mille = o_.duplicate ? 50 : 0;
    faults_.sabotage_drop_per_mille = o_.sabotage_drop;
    // Partial transactions are visible when a capture limit below the transaction's size cuts
    // it (README, limits): checked only where no limit can cut one.
    check_txns_ = batch_rows_ >= 10000;

    auto col = [](const char* name, const char* type, int pk) {
      return ColumnInfo{name, type, false, false, pk, false};
    };
    TableInfo items{kItems,
                    true,
                    {col("id", "INTEGER", 1), col("a", "INTEGER", 0), col("b", "INTEGER", 0),
                     col("c", "TEXT", 0)},
                    {}};
    TableInfo parents{kParents, true, {col("id", "INTEGER", 1), col("name", "TEXT", 0)}, {}};
    TableInfo children{
        kChildren,
        true,
        {col("id", "INTEGER", 1), col("parent_id", "INTEGER", 0), col("v", "INTEGER", 0)},
        {}};
    TableInfo events{kEvents,
                     true,
                     {col("id", "INTEGER", 1), col("origin", "TEXT", 0), col("n", "INTEGER", 0)},
                     {}};
    for (int i = 0; i < n; ++i) {
      auto ep = std::make_shared<MemoryEndpoint>("e" + std::to_string(i),
                                                 1.7e12 + static_cast<double>(Rand(1000)));
      for (const TableInfo& t : {items, parents, children, events}) ep->DeclareTable(t);
      // Some endpoints capture like PostgreSQL's logical decoding: updates without
      // before-images. Derived from the seed without drawing from the schedule's generator.
      ep->update_before_images = ((o_.seed * 2654435761u) >> (4 + i)) % 3 != 0;
      ep->rest_like = o_.rest && i == 1;
      ep->DeclareForeignKey({kChildren, "parent_id", kParents});
      endpoints_.push_back(ep);
    }
    all_endpoints_ = endpoints_;
    Event("setup: " + std::string(o_.naive ? "naive one-way pipelines" : "duplex") + ", " +
          std::to_string(n) + " endpoints, items policy lww" + (max_b_ ? " (b: max)" : "") +
          " (c: " + c_policy_ + ")" + (keep_ ? " on_delete_conflict keep" : "") + ", batch_rows " +
          std::to_string(batch_rows_) + ", crash per mille of steps/calls " +
          std::to_string(crash_) + "/" + std::to_string(faults_.crash_per_mille) +
          ", faults capture/apply/lost-reply per mille " +
          std::to_string(faults_.capture_per_mille) + "/" +
          std::to_string(faults_.apply_per_mille) + "/" +
          std::to_string(faults_.lost_reply_per_mille));
    // Rows that exist before sync starts (the initial load).
    for (auto& ep : endpoints_) {
      int rows = static_cast<int>(Rand(4));
      for (int i = 0; i < rows; ++i) ClientInsert(*ep, 1 + static_cast<int>(Rand(o_.keys)));
    }
    if (o_.naive) {
      naive_ = std::make_unique<NaiveSync>(kTables, static_cast<size_t>(batch_rows_));
      return Status::Ok();
    }
    Result<Config> config = ParseConfig(ConfigText(), dir_.File("duplex.toml"));
    if (!config.ok()) return config.status();
    config_ = *config;
    return OpenEngine();
  }

  Status OpenEngine() {
    engine_.reset();
    std::map<std::string, std::unique_ptr<Connector>> connectors;
    for (auto& ep : endpoints_) {
      connectors[ep->name()] = std::make_unique<FaultyConnector>(ep, &faults_);
    }
    Result<std::unique_ptr<Engine>> engine =
        Engine::OpenWith(config_, std::move(connectors), true, &env_);
    if (!engine.ok()) return engine.status();
    engine_ = std::move(engine).value();
    return Status::Ok();
  }

  // --- Client writes (the applications on each endpoint).

  Value RandomValue(const std::string& field) {
    if (field == "c") return "s" + std::to_string(Rand(50));
    return static_cast<int64_t>(Rand(100));
  }

  std::string At(const MemoryEndpoint& ep) const {
    return "client " + ep.name() + " @" + std::to_string(static_cast<int64_t>(ep.now_ms())) + ": ";
  }

  void ClientInsert(MemoryEndpoint& ep, int id) {
    Row row = {{"id", id}, {"a", RandomValue("a")}, {"b", RandomValue("b")}};
    if (Chance(800)) row["c"] = RandomValue("c");
    ++client_writes_;
    if (ep.Insert(kItems, row)) {
      Event(At(ep) + "insert t " + row.dump());
      last_write_[{kItems, id}] = 'I';
    }
  }

  void ClientWrite(MemoryEndpoint& ep) { ClientWriteKey(ep, 1 + static_cast<int>(Rand(o_.keys))); }

  void ClientWriteKey(MemoryEndpoint& ep, int id) {
    Row key = {{"id", id}};
    if (!ep.Get(kItems, key)) {
      ClientInsert(ep, id);
    } else if (Chance(800)) {
      Row changes = Row::object();
      for (const char* f : {"a", "b", "c"}) {
        if (Chance(500)) changes[f] = Chance(50) ? Value() : RandomValue(f);
      }
      if (changes.empty()) changes["a"] = RandomValue("a");
      ++client_writes_;
      ep.Update(kItems, key, changes);
      Event(At(ep) + "update t id=" + std::to_string(id) + " set " + changes.dump());
      last_write_[{kItems, id}] = 'U';
    } else {
      ++client_writes_;
      ep.Delete(kItems, key);
      Event(At(ep) + "delete t id=" + std::to_string(id));
      last_write_[{kItems, id}] = 'D';
    }
  }

  // Parent and child rows; the endpoint's foreign key refuses orphans, as a database would.
  void ClientFamily(MemoryEndpoint& ep) {
    ++client_writes_;
    if (Chance(300)) {
      int pid = 1 + static_cast<int>(Rand(Parents()));
      Row key = {{"id", pid}};
      if (!ep.Get(kParents, key)) {
        Row row = {{"id", pid}, {"name", "p" + std::to_string(Rand(50))}};
        if (ep.Insert(kParents, row)) Event(At(ep) + "insert parent " + row.dump());
      } else if (o_.parent_deletes && Chance(250)) {
        bool done = ep.Delete(kParents, key);
        Event(At(ep) + "delete parent id=" + std::to_string(pid) +
              (done ? "" : " (refused: it has children)"));
      } else {
        Row changes = {{"name", "p" + std::to_string(Rand(50))}};
        ep.Update(kParents, key, changes);
        Event(At(ep) + "update parent id=" + std::to_string(pid) + " set " + changes.dump());
      }
      return;
    }
    int cid = 1 + static_cast<int>(Rand(o_.keys));
    Row key = {{"id", cid}};
    std::vector<int> parents;
    for (const auto& [k, row] : ep.rows().at(kParents)) parents.push_back(row["id"].get<int>());
    if (!ep.Get(kChildren, key)) {
      // A new child, with a new parent in the same transaction now and then.
      ep.Begin();
      int pid = 0;
      if (parents.empty() || Chance(300)) {
        pid = 1 + static_cast<int>(Rand(Parents()));
        Row prow = {{"id", pid}, {"name", "p" + std::to_string(Rand(50))}};
        if (ep.Insert(kParents, prow)) Event(At(ep) + "(txn) insert parent " + prow.dump());
      } else {
        pid = parents[Rand(parents.size())];
      }
      Row row = {{"id", cid}, {"parent_id", pid}, {"v", static_cast<int64_t>(Rand(100))}};
      bool done = ep.Insert(kChildren, row);
      ep.Commit();
      Event(At(ep) + "(txn) insert child " + row.dump() + (done ? "" : " (refused)"));
    } else if (Chance(700)) {
      Row changes = Row::object();
      if (!parents.empty() && Chance(400)) changes["parent_id"] = parents[Rand(parents.size())];
      if (changes.empty() || Chance(500)) changes["v"] = static_cast<int64_t>(Rand(100));
      bool done = ep.Update(kChildren, key, changes);
      Event(At(ep) + "update child id=" + std::to_string(cid) + " set " + changes.dump() +
            (done ? "" : " (refused)"));
    } else {
      ep.Delete(kChildren, key);
      Event(At(ep) + "delete child id=" + std::to_string(cid));
    }
  }

  // A transaction of new insert-only rows: P6 (none lost) and P7 (never partly visible).
  void ClientEvents(size_t e) {
    MemoryEndpoint& ep = *endpoints_[e];
    int n = 1 + static_cast<int>(Rand(4));
    std::vector<int64_t> ids;
    ep.Begin();
    for (int i = 0; i < n; ++i) {
      int64_t id = static_cast<int64_t>(e + 1) * 1'000'000 + ++event_seq_[e];
      Row row = {{"id", id}, {"origin", ep.name()}, {"n", i}};
      if (ep.Insert(kEvents, row)) {
        ids.push_back(id);
        events_[id] = row;
      }
      ++client_writes_;
    }
    ep.Commit();
    Event(At(ep) + "insert " + std::to_string(ids.size()) + " event(s) in one transaction, from " +
          std::to_string(ids.front()));
    if (ids.size() > 1) txns_.push_back(std::move(ids));
  }

  // --- Observation (P7), after every committed apply of duplex or a naive pipeline's batch.

  void Observe(MemoryEndpoint& ep) {
    std::string orphan = ep.Orphans();
    if (!orphan.empty()) {
      ++m_.orphan_seen;
      if (violation_.empty()) {
        violation_ = "P7 (child before parent) on " + ep.name() + ": " + orphan;
      }
    }
    if (!check_txns_ || ep.rest_like) return;  // a REST-like endpoint has no transactions
    CheckTxnsWhole(ep);
    const auto& rows = ep.rows().at(kEvents);
    for (const std::vector<int64_t>& txn : txns_) {
      size_t present = 0;
      for (int64_t id : txn) present += rows.count(ep.KeyOf(kEvents, Row{{"id", id}}));
      if (present == 0 || present == txn.size()) continue;
      ++m_.partial_txn_seen;
      if (violation_.empty()) {
        violation_ = "P7 (partial transaction) on " + ep.name() + ": " + std::to_string(present) +
                     " of the " + std::to_string(txn.size()) + " rows inserted from event " +
                     std::to_string(txn.front()) + " in one transaction";
      }
    }
  }

  // P7, one source transaction = one target transaction: the row writes an application
  // transaction caused on another endpoint take effect in one apply call (writes that lose to
  // later ones, or are rejected and planned again, carry another source or none). A write is
  // matched to its transaction by its source endpoint, RowOp::txn (the captured transaction's
  // id), commit time and row; not by commit time and row alone: a write of duplex's on a
  // REST-like endpoint is its own transaction there, and when captured back and passed on it
  // can carry the commit time of an application transaction that wrote the same row in the
  // same millisecond (seed 548 of --rest).
  void CheckTxnsWhole(MemoryEndpoint& target) {
    const int64_t call = ++apply_calls_[target.name()];
    for (const AppliedWrite& w : target.last_apply()) {
      if (w.source.empty() || w.source == target.name()) continue;
      const MemoryEndpoint* src = nullptr;
      for (const auto& ep : endpoints_) {
        if (ep->name() == w.source) src = ep.get();
      }
      if (!src) continue;
      const int64_t txn = w.txn;
      auto t = src->source_txns().find(txn);
      if (t == src->source_txns().end() || t->second.at != w.source_commit_ms ||
          !t->second.rows.count({w.table, w.key}) || t->second.rows.size() < 2) {
        continue;
      }
      auto [it, fresh] = txn_calls_.try_emplace(std::make_tuple(target.name(), w.source, txn),
                                                std::make_pair(call, w.table + " " + w.key));
      if (fresh || it->second.first == call) continue;
      ++m_.partial_txn_seen;
      if (violation_.empty()) {
        violation_ = "P7 (one source transaction, one target transaction) on " + target.name() +
                     ": transaction " + std::to_string(txn) + " of " + w.source + " (" +
                     std::to_string(src->source_txns().at(txn).rows.size()) +
                     " rows) applied in two calls: " + it->second.second + " in one, " + w.table +
                     " " + w.key + " in a later one";
      }
    }
  }

  // --- Sync (duplex's engine, or the naive pipelines).

  bool IsDown(const std::string& name) const {
    auto it = faults_.down.find(name);
    return faults_.enabled && it != faults_.down.end() && it->second > 0;
  }

  Status SyncStep(bool* moved = nullptr) {
    if (naive_) {
      bool m = naive_->Step(
          endpoints_, faults_.rng, [this](const std::string& n) { return IsDown(n); },
          [this](MemoryEndpoint& ep) { Observe(ep); });
      if (moved) *moved = m;
      return Status::Ok();
    }
    faults_.injected = false;
    try {
      Result<bool> r = engine_->Step();
      if (!r.ok()) return r.status().WithContext("Step");
      if (moved) *moved = *r;
    } catch (const SimCrash& c) {
      // Everything the engine held in memory is gone; its state file keeps what it committed.
      if (moved) *moved = true;
      return OpenEngine();
    }
    return Status::Ok();
  }

  // Runs the sync without faults until it is idle (`idle` quiet steps, each letting
  // `advance_ms` pass: 500 ms lets any backoff, at most 2 s, run out).
  Status SyncUntilIdle(int idle_steps, int64_t advance_ms) {
    bool enabled = faults_.enabled;
    faults_.enabled = false;
    int idle = 0;
    for (int i = 0; i < 2000 && idle < idle_steps; ++i) {
      env_.Advance(advance_ms);
      bool moved = false;
      if (Status s = SyncStep(&moved); !s.ok()) return s;
      idle = moved ? 0 : idle + 1;
    }
    faults_.enabled = enabled;
    if (idle < idle_steps) return Status::Corruption("not quiescent after 2000 steps");
    return Status::Ok();
  }

  void AdvanceClocks(int64_t ms) {
    env_.Advance(ms);
    for (auto& ep : endpoints_) ep->Advance(static_cast<double>(ms));
  }

  std::string CheckViolations() {
    if (!faults_.violation.empty()) return faults_.violation;
    return violation_;
  }

  // --- The run.

  SimResult RunInner() {
    if (Status s = Setup(); !s.ok()) return Fail("setup: " + s.ToString());
    for (step_ = 0; step_ < o_.steps; ++step_) {
      AdvanceClocks(static_cast<int64_t>(Rand(20)));
      for (auto& [name, left] : faults_.down) {
        if (left > 0 && --left == 0) Event("endpoint " + name + " reachable again");
      }
      uint64_t pick = Rand(1000);
      size_t e = Rand(endpoints_.size());
      MemoryEndpoint& ep = *endpoints_[e];
      if (pick < 330) {
        ClientWrite(ep);
      } else if (pick < 370) {
        int writes = 2 + static_cast<int>(Rand(3));
        Event(At(ep) + "begin transaction of " + std::to_string(writes));
        ep.Begin();
        for (int i = 0; i < writes; ++i) ClientWrite(ep);
        ep.Commit();
      } else if (pick < 420) {
        ClientFamily(ep);
      } else if (pick < 440) {
        ClientEvents(e);
      } else if (pick < 860) {
        Event("sync step");
        if (Status s = SyncStep(); !s.ok()) return Fail(s.ToString());
      } else if (pick < 860 + static_cast<uint64_t>(std::min(50, crash_))) {
        if (!o_.naive) {
          Event("engine crash + reopen");
          ++crashes_;
          if (Status s = OpenEngine(); !s.ok()) return Fail("reopen: " + s.ToString());
        }
      } else if (pick < 910) {
        double skew = (static_cast<double>(Rand(600001)) - 300000.0);
        ep.Skew(skew);
        Event("clock " + ep.name() + " skewed by " + std::to_string(static_cast<int64_t>(skew)) +
              " ms");
      } else if (pick < 920 && o_.outages) {
        int steps = 3 + static_cast<int>(Rand(30));
        faults_.down[ep.name()] = steps;
        ++outages_;
        Event("endpoint " + ep.name() + " unreachable for " + std::to_string(steps) + " steps");
      }
      // else: time passes
      if (std::string v = CheckViolations(); !v.empty() && !o_.naive) return Fail(v);
    }

    // Writes stop; the sync runs until quiescent, without faults.
    Event("quiesce");
    faults_.enabled = false;
    faults_.down.clear();
    if (Status s = SyncUntilIdle(6, 500); !s.ok()) return Fail("quiesce: " + s.ToString());
    if (SimResult r = CheckConverged("after the main phase", true); !r.ok) return r;
    if (!o_.naive) {
      if (SimResult r = CheckQuiet(); !r.ok) return r;
    }
    if (std::string v = CheckViolations(); !v.empty() && !o_.naive) return Fail(v);
    if (o_.naive) {
      // The pipelines diverged: re-seed every endpoint with a full copy of the first, so that
      // the phases below start, as duplex's do, from identical endpoints.
      for (auto& ep : endpoints_) ep->CopyRowsFrom(*endpoints_[0]);
    }
    if (SimResult r = CheckRaces(); !r.ok) return r;
    return CheckConcurrent();
  }

  // P1 (identical rows everywhere), P6 (every event everywhere), deletes, dead letters.
  // `count`: add to the metrics (the main phase only).
  SimResult CheckConverged(const std::string& when, bool count) {
    SimMetrics m;
    std::string diff;
    int64_t diverged = 0;
    for (const std::string& table : kTables) {
      std::set<std::string> keys;
      for (auto& ep : endpoints_) {
        for (const auto& [k, row] : ep->rows().at(table)) keys.insert(k);
      }
      for (const std::string& k : keys) {
        std::optional<Row> first;
        bool same = true;
        std::string line = "\n  " + table + " " + k + ":";
        for (size_t i = 0; i < endpoints_.size(); ++i) {
          const auto& rows = endpoints_[i]->rows().at(table);
          auto it = rows.find(k);
          std::optional<Row> have;
          if (it != rows.end()) have = it->second;
          if (i == 0) first = have;
          same &= have == first;
          line += " " + endpoints_[i]->name() + " " + Show(have);
        }
        if (same) continue;
        ++diverged;
        ++m.diverged_rows;
        if (diverged <= 8) diff += line;
      }
    }
    for (const auto& [id, row] : events_) {
      ++m.events_total;
      for (auto& ep : endpoints_) {
        if (ep->Get(kEvents, Row{{"id", id}}) != row) {
          ++m.events_lost;
          if (m.events_lost <= 3) diff += "\n  event " + row.dump() + " missing on " + ep->name();
          break;
        }
      }
    }
    std::string delete_lost;
    for (const auto& [what, op] : last_write_) {
      if (op != 'D') continue;
      for (auto& ep : endpoints_) {
        if (std::optional<Row> row = ep->Get(what.first, Row{{"id", what.second}})) {
          ++m.deletes_lost;
          if (count)
            Event("note: " + what.first + " " + row->dump() + " deleted last, present on " +
                  ep->name());
          if (delete_lost.empty()) {
            delete_lost = what.first + " " + row->dump() + " on " + ep->name();
          }
          break;
        }
      }
    }
    if (diverged > 0) ++m.diverged_runs;
    if (count) {
      m_.diverged_rows += m.diverged_rows;
      m_.diverged_runs += m.diverged_runs;
      m_.events_total += m.events_total;
      m_.events_lost += m.events_lost;
      m_.deletes_lost += m.deletes_lost;
    }
    if (o_.naive) return SimResult{};
    if (diverged > 0 || m.events_lost > 0) {
      return Fail("P1/P6 (convergence, nothing lost) " + when + ": " + std::to_string(diverged) +
                  " row(s) differ, " + std::to_string(m.events_lost) + " event(s) lost" + diff);
    }
    // Delete wins (the default): every write before the last delete of a row was either seen
    // by it or concurrent with it, so the row is gone whatever the arrival order (P4). With
    // "keep" a concurrent update wins instead: not checked here.
    if (count && !keep_ && !delete_lost.empty()) {
      return Fail("P4 (delete wins) " + when + ": the last client write of " + delete_lost +
                  " was a delete, yet the row is there");
    }
    Result<int64_t> dead = engine_->DeadLetterCount();
    if (!dead.ok()) return Fail("dead letters: " + dead.status().ToString());
    if (*dead != 0) return Fail(std::to_string(*dead) + " dead letter(s) " + when);
    return SimResult{};
  }

  // P5: further steps apply nothing and capture nothing new.
  SimResult CheckQuiet() {
    std::vector<std::pair<int64_t, int64_t>> before;
    for (auto& ep : endpoints_) before.emplace_back(ep->applied_id(), ep->last_seq());
    for (int i = 0; i < 10; ++i) {
      bool moved = false;
      if (Status s = SyncStep(&moved); !s.ok()) return Fail("P5 steps: " + s.ToString());
      if (moved) return Fail("P5 (no echo): a step after quiescence moved something");
    }
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      auto now = std::make_pair(endpoints_[i]->applied_id(), endpoints_[i]->last_seq());
      if (now != before[i]) {
        return Fail("P5 (no echo): endpoint " + endpoints_[i]->name() +
                    " was written after quiescence");
      }
    }
    return SimResult{};
  }

  // P2, the race of two writes 10 ms apart: endpoint X writes a row, the sync delivers it,
  // and 10 ms later endpoint Y, having received it, writes the row again: Y's write was made
  // after seeing X's, so it must win whatever the (skewed) clocks say.
  SimResult CheckRaces() {
    step_ = o_.steps + 1;
    Event("P2 phase: writes 10 ms after another endpoint's, clocks skewed");
    for (auto& ep : endpoints_) {
      double skew = static_cast<double>(Rand(600001)) - 300000.0;
      ep->Skew(skew);
      Event("clock " + ep->name() + " skewed by " + std::to_string(static_cast<int64_t>(skew)) +
            " ms");
    }
    int pairs = 1 + static_cast<int>(Rand(6));
    std::set<int> used;
    for (int i = 0; i < pairs; ++i) {
      int id = 1 + static_cast<int>(Rand(o_.keys));
      size_t x = Rand(endpoints_.size());
      size_t y = (x + 1 + Rand(endpoints_.size() - 1)) % endpoints_.size();
      if (!used.insert(id).second) continue;
      ClientWriteKey(*endpoints_[x], id);
      if (Status s = SyncUntilIdle(3, 0); !s.ok()) return Fail("P2 phase: " + s.ToString());
      AdvanceClocks(10);
      ClientWriteKey(*endpoints_[y], id);
      std::optional<Row> want = endpoints_[y]->Get(kItems, Row{{"id", id}});
      if (Status s = SyncUntilIdle(3, 0); !s.ok()) return Fail("P2 phase: " + s.ToString());
      ++m_.race_total;
      for (auto& ep : endpoints_) {
        std::optional<Row> have = ep->Get(kItems, Row{{"id", id}});
        if (have == want) continue;
        ++m_.race_lost;
        if (o_.naive) break;
        return Fail("P2 (sequential intent): id=" + std::to_string(id) + " was written on " +
                    endpoints_[y]->name() + " (" + Show(want) + ") 10 ms after " +
                    endpoints_[x]->name() + "'s write had reached it, but " + ep->name() +
                    " holds " + Show(have));
      }
    }
    return SimResult{};
  }

  // --- P3/P4: concurrent writes from a converged state, delivered in several orders.

  // Whether candidate (v, ts, origin) beats (v2, ts2, origin2) under the field's policy
  // (README: lww = later commit time, ties to the endpoint name that sorts first; max / min =
  // larger / smaller value, ties by lww; prefer = the preferred endpoint's value, between
  // others lww). Written out here, not taken from src/core, as the model.
  bool Beats(const std::string& field, const PhaseWrite& a, const Value& av, const PhaseWrite& b,
             const Value& bv) const {
    if (field == "b" && max_b_ && CompareValues(av, bv) != 0) return CompareValues(av, bv) > 0;
    if (field == "c" && c_policy_ == "min" && CompareValues(av, bv) != 0) {
      return CompareValues(av, bv) < 0;
    }
    if (field == "c" && c_policy_ == "prefer") {
      const bool ap = endpoints_[a.endpoint]->name() == "e1";
      const bool bp = endpoints_[b.endpoint]->name() == "e1";
      if (ap != bp) return ap;
    }
    if (a.ts != b.ts) return a.ts > b.ts;
    return endpoints_[a.endpoint]->name() < endpoints_[b.endpoint]->name();
  }

  SimResult CheckConcurrent() {
    step_ = o_.steps + 2;
    Event("P3/P4 phase: concurrent writes, then " + std::to_string(o_.forks) +
          " different deliveries");
    for (auto& ep : endpoints_) {
      double skew = static_cast<double>(Rand(600001)) - 300000.0;
      ep->Skew(skew);
    }
    // Keys: some that exist, some that do not (concurrent inserts).
    std::vector<int> keys;
    std::set<int> seen;
    for (int i = 0; i < 7; ++i) {
      int id = 1 + static_cast<int>(Rand(o_.keys));
      if (seen.insert(id).second) keys.push_back(id);
    }
    std::map<int, std::optional<Row>> base;
    for (int id : keys) base[id] = endpoints_[0]->Get(kItems, Row{{"id", id}});
    std::vector<PhaseWrite> writes;
    for (int id : keys) {
      for (size_t e = 0; e < endpoints_.size(); ++e) {
        if (!Chance(600)) continue;
        PhaseWrite w{e, id, base[id] ? 'U' : 'I', Row::object(), 0};
        if (base[id] && Chance(120)) w.op = 'D';
        for (const char* f : {"a", "b", "c"}) {
          if (w.op == 'I' || (w.op == 'U' && Chance(500))) {
            w.values[f] = f == std::string("c") ? Value("w" + std::to_string(Rand(1000000)))
                                                : Value(1000 + static_cast<int64_t>(Rand(1000000)));
          }
        }
        if (w.op == 'U' && w.values.empty()) w.values["a"] = 1000 + static_cast<int64_t>(Rand(99));
        writes.push_back(std::move(w));
      }
    }
    std::shuffle(writes.begin(), writes.end(), rng_);
    for (PhaseWrite& w : writes) {
      AdvanceClocks(10);
      MemoryEndpoint& ep = *endpoints_[w.endpoint];
      w.ts = ep.now_ms();
      Row key = {{"id", w.id}};
      ++client_writes_;
      if (w.op == 'D') {
        ep.Delete(kItems, key);
        Event(At(ep) + "delete t id=" + std::to_string(w.id));
      } else if (w.op == 'U') {
        ep.Update(kItems, key, w.values);
        Event(At(ep) + "update t id=" + std::to_string(w.id) + " set " + w.values.dump());
      } else {
        Row row = w.values;
        row["id"] = w.id;
        ep.Insert(kItems, row);
        Event(At(ep) + "insert t " + row.dump());
      }
    }

    // The model: per key and field, the policy's winner among the writes that changed it.
    std::map<int, std::optional<Row>> expect;
    std::vector<FieldCase> cases;
    std::set<int> deleted_conflict;  // keys with a delete and an update
    for (int id : keys) {
      std::vector<const PhaseWrite*> ws;
      bool del = false, upd = false;
      for (const PhaseWrite& w : writes) {
        if (w.id != id) continue;
        ws.push_back(&w);
        del |= w.op == 'D';
        upd |= w.op != 'D';
      }
      if (ws.empty()) {
        expect[id] = base[id];
        continue;
      }
      if (del && upd) deleted_conflict.insert(id);
      if (del && (!keep_ || !upd)) {
        expect[id] = std::nullopt;
        continue;
      }
      // on_delete_conflict = "keep": the updates win over the deletes, merged as if alone.
      std::erase_if(ws, [](const PhaseWrite* w) { return w->op == 'D'; });
      Row row = base[id] ? *base[id] : Row{{"id", id}, {"a", nullptr}, {"b", nullptr}};
      if (!base[id]) row["c"] = nullptr;
      for (const char* f : {"a", "b", "c"}) {
        const PhaseWrite* best = nullptr;
        std::set<std::string> values;
        for (const PhaseWrite* w : ws) {
          if (!w->values.contains(f)) continue;
          const Value& v = w->values[f];
          if (base[id] && ValuesEqual((*base[id])[f], v)) continue;
          values.insert(v.dump());
          if (!best || Beats(f, *w, v, *best, best->values[f])) best = w;
        }
        if (best) row[f] = best->values[f];
        if (!values.empty() && !del) cases.push_back({id, f, static_cast<int>(values.size())});
      }
      expect[id] = row;
    }

    // Deliver the same writes several times, each from the same durable state, in another
    // order (delays, redeliveries, faults, outages and crashes drawn from another stream).
    int64_t max_conflict = 0;
    if (!o_.naive) {
      Result<std::vector<ConflictRow>> before = engine_->store().ListConflicts(true);
      if (!before.ok()) return Fail("conflict log: " + before.status().ToString());
      for (const ConflictRow& c : *before) max_conflict = std::max(max_conflict, c.id);
      engine_.reset();
    }
    const std::string state = dir_.File("state.db");
    std::vector<std::shared_ptr<MemoryEndpoint>> saved;
    for (auto& ep : endpoints_) saved.push_back(std::make_shared<MemoryEndpoint>(*ep));
    std::optional<NaiveSync> saved_naive;
    if (naive_) saved_naive = *naive_;
    if (!o_.naive) {
      for (const char* ext : {"", "-wal", "-shm"}) {
        std::error_code ec;
        std::filesystem::copy_file(state + ext, state + ".fork" + ext,
                                   std::filesystem::copy_options::overwrite_existing, ec);
      }
    }
    const int64_t env_at = env_.now_ms();
    std::vector<std::map<std::string, Row>> finals;
    for (int f = 0; f < std::max(1, o_.forks); ++f) {
      Event("delivery " + std::to_string(f));
      txn_calls_.clear();  // the same writes again, from the same state
      endpoints_.clear();
      for (auto& ep : saved) endpoints_.push_back(std::make_shared<MemoryEndpoint>(*ep));
      all_endpoints_.insert(all_endpoints_.end(), endpoints_.begin(), endpoints_.end());
      env_.set_now_ms(env_at);
      std::mt19937_64 frng(o_.seed * 1000003 + static_cast<uint64_t>(f));
      faults_.rng.seed(frng());
      faults_.enabled = true;
      if (naive_) {
        *naive_ = *saved_naive;
      } else {
        for (const char* ext : {"", "-wal", "-shm"}) {
          std::error_code ec;
          std::filesystem::remove(state + ext, ec);
          std::filesystem::copy_file(state + ".fork" + ext, state + ext, ec);
        }
        if (Status s = OpenEngine(); !s.ok()) return Fail("fork: " + s.ToString());
      }
      for (int i = 0; i < 40; ++i) {
        env_.Advance(static_cast<int64_t>(frng() % 40));
        if (!naive_ && static_cast<int>(frng() % 1000) < crash_) {
          Event("engine crash + reopen");
          ++crashes_;
          if (Status s = OpenEngine(); !s.ok()) return Fail("reopen: " + s.ToString());
        }
        if (Status s = SyncStep(); !s.ok()) return Fail("P4 delivery: " + s.ToString());
      }
      faults_.enabled = false;
      if (Status s = SyncUntilIdle(6, 500); !s.ok()) return Fail("P4 quiesce: " + s.ToString());
      if (SimResult r = CheckConverged("after concurrent writes", false); !r.ok) return r;
      if (std::string v = CheckViolations(); !v.empty() && !o_.naive) return Fail(v);
      if (SimResult r = CheckModel(keys, expect, cases, f == 0); !r.ok) return r;
      // With a REST-like endpoint P3/P4 do not hold yet (docs/DESIGN.md §3.4): counted in
      // conflicts_wrong, not failed.
      if (!o_.naive && !o_.rest) {
        if (SimResult r = CheckConflictLog(max_conflict, cases, deleted_conflict, f == 0); !r.ok) {
          return r;
        }
      }
      finals.push_back(endpoints_[0]->rows().at(kItems));
    }
    for (size_t f = 1; f < finals.size(); ++f) {
      if (finals[f] == finals[0]) continue;
      if (o_.naive || o_.rest) {
        ++m_.conflicts_wrong;
        continue;
      }
      return Fail("P4 (arrival order): the same concurrent writes delivered in another order " +
                  std::string("ended differently (delivery 0 vs ") + std::to_string(f) + ")");
    }
    return SimResult{};
  }

  // Every endpoint holds the model's row for every key (P3: different fields both kept; P4:
  // same field by policy); metrics from the first delivery only.
  SimResult CheckModel(const std::vector<int>& keys,
                       const std::map<int, std::optional<Row>>& expect,
                       const std::vector<FieldCase>& cases, bool count) {
    for (const auto& c : cases) {
      if (!count) break;
      const Value& want = (*expect.at(c.id))[c.field];
      bool ok = true;
      for (auto& ep : endpoints_) {
        std::optional<Row> have = ep->Get(kItems, Row{{"id", c.id}});
        ok &= have && ValuesEqual((*have)[c.field], want);
      }
      if (c.writers > 1) {
        ++m_.conflicts;
      } else {
        ++m_.field_total;
        if (!ok) ++m_.field_lost;
      }
    }
    for (int id : keys) {
      for (auto& ep : endpoints_) {
        std::optional<Row> have = ep->Get(kItems, Row{{"id", id}});
        if (have == expect.at(id)) continue;
        if (o_.rest) ++m_.conflicts_wrong;
        if (o_.naive || o_.rest) break;
        return Fail("P3/P4 (field merge, policy): id=" + std::to_string(id) + " on " + ep->name() +
                    " is " + Show(have) + ", the policies give " + Show(expect.at(id)));
      }
    }
    return SimResult{};
  }

  SimResult CheckConflictLog(int64_t after, const std::vector<FieldCase>& cases,
                             const std::set<int>& row_conflicts, bool count) {
    Result<std::vector<ConflictRow>> log = engine_->store().ListConflicts(true);
    if (!log.ok()) return Fail("conflict log: " + log.status().ToString());
    std::map<std::pair<int, std::string>, const ConflictRow*> last;
    for (const ConflictRow& c : *log) {
      if (c.id <= after || c.collection != "items") continue;
      last[{c.key.value("id", 0), c.field}] = &c;
    }
    for (const auto& c : cases) {
      auto it = last.find({c.id, c.field});
      if (c.writers == 1) {
        if (it == last.end()) continue;
        return Fail("P3 (field merge): id=" + std::to_string(c.id) + " field " + c.field +
                    " was written on one endpoint only, yet the conflict log has " +
                    it->second->ToJson().dump());
      }
      if (it == last.end()) {
        return Fail("P4 (conflict log): id=" + std::to_string(c.id) + " field " + c.field +
                    " was written concurrently with " + std::to_string(c.writers) +
                    " values, and the conflict log has no entry");
      }
      if (count) ++m_.conflicts_logged;
      const ConflictRow& row = *it->second;
      std::optional<Row> have = endpoints_[0]->Get(kItems, Row{{"id", c.id}});
      Value won = row.values.contains(row.winner) ? row.values[row.winner].value("value", Value())
                                                  : Value();
      if (!have || !ValuesEqual((*have)[c.field], won)) {
        return Fail("P4 (conflict log): id=" + std::to_string(c.id) + " field " + c.field +
                    ": the last entry's winner does not hold: " + row.ToJson().dump() + " vs " +
                    Show(have));
      }
    }
    for (int id : row_conflicts) {
      if (last.count({id, ""})) continue;
      return Fail("P4 (conflict log): id=" + std::to_string(id) +
                  " was deleted and updated concurrently, and the conflict log has no entry");
    }
    return SimResult{};
  }

  SimOptions o_;
  std::mt19937_64 rng_;
  SimEnv env_;
  FaultState faults_;
  SimMetrics m_;
  bool max_b_ = false;
  std::string c_policy_ = "lww";  // lww, min, prefer (e1)
  bool keep_ = false;             // on_delete_conflict = "keep" for items
  int batch_rows_ = 10000;
  bool check_txns_ = true;
  int step_ = -1;
  int crash_ = 0;  // per mille of steps: the engine is killed between steps
  int64_t client_writes_ = 0, crashes_ = 0, outages_ = 0;
  ScratchDir dir_;
  Config config_;
  std::vector<std::shared_ptr<MemoryEndpoint>> endpoints_;
  std::vector<std::shared_ptr<MemoryEndpoint>> all_endpoints_;  // for the counters
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<NaiveSync> naive_;
  std::vector<std::string> history_;
  std::string violation_;
  std::map<size_t, int64_t> event_seq_;
  std::map<int64_t, Row> events_;                           // every event row written
  std::vector<std::vector<int64_t>> txns_;                  // event ids written together
  std::map<std::pair<std::string, int>, char> last_write_;  // (table, id) -> I U D
  std::map<std::string, int64_t> apply_calls_;              // target -> committed apply calls
  // (target, source, source txn) -> the apply call its first write took effect in, and the row
  std::map<std::tuple<std::string, std::string, int64_t>, std::pair<int64_t, std::string>>
      txn_calls_;
};

}  // namespace

SimResult RunSimulation(const SimOptions& options) {
  Simulation sim(options);
  return sim.Run();
}

SimResult RunAndShrink(const SimOptions& options) {
  SimResult first = RunSimulation(options);
  if (first.ok || options.naive) return first;
  SimOptions best = options;
  SimResult best_r = first;
  auto fails = [&](const SimOptions& o) {
    SimResult r = RunSimulation(o);
    if (r.ok) return false;
    best = o;
    best_r = std::move(r);
    return true;
  };
  // Fewer steps (the schedule is a prefix of the same seed's), then fewer keys.
  for (int round = 0; round < 2; ++round) {
    bool progress = true;
    while (progress && best.steps > 1) {
      progress = false;
      for (int num : {1, 3, 7}) {
        SimOptions o = best;
        o.steps = best.steps * num / (num + 1);
        if (o.steps < best.steps && fails(o)) {
          progress = true;
          break;
        }
      }
    }
    for (int k : {2, 3, 4, 6, 8, 12, 16}) {
      if (k >= best.keys) break;
      SimOptions o = best;
      o.keys = k;
      if (fails(o)) break;
    }
  }
  SimResult out = first;
  std::ostringstream msg;
  msg << first.failure << "\nsmallest failing run found (" << best.steps << " steps, " << best.keys
      << " keys):\n"
      << best_r.failure << "\nits history:\n";
  for (const std::string& e : best_r.history) msg << "  " << e << "\n";
  out.failure = msg.str();
  return out;
}

std::string ReplayCommand(const SimOptions& o) {
  SimOptions d;
  std::string cmd = "build/debug/tests/sim/duplex-sim --seed " + std::to_string(o.seed) +
                    " --steps " + std::to_string(o.steps) + " --keys " + std::to_string(o.keys);
  if (o.naive) cmd += " --mode naive";
  if (o.crash != d.crash) cmd += " --crash " + std::to_string(o.crash);
  if (o.midstep_crash != d.midstep_crash)
    cmd += " --midstep-crash " + std::to_string(o.midstep_crash);
  if (o.faults != d.faults) cmd += " --faults " + std::to_string(o.faults);
  if (!o.reorder) cmd += " --no-reorder";
  if (!o.duplicate) cmd += " --no-duplicate";
  if (!o.outages) cmd += " --no-outages";
  if (o.keep != d.keep) cmd += " --keep " + std::to_string(o.keep);
  if (o.parent_deletes) cmd += " --parent-deletes";
  if (o.rest) cmd += " --rest";
  if (o.forks != d.forks) cmd += " --forks " + std::to_string(o.forks);
  if (o.sabotage_drop) cmd += " --sabotage-drop " + std::to_string(o.sabotage_drop);
  return cmd + " --history";
}

}  // namespace duplex::sim
