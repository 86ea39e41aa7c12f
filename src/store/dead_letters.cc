#include "store/dead_letters.h"

#include <algorithm>

#include "store/codec.h"

namespace duplex {

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
    ops.push_back({{"op", op.op == WriteOp::kInsert   ? "insert"
                          : op.op == WriteOp::kDelete ? "delete"
                          : op.op == WriteOp::kUpdate ? "update"
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

Result<int64_t> DeadLetters::Add(const std::string& endpoint, const ApplyBatch& batch,
                                 const std::string& reason, double now_ms, int64_t waits_for) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, db_.Cached(R"sql(
    INSERT INTO dead_letters(endpoint, batch_id, payload, reason, created_at, waits_for)
    VALUES(?, ?, ?, ?, ?, ?))sql"));
  std::string payload = EncodeApplyBatch(batch);
  s->Bind(1, endpoint).Bind(2, batch.id).BindBlob(3, payload.data(), payload.size());
  s->Bind(4, reason).Bind(5, now_ms).Bind(6, waits_for);
  DUPLEX_RETURN_IF_ERROR(s->Run());
  return db_.db().LastInsertRowid();
}

Result<std::pair<int64_t, int64_t>> DeadLetters::Version(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      db_.Cached("SELECT count(*), coalesce(max(id), 0) FROM dead_letters WHERE endpoint = ?"));
  s->Reset();
  s->Bind(1, endpoint);
  DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
  std::pair<int64_t, int64_t> out{0, 0};
  if (row) out = {s->Int(0), s->Int(1)};
  s->Reset();
  return out;
}

Result<int64_t> DeadLetters::Count(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("SELECT count(*) FROM dead_letters WHERE endpoint = ?"));
  s->Bind(1, endpoint);
  return StoreDb::ScalarInt(*s);
}

Result<std::vector<DeadLetterRow>> DeadLetters::List(bool retry_requested_only) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt s,
      db_.db().Prepare(std::string("SELECT id, endpoint, payload, reason, created_at, retry, "
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

Result<DeadLetterRow> DeadLetters::Get(int64_t id) {
  DUPLEX_ASSIGN_OR_RETURN(std::vector<DeadLetterRow> all, List(false));
  for (DeadLetterRow& d : all) {
    if (d.id == id) return std::move(d);
  }
  return Status::NotFound("no dead letter with id " + std::to_string(id));
}

Status DeadLetters::RequestRetry(int64_t id) {
  // The transactions waiting for it are retried after it, in id order.
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, db_.Cached(R"sql(
    WITH RECURSIVE w(id) AS (
      SELECT id FROM dead_letters WHERE id = ?1
      UNION SELECT d.id FROM dead_letters d JOIN w ON d.waits_for = w.id)
    UPDATE dead_letters SET retry = 1 WHERE id IN (SELECT id FROM w))sql"));
  DUPLEX_RETURN_IF_ERROR(s->Bind(1, id).Run());
  if (db_.db().Changes() == 0) {
    return Status::NotFound("no dead letter with id " + std::to_string(id));
  }
  return Status::Ok();
}

Result<int64_t> DeadLetters::RequestRetryAll() {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, db_.Cached("UPDATE dead_letters SET retry = 1"));
  DUPLEX_RETURN_IF_ERROR(s->Run());
  return static_cast<int64_t>(db_.db().Changes());
}

Status DeadLetters::Delete(int64_t id) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, db_.Cached("DELETE FROM dead_letters WHERE id = ?"));
  return s->Bind(1, id).Run();
}

Status DeadLetters::ReplaceOps(int64_t id, const ApplyBatch& batch) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("UPDATE dead_letters SET payload = ? WHERE id = ?"));
  std::string payload = EncodeApplyBatch(batch);
  return s->BindBlob(1, payload.data(), payload.size()).Bind(2, id).Run();
}

}  // namespace duplex
