#include "pipeline/engine.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>
#include <span>

#include "connectors/registry.h"
#include "core/planner.h"
#include "util/json_value.h"
#include "util/log.h"

namespace duplex {

namespace {

// What can clash between column types, whatever the system: numbers against text. SQLite's
// affinity rules, plus PostgreSQL's names: numeric travels as exact text (README "PostgreSQL
// types") and goes with either; dates, times and binary go with anything; arrays, json and
// uuid are text.
std::string AffinityClass(std::string type) {
  std::transform(type.begin(), type.end(), type.begin(), ::toupper);
  auto has = [&](const char* s) { return type.find(s) != std::string::npos; };
  if (has("[]") || has("JSON") || has("UUID") || has("INTERVAL") || has("XML")) return "text";
  if (type.empty() || has("BLOB") || has("BYTEA") || has("TIME") || has("DATE") || has("NUMERIC") ||
      has("DECIMAL")) {
    return "any";
  }
  if (has("INT")) return "numeric";
  if (has("CHAR") || has("CLOB") || has("TEXT")) return "text";
  return "numeric";  // REAL, FLOAT, DOUBLE, BOOLEAN...
}

// The dead letter (`parked`: record -> dead letter id) that one of `ops` depends on: it writes
// a record of it, or refers to one; 0 if none.
int64_t ParkedDependency(const Planner& planner, const std::map<std::string, int64_t>& parked,
                         std::span<const RowOp> ops) {
  if (parked.empty()) return 0;
  for (const RowOp& op : ops) {
    std::vector<std::string> records = planner.ParentsOf(op, /*after=*/true);
    records.insert(records.begin(), Planner::RecordOf(op));
    for (const std::string& r : records) {
      auto it = parked.find(r);
      if (it != parked.end()) return it->second;
    }
  }
  return 0;
}

std::string Where(const Config& config, int line) {
  return config.path + (line > 0 ? ":" + std::to_string(line) : std::string());
}

}  // namespace

Engine::Engine(const Config& config, std::unique_ptr<StateStore> store, Env* env)
    : config_(config),
      store_(std::move(store)),
      env_(env ? env : Env::Default()),
      alerts_(static_cast<double>(config.engine.latency_objective_ms) / 1000,
              static_cast<double>(config.engine.alert_after_ms) / 1000) {
  telemetry_.latency_objective_seconds =
      static_cast<double>(config.engine.latency_objective_ms) / 1000;
}

Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::Open(const Config& config, bool create_state) {
  std::map<std::string, std::unique_ptr<Connector>> connectors;
  for (const EndpointConfig& ec : config.endpoints) {
    DUPLEX_ASSIGN_OR_RETURN(connectors[ec.name], MakeConnector(ec, config.engine.name));
  }
  return OpenWith(config, std::move(connectors), create_state, Env::Default());
}

Result<std::unique_ptr<Engine>> Engine::OpenWith(
    const Config& config, std::map<std::string, std::unique_ptr<Connector>> connectors,
    bool create_state, Env* env) {
  // Commands that only look (check, status) must not create the state file.
  std::string state_path = config.engine.state_path;
  if (!create_state && !std::filesystem::exists(state_path)) state_path = ":memory:";
  DUPLEX_ASSIGN_OR_RETURN(std::unique_ptr<StateStore> store,
                          StateStore::Open(state_path, /*create=*/true));
  std::unique_ptr<Engine> engine(new Engine(config, std::move(store), env));
  for (const EndpointConfig& ec : engine->config_.endpoints) {
    auto it = connectors.find(ec.name);
    if (it == connectors.end() || !it->second) {
      return Status::InvalidArgument("no connector for endpoint '" + ec.name + "'");
    }
    std::unique_ptr<Connector> conn = std::move(it->second);
    DUPLEX_RETURN_IF_ERROR(conn->Open());
    Endpoint ep;
    ep.name = ec.name;
    ep.connector = std::move(conn);
    DUPLEX_ASSIGN_OR_RETURN(EndpointProgress p, engine->store_->Progress(ec.name));
    ep.capture = p.capture;
    ep.acked = p.acked;
    ep.guard_pos = p.guard_pos;
    ep.guard_ms = p.guard_ms;
    ep.rescan = p.rescan;
    ep.watermark = p.watermark;
    ep.resolved = p.resolved;
    ep.last_error = p.last_error;
    ep.index = engine->endpoints_.size();
    ep.caught_up_at = engine->env_->Now();
    EndpointTelemetry t;
    t.name = ec.name;
    engine->telemetry_.endpoints.push_back(std::move(t));
    engine->endpoints_.push_back(std::move(ep));
  }
  DUPLEX_RETURN_IF_ERROR(engine->CheckSchema());
  // Every (endpoint, collection) pair has its counters from the start, at 0.
  for (const CollectionModel& m : engine->models_) {
    for (const std::string& ep : m.endpoints) {
      engine->telemetry_.captured[{ep, m.config->name}] = 0;
      engine->telemetry_.applied[{ep, m.config->name}] = 0;
    }
  }
  return engine;
}

const CollectionModel* Engine::FindModel(const std::string& collection) const {
  for (const CollectionModel& m : models_) {
    if (m.config->name == collection) return &m;
  }
  return nullptr;
}

Engine::Endpoint* Engine::Find(const std::string& name) {
  for (Endpoint& ep : endpoints_) {
    if (ep.name == name) return &ep;
  }
  return nullptr;
}

Status Engine::CheckSchema() {
  std::map<std::string, std::vector<CollectionBinding>> bindings;
  // Foreign keys as the endpoints declare them, in canonical field names of the child.
  struct DeclaredKey {
    std::string endpoint, child;
    std::vector<std::string> fields;
    ForeignKeyInfo fk;
  };
  std::vector<DeclaredKey> declared;
  for (const CollectionConfig& cc : config_.collections) {
    const std::string where = Where(config_, cc.line) + ": collection '" + cc.name + "'";
    // canonical field -> (endpoint -> column) and affinity per endpoint
    std::map<std::string, std::map<std::string, std::string>> columns;
    std::map<std::string, std::map<std::string, std::string>> types;
    std::map<std::string, std::vector<std::string>> all_columns;
    for (const CollectionEndpoint& ce : cc.endpoints) {
      Endpoint* ep = Find(ce.endpoint);
      const std::string at = where + ", endpoint '" + ce.endpoint + "', table '" + ce.table + "'";
      DUPLEX_ASSIGN_OR_RETURN(TableInfo info, ep->connector->Describe(ce.table));
      if (!info.exists) {
        return Status::InvalidArgument(at + ": no such table; create it or fix `table`");
      }
      std::map<std::string, std::string> column_to_field;
      for (const auto& [field, column] : ce.fields) column_to_field[column] = field;
      std::set<std::string> have;
      for (const ColumnInfo& col : info.columns) have.insert(col.name);
      for (const auto& [field, column] : ce.fields) {
        if (!have.count(column)) {
          return Status::InvalidArgument(at + ": `fields` maps '" + field + "' to column '" +
                                         column + "', which the table does not have");
        }
      }
      std::set<std::string> pk;
      auto field_of = [&](const std::string& column) {
        auto it = column_to_field.find(column);
        return it == column_to_field.end() ? column : it->second;
      };
      for (const ColumnInfo& col : info.columns) {
        const std::string field = field_of(col.name);
        columns[field][ce.endpoint] = col.name;
        types[field][ce.endpoint] = col.type;
        all_columns[ce.endpoint].push_back(col.name);
        if (col.pk > 0) pk.insert(field);
        if (cc.mapped_key && col.pk > 0 && !col.generated) {
          return Status::InvalidArgument(
              at +
              ": key_mode = \"mapped\" needs a key the endpoint generates (SQLite "
              "INTEGER PRIMARY KEY, a PostgreSQL identity or serial column), and column '" +
              col.name + "' is not; use key_mode = \"shared\" or change the column");
        }
      }
      for (const ForeignKeyInfo& fk : info.foreign_keys) {
        DeclaredKey d{ce.endpoint, cc.name, {}, fk};
        for (const std::string& c : fk.columns) d.fields.push_back(field_of(c));
        declared.push_back(std::move(d));
      }
      for (const std::string& k : cc.key) {
        if (!columns.count(k) || !columns[k].count(ce.endpoint)) {
          return Status::InvalidArgument(at + ": key field '" + k +
                                         "' has no column; add it or map it with `fields`");
        }
      }
      if (pk != std::set<std::string>(cc.key.begin(), cc.key.end())) {
        return Status::InvalidArgument(
            at + ": the key [" + fmt::format("{}", fmt::join(cc.key, ", ")) +
            "] must be the table's PRIMARY KEY (it is [" + fmt::format("{}", fmt::join(pk, ", ")) +
            "]); change `key` or the table");
      }
    }
    CollectionModel model;
    model.config = &cc;
    SchemaReport::Collection report;
    report.config = &cc;
    report.name = cc.name;
    report.key = cc.key;
    std::set<std::string> key(cc.key.begin(), cc.key.end());
    for (const auto& [field, per_endpoint] : columns) {
      if (per_endpoint.size() != cc.endpoints.size()) continue;  // not on every endpoint
      std::string first_class, first_endpoint;
      for (const auto& [endpoint, type] : types[field]) {
        std::string cls = AffinityClass(type);
        if (cls == "any") continue;
        if (first_class.empty()) {
          first_class = cls;
          first_endpoint = endpoint;
        } else if (cls != first_class) {
          return Status::InvalidArgument(
              where + ": type clash on field '" + field + "': " + first_endpoint + " has '" +
              types[field][first_endpoint] + "', " + endpoint + " has '" + type +
              "'; make the column types compatible or map another column with `fields`");
        }
      }
      if (!key.count(field)) model.fields.push_back(field);
    }
    for (const auto& [field, rule] : cc.field_policies) {
      if (std::find(model.fields.begin(), model.fields.end(), field) == model.fields.end()) {
        return Status::InvalidArgument(where + ": `fields." + field +
                                       "` sets a policy, but no column '" + field +
                                       "' is synced (it must exist on every endpoint, under its "
                                       "mapped name)");
      }
    }
    report.synced = model.fields;
    for (const CollectionEndpoint& ce : cc.endpoints) {
      model.endpoints.push_back(ce.endpoint);
      CollectionBinding b;
      b.collection = cc.name;
      b.table = ce.table;
      b.key = cc.key;
      for (const std::string& k : cc.key) b.fields.emplace_back(k, ce.Column(k));
      for (const std::string& f : model.fields) b.fields.emplace_back(f, ce.Column(f));
      std::set<std::string> synced_cols;
      for (const auto& [f, c] : b.fields) synced_cols.insert(c);
      for (const std::string& c : all_columns[ce.endpoint]) {
        if (!synced_cols.count(c)) report.left_alone[ce.endpoint].push_back(c);
      }
      bindings[ce.endpoint].push_back(std::move(b));
    }
    models_.push_back(std::move(model));
    schema_.collections.push_back(std::move(report));
  }
  // The references between collections: declared foreign keys onto a synced table's key, and
  // the config's `references`. A foreign key onto a table duplex does not sync, or onto
  // columns other than the key, orders nothing.
  std::vector<Reference> refs;
  auto add = [&](Reference r, const std::string& immediate_on) {
    for (Reference& have : refs) {
      if (have.child == r.child && have.parent == r.parent && have.fields == r.fields) {
        if (!immediate_on.empty()) have.immediate_on.insert(immediate_on);
        return;
      }
    }
    if (!immediate_on.empty()) r.immediate_on.insert(immediate_on);
    refs.push_back(std::move(r));
  };
  for (const DeclaredKey& d : declared) {
    const CollectionConfig* parent = nullptr;
    const CollectionEndpoint* parent_at = nullptr;
    for (const CollectionConfig& cc : config_.collections) {
      for (const CollectionEndpoint& ce : cc.endpoints) {
        if (ce.endpoint == d.endpoint && ce.table == d.fk.ref_table) {
          parent = &cc;
          parent_at = &ce;
        }
      }
    }
    const CollectionModel* child = FindModel(d.child);
    if (!parent || !child || d.fk.ref_columns.size() != parent->key.size()) continue;
    Reference r{d.child, {}, parent->name, parent->key, {}};
    for (const std::string& k : parent->key) {
      auto it = std::find(d.fk.ref_columns.begin(), d.fk.ref_columns.end(), parent_at->Column(k));
      if (it == d.fk.ref_columns.end()) break;
      const std::string& field = d.fields[static_cast<size_t>(it - d.fk.ref_columns.begin())];
      if (std::find(child->fields.begin(), child->fields.end(), field) == child->fields.end()) {
        break;  // not synced: duplex never writes it
      }
      r.fields.push_back(field);
    }
    if (r.fields.size() != parent->key.size()) continue;
    add(std::move(r), d.fk.deferrable ? "" : d.endpoint);
  }
  for (const CollectionConfig& cc : config_.collections) {
    const CollectionModel* child = FindModel(cc.name);
    for (const auto& [field, parent] : cc.references) {
      if (std::find(child->fields.begin(), child->fields.end(), field) == child->fields.end()) {
        return Status::InvalidArgument(Where(config_, cc.reference_lines.at(field)) +
                                       ": collection '" + cc.name + "': references." + field +
                                       " names a field that is not synced (it must be a column " +
                                       "on every endpoint, under its mapped name)");
      }
      add(Reference{cc.name, {field}, parent, FindModel(parent)->config->key, {}}, "");
    }
  }
  // A reference to a collection with mapped keys is translated to the parent's key on the
  // target, which exists only once the parent is written: in a cycle, the row goes in with
  // the reference empty and an update sets it, whether the target could defer it or not.
  for (Reference& r : refs) {
    const CollectionModel* parent = FindModel(r.parent);
    const CollectionModel* child = FindModel(r.child);
    if (!parent || !child || !parent->config->mapped_key) continue;
    r.immediate_on.insert(child->endpoints.begin(), child->endpoints.end());
  }
  planner_ = std::make_unique<Planner>(std::move(refs));
  for (const Reference& r : planner_->references()) parent_collections_.insert(r.parent);
  std::vector<std::string> names;
  for (const CollectionConfig& cc : config_.collections) names.push_back(cc.name);
  const std::vector<std::string> order = planner_->DependencyOrder(names);
  auto rank = [&](const std::string& c) { return std::find(order.begin(), order.end(), c); };
  for (Endpoint& ep : endpoints_) {
    std::vector<CollectionBinding>& bs = bindings[ep.name];
    // References to a collection with mapped keys travel as record ids, translated by the
    // endpoint like the keys themselves.
    for (CollectionBinding& b : bs) {
      for (const Reference& r : planner_->references()) {
        if (r.child != b.collection || r.fields.size() != 1) continue;
        const CollectionModel* parent = FindModel(r.parent);
        if (parent && parent->config->mapped_key) b.mapped_refs[r.fields[0]] = r.parent;
      }
      const CollectionModel* self = FindModel(b.collection);
      b.mapped_key = self && self->config->mapped_key;
    }
    // Parents first: the initial load then loads them first.
    std::stable_sort(bs.begin(), bs.end(), [&](const auto& x, const auto& y) {
      return rank(x.collection) < rank(y.collection);
    });
    DUPLEX_RETURN_IF_ERROR(ep.connector->Bind(bs));
  }
  resolver_ = std::make_unique<Resolver>(models_);
  return Status::Ok();
}

Status Engine::Install() {
  for (Endpoint& ep : endpoints_) {
    Status st = InstallOn(ep);
    if (st.ok()) continue;
    // An endpoint that is busy or unreachable now is installed later by Step (P8).
    if (!st.IsRetriable()) return st;
    MarkFailure(ep, st, "install");
  }
  return Status::Ok();
}

Status Engine::InstallOn(Endpoint& ep) {
  DUPLEX_ASSIGN_OR_RETURN(EndpointProgress p, store_->Progress(ep.name));
  if (!p.exists) {
    // This state file has never captured from the endpoint (a new endpoint, or a state file
    // deleted to start over): whatever capture is installed belongs to no state we have.
    // Start it afresh, so that the install snapshots every row for the initial load.
    DUPLEX_RETURN_IF_ERROR(ep.connector->Uninstall());
  } else {
    DUPLEX_RETURN_IF_ERROR(CheckRestored(ep, p));
  }
  DUPLEX_RETURN_IF_ERROR(ep.connector->Install());
  // Batches applied under an earlier state file carry ids this one may hand out again;
  // they would be skipped as replays.
  DUPLEX_ASSIGN_OR_RETURN(int64_t applied, ep.connector->AppliedId());
  DUPLEX_RETURN_IF_ERROR(store_->EnsureApplyIdsAbove(applied));
  if (!p.exists) {
    DUPLEX_RETURN_IF_ERROR(store_->AppendJournal(ep.name, ChangeBatch{{}, 0}).status());
  }
  ep.installed = true;
  return Status::Ok();
}

Status Engine::CheckRestored(Endpoint& ep, const EndpointProgress& p) {
  DUPLEX_ASSIGN_OR_RETURN(RestoreCheck check, ep.connector->CheckRestored(p.capture, p.acked));
  // Every apply records its id on the endpoint, in its own transaction: the endpoint cannot
  // hold an older one than a marker it has shown, unless it went back in time.
  DUPLEX_ASSIGN_OR_RETURN(int64_t applied, ep.connector->AppliedId());
  std::string reason = check.reason;
  if (applied < p.watermark) {
    reason += (reason.empty() ? "" : "; ") +
              fmt::format("it holds duplex's writes up to apply id {}, but had shown {} before",
                          applied, p.watermark);
  }
  if (reason.empty()) return Status::Ok();
  spdlog::warn(
      "endpoint '{}' went back in time (a backup restored?): {}. Capturing the changes made there "
      "since, then bringing its rows back to the agreed values",
      ep.name, reason);
  // What was captured before the restore is merged as captured, before the positions start
  // again: the journal's positions are of the endpoint's old history.
  while (true) {
    DUPLEX_ASSIGN_OR_RETURN(bool more, ResolveJournal());
    if (!more) break;
  }
  DUPLEX_RETURN_IF_ERROR(store_->ResetRestored(ep.name, check.resume, applied));
  DUPLEX_ASSIGN_OR_RETURN(EndpointProgress now, store_->Progress(ep.name));
  fresh_outbox_.erase(ep.name);
  ep.capture = ep.resolved = ep.acked = check.resume;
  ep.watermark = applied;
  ep.guard_pos = now.guard_pos;
  ep.guard_ms = now.guard_ms;
  ep.rescan = true;
  ep.more = true;
  return Status::Ok();
}

Status Engine::Rescan(Endpoint& ep) {
  DUPLEX_RETURN_IF_ERROR(store_->ClearScanned());
  const size_t chunk_rows = std::max<size_t>(config_.engine.batch_rows, 1);
  int64_t rows = 0, absent = 0;
  // Each chunk a journal entry of kPresent changes at the capture position: the resolver takes
  // them after everything captured before, in order.
  auto journal = [&](const std::string& collection, std::vector<Change>&& changes,
                     const std::vector<std::string>& keys) -> Status {
    ChangeBatch batch{std::move(changes), ep.capture};
    for (Change& c : batch.changes) c.position = ep.capture;
    DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, store_->Begin());
    if (!keys.empty()) DUPLEX_RETURN_IF_ERROR(store_->AddScanned(collection, keys));
    DUPLEX_RETURN_IF_ERROR(store_->AppendJournal(ep.name, batch).status());
    return txn.Commit();
  };
  for (const CollectionModel& m : models_) {
    if (std::find(m.endpoints.begin(), m.endpoints.end(), ep.name) == m.endpoints.end()) continue;
    const std::string& collection = m.config->name;
    const std::vector<std::string>& key_fields = m.config->key;
    DUPLEX_RETURN_IF_ERROR(
        ep.connector->Scan(collection, chunk_rows, [&](std::vector<Change>&& chunk) -> Status {
          std::vector<std::string> keys;
          keys.reserve(chunk.size());
          for (const Change& c : chunk) keys.push_back(KeyText(c.key, key_fields));
          rows += static_cast<int64_t>(chunk.size());
          return journal(collection, std::move(chunk), keys);
        }));
    // The records it holds no row of.
    std::string after;
    while (true) {
      DUPLEX_ASSIGN_OR_RETURN(std::vector<std::string> missing,
                              store_->Unscanned(collection, after, chunk_rows));
      if (missing.empty()) break;
      after = missing.back();
      std::vector<Change> changes;
      int64_t txn = -1;
      for (const std::string& text : missing) {
        Change c;
        c.op = Op::kPresent;
        c.collection = collection;
        c.key = Row::object();
        const Value values = Value::parse(text, nullptr, false);
        for (size_t i = 0; i < key_fields.size(); ++i) {
          c.key[key_fields[i]] = values.is_array() && i < values.size() ? values[i] : Value();
        }
        c.txn = --txn;  // one unit each (from -2: txn 0 and -1 mean other things)
        changes.push_back(std::move(c));
      }
      absent += static_cast<int64_t>(changes.size());
      DUPLEX_RETURN_IF_ERROR(journal(collection, std::move(changes), {}));
    }
  }
  DUPLEX_RETURN_IF_ERROR(store_->SetRescanned(ep.name));
  ep.rescan = false;
  spdlog::info(
      "endpoint '{}': read back {} rows and {} records it holds no row of; the writes that bring "
      "it to the agreed values follow",
      ep.name, rows, absent);
  return Status::Ok();
}

