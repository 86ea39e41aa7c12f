#include "store/store_db.h"

namespace duplex {

Result<sqlite::Stmt*> StoreDb::Cached(const char* sql) {
  auto it = stmts_.find(sql);
  if (it != stmts_.end()) {
    it->second.Reset();
    return &it->second;
  }
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt stmt, db_.Prepare(sql));
  return &stmts_.emplace(sql, std::move(stmt)).first->second;
}

Result<int64_t> StoreDb::ScalarInt(sqlite::Stmt& s) {
  DUPLEX_ASSIGN_OR_RETURN(bool row, s.Step());
  int64_t n = row ? s.Int(0) : 0;
  s.Reset();
  return n;
}

Result<std::vector<std::string>> StoreDb::Texts(sqlite::Stmt& s) {
  std::vector<std::string> out;
  while (true) {
    DUPLEX_ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    out.push_back(s.Text(0));
  }
  s.Reset();
  return out;
}

}  // namespace duplex
