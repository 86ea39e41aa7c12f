#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "duplex/status.h"
#include "pipeline/engine.h"
#include "store/state_store.h"

// What the commands (one file each under src/cli/) share.
namespace duplex::cli {

// Set by SIGINT and SIGTERM once a command installed OnSignal: a run stops at its next pass.
extern std::atomic<bool> g_stop;
void OnSignal(int);

// The exit code of an error: a bad request (unknown id, conflict no longer open, a side it
// does not have) or a bad config is a usage error (2), anything else a runtime failure (1).
int ExitFor(const duplex::Status& st);
// Prints "error: <message>" and returns ExitFor(st).
int Fail(const duplex::Status& st);

// A time (ms since the epoch) as local "YYYY-MM-DD HH:MM:SS"; "-" for 0.
std::string FormatTime(double ms);

// Opens the engine for a command; prints the error and sets *rc on failure.
std::unique_ptr<Engine> OpenEngine(const Options& o, bool create_state, int* rc);

// Holds the lock of a state file (`<state file>.lock`, an flock) for a command that runs the
// engine on it (run, reconcile): two engines on one state file would hand out the same apply
// ids. Released when the process ends, however it ends.
class StateLock {
 public:
  StateLock() = default;
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;
  ~StateLock();
  // Takes the lock of `state_path` without waiting. Unavailable if another process holds it,
  // naming it (its pid) and what `command` should do meanwhile.
  duplex::Status Take(const std::string& state_path, const std::string& command);

 private:
  int fd_ = -1;
};

// Opens the config's state store (it must exist); prints the error and sets *rc on failure.
std::unique_ptr<StateStore> OpenStore(const Options& o, int* rc);

}  // namespace duplex::cli
