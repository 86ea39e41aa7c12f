#pragma once

#include <cstdint>

#include "duplex/status.h"
#include "util/sqlite.h"

namespace duplex {

// The state file's schema version (meta.schema_version). A file of an older version from 2 on
// is upgraded in place when opened; any other version is refused.
constexpr int64_t kSchemaVersion = 7;

// Prepares an opened state file (DESIGN §6): sets its page cache and WAL checkpoint size,
// then creates the tables of a new file, or upgrades an older one in one transaction (never
// half). An up-to-date file is not written to (commands that only read take no write lock).
// Corruption if the file has a schema version this duplex does not read.
//
// Tables:
//   progress(endpoint PK, capture, watermark, resolved, last_error, acked, captured_ms,
//            guard_pos, guard_ms, rescan)                    per-endpoint positions (§6)
//   journal(id PK AUTOINCREMENT, endpoint, payload msgpack, changes)   captured, not yet resolved
//   records(collection, key, live, state msgpack, PK(collection, key)) RecordState per record
//   outbox(id PK, endpoint, payload msgpack, rows, seen)     planned, not yet applied
//   conflicts(id PK AUTOINCREMENT, ...)                      the conflict log
//   dead_letters(id PK AUTOINCREMENT, endpoint, batch_id, payload, reason, created_at, retry,
//                waits_for)
//   counters(endpoint, name, value, PK(endpoint, name))
//   refs(parent, child, PK(parent, child))                   references between records
//   meta(k PK, v)                          next_apply_id, refs_signature, schema_version
Status InitSchema(sqlite::Db& db);

}  // namespace duplex
