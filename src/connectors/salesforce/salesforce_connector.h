#pragma once

#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "connectors/salesforce/endpoint.h"
#include "connectors/salesforce/id_cache.h"
#include "duplex/connector.h"
#include "duplex/env.h"

namespace duplex::sf {

// The "salesforce" endpoint type: one org as a v2 Connector over SfEndpoint (issue 13 §2).
//
// What the org cannot do, declared in capabilities(): no transactions, no markers, no
// compare-and-set, no applied id kept with the rows, no before-images. The engine then keeps
// a ledger of the values it wrote and recognises them in capture (echoes, P5); writes are
// idempotent so that a batch applied again after a crash or a lost reply changes nothing (P6):
// records duplex creates are upserted by the external id field holding duplex's record id,
// the org's own records are updated by Id, and a delete of a record already gone counts as
// done.
//
// Position: eight bytes, a delivery counter most significant byte first, then SfEndpoint's
// JSON state (replay id, poll cursors, sweep starts). The counter makes the bytes sort in the
// order changes were delivered; it grows by one per change. A change delivered before the end
// of one SfEndpoint capture carries the state from before that capture, so resuming from it
// reads that capture again (the changes after it come again with higher counters; values
// only, so applying one twice changes nothing).
class SalesforceConnector final : public Connector {
 public:
  SalesforceConnector(std::string name, SfEndpoint::Options options, Env& env);
  ~SalesforceConnector() override;

  const std::string& name() const override { return name_; }
  Capabilities capabilities() const override;
  std::string DescribePosition(const Position& p) const override;

  Status Open() override;
  Result<TableInfo> Describe(const std::string& table) override;
  Status Bind(std::vector<CollectionBinding> bindings) override;
  Result<bool> IsInstalled() override { return true; }
  // Nothing is created in the org: capture needs only the API. The initial load is the first
  // poll from an empty cursor (every live record, as snapshot inserts).
  Status Install() override { return Status::Ok(); }
  Status Uninstall() override { return Status::Ok(); }
  Result<std::vector<std::string>> Preflight() override;
  Result<std::vector<std::string>> Warnings() override;

  Result<bool> Poll() override;
  Result<ChangeBatch> Capture(const Position& from, size_t max_changes) override;
  Result<int64_t> Backlog(const Position& from) override;
  // The org keeps no record of duplex's progress (change events are retained 72 h whatever).
  Status Ack(const Position& upto) override {
    (void)upto;
    return Status::Ok();
  }

  Result<ApplyId> AppliedId() override { return ApplyId{0}; }
  Result<ApplyResult> Apply(const std::vector<ApplyBatch>& batches,
                            bool isolate_txns = false) override;

  // The position's parts (for tests): the delivery counter and SfEndpoint's state.
  static Position MakePosition(uint64_t counter, const std::string& state);
  static uint64_t CounterOf(const Position& p);
  static std::string StateOf(const Position& p);

 private:
  struct Bound {
    CollectionBinding binding;
    std::string object;      // the org's API name, as describe spells it
    std::string key_column;  // the key field's column ("Id" for a mapped key)
  };
  const Bound* ByCollection(const std::string& collection) const;
  const Bound* ByObject(const std::string& object) const;
  std::string Where() const;
  // Starts SfEndpoint (login, describe, the event stream from `state`'s replay id) once.
  Status Ensure(const std::string& state);
  Status Login();
  // The changes of `got` in canonical names (rows read again where an event carried only its
  // changed fields; keys and references translated to record ids).
  Result<std::vector<Change>> ToChanges(std::vector<SfChange> got, bool snapshot);
  // Current rows of `ids` (Id -> row by API name), live records only.
  Result<std::map<std::string, nlohmann::json>> ReadRows(const Bound& b,
                                                         const std::vector<std::string>& ids);
  // The record ids of `ids` of `object` (Id -> record id).
  Result<std::map<std::string, std::string>> RecordIdsOf(const std::string& object,
                                                         const std::vector<std::string>& ids,
                                                         bool include_deleted);
  // The Ids of `records` (record ids, or with `own_keys` false external id values) of
  // `object` in the org; records it lacks are left out. Known ones from ids_, no call.
  Result<std::map<std::string, std::string>> IdsOf(const std::string& object,
                                                   const std::vector<std::string>& records,
                                                   bool own_keys = true);

  std::string name_;
  SfEndpoint::Options options_;
  Env& env_;
  std::unique_ptr<Client> meta_;  // Open, Describe, Preflight: before SfEndpoint starts
  std::map<std::string, ObjectInfo> described_;
  std::vector<Bound> bound_;
  std::unique_ptr<SfEndpoint> ep_;
  IdCache ids_;  // Id <-> external id of the records met: look-ups not asked again
  // Changes of one SfEndpoint capture not handed out yet (max_changes), and the position the
  // engine resumes from when it asks for them.
  std::deque<Change> pending_;
  Position pending_from_;
  // The state before and after the capture whose changes are pending (Capture's batch end).
  std::string pending_before_, pending_after_;
};

}  // namespace duplex::sf