Status Engine::Uninstall(const std::string& endpoint) {
  for (Endpoint& ep : endpoints_) {
    if (!endpoint.empty() && ep.name != endpoint) continue;
    DUPLEX_RETURN_IF_ERROR(ep.connector->Uninstall());
  }
  return Status::Ok();
}

Result<bool> Engine::IsInstalled() {
  for (Endpoint& ep : endpoints_) {
    DUPLEX_ASSIGN_OR_RETURN(bool installed, ep.connector->IsInstalled());
    if (!installed) return false;
  }
  return true;
}

void Engine::MarkFailure(Endpoint& ep, const Status& st, const char* stage) {
  auto now = env_->Now();
  if (ep.last_error.empty()) ep.failing_since = now;
  std::string msg = std::string(stage) + ": " + st.message();
  // A busy database is an everyday moment (an application holds its write lock): worth a
  // warning only when it lasts.
  const bool lasting = !st.IsRetriable() || now - ep.failing_since > kTransientFailure;
  if (lasting && (msg != ep.last_error || !ep.warned)) {
    spdlog::warn("endpoint={} stage={} error=\"{}\" (retrying)", ep.name, stage, st.message());
    ep.warned = true;
  }
  if (msg != ep.last_error) (void)store_->SetLastError(ep.name, msg);
  ep.last_error = msg;
  EndpointTelemetry& t = telemetry_.endpoints[ep.index];
  ++(std::string_view(stage) == "apply" ? t.apply_errors : t.capture_errors);
  ep.backoff = std::min<std::chrono::milliseconds>(
      std::chrono::milliseconds(2000),
      ep.backoff.count() == 0 ? std::chrono::milliseconds(20) : ep.backoff * 2);
  ep.retry_at = now + ep.backoff;
}

