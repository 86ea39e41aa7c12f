#pragma once

#include "store/journal.h"
#include "store/store_db.h"

namespace duplex {

// The journal as a table of the state file (the embedded default, DESIGN §7):
//   journal(id PK AUTOINCREMENT, endpoint, payload, changes)
// `payload` is the batch as MessagePack (EncodeChangeBatch, src/store/codec.h), `changes` its
// number of changes. Every call joins the transaction open on `db`, if any.
class SqliteJournal final : public Journal {
 public:
  explicit SqliteJournal(StoreDb& db) : db_(db) {}

  Result<int64_t> Append(const std::string& endpoint, const ChangeBatch& batch) override;
  Result<std::vector<std::pair<int64_t, std::string>>> Heads(size_t max_entries) override;
  Result<ChangeBatch> Read(int64_t id) override;
  Status Delete(int64_t id) override;
  Result<int64_t> Backlog() override;

 private:
  StoreDb& db_;
};

}  // namespace duplex
