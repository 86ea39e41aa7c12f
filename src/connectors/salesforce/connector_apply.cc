#include <algorithm>
#include <map>

#include "connectors/binding.h"
#include "connectors/salesforce/salesforce_connector.h"

namespace duplex::sf {

Result<std::map<std::string, std::string>> SalesforceConnector::IdsOf(
    const std::string& object, const std::vector<std::string>& records, bool own_keys) {
  std::map<std::string, std::string> out;
  std::vector<std::string> foreign;
  for (const std::string& r : records) {
    std::optional<Value> own = own_keys ? OwnNativeKey(name_, r) : std::nullopt;
    if (own && own->is_string()) {
      out[r] = own->get<std::string>();
    } else {
      foreign.push_back(r);
    }
  }
  std::vector<std::string> unknown;
  for (const std::string& r : foreign) {
    if (const std::string* id = ids_.IdOf(object, r)) {
      out[r] = *id;
    } else {
      unknown.push_back(r);
    }
  }
  if (unknown.empty()) return out;
  DUPLEX_ASSIGN_OR_RETURN(auto ids, ep_->IdsByExternalId(object, unknown));
  for (auto& [k, id] : ids) {
    ids_.Note(object, id, k);
    out[k] = id;
  }
  return out;
}

Result<ApplyResult> SalesforceConnector::Apply(const std::vector<ApplyBatch>& batches,
                                               bool isolate_txns) {
  (void)isolate_txns;  // every record is written on its own anyway: refusals are per record
  ApplyResult result;
  DUPLEX_RETURN_IF_ERROR(Ensure(""));
  // Groups of writes not sent yet: Collections requests of consecutive ops of one collection
  // and one kind (upsert, update by Id, delete), sent together (Writer::Write: one Composite
  // call for up to five) when every op is planned, or earlier when an op refers to a record
  // a pending group creates (its Id is known only once it is written).
  struct Group {
    const ApplyBatch* batch;
    const Bound* b;
    Writer::Request request;
    std::vector<size_t> sent;  // the op index of each record sent
  };
  std::vector<Group> pending;
  auto refuse = [&](const ApplyBatch& batch, const RowOp& op, const std::string& why) {
    result.failed.push_back(FailedOp{batch.id, op.txn, {op}, why});
  };
  auto key_in = [](const CollectionBinding& cb, const RowOp& op) -> std::string {
    const Value& k = op.key.contains(cb.key[0]) ? op.key[cb.key[0]] : Value();
    return k.is_string() ? k.get<std::string>() : k.dump();
  };
  auto flush = [&]() -> Status {
    if (pending.empty()) return Status::Ok();
    std::vector<Writer::Request> requests;
    for (const Group& g : pending) requests.push_back(g.request);
    Result<std::vector<std::vector<RecordResult>>> r = ep_->Write(requests);
    if (!r.ok()) return r.status();
    for (size_t gi = 0; gi < pending.size(); ++gi) {
      const Group& g = pending[gi];
      const std::vector<RecordResult>& got = (*r)[gi];
      const char kind = g.request.kind == Writer::Request::Kind::kDelete   ? 'D'
                        : g.request.kind == Writer::Request::Kind::kUpdate ? 'U'
                                                                           : 'P';
      for (size_t k = 0; k < got.size() && k < g.sent.size(); ++k) {
        const RecordResult& rr = got[k];
        const RowOp& op = g.batch->ops[g.sent[k]];
        switch (rr.outcome) {
          case WriteOutcome::kCreated:
          case WriteOutcome::kUpdated:
            ++result.applied;
            if (!rr.id.empty()) {
              ids_.Note(g.b->object, NormalizeId(rr.id).value_or(rr.id),
                        kind == 'P' ? key_in(g.b->binding, op) : "");
            }
            break;
          case WriteOutcome::kDeleted:
            ++result.applied;
            // Deleted before this call: by a user of the org (or by this delete's first send,
            // whose reply was lost: then its delete shows in capture, and the ledger waits).
            if (rr.code == "ENTITY_IS_DELETED" && !rr.resent) {
              result.no_effect.push_back(NoEffect{g.batch->id, op});
            }
            break;
          case WriteOutcome::kRefused:
            if (kind == 'U' && rr.code == "ENTITY_IS_DELETED") {
              // The org's user deleted the record meanwhile: its delete is in capture and the
              // resolver decides (delete against update), nothing is lost here.
              ++result.rejected;
              if (!rr.resent) result.no_effect.push_back(NoEffect{g.batch->id, op});
              break;
            }
            refuse(*g.batch, op, Where() + ": " + rr.message);
            break;
          case WriteOutcome::kQuotaExceeded:
            return Status::Unavailable(Where() + ", object '" + g.b->object +
                                       "': REQUEST_LIMIT_EXCEEDED: the org's daily API requests "
                                       "are spent; writes resume when they free");
          case WriteOutcome::kRetriable:
          case WriteOutcome::kRolledBack:
            return Status::Unavailable(Where() + ", object '" + g.b->object + "', record '" +
                                       key_in(g.b->binding, op) +
                                       "': " + (rr.message.empty() ? rr.code : rr.message) +
                                       " (retried; the writes are idempotent)");
        }
      }
    }
    pending.clear();
    return Status::Ok();
  };
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
      auto key_of = [&](const RowOp& op) { return key_in(cb, op); };
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
      // The Ids behind the records named: the key for deletes, references.
      std::map<std::string, std::vector<std::string>> wanted;  // object -> record ids
      for (size_t j = i; j < end; ++j) {
        if (kind == 'D') wanted[b->object].push_back(key_of(ops[j]));
        for (const auto& [field, coll] : cb.mapped_refs) {
          const Bound* rb = ByCollection(coll);
          if (rb && ops[j].values.contains(field) && ops[j].values[field].is_string()) {
            wanted[rb->object].push_back(ops[j].values[field].get<std::string>());
          }
        }
      }
      std::map<std::string, std::map<std::string, std::string>> ids;
      auto look_up = [&]() -> Status {
        ids.clear();
        for (const auto& [object, records] : wanted) {
          // A delete names the record by its key: a record id for a mapped key, else the
          // external id's value itself.
          const bool own_keys = kind != 'D' || object != b->object || cb.mapped_key;
          DUPLEX_ASSIGN_OR_RETURN(ids[object], IdsOf(object, records, own_keys));
        }
        return Status::Ok();
      };
      DUPLEX_RETURN_IF_ERROR(look_up());
      const bool missing = std::any_of(wanted.begin(), wanted.end(), [&](const auto& w) {
        return std::any_of(w.second.begin(), w.second.end(),
                           [&](const std::string& r) { return !ids[w.first].count(r); });
      });
      if (missing && !pending.empty()) {
        // Perhaps a record written by a pending group: write those first, then ask again.
        DUPLEX_RETURN_IF_ERROR(flush());
        DUPLEX_RETURN_IF_ERROR(look_up());
      }
      Group g{&batch, b, {}, {}};
      g.request.object = b->object;
      g.request.kind = kind == 'D'   ? Writer::Request::Kind::kDelete
                       : kind == 'U' ? Writer::Request::Kind::kUpdate
                                     : Writer::Request::Kind::kUpsert;
      g.request.external_id_field = options_.external_id;
      for (size_t j = i; j < end; ++j) {
        const RowOp& op = ops[j];
        const std::string key = key_of(op);
        if (kind == 'D') {
          auto it = ids[b->object].find(key);
          if (it == ids[b->object].end()) {
            // No such record: deleted already, by a user or by an earlier attempt (P6).
            ++result.applied;
            result.no_effect.push_back(NoEffect{batch.id, op});
            continue;
          }
          g.request.ids.push_back(it->second);
          g.sent.push_back(j);
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
              refuse(batch, op,
                     Where() + ", object '" + b->object + "', record '" + key + "', field '" +
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
        g.request.records.push_back(std::move(rec));
        g.sent.push_back(j);
      }
      if (!g.sent.empty()) pending.push_back(std::move(g));
      i = end;
    }
  }
  DUPLEX_RETURN_IF_ERROR(flush());
  return result;
}

}  // namespace duplex::sf
