#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace duplex::testing {

// The duplex binary under test: $DUPLEX_BIN (set by ctest), else "duplex".
std::string DuplexBin();

// The whole content of a file ("" if it cannot be read).
std::string ReadFile(const std::string& path);

// A duplex process (DuplexBin() with `args`), started at construction with this process's
// environment. stdout and stderr go to `log_prefix`.out and .err; the destructor kills and
// reaps it if it still runs.
class Process {
 public:
  Process(const std::vector<std::string>& args, const std::string& log_prefix);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void Signal(int sig);
  bool Running();
  // The exit code, 128 + the signal if one ended it; on timeout, kills it and returns -1.
  int Wait(std::chrono::milliseconds timeout);
  std::string Out() const { return ReadFile(out_path_); }
  std::string Err() const { return ReadFile(err_path_); }

 private:
  void Reap(int flags);

  std::string out_path_, err_path_;
  pid_t pid_ = -1;
  bool done_ = false;
  int code_ = -1;
};

}  // namespace duplex::testing
