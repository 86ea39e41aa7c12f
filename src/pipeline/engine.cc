// The scheduler (docs/DESIGN.md §2): opens the endpoints and binds the schema, then runs the
// stages in one thread, pass after pass. What each stage does is in its own file, over the
// shared EngineState (engine_state.h).
#include "pipeline/engine.h"

#include <filesystem>

#include "connectors/registry.h"
#include "pipeline/apply.h"
#include "pipeline/capture.h"
#include "pipeline/dead_letters.h"
#include "pipeline/endpoint_health.h"
#include "pipeline/engine_state.h"
#include "pipeline/engine_telemetry.h"
#include "pipeline/reconcile.h"
#include "pipeline/resolve.h"
#include "util/log.h"

namespace duplex {

namespace {

// Binds the sync model (schema_binding.h) over the endpoints that are open, and hands it to the
// resolver, the planner and their connectors. The model is bound from a copy of the config
// without the endpoints not open yet (EngineState::bound; a collection left with none is
// left out), so the open endpoints sync among themselves while one is down at start (P8).
Status BindModel(EngineState& es) {
  auto bound = std::make_unique<Config>(es.config);
  auto closed = [&](const std::string& endpoint) {
    const EndpointState* ep = es.Find(endpoint);
    return ep != nullptr && !ep->open;
  };
  for (CollectionConfig& cc : bound->collections) {
    std::erase_if(cc.endpoints, [&](const CollectionEndpoint& ce) { return closed(ce.endpoint); });
  }
  std::erase_if(bound->collections,
                [](const CollectionConfig& cc) { return cc.endpoints.empty(); });
  DUPLEX_ASSIGN_OR_RETURN(SyncModel sync, BindSchema(*bound, [&](const std::string& endpoint,
                                                                 const std::string& table) {
                            return es.Find(endpoint)->connector->Describe(table);
                          }));
  for (EndpointState& ep : es.endpoints) {
    if (ep.open) DUPLEX_RETURN_IF_ERROR(ep.connector->Bind(sync.bindings[ep.name]));
  }
  es.models = std::move(sync.models);
  es.schema = std::move(sync.report);
  std::map<std::string, std::vector<std::string>> key_fields;
  for (const CollectionModel& m : es.models) key_fields[m.config->name] = m.config->key;
  es.planner = std::make_unique<Planner>(std::move(sync.references), std::move(key_fields));
  // The parked records are named by the planner (RecordOf): named again by the new one.
  for (EndpointState& ep : es.endpoints) ep.parked_version = {-1, -1};
  es.parent_collections.clear();
  for (const Reference& r : es.planner->references()) es.parent_collections.insert(r.parent);
  es.resolver = std::make_unique<Resolver>(es.models);
  es.bound = std::move(bound);  // after the models that point into it were replaced
  es.ref_index_ready = false;   // the references may have changed
  // Every (endpoint, collection) pair has its counters from the start, at 0.
  for (const CollectionModel& m : es.models) {
    for (const std::string& ep : m.endpoints) {
      es.telemetry.captured.try_emplace({ep, m.config->name}, 0);
      es.telemetry.applied.try_emplace({ep, m.config->name}, 0);
    }
  }
  return Status::Ok();
}

// An endpoint that was unreachable when the engine opened it: opens it and binds the model
// with it. The writes of what changed meanwhile were not planned for it (it was not in the
// model), so once its capture has caught up its rows are read back (rescan, as for an endpoint
// restored from a backup) and brought to the agreed values. Unavailable while it is still down;
// InvalidArgument for a config error its tables reveal (a missing table or column).
Status OpenLate(EngineState& es, EndpointState& ep) {
  DUPLEX_RETURN_IF_ERROR(ep.connector->Open());
  ep.open = true;
  Status st = BindModel(es);
  if (!st.ok()) {
    ep.open = false;  // the model bound without it stays in place
    return st;
  }
  spdlog::info("endpoint={} reachable: binding it, then reading its rows back to catch up",
               ep.name);
  ep.rescan = true;
  ep.more = true;
  return Status::Ok();
}

}  // namespace

Engine::Engine(std::unique_ptr<EngineState> es) : es_(std::move(es)) {}

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
  auto state = std::make_unique<EngineState>(config, std::move(store), env);
  EngineState& es = *state;
  for (const EndpointConfig& ec : es.config.endpoints) {
    auto it = connectors.find(ec.name);
    if (it == connectors.end() || !it->second) {
      return Status::InvalidArgument("no connector for endpoint '" + ec.name + "'");
    }
    std::unique_ptr<Connector> conn = std::move(it->second);
    // Unreachable now (Unavailable) is an outage like one that begins later: the endpoint is
    // left out of the model until it can be opened (OpenLate). Anything else (a file that is no
    // database, bad settings) fails here.
    Status opened = conn->Open();
    if (!opened.ok() && !opened.IsRetriable()) return opened;
    EndpointState ep;
    ep.name = ec.name;
    ep.connector = std::move(conn);
    ep.caps = ep.connector->capabilities();
    ep.open = opened.ok();
    DUPLEX_ASSIGN_OR_RETURN(EndpointProgress p, es.store->Progress(ec.name));
    ep.capture = p.capture;
    ep.acked = p.acked;
    ep.guard_pos = p.guard_pos;
    ep.guard_ms = p.guard_ms;
    ep.rescan = p.rescan;
    ep.watermark = p.watermark;
    ep.resolved = p.resolved;
    ep.last_error = p.last_error;
    if (!ep.open) {
      // In memory only: commands that only look write nothing. `run` records it (Install).
      ep.last_error = "open: " + opened.message();
      ep.failing_since = es.env->Now();
      ep.open_error = opened;
    }
    ep.index = es.endpoints.size();
    ep.caught_up_at = es.env->Now();
    EndpointTelemetry t;
    t.name = ec.name;
    es.telemetry.endpoints.push_back(std::move(t));
    es.endpoints.push_back(std::move(ep));
  }
  // The sync model (schema_binding.h), handed to the resolver, the planner and the connectors.
  DUPLEX_RETURN_IF_ERROR(BindModel(es));
  return std::unique_ptr<Engine>(new Engine(std::move(state)));
}

