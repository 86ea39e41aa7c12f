#include "store/state_store.h"

#include <algorithm>
#include <filesystem>
#include <limits>

#include "util/msgpack_writer.h"

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
INSERT OR IGNORE INTO meta(k, v) VALUES('schema_version', 6);
)sql";

nlohmann::json ParseOrNull(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

}  // namespace

nlohmann::json ConflictRow::ToJson() const {
  return {
      {"id", id},
      {"collection", collection},
      {"key", key},
      {"field", field.empty() ? nlohmann::json(nullptr) : nlohmann::json(field)},
      {"policy", policy},
      {"base", base},
      {"values", values},
      {"winner", winner.empty() ? nlohmann::json(nullptr) : nlohmann::json(winner)},
      {"status", status},
      {"resolution", resolution},
      {"propagating", pending},
      {"created_at", created_at},
      {"resolved_at", resolved_at == 0 ? nlohmann::json(nullptr) : nlohmann::json(resolved_at)}};
}

// Journal payload: {"e": end, "c": [change...]}, each change {"o": op, "p": position} plus
// {"a": apply id} for markers, or {"c", "k", "b", "n", "t"[, "s"][, "x": txn]} for row changes.
std::string EncodeChangeBatch(const ChangeBatch& batch) {
  MsgpackWriter w;
  w.MapHeader(2);
  w.String("e");
  w.Int(batch.end);
  w.String("c");
  w.ArrayHeader(static_cast<uint32_t>(batch.changes.size()));
  for (const Change& c : batch.changes) {
    const char op[2] = {static_cast<char>(c.op), 0};
    if (c.op == Op::kMarker) {
      w.MapHeader(3);
      w.String("o");
      w.String(op);
      w.String("p");
      w.Int(c.position);
      w.String("a");
      w.Int(c.apply_id);
      continue;
    }
    w.MapHeader(7 + (c.snapshot ? 1 : 0) + (c.txn != 0 ? 1 : 0));
    w.String("o");
    w.String(op);
    w.String("p");
    w.Int(c.position);
    w.String("c");
    w.String(c.collection);
    w.String("k");
    w.Json(c.key);
    w.String("b");
    w.Json(c.before);
    w.String("n");
    w.Json(c.after);
    w.String("t");
    w.Double(c.commit_ms);
    if (c.snapshot) {
      w.String("s");
      w.Bool(true);
    }
    if (c.txn != 0) {
      w.String("x");
      w.Int(c.txn);
    }
  }
  return w.Take();
}

