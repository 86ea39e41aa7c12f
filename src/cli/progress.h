#pragma once

#include <chrono>

#include "pipeline/engine.h"

namespace duplex::cli {

// The progress line `duplex run --until-idle` redraws on a terminal (stderr), about once a
// second: changes done, their rate, what is left (in the journal and not yet captured) and
// the time that will take at this rate; the final count when the run stops. The engine says
// when (RunObserver), and what was done and is left (Engine::synced_changes, Backlog).
class ProgressPrinter : public RunObserver {
 public:
  // `engine` is not owned and must outlive the printer.
  explicit ProgressPrinter(Engine& engine) : engine_(engine) {}

  void Started(std::chrono::steady_clock::time_point now) override;
  void Passed(std::chrono::steady_clock::time_point now) override;
  void GaveUp() override;
  void Stopped() override;

 private:
  void Print(double secs);

  Engine& engine_;
  std::chrono::steady_clock::time_point started_{}, last_{};
};

}  // namespace duplex::cli
