#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "connectors/salesforce/capture.h"
#include "connectors/salesforce/cdc.h"
#include "connectors/salesforce/client.h"
#include "connectors/salesforce/describe.h"
#include "connectors/salesforce/pacer.h"
#include "connectors/salesforce/writes.h"
#include "duplex/env.h"
#include "duplex/result.h"

namespace duplex::sf {

// One org as duplex syncs it, whatever the connector contract: capture from change events and
// polls of several objects under one position, and writes, both paced under the API budget.
// The connector class is a thin layer over this.
//
// Capture. With change events on, a thread long-polls CometD (a /meta/connect waits up to
// 110 s) and queues what comes, at most `max_queued_events` changes (then it waits: P9);
// Capture() takes what is queued without waiting. Polls run as often as the pacer allows
// (never more often than poll_interval) and the updated/deleted sweep every `sweep_seconds`:
// with events on they cross-check them; without, they are the capture. Gaps and an expired
// replay id make the affected records (or every object's poll window) be read again.
//
// The position (JSON, opaque to the engine) holds the replay id and each object's poll cursor
// and sweep start: {"replay": N, "objects": {"Account": {...}}}.
//
// Not thread-safe: one caller at a time (the event thread is internal).
class SfEndpoint {
 public:
  struct ObjectSpec {
    std::string object;               // "Account"
    std::vector<std::string> fields;  // mapped fields by API name (the external id included)
  };
  struct Options {
    ClientOptions client;
    std::string external_id;  // the external id field, on every object
    std::vector<ObjectSpec> objects;
    bool events = true;  // capture = "cdc"
    QuotaPacer::Options pacing;
    double overlap_seconds = 5;
    double late_window_seconds = 600;
    // How long capture remembers a delivered row (ObjectCapture): the position holds an entry
    // per row changed in that time, so a bulk load of many rows keeps it short. A row the sweep
    // meets after that comes again, with the values already delivered.
    double remember_seconds = 120;
    double sweep_seconds = 300;
    size_t max_queued_events = 10000;
    // With events on, the polls only cross-check them: no more often than this (a gap in the
    // events makes the next capture poll at once).
    double cross_check_seconds = 60;
    // How long the engine may hold writes so that more join one call (Capabilities::
    // apply_hold; not used here): they go right after the next poll.
    double write_window_seconds = 0;
  };

  SfEndpoint(Options options, Env& env);
  ~SfEndpoint();
  SfEndpoint(const SfEndpoint&) = delete;
  SfEndpoint& operator=(const SfEndpoint&) = delete;

  // Logs in and describes every object: InvalidArgument listing what the org lacks, each with
  // its fix (CheckObject). Then starts the event stream from `position`'s replay id.
  Status Open(const std::string& position);

  // The changes captured since `position` (updated in place), in the order seen: queued
  // events first, then a poll and a sweep if they are due. Never waits for events.
  Result<std::vector<SfChange>> Capture(std::string& position);

  // Whether a Capture now would have something to do: events queued, or a poll or a sweep
  // due (and the endpoint not paused). No API call.
  bool HasNews();

  // Writes through Collections (Writer): upserts by the external id, deletes by Id. Paused
  // writes (the budget spent down to the capture reserve, or a 403) are Unavailable, naming
  // the usage, and not sent.
  Result<std::vector<RecordResult>> Upsert(const std::string& object,
                                           const std::vector<nlohmann::json>& records);
  Result<std::vector<RecordResult>> Delete(const std::string& object,
                                           const std::vector<std::string>& ids);

  // Several Collections requests in as few calls as possible (Writer::Write), paused like
  // Upsert. When a poll is due, it rides in the first call (the whole poll in the same call as
  // the writes, read after them) and the next Capture takes its rows instead of polling.
  Result<std::vector<std::vector<RecordResult>>> Write(
      const std::vector<Writer::Request>& requests);

  // Collections update by Id (records the org's users created have no external id).
  Result<std::vector<RecordResult>> Update(const std::string& object,
                                           const std::vector<nlohmann::json>& records);

  // The Ids of the live records whose external id is one of `keys` (external id -> Id; keys
  // with no record are left out), and the reverse: the external ids of `ids` (Id -> external
  // id, "" for a record without one). Live records only; one query per 200. For deletes
  // (Collections delete by Id only) and for references between objects (a Contact's AccountId).
  Result<std::map<std::string, std::string>> IdsByExternalId(const std::string& object,
                                                             const std::vector<std::string>& keys);
  // `include_deleted`: deleted records too (queryAll): a captured delete carries only the Id,
  // and the record's key is its external id.
  Result<std::map<std::string, std::string>> ExternalIdsById(const std::string& object,
                                                             const std::vector<std::string>& ids,
                                                             bool include_deleted = false);

  // The describe of an object read at Open.
  const ObjectInfo* Describe(const std::string& object) const;
  const QuotaPacer& pacer() const { return pacer_; }
  Client& client() { return client_; }

 private:
  struct Position {
    int64_t replay = -1;
    std::map<std::string, ObjectPosition> objects;
  };
  static Result<Position> ParsePosition(const std::string& text);
  static std::string SerializePosition(const Position& p);
  double Now() const;
  Status WritesAllowed(const std::string& object);
  // SELECT Id, external id FROM object WHERE `field` IN (values), 200 values a query.
  Result<std::vector<std::pair<std::string, std::string>>> Lookup(
      const std::string& object, const std::string& field, const std::vector<std::string>& values,
      bool include_deleted = false);
  void EventLoop();

  Options opt_;
  Env& env_;
  Client client_;
  QuotaPacer pacer_;
  Writer writer_;
  std::vector<std::unique_ptr<ObjectCapture>> captures_;
  // The state the last Capture returned, and a poll made with a write from it (Write): each
  // object's cursor as it was read from, and the rows (whole answers, pages followed).
  std::string last_state_;
  struct Stash {
    std::vector<std::string> cursors;
    std::vector<std::vector<nlohmann::json>> rows;
  };
  std::optional<Stash> stash_;
  std::map<std::string, ObjectInfo> described_;
  double next_poll_ = 0;
  double next_sweep_ = 0;

  // The event thread and what it hands over.
  std::mutex mu_;
  std::condition_variable room_;
  std::deque<CdcBatch> queue_;
  size_t queued_changes_ = 0;
  Status stream_status_;  // the last error of the stream, Ok once it works again
  bool stop_ = false;
  std::atomic<bool> events_done_{false};
  std::unique_ptr<CometdStream> stream_;
  std::thread events_;
};

}  // namespace duplex::sf
