#include "pipeline/engine.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "connectors/registry.h"
#include "util/json_value.h"
#include "util/log.h"

namespace duplex {

namespace {

// SQLite's type affinity classes, reduced to what can clash: numbers against text. A column
// without a declared type (or BLOB) holds anything.
std::string AffinityClass(std::string type) {
  std::transform(type.begin(), type.end(), type.begin(), ::toupper);
  if (type.find("INT") != std::string::npos) return "numeric";
  if (type.find("CHAR") != std::string::npos || type.find("CLOB") != std::string::npos ||
      type.find("TEXT") != std::string::npos) {
    return "text";
  }
  if (type.empty() || type.find("BLOB") != std::string::npos) return "any";
  return "numeric";  // REAL, FLOAT, DOUBLE, NUMERIC, DECIMAL, BOOLEAN, DATE...
}

std::string Where(const Config& config, int line) {
  return config.path + (line > 0 ? ":" + std::to_string(line) : std::string());
}

}  // namespace

Engine::Engine(const Config& config, std::unique_ptr<StateStore> store, Env* env)
    : config_(config), store_(std::move(store)), env_(env ? env : Env::Default()) {}

Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::Open(const Config& config, bool create_state) {
  std::map<std::string, std::unique_ptr<Connector>> connectors;
  for (const EndpointConfig& ec : config.endpoints) {
    DUPLEX_ASSIGN_OR_RETURN(connectors[ec.name], MakeConnector(ec));
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
    ep.acked = 0;
    ep.watermark = p.watermark;
    ep.resolved = p.resolved;
    ep.last_error = p.last_error;
    engine->endpoints_.push_back(std::move(ep));
  }
  DUPLEX_RETURN_IF_ERROR(engine->CheckSchema());
  return engine;
}

Engine::Endpoint* Engine::Find(const std::string& name) {
  for (Endpoint& ep : endpoints_) {
    if (ep.name == name) return &ep;
  }
  return nullptr;
}

Status Engine::CheckSchema() {
  std::map<std::string, std::vector<CollectionBinding>> bindings;
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
      for (const ColumnInfo& col : info.columns) {
        auto it = column_to_field.find(col.name);
        const std::string field = it == column_to_field.end() ? col.name : it->second;
        columns[field][ce.endpoint] = col.name;
        types[field][ce.endpoint] = col.type;
        all_columns[ce.endpoint].push_back(col.name);
        if (col.pk > 0) pk.insert(field);
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
  for (Endpoint& ep : endpoints_) {
    DUPLEX_RETURN_IF_ERROR(ep.connector->Bind(bindings[ep.name]));
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
  const bool lasting = !st.IsRetriable() || now - ep.failing_since > std::chrono::seconds(2);
  if (lasting && (msg != ep.last_error || !ep.warned)) {
    spdlog::warn("endpoint={} stage={} error=\"{}\" (retrying)", ep.name, stage, st.message());
    ep.warned = true;
  }
  if (msg != ep.last_error) (void)store_->SetLastError(ep.name, msg);
  ep.last_error = msg;
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
    if (!changed) return false;
    // The poll has consumed the news: if the capture below fails, the retry must capture
    // without polling first (found by the simulation, seed 51: a change stuck until the next).
    ep.more = true;
  }
  DUPLEX_ASSIGN_OR_RETURN(ChangeBatch batch,
                          ep.connector->Capture(ep.capture, config_.engine.batch_rows));
  ep.more = batch.changes.size() >= config_.engine.batch_rows;
  // A connector may deliver again what it delivered before (a stream resent from an earlier
  // point after a reconnect, a poll with an overlap window): changes at or before the capture
  // position are in the journal already, and merging one twice would bring its old value back
  // over newer ones (found by the simulation, seed 79).
  std::erase_if(batch.changes, [&](const Change& c) { return c.position <= ep.capture; });
  if (batch.end <= ep.capture) return false;
  Counters counters;
  for (const Change& c : batch.changes) {
    if (c.op == Op::kMarker) {
      ++counters.echoes;
    } else if (c.op != Op::kRejected) {
      ++counters.captured;
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
  }
}

Result<PlanContext> Engine::NewPlanContext() {
  DUPLEX_ASSIGN_OR_RETURN(int64_t first,
                          store_->AllocateApplyIds(static_cast<int>(endpoints_.size())));
  PlanContext ctx;
  for (const Endpoint& ep : endpoints_) {
    ctx.apply_ids[ep.name] = first++;
    ctx.seen[ep.name] = ep.resolved;
  }
  return ctx;
}

Status Engine::StoreOutput(ResolveOutput& out, const PlanContext& ctx) {
  const double now = env_->WallMs();
  for (auto& [target, ops] : out.writes) {
    if (ops.empty()) continue;
    ApplyBatch batch{ctx.apply_ids.at(target), std::move(ops)};
    DUPLEX_RETURN_IF_ERROR(store_->AddOutbox(target, batch));
    // Like fresh journal entries: kept decoded for the applier, a few at most (P9).
    std::map<int64_t, ApplyBatch>& cache = fresh_outbox_[target];
    if (cache.size() < kMaxFreshBatches) cache.emplace(batch.id, std::move(batch));
  }
  for (const ConflictRecord& c : out.conflicts) {
    DUPLEX_ASSIGN_OR_RETURN(int64_t id, store_->AddConflict(c, now));
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
  std::map<std::string, std::map<std::string, RecordState>> states;
  for (const auto& [collection, ks] : keys) {
    DUPLEX_RETURN_IF_ERROR(store_->LoadRecords(collection, ks, states[collection]));
  }
  DUPLEX_ASSIGN_OR_RETURN(PlanContext ctx, NewPlanContext());
  ResolveOutput out;
  int64_t watermark = ep->watermark;
  for (size_t i = 0; i < entry.batch.changes.size(); ++i) {
    const Change& c = entry.batch.changes[i];
    // Writes planned from here on have seen the endpoint's stream up to this change.
    ctx.seen[ep->name] = c.position;
    if (c.op == Op::kMarker) {
      watermark = std::max(watermark, c.apply_id);
      continue;
    }
    if (key_texts[i].empty()) continue;
    RecordState& state = states[c.collection][key_texts[i]];
    if (c.op == Op::kRejected) {
      resolver_->Correct(c, ep->name, ctx, state, out);
    } else {
      resolver_->Merge(c, ep->name, watermark, ctx, state, out);
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
      resolver_->ResolveManual(c.collection, c.field, c.resolution, env_->WallMs(), ctx, it->second,
                               out);
      DUPLEX_RETURN_IF_ERROR(store_->SaveRecord(c.collection, c.key_text, it->second));
    }
    DUPLEX_RETURN_IF_ERROR(StoreOutput(out, ctx));
    DUPLEX_RETURN_IF_ERROR(store_->MarkPropagated(c.id));
    DUPLEX_RETURN_IF_ERROR(txn.Commit());
    spdlog::info("conflict id={} collection={} key={} field={} resolved ({}): propagating {}", c.id,
                 c.collection, c.key_text, c.field, c.status, ValueToDisplay(c.resolution));
  }
  return !rows.empty();
}

Result<bool> Engine::ApplyTo(Endpoint& ep) {
  DUPLEX_ASSIGN_OR_RETURN(
      std::vector<ApplyBatch> batches,
      store_->ReadOutbox(ep.name, config_.engine.batch_rows, &fresh_outbox_[ep.name]));
  if (batches.empty()) return false;
  Result<ApplyResult> result = ep.connector->Apply(batches);
  if (!result.ok()) {
    // Only rows the target refuses (constraint, type) are parked; anything else (busy,
    // unreachable, disk) is the endpoint's trouble and is retried.
    if (!result.status().IsInvalidArgument()) return result.status();
    // Write row by row, park the refused rows with their reason, let the rest flow.
    result = ep.connector->Apply(batches, /*isolate_rows=*/true);
    if (!result.ok()) {
      if (!result.status().IsInvalidArgument()) return result.status();
      // Not even row by row: park the batches whole.
      std::string reason = result.status().message();
      result = ApplyResult{};
      for (const ApplyBatch& b : batches) result->failed.push_back(FailedOp{b.id, {}, reason});
    }
  }
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, store_->Begin());
  for (const FailedOp& f : result->failed) {
    ApplyBatch parked{f.batch_id, {f.op}};
    if (f.op.collection.empty()) {  // a whole batch
      for (const ApplyBatch& b : batches) {
        if (b.id == f.batch_id) parked = b;
      }
    }
    spdlog::error("endpoint={} collection={} key={} parked as dead letter: {}", ep.name,
                  f.op.collection, f.op.key.dump(), f.reason);
    DUPLEX_RETURN_IF_ERROR(store_->AddDeadLetter(ep.name, parked, f.reason, env_->WallMs()));
  }
  DUPLEX_RETURN_IF_ERROR(store_->DeleteOutbox(ep.name, batches.back().id));
  Counters counters;
  counters.applied = static_cast<int64_t>(result->applied);
  counters.rejected = static_cast<int64_t>(result->rejected);
  counters.dead_letters = static_cast<int64_t>(result->failed.size());
  DUPLEX_RETURN_IF_ERROR(store_->AddCounters(ep.name, counters));
  DUPLEX_RETURN_IF_ERROR(txn.Commit());
  return true;
}

Result<bool> Engine::Step() {
  bool moved = false;
  auto now = env_->Now();
  if (now - last_resolution_check_ > std::chrono::milliseconds(200)) {
    last_resolution_check_ = now;
    Result<bool> resolved = PropagateResolutions();
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
  }
  DUPLEX_ASSIGN_OR_RETURN(bool resolved, ResolveJournal());
  moved |= resolved;
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    if (failed[i]) continue;
    Endpoint& ep = endpoints_[i];
    Result<bool> r = ApplyTo(ep);
    if (!r.ok()) {
      MarkFailure(ep, r.status(), "apply");
      continue;
    }
    MarkSuccess(ep);
    moved |= *r;
    AckCaptured(ep, false);
  }
  return moved;
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
      double secs = std::chrono::duration<double>(now - started).count();
      int64_t backlog = 0;
      if (Result<int64_t> b = store_->JournalBacklog(); b.ok()) backlog = *b;
      std::fprintf(stderr, "\rsynced %lld changes (%.0f/s), %lld in the journal   ",
                   static_cast<long long>(synced_changes_), synced_changes_ / secs,
                   static_cast<long long>(backlog));
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
    if (until_idle && !failing && ++idle_passes >= 2) break;
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

Result<nlohmann::json> Engine::StatusJson() {
  nlohmann::json eps = nlohmann::json::array();
  for (Endpoint& ep : endpoints_) {
    DUPLEX_ASSIGN_OR_RETURN(EndpointProgress p, store_->Progress(ep.name));
    DUPLEX_ASSIGN_OR_RETURN(Counters c, store_->GetCounters(ep.name));
    DUPLEX_ASSIGN_OR_RETURN(int64_t outbox, store_->OutboxRows(ep.name));
    DUPLEX_ASSIGN_OR_RETURN(int64_t dead, store_->CountDeadLetters(ep.name));
    Result<int64_t> backlog = ep.connector->Backlog(p.capture);
    eps.push_back({{"name", ep.name},
                   {"position", p.capture},
                   {"capture_backlog", backlog.ok() ? nlohmann::json(*backlog) : nullptr},
                   {"apply_backlog", outbox},
                   {"captured", c.captured},
                   {"applied", c.applied},
                   {"echoes_skipped", c.echoes},
                   {"rejected_writes", c.rejected},
                   {"dead_letters", dead},
                   {"last_error", p.last_error.empty() ? nlohmann::json(nullptr)
                                                       : nlohmann::json(p.last_error)}});
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