void Engine::MarkSuccess(Endpoint& ep) {
  if (ep.last_error.empty()) return;
  if (ep.warned) spdlog::info("endpoint={} recovered", ep.name);
  ep.warned = false;
  ep.last_error.clear();
  ep.backoff = std::chrono::milliseconds(0);
  (void)store_->SetLastError(ep.name, "");
}

Result<bool> Engine::CaptureFrom(Endpoint& ep) {
  if (!ep.more) {
    DUPLEX_ASSIGN_OR_RETURN(bool changed, ep.connector->Poll());
    if (!changed) {
      ep.caught_up_at = env_->Now();
      return false;
    }
    // The poll has consumed the news: if the capture below fails, the retry must capture
    // without polling first (found by the simulation, seed 51: a change stuck until the next).
    ep.more = true;
  }
  DUPLEX_ASSIGN_OR_RETURN(ChangeBatch batch,
                          ep.connector->Capture(ep.capture, config_.engine.batch_rows));
  ep.more = batch.changes.size() >= config_.engine.batch_rows;
  if (!ep.more) ep.caught_up_at = env_->Now();
  // A connector may deliver again what it delivered before (a stream resent from an earlier
  // point after a reconnect, a poll with an overlap window): changes at or before the capture
  // position are in the journal already, and merging one twice would bring its old value back
  // over newer ones (found by the simulation, seeds 6, 32 and 33).
  std::erase_if(batch.changes, [&](const Change& c) { return c.position <= ep.capture; });
  if (ep.guard_pos > 0) {
    // An endpoint that went back in time delivers again changes captured before it did: the
    // ones at a position and a commit time both at most those captured then. A rejected write
    // of duplex's from then answers a write of the old history.
    std::erase_if(batch.changes, [&](const Change& c) {
      return c.position <= ep.guard_pos && c.op != Op::kMarker &&
             (c.op == Op::kRejected || c.commit_ms <= ep.guard_ms);
    });
  }
  if (ep.rescan) {
    // Its initial load made again (its capture objects were gone): what it holds, not edits.
    for (Change& c : batch.changes) {
      if (c.snapshot && c.op == Op::kInsert) c.op = Op::kPresent;
    }
  }
  if (batch.end <= ep.capture) {
    // The endpoint said more is coming (e.g. a PostgreSQL server still decoding a large
    // transaction) but nothing has arrived yet: nothing moved, yet it is not idle.
    news_pending_ = true;
    return false;
  }
  Counters counters;
  EndpointTelemetry& t = telemetry_.endpoints[ep.index];
  std::pair<std::string, std::string> last{ep.name, ""};
  int64_t* captured = nullptr;
  for (const Change& c : batch.changes) {
    if (c.op == Op::kMarker) {
      ++counters.echoes;
      ++t.echoes_skipped;
    } else if (c.op != Op::kRejected) {
      ++counters.captured;
      if (!captured || c.collection != last.second) {
        last.second = c.collection;
        captured = &telemetry_.captured[last];
      }
      ++*captured;
    } else {
      ++t.writes_rejected;
    }
  }
  int64_t id = 0;
  {
    DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, store_->Begin());
    DUPLEX_ASSIGN_OR_RETURN(id, store_->AppendJournal(ep.name, batch));
    DUPLEX_RETURN_IF_ERROR(store_->AddCounters(ep.name, counters));
    DUPLEX_RETURN_IF_ERROR(txn.Commit());
  }
  ep.capture = batch.end;
  // Keep the batch just journaled at hand so that resolving it need not decode it again; a
  // few at most (P9), the rest is read back from the journal.
  if (id != 0 && fresh_.size() < kMaxFreshBatches) {
    fresh_.push_back(JournalEntry{id, ep.name, std::move(batch)});
  }
  return true;
}