Result<ChangeBatch> DecodeChangeBatch(std::string_view bytes) {
  nlohmann::json j = nlohmann::json::from_msgpack(bytes.begin(), bytes.end(), true, false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("journal entry undecodable");
  ChangeBatch batch;
  batch.end = j.value("e", int64_t{0});
  nlohmann::json& changes = j["c"];
  batch.changes.reserve(changes.size());
  for (nlohmann::json& cj : changes) {
    Change c;
    c.op = static_cast<Op>(cj["o"].get_ref<const std::string&>()[0]);
    c.position = cj.value("p", int64_t{0});
    if (c.op == Op::kMarker) {
      c.apply_id = cj.value("a", int64_t{0});
    } else {
      c.collection = cj["c"].get<std::string>();
      c.key = std::move(cj["k"]);
      c.before = std::move(cj["b"]);
      c.after = std::move(cj["n"]);
      c.commit_ms = cj.value("t", 0.0);
      c.snapshot = cj.value("s", false);
      c.txn = cj.value("x", int64_t{0});
    }
    batch.changes.push_back(std::move(c));
  }
  return batch;
}

// Outbox payload: {"i": id, "ops": [{"o", "s", "c", "k", "v", "x"[, "f", "t"][, "n": txn]}...]}.
std::string EncodeApplyBatch(const ApplyBatch& batch) {
  MsgpackWriter w;
  w.MapHeader(2);
  w.String("i");
  w.Int(batch.id);
  w.String("ops");
  w.ArrayHeader(static_cast<uint32_t>(batch.ops.size()));
  for (const RowOp& op : batch.ops) {
    const char code[2] = {static_cast<char>(op.op), 0};
    const bool traced = op.source_commit_ms > 0;
    w.MapHeader((traced ? 8 : 6) + (op.txn != 0 ? 1 : 0));
    w.String("o");
    w.String(code);
    w.String("s");
    w.Int(op.seen);
    w.String("c");
    w.String(op.collection);
    w.String("k");
    w.Json(op.key);
    w.String("v");
    w.Json(op.values);
    w.String("x");
    w.Json(op.expected);
    if (traced) {
      w.String("f");
      w.String(op.source);
      w.String("t");
      w.Double(op.source_commit_ms);
    }
    if (op.txn != 0) {
      w.String("n");
      w.Int(op.txn);
    }
  }
  return w.Take();
}

Result<ApplyBatch> DecodeApplyBatch(std::string_view bytes) {
  nlohmann::json j = nlohmann::json::from_msgpack(bytes.begin(), bytes.end(), true, false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("outbox entry undecodable");
  ApplyBatch batch;
  batch.id = j.value("i", int64_t{0});
  for (nlohmann::json& oj : j["ops"]) {
    RowOp op;
    op.op = static_cast<Op>(oj["o"].get_ref<const std::string&>()[0]);
    op.collection = oj["c"].get<std::string>();
    op.key = std::move(oj["k"]);
    op.values = std::move(oj["v"]);
    op.expected = std::move(oj["x"]);
    op.seen = oj.value("s", int64_t{0});
    op.txn = oj.value("n", int64_t{0});
    if (oj.contains("t")) {
      op.source = oj.value("f", std::string());
      op.source_commit_ms = oj.value("t", 0.0);
    }
    batch.ops.push_back(std::move(op));
  }
  return batch;
}

Result<std::unique_ptr<StateStore>> StateStore::Open(const std::string& path, bool create) {
  if (!create && !std::filesystem::exists(path)) {
    return Status::NotFound("state file '" + path + "' does not exist (has `duplex run` run?)");
  }
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Db db, sqlite::Db::Open(path, create, 10000));
  std::unique_ptr<StateStore> store(new StateStore(std::move(db)));
  DUPLEX_RETURN_IF_ERROR(store->Init());
  return store;
}

constexpr int64_t kSchemaVersion = 6;

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

Status StateStore::Init() {
  // The engine rewrites the same pages over and over (journal and outbox rows come and go,
  // record states are updated): a larger page cache and fewer WAL checkpoints save copying.
  DUPLEX_RETURN_IF_ERROR(db_.Exec("PRAGMA cache_size = -32768").WithContext("state file"));
  DUPLEX_RETURN_IF_ERROR(db_.Exec("PRAGMA wal_autocheckpoint = 8192").WithContext("state file"));
  // Check the version before creating anything, so that an older file is not half-upgraded;
  // an up-to-date file is not written to (commands that only read take no write lock).
  {
    Result<sqlite::Stmt> probe = db_.Prepare("SELECT v FROM meta WHERE k = 'schema_version'");
    if (probe.ok()) {
      Result<bool> row = probe->Step();
      if (!row.ok()) return row.status().WithContext("state file");
      if (*row) {
        const int64_t version = probe->Int(0);
        if (version == kSchemaVersion) return Status::Ok();
        if (version >= 2 && version < kSchemaVersion) {
          probe->Reset();
          DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, sqlite::Txn::Begin(db_));
          const char* steps[] = {kUpgradeFrom2, kUpgradeFrom3, kUpgradeFrom4, kUpgradeFrom5};
          for (int64_t v = version; v < kSchemaVersion; ++v) {
            DUPLEX_RETURN_IF_ERROR(db_.Exec(steps[v - 2]).WithContext("state file upgrade"));
          }
          return txn.Commit();
        }
        return Status::Corruption("state file '" + db_.path() + "' has schema version " +
                                  std::to_string(version) + "; this duplex reads version " +
                                  std::to_string(kSchemaVersion) +
                                  ". Move the file away to start over (the next run reloads "
                                  "every endpoint)");
      }
    }
  }  // The probe is finalized here: it must not hold a read transaction open.
  return db_.Exec(kSchema).WithContext("state file");
}

Result<sqlite::Stmt*> StateStore::Cached(const char* sql) {
  auto it = stmts_.find(sql);
  if (it != stmts_.end()) {
    it->second.Reset();
    return &it->second;
  }
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt stmt, db_.Prepare(sql));
  return &stmts_.emplace(sql, std::move(stmt)).first->second;
}

Result<int64_t> StateStore::ScalarInt(sqlite::Stmt& s) {
  DUPLEX_ASSIGN_OR_RETURN(bool row, s.Step());
  int64_t n = row ? s.Int(0) : 0;
  s.Reset();
  return n;
}

