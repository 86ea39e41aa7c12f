// Deterministic simulation of duplex (issue 3), first slice: the real engine (resolver, planner,
// applier, state store, journal) driven by a seeded scheduler against in-memory endpoints that
// implement the connector contract like the SQLite connector. One seed determines everything:
// client writes, engine steps, engine crashes, clock skews and injected faults.
//
//   DUPLEX_SIM_SEED=<n>    run that seed only (replay), printing its whole history
//   DUPLEX_SIM_SEEDS=<n>   run seeds 1..n (default: kDefaultSeeds)
//   DUPLEX_SIM_STEPS=<n>   scheduler steps per seed (default: kDefaultSteps)
//   DUPLEX_SIM_KEYS=<n>    keys 1..n (default 20; fewer keys, more conflicts)
//
// Checked after the writes stop and the engine quiesces: P1 (every endpoint holds the same rows,
// deleted rows absent everywhere), P5 (further steps apply nothing: no echo), no dead letters.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "duplex/env.h"
#include "pipeline/engine.h"
#include "sim/memory_connector.h"
#include "support/test_util.h"

namespace duplex::sim {
namespace {

constexpr int kDefaultSeeds = 100;  // ~40 s under ASan on 2 cores
constexpr int kDefaultSteps = 250;
// Keys 1..kKeys (DUPLEX_SIM_KEYS overrides: fewer keys, more conflicts).
int kKeys = 20;
constexpr const char* kTable = "t";

int64_t EnvInt(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoll(v, nullptr, 10) : fallback;
}

// Faults injected by FaultyConnector, drawn from their own seeded stream.
struct FaultState {
  std::mt19937_64 rng;
  bool enabled = true;
  int capture_per_mille = 0;     // Capture fails (nothing read)
  int apply_per_mille = 0;       // Apply fails before writing anything
  int lost_reply_per_mille = 0;  // Apply commits, then the reply is lost (Unavailable)
  bool injected = false;         // a fault was injected since the last reset
  std::vector<std::string>* history = nullptr;

  bool Draw(int per_mille) {
    return enabled && per_mille > 0 && static_cast<int>(rng() % 1000) < per_mille;
  }
};

// A connector that fails at random (seeded): Unavailable, as an unreachable endpoint would.
class FaultyConnector final : public Connector {
 public:
  FaultyConnector(std::unique_ptr<Connector> inner, FaultState* faults)
      : inner_(std::move(inner)), f_(faults) {}

  const std::string& name() const override { return inner_->name(); }
  Status Open() override { return inner_->Open(); }
  Result<TableInfo> Describe(const std::string& table) override { return inner_->Describe(table); }
  Status Bind(std::vector<CollectionBinding> b) override { return inner_->Bind(std::move(b)); }
  Result<bool> IsInstalled() override { return inner_->IsInstalled(); }
  Status Install() override { return inner_->Install(); }
  Status Uninstall() override { return inner_->Uninstall(); }
  Result<bool> Poll() override { return inner_->Poll(); }
  Result<ChangeBatch> Capture(Position from, size_t max_changes) override {
    if (f_->Draw(f_->capture_per_mille)) return Fault("capture failed");
    return inner_->Capture(from, max_changes);
  }
  Result<int64_t> Backlog(Position from) override { return inner_->Backlog(from); }
  Status Ack(Position upto) override { return inner_->Ack(upto); }
  Result<int64_t> AppliedId() override { return inner_->AppliedId(); }
  Result<ApplyResult> Apply(const std::vector<ApplyBatch>& batches, bool isolate_rows) override {
    if (f_->Draw(f_->apply_per_mille)) return Fault("apply failed before writing");
    Result<ApplyResult> r = inner_->Apply(batches, isolate_rows);
    if (r.ok() && f_->Draw(f_->lost_reply_per_mille)) {
      return Fault("apply committed, reply lost (" + std::to_string(r->applied) + " applied)");
    }
    return r;
  }

 private:
  Status Fault(const std::string& what) {
    f_->injected = true;
    f_->history->push_back("   fault " + name() + ": " + what);
    return Status::Unavailable("simulated fault: " + what);
  }

  std::unique_ptr<Connector> inner_;
  FaultState* f_;
};

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

