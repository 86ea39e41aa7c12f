// `duplex run`, `duplex status` and `duplex uninstall`.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "admin/server.h"
#include "cli/common.h"
#include "cli/progress.h"
#include "config/config.h"
#include "pipeline/engine.h"
#include "util/log.h"

namespace duplex::cli {

int Run(const Options& o) {
  int rc = kExitOk;
  std::unique_ptr<Engine> engine = OpenEngine(o, /*create_state=*/true, &rc);
  if (!engine) return rc;
  StateLock lock;
  duplex::Status st = lock.Take(engine->config().engine.state_path, "run");
  if (!st.ok()) return Fail(st);
  st = engine->Install();
  if (!st.ok()) return Fail(st);
  TelemetryHub hub;
  std::unique_ptr<AdminServer> admin;
  const EngineConfig& ec = engine->config().engine;
  if (!ec.http.empty()) {
    AdminServer::Options ao;
    ao.address = ec.http;
    ao.state_path = ec.state_path;
    if (!ec.http_token_env.empty()) {
      const char* token = std::getenv(ec.http_token_env.c_str());
      if (!token || !*token) {
        return Fail(duplex::Status::InvalidArgument(
            "engine.http_token_env names " + ec.http_token_env +
            ", which is not set in the environment (or empty); export it with the token"));
      }
      ao.token = token;
    }
    Result<std::unique_ptr<AdminServer>> started = AdminServer::Start(ao, hub);
    if (!started.ok()) return Fail(started.status());
    admin = std::move(started).value();
    engine->SetTelemetry(&hub);
    const size_t colon = ec.http.rfind(':');
    spdlog::info("admin server listening on http://{}:{}/ (token {})", ec.http.substr(0, colon),
                 admin->port(), ao.token.empty() ? "off" : "required");
  }
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  spdlog::info("duplex running: config={} until_idle={}", o.config, o.until_idle);
  // A run that ends redraws one progress line on a terminal; otherwise (stderr a pipe or a
  // file, or a run that goes on) progress comes as log lines every few seconds.
  std::unique_ptr<RunObserver> progress;
  if (o.until_idle && isatty(STDERR_FILENO)) {
    progress = std::make_unique<ProgressPrinter>(*engine);
  } else {
    progress = std::make_unique<ProgressLog>(*engine);
  }
  st = engine->Run(g_stop, o.until_idle, std::chrono::seconds(15), progress.get());
  if (admin) admin->Stop();
  engine->SetTelemetry(nullptr);
  if (!st.ok()) return Fail(st);
  Result<int64_t> dead = engine->DeadLetterCount();
  if (!dead.ok()) return Fail(dead.status());
  spdlog::info("duplex stopped{}",
               *dead ? fmt::format(" ({} source transactions parked as dead letters; "
                                   "see `duplex status`)",
                                   *dead)
                     : "");
  if (o.until_idle && *dead > 0) return kExitParked;
  return kExitOk;
}

int Status(const Options& o) {
  int rc = kExitOk;
  std::unique_ptr<Engine> engine = OpenEngine(o, /*create_state=*/false, &rc);
  if (!engine) return rc;
  Result<nlohmann::json> s = engine->StatusJson();
  if (!s.ok()) return Fail(s.status());
  if (o.json) {
    std::printf("%s\n", s->dump(2).c_str());
    return kExitOk;
  }
  std::printf("%-12s %12s %10s %10s %10s %10s %8s %6s  %s\n", "ENDPOINT", "POSITION", "TO-CAPTURE",
              "TO-APPLY", "CAPTURED", "APPLIED", "REJECTED", "DEAD", "LAST ERROR");
  for (const auto& ep : (*s)["endpoints"]) {
    // null: the endpoint cannot count what it has not captured (a Salesforce org, a PostgreSQL
    // slot outside `run`) or cannot be reached now.
    std::string backlog =
        ep["capture_backlog"].is_number() ? ep["capture_backlog"].dump() : "unknown";
    std::printf("%-12s %12s %10s %10lld %10lld %10lld %8lld %6lld  %s\n",
                ep["name"].get<std::string>().c_str(), ep["position"].get<std::string>().c_str(),
                backlog.c_str(), ep["apply_backlog"].get<long long>(),
                ep["captured"].get<long long>(), ep["applied"].get<long long>(),
                ep["rejected_writes"].get<long long>(), ep["dead_letters"].get<long long>(),
                ep["last_error"].is_null() ? "-" : ep["last_error"].get<std::string>().c_str());
  }
  std::printf("\n%-16s %10s %10s %14s\n", "COLLECTION", "RECORDS", "DELETED", "OPEN CONFLICTS");
  for (const auto& c : (*s)["collections"]) {
    std::printf("%-16s %10lld %10lld %14lld\n", c["name"].get<std::string>().c_str(),
                c["records"].get<long long>(), c["tombstones"].get<long long>(),
                c["open_conflicts"].get<long long>());
  }
  std::printf("\njournal backlog: %lld changes\n", (*s)["journal_backlog"].get<long long>());
  if (const nlohmann::json& r = (*s)["last_reconcile"]; r.is_object()) {
    std::printf("last reconcile: %s, %lld rows compared, %lld records differed, %lld repaired\n",
                FormatTime(r.value("at_ms", 0.0)).c_str(), r.value("rows_compared", 0LL),
                r.value("records_differing", 0LL), r.value("repaired", 0LL));
  }
  for (const auto& ep : (*s)["endpoints"]) {
    for (const auto& w : ep["warnings"]) {
      std::printf("warning: endpoint %s: %s\n", ep["name"].get<std::string>().c_str(),
                  w.get<std::string>().c_str());
    }
  }
  return kExitOk;
}

int Uninstall(const Options& o) {
  int rc = kExitOk;
  std::unique_ptr<Engine> engine = OpenEngine(o, /*create_state=*/false, &rc);
  if (!engine) return rc;
  duplex::Status st = engine->Uninstall(o.endpoint);
  if (!st.ok()) return Fail(st);
  std::printf("removed what duplex created (triggers, tables, slots, publications) from %s\n",
              o.endpoint.empty() ? "every endpoint" : ("endpoint " + o.endpoint).c_str());
  return kExitOk;
}

}  // namespace duplex::cli
