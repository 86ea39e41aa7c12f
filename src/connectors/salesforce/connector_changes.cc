#include <algorithm>
#include <set>

#include "connectors/binding.h"
#include "connectors/salesforce/connector_util.h"
#include "connectors/salesforce/salesforce_connector.h"

namespace duplex::sf {

Result<std::map<std::string, nlohmann::json>> SalesforceConnector::ReadRows(
    const Bound& b, const std::vector<std::string>& ids) {
  std::map<std::string, nlohmann::json> out;
  std::string fields = "Id, SystemModstamp";
  for (const auto& [field, column] : b.binding.fields) {
    if (!SameName(column, "Id")) fields += ", " + column;
  }
  if (std::none_of(b.binding.fields.begin(), b.binding.fields.end(),
                   [&](const auto& fc) { return SameName(fc.second, options_.external_id); })) {
    fields += ", " + options_.external_id;  // the record's key
  }
  for (size_t start = 0; start < ids.size(); start += Writer::kMaxCollection) {
    std::string list;
    for (size_t i = start; i < std::min(ids.size(), start + Writer::kMaxCollection); ++i) {
      list += (list.empty() ? "" : ", ") + Quoted(ids[i]);
    }
    DUPLEX_RETURN_IF_ERROR(ep_->client().Query(
        "SELECT " + fields + " FROM " + b.object + " WHERE Id IN (" + list + ")", false,
        [&](nlohmann::json& page) {
          for (nlohmann::json& r : page) {
            std::string id = r.value("Id", "");
            if (std::optional<std::string> n = NormalizeId(id)) id = *n;
            out[id] = std::move(r);
          }
          return Status::Ok();
        }));
  }
  return out;
}

Result<std::map<std::string, std::string>> SalesforceConnector::RecordIdsOf(
    const std::string& object, const std::vector<std::string>& ids, bool include_deleted) {
  std::map<std::string, std::string> out;
  std::vector<std::string> unknown;
  for (const std::string& raw : ids) {
    const std::string id = NormalizeId(raw).value_or(raw);
    if (const std::string* e = ids_.ExtOf(object, id)) {
      out[id] = e->empty() ? RecordId(name_, Value(id)) : *e;
    } else {
      unknown.push_back(id);
    }
  }
  if (unknown.empty()) return out;
  DUPLEX_ASSIGN_OR_RETURN(auto ext, ep_->ExternalIdsById(object, unknown, include_deleted));
  for (const auto& [id, e] : ext) {
    ids_.Note(object, id, e);
    out[id] = e.empty() ? RecordId(name_, Value(id)) : e;
  }
  return out;
}

Result<std::vector<Change>> SalesforceConnector::ToChanges(std::vector<SfChange> got,
                                                           bool snapshot) {
  // Per object: the rows to read whole (an event carries only its changed fields) and the
  // deletes whose key (the external id) is not at hand.
  std::map<std::string, std::vector<std::string>> reread, unkeyed;
  for (SfChange& c : got) {
    const Bound* b = ByObject(c.object);
    if (!b) continue;
    if (std::optional<std::string> n = NormalizeId(c.id)) c.id = *n;
    const bool whole = c.changed_fields.empty() && c.values.is_object() && !c.values.empty();
    if (c.deleted) {
      if (!FieldOf(c.values, options_.external_id)) unkeyed[b->object].push_back(c.id);
    } else if (!whole || !FieldOf(c.values, options_.external_id)) {
      reread[b->object].push_back(c.id);
    }
  }
  std::map<std::string, std::map<std::string, nlohmann::json>> rows;
  for (const auto& [object, ids] : reread) {
    DUPLEX_ASSIGN_OR_RETURN(rows[object], ReadRows(*ByObject(object), ids));
  }
  // What the rows say of their records' ids, for the look-ups below and later ones.
  for (const SfChange& c : got) {
    const Bound* b = ByObject(c.object);
    if (!b) continue;
    if (c.deleted) {
      ids_.Forget(b->object, c.id);
      continue;
    }
    auto o = rows.find(b->object);
    const nlohmann::json* row = &c.values;
    if (o != rows.end()) {
      auto r = o->second.find(c.id);
      if (r != o->second.end()) row = &r->second;
    }
    const nlohmann::json* ext = FieldOf(*row, options_.external_id);
    if (ext && (ext->is_string() || ext->is_null())) {
      ids_.Note(b->object, c.id, ext->is_string() ? ext->get<std::string>() : std::string());
    }
  }
  std::map<std::string, std::map<std::string, std::string>> deleted_keys;
  for (const auto& [object, ids] : unkeyed) {
    DUPLEX_ASSIGN_OR_RETURN(deleted_keys[object], RecordIdsOf(object, ids, true));
  }
  // References (mapped_refs): the Ids they hold, by referenced object.
  std::map<std::string, std::set<std::string>> ref_ids;
  auto row_of = [&](const SfChange& c, const Bound& b) -> const nlohmann::json* {
    auto o = rows.find(b.object);
    if (o != rows.end()) {
      auto r = o->second.find(c.id);
      if (r != o->second.end()) return &r->second;
      if (reread.count(b.object) && std::find(reread[b.object].begin(), reread[b.object].end(),
                                              c.id) != reread[b.object].end()) {
        return nullptr;  // deleted since: its delete comes
      }
    }
    return &c.values;
  };
  for (const SfChange& c : got) {
    const Bound* b = ByObject(c.object);
    if (!b || c.deleted) continue;
    const nlohmann::json* row = row_of(c, *b);
    if (!row) continue;
    for (const auto& [field, coll] : b->binding.mapped_refs) {
      const Bound* ref = ByCollection(coll);
      for (const auto& [f, column] : b->binding.fields) {
        if (f != field || !ref) continue;
        const nlohmann::json* v = FieldOf(*row, column);
        if (v && v->is_string()) ref_ids[ref->object].insert(v->get<std::string>());
      }
    }
  }
  std::map<std::string, std::map<std::string, std::string>> ref_records;
  for (const auto& [object, ids] : ref_ids) {
    DUPLEX_ASSIGN_OR_RETURN(ref_records[object],
                            RecordIdsOf(object, std::vector<std::string>(ids.begin(), ids.end()),
                                        /*include_deleted=*/true));
  }

  std::vector<Change> out;
  std::map<std::string, TxnId> txn_of_key;
  size_t made_up = 0;
  for (const SfChange& c : got) {
    const Bound* b = ByObject(c.object);
    if (!b) continue;
    const CollectionBinding& cb = b->binding;
    const std::string& key_field = cb.key[0];
    Change ch;
    ch.collection = cb.collection;
    ch.commit_ms = c.stamp * 1000;
    ch.snapshot = snapshot;
    // One Salesforce transaction (an event's transactionKey) is one unit; each polled row its
    // own (polls cannot tell transactions apart, and a batch-wide unit would tie unrelated
    // records together).
    if (!c.transaction_key.empty()) {
      auto [it, added] = txn_of_key.emplace(c.transaction_key, MadeUpTxn(made_up));
      if (added) ++made_up;
      ch.txn = it->second;
    } else {
      ch.txn = MadeUpTxn(made_up++);
    }
    auto key_value = [&](const nlohmann::json* row) -> std::optional<Value> {
      const nlohmann::json* ext = row ? FieldOf(*row, options_.external_id) : nullptr;
      if (cb.mapped_key) {
        if (ext && ext->is_string() && !ext->get<std::string>().empty()) return *ext;
        return Value(RecordId(name_, Value(c.id)));
      }
      if (ext && !ext->is_null()) return *ext;
      return std::nullopt;  // not one of duplex's records and no key to name it by
    };
    if (c.deleted) {
      if (snapshot) continue;
      std::optional<Value> key;
      if (FieldOf(c.values, options_.external_id)) {
        key = key_value(&c.values);
      } else {
        auto it = deleted_keys[b->object].find(c.id);
        if (it != deleted_keys[b->object].end()) {
          if (cb.mapped_key) {
            key = Value(it->second);
          } else if (OwnNativeKey(name_, it->second) == std::nullopt) {
            key = Value(it->second);
          }
        } else if (cb.mapped_key) {
          key = Value(RecordId(name_, Value(c.id)));  // purged from the recycle bin
        }
      }
      if (!key) continue;
      ch.op = Op::kDelete;
      ch.key = Row{{key_field, *key}};
      ch.after = nullptr;
      out.push_back(std::move(ch));
      continue;
    }
    const nlohmann::json* row = row_of(c, *b);
    if (!row) continue;
    std::optional<Value> key = key_value(row);
    if (!key) continue;
    ch.op = snapshot ? Op::kInsert : Op::kUpdate;
    ch.key = Row{{key_field, *key}};
    ch.after = Row::object();
    for (const auto& [field, column] : cb.fields) {
      if (field == key_field) {
        ch.after[field] = *key;
        continue;
      }
      const nlohmann::json* v = FieldOf(*row, column);
      Value value = v ? *v : Value(nullptr);
      auto ref = cb.mapped_refs.find(field);
      if (ref != cb.mapped_refs.end() && value.is_string()) {
        const Bound* rb = ByCollection(ref->second);
        std::string id = value.get<std::string>();
        if (std::optional<std::string> n = NormalizeId(id)) id = *n;
        auto& m = ref_records[rb ? rb->object : ""];
        auto it = m.find(id);
        value = it != m.end() ? Value(it->second) : Value(RecordId(name_, Value(id)));
      }
      ch.after[field] = std::move(value);
    }
    if (row != &c.values) {
      const nlohmann::json* stamp = FieldOf(*row, "SystemModstamp");
      if (stamp && stamp->is_string()) {
        if (std::optional<double> t = ParseDateTime(stamp->get<std::string>())) {
          ch.commit_ms = *t * 1000;
        }
      }
    }
    out.push_back(std::move(ch));
  }
  return out;
}

}  // namespace duplex::sf