 private:
  int64_t now_ms_ = 1'000'000;
};

struct SimResult {
  bool ok = true;
  std::string failure;
};

// Totals over a run of seeds, to see that the interesting paths are exercised.
struct SimStats {
  int64_t client_writes = 0, apply_commits = 0, rejected = 0, crashes = 0, faults = 0;
};

class Simulation {
 public:
  Simulation(uint64_t seed, int steps) : seed_(seed), steps_(steps), rng_(seed) {
    faults_.rng.seed(seed ^ 0x9e3779b97f4a7c15ULL);
    faults_.history = &history_;
  }

  SimResult Run() {
    SimResult r = RunInner();
    if (!r.ok) {
      std::ostringstream out;
      out << "seed " << seed_ << " FAILED: " << r.failure << "\nreplay: DUPLEX_SIM_SEED=" << seed_
          << " build/sim/tests/sim_test --gtest_filter=SimTest.Seeds\nlast events:\n";
      size_t from = history_.size() > 30 && !replay_ ? history_.size() - 30 : 0;
      for (size_t i = from; i < history_.size(); ++i) out << "  " << history_[i] << "\n";
      r.failure = out.str();
    }
    return r;
  }

  void set_replay(bool replay) { replay_ = replay; }
  void AddStats(SimStats& s) const {
    for (const auto& ep : endpoints_) {
      s.apply_commits += ep->apply_commits();
      s.rejected += ep->rejected_writes();
    }
    s.client_writes += client_writes_;
    s.crashes += crashes_;
    s.faults += faults_count_;
  }
  const std::vector<std::string>& history() const { return history_; }

 private:
  uint64_t Rand(uint64_t n) { return rng_() % n; }
  bool Chance(int per_mille) { return Rand(1000) < static_cast<uint64_t>(per_mille); }

  void Event(std::string s) { history_.push_back(std::to_string(step_) + ": " + std::move(s)); }

  // --- Setup.

  std::string ConfigText() const {
    std::string toml =
        "[engine]\nstate = \"state.db\"\nbatch_rows = " + std::to_string(batch_rows_) + "\n";
    for (const auto& ep : endpoints_) {
      toml +=
          "[endpoints." + ep->name() + "]\ntype = \"sqlite\"\npath = \"" + ep->name() + ".db\"\n";
    }
    toml += "[collections.items]\nkey = [\"id\"]\n";
    if (max_b_) toml += "fields.b = { policy = \"max\" }\n";
    for (const auto& ep : endpoints_) {
      toml += "endpoints." + ep->name() + " = { table = \"" + kTable + "\" }\n";
    }
    return toml;
  }

  Status Setup() {
    int n = 2 + static_cast<int>(Rand(2));
    max_b_ = Chance(500);
    batch_rows_ = Chance(300) ? 1 + static_cast<int>(Rand(6)) : 10000;
    faults_.capture_per_mille = Chance(500) ? static_cast<int>(Rand(60)) : 0;
    faults_.apply_per_mille = Chance(500) ? static_cast<int>(Rand(60)) : 0;
    faults_.lost_reply_per_mille = Chance(500) ? static_cast<int>(Rand(60)) : 0;
    TableInfo info;
    info.name = kTable;
    info.exists = true;
    info.columns = {{"id", "INTEGER", false, false, 1},
                    {"a", "INTEGER", false, false, 0},
                    {"b", "INTEGER", false, false, 0},
                    {"c", "TEXT", false, false, 0}};
    for (int i = 0; i < n; ++i) {
      auto ep = std::make_shared<MemoryEndpoint>("e" + std::to_string(i),
                                                 1.7e12 + static_cast<double>(Rand(1000)));
      ep->DeclareTable(info);
      endpoints_.push_back(ep);
    }
    Event("setup: " + std::to_string(n) + " endpoints, policy lww" + (max_b_ ? " (b: max)" : "") +
          ", batch_rows " + std::to_string(batch_rows_) +
          ", faults capture/apply/lost-reply per mille " +
          std::to_string(faults_.capture_per_mille) + "/" +
          std::to_string(faults_.apply_per_mille) + "/" +
          std::to_string(faults_.lost_reply_per_mille));
    // Rows that exist before duplex is installed (the initial load).
    for (auto& ep : endpoints_) {
      int rows = static_cast<int>(Rand(4));
      for (int i = 0; i < rows; ++i) ClientInsert(*ep, 1 + static_cast<int>(Rand(kKeys)));
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
      connectors[ep->name()] =
          std::make_unique<FaultyConnector>(std::make_unique<MemoryConnector>(ep), &faults_);
    }
    Result<std::unique_ptr<Engine>> engine =
        Engine::OpenWith(config_, std::move(connectors), true, &env_);
    if (!engine.ok()) return engine.status();
    engine_ = std::move(engine).value();
    return Status::Ok();
  }

