#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "connectors/salesforce/client.h"
#include "duplex/env.h"
#include "duplex/result.h"

namespace duplex::sf {

// What became of one record of a write call (shared/SALESFORCE.md §3.4, §10.7), by what the
// engine must do with it.
enum class WriteOutcome {
  kCreated,
  kUpdated,
  kDeleted,        // deleted now, or found deleted already (a retried delete: P6)
  kRefused,        // validation, required field, picklist, length, ...: a dead letter
  kRetriable,      // UNABLE_TO_LOCK_ROW, 503, a lost reply: send again (the writes are idempotent)
  kRolledBack,     // ALL_OR_NONE_OPERATION_ROLLED_BACK / PROCESSING_HALTED: another record failed
  kQuotaExceeded,  // 403 REQUEST_LIMIT_EXCEEDED: pause the endpoint until the quota frees
};
const char* WriteOutcomeName(WriteOutcome o);

struct RecordResult {
  WriteOutcome outcome = WriteOutcome::kRetriable;
  std::string id;      // the record's 18-character Id, when the org gave one
  std::string code;    // the org's statusCode / errorCode of the first error, if any
  std::string fields;  // the fields that error names, comma-separated
  // For a refusal: "object 'Account', record 'A-1', field 'Rating': CODE: message".
  std::string message;
  // Sent again after a reply that did not come (lost, 503): an answer such as
  // ENTITY_IS_DELETED may then be the first send's own doing.
  bool resent = false;
};

// The writes duplex makes, on one Client. Every write is idempotent, keyed by the record:
// upserts by external id and deletes by Id, so a record whose reply was lost is sent again
// without making a duplicate (P6). Results come back in request order.
//
// A call-wide failure is spread over its records: unreachable, 503 or a lost reply makes each
// record kRetriable; 403 REQUEST_LIMIT_EXCEEDED kQuotaExceeded. Other call-wide failures (bad
// credentials, a malformed request, an answer that does not match the request) are returned as
// the Status: they are bugs or configuration, not per-record facts.
class Writer {
 public:
  // `env` sleeps between retries; `attempts` is how often a retriable record is sent in all.
  Writer(Client& client, Env& env, int attempts = 4,
         std::chrono::milliseconds first_backoff = std::chrono::milliseconds(200));

  // sObject Collections upsert: PATCH composite/sobjects/{object}/{external_id_field}, at most
  // 200 records a call, allOrNone false. Each record holds its fields by API name, the
  // external id field included (its value is the record's key in messages). Retriable records
  // are sent again, with backoff, up to `attempts` in all; the rest is returned as it is.
  Result<std::vector<RecordResult>> Upsert(const std::string& object,
                                           const std::string& external_id_field,
                                           const std::vector<nlohmann::json>& records);

  // sObject Collections update by Id: PATCH composite/sobjects, 200 records a call, allOrNone
  // false, retried like Upsert (setting values twice changes nothing). Each record holds "Id"
  // and the fields to set: for records the org's users created, which have no external id.
  // A record deleted meanwhile is refused with ENTITY_IS_DELETED.
  Result<std::vector<RecordResult>> Update(const std::string& object,
                                           const std::vector<nlohmann::json>& records);

  // sObject Collections delete: DELETE composite/sobjects?ids=...&allOrNone=false, 200 ids a
  // call, retried like Upsert. A record already deleted counts as deleted.
  Result<std::vector<RecordResult>> Delete(const std::string& object,
                                           const std::vector<std::string>& ids);

  // One parent and its children in one Composite call, allOrNone (one Salesforce transaction:
  // P7): the parent upserted by its external id, then each child upserted by its own with
  // `reference_field` set to "@{parent.id}". At most 24 children (25 subrequests); more is
  // InvalidArgument: the caller writes parents, then children through Upsert. Results: the
  // parent's first, then the children's. A failing record makes the others kRolledBack; the
  // whole call is retried while every record is retriable.
  struct Tree {
    std::string parent_object, parent_external_id_field;
    nlohmann::json parent;
    std::string child_object, child_external_id_field, reference_field;
    std::vector<nlohmann::json> children;
  };
  Result<std::vector<RecordResult>> UpsertTree(const Tree& tree);

  // One Collections request of a mixed write: an upsert by external id, an update by Id or a
  // delete by Id, of one object (records and ids as for Upsert, Update and Delete).
  struct Request {
    enum class Kind { kUpsert, kUpdate, kDelete } kind = Kind::kUpsert;
    std::string object;
    std::string external_id_field;        // kUpsert
    std::vector<nlohmann::json> records;  // kUpsert, kUpdate
    std::vector<std::string> ids;         // kDelete
    size_t size() const { return kind == Kind::kDelete ? ids.size() : records.size(); }
  };
  // Several requests in as few calls as Salesforce allows: a Composite call (allOrNone false,
  // collateSubrequests false: in order) of up to kMaxHeavySubrequests Collections subrequests of
  // 200 records each, so that the writes of several objects cost one call. Results per request
  // and record, as Upsert, Update and Delete give them, retried the same way. A single
  // subrequest goes as a plain Collections call.
  // `queries` (absolute GET paths: Client::QueryPath) ride in the first call, after the writes,
  // when they fit in it; their answers (the first page's body each) go to `answers`, left
  // empty when they did not ride or that call failed.
  Result<std::vector<std::vector<RecordResult>>> Write(
      const std::vector<Request>& requests, const std::vector<std::string>& queries = {},
      std::vector<nlohmann::json>* answers = nullptr);

  // How many calls the last Upsert / Delete / UpsertTree made (retries included).
  int last_calls() const { return last_calls_; }

  static constexpr size_t kMaxCollection = 200;
  static constexpr size_t kMaxSubrequests = 25;
  // Collections and query subrequests one Composite call may hold.
  static constexpr size_t kMaxHeavySubrequests = 5;

 private:
  // Sends `records[which]` in calls of 200 through `send`, retrying what is retriable.
  Result<std::vector<RecordResult>> WithRetries(
      size_t n,
      const std::function<Result<std::vector<RecordResult>>(const std::vector<size_t>& which)>&
          send);

  Client& client_;
  Env& env_;
  int attempts_;
  std::chrono::milliseconds first_backoff_;
  int last_calls_ = 0;
};

// The outcome of one per-record result of Collections ({"id", "success", "errors":
// [{"statusCode", "message", "fields"}], "created"}), or of a Composite subrequest's error body
// ([{"errorCode", "message", "fields"}]). `key` names the record in messages; `deleting` maps
// success to kDeleted and ENTITY_IS_DELETED to kDeleted too.
RecordResult RecordResultOf(const nlohmann::json& result, const std::string& object,
                            const std::string& key, bool deleting);

}  // namespace duplex::sf
