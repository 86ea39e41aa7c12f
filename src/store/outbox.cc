#include "store/outbox.h"

#include <algorithm>
#include <limits>

#include "store/codec.h"

namespace duplex {

Status Outbox::Add(const std::string& endpoint, const ApplyBatch& batch) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      db_.Cached("INSERT INTO outbox(id, endpoint, payload, rows, seen) VALUES(?, ?, ?, ?, ?)"));
  std::string payload = EncodeApplyBatch(batch);
  // An empty batch (only its marker) holds no changelog back (MinSeen skips it).
  Position seen = batch.ops.empty() ? Position() : batch.ops.front().seen;
  for (const RowOp& op : batch.ops) seen = std::min(seen, op.seen);
  s->Bind(1, batch.id).Bind(2, endpoint).BindBlob(3, payload.data(), payload.size());
  s->Bind(4, static_cast<int64_t>(batch.ops.size()));
  StoreDb::BindPosition(*s, 5, seen);
  return s->Run();
}

Result<std::vector<ApplyBatch>> Outbox::Read(const std::string& endpoint, size_t max_rows,
                                             std::map<int64_t, ApplyBatch>* cache) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      db_.Cached("SELECT id, rows, payload FROM outbox WHERE endpoint = ? ORDER BY id LIMIT 1000"));
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

Result<std::optional<Position>> Outbox::MinSeen(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s, db_.Cached("SELECT min(seen) FROM outbox WHERE endpoint = ? AND rows > 0"));
  s->Bind(1, endpoint);
  DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
  std::optional<Position> out;
  if (row && !s->IsNull(0)) out = StoreDb::ColumnPosition(*s, 0);
  s->Reset();
  return out;
}

Status Outbox::Delete(const std::string& endpoint, int64_t upto_id) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("DELETE FROM outbox WHERE endpoint = ? AND id <= ?"));
  return s->Bind(1, endpoint).Bind(2, upto_id).Run();
}

Status Outbox::DeleteAll(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * o, db_.Cached("DELETE FROM outbox WHERE endpoint = ?"));
  return o->Bind(1, endpoint).Run();
}

Result<std::optional<ApplyBatch>> Outbox::ReadBatch(const std::string& endpoint, int64_t id) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("SELECT payload FROM outbox WHERE endpoint = ? AND id = ?"));
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

Result<std::vector<int64_t>> Outbox::Ids(const std::string& endpoint, int64_t after, int64_t upto) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      db_.Cached("SELECT id FROM outbox WHERE endpoint = ? AND id > ? AND id <= ? ORDER BY id"));
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

Status Outbox::Replace(const std::string& endpoint, const ApplyBatch& batch) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * d,
                          db_.Cached("DELETE FROM outbox WHERE endpoint = ? AND id = ?"));
  DUPLEX_RETURN_IF_ERROR(d->Bind(1, endpoint).Bind(2, batch.id).Run());
  if (batch.ops.empty()) return Status::Ok();
  return Add(endpoint, batch);
}

Result<int64_t> Outbox::Rows(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s, db_.Cached("SELECT coalesce(sum(rows), 0) FROM outbox WHERE endpoint = ?"));
  s->Bind(1, endpoint);
  return StoreDb::ScalarInt(*s);
}

}  // namespace duplex
