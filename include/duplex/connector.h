#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "duplex/change.h"
#include "duplex/result.h"
#include "duplex/status.h"

namespace duplex {

// How one collection maps onto one endpoint's table.
struct CollectionBinding {
  std::string collection;        // canonical collection name
  std::string table;             // the endpoint's table
  std::vector<std::string> key;  // canonical key fields (a subset of `fields`)
  // canonical field -> the endpoint's column, for every synced field (key fields included)
  std::vector<std::pair<std::string, std::string>> fields;
};

struct ColumnInfo {
  std::string name;
  std::string type;  // declared type as the endpoint reports it
  bool not_null = false;
  bool has_default = false;
  int pk = 0;  // position in the primary key, 1-based; 0 if not part of it
};

struct TableInfo {
  std::string name;
  bool exists = false;
  std::vector<ColumnInfo> columns;
};

// One endpoint (DESIGN §3): capture of committed changes, conditional apply, durable positions.
// Used by one engine thread at a time.
class Connector {
 public:
  virtual ~Connector() = default;

  // The endpoint's name in the config.
  virtual const std::string& name() const = 0;

  // Connects. Unavailable if the endpoint cannot be reached.
  virtual Status Open() = 0;

  // The table's columns and primary key; `exists` false if there is no such table.
  virtual Result<TableInfo> Describe(const std::string& table) = 0;

  // Sets the mapping used by Capture and Apply. Writes nothing.
  virtual Status Bind(std::vector<CollectionBinding> bindings) = 0;

  // Whether capture is installed for every bound collection with the bound fields.
  virtual Result<bool> IsInstalled() = 0;

  // Installs (or refreshes) change capture for the bound collections. Idempotent. A table
  // captured for the first time also gets every existing row recorded as a snapshot change,
  // in the same transaction as its triggers, so that the initial load neither loses nor
  // doubles a change made meanwhile.
  virtual Status Install() = 0;

  // Removes everything duplex created on the endpoint (triggers, changelog, bookkeeping).
  virtual Status Uninstall() = 0;

  // Cheap check whether anything was committed since the last call (no table scan).
  virtual Result<bool> Poll() = 0;

  // Committed changes after `from`, in commit order, at most `max_changes`. Changes written
  // by duplex come as one kMarker per apply transaction instead of their rows (P5).
  virtual Result<ChangeBatch> Capture(Position from, size_t max_changes) = 0;

  // Number of changes after `from` not yet captured (for status).
  virtual Result<int64_t> Backlog(Position from) = 0;

  // Changes up to `upto` are durably in the journal; the endpoint may release them.
  virtual Status Ack(Position upto) = 0;

  // Id of the last apply batch committed on this endpoint (0 if none).
  virtual Result<int64_t> AppliedId() = 0;

  // Writes `batches` (ids ascending) in one transaction, marked as duplex's own, and records
  // the last id in the same transaction. Batches with an id <= AppliedId() are skipped, so
  // applying twice changes nothing (P6). Unavailable if the endpoint is busy or unreachable
  // (nothing written); InvalidArgument means the target refuses a row (nothing written).
  // With `isolate_rows`, each row is written on its own inside the transaction, and rows the
  // target refuses are skipped and listed in ApplyResult::failed instead (slower: for finding
  // the rows at fault).
  virtual Result<ApplyResult> Apply(const std::vector<ApplyBatch>& batches,
                                    bool isolate_rows = false) = 0;

  // What the endpoint lacks for Install (settings, privileges, keys), each with the statement
  // that fixes it. Empty when nothing is missing. Writes nothing.
  virtual Result<std::vector<std::string>> Preflight() { return std::vector<std::string>(); }

  // Conditions an operator should act on while duplex runs (e.g. a replication slot holding
  // much WAL). Empty when healthy.
  virtual Result<std::vector<std::string>> Warnings() { return std::vector<std::string>(); }
};

}  // namespace duplex