const Config& Engine::config() const { return es_->config; }
const SchemaReport& Engine::schema() const { return es_->schema; }
StateStore& Engine::store() { return *es_->store; }
void Engine::SetTelemetry(TelemetryHub* hub) { es_->hub = hub; }
int64_t Engine::synced_changes() const { return es_->synced_changes; }
const std::map<std::pair<std::string, std::string>, int64_t>& Engine::loaded_rows() const {
  return es_->loaded_rows;
}

Status Engine::Install() {
  for (EndpointState& ep : es_->endpoints) {
    if (!ep.open) {
      // Down since before the engine opened it. What is resolved meanwhile is not planned for
      // it: its rows are read back once it is open, even if this process ends before then.
      DUPLEX_RETURN_IF_ERROR(es_->store->MarkRescan(ep.name));
      ep.last_error.clear();  // recorded now, for `duplex status` and the telemetry
      MarkFailure(*es_, ep, ep.open_error, "open");
      continue;
    }
    Status st = InstallOn(*es_, ep);
    if (st.ok()) continue;
    // An endpoint that is busy or unreachable now is installed later by Step (P8).
    if (!st.IsRetriable()) return st;
    MarkFailure(*es_, ep, st, "install");
  }
  return Status::Ok();
}

Status Engine::Uninstall(const std::string& endpoint) {
  for (EndpointState& ep : es_->endpoints) {
    if (!endpoint.empty() && ep.name != endpoint) continue;
    DUPLEX_RETURN_IF_ERROR(ep.connector->Uninstall());
  }
  return Status::Ok();
}

Result<bool> Engine::IsInstalled() {
  for (EndpointState& ep : es_->endpoints) {
    DUPLEX_ASSIGN_OR_RETURN(bool installed, ep.connector->IsInstalled());
    if (!installed) return false;
  }
  return true;
}

