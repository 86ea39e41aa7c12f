#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
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
  // key_mode = "mapped": the endpoint generates the (single) key itself. Capture presents the
  // key as a record id (RecordId) and Apply translates record ids back; see Connector::Apply.
  bool mapped_key = false;
  // Fields that reference a collection with a mapped key: canonical field -> that collection.
  // Their values travel as record ids too, translated like keys.
  std::map<std::string, std::string> mapped_refs;
};

// key_mode = "mapped" (DESIGN §5): the identity of a record across endpoints that generate
// their keys independently. A row first seen on endpoint E with native key v is record
// "E:" + v as JSON ("crm:17", "crm:\"A-1\""). An endpoint that receives the record from duplex
// generates its own key and keeps (collection, record id, native key) in a key map on the
// endpoint, written in the same transaction as the row, so a crash between the two cannot
// duplicate it (P6).
std::string RecordId(const std::string& endpoint, const Value& native);
// The native key of `record` if it was first seen on `endpoint` ("E:v" -> v); nullopt if the
// record comes from another endpoint or is not a record id.
std::optional<Value> OwnNativeKey(const std::string& endpoint, const std::string& record);

struct ForeignKeyInfo {
  std::vector<std::string> columns;  // the referencing table's columns
  std::string ref_table;             // the referenced table (same endpoint)
  std::vector<std::string> ref_columns;
  bool deferrable = false;  // the endpoint can check it at commit instead of per statement
};

// What values a column holds, as the connector reads its declared type: the engine compares
// kinds, never type names, to find a field whose columns cannot hold each other's values (a
// type clash, docs/DESIGN.md §2 "Schema binding"). As a duplex Value (change.h), a column of
// each kind carries:
//   kInteger  integers (SQLite INTEGER affinity, PostgreSQL int2/int4/int8)
//   kReal     floats, and integers (SQLite REAL, PostgreSQL float4/float8)
//   kDecimal  exact numbers: integers, floats, or decimal text where a float would lose digits
//             (SQLite NUMERIC affinity, PostgreSQL numeric, money)
//   kText     strings: text, an enum or picklist value, a uuid (SQLite TEXT affinity,
//             PostgreSQL text/varchar/enum/uuid and domains over them)
//   kBinary   {"$blob": "<HEX>"} (SQLite BLOB, PostgreSQL bytea)
//   kBoolean  true/false, or 0/1 where the system has no boolean (SQLite)
//   kTime     dates, times, timestamps and intervals: ISO 8601 text, or numbers where the
//             system stores them so (SQLite's unix times)
//   kJson     a JSON document as text (PostgreSQL json/jsonb, SQLite JSON by name)
//   kAny      whatever the column holds (SQLite without a declared type, PostgreSQL arrays,
//             ranges and types the connector does not know)
// Compatible: kinds of one group, and any kind with kDecimal, kBinary, kTime or kAny, whose
// values travel as text or numbers alike. A clash: a number group kind (kInteger, kReal,
// kBoolean) against a text group kind (kText, kJson).
enum class ColumnKind { kInteger, kReal, kDecimal, kText, kBinary, kBoolean, kTime, kJson, kAny };

// The kind's name in messages ("integer", "text", ...).
const char* ColumnKindName(ColumnKind kind);

struct ColumnInfo {
  std::string name;
  std::string type;  // declared type as the endpoint reports it (for messages)
  bool not_null = false;
  bool has_default = false;
  int pk = 0;  // position in the primary key, 1-based; 0 if not part of it
  // The endpoint generates the value when an insert leaves the column out: SQLite's INTEGER
  // PRIMARY KEY (the rowid), a PostgreSQL identity column or sequence default (serial).
  bool generated = false;
  // What values the column holds, decided by the connector from the declared type; the engine
  // compares kinds, never `type` (last, so that brace-initialised ColumnInfos stay valid).
  ColumnKind kind = ColumnKind::kAny;
};