  // --- Client writes.

  Value RandomValue(const std::string& field) {
    if (field == "c") return "s" + std::to_string(Rand(50));
    return static_cast<int64_t>(Rand(100));
  }

  void ClientInsert(MemoryEndpoint& ep, int id) {
    Row row = {{"id", id}, {"a", RandomValue("a")}, {"b", RandomValue("b")}};
    if (Chance(800)) row["c"] = RandomValue("c");
    ++client_writes_;
    if (ep.Insert(kTable, row)) {
      Event("client " + ep.name() + " @" + std::to_string(static_cast<int64_t>(ep.now_ms())) +
            ": insert " + row.dump());
    }
  }

  void ClientWrite(MemoryEndpoint& ep) { ClientWriteKey(ep, 1 + static_cast<int>(Rand(kKeys))); }

  void ClientWriteKey(MemoryEndpoint& ep, int id) {
    Row key = {{"id", id}};
    std::string at = " @" + std::to_string(static_cast<int64_t>(ep.now_ms()));
    if (!ep.Get(kTable, key)) {
      ClientInsert(ep, id);
    } else if (Chance(800)) {
      Row changes = Row::object();
      for (const char* f : {"a", "b", "c"}) {
        if (Chance(500)) changes[f] = Chance(50) ? Value() : RandomValue(f);
      }
      if (changes.empty()) changes["a"] = RandomValue("a");
      ++client_writes_;
      ep.Update(kTable, key, changes);
      Event("client " + ep.name() + at + ": update id=" + std::to_string(id) + " set " +
            changes.dump());
    } else {
      ++client_writes_;
      ep.Delete(kTable, key);
      Event("client " + ep.name() + at + ": delete id=" + std::to_string(id));
    }
  }

  // --- Engine.

  Status EngineStep(bool* moved = nullptr) {
    faults_.injected = false;
    Result<bool> r = engine_->Step();
    if (!r.ok()) return r.status().WithContext("Step");
    if (moved) *moved = *r;
    // A failed endpoint stays out for its backoff, measured on the simulated clock: outages
    // that last several steps, while the other endpoints go on (P8).
    if (faults_.injected) ++faults_count_;
    return Status::Ok();
  }

  std::string Describe(const MemoryEndpoint& ep) const {
    std::string out;
    for (const auto& [key, row] : ep.rows().at(kTable)) out += row.dump() + " ";
    return out;
  }

  SimResult Fail(const std::string& why) { return SimResult{false, why}; }

