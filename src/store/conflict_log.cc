#include "store/conflict_log.h"

namespace duplex {

namespace {

nlohmann::json ParseOrNull(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

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

Result<int64_t> ConflictLog::Add(const ConflictRecord& c, double now_ms) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, db_.Cached(R"sql(
    INSERT INTO conflicts(collection, key, key_text, field, policy, base, vals, winner, status,
                          created_at, resolved_at, resolution)
    VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?))sql"));
  s->Bind(1, c.collection).Bind(2, c.key.dump()).Bind(3, c.key_text).Bind(4, c.field + c.path);
  s->Bind(5, c.policy).Bind(6, c.base.dump()).Bind(7, c.values.dump()).Bind(8, c.winner);
  s->Bind(9, c.open     ? std::string("open")
             : c.merged ? std::string("merged")
                        : "resolved:" + c.policy);
  s->Bind(10, now_ms);
  if (c.open) {
    s->BindNull(11);
  } else {
    s->Bind(11, now_ms);
  }
  // A merged value is what both edits made together: kept as the entry's resolution.
  if (c.merged) {
    s->Bind(12, c.result.dump());
  } else {
    s->BindNull(12);
  }
  DUPLEX_RETURN_IF_ERROR(s->Run());
  return db_.db().LastInsertRowid();
}

Status ConflictLog::UpdateOpen(const ConflictValueUpdate& u) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, db_.Cached(R"sql(
    UPDATE conflicts SET vals = json_set(vals, '$.' || json_quote(?1), json(?2))
    WHERE status = 'open' AND collection = ?3 AND key_text = ?4 AND field = ?5)sql"));
  nlohmann::json side = {{"value", u.value}, {"ts", u.ts}};
  s->Bind(1, u.endpoint).Bind(2, side.dump()).Bind(3, u.collection).Bind(4, u.key_text);
  s->Bind(5, u.field);
  return s->Run();
}

Result<std::vector<ConflictRow>> ConflictLog::List(bool all) {
  return QueryConflicts(db_.db(),
                        all ? "ORDER BY id" : "WHERE status = 'open' OR pending = 1 ORDER BY id");
}

Result<ConflictRow> ConflictLog::Get(int64_t id) {
  DUPLEX_ASSIGN_OR_RETURN(std::vector<ConflictRow> rows,
                          QueryConflicts(db_.db(), "WHERE id = ?", id));
  if (rows.empty()) return Status::NotFound("no conflict with id " + std::to_string(id));
  return rows.front();
}

Result<int64_t> ConflictLog::CountOpen(const std::string& collection) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      db_.Cached("SELECT count(*) FROM conflicts WHERE status = 'open' AND collection = ?"));
  s->Bind(1, collection);
  return StoreDb::ScalarInt(*s);
}

Status ConflictLog::Resolve(int64_t id, const std::string& how, const Value& value, double now_ms) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, db_.Cached(R"sql(
    UPDATE conflicts SET status = ?, resolution = ?, pending = 1, resolved_at = ?
    WHERE id = ? AND status = 'open')sql"));
  s->Bind(1, how).Bind(2, value.dump()).Bind(3, now_ms).Bind(4, id);
  DUPLEX_RETURN_IF_ERROR(s->Run());
  if (db_.db().Changes() == 0) {
    return Status::InvalidArgument("conflict " + std::to_string(id) + " is not open");
  }
  return Status::Ok();
}

Result<std::vector<ConflictRow>> ConflictLog::PendingResolutions() {
  return QueryConflicts(db_.db(), "WHERE pending = 1 ORDER BY id");
}

Status ConflictLog::MarkPropagated(int64_t id) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("UPDATE conflicts SET pending = 0 WHERE id = ?"));
  return s->Bind(1, id).Run();
}

}  // namespace duplex
