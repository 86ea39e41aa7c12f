// Fault injection for the simulation (issue 3): a Connector wrapper that, drawing from its own
// seeded stream, makes calls fail (Unavailable), keeps an endpoint unreachable for a while,
// delays (delivers only a prefix of what is there, whole transactions), redelivers changes
// already delivered, applies a batch twice, loses apply replies, and kills the engine at any
// connector call (SimCrash), i.e. between any two durable sub-steps of Engine::Step.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "connectors/memory/memory_connector.h"
#include "connectors/wrapper.h"
#include "duplex/connector.h"

namespace duplex::sim {

using memory::MemoryConnector;
using memory::MemoryEndpoint;

// Thrown by FaultyConnector to kill the engine in the middle of a step: the simulation catches
// it, drops the engine (all its memory) and reopens it on the same state file, so only what
// the engine had committed survives, as after kill -9. Test-only: engine code neither throws
// nor catches.
struct SimCrash {
  std::string where;
};

struct FaultState {
  std::mt19937_64 rng;
  bool enabled = true;
  int capture_per_mille = 0;      // Capture fails (nothing read)
  int apply_per_mille = 0;        // Apply fails before writing anything
  int lost_reply_per_mille = 0;   // Apply commits, then the reply is lost (Unavailable)
  int crash_per_mille = 0;        // the engine is killed at this connector call
  int delay_per_mille = 0;        // Capture delivers only some whole transactions now
  int duplicate_per_mille = 0;    // Capture delivers again changes delivered before
  int apply_twice_per_mille = 0;  // Apply is sent twice (the second must change nothing)
  // Capture loses a change: a broken connector, to test that the checks catch it.
  int sabotage_drop_per_mille = 0;
  std::map<std::string, int> down;  // endpoint -> scheduler steps it stays unreachable
  bool injected = false;            // a fault was injected since the last reset
  int64_t faults = 0, crashes = 0, delays = 0, duplicates = 0, double_applies = 0;
  std::function<void(const std::string&)> log;
  // Called after every committed apply on an endpoint (the P7 observer).
  std::function<void(MemoryEndpoint&)> observe;
  // Set when a second Apply of the same batches changed something (P6).
  std::string violation;

  bool Draw(int per_mille) {
    return enabled && per_mille > 0 && static_cast<int>(rng() % 1000) < per_mille;
  }
};

// Wraps a MemoryConnector; the calls it does not override are forwarded unchanged.
class FaultyConnector final : public ConnectorWrapper {
 public:
  FaultyConnector(std::shared_ptr<MemoryEndpoint> ep, FaultState* faults)
      : ConnectorWrapper(std::make_unique<MemoryConnector>(ep)), ep_(std::move(ep)), f_(faults) {}

  Result<bool> IsInstalled() override {
    MaybeCrash("is-installed");
    if (Down()) return Unreachable();
    return ConnectorWrapper::IsInstalled();
  }
  Status Install() override {
    MaybeCrash("install");
    if (Down()) return Unreachable();
    return ConnectorWrapper::Install();
  }
  Status Uninstall() override {
    MaybeCrash("uninstall");
    if (Down()) return Unreachable();
    return ConnectorWrapper::Uninstall();
  }
  Result<bool> Poll() override {
    MaybeCrash("poll");
    if (Down()) return Unreachable();
    Result<bool> r = ConnectorWrapper::Poll();
    if (r.ok() && owe_poll_) {
      owe_poll_ = false;  // a delayed delivery is news until it has been delivered
      return true;
    }
    return r;
  }
  Result<ChangeBatch> Capture(const Position& from, size_t max_changes) override;
  Status Ack(const Position& upto) override {
    MaybeCrash("ack (after capture, resolve and apply committed)");
    if (Down()) return Unreachable();
    return ConnectorWrapper::Ack(upto);
  }
  Result<int64_t> AppliedId() override {
    MaybeCrash("applied-id");
    if (Down()) return Unreachable();
    return ConnectorWrapper::AppliedId();
  }
  Result<ApplyResult> Apply(const std::vector<ApplyBatch>& batches, bool isolate_txns) override;