Result<EndpointProgress> StateStore::Progress(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      Cached("SELECT capture, watermark, last_error, resolved, acked, captured_ms, guard_pos, "
             "guard_ms, rescan FROM progress WHERE endpoint = ?"));
  s->Bind(1, endpoint);
  DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
  EndpointProgress p;
  if (row) {
    p.capture = s->Int(0);
    p.watermark = s->Int(1);
    p.last_error = s->Text(2);
    p.resolved = s->Int(3);
    p.acked = s->Int(4);
    p.captured_ms = s->Double(5);
    p.guard_pos = s->Int(6);
    p.guard_ms = s->Double(7);
    p.rescan = s->Int(8) != 0;
    p.exists = true;
  }
  s->Reset();
  return p;
}

Status StateStore::SetResolved(const std::string& endpoint, int64_t watermark, Position resolved) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached(R"sql(
    INSERT INTO progress(endpoint, watermark, resolved) VALUES(?1, ?2, ?3)
    ON CONFLICT(endpoint) DO UPDATE SET watermark = max(watermark, ?2),
                                        resolved = max(resolved, ?3))sql"));
  return s->Bind(1, endpoint).Bind(2, watermark).Bind(3, static_cast<int64_t>(resolved)).Run();
}

Status StateStore::SetLastError(const std::string& endpoint, const std::string& error) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached(R"sql(
    INSERT INTO progress(endpoint, last_error) VALUES(?1, ?2)
    ON CONFLICT(endpoint) DO UPDATE SET last_error = ?2)sql"));
  return s->Bind(1, endpoint).Bind(2, error).Run();
}

Result<int64_t> StateStore::AppendJournal(const std::string& endpoint, const ChangeBatch& batch) {
  int64_t id = 0;
  if (!batch.changes.empty()) {
    DUPLEX_ASSIGN_OR_RETURN(
        sqlite::Stmt * s,
        Cached("INSERT INTO journal(endpoint, payload, changes) VALUES(?, ?, ?)"));
    std::string payload = EncodeChangeBatch(batch);
    s->Bind(1, endpoint).BindBlob(2, payload.data(), payload.size());
    s->Bind(3, static_cast<int64_t>(batch.changes.size()));
    DUPLEX_RETURN_IF_ERROR(s->Run());
    id = db_.LastInsertRowid();
  }
  double newest = 0;
  for (const Change& c : batch.changes) newest = std::max(newest, c.commit_ms);
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * p, Cached(R"sql(
    INSERT INTO progress(endpoint, capture, captured_ms) VALUES(?1, ?2, ?3)
    ON CONFLICT(endpoint) DO UPDATE SET capture = ?2, captured_ms = max(captured_ms, ?3))sql"));
  DUPLEX_RETURN_IF_ERROR(p->Bind(1, endpoint).Bind(2, batch.end).Bind(3, newest).Run());
  return id;
}

Status StateStore::SetAcked(const std::string& endpoint, Position acked) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached(R"sql(
    INSERT INTO progress(endpoint, acked) VALUES(?1, ?2)
    ON CONFLICT(endpoint) DO UPDATE SET acked = ?2)sql"));
  return s->Bind(1, endpoint).Bind(2, static_cast<int64_t>(acked)).Run();
}

Status StateStore::ResetRestored(const std::string& endpoint, Position resume, int64_t watermark) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached(R"sql(
    UPDATE progress SET guard_pos = max(guard_pos, capture), guard_ms = max(guard_ms, captured_ms),
      capture = ?2, resolved = ?2, acked = ?2, watermark = ?3, rescan = 1 WHERE endpoint = ?1)sql"));
  DUPLEX_RETURN_IF_ERROR(
      s->Bind(1, endpoint).Bind(2, static_cast<int64_t>(resume)).Bind(3, watermark).Run());
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * o, Cached("DELETE FROM outbox WHERE endpoint = ?"));
  return o->Bind(1, endpoint).Run();
}

Status StateStore::SetRescanned(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("UPDATE progress SET rescan = 0 WHERE endpoint = ?"));
  return s->Bind(1, endpoint).Run();
}

Status StateStore::ClearScanned() {
  DUPLEX_RETURN_IF_ERROR(
      db_.Exec("CREATE TEMP TABLE IF NOT EXISTS scanned(collection TEXT NOT "
               "NULL, key TEXT NOT NULL, PRIMARY KEY(collection, key)) "
               "WITHOUT ROWID"));
  return db_.Exec("DELETE FROM temp.scanned");
}

