#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "connectors/postgres/capture.h"
#include "connectors/postgres/key_map.h"

namespace duplex::pg {

// Capture `trigger`: AFTER triggers write a changelog table (`_duplex_<tag>_log`); duplex's own
// transactions set the transaction-local `duplex.origin` to this endpoint's tag, which the
// triggers skip (CDC-FACTS Q4). Positions are stamped by Capture in id order over committed rows
// only, so that a long transaction's rows cannot slip behind the cursor. The marker is an `M`
// log row, a rejected write an `R` row; `_applied` holds the applied id and the stamp counter,
// `_acked` what duplex acked (CheckRestored).
class TriggerCapture final : public PgCapture {
 public:
  // Written into each trigger function's body; bump it when the generated function changes,
  // so that an install by an older duplex counts as not installed and is replaced.
  static constexpr const char* kTriggerVersion = "duplex trigger 3";

  TriggerCapture(PgEndpoint& ep, KeyMap& keys) : ep_(ep), keys_(keys) {}

  Status Preflight(bool, bool, const std::string&, const std::string&,
                   std::vector<std::string>*) override {
    return Status::Ok();
  }
  bool NeedsReplicaIdentity() const override { return false; }
  const char* OwnershipNeededFor() const override { return "creating its triggers needs"; }
  // The log, `_applied` and `_acked` tables.
  Result<bool> ObjectsInstalled() override;
  std::string LogTable() const override { return ep_.Q(ep_.TableName("log")); }
  // Every bound table has its trigger, calling a function of this duplex's trigger version.
  Result<bool> TablesInstalled() override;
  Status InstallObjects() override;
  Status InstallTable(const BoundTable& t, bool snapshot) override;
  Status ForgetTable(const std::string& table) override;
  void Reset() override { acked_stamp_ = -1; }
  Result<std::vector<std::string>> Warnings() override { return std::vector<std::string>(); }

  Result<bool> Poll() override;
  Result<ChangeBatch> Capture(const Position& from, size_t max_changes) override;
  Result<int64_t> Backlog(const Position& from) override;
  Status Ack(const Position& upto) override;
  Result<RestoreCheck> CheckRestored(const Position& captured, const Position& acked) override;
  Result<int64_t> AppliedId() override;
  bool Dead() const override { return false; }

  Status SetUpApplySession(Conn&) override { return Status::Ok(); }
  Status BeginApply(Conn& apply, int64_t top) override;
  bool SeenInStatement() const override { return true; }
  std::string UnseenSql(const BoundTable& t, const std::string& key_sql,
                        const std::string& seen_ph) const override;
  Status CatchUp(Conn&) override { return Status::Ok(); }
  bool ChangedAfter(const std::string&, const std::string&, const Position&) const override {
    return false;
  }
  Status Reject(Conn& apply, const BoundTable& t, const RowOp& op, const Value& image,
                int64_t batch_id) override;
  Status Mark(Conn& apply, int64_t top, bool writes) override;

 private:
  // Gives committed, unstamped log rows their positions, in id order.
  Status StampLog();

  PgEndpoint& ep_;
  KeyMap& keys_;
  bool first_poll_ = true;
  int64_t last_stamped_ = 0;  // highest stamped position seen
  int64_t acked_stamp_ = -1;  // what the `acked` table holds, as last written
};

}  // namespace duplex::pg