  SimResult RunInner() {
    if (Status s = Setup(); !s.ok()) return Fail("setup: " + s.ToString());
    for (step_ = 0; step_ < steps_; ++step_) {
      const uint64_t elapsed = Rand(20);
      env_.Advance(static_cast<int64_t>(elapsed));
      for (auto& ep : endpoints_) ep->Advance(static_cast<double>(elapsed));
      uint64_t pick = Rand(1000);
      if (pick < 400) {
        ClientWrite(*endpoints_[Rand(endpoints_.size())]);
      } else if (pick < 450) {
        MemoryEndpoint& ep = *endpoints_[Rand(endpoints_.size())];
        int writes = 2 + static_cast<int>(Rand(3));
        Event("client " + ep.name() + ": begin transaction of " + std::to_string(writes));
        ep.Begin();
        for (int i = 0; i < writes; ++i) ClientWrite(ep);
        ep.Commit();
      } else if (pick < 900) {
        Event("engine step");
        if (Status s = EngineStep(); !s.ok()) return Fail(s.ToString());
      } else if (pick < 930) {
        Event("engine crash + reopen");
        ++crashes_;
        if (Status s = OpenEngine(); !s.ok()) return Fail("reopen: " + s.ToString());
      } else if (pick < 950) {
        MemoryEndpoint& ep = *endpoints_[Rand(endpoints_.size())];
        double skew = (static_cast<double>(Rand(600001)) - 300000.0);
        ep.Skew(skew);
        Event("clock " + ep.name() + " skewed by " + std::to_string(static_cast<int64_t>(skew)) +
              " ms");
      }
      // else: time passes
    }

    // Writes stop; the engine runs until quiescent, without faults.
    Event("quiesce");
    faults_.enabled = false;
    int idle = 0;
    // Each quiet step lets 500 ms pass, so any backoff (at most 2 s) runs out within the
    // idle steps required.
    for (int i = 0; i < 2000 && idle < 6; ++i) {
      env_.Advance(500);
      bool moved = false;
      if (Status s = EngineStep(&moved); !s.ok()) return Fail("quiesce: " + s.ToString());
      idle = moved ? 0 : idle + 1;
    }
    if (idle < 6) return Fail("not quiescent after 2000 steps");

    // P1: identical rows everywhere.
    const auto& first = endpoints_[0]->rows().at(kTable);
    for (size_t i = 1; i < endpoints_.size(); ++i) {
      if (endpoints_[i]->rows().at(kTable) != first) {
        std::string diff;
        for (int id = 1; id <= kKeys; ++id) {
          Row key = {{"id", id}};
          std::optional<Row> x = endpoints_[0]->Get(kTable, key);
          std::optional<Row> y = endpoints_[i]->Get(kTable, key);
          if (x == y) continue;
          diff += "\n  id=" + std::to_string(id) + ": " + endpoints_[0]->name() + " " +
                  (x ? x->dump() : "absent") + " vs " + endpoints_[i]->name() + " " +
                  (y ? y->dump() : "absent");
        }
        return Fail("P1 (convergence): endpoints differ" + diff);
      }
    }
    // P5: more steps apply nothing and capture nothing new.
    std::vector<std::pair<int64_t, int64_t>> before;
    for (auto& ep : endpoints_) before.emplace_back(ep->applied_id(), ep->last_seq());
    for (int i = 0; i < 10; ++i) {
      bool moved = false;
      if (Status s = EngineStep(&moved); !s.ok()) return Fail("P5 steps: " + s.ToString());
      if (moved) return Fail("P5 (no echo): a step after quiescence moved something");
    }
    for (size_t i = 0; i < endpoints_.size(); ++i) {
      auto now = std::make_pair(endpoints_[i]->applied_id(), endpoints_[i]->last_seq());
      if (now != before[i]) {
        return Fail("P5 (no echo): endpoint " + endpoints_[i]->name() +
                    " was written after quiescence");
      }
    }
    Result<int64_t> dead = engine_->DeadLetterCount();
    if (!dead.ok()) return Fail("dead letters: " + dead.status().ToString());
    if (*dead != 0) return Fail(std::to_string(*dead) + " dead letter(s)");
    Event("converged: " + Describe(*endpoints_[0]));
    return CheckSequentialWins();
  }

  // P2: after convergence, writes on endpoints whose clocks are now skewed behind the others
  // are sequential (each endpoint has seen the current value), so every one of them must win,
  // whatever the clocks and the policies say.
  SimResult CheckSequentialWins() {
    Event("P2 phase: sequential writes on skewed clocks");
    for (auto& ep : endpoints_) {
      double skew = -static_cast<double>(Rand(600000));
      ep->Skew(skew);
      Event("clock " + ep->name() + " skewed by " + std::to_string(static_cast<int64_t>(skew)) +
            " ms");
    }
    std::map<int, size_t> writer;  // key -> endpoint that wrote it last
    int writes = 1 + static_cast<int>(Rand(6));
    for (int i = 0; i < writes; ++i) {
      size_t e = Rand(endpoints_.size());
      int id = 1 + static_cast<int>(Rand(kKeys));
      if (writer.count(id)) continue;  // one write per key: all of them sequential
      writer[id] = e;
      ClientWriteKey(*endpoints_[e], id);
    }
    int idle = 0;
    for (int i = 0; i < 2000 && idle < 3; ++i) {
      bool moved = false;
      if (Status s = EngineStep(&moved); !s.ok()) return Fail("P2 phase: " + s.ToString());
      idle = moved ? 0 : idle + 1;
    }
    for (const auto& [id, e] : writer) {
      Row key = {{"id", id}};
      std::optional<Row> want = endpoints_[e]->Get(kTable, key);
      for (auto& ep : endpoints_) {
        std::optional<Row> have = ep->Get(kTable, key);
        if (have != want) {
          return Fail("P2 (sequential intent): id=" + std::to_string(id) + " was last written on " +
                      endpoints_[e]->name() + " (" + (want ? want->dump() : "deleted") + ") but " +
                      ep->name() + " holds " + (have ? have->dump() : "nothing"));
        }
      }
    }
    Event("P2 phase converged: " + Describe(*endpoints_[0]));
    return SimResult{};
  }

