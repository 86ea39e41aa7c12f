#include "store/ledger.h"

namespace duplex {

Status Ledger::Put(const std::string& endpoint, const std::string& collection,
                   const std::string& key_text, const std::string& field, const Value& value,
                   ApplyId apply_id) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, db_.Cached(R"sql(
    INSERT INTO ledger(endpoint, collection, key, field, value, apply_id)
    VALUES(?1, ?2, ?3, ?4, ?5, ?6)
    ON CONFLICT(endpoint, collection, key, field, apply_id)
    DO UPDATE SET value = excluded.value)sql"));
  s->Bind(1, endpoint).Bind(2, collection).Bind(3, key_text).Bind(4, field);
  return s->Bind(5, value.dump()).Bind(6, apply_id).Run();
}

Status Ledger::Record(const std::string& endpoint, ApplyId apply_id, const std::vector<RowOp>& ops,
                      const std::vector<std::string>& key_texts) {
  for (size_t i = 0; i < ops.size(); ++i) {
    const RowOp& op = ops[i];
    const std::string& key = key_texts[i];
    if (key.empty()) continue;
    if (op.op == WriteOp::kDelete) {
      // (What duplex wrote to the row's fields before stays: those writes may show first.)
      DUPLEX_RETURN_IF_ERROR(Put(endpoint, op.collection, key, "", Value(), apply_id));
      continue;
    }
    if (op.op == WriteOp::kInsert) {
      DUPLEX_RETURN_IF_ERROR(Put(endpoint, op.collection, key, "", Value(true), apply_id));
    }
    if (!op.values.is_object()) continue;
    for (const auto& [field, value] : op.values.items()) {
      if (op.key.is_object() && op.key.contains(field)) continue;  // the key shows anyway
      DUPLEX_RETURN_IF_ERROR(Put(endpoint, op.collection, key, field, value, apply_id));
    }
  }
  return Status::Ok();
}

Result<std::map<std::string, std::vector<LedgerEntry>>> Ledger::Of(const std::string& endpoint,
                                                                   const std::string& collection,
                                                                   const std::string& key_text) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      db_.Cached("SELECT field, value, apply_id FROM ledger WHERE endpoint = ? AND "
                 "collection = ? AND key = ? ORDER BY field, apply_id"));
  s->Bind(1, endpoint).Bind(2, collection).Bind(3, key_text);
  std::map<std::string, std::vector<LedgerEntry>> out;
  while (true) {
    Result<bool> row = s->Step();
    if (!row.ok()) {
      s->Reset();
      return row.status();
    }
    if (!*row) break;
    Value v = Value::parse(s->Text(1), nullptr, false);
    if (v.is_discarded()) {
      s->Reset();
      return Status::Corruption("state file: ledger entry of endpoint '" + endpoint + "', " +
                                collection + " " + key_text + " undecodable");
    }
    out[s->Text(0)].push_back(LedgerEntry{std::move(v), s->Int(2)});
  }
  s->Reset();
  return out;
}

Status Ledger::Drop(const std::string& endpoint, const std::string& collection,
                    const std::string& key_text,
                    const std::vector<std::pair<std::string, ApplyId>>& fields) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      db_.Cached("DELETE FROM ledger WHERE endpoint = ? AND collection = ? AND key = ? AND "
                 "field = ? AND apply_id <= ?"));
  for (const auto& [f, upto] : fields) {
    s->Bind(1, endpoint).Bind(2, collection).Bind(3, key_text).Bind(4, f).Bind(5, upto);
    DUPLEX_RETURN_IF_ERROR(s->Run());
  }
  return Status::Ok();
}

Status Ledger::Forget(const std::string& endpoint, ApplyId apply_id, const RowOp& op,
                      const std::string& key_text) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("DELETE FROM ledger WHERE endpoint = ? AND collection = ? AND "
                                     "key = ? AND field = ? AND apply_id = ? AND value = ?"));
  auto forget = [&](const std::string& field, const Value& value) {
    s->Bind(1, endpoint).Bind(2, op.collection).Bind(3, key_text).Bind(4, field);
    return s->Bind(5, apply_id).Bind(6, value.dump()).Run();
  };
  if (op.op == WriteOp::kDelete) return forget("", Value());
  if (op.op == WriteOp::kInsert) DUPLEX_RETURN_IF_ERROR(forget("", Value(true)));
  if (!op.values.is_object()) return Status::Ok();
  for (const auto& [field, value] : op.values.items()) {
    if (op.key.is_object() && op.key.contains(field)) continue;
    DUPLEX_RETURN_IF_ERROR(forget(field, value));
  }
  return Status::Ok();
}

Result<bool> Ledger::Any(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("SELECT count(*) FROM (SELECT 1 FROM ledger WHERE "
                                     "endpoint = ? LIMIT 1)"));
  s->Bind(1, endpoint);
  DUPLEX_ASSIGN_OR_RETURN(int64_t n, StoreDb::ScalarInt(*s));
  return n > 0;
}

Status Ledger::DeleteAll(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, db_.Cached("DELETE FROM ledger WHERE endpoint = ?"));
  return s->Bind(1, endpoint).Run();
}

}  // namespace duplex
