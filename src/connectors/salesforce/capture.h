#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "connectors/salesforce/cdc.h"
#include "connectors/salesforce/client.h"
#include "connectors/salesforce/poll.h"
#include "duplex/result.h"

namespace duplex::sf {

// One record's change as capture delivers it, from whichever source saw it first.
struct SfChange {
  enum class Source { kEvent, kPoll, kSweep, kReread };
  std::string object;
  std::string id;  // 18 characters
  bool deleted = false;
  // Field values by API name: the whole row (poll, sweep, re-read) or what the event carried.
  nlohmann::json values = nlohmann::json::object();
  // An event's changed fields (UPDATE); empty when `values` is the whole row.
  std::vector<std::string> changed_fields;
  std::string change_origin;    // events only: a pre-filter for echoes, never the only test
  std::string transaction_key;  // events only
  double stamp = 0;             // SystemModstamp (or the event's LastModifiedDate / commit)
  Source source = Source::kPoll;
};

// Where capture of one object stands; the part of the endpoint's position for that object.
struct ObjectPosition {
  PollCursor poll;
  double sweep_from = 0;  // where the next updated/deleted sweep starts (seconds; 0: not yet)

  nlohmann::json ToJson() const;
  static Result<ObjectPosition> FromJson(const nlohmann::json& j);
};

// Capture of one object without losing a write that commits late (shared/SALESFORCE.md §2,
// §10.1). Three sources, deduplicated through the poll cursor's `recent` map:
//   - change events (CometdStream), noted here with NoteEvent so polls skip them;
//   - the queryAll poll on (SystemModstamp, Id) with its overlap window (Poller);
//   - the updated/deleted sweep, from the last latestDateCovered, which finds what committed
//     after the poll's window had passed its stamp (Salesforce holds latestDateCovered at the
//     start of a transaction still open).
// A gap in the events (GAP_*, an overflow, an expired replay id) makes the named records (or
// the whole window) be read again. The same change may come twice (an event and then a poll
// of a later state): values are whole rows or changed fields, so applying one twice is a no-op.
class ObjectCapture {
 public:
  // Polls `object`'s `fields` (besides Id, SystemModstamp, IsDeleted) reading `overlap`
  // seconds back. `late_window`: the longest a transaction is expected to stay open; the first
  // sweep starts that far before the first poll. Delivered rows are remembered (in the
  // position) for `remember` seconds, so that a sweep does not deliver them again: longer
  // means fewer repeated rows and a larger position (one entry per row changed in that time).
  ObjectCapture(Client& client, std::string object, std::vector<std::string> fields,
                double overlap_seconds, double late_window_seconds = 600,
                double remember_seconds = 600);

  // One queryAll poll from the cursor: rows not delivered before.
  Result<std::vector<SfChange>> Poll(ObjectPosition& pos);
  // The same in two halves, for polls of several objects sent as one call
  // (Client::QueryMany): the poll's SOQL, then its rows (in the query's order) taken.
  std::string PollQuery(const ObjectPosition& pos) const { return poller_.Query(pos.poll); }
  std::vector<SfChange> TakePoll(ObjectPosition& pos, std::vector<nlohmann::json> rows) const;
  // The updated and deleted resources from pos.sweep_from to `now` (seconds since the epoch,
  // the org's clock): rows and deletes the polls did not deliver. Two API calls, plus a query
  // of the updated ids (up to 200), or of every row stamped since sweep_from (a call per
  // 2,000 rows) when more changed. Replication windows are whole minutes.
  Result<std::vector<SfChange>> Sweep(ObjectPosition& pos, double now);
  // Reads `ids` again (a gap event named them): their current rows, whatever was delivered.
  Result<std::vector<SfChange>> Reread(ObjectPosition& pos, const std::vector<std::string>& ids);
  // Forgets what was delivered, so the next poll delivers every row in its window again (an
  // overflow or an expired replay id: which events were lost is not known).
  void ForgetDelivered(ObjectPosition& pos) const { pos.poll.recent.clear(); }
  // A change event's change, noted so that polls and sweeps do not deliver it again; returns
  // it as an SfChange.
  SfChange NoteEvent(ObjectPosition& pos, const CdcChange& change) const;

  const Poller& poller() const { return poller_; }

 private:
  Result<std::vector<nlohmann::json>> QueryIds(const std::vector<std::string>& ids);
  static std::vector<SfChange> ChangesOf(const std::string& object,
                                         std::vector<nlohmann::json> rows, SfChange::Source src);

  Client& client_;
  Poller poller_;
  double late_window_;
};

}  // namespace duplex::sf
