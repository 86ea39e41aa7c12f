#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "duplex/result.h"

namespace duplex::sf {

// Where polling capture of one object stands (shared/SALESFORCE.md §2.1, §10.1).
//
// SystemModstamp is a write's start, at one-second precision, and the write is visible only at
// its commit: a row can appear with a stamp older than rows already read. So each poll reads
// again from `stamp - overlap` (queryAll, ordered by SystemModstamp, Id), and what it has
// already delivered in that window is dropped: the same Id with the same SystemModstamp and
// the same values (two writes within one second share a stamp; their values tell them apart).
// A row whose stamp is older than the window is missed here: the updated/deleted sweep finds
// it. The cursor is what a connector stores as its position: opaque to the engine, JSON.
struct PollCursor {
  double stamp = 0;  // the newest SystemModstamp read (seconds since the epoch)
  std::string id;    // the Id of the last row read at `stamp`
  // Id -> (SystemModstamp, a digest of the values) of the rows delivered within the overlap
  // window before `stamp`.
  std::map<std::string, std::pair<double, std::string>> recent;

  std::string Serialize() const;
  static Result<PollCursor> Parse(const std::string& text);
  // Parses a cursor held in a larger position (the JSON Serialize makes).
  static Result<PollCursor> FromJson(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};

// The digest `recent` holds for a record a change event delivered: the event carries only the
// changed fields, so a poll's row at the same stamp is that change, whatever its values.
inline constexpr const char* kDeliveredByEvent = "cdc";
// The digest `recent` holds for a deletion delivered.
inline constexpr const char* kDeletedDigest = "deleted";

class Poller {
 public:
  // `object` (e.g. "Account"), the fields to read besides Id, SystemModstamp and IsDeleted,
  // how far back each poll reads again (seconds; long transactions need more), and how long
  // `recent` remembers a delivered row (at least the overlap; the updated/deleted sweep reads
  // minutes back and should find what it already delivered there).
  Poller(std::string object, std::vector<std::string> fields, double overlap_seconds,
         double keep_seconds = 0);

  // The SOQL of the next poll from `cursor` (for queryAll: deleted rows included).
  std::string Query(const PollCursor& cursor) const;

  // Takes the rows of a poll (in the query's order) and returns the ones not delivered
  // before, moving `cursor` past them and forgetting what fell out of the overlap window.
  std::vector<nlohmann::json> Take(PollCursor& cursor, std::vector<nlohmann::json> rows) const;

  double overlap() const { return overlap_; }
  const std::string& object() const { return object_; }
  // The field list of every poll: Id, SystemModstamp, IsDeleted and the mapped fields.
  std::string FieldList() const;

 private:
  std::string object_;
  std::vector<std::string> fields_;
  double overlap_;
  double keep_;
};

}  // namespace duplex::sf
