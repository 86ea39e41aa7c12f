#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "duplex/change.h"

// What `duplex reconcile` asks and finds (pipeline/reconcile.h; docs/DESIGN.md §6 "Reconcile").
namespace duplex {

struct ReconcileOptions {
  std::string collection;  // only this collection ("": every collection)
  // The endpoint taken as the source of truth ("": a value that differs from the agreed one
  // is an edit made on its endpoint, merged by the field policies).
  std::string take;
};

// A record whose rows differ.
struct RecordDiff {
  std::string collection;
  Row key;
  std::string key_text;
  // endpoint -> its row (null: it holds none), for every endpoint of the collection
  std::map<std::string, Row> rows;
  // The synced fields whose values differ among the endpoints that hold a row; empty when
  // they agree and some endpoint holds no row.
  std::vector<std::string> fields;
  bool missing = false;  // some endpoint holds no row
  // The agreed values (the state store's record; null if duplex never saw the record) and
  // whether it is a tombstone (duplex saw it deleted).
  Row agreed;
  bool deleted = false;
};

// What comparing one collection found and cost.
struct CollectionReconcile {
  std::string collection;
  std::vector<std::string> endpoints;
  int64_t rows_compared = 0;  // rows of every endpoint hashed
  int64_t ranges = 0;         // range digests compared
  int64_t ranges_differing = 0;
  int64_t rows_read = 0;  // rows read back to compare them field by field
  int64_t bytes = 0;      // what the digests and rows read amount to (24 bytes a digest)
  std::vector<RecordDiff> diffs;
};

struct ReconcileReport {
  std::vector<CollectionReconcile> collections;
  size_t Differences() const;
};

}  // namespace duplex