// Pruning the source's changelog is housekeeping: only after the journal commit (so nothing
// the journal lacks is released), and not after every batch (it takes the source's write lock).
void Engine::AckCaptured(Endpoint& ep, bool force) {
  auto now = env_->Now();
  if (!force && now - ep.last_ack < std::chrono::milliseconds(500)) return;
  // The changelog after a planned write's `seen` position is what its compare-and-set asks
  // (RowOp::seen): keep it until the write is applied, and keep what is not yet resolved.
  Position upto = std::min(ep.capture, ep.resolved);
  Result<std::optional<Position>> min_seen = store_->MinOutboxSeen(ep.name);
  if (!min_seen.ok()) return;
  if (min_seen->has_value()) upto = std::min(upto, **min_seen);
  if (upto <= ep.acked) return;
  Status st = ep.connector->Ack(upto);
  if (st.ok()) {
    ep.acked = upto;
    ep.last_ack = now;
    // After the endpoint recorded it (CheckRestored compares the two).
    (void)store_->SetAcked(ep.name, upto);
  }
}

Result<PlanContext> Engine::NewPlanContext() {
  DUPLEX_ASSIGN_OR_RETURN(int64_t first,
                          store_->AllocateApplyIds(static_cast<int>(endpoints_.size())));
  PlanContext ctx;
  for (const Endpoint& ep : endpoints_) {
    ctx.apply_ids[ep.name] = first++;
    ctx.seen[ep.name] = ep.resolved;
    ctx.watermarks[ep.name] = ep.watermark;
  }
  return ctx;
}

Status Engine::StoreOutput(ResolveOutput& out, const PlanContext& ctx) {
  const double now = env_->WallMs();
  for (const std::string& target : out.observe) out.writes[target];  // even if empty
  for (auto& [target, ops] : out.writes) {
    // Writes taken back in this step (engine_refs.cc) are marked, not removed.
    std::erase_if(ops, [](const RowOp& op) { return op.op == Op::kMarker; });
    if (ops.empty() && !out.observe.count(target)) continue;
    planner_->Order(target, ops);
    ApplyBatch batch{ctx.apply_ids.at(target), std::move(ops)};
    DUPLEX_RETURN_IF_ERROR(store_->AddOutbox(target, batch));
    // Like fresh journal entries: kept decoded for the applier, a few at most (P9).
    std::map<int64_t, ApplyBatch>& cache = fresh_outbox_[target];
    if (cache.size() < kMaxFreshBatches) cache.emplace(batch.id, std::move(batch));
  }
  for (const ConflictRecord& c : out.conflicts) {
    DUPLEX_ASSIGN_OR_RETURN(int64_t id, store_->AddConflict(c, now));
    ++telemetry_.conflicts[{c.collection, c.field.empty() ? "(row)" : c.field, c.policy}];
    if (c.open) {
      spdlog::warn(
          "conflict id={} collection={} key={} field={} policy=manual: parked until "
          "`duplex conflicts resolve {}`",
          id, c.collection, c.key_text, c.field, id);
    } else {
      spdlog::info("conflict id={} collection={} key={} field={} policy={} winner={}", id,
                   c.collection, c.key_text, c.field.empty() ? "(row)" : c.field, c.policy,
                   c.winner);
    }
  }
  for (const ConflictValueUpdate& u : out.conflict_updates) {
    DUPLEX_RETURN_IF_ERROR(store_->UpdateOpenConflict(u));
  }
  return Status::Ok();
}

