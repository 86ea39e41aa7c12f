#pragma once

#include <chrono>
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
  Position resume;
};

// Reconcile (docs/DESIGN.md §6 "Reconcile") compares a collection across endpoints by digests
// of key-hash ranges, computed where the data lives. A row's key hash is KeyHash of its record's
// key text (KeyText: the key values in key-field order as a JSON array); a range is every row
// whose key hash starts with given bits. A row's hash is RowHash: the first 8 bytes of the MD5 of
// its values of `fields`, in order, as a compact JSON array; a range's digest is the sum of its
// rows' hashes (mod 2^64) and their number.
struct KeyRanges {
  std::string collection;
  std::vector<std::string> key;     // canonical key fields, in order
  std::vector<std::string> fields;  // canonical fields hashed, in order (key fields first)
  // The rows whose key hash's top `bits` bits are one of `prefixes`; `bits` 0: every row.
  int bits = 0;
  std::vector<uint64_t> prefixes;
};

struct RangeDigest {
  uint64_t prefix = 0;  // the range: the key hash's top bits (as many as asked)
  int64_t rows = 0;
  uint64_t sum = 0;  // of the rows' RowHash, mod 2^64
};

// The first 8 bytes of the MD5 of `key_text`, big-endian.
uint64_t KeyHash(const std::string& key_text);
// The first 8 bytes of the MD5 of the values of `fields` in `row` (null where missing), as a
// compact JSON array, big-endian.
uint64_t RowHash(const Row& row, const std::vector<std::string>& fields);
// The top `bits` bits of `hash` (0 for 0 bits).
inline uint64_t HashPrefix(uint64_t hash, int bits) { return bits <= 0 ? 0 : hash >> (64 - bits); }

class Source;
// The generic implementations of Source::DigestRanges and Source::ScanRanges: every row read
// by Source::Scan and hashed in this process.
Result<std::vector<RangeDigest>> DigestRangesByScan(Source& source, const KeyRanges& within,
                                                    int split_bits);
Status ScanRangesByScan(Source& source, const KeyRanges& within, size_t max_rows,
                        const std::function<Status(std::vector<Change>&&)>& visit);

struct TableInfo {
  std::string name;
  bool exists = false;
  std::vector<ColumnInfo> columns;
  std::vector<ForeignKeyInfo> foreign_keys;  // declared by the table
};

// What a connector can do, declared once (Connector::capabilities). The engine adapts to it,
// so that a connector does only what its system can (docs/DESIGN.md §3).
struct Capabilities {
  // Sink::Apply writes all its batches in one transaction. Without it each row write stands
  // alone: a failure may leave earlier writes of the call in place (the engine applies such a
  // batch again, see atomic_applied_id).
  bool transactional_apply = true;
  // The change stream shows each of duplex's apply transactions as one kMarker carrying its
  // apply id, instead of its rows (an origin, or a marker row written with the rows: P5).
  // Without it the engine keeps a ledger of the values it wrote to the endpoint, per record
  // and field, and takes a captured value equal to one it wrote as duplex's own write (an
  // echo) rather than an edit; any other value is an edit, resolved against duplex's write
  // by the field's policy (docs/DESIGN.md §3.4).
  bool markers = true;
  // Sink::AppliedId is stored by Apply in the same transaction as the rows. Without it the
  // engine never asks AppliedId: a batch leaves its outbox once Apply returned and that
  // commits, so a batch applied just before a crash is applied again: the writes must then be
  // idempotent (an insert is an upsert keyed by the record, an update sets values, a delete of a
  // row already gone is no error).
  bool atomic_applied_id = true;
  // Captured updates and deletes carry the row as it was before (Change::before).
  bool before_images = true;
  // Apply checks RowOp::expected and RowOp::seen and rejects a write under which the endpoint
  // changed the row (reported as kRejected in its stream). Without it writes are
  // unconditional; a concurrent local edit is found by capture and the ledger instead.
  bool compare_and_set = true;
  // The most row writes one Apply call takes (0: no limit). The engine keeps within it
  // (pipeline/apply.h, ApplyCalls): whole batches while they fit; a batch over it goes alone
  // and whole to a sink with atomic_applied_id (a second call with the same id would be
  // skipped), and is cut at source-transaction boundaries for one without.
  size_t max_apply_rows = 0;
  // The shortest interval between polls worth making: the engine calls Poll no more often
  // (pipeline/capture.h, PollInterval). Captures that continue a batch are not polls.
  std::chrono::milliseconds min_poll_interval{0};
  // How long the engine may hold writes for this endpoint so that more changes join one call
  // (0: none). It sends them when the hold runs out, when they fill max_apply_rows, or as soon
  // as the endpoint's capture has news (Source::Poll true, a poll made): a sink whose calls
  // cost quota then writes once per poll at most, right after it, whatever the change rate
  // (pipeline/apply.cc, ApplyTo).
  std::chrono::milliseconds apply_hold{0};
  // The endpoint's request quota: at most `quota_calls` calls per `quota_period` (0: none).
  // The engine polls at most once per quota_period / quota_calls; the connector paces the
  // calls it makes besides and says so in Warnings when it runs short.
  int64_t quota_calls = 0;
  std::chrono::seconds quota_period{0};
};

