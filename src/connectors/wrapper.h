// ConnectorWrapper: a Connector that forwards every call to another one (leveldb's EnvWrapper;
// STYLE §6). A fault injector, a tracer or a rate limiter derives from it and overrides only
// the calls it changes; every other call, including the ones with a default in Connector, goes
// to the wrapped connector unchanged.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "duplex/connector.h"

namespace duplex {

class ConnectorWrapper : public Connector {
 public:
  // Owns `target`, which must not be null.
  explicit ConnectorWrapper(std::unique_ptr<Connector> target) : target_(std::move(target)) {}

  // The wrapped connector.
  Connector& target() const { return *target_; }

  const std::string& name() const override { return target_->name(); }
  Capabilities capabilities() const override { return target_->capabilities(); }
  std::string DescribePosition(const Position& p) const override {
    return target_->DescribePosition(p);
  }
  Status Open() override { return target_->Open(); }
  Result<TableInfo> Describe(const std::string& table) override { return target_->Describe(table); }
  Status Bind(std::vector<CollectionBinding> bindings) override {
    return target_->Bind(std::move(bindings));
  }
  Result<bool> IsInstalled() override { return target_->IsInstalled(); }
  Status Install() override { return target_->Install(); }
  Status Uninstall() override { return target_->Uninstall(); }
  Result<bool> Poll() override { return target_->Poll(); }
  Result<ChangeBatch> Capture(const Position& from, size_t max_changes) override {
    return target_->Capture(from, max_changes);
  }
  Result<int64_t> Backlog(const Position& from) override { return target_->Backlog(from); }
  Status Ack(const Position& upto) override { return target_->Ack(upto); }
  Result<RestoreCheck> CheckRestored(const Position& captured, const Position& acked) override {
    return target_->CheckRestored(captured, acked);
  }
  Status Scan(const std::string& collection, size_t max_rows,
              const std::function<Status(std::vector<Change>&&)>& visit) override {
    return target_->Scan(collection, max_rows, visit);
  }
  Result<int64_t> AppliedId() override { return target_->AppliedId(); }
  Result<ApplyResult> Apply(const std::vector<ApplyBatch>& batches,
                            bool isolate_txns = false) override {
    return target_->Apply(batches, isolate_txns);
  }
  Result<std::vector<std::string>> Preflight() override { return target_->Preflight(); }
  Result<std::vector<std::string>> Warnings() override { return target_->Warnings(); }

 private:
  std::unique_ptr<Connector> target_;
};

}  // namespace duplex
