#include <map>

#include "connectors/binding.h"
#include "connectors/salesforce/salesforce_connector.h"

namespace duplex::sf {

Result<std::map<std::string, std::string>> SalesforceConnector::IdsOf(
    const std::string& object, const std::vector<std::string>& records) {
  std::map<std::string, std::string> out;
  std::vector<std::string> foreign;
  for (const std::string& r : records) {
    std::optional<Value> own = OwnNativeKey(name_, r);
    if (own && own->is_string()) {
      out[r] = own->get<std::string>();
    } else {
      foreign.push_back(r);
    }
  }
  if (foreign.empty()) return out;
  DUPLEX_ASSIGN_OR_RETURN(auto ids, ep_->IdsByExternalId(object, foreign));
  for (auto& [k, id] : ids) out[k] = id;
  return out;
}

Result<ApplyResult> SalesforceConnector::Apply(const std::vector<ApplyBatch>& batches,
                                               bool isolate_txns) {
  (void)isolate_txns;  // every record is written on its own anyway: refusals are per record
  ApplyResult result;
  DUPLEX_RETURN_IF_ERROR(Ensure(""));
  for (const ApplyBatch& batch : batches) {
    const std::vector<RowOp>& ops = batch.ops;
    size_t i = 0;
    while (i < ops.size()) {
      const Bound* b = ByCollection(ops[i].collection);
      if (!b) {
        return Status::InvalidArgument(Where() + ": collection '" + ops[i].collection +
                                       "' is not bound here");
      }
      const CollectionBinding& cb = b->binding;
      const std::string& key_field = cb.key[0];
      // A group: consecutive ops of one collection and one kind of write (upsert, update by
      // Id, delete), at most 200 (one Collections call).
      auto key_of = [&](const RowOp& op) -> std::string {
        const Value& k = op.key.contains(key_field) ? op.key[key_field] : Value();
        return k.is_string() ? k.get<std::string>() : k.dump();
      };
      auto kind_of = [&](const RowOp& op) {
        if (op.op == WriteOp::kDelete) return 'D';
        if (cb.mapped_key && OwnNativeKey(name_, key_of(op))) return 'U';
        return 'P';
      };
      const char kind = kind_of(ops[i]);
      size_t end = i + 1;
      while (end < ops.size() && end - i < Writer::kMaxCollection &&
             ops[end].collection == ops[i].collection && kind_of(ops[end]) == kind) {
        ++end;
      }
      auto refuse = [&](const RowOp& op, const std::string& why) {
        result.failed.push_back(FailedOp{batch.id, op.txn, {op}, why});
      };
      // The Ids behind the records named: the key for updates and deletes, references.
      std::map<std::string, std::vector<std::string>> wanted;  // object -> record ids
      for (size_t j = i; j < end; ++j) {
        if (cb.mapped_key && kind == 'D') wanted[b->object].push_back(key_of(ops[j]));
        for (const auto& [field, coll] : cb.mapped_refs) {
          const Bound* rb = ByCollection(coll);
          if (rb && ops[j].values.contains(field) && ops[j].values[field].is_string()) {
            wanted[rb->object].push_back(ops[j].values[field].get<std::string>());
          }
        }
      }
      std::map<std::string, std::map<std::string, std::string>> ids;
      for (const auto& [object, records] : wanted) {
        DUPLEX_ASSIGN_OR_RETURN(ids[object], IdsOf(object, records));
      }
      std::vector<size_t> sent;  // op index per record sent
      std::vector<nlohmann::json> records;
      std::vector<std::string> delete_ids;
      for (size_t j = i; j < end; ++j) {
        const RowOp& op = ops[j];
        const std::string key = key_of(op);
        if (kind == 'D') {
          std::string id;
          if (cb.mapped_key) {
            auto it = ids[b->object].find(key);
            if (it == ids[b->object].end()) {
              // No such record: deleted already, by a user or by an earlier attempt (P6).
              ++result.applied;
              result.no_effect.push_back(NoEffect{batch.id, op});
              continue;
            }
            id = it->second;
          } else {
            DUPLEX_ASSIGN_OR_RETURN(auto found, ep_->IdsByExternalId(b->object, {key}));
            if (found.empty()) {
              ++result.applied;
              result.no_effect.push_back(NoEffect{batch.id, op});
              continue;
            }
            id = found.begin()->second;
          }
          delete_ids.push_back(id);
          sent.push_back(j);
          continue;
        }
        nlohmann::json rec = nlohmann::json::object();
        if (kind == 'U') {
          rec["Id"] = OwnNativeKey(name_, key)->get<std::string>();
        } else {
          rec[options_.external_id] = key;
        }
        bool refused = false;
        for (const auto& [field, column] : cb.fields) {
          if (field == key_field || !op.values.contains(field)) continue;
          Value v = op.values[field];
          auto ref = cb.mapped_refs.find(field);
          if (ref != cb.mapped_refs.end() && v.is_string()) {
            const Bound* rb = ByCollection(ref->second);
            auto& m = ids[rb ? rb->object : ""];
            auto it = m.find(v.get<std::string>());
            if (it == m.end()) {
              refuse(op, Where() + ", object '" + b->object + "', record '" + key + "', field '" +
                             column + "': refers to " + ref->second + " record '" +
                             v.get<std::string>() + "', which the org does not hold");
              refused = true;
              break;
            }
            v = it->second;
          }
          rec[column] = std::move(v);
        }
        if (refused) continue;
        records.push_back(std::move(rec));
        sent.push_back(j);
      }
      Result<std::vector<RecordResult>> r = std::vector<RecordResult>();
      if (kind == 'D' && !delete_ids.empty()) {
        r = ep_->Delete(b->object, delete_ids);
      } else if (kind == 'U' && !records.empty()) {
        r = ep_->Update(b->object, records);
      } else if (kind == 'P' && !records.empty()) {
        r = ep_->Upsert(b->object, records);
      }
      if (!r.ok()) return r.status();
      for (size_t k = 0; k < r->size() && k < sent.size(); ++k) {
        const RecordResult& rr = (*r)[k];
        const RowOp& op = ops[sent[k]];
        switch (rr.outcome) {
          case WriteOutcome::kCreated:
          case WriteOutcome::kUpdated:
            ++result.applied;
            break;
          case WriteOutcome::kDeleted:
            ++result.applied;
            // Deleted before this call: by a user of the org (or by this delete's first send,
            // whose reply was lost: then its delete shows in capture, and the ledger waits).
            if (rr.code == "ENTITY_IS_DELETED" && !rr.resent) {
              result.no_effect.push_back(NoEffect{batch.id, op});
            }
            break;
          case WriteOutcome::kRefused:
            if (kind == 'U' && rr.code == "ENTITY_IS_DELETED") {
              // The org's user deleted the record meanwhile: its delete is in capture and the
              // resolver decides (delete against update), nothing is lost here.
              ++result.rejected;
              if (!rr.resent) result.no_effect.push_back(NoEffect{batch.id, op});
              break;
            }
            refuse(op, Where() + ": " + rr.message);
            break;
          case WriteOutcome::kQuotaExceeded:
            return Status::Unavailable(Where() + ", object '" + b->object +
                                       "': REQUEST_LIMIT_EXCEEDED: the org's daily API requests "
                                       "are spent; writes resume when they free");
          case WriteOutcome::kRetriable:
          case WriteOutcome::kRolledBack:
            return Status::Unavailable(Where() + ", object '" + b->object + "', record '" +
                                       key_of(op) +
                                       "': " + (rr.message.empty() ? rr.code : rr.message) +
                                       " (retried; the writes are idempotent)");
        }
      }
      i = end;
    }
  }
  return result;
}

}  // namespace duplex::sf
