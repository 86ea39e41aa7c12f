#pragma once

#include <string>

namespace duplex::cli {

// Exit codes, everywhere (README): 0 success; 1 runtime failure (an endpoint unreachable,
// I/O); 2 bad config or usage; 3 `run --until-idle` finished but records remain parked.
constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;
constexpr int kExitParked = 3;

struct Options {
  std::string config = "duplex.toml";
  bool json = false;
  bool all = false;  // conflicts list: the whole log; dead-letters retry: every dead letter
  bool force = false;
  bool install = false;
  bool until_idle = false;
  bool dry_run = false;
  std::string endpoint;
  std::string collection;
  std::string take;
  std::string value;
  std::string conflict_id;
  std::string dead_letter_id;
};

int Init(const Options& o);
int Check(const Options& o);
int Run(const Options& o);
int Status(const Options& o);
int Uninstall(const Options& o);
int Reconcile(const Options& o);
int ConflictsList(const Options& o);
int ConflictsShow(const Options& o);
int ConflictsResolve(const Options& o);
int DeadLettersList(const Options& o);
int DeadLettersShow(const Options& o);
int DeadLettersRetry(const Options& o);
int DeadLettersDrop(const Options& o);

}  // namespace duplex::cli
