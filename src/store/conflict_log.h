#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/resolver.h"
#include "duplex/result.h"
#include "store/store_db.h"

namespace duplex {

// A logged conflict as listed by `duplex conflicts`.
struct ConflictRow {
  int64_t id = 0;
  std::string collection;
  nlohmann::json key;
  std::string key_text;
  std::string field;
  std::string policy;
  Value base;
  nlohmann::json values;
  std::string winner;
  // "open", "resolved:<policy>" (decided automatically), "merged" (sum, union, merge: both
  // edits kept), "resolved:take:<endpoint>", "resolved:value" (operator); an operator
  // resolution not yet propagated also has `pending` set. A merge field's same-path conflict
  // has its path in `field`: "doc/address/city".
  std::string status;
  Value resolution;  // the chosen value of an operator resolution; the merged value
  bool pending = false;
  double created_at = 0;
  double resolved_at = 0;

  nlohmann::json ToJson() const;
};

// The conflict log (DESIGN §4, Manual conflicts): every conflict the resolver decided or left
// open, and the operators' resolutions until the engine has propagated them.
//   conflicts(id PK AUTOINCREMENT, collection, key, key_text, field, policy, base, vals,
//             winner, status, resolution, pending, created_at, resolved_at)
// Values are JSON text. Every call joins the transaction open on the database, if any.
class ConflictLog {
 public:
  explicit ConflictLog(StoreDb& db) : db_(db) {}

  // Logs `c`; returns its id.
  Result<int64_t> Add(const ConflictRecord& c, double now_ms);
  // Records an endpoint's newer value in the open conflict of the same field, if there is one.
  Status UpdateOpen(const ConflictValueUpdate& u);
  // Conflicts, newest last; `all` false: only open ones (and resolved ones still propagating).
  Result<std::vector<ConflictRow>> List(bool all);
  // NotFound if there is no such conflict.
  Result<ConflictRow> Get(int64_t id);
  Result<int64_t> CountOpen(const std::string& collection);
  // An operator's decision: marks the conflict resolved (pending propagation) with `value`.
  // InvalidArgument if it is not open.
  Status Resolve(int64_t id, const std::string& how, const Value& value, double now_ms);
  // Operator resolutions not yet propagated by the engine.
  Result<std::vector<ConflictRow>> PendingResolutions();
  Status MarkPropagated(int64_t id);

 private:
  StoreDb& db_;
};

}  // namespace duplex