Status StateStore::AddScanned(const std::string& collection, const std::vector<std::string>& keys) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s, Cached("INSERT OR IGNORE INTO temp.scanned(collection, key) VALUES(?, ?)"));
  for (const std::string& k : keys) {
    s->Reset();
    DUPLEX_RETURN_IF_ERROR(s->Bind(1, collection).Bind(2, k).Run());
  }
  return Status::Ok();
}

Result<std::vector<std::string>> StateStore::Unscanned(const std::string& collection,
                                                       const std::string& after, size_t limit) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached(R"sql(
    SELECT r.key FROM records r WHERE r.collection = ?1 AND r.key > ?2 AND NOT EXISTS
      (SELECT 1 FROM temp.scanned t WHERE t.collection = ?1 AND t.key = r.key)
    ORDER BY r.key LIMIT ?3)sql"));
  s->Bind(1, collection).Bind(2, after).Bind(3, static_cast<int64_t>(limit));
  std::vector<std::string> out;
  while (true) {
    DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back(s->Text(0));
  }
  s->Reset();
  return out;
}

Result<std::vector<std::pair<int64_t, std::string>>> StateStore::JournalHeads(size_t max_entries) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("SELECT id, endpoint FROM journal ORDER BY id LIMIT ?"));
  s->Bind(1, static_cast<int64_t>(max_entries));
  std::vector<std::pair<int64_t, std::string>> out;
  while (true) {
    DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.emplace_back(s->Int(0), s->Text(1));
  }
  s->Reset();
  return out;
}

Result<ChangeBatch> StateStore::ReadJournalBatch(int64_t id) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached("SELECT payload FROM journal WHERE id = ?"));
  s->Bind(1, id);
  DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return Status::NotFound("journal entry " + std::to_string(id));
  Result<ChangeBatch> batch = DecodeChangeBatch(s->Blob(0));
  s->Reset();
  return batch;
}

Status StateStore::DeleteJournal(int64_t id) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached("DELETE FROM journal WHERE id = ?"));
  return s->Bind(1, id).Run();
}

Result<int64_t> StateStore::JournalBacklog() {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("SELECT coalesce(sum(changes), 0) FROM journal"));
  return ScalarInt(*s);
}

Status StateStore::LoadRecords(const std::string& collection, const std::vector<std::string>& keys,
                               std::map<std::string, RecordState>& out) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("SELECT state FROM records WHERE collection = ? AND key = ?"));
  for (const std::string& key : keys) {
    if (out.count(key)) continue;
    s->Reset();
    s->Bind(1, collection).Bind(2, key);
    DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) continue;
    Result<RecordState> st = RecordState::Decode(s->Blob(0));
    if (!st.ok()) return st.status().WithContext("collection '" + collection + "' key " + key);
    out.emplace(key, std::move(st).value());
  }
  s->Reset();
  return Status::Ok();
}

Status StateStore::SaveRecord(const std::string& collection, const std::string& key,
                              const RecordState& state) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      Cached("INSERT OR REPLACE INTO records(collection, key, live, state) VALUES(?, ?, ?, ?)"));
  std::string bytes = state.Encode();
  s->Bind(1, collection).Bind(2, key).Bind(3, state.exists ? 1 : 0);
  s->BindBlob(4, bytes.data(), bytes.size());
  return s->Run();
}

Result<int64_t> StateStore::CountRecords(const std::string& collection, bool live_only) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s, Cached("SELECT count(*) FROM records WHERE collection = ? AND live >= ?"));
  s->Bind(1, collection).Bind(2, live_only ? 1 : 0);
  return ScalarInt(*s);
}

Result<int64_t> StateStore::AllocateApplyIds(int n) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("UPDATE meta SET v = v + ? WHERE k = 'next_apply_id' "
                                 "RETURNING v"));
  s->Bind(1, n);
  DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return Status::Corruption("state file: meta.next_apply_id is missing");
  int64_t next = s->Int(0);
  s->Reset();
  return next - n;
}

Status StateStore::EnsureApplyIdsAbove(int64_t id) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("UPDATE meta SET v = max(v, ?) WHERE k = 'next_apply_id'"));
  return s->Bind(1, id + 1).Run();
}

