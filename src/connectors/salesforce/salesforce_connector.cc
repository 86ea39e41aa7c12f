#include "connectors/salesforce/salesforce_connector.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <utility>

#include "connectors/binding.h"

namespace duplex::sf {

namespace {

// The value of `column` in a row keyed by API names (the API matches names case-insensitively).
const nlohmann::json* FieldOf(const nlohmann::json& row, const std::string& column) {
  if (!row.is_object()) return nullptr;
  auto it = row.find(column);
  if (it != row.end()) return &*it;
  for (auto i = row.begin(); i != row.end(); ++i) {
    if (SameName(i.key(), column)) return &*i;
  }
  return nullptr;
}

std::string Quoted(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  return out + "'";
}

// A describe type as a SQL reader sorts it (the engine compares type names across endpoints),
// with the org's own name after it: "TEXT (picklist)".
std::string SqlTypeOf(const FieldInfo& f) {
  std::optional<SfColumnKind> kind = f.kind();
  std::string sql = "TEXT";
  if (kind) {
    switch (*kind) {
      case SfColumnKind::kInteger:
        sql = "INTEGER";
        break;
      case SfColumnKind::kReal:
        sql = "REAL";
        break;
      case SfColumnKind::kDecimal:
        sql = "NUMERIC";
        break;
      case SfColumnKind::kBoolean:
        sql = "BOOLEAN";
        break;
      case SfColumnKind::kTime:
        sql = "DATETIME";
        break;
      case SfColumnKind::kBinary:
        sql = "BLOB";
        break;
      case SfColumnKind::kText:
        break;
    }
  }
  return sql + " (" + f.type + ")";
}

// The contract's kind of a describe type (the same names: SfColumnKind was made to match).
ColumnKind KindOf(SfColumnKind k) {
  switch (k) {
    case SfColumnKind::kInteger:
      return ColumnKind::kInteger;
    case SfColumnKind::kReal:
      return ColumnKind::kReal;
    case SfColumnKind::kDecimal:
      return ColumnKind::kDecimal;
    case SfColumnKind::kText:
      return ColumnKind::kText;
    case SfColumnKind::kBinary:
      return ColumnKind::kBinary;
    case SfColumnKind::kBoolean:
      return ColumnKind::kBoolean;
    case SfColumnKind::kTime:
      return ColumnKind::kTime;
  }
  return ColumnKind::kAny;
}

}  // namespace

SalesforceConnector::SalesforceConnector(std::string name, SfEndpoint::Options options, Env& env)
    : name_(std::move(name)), options_(std::move(options)), env_(env) {}

SalesforceConnector::~SalesforceConnector() = default;

Capabilities SalesforceConnector::capabilities() const {
  Capabilities c;
  c.transactional_apply = false;
  c.markers = false;
  c.atomic_applied_id = false;
  c.before_images = false;
  c.compare_and_set = false;
  c.max_apply_rows = Writer::kMaxCollection;
  c.min_poll_interval =
      std::chrono::milliseconds(static_cast<int64_t>(options_.pacing.min_poll_seconds * 1000));
  // The budget as a number of calls a day. A share of the org's limit is known only once the
  // org has answered, and capabilities are constant: then 0 here, and the pacer keeps it.
  c.quota_calls = options_.pacing.budget.absolute;
  c.quota_period = c.quota_calls > 0 ? std::chrono::hours(24) : std::chrono::seconds(0);
  return c;
}

Position SalesforceConnector::MakePosition(uint64_t counter, const std::string& state) {
  std::string bytes(8, '\0');
  for (int i = 7; i >= 0; --i, counter >>= 8) bytes[i] = static_cast<char>(counter & 0xff);
  return Position::FromBytes(bytes + state);
}

uint64_t SalesforceConnector::CounterOf(const Position& p) {
  uint64_t n = 0;
  const std::string& b = p.bytes();
  for (size_t i = 0; i < 8 && i < b.size(); ++i) n = (n << 8) | static_cast<unsigned char>(b[i]);
  return n;
}

std::string SalesforceConnector::StateOf(const Position& p) {
  return p.bytes().size() > 8 ? p.bytes().substr(8) : std::string();
}

std::string SalesforceConnector::DescribePosition(const Position& p) const {
  if (p.IsStart()) return "start";
  std::string out = "#" + std::to_string(CounterOf(p));
  nlohmann::json j = nlohmann::json::parse(StateOf(p), nullptr, false);
  if (j.is_object()) {
    if (j.contains("replay") && j["replay"].is_number_integer() && j["replay"].get<int64_t>() >= 0)
      out += " replay " + std::to_string(j["replay"].get<int64_t>());
    if (j.contains("objects") && j["objects"].is_object()) {
      for (const auto& [object, o] : j["objects"].items()) {
        if (o.contains("poll") && o["poll"].contains("stamp")) {
          out += " " + object + "@" + o["poll"]["stamp"].dump();
        }
      }
    }
  }
  return out;
}

std::string SalesforceConnector::Where() const {
  return "endpoint '" + name_ + "' (" + options_.client.instance_url + ")";
}

Status SalesforceConnector::Login() {
  if (meta_) return Status::Ok();
  auto client = std::make_unique<Client>(options_.client);
  DUPLEX_RETURN_IF_ERROR(client->Login());
  meta_ = std::move(client);
  return Status::Ok();
}

Status SalesforceConnector::Open() { return Login(); }

Result<TableInfo> SalesforceConnector::Describe(const std::string& table) {
  DUPLEX_RETURN_IF_ERROR(Login());
  TableInfo t;
  t.name = table;
  Result<ObjectInfo> info = sf::Describe(*meta_, table);
  if (!info.ok()) {
    if (info.status().IsNotFound()) return t;
    return info.status();
  }
  t.exists = true;
  t.name = info->name;
  for (const FieldInfo& f : info->fields) {
    if (!f.kind()) continue;  // compound fields: their components are listed too
    ColumnInfo c;
    c.name = f.name;
    // Ids and references travel as record ids (key_mode = "mapped"), whatever the other
    // endpoint's native key type is (an INTEGER rowid): no type name, which goes with any.
    c.type = f.type == "id" || f.type == "reference" ? "" : SqlTypeOf(f);
    c.kind = f.type == "id" || f.type == "reference" ? ColumnKind::kAny : KindOf(*f.kind());
    c.not_null = !f.nillable && f.type != "boolean";
    c.has_default = f.nillable || f.type == "boolean";
    if (SameName(f.name, "Id")) {
      c.pk = 1;
      c.generated = true;
    }
    t.columns.push_back(std::move(c));
    // A lookup to one object: a foreign key the org checks per write (never deferred).
    if (f.type == "reference" && f.reference_to.size() == 1) {
      t.foreign_keys.push_back(ForeignKeyInfo{{f.name}, f.reference_to[0], {"Id"}, false});
    }
  }
  described_[info->name] = std::move(*info);
  return t;
}

const SalesforceConnector::Bound* SalesforceConnector::ByCollection(
    const std::string& collection) const {
  for (const Bound& b : bound_) {
    if (b.binding.collection == collection) return &b;
  }
  return nullptr;
}

const SalesforceConnector::Bound* SalesforceConnector::ByObject(const std::string& object) const {
  for (const Bound& b : bound_) {
    if (SameName(b.object, object)) return &b;
  }
  return nullptr;
}

Status SalesforceConnector::Bind(std::vector<CollectionBinding> bindings) {
  DUPLEX_RETURN_IF_ERROR(ValidateBindings("endpoint '" + name_ + "'", bindings));
  std::vector<Bound> bound;
  for (CollectionBinding& cb : bindings) {
    Bound b;
    b.object = cb.table;
    for (const auto& [name, info] : described_) {
      if (SameName(name, cb.table)) b.object = name;
    }
    if (cb.key.size() != 1) {
      return Status::InvalidArgument(
          Where() + ", object '" + cb.table +
          "': a Salesforce record has one key: key_mode = \"mapped\" on Id, or one key field "
          "mapped to the external id field '" +
          options_.external_id + "'");
    }
    for (const auto& [field, column] : cb.fields) {
      if (field == cb.key[0]) b.key_column = column;
    }
    if (cb.mapped_key && !SameName(b.key_column, "Id")) {
      return Status::InvalidArgument(Where() + ", object '" + cb.table + "': key field '" +
                                     cb.key[0] + "' is mapped to '" + b.key_column +
                                     "': with key_mode = \"mapped\" it must be the record's Id");
    }
    if (!cb.mapped_key && !SameName(b.key_column, options_.external_id)) {
      return Status::InvalidArgument(
          Where() + ", object '" + cb.table + "': key field '" + cb.key[0] + "' is mapped to '" +
          b.key_column +
          "': write key_mode = \"mapped\" (the org makes its own Ids) or map it to " +
          "the external id field '" + options_.external_id + "'");
    }
    b.binding = std::move(cb);
    bound.push_back(std::move(b));
  }
  bound_ = std::move(bound);
  return Status::Ok();
}

Result<std::vector<std::string>> SalesforceConnector::Preflight() {
  DUPLEX_RETURN_IF_ERROR(Login());
  std::vector<std::string> out;
  for (const Bound& b : bound_) {
    auto it = described_.find(b.object);
    if (it == described_.end()) {
      Result<ObjectInfo> info = sf::Describe(*meta_, b.object);
      if (!info.ok()) {
        if (!info.status().IsNotFound()) return info.status();
        out.push_back("object '" + b.object +
                      "' is not in the org or the integration user cannot see it: create it, or "
                      "grant the user's profile or permission set read and edit access to it");
        continue;
      }
      it = described_.emplace(b.object, std::move(*info)).first;
    }
    std::vector<std::string> fields;
    for (const auto& [field, column] : b.binding.fields) {
      if (!SameName(column, "Id")) fields.push_back(column);
    }
    for (std::string& p : CheckObject(it->second, options_.external_id, fields)) {
      out.push_back(std::move(p));
    }
  }
  return out;
}

Result<std::vector<std::string>> SalesforceConnector::Warnings() {
  std::vector<std::string> out;
  if (!ep_) return out;
  const QuotaPacer& pacer = ep_->pacer();
  const double now = std::chrono::duration<double>(env_.Now().time_since_epoch()).count();
  const ApiUsage& u = pacer.org_usage();
  const std::string usage = "org api-usage " + std::to_string(u.used) + "/" +
                            std::to_string(u.max) + ", duplex's calls in 24 h " +
                            std::to_string(pacer.OwnCalls(now)) + ", api_budget " +
                            options_.pacing.budget.ToString();
  if (pacer.quota_exhausted() || pacer.Paused(now)) {
    out.push_back(Where() +
                  ": capture and writes paused: the org refused a call with "
                  "REQUEST_LIMIT_EXCEEDED; they resume when its daily API requests free (" +
                  usage + ")");
  } else if (pacer.WritesPaused(now)) {
    out.push_back(Where() +
                  ": writes paused: the API budget is spent down to capture's reserve; raise "
                  "api_budget or wait for the rolling day to free calls (" +
                  usage + ")");
  } else {
    const int64_t left = pacer.CallsLeft(now);
    const int64_t budget = options_.pacing.budget.Of(u.max);
    if (left >= 0 && budget > 0 && left < budget / 10) {
      out.push_back(Where() + ": the API budget runs short: " + std::to_string(left) +
                    " calls left; polls slow down to fit (" + usage + ")");
    }
  }
  return out;
}

Status SalesforceConnector::Ensure(const std::string& state) {
  if (ep_) return Status::Ok();
  SfEndpoint::Options o = options_;
  o.objects.clear();
  for (const Bound& b : bound_) {
    SfEndpoint::ObjectSpec spec;
    spec.object = b.object;
    for (const auto& [field, column] : b.binding.fields) {
      if (!SameName(column, "Id")) spec.fields.push_back(column);
    }
    o.objects.push_back(std::move(spec));
  }
  auto ep = std::make_unique<SfEndpoint>(std::move(o), env_);
  DUPLEX_RETURN_IF_ERROR(ep->Open(state));
  ep_ = std::move(ep);
  return Status::Ok();
}

Result<bool> SalesforceConnector::Poll() {
  if (!pending_.empty() || !ep_) return true;
  return ep_->HasNews();
}

Result<int64_t> SalesforceConnector::Backlog(const Position& from) {
  if (!pending_.empty() && from == pending_from_) return static_cast<int64_t>(pending_.size());
  return int64_t{-1};
}

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
  if (ids.empty()) return out;
  DUPLEX_ASSIGN_OR_RETURN(auto ext, ep_->ExternalIdsById(object, ids, include_deleted));
  for (const auto& [id, e] : ext) {
    out[id] = e.empty() ? RecordId(name_, Value(id)) : e;
  }
  return out;
}

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