// What an endpoint holds of duplex's progress on it, against what the state file recorded:
// whether it went back in time (Connector::CheckRestored).
struct RestoreCheck {
  // Why the endpoint looks restored from a backup, a file-system snapshot or a dump ("" if it
  // does not), e.g. "its changelog says duplex acked up to 120, the state file says 158".
  std::string reason;
  // Where capture must resume to see every change made on the endpoint since it was restored
  // (only meaningful with a reason). Changes already captured before may come again; the
  // engine tells those apart (docs/DESIGN.md §6).
  Position resume = 0;
};

struct TableInfo {
  std::string name;
  bool exists = false;
  std::vector<ColumnInfo> columns;
  std::vector<ForeignKeyInfo> foreign_keys;  // declared by the table
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

  // Sets the mapping used by Capture and Apply, in dependency order (a referenced collection
  // before the collections that reference it: the initial load follows it). Writes nothing.
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

  // Changes up to `upto` are durably in the journal; the endpoint may release them. Where it
  // can, the endpoint records `upto` itself (CheckRestored compares it).
  virtual Status Ack(Position upto) = 0;

  // Called before Install with what the state file recorded for this endpoint: the capture
  // position and the last position Ack succeeded for. Says whether the endpoint went back in
  // time since (a backup restored, a snapshot rolled back, a dump reloaded): it then holds an
  // older record of duplex's progress than `acked`, or its stream is behind `captured`, or
  // duplex's capture objects are gone. Writes nothing. The default finds nothing.
  virtual Result<RestoreCheck> CheckRestored(Position captured, Position acked) {
    (void)acked;
    return RestoreCheck{"", captured};
  }

  // Reads every row of `collection` as it is now, in chunks of at most `max_rows` rows handed
  // to `visit`: each row a kPresent change (key and `after` in canonical names, record ids for
  // mapped keys, position 0). Writes nothing. Used to bring a restored endpoint back to the
  // agreed values. The default: not supported (InvalidArgument).
  virtual Status Scan(const std::string& collection, size_t max_rows,
                      const std::function<Status(std::vector<Change>&&)>& visit) {
    (void)max_rows;
    (void)visit;
    return Status::InvalidArgument("endpoint '" + name() + "' cannot read the rows of '" +
                                   collection + "' back");
  }

  // Id of the last apply batch committed on this endpoint (0 if none).
  virtual Result<int64_t> AppliedId() = 0;

  // Writes `batches` (ids ascending) in one transaction, marked as duplex's own, and records
  // the last id in the same transaction. Batches with an id <= AppliedId() are skipped, so
  // applying twice changes nothing (P6). Unavailable if the endpoint is busy or unreachable
  // (nothing written); Refused means the target refuses a row (constraint, type, validation;
  // nothing written) and the engine parks it (status.h has what each code makes it do).
  // Ops are written in the order given (the planner puts parents before children and
  // children's deletes before their parent's); foreign keys the endpoint can defer are
  // checked at commit.
  // With `isolate_txns`, each source transaction (the ops of one batch with one RowOp::txn)
  // is written inside its own savepoint; one the target refuses is rolled back whole and
  // listed in ApplyResult::failed, and the others commit (slower: for finding the one at
  // fault).
  // Mapped keys (CollectionBinding::mapped_key): an insert leaves the key column out, lets
  // the endpoint generate it and adds (collection, record id, native key) to the endpoint's
  // key map in the same transaction. Updates and deletes find the row by the key map (or,
  // for the endpoint's own records, by OwnNativeKey); a record the endpoint has no row for is
  // absent (the write is rejected). Values of `mapped_refs` fields are translated the same
  // way; a reference to a record the endpoint does not hold is Refused, naming it.
  virtual Result<ApplyResult> Apply(const std::vector<ApplyBatch>& batches,
                                    bool isolate_txns = false) = 0;

  // What the endpoint lacks for Install (settings, privileges, keys), each with the statement
  // that fixes it. Empty when nothing is missing. Writes nothing.
  virtual Result<std::vector<std::string>> Preflight() { return std::vector<std::string>(); }

  // Conditions an operator should act on while duplex runs (e.g. a replication slot holding
  // much WAL). Empty when healthy.
  virtual Result<std::vector<std::string>> Warnings() { return std::vector<std::string>(); }
};

}  // namespace duplex
