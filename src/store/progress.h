#pragma once

#include <cstdint>
#include <string>

#include "duplex/change.h"
#include "duplex/result.h"
#include "store/store_db.h"

namespace duplex {

// Per-endpoint durable progress (DESIGN §6, Positions).
struct EndpointProgress {
  Position capture;        // changes up to here are in the journal
  int64_t watermark = 0;   // highest apply id whose marker the resolver has seen
  std::string last_error;  // empty when the last attempt worked
  Position resolved;       // changes up to here have been merged by the resolver
  bool exists = false;     // false: this state file has never captured from the endpoint
  Position acked;          // the last position Connector::Ack succeeded for
  double captured_ms = 0;  // the newest source commit time captured from it
  // After the endpoint went back in time (a backup restored): a change at or before guard_pos
  // committed at or before guard_ms was captured before the restore and comes again.
  Position guard_pos;
  double guard_ms = 0;
  bool rescan = false;  // its rows are to be read back and brought to the agreed values
};

struct Counters {
  int64_t captured = 0, applied = 0, echoes = 0, rejected = 0, conflicts = 0, dead_letters = 0;
};

// The `progress` table: one row per endpoint, written with the step that moves it. Every call
// joins the transaction open on the database, if any.
class ProgressTable {
 public:
  explicit ProgressTable(StoreDb& db) : db_(db) {}

  // The endpoint's progress; `exists` false (and all zero) if it has none yet.
  Result<EndpointProgress> Get(const std::string& endpoint);
  // Moves the capture position to `capture` and captured_ms up to `newest_commit_ms`.
  Status SetCaptured(const std::string& endpoint, const Position& capture, double newest_commit_ms);
  // Moves the watermark and resolved position up (never down).
  Status SetResolved(const std::string& endpoint, int64_t watermark, const Position& resolved);
  Status SetLastError(const std::string& endpoint, const std::string& error);
  Status SetAcked(const std::string& endpoint, const Position& acked);
  // The endpoint went back in time: capture, resolved and acked positions move to `resume`,
  // the watermark to `watermark`, the old capture position and commit time become the guard,
  // and rescan is set (DESIGN §6, An endpoint that went back in time).
  Status ResetRestored(const std::string& endpoint, const Position& resume, int64_t watermark);
  Status SetRescanned(const std::string& endpoint);
  // Sets rescan (the endpoint's rows are to be read back); nothing if it has no progress row.
  Status MarkRescan(const std::string& endpoint);

 private:
  StoreDb& db_;
};

// The `counters` table: running totals per endpoint (`duplex status`, /metrics).
class CounterTable {
 public:
  explicit CounterTable(StoreDb& db) : db_(db) {}

  Status Add(const std::string& endpoint, const Counters& delta);
  Result<Counters> Get(const std::string& endpoint);

 private:
  StoreDb& db_;
};

// Apply ids (DESIGN §6): `meta.next_apply_id`, unique across endpoints, only growing.
class ApplyIds {
 public:
  explicit ApplyIds(StoreDb& db) : db_(db) {}

  // Allocates `n` consecutive apply ids; returns the first.
  Result<int64_t> Allocate(int n);
  // Makes every id allocated from now on larger than `id`.
  Status EnsureAbove(int64_t id);

 private:
  StoreDb& db_;
};

}  // namespace duplex