Result<ChangeBatch> SalesforceConnector::Capture(const Position& from, size_t max_changes) {
  if (max_changes == 0) max_changes = 1;
  if (pending_.empty() || from != pending_from_) {
    pending_.clear();
    const std::string before = StateOf(from);
    DUPLEX_RETURN_IF_ERROR(Ensure(before));
    std::string state = before;
    DUPLEX_ASSIGN_OR_RETURN(std::vector<SfChange> got, ep_->Capture(state));
    // The first capture from the start is the initial load: every live record as a snapshot
    // insert (deleted ones are left out).
    DUPLEX_ASSIGN_OR_RETURN(std::vector<Change> changes,
                            ToChanges(std::move(got), /*snapshot=*/before.empty()));
    uint64_t counter = CounterOf(from);
    if (changes.empty()) {
      ChangeBatch none;
      // A poll moved the cursors: a new position, so that a restart does not read it again.
      none.end = state == before ? from : MakePosition(counter + 1, state);
      pending_from_ = none.end;
      return none;
    }
    // A change's position is its counter alone: the state (cursors, the rows delivered lately)
    // can be large, and a copy in every change made a capture cost the square of its size. A
    // batch ends at a whole position: the counter of its last change, then the state to resume
    // from (the state before this capture if more of it is pending, read again with dedup
    // after a restart; the state after it once all is delivered). The counter alone sorts
    // before that, and before every later counter.
    for (size_t i = 0; i < changes.size(); ++i) {
      changes[i].position = MakePosition(++counter, "");
      pending_.push_back(std::move(changes[i]));
    }
    pending_before_ = before.empty() ? "{}" : before;
    pending_after_ = state;
  }
  ChangeBatch batch;
  while (!pending_.empty() && batch.changes.size() < max_changes) {
    batch.changes.push_back(std::move(pending_.front()));
    pending_.pop_front();
  }
  // A unit (one Salesforce transaction) is not cut.
  while (!pending_.empty() && pending_.front().txn == batch.changes.back().txn) {
    batch.changes.push_back(std::move(pending_.front()));
    pending_.pop_front();
  }
  batch.end = MakePosition(CounterOf(batch.changes.back().position),
                           pending_.empty() ? pending_after_ : pending_before_);
  pending_from_ = batch.end;
  return batch;
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