std::vector<std::pair<std::string, std::string>> Engine::NotInstalled() {
  std::vector<std::pair<std::string, std::string>> out;
  for (EndpointState& ep : es_->endpoints) {
    Result<bool> installed = ep.connector->IsInstalled();
    if (installed.ok() && *installed) continue;
    std::string why = !ep.last_error.empty() ? ep.last_error
                      : !installed.ok()      ? installed.status().message()
                                             : std::string("not installed");
    out.emplace_back(ep.name, std::move(why));
  }
  return out;
}

Result<bool> Engine::Step() {
  EngineState& es = *es_;
  bool moved = false;
  es.news_pending = false;
  auto now = es.env->Now();
  if (now - es.last_resolution_check > std::chrono::milliseconds(200)) {
    es.last_resolution_check = now;
    Result<bool> resolved = PropagateResolutions(es);
    if (resolved.ok()) {
      moved |= *resolved;
      resolved = RetryDeadLetters(es);
    }
    if (!resolved.ok()) {
      es.fresh_outbox.clear();  // as in ResolveJournal: rolled-back apply ids
      return resolved.status();
    }
    moved |= *resolved;
  }
  // An endpoint that fails (unreachable, locked, file gone) only stops its own capture and
  // apply, retried with backoff; the others go on (P8).
  std::vector<bool> failed(es.endpoints.size(), false);
  for (size_t i = 0; i < es.endpoints.size(); ++i) {
    EndpointState& ep = es.endpoints[i];
    if (!ep.last_error.empty() && now < ep.retry_at) {
      failed[i] = true;
      continue;
    }
    if (!ep.open) {
      Status st = OpenLate(es, ep);
      if (!st.ok()) {
        if (!st.IsRetriable()) return st.WithContext("endpoint '" + ep.name + "'");
        MarkFailure(es, ep, st, "open");
        failed[i] = true;
        continue;
      }
    }
    if (!ep.installed) {
      Status st = InstallOn(es, ep);
      if (!st.ok()) {
        if (!st.IsRetriable()) return st.WithContext("endpoint '" + ep.name + "': install");
        MarkFailure(es, ep, st, "install");
        failed[i] = true;
        continue;
      }
      // A new endpoint has a progress row only now (MarkRescan is a no-op before).
      if (ep.rescan) DUPLEX_RETURN_IF_ERROR(es.store->MarkRescan(ep.name));
    }
    // Unavailable passes (backoff); anything else would fail again the same way (status.h).
    auto stage_failed = [&](const Status& st, const char* stage) {
      if (st.IsRetriable()) {
        MarkFailure(es, ep, st, stage);
      } else {
        MarkStopped(es, ep, st, stage);
      }
      failed[i] = true;
    };
    if (ep.caps.apply_hold.count() > 0 && ep.held_since && !ep.more) {
      // Writes held for this endpoint (Capabilities::apply_hold) go as soon as its capture has
      // news, before that capture: the connector may read with the same call.
      Result<bool> news = PollNow(es, ep);
      if (!news.ok()) {
        stage_failed(news.status(), "capture");
        continue;
      }
      if (*news) {
        Result<bool> applied = ApplyTo(es, ep);
        if (!applied.ok()) {
          es.fresh_outbox.clear();  // as in the apply stage below
          MarkFailure(es, ep, applied.status(), "apply");
          failed[i] = true;
          continue;
        }
        moved |= *applied;
      }
    }
    Result<bool> r = CaptureFrom(es, ep);
    if (!r.ok()) {
      stage_failed(r.status(), "capture");
      continue;
    }
    moved |= *r;
    if (ep.rescan && !ep.more) {
      // Restored from a backup, and what changed there since is captured: read its rows back.
      Status st = Rescan(es, ep);
      if (!st.ok()) {
        stage_failed(st, "rescan");
        continue;
      }
      moved = true;
    }
  }
  DUPLEX_ASSIGN_OR_RETURN(bool resolved, ResolveJournal(es));
  moved |= resolved;
  for (size_t i = 0; i < es.endpoints.size(); ++i) {
    if (failed[i]) continue;
    EndpointState& ep = es.endpoints[i];
    Result<bool> r = ApplyTo(es, ep);
    if (!r.ok()) {
      // Refused writes planned again in a transaction that rolled back: their apply ids will
      // be handed out again (as in ResolveJournal).
      es.fresh_outbox.clear();
      MarkFailure(es, ep, r.status(), "apply");
      continue;
    }
    MarkSuccess(es, ep);
    moved |= *r;
    AckCaptured(es, ep, false);
  }
  UpdateTelemetry(es);
  return moved;
}

