#include "store/schema.h"

namespace duplex {

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS progress(endpoint TEXT PRIMARY KEY, capture INTEGER NOT NULL DEFAULT 0,
  watermark INTEGER NOT NULL DEFAULT 0, resolved INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '', acked INTEGER NOT NULL DEFAULT 0,
  captured_ms REAL NOT NULL DEFAULT 0, guard_pos INTEGER NOT NULL DEFAULT 0,
  guard_ms REAL NOT NULL DEFAULT 0, rescan INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS journal(id INTEGER PRIMARY KEY AUTOINCREMENT, endpoint TEXT NOT NULL,
  payload BLOB NOT NULL, changes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records(collection TEXT NOT NULL, key TEXT NOT NULL,
  live INTEGER NOT NULL, state BLOB NOT NULL, PRIMARY KEY(collection, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox(id INTEGER PRIMARY KEY, endpoint TEXT NOT NULL,
  payload BLOB NOT NULL, rows INTEGER NOT NULL, seen INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_endpoint ON outbox(endpoint, id);
CREATE TABLE IF NOT EXISTS conflicts(id INTEGER PRIMARY KEY AUTOINCREMENT,
  collection TEXT NOT NULL, key TEXT NOT NULL, key_text TEXT NOT NULL, field TEXT NOT NULL,
  policy TEXT NOT NULL, base TEXT NOT NULL, vals TEXT NOT NULL, winner TEXT NOT NULL,
  status TEXT NOT NULL, resolution TEXT, pending INTEGER NOT NULL DEFAULT 0,
  created_at REAL NOT NULL, resolved_at REAL);
CREATE INDEX IF NOT EXISTS conflicts_open ON conflicts(status, collection, key_text, field);
CREATE TABLE IF NOT EXISTS dead_letters(id INTEGER PRIMARY KEY AUTOINCREMENT,
  endpoint TEXT NOT NULL, batch_id INTEGER NOT NULL, payload BLOB NOT NULL, reason TEXT NOT NULL,
  created_at REAL NOT NULL, retry INTEGER NOT NULL DEFAULT 0,
  waits_for INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS counters(endpoint TEXT NOT NULL, name TEXT NOT NULL,
  value INTEGER NOT NULL, PRIMARY KEY(endpoint, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refs(parent TEXT NOT NULL, child TEXT NOT NULL,
  PRIMARY KEY(parent, child)) WITHOUT ROWID;
INSERT OR IGNORE INTO meta(k, v) VALUES('next_apply_id', 1);
CREATE TABLE IF NOT EXISTS ledger(endpoint TEXT NOT NULL, collection TEXT NOT NULL,
  key TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL, apply_id INTEGER NOT NULL,
  PRIMARY KEY(endpoint, collection, key, field, apply_id)) WITHOUT ROWID;
INSERT OR IGNORE INTO meta(k, v) VALUES('schema_version', 7);
)sql";

// Version 2 -> 3: dead letters can be retried (an operator's request waits in `retry`).
constexpr const char* kUpgradeFrom2 = R"sql(
ALTER TABLE dead_letters ADD COLUMN retry INTEGER NOT NULL DEFAULT 0;
UPDATE meta SET v = 3 WHERE k = 'schema_version';
)sql";

// Version 3 -> 4: a dead letter may wait for another one (a transaction that depends on it).
constexpr const char* kUpgradeFrom3 = R"sql(
ALTER TABLE dead_letters ADD COLUMN waits_for INTEGER NOT NULL DEFAULT 0;
UPDATE meta SET v = 4 WHERE k = 'schema_version';
)sql";

// Version 4 -> 5: the index of references between records (the engine fills it on open).
constexpr const char* kUpgradeFrom4 = R"sql(
CREATE TABLE refs(parent TEXT NOT NULL, child TEXT NOT NULL,
  PRIMARY KEY(parent, child)) WITHOUT ROWID;
UPDATE meta SET v = 5 WHERE k = 'schema_version';
)sql";

// Version 5 -> 6: what duplex acked on each endpoint and the newest source commit time it
// captured there, to notice an endpoint that went back in time (a backup restored) and to tell
// its changes captured before from the ones made since (guard_*); rescan: its rows are to be
// read back and brought to the agreed values.
constexpr const char* kUpgradeFrom5 = R"sql(
ALTER TABLE progress ADD COLUMN acked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE progress ADD COLUMN captured_ms REAL NOT NULL DEFAULT 0;
ALTER TABLE progress ADD COLUMN guard_pos INTEGER NOT NULL DEFAULT 0;
ALTER TABLE progress ADD COLUMN guard_ms REAL NOT NULL DEFAULT 0;
ALTER TABLE progress ADD COLUMN rescan INTEGER NOT NULL DEFAULT 0;
UPDATE meta SET v = 6 WHERE k = 'schema_version';
)sql";

// Version 6 -> 7: positions are blobs of the connector's bytes (integers of older files read
// as Position::FromInt's); the ledger of what duplex wrote to endpoints without markers.
constexpr const char* kUpgradeFrom6 = R"sql(
CREATE TABLE IF NOT EXISTS ledger(endpoint TEXT NOT NULL, collection TEXT NOT NULL,
  key TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL, apply_id INTEGER NOT NULL,
  PRIMARY KEY(endpoint, collection, key, field, apply_id)) WITHOUT ROWID;
UPDATE meta SET v = 7 WHERE k = 'schema_version';
)sql";

}  // namespace

Status InitSchema(sqlite::Db& db) {
  // The engine rewrites the same pages over and over (journal and outbox rows come and go,
  // record states are updated): a larger page cache and fewer WAL checkpoints save copying.
  DUPLEX_RETURN_IF_ERROR(db.Exec("PRAGMA cache_size = -32768").WithContext("state file"));
  DUPLEX_RETURN_IF_ERROR(db.Exec("PRAGMA wal_autocheckpoint = 8192").WithContext("state file"));
  // Check the version before creating anything, so that an older file is not half-upgraded;
  // an up-to-date file is not written to (commands that only read take no write lock).
  {
    Result<sqlite::Stmt> probe = db.Prepare("SELECT v FROM meta WHERE k = 'schema_version'");
    if (probe.ok()) {
      Result<bool> row = probe->Step();
      if (!row.ok()) return row.status().WithContext("state file");
      if (*row) {
        const int64_t version = probe->Int(0);
        if (version == kSchemaVersion) return Status::Ok();
        if (version >= 2 && version < kSchemaVersion) {
          probe->Reset();
          DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, sqlite::Txn::Begin(db));
          const char* steps[] = {kUpgradeFrom2, kUpgradeFrom3, kUpgradeFrom4, kUpgradeFrom5,
                                 kUpgradeFrom6};
          for (int64_t v = version; v < kSchemaVersion; ++v) {
            DUPLEX_RETURN_IF_ERROR(db.Exec(steps[v - 2]).WithContext("state file upgrade"));
          }
          return txn.Commit();
        }
        return Status::Corruption("state file '" + db.path() + "' has schema version " +
                                  std::to_string(version) + "; this duplex reads version " +
                                  std::to_string(kSchemaVersion) +
                                  ". Move the file away to start over (the next run reloads "
                                  "every endpoint)");
      }
    }
  }  // The probe is finalized here: it must not hold a read transaction open.
  return db.Exec(kSchema).WithContext("state file");
}

}  // namespace duplex
