#include "connectors/salesforce/salesforce_connector.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <utility>

#include "connectors/binding.h"

namespace duplex::sf {

namespace {

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
  c.apply_hold =
      std::chrono::milliseconds(static_cast<int64_t>(options_.write_window_seconds * 1000));
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

}  // namespace duplex::sf
