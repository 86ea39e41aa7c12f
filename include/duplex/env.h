#pragma once

#include <chrono>

namespace duplex {

// What makes a run depend on the world outside (leveldb's Env): clocks and sleeping. The engine
// takes one; production uses Env::Default(), the simulation a clock it advances itself, so that
// a seed alone decides every retry, backoff and pacing decision.
class Env {
 public:
  virtual ~Env() = default;

  // Monotonic time, for timeouts, backoff and pacing.
  virtual std::chrono::steady_clock::time_point Now() = 0;

  // Wall-clock time in ms since the Unix epoch: only for what is shown to people (conflict log
  // and dead-letter times, operator resolutions), never for deciding an order.
  virtual double WallMs() = 0;

  // Waits `d` (real time in production; the simulation just advances its clock).
  virtual void Sleep(std::chrono::milliseconds d) = 0;

  // The real clocks and sleep. Lives as long as the process; thread-safe.
  static Env* Default();
};

}  // namespace duplex
