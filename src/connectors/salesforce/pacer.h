#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "connectors/salesforce/client.h"
#include "duplex/result.h"

namespace duplex::sf {

// How much of the org's daily API requests duplex may use (`api_budget`): a share ("50%") of
// what Sforce-Limit-Info says the org is allowed, or a number of calls ("20000").
struct ApiBudget {
  double fraction = 1.0;  // used when absolute is 0
  int64_t absolute = 0;

  // "50%", "12.5%", "20000". InvalidArgument otherwise (0 calls or more than 100%, too).
  static Result<ApiBudget> Parse(std::string_view text);
  // The calls duplex may make in 24 hours when the org is allowed `org_max` (-1: unknown).
  // -1 when that cannot be known yet (a share of an unknown max).
  int64_t Of(int64_t org_max) const;
  std::string ToString() const;
};

// Paces one endpoint's calls under its budget (shared/SALESFORCE.md §4, §10.6).
//
// Salesforce counts API requests over a rolling 24 hours and says on every response how many
// the whole org has used (Sforce-Limit-Info: api-usage=N/M). duplex's own share is counted
// here, in 24 hourly buckets, from the calls it reports. What is left is the smaller of the
// budget minus duplex's calls and the org's max minus the org's usage. Spread over a day, that
// gives a sustainable rate; polls may take `poll_share` of it, and the poll interval follows:
// the fewer calls left, the longer between polls (never under `min_poll_seconds`, never over
// `max_poll_seconds`). Writes pause when only `capture_reserve` calls are left, so capture
// can still see what the org's users do. A 403 REQUEST_LIMIT_EXCEEDED pauses everything for
// `probe_seconds`; then one call probes, and the first call that goes through resumes.
//
// Times are seconds (a steady clock, from the caller's Env). Not thread-safe.
class QuotaPacer {
 public:
  struct Options {
    ApiBudget budget;
    double min_poll_seconds = 2;    // poll_interval: never poll more often
    double max_poll_seconds = 300;  // Salesforce's own advice for replication polling
    double calls_per_poll = 1;      // one queryAll page per object and poll, usually
    double poll_share = 0.5;        // the rest of the rate is for writes and the sweep
    int64_t capture_reserve = 50;   // calls kept for capture when writes pause
    double probe_seconds = 60;      // after a 403, how long before trying again
  };

  explicit QuotaPacer(Options options);

  // After each call (or a few): the usage the last response reported (client.usage()),
  // how many calls duplex made since the last Observe, and whether the last one was refused
  // with REQUEST_LIMIT_EXCEEDED.
  void Observe(const ApiUsage& usage, int64_t own_calls, bool quota_exceeded, double now);
  // The same from a Client: its usage, the calls it made since the last time, its quota flag.
  void Observe(const Client& client, double now);

  // Seconds to wait before the next poll.
  double NextPollIn(double now) const;
  // Whether writes must wait: the budget is spent down to the capture reserve, or paused.
  bool WritesPaused(double now) const;
  // Whether the endpoint is paused after a 403 (no call until the probe time).
  bool Paused(double now) const { return now < paused_until_; }
  // Whether the org refused a call for its quota and no call has gone through since.
  bool quota_exhausted() const { return exhausted_; }

  // Calls duplex made in the last 24 hours (whole hours), and how many it may still make
  // (-1: not known before the first response).
  int64_t OwnCalls(double now) const;
  int64_t CallsLeft(double now) const;
  const ApiUsage& org_usage() const { return usage_; }

 private:
  static constexpr int kHours = 24;
  Options opt_;
  ApiUsage usage_;
  std::array<int64_t, kHours> buckets_{};  // calls, by hour since the epoch modulo 24
  std::array<int64_t, kHours> hour_of_{};  // which hour each bucket holds
  int64_t client_calls_seen_ = 0;
  double paused_until_ = 0;
  bool exhausted_ = false;
};

}  // namespace duplex::sf