  uint64_t seed_;
  int steps_;
  std::mt19937_64 rng_;
  SimEnv env_;
  FaultState faults_;
  bool max_b_ = false;
  int batch_rows_ = 10000;
  bool replay_ = false;
  int step_ = 0;
  int64_t client_writes_ = 0, crashes_ = 0, faults_count_ = 0;
  testing::TempDir dir_;
  Config config_;
  std::vector<std::shared_ptr<MemoryEndpoint>> endpoints_;
  std::unique_ptr<Engine> engine_;
  std::vector<std::string> history_;
};

TEST(SimTest, Seeds) {
  kKeys = static_cast<int>(EnvInt("DUPLEX_SIM_KEYS", 20));
  spdlog::set_level(spdlog::level::err);  // conflicts are logged at info: thousands of lines
  int steps = static_cast<int>(EnvInt("DUPLEX_SIM_STEPS", kDefaultSteps));
  int64_t one = EnvInt("DUPLEX_SIM_SEED", 0);
  if (one > 0) {
    Simulation sim(static_cast<uint64_t>(one), steps);
    sim.set_replay(true);
    SimResult r = sim.Run();
    for (const std::string& e : sim.history()) std::printf("%s\n", e.c_str());
    EXPECT_TRUE(r.ok) << r.failure;
    return;
  }
  int64_t seeds = EnvInt("DUPLEX_SIM_SEEDS", kDefaultSeeds);
  auto start = std::chrono::steady_clock::now();
  int failed = 0;
  SimStats stats;
  for (int64_t seed = 1; seed <= seeds; ++seed) {
    Simulation sim(static_cast<uint64_t>(seed), steps);
    SimResult r = sim.Run();
    sim.AddStats(stats);
    if (!r.ok) {
      ++failed;
      ADD_FAILURE() << r.failure;
      if (failed >= 3) break;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "sim: %lld seeds x %d steps in %.1f s, %d failed; %lld client writes, %lld apply "
      "transactions, %lld rejected writes, %lld crashes, %lld faults\n",
      static_cast<long long>(seeds), steps, secs, failed,
      static_cast<long long>(stats.client_writes), static_cast<long long>(stats.apply_commits),
      static_cast<long long>(stats.rejected), static_cast<long long>(stats.crashes),
      static_cast<long long>(stats.faults));
}

// Seeds that found engine bugs, kept whatever the default seed range becomes.
//   51: a capture failing right after a successful Poll lost the news of the change; the
//       endpoint's last change stayed unsynced until its next one (Engine::CaptureFrom).
TEST(SimTest, RegressionSeeds) {
  spdlog::set_level(spdlog::level::err);
  for (uint64_t seed : {51}) {
    Simulation sim(seed, kDefaultSteps);
    SimResult r = sim.Run();
    EXPECT_TRUE(r.ok) << r.failure;
  }
}

// The same seed twice gives the same history (determinism of the simulator itself).
TEST(SimTest, Deterministic) {
  spdlog::set_level(spdlog::level::err);
  for (uint64_t seed : {7, 12}) {
    Simulation a(seed, 150), b(seed, 150);
    SimResult ra = a.Run(), rb = b.Run();
    EXPECT_EQ(a.history(), b.history()) << "seed " << seed;
    EXPECT_EQ(ra.ok, rb.ok);
  }
}

}  // namespace
}  // namespace duplex::sim
