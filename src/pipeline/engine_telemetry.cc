#include "pipeline/engine_telemetry.h"

#include <algorithm>
#include <optional>

#include "pipeline/endpoint_health.h"
#include "pipeline/reconcile.h"
#include "util/log.h"

namespace duplex {

namespace {

double LagSeconds(const EndpointState& ep, std::chrono::steady_clock::time_point now) {
  if (ep.last_error.empty() && !ep.more) return 0;
  return std::max(0.0, std::chrono::duration<double>(now - ep.caught_up_at).count());
}

}  // namespace

void UpdateTelemetry(EngineState& es) {
  using std::chrono::milliseconds;
  const auto now = es.env->Now();
  if (now - es.last_alert_check < milliseconds(200)) return;
  es.last_alert_check = now;
  ReapAlerts(es.alert_pids);
  for (EndpointState& ep : es.endpoints) {
    EndpointTelemetry& t = es.telemetry.endpoints[ep.index];
    // A busy database for a moment is an everyday thing (an application holds its write
    // lock), not an unreachable endpoint.
    t.stopped = !ep.stopped.ok();
    t.connected =
        !t.stopped && (ep.last_error.empty() || now - ep.failing_since <= kTransientFailure);
    t.last_error = ep.last_error;
    t.lag_seconds = LagSeconds(ep, now);
    t.unreachable_seconds =
        ep.last_error.empty() ? 0 : std::chrono::duration<double>(now - ep.failing_since).count();
    std::optional<AlertEvent> e =
        es.alerts.Update(ep.name, t.lag_seconds, t.unreachable_seconds, ep.last_error, t.stopped);
    t.alert = es.alerts.Active(ep.name);
    t.alerting = !t.alert.empty();
    if (!e) continue;
    if (e->firing) {
      spdlog::warn("alert endpoint={} reason={}: {}", e->endpoint, e->reason, e->message);
    } else {
      spdlog::info("alert cleared endpoint={} reason={}", e->endpoint, e->reason);
    }
    if (!es.config.engine.alert_command.empty()) {
      pid_t pid = RunAlertCommand(es.config.engine.alert_command, *e);
      if (pid > 0) {
        es.alert_pids.push_back(pid);
      } else {
        spdlog::error("alert_command could not be started");
      }
    }
  }
  if (!es.hub) return;
  if (es.last_status == std::chrono::steady_clock::time_point{} ||
      now - es.last_status > milliseconds(2000)) {
    es.last_status = now;
    Result<nlohmann::json> status = StatusJson(es);
    if (status.ok()) {
      es.telemetry.status = std::move(status).value();
      es.telemetry.journal_backlog = es.telemetry.status.value("journal_backlog", int64_t{-1});
      for (const nlohmann::json& j : es.telemetry.status["endpoints"]) {
        for (EndpointTelemetry& t : es.telemetry.endpoints) {
          if (t.name != j.value("name", "")) continue;
          t.dead_letters = j.value("dead_letters", int64_t{-1});
          t.apply_backlog = j.value("apply_backlog", int64_t{-1});
          t.capture_backlog =
              j["capture_backlog"].is_number() ? j["capture_backlog"].get<int64_t>() : int64_t{-1};
        }
      }
    }
  }
  if (now - es.last_sample >= milliseconds(2000)) {
    es.last_sample = now;
    HistorySample sample;
    sample.wall_ms = es.env->WallMs();
    for (const EndpointTelemetry& t : es.telemetry.endpoints) {
      int64_t captured = 0, applied = 0;
      for (const auto& [k, n] : es.telemetry.captured) captured += k.first == t.name ? n : 0;
      for (const auto& [k, n] : es.telemetry.applied) applied += k.first == t.name ? n : 0;
      sample.endpoints[t.name] = {captured, applied, t.lag_seconds};
    }
    es.telemetry.history.push_back(std::move(sample));
    // 10 minutes at one sample every 2 s.
    if (es.telemetry.history.size() > 300) es.telemetry.history.erase(es.telemetry.history.begin());
  }
  if (now - es.last_publish >= milliseconds(500)) {
    es.last_publish = now;
    es.telemetry.wall_ms = es.env->WallMs();
    es.hub->Publish(std::make_shared<const TelemetrySnapshot>(es.telemetry));
  }
}

Result<nlohmann::json> StatusJson(EngineState& es) {
  nlohmann::json eps = nlohmann::json::array();
  for (EndpointState& ep : es.endpoints) {
    DUPLEX_ASSIGN_OR_RETURN(EndpointProgress p, es.store->Progress(ep.name));
    DUPLEX_ASSIGN_OR_RETURN(Counters c, es.store->GetCounters(ep.name));
    DUPLEX_ASSIGN_OR_RETURN(int64_t outbox, es.store->OutboxRows(ep.name));
    DUPLEX_ASSIGN_OR_RETURN(int64_t dead, es.store->CountDeadLetters(ep.name));
    // A connector that cannot count what it has not captured yet says -1 (a Salesforce org):
    // unknown is null in the JSON, as when the endpoint cannot be reached.
    Result<int64_t> backlog = ep.connector->Backlog(p.capture);
    const bool backlog_known = backlog.ok() && *backlog >= 0;
    nlohmann::json warnings = nlohmann::json::array();
    if (Result<std::vector<std::string>> w = ep.connector->Warnings(); w.ok()) {
      for (std::string& text : *w) warnings.push_back(std::move(text));
    }
    eps.push_back({{"name", ep.name},
                   {"position", ep.connector->DescribePosition(p.capture)},
                   {"capture_backlog", backlog_known ? nlohmann::json(*backlog) : nullptr},
                   {"apply_backlog", outbox},
                   {"captured", c.captured},
                   {"applied", c.applied},
                   {"echoes_skipped", c.echoes},
                   {"rejected_writes", c.rejected},
                   {"dead_letters", dead},
                   {"last_error",
                    p.last_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(p.last_error)},
                   // By this process or the one that recorded the error (endpoint_health.h).
                   {"stopped", p.last_error.rfind(kStoppedPrefix, 0) == 0},
                   {"warnings", std::move(warnings)}});
  }
  nlohmann::json colls = nlohmann::json::array();
  for (const CollectionModel& m : es.models) {
    DUPLEX_ASSIGN_OR_RETURN(int64_t live, es.store->CountRecords(m.config->name, true));
    DUPLEX_ASSIGN_OR_RETURN(int64_t all, es.store->CountRecords(m.config->name, false));
    DUPLEX_ASSIGN_OR_RETURN(int64_t open, es.store->CountOpenConflicts(m.config->name));
    colls.push_back({{"name", m.config->name},
                     {"records", live},
                     {"tombstones", all - live},
                     {"open_conflicts", open}});
  }
  DUPLEX_ASSIGN_OR_RETURN(int64_t journal, es.store->JournalBacklog());
  DUPLEX_ASSIGN_OR_RETURN(nlohmann::json last_reconcile, LastReconcile(es));
  return nlohmann::json{{"endpoints", std::move(eps)},
                        {"collections", std::move(colls)},
                        {"journal_backlog", journal},
                        {"last_reconcile", std::move(last_reconcile)}};
}

}  // namespace duplex