 private:
  void MaybeCrash(const std::string& where) {
    if (!f_->Draw(f_->crash_per_mille)) return;
    ++f_->crashes;
    f_->log("   engine killed at " + name() + " " + where);
    throw SimCrash{name() + " " + where};
  }
  bool Down() const {
    auto it = f_->down.find(name());
    return f_->enabled && it != f_->down.end() && it->second > 0;
  }
  Status Unreachable() { return Status::Unavailable("simulated outage of '" + name() + "'"); }
  Status Fault(const std::string& what) {
    f_->injected = true;
    ++f_->faults;
    f_->log("   fault " + name() + ": " + what);
    return Status::Unavailable("simulated fault: " + what);
  }

  std::shared_ptr<MemoryEndpoint> ep_;
  FaultState* f_;
  bool owe_poll_ = false;
};

inline Result<ChangeBatch> FaultyConnector::Capture(const Position& from, size_t max_changes) {
  MaybeCrash("capture (before journal)");
  if (Down()) return Unreachable();
  if (f_->Draw(f_->capture_per_mille)) return Fault("capture failed");
  Position read_from = from;
  if (!from.IsStart() && f_->Draw(f_->duplicate_per_mille)) {
    // Redelivery: the stream resent from an earlier point (a reconnect, a poll with an
    // overlap window). What is still in the changelog there comes again. (The memory
    // endpoint's positions are FromInt numbers.)
    const int64_t back =
        std::max<int64_t>(0, from.ToInt() - 1 - static_cast<int64_t>(f_->rng() % 8));
    read_from = Position::FromInt(back);
    ++f_->duplicates;
    f_->log("   redelivery " + name() + ": capture from " + std::to_string(back) + " instead of " +
            std::to_string(from.ToInt()));
  }
  Result<ChangeBatch> r = ConnectorWrapper::Capture(read_from, max_changes);
  if (!r.ok()) return r;
  if (r->changes.size() > 1 && f_->Draw(f_->delay_per_mille)) {
    // Delay: deliver only the first transactions now, the rest at a later capture. Other
    // endpoints' changes overtake them (reordered delivery between endpoints).
    std::vector<size_t> cuts;  // indexes where a new source transaction starts
    for (size_t i = 1; i < r->changes.size(); ++i) {
      if (r->changes[i].txn != r->changes[i - 1].txn) {
        cuts.push_back(i);
      }
    }
    cuts.push_back(0);
    size_t keep = cuts[f_->rng() % cuts.size()];
    r->changes.resize(keep);
    r->end = keep == 0 ? from : r->changes.back().position;
    owe_poll_ = true;
    ++f_->delays;
    f_->log("   delay " + name() + ": capture delivers " + std::to_string(keep) + " change(s)");
  }
  if (!r->changes.empty() && f_->Draw(f_->sabotage_drop_per_mille)) {
    size_t i = f_->rng() % r->changes.size();
    f_->log("   SABOTAGE " + name() + ": capture loses the change at " +
            std::to_string(r->changes[i].position.ToInt()));
    r->changes.erase(r->changes.begin() + static_cast<std::ptrdiff_t>(i));
  }
  MaybeCrash("capture read, before journal commit");
  return r;
}

inline Result<ApplyResult> FaultyConnector::Apply(const std::vector<ApplyBatch>& batches,
                                                  bool isolate_txns) {
  MaybeCrash("apply (resolve committed, before apply)");
  if (Down()) return Unreachable();
  if (f_->Draw(f_->apply_per_mille)) return Fault("apply failed before writing");
  Result<ApplyResult> r = ConnectorWrapper::Apply(batches, isolate_txns);
  if (!r.ok()) return r;
  if (f_->observe) f_->observe(*ep_);
  if (f_->Draw(f_->apply_twice_per_mille)) {
    ++f_->double_applies;
    f_->log("   apply sent twice to " + name());
    auto before = ep_->rows();
    Result<ApplyResult> again = ConnectorWrapper::Apply(batches, isolate_txns);
    // A sink that records its applied id skips the batches; one that does not (a REST-like
    // endpoint) writes them again, idempotently: the rows must be the same.
    const bool skips = capabilities().atomic_applied_id;
    if (!again.ok() || (skips && again->applied != 0) || ep_->rows() != before) {
      f_->violation =
          "P6 (exactly once): applying batches a second time on " + name() + " changed something";
    }
  }
  MaybeCrash("apply committed, before the outbox is marked done");
  if (f_->Draw(f_->lost_reply_per_mille)) {
    return Fault("apply committed, reply lost (" + std::to_string(r->applied) + " applied)");
  }
  return r;
}

}  // namespace duplex::sim
