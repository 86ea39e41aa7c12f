#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "duplex/change.h"
#include "duplex/result.h"

namespace duplex {

// When and where a field value was written: the source commit time (ms since the epoch) and
// the endpoint ("operator" for a value chosen by `duplex conflicts resolve`).
struct Version {
  double ts = 0;
  std::string origin;
};

// What duplex knows of one record (DESIGN §4): the agreed value of every field with its
// version, what each endpoint holds, and which of duplex's writes each endpoint has not
// observed yet. Serialized into the state store as MessagePack.
struct RecordState {
  // False for a tombstone (deleted everywhere, kept so a late change cannot resurrect it).
  bool exists = false;
  Row values = Row::object();               // canonical field -> agreed value (key included)
  std::map<std::string, Version> versions;  // canonical field -> version of its agreed value
  Version deleted;                          // version of the delete, for tombstones
  // endpoint -> the row duplex believes it holds (after duplex's planned writes land); an
  // endpoint with no entry holds no row.
  std::map<std::string, Row> known;
  // endpoint -> field -> apply id of the latest write of that field to that endpoint; the
  // field "" is the row itself (insert, delete). A write is observed once the endpoint's
  // stream shows a marker with an apply id >= it (DESIGN §4).
  std::map<std::string, std::map<std::string, int64_t>> pending;
  // endpoint -> field -> the value the endpoint held before duplex's first unobserved write of
  // that field: what its application's next change started from, for sources whose updates
  // carry no before-image (PostgreSQL's default replica identity).
  std::map<std::string, Row> prior;
  // endpoint -> the row it held when duplex planned the delete it has not observed yet: what
  // it holds until that delete lands (the same use as `prior`, for every field).
  std::map<std::string, Row> prior_row;
  // endpoint -> field -> [[apply id, value], ...]: every unobserved write of duplex's of the
  // field to the endpoint, oldest first, for fields whose policy merges values (sum, union,
  // merge). The writes up to the endpoint's watermark when its application changed the field
  // had landed, the later ones not, so this tells exactly what the change started from (its
  // delta), where `prior` knows only the value before the oldest write.
  std::map<std::string, Row> inflight;
  // Fields with an open manual conflict: nothing is written for them until resolved.
  std::set<std::string> diverged;

  std::string Encode() const;
  static Result<RecordState> Decode(std::string_view bytes);
};

}  // namespace duplex