Status Engine::ResolveEntry(const JournalEntry& entry) {
  Endpoint* ep = Find(entry.endpoint);
  if (!ep) {
    // An endpoint removed from the config: its captured changes have nowhere to go.
    spdlog::warn("journal entry {} from unknown endpoint '{}' dropped", entry.id, entry.endpoint);
    return store_->DeleteJournal(entry.id);
  }
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, store_->Begin());
  // Load every record the batch touches at once.
  std::map<std::string, std::vector<std::string>> keys;
  std::vector<std::string> key_texts(entry.batch.changes.size());
  for (size_t i = 0; i < entry.batch.changes.size(); ++i) {
    const Change& c = entry.batch.changes[i];
    if (c.op == Op::kMarker) continue;
    const CollectionModel* model = resolver_->Find(c.collection);
    if (!model) continue;  // collection removed from the config
    key_texts[i] = KeyText(c.key, model->config->key);
    keys[c.collection].push_back(key_texts[i]);
  }
  RecordStates states;
  for (const auto& [collection, ks] : keys) {
    DUPLEX_RETURN_IF_ERROR(store_->LoadRecords(collection, ks, states[collection]));
  }
  DUPLEX_ASSIGN_OR_RETURN(PlanContext ctx, NewPlanContext());
  if (!planner_->references().empty()) {
    // What each endpoint has parked: a parent's refused delete may wait for a row in this
    // batch (CheckReferences).
    for (Endpoint& e : endpoints_) DUPLEX_RETURN_IF_ERROR(LoadParked(e));
  }
  ResolveOutput out;
  std::map<std::string, size_t> traced;  // target -> its writes given a source commit time
  int64_t watermark = ep->watermark;
  for (size_t i = 0; i < entry.batch.changes.size(); ++i) {
    const Change& c = entry.batch.changes[i];
    // Writes planned from here on have seen the endpoint's stream up to this change.
    ctx.seen[ep->name] = c.position;
    if (c.op == Op::kMarker) {
      watermark = std::max(watermark, c.apply_id);
      ctx.watermarks[ep->name] = watermark;
      continue;
    }
    if (key_texts[i].empty()) continue;
    RecordState& state = states[c.collection][key_texts[i]];
    if (c.op == Op::kRejected) {
      resolver_->Correct(c, ep->name, ctx, state, out);
    } else if (c.op == Op::kPresent) {
      if (!Resolver::Unknown(state)) {
        resolver_->Observe(c, ep->name, ctx, state, out);
      } else if (c.after.is_object()) {
        // A row duplex has never seen: copied, like a row of the initial load.
        Change row = c;
        row.op = Op::kInsert;
        row.snapshot = true;
        resolver_->Merge(row, ep->name, watermark, ctx, state, out);
        if (planner_->Involves(c.collection)) {
          DUPLEX_RETURN_IF_ERROR(CheckReferences(row, ep->name, watermark,
                                                 c.collection + "\n" + key_texts[i], false, {},
                                                 traced, states, ctx, out));
        }
      }
    } else if (!planner_->Involves(c.collection)) {
      resolver_->Merge(c, ep->name, watermark, ctx, state, out);
    } else {
      const bool was_live = state.exists;
      const std::vector<std::string> parents_before =
          was_live ? ParentRecords(c.collection, state.values) : std::vector<std::string>();
      resolver_->Merge(c, ep->name, watermark, ctx, state, out);
      DUPLEX_RETURN_IF_ERROR(CheckReferences(c, ep->name, watermark,
                                             c.collection + "\n" + key_texts[i], was_live,
                                             parents_before, traced, states, ctx, out));
    }
    // For the sync latency metric: the writes this change caused carry its commit time (none
    // for the initial load's snapshot rows and for corrections).
    for (auto& [target, ops] : out.writes) {
      size_t& done = traced[target];
      for (; done < ops.size(); ++done) {
        ops[done].txn = c.txn;  // one source transaction: one unit on the target (P7)
        if (c.op == Op::kRejected || c.op == Op::kPresent || c.snapshot || c.commit_ms <= 0)
          continue;
        ops[done].source = ep->name;
        ops[done].source_commit_ms = c.commit_ms;
      }
    }
  }
  for (const auto& [collection, records] : states) {
    for (const auto& [key, state] : records) {
      DUPLEX_RETURN_IF_ERROR(store_->SaveRecord(collection, key, state));
    }
  }
  const size_t conflicts = out.conflicts.size();
  DUPLEX_RETURN_IF_ERROR(StoreOutput(out, ctx));
  DUPLEX_RETURN_IF_ERROR(store_->SetResolved(ep->name, watermark, entry.batch.end));
  DUPLEX_RETURN_IF_ERROR(store_->DeleteJournal(entry.id));
  Counters counters;
  counters.conflicts = static_cast<int64_t>(conflicts);
  DUPLEX_RETURN_IF_ERROR(store_->AddCounters(ep->name, counters));
  DUPLEX_RETURN_IF_ERROR(txn.Commit());
  ep->watermark = watermark;
  ep->resolved = std::max(ep->resolved, entry.batch.end);
  synced_changes_ += static_cast<int64_t>(out.changes);
  return Status::Ok();
}

Result<bool> Engine::ResolveJournal() {
  DUPLEX_RETURN_IF_ERROR(EnsureRefIndex());
  DUPLEX_ASSIGN_OR_RETURN(auto heads, store_->JournalHeads(2));
  for (const auto& [id, endpoint] : heads) {
    while (!fresh_.empty() && fresh_.front().id < id) fresh_.pop_front();
    Status st;
    if (!fresh_.empty() && fresh_.front().id == id) {
      JournalEntry entry = std::move(fresh_.front());
      fresh_.pop_front();
      st = ResolveEntry(entry);
    } else {
      DUPLEX_ASSIGN_OR_RETURN(ChangeBatch batch, store_->ReadJournalBatch(id));
      st = ResolveEntry(JournalEntry{id, endpoint, std::move(batch)});
    }
    if (!st.ok()) {
      // The transaction rolled back, and with it the apply ids of batches already cached:
      // they would be handed out again for other batches.
      fresh_outbox_.clear();
      return st;
    }
  }
  return !heads.empty();
}

Result<bool> Engine::PropagateResolutions() {
  DUPLEX_ASSIGN_OR_RETURN(std::vector<ConflictRow> rows, store_->PendingResolutions());
  for (const ConflictRow& c : rows) {
    DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, store_->Begin());
    std::map<std::string, RecordState> states;
    DUPLEX_RETURN_IF_ERROR(store_->LoadRecords(c.collection, {c.key_text}, states));
    DUPLEX_ASSIGN_OR_RETURN(PlanContext ctx, NewPlanContext());
    ResolveOutput out;
    auto it = states.find(c.key_text);
    if (it != states.end()) {
      RecordState& state = it->second;
      const std::string record = c.collection + "\n" + c.key_text;
      const std::vector<std::string> before =
          state.exists ? ParentRecords(c.collection, state.values) : std::vector<std::string>();
      resolver_->ResolveManual(c.collection, c.field, c.resolution, env_->WallMs(), ctx, state,
                               out);
      // The chosen value may be a reference: the index follows it.
      if (state.exists) {
        DUPLEX_RETURN_IF_ERROR(
            UpdateRefIndex(record, before, ParentRecords(c.collection, state.values)));
      }
      DUPLEX_RETURN_IF_ERROR(store_->SaveRecord(c.collection, c.key_text, state));
    }
    DUPLEX_RETURN_IF_ERROR(StoreOutput(out, ctx));
    DUPLEX_RETURN_IF_ERROR(store_->MarkPropagated(c.id));
    DUPLEX_RETURN_IF_ERROR(txn.Commit());
    spdlog::info("conflict id={} collection={} key={} field={} resolved ({}): propagating {}", c.id,
                 c.collection, c.key_text, c.field, c.status, ValueToDisplay(c.resolution));
  }
  return !rows.empty();
}

Status Engine::LoadParked(Endpoint& ep) {
  DUPLEX_ASSIGN_OR_RETURN(auto version, store_->DeadLetterVersion(ep.name));
  if (version == ep.parked_version) return Status::Ok();
  ep.parked.clear();
  if (version.first > 0) {
    DUPLEX_ASSIGN_OR_RETURN(std::vector<DeadLetterRow> rows, store_->ListDeadLetters(false));
    for (const DeadLetterRow& d : rows) {
      if (d.endpoint != ep.name) continue;
      for (const RowOp& op : d.batch.ops) ep.parked.emplace(Planner::RecordOf(op), d.id);
    }
  }
  ep.parked_version = version;
  return Status::Ok();
}

std::vector<std::pair<FailedOp, int64_t>> Engine::HoldDependents(Endpoint& ep,
                                                                 std::vector<ApplyBatch>& batches) {
  std::vector<std::pair<FailedOp, int64_t>> held;
  if (ep.parked.empty()) return held;
  for (ApplyBatch& b : batches) {
    std::vector<RowOp> kept;
    for (size_t begin = 0; begin < b.ops.size();) {
      const size_t end = TxnEnd(b.ops, begin);
      const int64_t id =
          ParkedDependency(*planner_, ep.parked, std::span(b.ops).subspan(begin, end - begin));
      if (id == 0) {
        for (size_t i = begin; i < end; ++i) kept.push_back(std::move(b.ops[i]));
      } else {
        FailedOp f{b.id, b.ops[begin].txn, {}, ""};
        for (size_t i = begin; i < end; ++i) f.ops.push_back(std::move(b.ops[i]));
        f.reason = "waits for dead letter " + std::to_string(id);
        // What waits is parked too: what depends on it waits for the same dead letter.
        for (const RowOp& op : f.ops) ep.parked.emplace(Planner::RecordOf(op), id);
        held.emplace_back(std::move(f), id);
      }
      begin = end;
    }
    b.ops = std::move(kept);
  }
  return held;
}

