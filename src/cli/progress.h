#pragma once

#include <chrono>
#include <map>
#include <string>
#include <utility>

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

// Progress as log lines, for a stderr that is not a terminal (a pipe, a file, journald), where
// a line redrawn in place would be garbage: every `every` while a backlog is worked off (an
// initial load, changes made while duplex was stopped), one info line with the changes synced,
// their rate and what is left, and per table of an initial load the rows read so far; the
// total when the run stops. Quiet while nothing is left behind.
class ProgressLog : public RunObserver {
 public:
  // `engine` is not owned and must outlive the logger.
  explicit ProgressLog(Engine& engine,
                       std::chrono::steady_clock::duration every = std::chrono::seconds(3))
      : engine_(engine), every_(every) {}

  void Started(std::chrono::steady_clock::time_point now) override;
  void Passed(std::chrono::steady_clock::time_point now) override;
  void GaveUp() override {}
  void Stopped() override;

 private:
  // `final`: only what the initial loads read since the last line; Stopped says the rest.
  void Log(std::chrono::steady_clock::time_point now, bool final);

  Engine& engine_;
  std::chrono::steady_clock::duration every_;
  std::chrono::steady_clock::time_point started_{}, last_{};
  int64_t logged_synced_ = 0, logged_left_ = 0;
  std::map<std::pair<std::string, std::string>, int64_t> logged_loaded_;
};

}  // namespace duplex::cli