// The source side of an endpoint (DESIGN §3): committed changes, in commit order, from a
// durable position. Used by one engine thread at a time.
class Source {
 public:
  virtual ~Source() = default;

  // Cheap check whether anything was committed since the last call (no table scan).
  virtual Result<bool> Poll() = 0;

  // Committed changes after `from`, in commit order, at most `max_changes`. Changes written
  // by duplex come as one kMarker per apply transaction instead of their rows (P5), if the
  // connector has Capabilities::markers.
  virtual Result<ChangeBatch> Capture(const Position& from, size_t max_changes) = 0;

  // Number of changes after `from` not yet captured (for status); -1 if it cannot tell.
  virtual Result<int64_t> Backlog(const Position& from) = 0;

  // Changes up to `upto` are durably in the journal; the endpoint may release them. Where it
  // can, the endpoint records `upto` itself (CheckRestored compares it).
  virtual Status Ack(const Position& upto) = 0;

  // Called before Install with what the state file recorded for this endpoint: the capture
  // position and the last position Ack succeeded for. Says whether the endpoint went back in
  // time since (a backup restored, a snapshot rolled back, a dump reloaded): it then holds an
  // older record of duplex's progress than `acked`, or its stream is behind `captured`, or
  // duplex's capture objects are gone. Writes nothing. The default finds nothing.
  virtual Result<RestoreCheck> CheckRestored(const Position& captured, const Position& acked) {
    (void)acked;
    return RestoreCheck{"", captured};
  }

  // Reads every row of `collection` as it is now, in chunks of at most `max_rows` rows handed
  // to `visit`: each row a kPresent change (key and `after` in canonical names, record ids for
  // mapped keys, no position). Writes nothing. Used to bring a restored endpoint back to the
  // agreed values. The default: not supported (InvalidArgument).
  virtual Status Scan(const std::string& collection, size_t max_rows,
                      const std::function<Status(std::vector<Change>&&)>& visit) {
    (void)max_rows;
    (void)visit;
    return Status::InvalidArgument("cannot read the rows of '" + collection + "' back");
  }
  // The digests of the ranges `within` splits into with `split_bits` more bits of the key hash
  // (KeyRanges): one per range holding rows, in any order. Writes nothing. The default reads
  // every row with Scan and hashes it here; a connector that can compute the same digests
  // where the data lives (an aggregate query) overrides it, so that endpoints that agree
  // cost little on the wire.
  virtual Result<std::vector<RangeDigest>> DigestRanges(const KeyRanges& within, int split_bits) {
    return DigestRangesByScan(*this, within, split_bits);
  }

  // The rows of the ranges `within`, as Scan gives them (kPresent changes), in chunks of at
  // most `max_rows`. Writes nothing. The default filters Scan.
  virtual Status ScanRanges(const KeyRanges& within, size_t max_rows,
                            const std::function<Status(std::vector<Change>&&)>& visit) {
    return ScanRangesByScan(*this, within, max_rows, visit);
  }
};

// The sink side of an endpoint: conditional, idempotent writes (DESIGN §3).
class Sink {
 public:
  virtual ~Sink() = default;

  // Id of the last apply batch committed on this endpoint (0 if none). Only asked of a sink
  // with Capabilities::atomic_applied_id.
  virtual Result<ApplyId> AppliedId() = 0;

  // Writes `batches` (ids ascending), marked as duplex's own. With
  // Capabilities::transactional_apply, in one transaction that also records the last id
  // (atomic_applied_id), and batches with an id <= AppliedId() are skipped, so applying twice
  // changes nothing (P6). Unavailable if the endpoint is busy or unreachable (nothing written,
  // or for a non-transactional sink: some writes may be, and the engine applies the batch
  // again); Refused means the target refuses a row (constraint, type, validation; nothing
  // written) and the engine parks it (status.h has what each code makes the engine do).
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
  // Without Capabilities::markers, an update or delete that finds no row is listed in
  // ApplyResult::no_effect.
  virtual Result<ApplyResult> Apply(const std::vector<ApplyBatch>& batches,
                                    bool isolate_txns = false) = 0;
};

// One endpoint: a source and a sink of one system, with what both share (connection, schema,
// installed objects). A connector is written against this contract alone; the guide is
// src/connectors/README.md. Used by one engine thread at a time.
class Connector : public Source, public Sink {
 public:
  ~Connector() override = default;

  // The endpoint's name in the config.
  virtual const std::string& name() const = 0;

  // What the connector can do. Constant for its lifetime; may be asked before Open.
  virtual Capabilities capabilities() const { return Capabilities(); }

  // A position of this endpoint's stream as its operators know it (a PostgreSQL LSN as
  // "0/16B3748"), for status and logs.
  virtual std::string DescribePosition(const Position& p) const { return PositionText(p); }

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

  // What the endpoint lacks for Install (settings, privileges, keys), each with the statement
  // that fixes it. Empty when nothing is missing. Writes nothing.
  virtual Result<std::vector<std::string>> Preflight() { return std::vector<std::string>(); }

  // Conditions an operator should act on while duplex runs (e.g. a replication slot holding
  // much WAL). Empty when healthy.
  virtual Result<std::vector<std::string>> Warnings() { return std::vector<std::string>(); }
};

}  // namespace duplex
