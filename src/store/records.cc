#include "store/records.h"

namespace duplex {

Status RecordTable::Load(const std::string& collection, const std::vector<std::string>& keys,
                         std::map<std::string, RecordState>& out) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("SELECT state FROM records WHERE collection = ? AND key = ?"));
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

Status RecordTable::Save(const std::string& collection, const std::string& key,
                         const RecordState& state) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      db_.Cached(
          "INSERT OR REPLACE INTO records(collection, key, live, state) VALUES(?, ?, ?, ?)"));
  std::string bytes = state.Encode();
  s->Bind(1, collection).Bind(2, key).Bind(3, state.exists ? 1 : 0);
  s->BindBlob(4, bytes.data(), bytes.size());
  return s->Run();
}

Result<int64_t> RecordTable::Count(const std::string& collection, bool live_only) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      db_.Cached("SELECT count(*) FROM records WHERE collection = ? AND live >= ?"));
  s->Bind(1, collection).Bind(2, live_only ? 1 : 0);
  return StoreDb::ScalarInt(*s);
}

Result<std::vector<std::string>> RecordTable::LiveKeys(const std::string& collection,
                                                       const std::string& after, size_t limit) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("SELECT key FROM records WHERE collection = ?1 AND live AND "
                                     "key > ?2 ORDER BY key LIMIT ?3"));
  s->Bind(1, collection).Bind(2, after).Bind(3, static_cast<int64_t>(limit));
  return StoreDb::Texts(*s);
}

Status RecordTable::ClearScanned() {
  DUPLEX_RETURN_IF_ERROR(
      db_.db().Exec("CREATE TEMP TABLE IF NOT EXISTS scanned(collection TEXT NOT "
                    "NULL, key TEXT NOT NULL, PRIMARY KEY(collection, key)) "
                    "WITHOUT ROWID"));
  return db_.db().Exec("DELETE FROM temp.scanned");
}

Status RecordTable::AddScanned(const std::string& collection,
                               const std::vector<std::string>& keys) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      db_.Cached("INSERT OR IGNORE INTO temp.scanned(collection, key) VALUES(?, ?)"));
  for (const std::string& k : keys) {
    s->Reset();
    DUPLEX_RETURN_IF_ERROR(s->Bind(1, collection).Bind(2, k).Run());
  }
  return Status::Ok();
}

Result<std::vector<std::string>> RecordTable::Unscanned(const std::string& collection,
                                                        const std::string& after, size_t limit) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, db_.Cached(R"sql(
    SELECT r.key FROM records r WHERE r.collection = ?1 AND r.key > ?2 AND NOT EXISTS
      (SELECT 1 FROM temp.scanned t WHERE t.collection = ?1 AND t.key = r.key)
    ORDER BY r.key LIMIT ?3)sql"));
  s->Bind(1, collection).Bind(2, after).Bind(3, static_cast<int64_t>(limit));
  return StoreDb::Texts(*s);
}

}  // namespace duplex