Result<bool> Engine::ApplyTo(Endpoint& ep) {
  const auto now = env_->Now();
  if (now < ep.refused_retry_at) {
    news_pending_ = true;  // a refused transaction is retried soon: not idle
    return false;
  }
  DUPLEX_ASSIGN_OR_RETURN(
      std::vector<ApplyBatch> batches,
      store_->ReadOutbox(ep.name, config_.engine.batch_rows, &fresh_outbox_[ep.name]));
  if (batches.empty()) return false;
  const int64_t last_id = batches.back().id;
  // Transactions that write a record a parked transaction holds, or refer to a row it would
  // have inserted, wait for it instead of failing (or overtaking it); the others flow.
  DUPLEX_RETURN_IF_ERROR(LoadParked(ep));
  std::vector<std::pair<FailedOp, int64_t>> held = HoldDependents(ep, batches);
  Result<ApplyResult> result = ep.connector->Apply(batches);
  if (!result.ok()) {
    // Only transactions the target refuses (constraint, type) are parked; anything else
    // (busy, unreachable, disk) is the endpoint's trouble and is retried.
    if (!result.status().IsInvalidArgument()) return result.status();
    // A refusal may pass (a row the application was about to change, a lock timeout the
    // server reports as a constraint): try the whole apply again a few times first.
    if (++ep.refusals < kApplyAttempts) {
      spdlog::warn("endpoint={} apply refused (attempt {} of {}), retrying: {}", ep.name,
                   ep.refusals, kApplyAttempts, result.status().message());
      ep.refused_retry_at = now + std::chrono::milliseconds(250) * ep.refusals;
      news_pending_ = true;
      return false;
    }
    // Write transaction by transaction, park the refused ones with their reason, let the rest
    // flow.
    result = ep.connector->Apply(batches, /*isolate_txns=*/true);
    if (!result.ok()) {
      if (!result.status().IsInvalidArgument()) return result.status();
      // Not even one by one: park the batches whole.
      std::string reason = result.status().message();
      result = ApplyResult{};
      for (const ApplyBatch& b : batches) {
        result->failed.push_back(FailedOp{b.id, kWholeBatch, b.ops, reason});
      }
    }
  }
  ep.refusals = 0;
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, store_->Begin());
  // record -> dead letter, parked by this apply: a refused transaction that writes or refers
  // to a record an earlier refused one writes (a child of a refused parent) waits for it.
  std::map<std::string, int64_t> parked_now;
  // Refused transactions with a write that a later one has overtaken: a parent's delete
  // refused for a row that refers to it, where the parent was made again since; a child's
  // insert refused for its absent parent, where the child was deleted since. Planned again
  // whole from their records' current state instead of parked. (What that plans is an insert
  // or update of a live record, or a delete of a deleted one: neither can be overtaken in
  // turn.)
  std::vector<bool> superseded(result->failed.size());
  for (size_t i = 0; i < superseded.size(); ++i) {
    DUPLEX_ASSIGN_OR_RETURN(superseded[i], Superseded(ep.name, result->failed[i]));
  }
  PlanContext replan_ctx;
  ResolveOutput replanned;
  for (size_t i = 0; i < superseded.size(); ++i) {
    if (!superseded[i]) continue;
    const FailedOp& f = result->failed[i];
    if (replan_ctx.apply_ids.empty()) {
      DUPLEX_ASSIGN_OR_RETURN(replan_ctx, NewPlanContext());
    }
    spdlog::info(
        "endpoint={} collection={} key={} refused transaction of {} writes planned "
        "again (its records were written since): {}",
        ep.name, f.ops.front().collection, f.ops.front().key.dump(), f.ops.size(), f.reason);
    DUPLEX_RETURN_IF_ERROR(ReplanRefused(ep.name, f.ops, replan_ctx, replanned));
  }
  if (!replan_ctx.apply_ids.empty()) DUPLEX_RETURN_IF_ERROR(StoreOutput(replanned, replan_ctx));
  for (size_t i = 0; i < superseded.size(); ++i) {
    if (superseded[i]) continue;
    const FailedOp& f = result->failed[i];
    const int64_t waits_for = ParkedDependency(*planner_, parked_now, f.ops);
    const RowOp* first = f.ops.empty() ? nullptr : &f.ops.front();
    spdlog::error(
        "endpoint={} collection={} key={} transaction of {} writes parked as dead letter: {}",
        ep.name, first ? first->collection : "", first ? first->key.dump() : "", f.ops.size(),
        f.reason);
    DUPLEX_ASSIGN_OR_RETURN(int64_t id,
                            store_->AddDeadLetter(ep.name, ApplyBatch{f.batch_id, f.ops}, f.reason,
                                                  env_->WallMs(), waits_for));
    for (const RowOp& op : f.ops) parked_now.emplace(Planner::RecordOf(op), id);
  }
  for (const auto& [f, waits_for] : held) {
    const RowOp& first = f.ops.front();
    spdlog::warn(
        "endpoint={} collection={} key={} transaction of {} writes waits for dead letter {}",
        ep.name, first.collection, first.key.dump(), f.ops.size(), waits_for);
    DUPLEX_RETURN_IF_ERROR(store_
                               ->AddDeadLetter(ep.name, ApplyBatch{f.batch_id, f.ops}, f.reason,
                                               env_->WallMs(), waits_for)
                               .status());
  }
  DUPLEX_RETURN_IF_ERROR(store_->DeleteOutbox(ep.name, last_id));
  Counters counters;
  counters.applied = static_cast<int64_t>(result->applied);
  counters.rejected = static_cast<int64_t>(result->rejected);
  counters.dead_letters = static_cast<int64_t>(result->failed.size() + held.size());
  DUPLEX_RETURN_IF_ERROR(store_->AddCounters(ep.name, counters));
  DUPLEX_RETURN_IF_ERROR(txn.Commit());
  ObserveApplied(ep, batches, *result);
  return true;
}

void Engine::ObserveApplied(const Endpoint& ep, const std::vector<ApplyBatch>& batches,
                            const ApplyResult& result) {
  // Row writes committed on the target, by collection (refused rows left out), and the time
  // from each causing change's commit on its source to now, when the target has committed.
  std::set<std::pair<int64_t, int64_t>> failed;
  for (const FailedOp& f : result.failed) failed.insert({f.batch_id, f.txn});
  const double now = env_->WallMs();
  size_t rows = 0;
  std::pair<std::string, std::string> cell{ep.name, ""};
  int64_t* applied = nullptr;
  std::pair<std::string, std::string> route{"", ep.name};
  Histogram* latency = nullptr;
  for (const ApplyBatch& b : batches) {
    for (const RowOp& op : b.ops) {
      ++rows;
      if (!failed.empty() && (failed.count({b.id, op.txn}) || failed.count({b.id, kWholeBatch}))) {
        continue;
      }
      if (!applied || op.collection != cell.second) {
        cell.second = op.collection;
        applied = &telemetry_.applied[cell];
      }
      ++*applied;
      if (op.source_commit_ms <= 0) continue;
      if (!latency || op.source != route.first) {
        route.first = op.source;
        latency = &telemetry_.latency.try_emplace(route, LatencyBuckets()).first->second;
      }
      latency->Observe(std::max(0.0, now - op.source_commit_ms) / 1000);
    }
  }
  EndpointTelemetry& t = telemetry_.endpoints[ep.index];
  t.batch_rows.Observe(static_cast<double>(rows));
  t.writes_rejected += static_cast<int64_t>(result.rejected);
}

