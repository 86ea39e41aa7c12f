#include "store/state_store.h"

#include <filesystem>

namespace duplex {

namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS progress(endpoint TEXT PRIMARY KEY, capture INTEGER NOT NULL DEFAULT 0,
  watermark INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS journal(id INTEGER PRIMARY KEY AUTOINCREMENT, endpoint TEXT NOT NULL,
  payload BLOB NOT NULL, changes INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS records(collection TEXT NOT NULL, key TEXT NOT NULL,
  live INTEGER NOT NULL, state BLOB NOT NULL, PRIMARY KEY(collection, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox(id INTEGER PRIMARY KEY, endpoint TEXT NOT NULL,
  payload BLOB NOT NULL, rows INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_endpoint ON outbox(endpoint, id);
CREATE TABLE IF NOT EXISTS conflicts(id INTEGER PRIMARY KEY AUTOINCREMENT,
  collection TEXT NOT NULL, key TEXT NOT NULL, key_text TEXT NOT NULL, field TEXT NOT NULL,
  policy TEXT NOT NULL, base TEXT NOT NULL, vals TEXT NOT NULL, winner TEXT NOT NULL,
  status TEXT NOT NULL, resolution TEXT, pending INTEGER NOT NULL DEFAULT 0,
  created_at REAL NOT NULL, resolved_at REAL);
CREATE INDEX IF NOT EXISTS conflicts_open ON conflicts(status, collection, key_text, field);
CREATE TABLE IF NOT EXISTS dead_letters(id INTEGER PRIMARY KEY AUTOINCREMENT,
  endpoint TEXT NOT NULL, batch_id INTEGER NOT NULL, payload BLOB NOT NULL, reason TEXT NOT NULL,
  created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS counters(endpoint TEXT NOT NULL, name TEXT NOT NULL,
  value INTEGER NOT NULL, PRIMARY KEY(endpoint, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
INSERT OR IGNORE INTO meta(k, v) VALUES('next_apply_id', 1);
INSERT OR IGNORE INTO meta(k, v) VALUES('schema_version', 1);
)sql";

std::string Bytes(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

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

std::string EncodeChangeBatch(const ChangeBatch& batch) {
  nlohmann::json arr = nlohmann::json::array();
  for (const Change& c : batch.changes) {
    nlohmann::json j = {{"o", std::string(1, static_cast<char>(c.op))}, {"p", c.position}};
    if (c.op == Op::kMarker) {
      j["a"] = c.apply_id;
    } else {
      j["c"] = c.collection;
      j["k"] = c.key;
      j["b"] = c.before;
      j["n"] = c.after;
      j["t"] = c.commit_ms;
      if (c.snapshot) j["s"] = true;
    }
    arr.push_back(std::move(j));
  }
  return Bytes(nlohmann::json::to_msgpack({{"e", batch.end}, {"c", std::move(arr)}}));
}

Result<ChangeBatch> DecodeChangeBatch(std::string_view bytes) {
  nlohmann::json j = nlohmann::json::from_msgpack(bytes.begin(), bytes.end(), true, false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("journal entry undecodable");
  ChangeBatch batch;
  batch.end = j.value("e", int64_t{0});
  for (const nlohmann::json& cj : j["c"]) {
    Change c;
    c.op = static_cast<Op>(cj["o"].get<std::string>()[0]);
    c.position = cj.value("p", int64_t{0});
    if (c.op == Op::kMarker) {
      c.apply_id = cj.value("a", int64_t{0});
    } else {
      c.collection = cj["c"].get<std::string>();
      c.key = cj["k"];
      c.before = cj["b"];
      c.after = cj["n"];
      c.commit_ms = cj.value("t", 0.0);
      c.snapshot = cj.value("s", false);
    }
    batch.changes.push_back(std::move(c));
  }
  return batch;
}

std::string EncodeApplyBatch(const ApplyBatch& batch) {
  nlohmann::json ops = nlohmann::json::array();
  for (const RowOp& op : batch.ops) {
    ops.push_back({{"o", std::string(1, static_cast<char>(op.op))},
                   {"c", op.collection},
                   {"k", op.key},
                   {"v", op.values},
                   {"x", op.expected}});
  }
  return Bytes(nlohmann::json::to_msgpack({{"i", batch.id}, {"ops", std::move(ops)}}));
}

Result<ApplyBatch> DecodeApplyBatch(std::string_view bytes) {
  nlohmann::json j = nlohmann::json::from_msgpack(bytes.begin(), bytes.end(), true, false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("outbox entry undecodable");
  ApplyBatch batch;
  batch.id = j.value("i", int64_t{0});
  for (const nlohmann::json& oj : j["ops"]) {
    RowOp op;
    op.op = static_cast<Op>(oj["o"].get<std::string>()[0]);
    op.collection = oj["c"].get<std::string>();
    op.key = oj["k"];
    op.values = oj["v"];
    op.expected = oj["x"];
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

Status StateStore::Init() { return db_.Exec(kSchema).WithContext("state file"); }

Result<sqlite::Stmt*> StateStore::Cached(const char* sql) {
  auto it = stmts_.find(sql);
  if (it != stmts_.end()) {
    it->second.Reset();
    return &it->second;
  }
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt stmt, db_.Prepare(sql));
  return &stmts_.emplace(sql, std::move(stmt)).first->second;
}

Result<EndpointProgress> StateStore::Progress(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      Cached("SELECT capture, watermark, last_error FROM progress WHERE endpoint = ?"));
  s->Bind(1, endpoint);
  DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
  EndpointProgress p;
  if (row) {
    p.capture = s->Int(0);
    p.watermark = s->Int(1);
    p.last_error = s->Text(2);
    p.exists = true;
  }
  s->Reset();
  return p;
}

Status StateStore::SetWatermark(const std::string& endpoint, int64_t watermark) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached(R"sql(
    INSERT INTO progress(endpoint, watermark) VALUES(?1, ?2)
    ON CONFLICT(endpoint) DO UPDATE SET watermark = max(watermark, ?2))sql"));
  return s->Bind(1, endpoint).Bind(2, watermark).Run();
}

Status StateStore::SetLastError(const std::string& endpoint, const std::string& error) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached(R"sql(
    INSERT INTO progress(endpoint, last_error) VALUES(?1, ?2)
    ON CONFLICT(endpoint) DO UPDATE SET last_error = ?2)sql"));
  return s->Bind(1, endpoint).Bind(2, error).Run();
}

Status StateStore::AppendJournal(const std::string& endpoint, const ChangeBatch& batch) {
  if (!batch.changes.empty()) {
    DUPLEX_ASSIGN_OR_RETURN(
        sqlite::Stmt * s,
        Cached("INSERT INTO journal(endpoint, payload, changes) VALUES(?, ?, ?)"));
    std::string payload = EncodeChangeBatch(batch);
    s->Bind(1, endpoint).BindBlob(2, payload.data(), payload.size());
    s->Bind(3, static_cast<int64_t>(batch.changes.size()));
    DUPLEX_RETURN_IF_ERROR(s->Run());
  }
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * p, Cached(R"sql(
    INSERT INTO progress(endpoint, capture) VALUES(?1, ?2)
    ON CONFLICT(endpoint) DO UPDATE SET capture = ?2)sql"));
  return p->Bind(1, endpoint).Bind(2, batch.end).Run();
}

Result<std::vector<JournalEntry>> StateStore::ReadJournal(size_t max_entries) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("SELECT id, endpoint, payload FROM journal ORDER BY id LIMIT ?"));
  s->Bind(1, static_cast<int64_t>(max_entries));
  std::vector<JournalEntry> out;
  while (true) {
    DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    JournalEntry e;
    e.id = s->Int(0);
    e.endpoint = s->Text(1);
    DUPLEX_ASSIGN_OR_RETURN(e.batch, DecodeChangeBatch(s->Blob(2)));
    out.push_back(std::move(e));
  }
  s->Reset();
  return out;
}

Status StateStore::DeleteJournal(int64_t id) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached("DELETE FROM journal WHERE id = ?"));
  return s->Bind(1, id).Run();
}

Result<int64_t> StateStore::JournalBacklog() {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("SELECT coalesce(sum(changes), 0) FROM journal"));
  DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
  int64_t n = row ? s->Int(0) : 0;
  s->Reset();
  return n;
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
  DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
  int64_t n = row ? s->Int(0) : 0;
  s->Reset();
  return n;
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
      Cached("INSERT INTO outbox(id, endpoint, payload, rows) VALUES(?, ?, ?, ?)"));
  std::string payload = EncodeApplyBatch(batch);
  s->Bind(1, batch.id).Bind(2, endpoint).BindBlob(3, payload.data(), payload.size());
  s->Bind(4, static_cast<int64_t>(batch.ops.size()));
  return s->Run();
}

Result<std::vector<ApplyBatch>> StateStore::ReadOutbox(const std::string& endpoint,
                                                       size_t max_rows) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      Cached("SELECT payload, rows FROM outbox WHERE endpoint = ? ORDER BY id LIMIT 1000"));
  s->Bind(1, endpoint);
  std::vector<ApplyBatch> out;
  size_t rows = 0;
  while (true) {
    DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    size_t n = static_cast<size_t>(s->Int(1));
    if (!out.empty() && rows + n > max_rows) break;
    DUPLEX_ASSIGN_OR_RETURN(ApplyBatch b, DecodeApplyBatch(s->Blob(0)));
    out.push_back(std::move(b));
    rows += n;
  }
  s->Reset();
  return out;
}

Status StateStore::DeleteOutbox(const std::string& endpoint, int64_t upto_id) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("DELETE FROM outbox WHERE endpoint = ? AND id <= ?"));
  return s->Bind(1, endpoint).Bind(2, upto_id).Run();
}

Result<int64_t> StateStore::OutboxRows(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("SELECT coalesce(sum(rows), 0) FROM outbox WHERE endpoint = ?"));
  s->Bind(1, endpoint);
  DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
  int64_t n = row ? s->Int(0) : 0;
  s->Reset();
  return n;
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
  DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
  int64_t n = row ? s->Int(0) : 0;
  s->Reset();
  return n;
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

Status StateStore::AddDeadLetter(const std::string& endpoint, const ApplyBatch& batch,
                                 const std::string& reason, double now_ms) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, Cached(R"sql(
    INSERT INTO dead_letters(endpoint, batch_id, payload, reason, created_at)
    VALUES(?, ?, ?, ?, ?))sql"));
  std::string payload = EncodeApplyBatch(batch);
  s->Bind(1, endpoint).Bind(2, batch.id).BindBlob(3, payload.data(), payload.size());
  s->Bind(4, reason).Bind(5, now_ms);
  return s->Run();
}

Result<int64_t> StateStore::CountDeadLetters(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          Cached("SELECT count(*) FROM dead_letters WHERE endpoint = ?"));
  s->Bind(1, endpoint);
  DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
  int64_t n = row ? s->Int(0) : 0;
  s->Reset();
  return n;
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
