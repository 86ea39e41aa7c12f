// An in-memory endpoint for the deterministic simulation (issue 3). `MemoryEndpoint` is the
// "external system": tables of rows, a changelog filled by (simulated) triggers, the last applied
// batch id and its own skewable clock. It survives engine crashes. `MemoryConnector` is a thin
// handle on one, implementing the Connector contract exactly like the SQLite connector
// (src/connectors/sqlite): triggers log the application's writes with the row key; duplex's own
// writes are not logged, except one marker per apply transaction and one 'R' change per rejected
// write carrying the row as it actually is.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "connectors/memory/memory_endpoint.h"
#include "duplex/connector.h"

namespace duplex::memory {

class MemoryConnector final : public Connector {
 public:
  explicit MemoryConnector(std::shared_ptr<MemoryEndpoint> endpoint);

  const std::string& name() const override { return ep_->name(); }
  // All capabilities, or none of markers, transactions, compare-and-set, applied id and
  // before-images for a MemoryEndpoint::rest_like one.
  Capabilities capabilities() const override;
  Status Open() override;
  Result<TableInfo> Describe(const std::string& table) override;
  Status Bind(std::vector<CollectionBinding> bindings) override;
  Result<bool> IsInstalled() override;
  Status Install() override;
  Status Uninstall() override;
  Result<bool> Poll() override;
  Result<ChangeBatch> Capture(const Position& from, size_t max_changes) override;
  Result<int64_t> Backlog(const Position& from) override;
  Status Ack(const Position& upto) override;
  Result<int64_t> AppliedId() override;
  // Describe: the table's columns and the foreign keys declared on the endpoint (checked
  // immediately, so not deferrable). Capture: Change::txn is the application's transaction
  // (the install's for the initial load, -apply id for duplex's markers and rejections).
  // Apply with `isolate_txns`: the ops of one batch with one RowOp::txn are one unit, rolled
  // back whole and reported as one FailedOp if the endpoint refuses any of them.
  Result<ApplyResult> Apply(const std::vector<ApplyBatch>& batches,
                            bool isolate_txns = false) override;

 private:
  struct BoundTable {
    CollectionBinding binding;
    std::map<std::string, std::string> column_of_field;
    std::map<std::string, std::string> field_of_column;
  };
  Status NotInstalled() const;
  Row MapImage(const BoundTable& t, const Row& image) const;  // columns -> fields
  Row ToColumns(const BoundTable& t, const Row& fields) const;
  // Returns whether the write took effect; Refused for a row the table cannot take (a foreign
  // key, a field it has no column for, a malformed op).
  Result<bool> ApplyOne(const BoundTable& t, const RowOp& op);
  // ApplyOne after the `seen` check, counting the write (or logging an 'R' change for it).
  Status ApplyCounted(const RowOp& op, int64_t batch_id, ApplyResult& result);
  bool ChangedSince(const BoundTable& t, const RowOp& op) const;
  // Apply on a rest_like endpoint: each write on its own, logged like the application's.
  Result<ApplyResult> ApplyUnconditionally(const std::vector<ApplyBatch>& batches);

  std::shared_ptr<MemoryEndpoint> ep_;
  std::vector<BoundTable> tables_;
  std::map<std::string, size_t> by_table_;
  std::map<std::string, size_t> by_collection_;
  bool polled_ = false;
  int64_t polled_version_ = 0;
};

}  // namespace duplex::memory