Status StateStore::AddOutbox(const std::string& endpoint, const ApplyBatch& batch) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      Cached("INSERT INTO outbox(id, endpoint, payload, rows, seen) VALUES(?, ?, ?, ?, ?)"));
  std::string payload = EncodeApplyBatch(batch);
  // An empty batch (only its marker) holds no changelog back.
  Position seen = batch.ops.empty() ? std::numeric_limits<Position>::max() : batch.ops.front().seen;
  for (const RowOp& op : batch.ops) seen = std::min(seen, op.seen);
  s->Bind(1, batch.id).Bind(2, endpoint).BindBlob(3, payload.data(), payload.size());
  s->Bind(4, static_cast<int64_t>(batch.ops.size())).Bind(5, static_cast<int64_t>(seen));
  return s->Run();
}

Result<std::vector<ApplyBatch>> StateStore::ReadOutbox(const std::string& endpoint, size_t max_rows,
                                                       std::map<int64_t, ApplyBatch>* cache) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      Cached("SELECT id, rows, payload FROM outbox WHERE endpoint = ? ORDER BY id LIMIT 1000"));
  s->Bind(1, endpoint);
  std::vector<ApplyBatch> out;
  size_t rows = 0;
  while (true) {
    DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    size_t n = static_cast<size_t>(s->Int(1));
    if (!out.empty() && rows + n > max_rows) break;
    if (cache) {
      auto it = cache->find(s->Int(0));
      if (it != cache->end()) {
        out.push_back(std::move(it->second));
        cache->erase(it);
        rows += n;
        continue;
      }
    }
    DUPLEX_ASSIGN_OR_RETURN(ApplyBatch b, DecodeApplyBatch(s->Blob(2)));
    out.push_back(std::move(b));
    rows += n;
  }
  s->Reset();
  return out;
}

Result<std::optional<Position>> StateStore::MinOutboxSeen(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("SELECT min(seen) FROM outbox WHERE endpoint = ?"));
  s->Bind(1, endpoint);
  DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
  std::optional<Position> out;
  if (row && !s->IsNull(0)) out = s->Int(0);
  s->Reset();
  return out;
}

Status StateStore::DeleteOutbox(const std::string& endpoint, int64_t upto_id) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("DELETE FROM outbox WHERE endpoint = ? AND id <= ?"));
  return s->Bind(1, endpoint).Bind(2, upto_id).Run();
}

Result<std::optional<ApplyBatch>> StateStore::ReadOutboxBatch(const std::string& endpoint,
                                                              int64_t id) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("SELECT payload FROM outbox WHERE endpoint = ? AND id = ?"));
  s->Bind(1, endpoint).Bind(2, id);
  DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
  std::optional<ApplyBatch> out;
  if (row) {
    Result<ApplyBatch> b = DecodeApplyBatch(s->Blob(0));
    s->Reset();
    if (!b.ok()) return b.status();
    out = std::move(*b);
  }
  s->Reset();
  return out;
}

Result<std::vector<int64_t>> StateStore::OutboxIds(const std::string& endpoint, int64_t after,
                                                   int64_t upto) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      Cached("SELECT id FROM outbox WHERE endpoint = ? AND id > ? AND id <= ? ORDER BY id"));
  s->Bind(1, endpoint).Bind(2, after).Bind(3, upto);
  std::vector<int64_t> out;
  while (true) {
    DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back(s->Int(0));
  }
  s->Reset();
  return out;
}

Status StateStore::ReplaceOutbox(const std::string& endpoint, const ApplyBatch& batch) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * d,
                          Cached("DELETE FROM outbox WHERE endpoint = ? AND id = ?"));
  DUPLEX_RETURN_IF_ERROR(d->Bind(1, endpoint).Bind(2, batch.id).Run());
  if (batch.ops.empty()) return Status::Ok();
  return AddOutbox(endpoint, batch);
}

Result<int64_t> StateStore::OutboxRows(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("SELECT coalesce(sum(rows), 0) FROM outbox WHERE endpoint = ?"));
  s->Bind(1, endpoint);
  return ScalarInt(*s);
}

Result<int64_t> StateStore::AddConflict(const ConflictRecord& c, double now_ms) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached(R"sql(
    INSERT INTO conflicts(collection, key, key_text, field, policy, base, vals, winner, status,
                          created_at, resolved_at)
    VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?))sql"));
  s->Bind(1, c.collection).Bind(2, c.key.dump()).Bind(3, c.key_text).Bind(4, c.field);
  s->Bind(5, c.policy).Bind(6, c.base.dump()).Bind(7, c.values.dump()).Bind(8, c.winner);
  s->Bind(9, c.open ? std::string("open") : "resolved:" + c.policy).Bind(10, now_ms);
  if (c.open) {
    s->BindNull(11);
  } else {
    s->Bind(11, now_ms);
  }
  DUPLEX_RETURN_IF_ERROR(s->Run());
  return db_.LastInsertRowid();
}