Status Engine::Run(const std::atomic<bool>& stop, bool until_idle,
                   std::chrono::milliseconds unavailable_timeout, RunObserver* observer) {
  EngineState& es = *es_;
  if (observer) observer->Started(es.env->Now());
  int idle_passes = 0;
  while (!stop.load()) {
    DUPLEX_ASSIGN_OR_RETURN(bool moved, Step());
    auto now = es.env->Now();
    if (observer) observer->Passed(now);
    if (moved) {
      idle_passes = 0;
      continue;
    }
    bool failing = false;
    const EndpointState* stopped = nullptr;
    for (const EndpointState& ep : es.endpoints) {
      if (ep.last_error.empty()) continue;
      if (!ep.stopped.ok()) {
        stopped = &ep;  // waits kStoppedRetry: the others are synced first
        continue;
      }
      failing = true;
      if (until_idle && now - ep.failing_since > unavailable_timeout) {
        if (observer) observer->GaveUp();
        return Status::Unavailable("endpoint '" + ep.name + "' " + ep.last_error);
      }
    }
    if (!until_idle && !failing && !es.news_pending) {
      // Idle: the background reconcile ([engine] reconcile_every), when due.
      DUPLEX_ASSIGN_OR_RETURN(bool fed, ReconcileIfDue(es));
      if (fed) {
        idle_passes = 0;
        continue;
      }
    }
    if (es.news_pending) {
      idle_passes = 0;
    } else if (until_idle && !failing && ++idle_passes >= 2) {
      if (stopped) {
        if (observer) observer->GaveUp();
        return stopped->stopped.WithContext("endpoint '" + stopped->name + "' stopped");
      }
      break;
    }
    es.env->Sleep(std::chrono::milliseconds(es.config.engine.poll_interval_ms));
  }
  if (observer) observer->Stopped();
  for (EndpointState& ep : es.endpoints) {
    if (ep.open) AckCaptured(es, ep, true);
  }
  return Status::Ok();
}

int64_t Engine::Backlog() {
  int64_t left = 0;
  if (Result<int64_t> b = es_->store->JournalBacklog(); b.ok()) left += *b;
  for (EndpointState& ep : es_->endpoints) {
    if (!ep.last_error.empty()) continue;
    // -1: the connector cannot tell (Connector::Backlog); it adds nothing known.
    if (Result<int64_t> b = ep.connector->Backlog(ep.capture); b.ok() && *b > 0) left += *b;
  }
  return left;
}

Result<int64_t> Engine::DeadLetterCount() {
  int64_t n = 0;
  for (const EndpointState& ep : es_->endpoints) {
    DUPLEX_ASSIGN_OR_RETURN(int64_t c, es_->store->CountDeadLetters(ep.name));
    n += c;
  }
  return n;
}

Result<std::vector<std::pair<std::string, std::vector<std::string>>>> Engine::Preflight() {
  std::vector<std::pair<std::string, std::vector<std::string>>> out;
  for (EndpointState& ep : es_->endpoints) {
    if (!ep.open) return ep.open_error;  // `check --install` needs every endpoint
    DUPLEX_ASSIGN_OR_RETURN(std::vector<std::string> problems, ep.connector->Preflight());
    out.emplace_back(ep.name, std::move(problems));
  }
  return out;
}

Result<nlohmann::json> Engine::StatusJson() { return duplex::StatusJson(*es_); }

Result<ReconcileReport> Engine::CompareEndpoints(const ReconcileOptions& o) {
  return duplex::CompareEndpoints(*es_, o);
}

Result<int64_t> Engine::FeedRepairs(const ReconcileReport& report, const ReconcileOptions& o) {
  return duplex::FeedRepairs(*es_, report, o);
}

Status Engine::RecordReconcile(const ReconcileReport& report, int64_t repaired) {
  return duplex::RecordReconcile(*es_, report, repaired);
}

}  // namespace duplex