Status Engine::ReplanRefused(const std::string& endpoint, const std::vector<RowOp>& ops,
                             const PlanContext& ctx, ResolveOutput& out, RecordStates* states) {
  for (const RowOp& op : ops) {
    const CollectionModel* model = resolver_->Find(op.collection);
    if (!model) continue;  // no longer in the config
    const std::string key_text = KeyText(op.key, model->config->key);
    RecordStates own;
    DUPLEX_ASSIGN_OR_RETURN(RecordState * loaded,
                            LoadRecord(states ? *states : own, op.collection + "\n" + key_text));
    if (!loaded) continue;
    RecordState& state = *loaded;
    // The refused write changed nothing: the target holds the row as it was before it. The
    // resolver believed it landed; correct that, and plan from the record's current state
    // with a fresh `seen`. Should the target's row differ still (changed since), the
    // compare-and-set rejects the write and the resolver corrects again from the real row.
    Change truth;
    truth.op = Op::kRejected;
    truth.collection = op.collection;
    truth.key = op.key;
    if (op.op != Op::kInsert) {
      auto known = state.known.find(endpoint);
      truth.after = known != state.known.end() ? known->second : Row::object();
      for (const auto& [k, v] : op.key.items()) truth.after[k] = v;
      for (const auto& [f, v] : op.expected.items()) truth.after[f] = v;
    }
    resolver_->Correct(truth, endpoint, ctx, state, out);
    if (!states) DUPLEX_RETURN_IF_ERROR(store_->SaveRecord(op.collection, key_text, state));
  }
  return Status::Ok();
}

Result<bool> Engine::Superseded(const std::string& endpoint, const FailedOp& f) {
  for (const RowOp& op : f.ops) {
    const CollectionModel* model = resolver_->Find(op.collection);
    if (!model) continue;
    RecordStates loaded;
    DUPLEX_ASSIGN_OR_RETURN(
        const RecordState* found,
        LoadRecord(loaded, op.collection + "\n" + KeyText(op.key, model->config->key)));
    if (!found) continue;
    const RecordState& state = *found;
    auto pending = state.pending.find(endpoint);
    if (pending == state.pending.end()) continue;
    // Overtaken: a refused delete of a record that exists again (its latest write planned
    // here is the re-insert, in a later batch or later in the same one); a refused insert or
    // update of a record deleted since (the delete, likewise), or written as a row again in a
    // later batch (deleted and made again). The refused write itself is never the later one:
    // what planning it again plans cannot be overtaken in turn.
    const bool deleting = op.op == Op::kDelete;
    if (deleting && !state.exists) continue;
    for (const auto& [field, id] : pending->second) {
      if (deleting ? id >= f.batch_id
                   : field.empty() && (id > f.batch_id || (!state.exists && id == f.batch_id))) {
        return true;
      }
    }
  }
  return false;
}

Result<bool> Engine::RetryDeadLetters() {
  DUPLEX_ASSIGN_OR_RETURN(std::vector<DeadLetterRow> asked, store_->ListDeadLetters(true));
  if (asked.empty()) return false;
  // The dead letters waiting for a retried one are retried with it, after it (ids ascend),
  // whether or not they were asked for: one parked after the request (a change that came
  // meanwhile) would otherwise hold the retried writes back, and they it.
  DUPLEX_ASSIGN_OR_RETURN(std::vector<DeadLetterRow> all, store_->ListDeadLetters(false));
  std::set<int64_t> retried;
  for (const DeadLetterRow& d : asked) retried.insert(d.id);
  std::vector<DeadLetterRow> rows;
  for (DeadLetterRow& d : all) {
    if (retried.count(d.id) || retried.count(d.waits_for)) {
      retried.insert(d.id);
      rows.push_back(std::move(d));
    }
  }
  for (const DeadLetterRow& d : rows) {
    DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, store_->Begin());
    DUPLEX_ASSIGN_OR_RETURN(PlanContext ctx, NewPlanContext());
    ResolveOutput out;
    if (Find(d.endpoint)) {  // else no longer in the config
      DUPLEX_RETURN_IF_ERROR(ReplanRefused(d.endpoint, d.batch.ops, ctx, out));
      for (const RowOp& op : d.batch.ops) {
        spdlog::info("endpoint={} collection={} key={} dead letter id={} retried", d.endpoint,
                     op.collection, op.key.dump(), d.id);
      }
    }
    DUPLEX_RETURN_IF_ERROR(StoreOutput(out, ctx));
    DUPLEX_RETURN_IF_ERROR(store_->DeleteDeadLetter(d.id));
    DUPLEX_RETURN_IF_ERROR(txn.Commit());
  }
  return !rows.empty();
}

double Engine::LagSeconds(const Endpoint& ep, std::chrono::steady_clock::time_point now) const {
  if (ep.last_error.empty() && !ep.more) return 0;
  return std::max(0.0, std::chrono::duration<double>(now - ep.caught_up_at).count());
}

void Engine::UpdateTelemetry() {
  using std::chrono::milliseconds;
  const auto now = env_->Now();
  if (now - last_alert_check_ < milliseconds(200)) return;
  last_alert_check_ = now;
  ReapAlerts(alert_pids_);
  for (Endpoint& ep : endpoints_) {
    EndpointTelemetry& t = telemetry_.endpoints[ep.index];
    // A busy database for a moment is an everyday thing (an application holds its write
    // lock), not an unreachable endpoint.
    t.connected = ep.last_error.empty() || now - ep.failing_since <= kTransientFailure;
    t.last_error = ep.last_error;
    t.lag_seconds = LagSeconds(ep, now);
    t.unreachable_seconds =
        ep.last_error.empty() ? 0 : std::chrono::duration<double>(now - ep.failing_since).count();
    std::optional<AlertEvent> e =
        alerts_.Update(ep.name, t.lag_seconds, t.unreachable_seconds, ep.last_error);
    t.alert = alerts_.Active(ep.name);
    t.alerting = !t.alert.empty();
    if (!e) continue;
    if (e->firing) {
      spdlog::warn("alert endpoint={} reason={}: {}", e->endpoint, e->reason, e->message);
    } else {
      spdlog::info("alert cleared endpoint={} reason={}", e->endpoint, e->reason);
    }
    if (!config_.engine.alert_command.empty()) {
      pid_t pid = RunAlertCommand(config_.engine.alert_command, *e);
      if (pid > 0) {
        alert_pids_.push_back(pid);
      } else {
        spdlog::error("alert_command could not be started");
      }
    }
  }
  if (!hub_) return;
  if (last_status_ == std::chrono::steady_clock::time_point{} ||
      now - last_status_ > milliseconds(2000)) {
    last_status_ = now;
    Result<nlohmann::json> status = StatusJson();
    if (status.ok()) {
      telemetry_.status = std::move(status).value();
      telemetry_.journal_backlog = telemetry_.status.value("journal_backlog", int64_t{-1});
      for (const nlohmann::json& j : telemetry_.status["endpoints"]) {
        for (EndpointTelemetry& t : telemetry_.endpoints) {
          if (t.name != j.value("name", "")) continue;
          t.dead_letters = j.value("dead_letters", int64_t{-1});
          t.apply_backlog = j.value("apply_backlog", int64_t{-1});
          t.capture_backlog =
              j["capture_backlog"].is_number() ? j["capture_backlog"].get<int64_t>() : int64_t{-1};
        }
      }
    }
  }
  if (now - last_sample_ >= milliseconds(2000)) {
    last_sample_ = now;
    HistorySample sample;
    sample.wall_ms = env_->WallMs();
    for (const EndpointTelemetry& t : telemetry_.endpoints) {
      int64_t captured = 0, applied = 0;
      for (const auto& [k, n] : telemetry_.captured) captured += k.first == t.name ? n : 0;
      for (const auto& [k, n] : telemetry_.applied) applied += k.first == t.name ? n : 0;
      sample.endpoints[t.name] = {captured, applied, t.lag_seconds};
    }
    telemetry_.history.push_back(std::move(sample));
    // 10 minutes at one sample every 2 s.
    if (telemetry_.history.size() > 300) telemetry_.history.erase(telemetry_.history.begin());
  }
  if (now - last_publish_ >= milliseconds(500)) {
    last_publish_ = now;
    telemetry_.wall_ms = env_->WallMs();
    hub_->Publish(std::make_shared<const TelemetrySnapshot>(telemetry_));
  }
}

