#include "connectors/sqlite/sqlite_connector.h"

#include <utility>

namespace duplex::sqlite {

SqliteConnector::SqliteConnector(std::string name, std::string path)
    : ep_(std::move(name), std::move(path)),
      key_map_(ep_),
      installer_(ep_),
      capture_(ep_),
      applier_(ep_, key_map_) {}

// The parts are members declared after ep_, so their statements are finalized before the
// connection closes.
SqliteConnector::~SqliteConnector() = default;

Status SqliteConnector::Open() { return ep_.Open(); }

Result<TableInfo> SqliteConnector::Describe(const std::string& table) {
  return ep_.Describe(table);
}

Status SqliteConnector::Bind(std::vector<CollectionBinding> bindings) {
  DUPLEX_RETURN_IF_ERROR(ep_.Bind(std::move(bindings)));
  // Statements shaped by the old bindings.
  applier_.ForgetTables();
  key_map_.ForgetTables();
  return Status::Ok();
}

Result<bool> SqliteConnector::IsInstalled() { return installer_.IsInstalled(); }

Status SqliteConnector::Install() { return installer_.Install(); }

Status SqliteConnector::Uninstall() {
  DUPLEX_RETURN_IF_ERROR(ep_.CheckOpen());
  ClearStatements();  // they refer to the tables about to be dropped
  return installer_.Uninstall();
}

void SqliteConnector::ClearStatements() {
  capture_.ClearStatements();
  applier_.ClearStatements();
  key_map_.ClearStatements();
}

Result<bool> SqliteConnector::Poll() { return capture_.Poll(); }

Result<ChangeBatch> SqliteConnector::Capture(const Position& from, size_t max_changes) {
  return capture_.Capture(from, max_changes);
}

Result<int64_t> SqliteConnector::Backlog(const Position& from) { return capture_.Backlog(from); }

Status SqliteConnector::Ack(const Position& upto) { return capture_.Ack(upto); }

Result<RestoreCheck> SqliteConnector::CheckRestored(const Position& captured,
                                                    const Position& acked) {
  return capture_.CheckRestored(captured, acked);
}

Status SqliteConnector::Scan(const std::string& collection, size_t max_rows,
                             const std::function<Status(std::vector<Change>&&)>& visit) {
  return capture_.Scan(collection, max_rows, visit);
}

Result<int64_t> SqliteConnector::AppliedId() { return applier_.AppliedId(); }

Result<ApplyResult> SqliteConnector::Apply(const std::vector<ApplyBatch>& batches,
                                           bool isolate_txns) {
  return applier_.Apply(batches, isolate_txns);
}

}  // namespace duplex::sqlite
