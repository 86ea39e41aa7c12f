#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "connectors/postgres/pg_conn.h"
#include "duplex/connector.h"

namespace duplex::pg {

// How changes are captured (README "Positions"; docs/DESIGN.md §3 "PostgreSQL").
enum class CaptureMode { kLogical, kTrigger };

// What PostgresConnector is built from (one endpoint of the config).
struct PgOptions {
  std::string name;  // endpoint name in the config
  std::string dsn;   // libpq connection string or URI (may hold a password: never logged)
  std::string schema = "public";
  CaptureMode capture = CaptureMode::kLogical;
  std::string tag;  // [a-z0-9_], unique per (duplex config, endpoint)
  int64_t max_retained_wal_bytes = int64_t{1} << 30;  // Warnings() above this
};

// Rows per initial-load chunk (logical capture) and the most converted changes held waiting.
inline constexpr int kSnapshotChunkRows = 5000;
inline constexpr size_t kMaxBufferedChanges = 200000;

// One bound table: the collection's binding and what the catalog says about its columns.
struct BoundTable {
  CollectionBinding binding;
  std::unordered_map<std::string, std::string> column_of_field;
  std::unordered_map<std::string, std::string> field_of_column;
  std::unordered_set<std::string> key_fields;
  std::vector<std::string> columns;      // bound columns, binding order
  std::vector<std::string> key_columns;  // in key order
  std::unordered_map<std::string, Oid> oid_of_column;
  std::unordered_map<std::string, std::string> type_of_column;  // format_type()
  // Fields whose values are record ids (the mapped key, mapped_refs) -> the table (bound here,
  // mapped key) whose key map translates them.
  std::unordered_map<std::string, std::string> record_table;
};

// What every part of the PostgreSQL connector shares: the options, the two SQL connections, the
// bound tables, and the names of the server objects. Owned by PostgresConnector; the parts
// (installer, captures, applier, key map) hold a reference. One engine thread at a time.
struct PgEndpoint {
  explicit PgEndpoint(PgOptions o) : opt(std::move(o)) {}

  // "endpoint 'a' (postgres, schema public)", with ", table 't'": the start of every message.
  std::string Where() const;
  std::string Where(const std::string& table) const;
  std::string Q(const std::string& name) const;  // schema-qualified, quoted

  // Names of the server objects, all from `tag`.
  std::string SlotName() const { return "duplex_" + opt.tag; }
  std::string OriginName() const { return "duplex_" + opt.tag; }
  std::string PublicationName() const { return "duplex_" + opt.tag; }
  std::string TableName(const std::string& what) const { return "_duplex_" + opt.tag + "_" + what; }

  // Opens `conn` with duplex's session settings. When the server refuses, calls
  // `on_refused` first (logical capture lets go of its replication stream: see endpoint.cc).
  Status Connect(Conn& conn);
  std::function<void()> on_refused;
  // Reconnects `db` if needed (the types are then loaded again).
  Status EnsureDb();
  // The bound columns' type OIDs and names; InvalidArgument for a missing column or table.
  Status LoadTypes();
  // Whether duplex's tables are on the server (remembered once seen, until Uninstall).
  Result<bool> ObjectsExist();
  const BoundTable* ByCollection(const std::string& c) const;

  // SQL for a row's text image as jsonb (column -> text), each column read as `prefix` + column.
  Result<std::string> ImageSql(const BoundTable& t, const std::string& prefix) const;
  // The log's `pk`: the key columns' text as a JSON array, each read as `prefix` + column.
  std::string KeyTextSql(const BoundTable& t, const std::string& prefix) const;
  // A text image (column -> text or null) as a row of fields, converted by column type.
  Row ImageToRow(const BoundTable& t, const Value& image) const;

  PgOptions opt;
  Conn db;     // describe, install, snapshots, trigger capture, acks
  Conn apply;  // apply only; in logical mode its session carries the replication origin
  std::vector<BoundTable> tables;
  std::unordered_map<std::string, size_t> by_table;
  std::unordered_map<std::string, size_t> by_collection;
  bool types_loaded = false;
  bool objects_exist = false;  // duplex's tables were seen on the server (ObjectsExist)
};

// Small helpers shared by the parts.
std::string Join(const std::vector<std::string>& parts, const std::string& sep);
inline std::string Placeholder(int i) { return "$" + std::to_string(i); }
// The key fields of a row image (null where the image lacks one).
Row KeyOf(const std::vector<std::string>& key_fields, const Row& image);
// Appends a captured row change. An update whose old key (`old_key`, null if the source did not
// send one) differs from its new one moved the row: for duplex the old record is gone and a new
// one exists, so it becomes a delete and an insert at the same position. Returns whether it did.
bool AppendRowChange(Change c, const Row& old_key, const std::vector<std::string>& key_fields,
                     std::vector<Change>* out);

}  // namespace duplex::pg