Result<bool> Engine::Step() {
  bool moved = false;
  news_pending_ = false;
  auto now = env_->Now();
  if (now - last_resolution_check_ > std::chrono::milliseconds(200)) {
    last_resolution_check_ = now;
    Result<bool> resolved = PropagateResolutions();
    if (resolved.ok()) {
      moved |= *resolved;
      resolved = RetryDeadLetters();
    }
    if (!resolved.ok()) {
      fresh_outbox_.clear();  // as in ResolveJournal: rolled-back apply ids
      return resolved.status();
    }
    moved |= *resolved;
  }
  // An endpoint that fails (unreachable, locked, file gone) only stops its own capture and
  // apply, retried with backoff; the others go on (P8).
  std::vector<bool> failed(endpoints_.size(), false);
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    Endpoint& ep = endpoints_[i];
    if (!ep.last_error.empty() && now < ep.retry_at) {
      failed[i] = true;
      continue;
    }
    if (!ep.installed) {
      Status st = InstallOn(ep);
      if (!st.ok()) {
        if (!st.IsRetriable()) return st.WithContext("endpoint '" + ep.name + "': install");
        MarkFailure(ep, st, "install");
        failed[i] = true;
        continue;
      }
    }
    Result<bool> r = CaptureFrom(ep);
    if (!r.ok()) {
      MarkFailure(ep, r.status(), "capture");
      failed[i] = true;
      continue;
    }
    moved |= *r;
    if (ep.rescan && !ep.more) {
      // Restored from a backup, and what changed there since is captured: read its rows back.
      Status st = Rescan(ep);
      if (!st.ok()) {
        MarkFailure(ep, st, "rescan");
        failed[i] = true;
        continue;
      }
      moved = true;
    }
  }
  DUPLEX_ASSIGN_OR_RETURN(bool resolved, ResolveJournal());
  moved |= resolved;
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    if (failed[i]) continue;
    Endpoint& ep = endpoints_[i];
    Result<bool> r = ApplyTo(ep);
    if (!r.ok()) {
      // Refused writes planned again in a transaction that rolled back: their apply ids will
      // be handed out again (as in ResolveJournal).
      fresh_outbox_.clear();
      MarkFailure(ep, r.status(), "apply");
      continue;
    }
    MarkSuccess(ep);
    moved |= *r;
    AckCaptured(ep, false);
  }
  UpdateTelemetry();
  return moved;
}

// One progress line, redrawn in place: changes done, their rate, what is left (in the journal
// and not yet captured) and the time that will take at this rate.
void Engine::PrintProgress(double secs) {
  int64_t left = 0;
  if (Result<int64_t> b = store_->JournalBacklog(); b.ok()) left += *b;
  for (Endpoint& ep : endpoints_) {
    if (!ep.last_error.empty()) continue;
    if (Result<int64_t> b = ep.connector->Backlog(ep.capture); b.ok()) left += *b;
  }
  const double rate = secs > 0 ? static_cast<double>(synced_changes_) / secs : 0;
  std::string eta = "-";
  if (left == 0) {
    eta = "0s";
  } else if (rate >= 1) {
    const int64_t t = static_cast<int64_t>(static_cast<double>(left) / rate + 0.5);
    eta = t >= 3600 ? fmt::format("{}h{:02}m", t / 3600, t / 60 % 60)
          : t >= 60 ? fmt::format("{}m{:02}s", t / 60, t % 60)
                    : fmt::format("{}s", t);
  }
  std::fprintf(stderr, "\rsynced %lld changes (%.0f/s), %lld left, ETA %s      ",
               static_cast<long long>(synced_changes_), rate, static_cast<long long>(left),
               eta.c_str());
}

Status Engine::Run(const std::atomic<bool>& stop, bool until_idle,
                   std::chrono::milliseconds unavailable_timeout) {
  const bool tty = isatty(STDERR_FILENO) && until_idle;
  auto started = env_->Now();
  auto last_progress = started;
  int idle_passes = 0;
  while (!stop.load()) {
    DUPLEX_ASSIGN_OR_RETURN(bool moved, Step());
    auto now = env_->Now();
    if (tty && now - last_progress > std::chrono::seconds(1)) {
      last_progress = now;
      PrintProgress(std::chrono::duration<double>(now - started).count());
    }
    if (moved) {
      idle_passes = 0;
      continue;
    }
    bool failing = false;
    for (const Endpoint& ep : endpoints_) {
      if (ep.last_error.empty()) continue;
      failing = true;
      if (until_idle && now - ep.failing_since > unavailable_timeout) {
        if (tty) std::fprintf(stderr, "\n");
        return Status::Unavailable("endpoint '" + ep.name + "' " + ep.last_error);
      }
    }
    if (news_pending_) {
      idle_passes = 0;
    } else if (until_idle && !failing && ++idle_passes >= 2) {
      break;
    }
    env_->Sleep(std::chrono::milliseconds(config_.engine.poll_interval_ms));
  }
  if (tty)
    std::fprintf(stderr, "\rsynced %lld changes%30s\n", static_cast<long long>(synced_changes_),
                 "");
  for (Endpoint& ep : endpoints_) AckCaptured(ep, true);
  return Status::Ok();
}

Result<int64_t> Engine::DeadLetterCount() {
  int64_t n = 0;
  for (const Endpoint& ep : endpoints_) {
    DUPLEX_ASSIGN_OR_RETURN(int64_t c, store_->CountDeadLetters(ep.name));
    n += c;
  }
  return n;
}

Result<std::vector<std::pair<std::string, std::vector<std::string>>>> Engine::Preflight() {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (Endpoint& ep : endpoints_) {
    DUPLEX_ASSIGN_OR_RETURN(std::vector<std::string> problems, ep.connector->Preflight());
    out.emplace_back(ep.name, std::move(problems));
  }
  return out;
}

Result<nlohmann::json> Engine::StatusJson() {
  nlohmann::json eps = nlohmann::json::array();
  for (Endpoint& ep : endpoints_) {
    DUPLEX_ASSIGN_OR_RETURN(EndpointProgress p, store_->Progress(ep.name));
    DUPLEX_ASSIGN_OR_RETURN(Counters c, store_->GetCounters(ep.name));
    DUPLEX_ASSIGN_OR_RETURN(int64_t outbox, store_->OutboxRows(ep.name));
    DUPLEX_ASSIGN_OR_RETURN(int64_t dead, store_->CountDeadLetters(ep.name));
    Result<int64_t> backlog = ep.connector->Backlog(p.capture);
    nlohmann::json warnings = nlohmann::json::array();
    if (Result<std::vector<std::string>> w = ep.connector->Warnings(); w.ok()) {
      for (std::string& text : *w) warnings.push_back(std::move(text));
    }
    eps.push_back({{"name", ep.name},
                   {"position", p.capture},
                   {"capture_backlog", backlog.ok() ? nlohmann::json(*backlog) : nullptr},
                   {"apply_backlog", outbox},
                   {"captured", c.captured},
                   {"applied", c.applied},
                   {"echoes_skipped", c.echoes},
                   {"rejected_writes", c.rejected},
                   {"dead_letters", dead},
                   {"last_error",
                    p.last_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(p.last_error)},
                   {"warnings", std::move(warnings)}});
  }
  nlohmann::json colls = nlohmann::json::array();
  for (const CollectionModel& m : models_) {
    DUPLEX_ASSIGN_OR_RETURN(int64_t live, store_->CountRecords(m.config->name, true));
    DUPLEX_ASSIGN_OR_RETURN(int64_t all, store_->CountRecords(m.config->name, false));
    DUPLEX_ASSIGN_OR_RETURN(int64_t open, store_->CountOpenConflicts(m.config->name));
    colls.push_back({{"name", m.config->name},
                     {"records", live},
                     {"tombstones", all - live},
                     {"open_conflicts", open}});
  }
  DUPLEX_ASSIGN_OR_RETURN(int64_t journal, store_->JournalBacklog());
  return nlohmann::json{{"endpoints", std::move(eps)},
                        {"collections", std::move(colls)},
                        {"journal_backlog", journal}};
}

}  // namespace duplex
