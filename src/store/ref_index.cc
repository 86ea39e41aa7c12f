#include "store/ref_index.h"

#include "duplex/ids.h"

namespace duplex {

Status RefIndex::Add(const std::string& parent, const std::string& child) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("INSERT OR IGNORE INTO refs(parent, child) VALUES(?, ?)"));
  return s->Bind(1, parent).Bind(2, child).Run();
}

Status RefIndex::Remove(const std::string& parent, const std::string& child) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("DELETE FROM refs WHERE parent = ? AND child = ?"));
  return s->Bind(1, parent).Bind(2, child).Run();
}

Result<std::vector<std::string>> RefIndex::ChildrenOf(const std::string& parent) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("SELECT child FROM refs WHERE parent = ? ORDER BY child"));
  s->Bind(1, parent);
  return StoreDb::Texts(*s);
}

Status RefIndex::Rebuild(const std::string& signature, const std::vector<std::string>& collections,
                         const ParentsOf& parents_of) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * get,
                          db_.Cached("SELECT v FROM meta WHERE k = 'refs_signature'"));
  DUPLEX_ASSIGN_OR_RETURN(bool row, get->Step());
  const bool same = row && get->Text(0) == signature;
  get->Reset();
  if (same) return Status::Ok();
  sqlite::Db& db = db_.db();
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, sqlite::Txn::Begin(db));
  DUPLEX_RETURN_IF_ERROR(db.Exec("DELETE FROM refs"));
  for (const std::string& collection : collections) {
    DUPLEX_ASSIGN_OR_RETURN(
        sqlite::Stmt s, db.Prepare("SELECT key, state FROM records WHERE collection = ? AND live"));
    s.Bind(1, collection);
    while (true) {
      DUPLEX_ASSIGN_OR_RETURN(bool more, s.Step());
      if (!more) break;
      DUPLEX_ASSIGN_OR_RETURN(RecordState state, RecordState::Decode(s.Blob(1)));
      const std::string child = RecordKey{collection, s.Text(0)}.ToString();
      for (const std::string& parent : parents_of(collection, state)) {
        DUPLEX_RETURN_IF_ERROR(Add(parent, child));
      }
    }
  }
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * set,
      db_.Cached("INSERT OR REPLACE INTO meta(k, v) VALUES('refs_signature', ?)"));
  DUPLEX_RETURN_IF_ERROR(set->Bind(1, signature).Run());
  return txn.Commit();
}

}  // namespace duplex
