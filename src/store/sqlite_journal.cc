#include "store/sqlite_journal.h"

#include "store/codec.h"

namespace duplex {

Result<int64_t> SqliteJournal::Append(const std::string& endpoint, const ChangeBatch& batch) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      db_.Cached("INSERT INTO journal(endpoint, payload, changes) VALUES(?, ?, ?)"));
  std::string payload = EncodeChangeBatch(batch);
  s->Bind(1, endpoint).BindBlob(2, payload.data(), payload.size());
  s->Bind(3, static_cast<int64_t>(batch.changes.size()));
  DUPLEX_RETURN_IF_ERROR(s->Run());
  return db_.db().LastInsertRowid();
}

Result<std::vector<std::pair<int64_t, std::string>>> SqliteJournal::Heads(size_t max_entries) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("SELECT id, endpoint FROM journal ORDER BY id LIMIT ?"));
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

Result<ChangeBatch> SqliteJournal::Read(int64_t id) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, db_.Cached("SELECT payload FROM journal WHERE id = ?"));
  s->Bind(1, id);
  DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return Status::NotFound("journal entry " + std::to_string(id));
  Result<ChangeBatch> batch = DecodeChangeBatch(s->Blob(0));
  s->Reset();
  return batch;
}

Status SqliteJournal::Delete(int64_t id) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, db_.Cached("DELETE FROM journal WHERE id = ?"));
  return s->Bind(1, id).Run();
}

Result<int64_t> SqliteJournal::Backlog() {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("SELECT coalesce(sum(changes), 0) FROM journal"));
  return StoreDb::ScalarInt(*s);
}

}  // namespace duplex