Status StateStore::UpdateOpenConflict(const ConflictValueUpdate& u) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached(R"sql(
    UPDATE conflicts SET vals = json_set(vals, '$.' || json_quote(?1), json(?2))
    WHERE status = 'open' AND collection = ?3 AND key_text = ?4 AND field = ?5)sql"));
  nlohmann::json side = {{"value", u.value}, {"ts", u.ts}};
  s->Bind(1, u.endpoint).Bind(2, side.dump()).Bind(3, u.collection).Bind(4, u.key_text);
  s->Bind(5, u.field);
  return s->Run();
}

namespace {

constexpr const char* kConflictColumns =
    "id, collection, key, key_text, field, policy, base, vals, winner, status, resolution, "
    "pending, created_at, resolved_at";

ConflictRow ReadConflict(const sqlite::Stmt& s) {
  ConflictRow c;
  c.id = s.Int(0);
  c.collection = s.Text(1);
  c.key = ParseOrNull(s.Text(2));
  c.key_text = s.Text(3);
  c.field = s.Text(4);
  c.policy = s.Text(5);
  c.base = ParseOrNull(s.Text(6));
  c.values = ParseOrNull(s.Text(7));
  c.winner = s.Text(8);
  c.status = s.Text(9);
  c.resolution = s.IsNull(10) ? Value(nullptr) : ParseOrNull(s.Text(10));
  c.pending = s.Int(11) != 0;
  c.created_at = s.Double(12);
  c.resolved_at = s.IsNull(13) ? 0 : s.Double(13);
  return c;
}

Result<std::vector<ConflictRow>> QueryConflicts(sqlite::Db& db, const std::string& where,
                                                int64_t id = 0) {
  std::string sql = std::string("SELECT ") + kConflictColumns + " FROM conflicts " + where;
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt s, db.Prepare(sql));
  if (id) s.Bind(1, id);
  std::vector<ConflictRow> out;
  while (true) {
    DUPLEX_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(ReadConflict(s));
  }
  return out;
}

}  // namespace

Result<std::vector<ConflictRow>> StateStore::ListConflicts(bool all) {
  return QueryConflicts(db_,
                        all ? "ORDER BY id" : "WHERE status = 'open' OR pending = 1 ORDER BY id");
}

Result<ConflictRow> StateStore::GetConflict(int64_t id) {
  DUPLEX_ASSIGN_OR_RETURN(std::vector<ConflictRow> rows, QueryConflicts(db_, "WHERE id = ?", id));
  if (rows.empty()) return Status::NotFound("no conflict with id " + std::to_string(id));
  return rows.front();
}

Result<int64_t> StateStore::CountOpenConflicts(const std::string& collection) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      Cached("SELECT count(*) FROM conflicts WHERE status = 'open' AND collection = ?"));
  s->Bind(1, collection);
  return ScalarInt(*s);
}

Status StateStore::ResolveConflict(int64_t id, const std::string& how, const Value& value,
                                   double now_ms) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached(R"sql(
    UPDATE conflicts SET status = ?, resolution = ?, pending = 1, resolved_at = ?
    WHERE id = ? AND status = 'open')sql"));
  s->Bind(1, how).Bind(2, value.dump()).Bind(3, now_ms).Bind(4, id);
  DUPLEX_RETURN_IF_ERROR(s->Run());
  if (db_.Changes() == 0) {
    return Status::InvalidArgument("conflict " + std::to_string(id) + " is not open");
  }
  return Status::Ok();
}

Result<std::vector<ConflictRow>> StateStore::PendingResolutions() {
  return QueryConflicts(db_, "WHERE pending = 1 ORDER BY id");
}

Status StateStore::MarkPropagated(int64_t id) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("UPDATE conflicts SET pending = 0 WHERE id = ?"));
  return s->Bind(1, id).Run();
}

Result<int64_t> StateStore::AddDeadLetter(const std::string& endpoint, const ApplyBatch& batch,
                                          const std::string& reason, double now_ms,
                                          int64_t waits_for) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached(R"sql(
    INSERT INTO dead_letters(endpoint, batch_id, payload, reason, created_at, waits_for)
    VALUES(?, ?, ?, ?, ?, ?))sql"));
  std::string payload = EncodeApplyBatch(batch);
  s->Bind(1, endpoint).Bind(2, batch.id).BindBlob(3, payload.data(), payload.size());
  s->Bind(4, reason).Bind(5, now_ms).Bind(6, waits_for);
  DUPLEX_RETURN_IF_ERROR(s->Run());
  return db_.LastInsertRowid();
}

Result<std::pair<int64_t, int64_t>> StateStore::DeadLetterVersion(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      Cached("SELECT count(*), coalesce(max(id), 0) FROM dead_letters WHERE endpoint = ?"));
  s->Reset();
  s->Bind(1, endpoint);
  DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
  std::pair<int64_t, int64_t> out{0, 0};
  if (row) out = {s->Int(0), s->Int(1)};
  s->Reset();
  return out;
}

nlohmann::json DeadLetterRow::ToJson() const {
  // `collection` (the first write's), `collections` (each once, in order) and `keys` summarise
  // the writes for listings; `ops` has them in full.
  nlohmann::json ops = nlohmann::json::array(), collections = nlohmann::json::array(),
                 keys = nlohmann::json::array();
  for (const RowOp& op : batch.ops) {
    if (std::find(collections.begin(), collections.end(), op.collection) == collections.end()) {
      collections.push_back(op.collection);
    }
    keys.push_back(op.key);
    const char code[2] = {static_cast<char>(op.op), 0};
    ops.push_back({{"op", op.op == Op::kInsert   ? "insert"
                          : op.op == Op::kDelete ? "delete"
                          : op.op == Op::kUpdate ? "update"
                                                 : code},
                   {"collection", op.collection},
                   {"key", op.key},
                   {"values", op.values}});
  }
  return {{"id", id},
          {"endpoint", endpoint},
          {"collection", batch.ops.empty() ? "" : batch.ops.front().collection},
          {"collections", std::move(collections)},
          {"keys", std::move(keys)},
          {"batch_id", batch.id},
          {"reason", reason},
          {"created_at", created_at},
          {"retry_requested", retry_requested},
          {"waits_for", waits_for == 0 ? nlohmann::json(nullptr) : nlohmann::json(waits_for)},
          {"ops", std::move(ops)}};
}

Result<std::vector<DeadLetterRow>> StateStore::ListDeadLetters(bool retry_requested_only) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt s,
      db_.Prepare(std::string("SELECT id, endpoint, payload, reason, created_at, retry, "
                              "waits_for FROM dead_letters ") +
                  (retry_requested_only ? "WHERE retry = 1 " : "") + "ORDER BY id"));
  std::vector<DeadLetterRow> out;
  while (true) {
    DUPLEX_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    DeadLetterRow d;
    d.id = s.Int(0);
    d.endpoint = s.Text(1);
    DUPLEX_ASSIGN_OR_RETURN(d.batch, DecodeApplyBatch(s.Blob(2)));
    d.reason = s.Text(3);
    d.created_at = s.Double(4);
    d.retry_requested = s.Int(5) != 0;
    d.waits_for = s.Int(6);
    out.push_back(std::move(d));
  }
  return out;
}

Result<DeadLetterRow> StateStore::GetDeadLetter(int64_t id) {
  DUPLEX_ASSIGN_OR_RETURN(std::vector<DeadLetterRow> all, ListDeadLetters(false));
  for (DeadLetterRow& d : all) {
    if (d.id == id) return std::move(d);
  }
  return Status::NotFound("no dead letter with id " + std::to_string(id));
}

Status StateStore::RequestRetry(int64_t id) {
  // The transactions waiting for it are retried after it, in id order.
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached(R"sql(
    WITH RECURSIVE w(id) AS (
      SELECT id FROM dead_letters WHERE id = ?1
      UNION SELECT d.id FROM dead_letters d JOIN w ON d.waits_for = w.id)
    UPDATE dead_letters SET retry = 1 WHERE id IN (SELECT id FROM w))sql"));
  DUPLEX_RETURN_IF_ERROR(s->Bind(1, id).Run());
  if (db_.Changes() == 0) {
    return Status::NotFound("no dead letter with id " + std::to_string(id));
  }
  return Status::Ok();
}

Result<int64_t> StateStore::RequestRetryAll() {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached("UPDATE dead_letters SET retry = 1"));
  DUPLEX_RETURN_IF_ERROR(s->Run());
  return static_cast<int64_t>(db_.Changes());
}

Status StateStore::ReplaceDeadLetterOps(int64_t id, const ApplyBatch& batch) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("UPDATE dead_letters SET payload = ? WHERE id = ?"));
  std::string payload = EncodeApplyBatch(batch);
  return s->BindBlob(1, payload.data(), payload.size()).Bind(2, id).Run();
}

Status StateStore::DeleteDeadLetter(int64_t id) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached("DELETE FROM dead_letters WHERE id = ?"));
  return s->Bind(1, id).Run();
}

Result<int64_t> StateStore::CountDeadLetters(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("SELECT count(*) FROM dead_letters WHERE endpoint = ?"));
  s->Bind(1, endpoint);
  return ScalarInt(*s);
}

Status StateStore::AddRef(const std::string& parent, const std::string& child) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("INSERT OR IGNORE INTO refs(parent, child) VALUES(?, ?)"));
  return s->Bind(1, parent).Bind(2, child).Run();
}

Status StateStore::RemoveRef(const std::string& parent, const std::string& child) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("DELETE FROM refs WHERE parent = ? AND child = ?"));
  return s->Bind(1, parent).Bind(2, child).Run();
}

Result<std::vector<std::string>> StateStore::ChildrenOf(const std::string& parent) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("SELECT child FROM refs WHERE parent = ? ORDER BY child"));
  s->Bind(1, parent);
  std::vector<std::string> out;
  while (true) {
    DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back(s->Text(0));
  }
  s->Reset();
  return out;
}

Status StateStore::RebuildRefs(
    const std::string& signature, const std::vector<std::string>& collections,
    const std::function<std::vector<std::string>(const std::string&, const RecordState&)>&
        parents_of) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * get,
                          Cached("SELECT v FROM meta WHERE k = 'refs_signature'"));
  DUPLEX_ASSIGN_OR_RETURN(bool row, get->Step());
  const bool same = row && get->Text(0) == signature;
  get->Reset();
  if (same) return Status::Ok();
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, Begin());
  DUPLEX_RETURN_IF_ERROR(db_.Exec("DELETE FROM refs"));
  for (const std::string& collection : collections) {
    DUPLEX_ASSIGN_OR_RETURN(
        sqlite::Stmt s,
        db_.Prepare("SELECT key, state FROM records WHERE collection = ? AND live"));
    s.Bind(1, collection);
    while (true) {
      DUPLEX_ASSIGN_OR_RETURN(bool more, s.Step());
      if (!more) break;
      DUPLEX_ASSIGN_OR_RETURN(RecordState state, RecordState::Decode(s.Blob(1)));
      const std::string child = collection + "\n" + s.Text(0);
      for (const std::string& parent : parents_of(collection, state)) {
        DUPLEX_RETURN_IF_ERROR(AddRef(parent, child));
      }
    }
  }
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * set,
                          Cached("INSERT OR REPLACE INTO meta(k, v) VALUES('refs_signature', ?)"));
  DUPLEX_RETURN_IF_ERROR(set->Bind(1, signature).Run());
  return txn.Commit();
}

Status StateStore::AddCounters(const std::string& endpoint, const Counters& d) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached(R"sql(
    INSERT INTO counters(endpoint, name, value) VALUES(?1, ?2, ?3)
    ON CONFLICT(endpoint, name) DO UPDATE SET value = value + ?3)sql"));
  const std::pair<const char*, int64_t> items[] = {
      {"captured", d.captured}, {"applied", d.applied},     {"echoes", d.echoes},
      {"rejected", d.rejected}, {"conflicts", d.conflicts}, {"dead_letters", d.dead_letters}};
  for (const auto& [name, value] : items) {
    if (value == 0) continue;
    s->Reset();
    DUPLEX_RETURN_IF_ERROR(s->Bind(1, endpoint).Bind(2, name).Bind(3, value).Run());
  }
  return Status::Ok();
}

Result<Counters> StateStore::GetCounters(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("SELECT name, value FROM counters WHERE endpoint = ?"));
  s->Bind(1, endpoint);
  Counters c;
  while (true) {
    DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    std::string name = s->Text(0);
    int64_t v = s->Int(1);
    if (name == "captured") c.captured = v;
    if (name == "applied") c.applied = v;
    if (name == "echoes") c.echoes = v;
    if (name == "rejected") c.rejected = v;
    if (name == "conflicts") c.conflicts = v;
    if (name == "dead_letters") c.dead_letters = v;
  }
  s->Reset();
  return c;
}

}  // namespace duplex
