#include "cli/commands.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>

#include "admin/server.h"
#include "cli/progress.h"
#include "config/config.h"
#include "connectors/registry.h"
#include "connectors/settings.h"
#include "pipeline/engine.h"
#include "pipeline/operator.h"
#include "pipeline/schema_binding.h"
#include "store/state_store.h"
#include "util/json_value.h"
#include "util/log.h"

namespace duplex::cli {

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

// A bad request (unknown id, conflict no longer open, a side it does not have) is a usage error.
int ExitFor(const duplex::Status& st) {
  return st.IsInvalidArgument() || st.IsNotFound() || st.code() == duplex::Status::Code::kConflict
             ? kExitUsage
             : kExitRuntime;
}

int Fail(const duplex::Status& st) {
  std::fprintf(stderr, "error: %s\n", st.message().c_str());
  return ExitFor(st);
}

std::string FormatTime(double ms) {
  if (ms <= 0) return "-";
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::localtime(&secs));
  return buf;
}

// Opens the engine for a command; prints the error and sets *rc on failure.
std::unique_ptr<Engine> OpenEngine(const Options& o, bool create_state, int* rc) {
  Result<Config> config = LoadConfig(o.config);
  if (!config.ok()) {
    *rc = Fail(config.status());
    return nullptr;
  }
  Result<std::unique_ptr<Engine>> engine = Engine::Open(*config, create_state);
  if (!engine.ok()) {
    *rc = Fail(engine.status());
    return nullptr;
  }
  return std::move(engine).value();
}

// What `duplex check` finds: every endpoint opened, the config bound to its tables
// (BindSchemaAll, pipeline/schema_binding.h) as Engine::Open does, and what each endpoint lacks
// for change capture (Connector::Preflight), without an engine or a state file. It goes on past
// a problem, so that one check lists them all.
struct Looked {
  Config config;
  std::vector<std::pair<std::string, std::unique_ptr<Connector>>> connectors;  // config order
  std::set<std::string> reachable;
  SyncModel model;
  // Each problem found, with the exit code it stands for (ExitFor; a missing prerequisite on
  // a server is a config matter: 2). Printed as found.
  std::vector<std::pair<int, std::string>> problems;

  void Problem(int code, const std::string& message) {
    std::fprintf(stderr, "error: %s\n", message.c_str());
    problems.emplace_back(code, message);
  }
  // The exit code of the whole check: 2 if any problem is in the config, the schema or what a
  // server lacks; 1 if the endpoints are only unreachable; 0 without problems.
  int ExitCode() const {
    int code = kExitOk;
    for (const auto& [c, m] : problems) code = std::max(code, c);
    return code;
  }
  // Whether capture is installed on every endpoint.
  Result<bool> IsInstalled() {
    for (auto& [name, conn] : connectors) {
      DUPLEX_ASSIGN_OR_RETURN(bool installed, conn->IsInstalled());
      if (!installed) return false;
    }
    return true;
  }
};

std::unique_ptr<Looked> Look(const Config& config) {
  auto looked = std::make_unique<Looked>();
  looked->config = config;
  const Config& c = looked->config;  // the model points into it
  std::map<std::string, Connector*> by_name;
  for (const EndpointConfig& ec : c.endpoints) {
    // The type's summary: a path, a schema; never a dsn, which may hold a password.
    const std::string where = ec.settings ? ec.settings->Summary() : std::string();
    Result<std::unique_ptr<Connector>> conn = MakeConnector(ec, c.engine.name);
    duplex::Status st = conn.ok() ? (*conn)->Open() : conn.status();
    if (!st.ok()) {
      // The message of an unreachable endpoint does not always name it (a file path, a
      // server's words): say which endpoint it is.
      const std::string& m = st.message();
      looked->Problem(ExitFor(st),
                      m.find("endpoint '" + ec.name + "'") != std::string::npos
                          ? m
                          : fmt::format("endpoint '{}' ({} {}): {}", ec.name, ec.type, where, m));
      continue;
    }
    std::printf("endpoint %s (%s %s): reachable\n", ec.name.c_str(), ec.type.c_str(),
                where.c_str());
    looked->reachable.insert(ec.name);
    by_name[ec.name] = conn->get();
    looked->connectors.emplace_back(ec.name, std::move(conn).value());
  }
  // The tables of an unreachable endpoint cannot be described: its problem is already listed.
  const std::string unreachable = "endpoint unreachable (listed above)";
  std::vector<duplex::Status> schema_problems;
  looked->model = BindSchemaAll(
      c,
      [&](const std::string& endpoint, const std::string& table) -> Result<TableInfo> {
        auto it = by_name.find(endpoint);
        if (it == by_name.end()) return duplex::Status::Unavailable(unreachable);
        return it->second->Describe(table);
      },
      &schema_problems);
  for (const duplex::Status& st : schema_problems) {
    if (st.message() == unreachable) continue;
    looked->Problem(ExitFor(st), st.message());
  }
  for (auto& [name, conn] : looked->connectors) {
    if (duplex::Status st = conn->Bind(looked->model.bindings[name]); !st.ok()) {
      looked->Problem(ExitFor(st), st.message());
      continue;
    }
    Result<std::vector<std::string>> lacks = conn->Preflight();
    if (!lacks.ok()) {
      looked->Problem(ExitFor(lacks.status()), lacks.status().message());
      continue;
    }
    for (const std::string& p : *lacks) {
      looked->Problem(kExitUsage, fmt::format("endpoint '{}': {}", name, p));
    }
  }
  return looked;
}

std::unique_ptr<StateStore> OpenStore(const Options& o, int* rc) {
  Result<Config> config = LoadConfig(o.config);
  if (!config.ok()) {
    *rc = Fail(config.status());
    return nullptr;
  }
  Result<std::unique_ptr<StateStore>> store =
      StateStore::Open(config->engine.state_path, /*create=*/false);
  if (!store.ok()) {
    *rc = Fail(store.status());
    return nullptr;
  }
  return std::move(store).value();
}

std::string SideText(const nlohmann::json& side) {
  if (side.value("deleted", false)) return "(deleted)";
  return ValueToDisplay(side.value("value", nlohmann::json()));
}

void PrintConflict(const ConflictRow& c, bool detailed) {
  std::string key = c.key.dump();
  std::string field = c.field.empty() ? "(row)" : c.field;
  if (!detailed) {
    std::string values;
    for (const auto& [ep, side] : c.values.items()) {
      values += (values.empty() ? "" : ", ") + ep + "=" + SideText(side);
    }
    std::printf("%-5lld %-12s %-10s %-10s %-8s %-22s %-9s %s\n", static_cast<long long>(c.id),
                c.collection.c_str(), key.c_str(), field.c_str(), c.policy.c_str(),
                c.status.c_str(), c.winner.empty() ? "-" : c.winner.c_str(), values.c_str());
    return;
  }
  std::printf(
      "conflict %lld\n  collection: %s\n  key:        %s\n  field:      %s\n"
      "  policy:     %s\n  status:     %s%s\n  base:       %s\n",
      static_cast<long long>(c.id), c.collection.c_str(), key.c_str(), field.c_str(),
      c.policy.c_str(), c.status.c_str(), c.pending ? " (propagating)" : "",
      ValueToDisplay(c.base).c_str());
  for (const auto& [ep, side] : c.values.items()) {
    std::printf("  %-10s  %s  (written %s)\n", (ep + ":").c_str(), SideText(side).c_str(),
                FormatTime(side.value("ts", 0.0)).c_str());
  }
  if (!c.winner.empty()) std::printf("  winner:     %s\n", c.winner.c_str());
  if (!c.resolution.is_null()) {
    std::printf("  resolution: %s\n", ValueToDisplay(c.resolution).c_str());
  }
  std::printf("  logged:     %s\n", FormatTime(c.created_at).c_str());
}

}  // namespace

int Init(const Options& o) {
  if (std::filesystem::exists(o.config) && !o.force) {
    std::fprintf(stderr, "error: %s exists; pass --force to overwrite it\n", o.config.c_str());
    return kExitUsage;
  }
  std::ofstream out(o.config, std::ios::trunc);
  out << ExampleConfig();
  if (!out) {
    std::fprintf(stderr, "error: cannot write %s\n", o.config.c_str());
    return kExitRuntime;
  }
  std::printf(
      "wrote %s: edit its endpoints and collections, then run\n  duplex check --config %s\n",
      o.config.c_str(), o.config.c_str());
  return kExitOk;
}

int Check(const Options& o) {
  // The config file stops at its first mistake (the parser's); everything after it, endpoints
  // and schema, is checked whole, every problem listed before the exit.
  Result<Config> config = LoadConfig(o.config);
  if (!config.ok()) return Fail(config.status());
  std::printf("config %s: OK\n", o.config.c_str());
  std::unique_ptr<Looked> looked = Look(*config);
  if (!looked->problems.empty()) {
    const size_t n = looked->problems.size();
    std::fprintf(stderr, "%zu problem%s found (listed above); fix %s and check again\n", n,
                 n == 1 ? "" : "s", n == 1 ? "it" : "them");
    return looked->ExitCode();
  }
  for (const SchemaReport::Collection& c : looked->model.report.collections) {
    const CollectionConfig* cc = c.config;
    std::printf("collection %s: key [%s]\n", c.name.c_str(),
                fmt::format("{}", fmt::join(c.key, ", ")).c_str());
    for (const std::string& f : c.synced) {
      const FieldPolicy& p = cc->PolicyFor(f);
      std::string policy = PolicyName(p.policy);
      if (p.policy == Policy::kPrefer) policy += " " + p.prefer_endpoint;
      std::string columns;
      for (const CollectionEndpoint& ce : cc->endpoints) {
        columns +=
            (columns.empty() ? "" : ", ") + ce.endpoint + "." + ce.table + "." + ce.Column(f);
      }
      std::printf("  synced      %-16s policy %-14s (%s)\n", f.c_str(), policy.c_str(),
                  columns.c_str());
    }
    for (const auto& [ep, cols] : c.left_alone) {
      for (const std::string& col : cols) {
        std::printf("  left alone  %s.%s (not on every endpoint)\n", ep.c_str(), col.c_str());
      }
    }
  }
  if (!o.install) {
    Result<bool> installed = looked->IsInstalled();
    if (!installed.ok()) return Fail(installed.status());
    std::printf("change capture: %s\n",
                *installed
                    ? "installed"
                    : "not installed yet (`duplex run` or `duplex check --install` does it)");
    return kExitOk;
  }
  // --install: the engine installs capture and keeps its state file. Everything checked above
  // is closed first; an endpoint may still go down in between, and is then named.
  looked.reset();
  int rc = kExitOk;
  std::unique_ptr<Engine> engine = OpenEngine(o, /*create_state=*/false, &rc);
  if (!engine) return rc;
  duplex::Status st = engine->Install();
  if (!st.ok()) return Fail(st);
  const std::vector<std::pair<std::string, std::string>> missing = engine->NotInstalled();
  for (const auto& [name, why] : missing) {
    std::fprintf(stderr, "error: endpoint '%s': change capture not installed: %s\n", name.c_str(),
                 why.c_str());
  }
  if (!missing.empty()) {
    std::fprintf(stderr,
                 "change capture is not installed on %zu endpoint%s (busy or unreachable); "
                 "try again\n",
                 missing.size(), missing.size() == 1 ? "" : "s");
    return kExitRuntime;
  }
  std::printf("change capture installed on every endpoint\n");
  return kExitOk;
}

int Run(const Options& o) {
  int rc = kExitOk;
  std::unique_ptr<Engine> engine = OpenEngine(o, /*create_state=*/true, &rc);
  if (!engine) return rc;
  duplex::Status st = engine->Install();
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

int ConflictsList(const Options& o) {
  int rc = kExitOk;
  std::unique_ptr<StateStore> store = OpenStore(o, &rc);
  if (!store) return rc;
  Result<std::vector<ConflictRow>> rows = store->ListConflicts(o.all);
  if (!rows.ok()) return Fail(rows.status());
  if (o.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const ConflictRow& c : *rows) arr.push_back(c.ToJson());
    std::printf("%s\n", arr.dump(2).c_str());
    return kExitOk;
  }
  if (rows->empty()) {
    std::printf(o.all ? "no conflicts logged\n" : "no open conflicts (--all lists the log)\n");
    return kExitOk;
  }
  std::printf("%-5s %-12s %-10s %-10s %-8s %-22s %-9s %s\n", "ID", "COLLECTION", "KEY", "FIELD",
              "POLICY", "STATUS", "WINNER", "VALUES");
  for (const ConflictRow& c : *rows) PrintConflict(c, false);
  return kExitOk;
}

namespace {

// Opens the state store and reads the conflict named by `o.conflict_id`. On failure prints the
// error, sets *rc and returns nullopt.
std::optional<ConflictRow> LoadConflict(const Options& o, std::unique_ptr<StateStore>* store,
                                        int* rc) {
  int64_t id = 0;
  if (!ParseId(o.conflict_id, &id)) {
    std::fprintf(stderr, "error: conflict id must be a positive number, got '%s'\n",
                 o.conflict_id.c_str());
    *rc = kExitUsage;
    return std::nullopt;
  }
  *store = OpenStore(o, rc);
  if (!*store) return std::nullopt;
  Result<ConflictRow> c = (*store)->GetConflict(id);
  if (!c.ok()) {
    *rc = Fail(c.status());
    return std::nullopt;
  }
  return std::move(c).value();
}

}  // namespace

int ConflictsShow(const Options& o) {
  int rc = kExitOk;
  std::unique_ptr<StateStore> store;
  std::optional<ConflictRow> c = LoadConflict(o, &store, &rc);
  if (!c) return rc;
  if (o.json) {
    std::printf("%s\n", c->ToJson().dump(2).c_str());
  } else {
    PrintConflict(*c, true);
  }
  return kExitOk;
}

int ConflictsResolve(const Options& o) {
  int rc = kExitOk;
  std::unique_ptr<StateStore> store;
  std::optional<ConflictRow> c = LoadConflict(o, &store, &rc);
  if (!c) return rc;
  Resolution r;
  r.take = o.take;
  if (o.take.empty()) {
    r.value = nlohmann::json::parse(o.value, nullptr, false);
    if (r.value.is_discarded()) {
      return Fail(duplex::Status::InvalidArgument(
          "--value must be JSON: a string needs quotes, e.g. --value '\"Gold\"'; got " + o.value));
    }
    r.has_value = true;
  }
  double now =
      std::chrono::duration<double, std::milli>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  Result<ConflictRow> done = ResolveConflict(*store, c->id, r, now);
  if (!done.ok()) return Fail(done.status());
  if (o.json) {
    std::printf("%s\n", done->ToJson().dump(2).c_str());
  } else {
    std::printf("conflict %lld resolved: %s = %s; it reaches every endpoint on the next run\n",
                static_cast<long long>(done->id), done->field.c_str(),
                ValueToDisplay(done->resolution).c_str());
  }
  return kExitOk;
}

namespace {

double NowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// How long ago `ms` was, in one unit: "40s", "12m", "5h", "3d".
std::string Age(double ms, double now_ms) {
  if (ms <= 0) return "-";
  const long long secs = std::max(0LL, static_cast<long long>((now_ms - ms) / 1000));
  if (secs < 120) return std::to_string(secs) + "s";
  if (secs < 120 * 60) return std::to_string(secs / 60) + "m";
  if (secs < 48 * 3600) return std::to_string(secs / 3600) + "h";
  return std::to_string(secs / 86400) + "d";
}

// `text` on one line, at most `max` characters; sets *cut if it cut. The cut ("...") is in the
// middle: a target's message names the thing at fault first and the cause last.
std::string OneLine(const std::string& text, size_t max, bool* cut) {
  std::string line = text;
  std::replace_if(
      line.begin(), line.end(), [](char ch) { return ch == '\n' || ch == '\r' || ch == '\t'; },
      ' ');
  if (line.size() <= max) return line;
  *cut = true;
  const size_t head = max / 3;
  return line.substr(0, head) + "..." + line.substr(line.size() - (max - head - 3));
}

const char* OpName(WriteOp op) {
  switch (op) {
    case WriteOp::kInsert:
      return "insert";
    case WriteOp::kUpdate:
      return "update";
    case WriteOp::kDelete:
      return "delete";
  }
  return "?";
}

// The distinct collections of the dead letter's writes, in order, comma-separated.
std::string Collections(const DeadLetterRow& d) {
  std::vector<std::string> seen;
  for (const RowOp& op : d.batch.ops) {
    if (std::find(seen.begin(), seen.end(), op.collection) == seen.end()) {
      seen.push_back(op.collection);
    }
  }
  return seen.empty() ? "-" : fmt::format("{}", fmt::join(seen, ","));
}

void PrintDeadLetter(const DeadLetterRow& d) {
  const size_t n = d.batch.ops.size();
  std::printf(
      "dead letter %lld\n  endpoint:   %s (the target that refused it)\n"
      "  parked:     %s (%s ago)\n  retry:      %s\n  reason:     %s\n"
      "  writes:     %zu, none applied on %s (one source transaction, batch %lld)\n",
      static_cast<long long>(d.id), d.endpoint.c_str(), FormatTime(d.created_at).c_str(),
      Age(d.created_at, NowMs()).c_str(),
      d.retry_requested ? "requested; `duplex run` plans its records again" : "not requested",
      d.reason.c_str(), n, d.endpoint.c_str(), static_cast<long long>(d.batch.id));
  for (size_t i = 0; i < n; ++i) {
    const RowOp& op = d.batch.ops[i];
    std::printf("  %zu. %s %s %s\n", i + 1, OpName(op.op), op.collection.c_str(),
                op.key.dump().c_str());
    size_t width = 0;
    for (const auto& [field, v] : op.values.items()) width = std::max(width, field.size());
    for (const auto& [field, v] : op.values.items()) {
      std::printf("       %-*s  %s\n", static_cast<int>(width), field.c_str(),
                  ValueToDisplay(v).c_str());
    }
  }
}

// Parses `o.dead_letter_id`; prints the error and returns false if it is not an id.
bool DeadLetterId(const Options& o, int64_t* id) {
  if (ParseId(o.dead_letter_id, id)) return true;
  std::fprintf(stderr, "error: dead letter id must be a positive number, got '%s'\n",
               o.dead_letter_id.c_str());
  return false;
}

}  // namespace

int DeadLettersList(const Options& o) {
  int rc = kExitOk;
  std::unique_ptr<StateStore> store = OpenStore(o, &rc);
  if (!store) return rc;
  Result<std::vector<DeadLetterRow>> rows = store->ListDeadLetters(false);
  if (!rows.ok()) return Fail(rows.status());
  if (o.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const DeadLetterRow& d : *rows) arr.push_back(d.ToJson());
    std::printf("%s\n", arr.dump(2).c_str());
    return kExitOk;
  }
  if (rows->empty()) {
    std::printf("no dead letters\n");
    return kExitOk;
  }
  const double now = NowMs();
  bool cut = false;
  std::printf("%-5s %-10s %-14s %6s %-16s %5s %-6s %s\n", "ID", "ENDPOINT", "COLLECTION", "WRITES",
              "FIRST KEY", "AGE", "RETRY", "REASON");
  for (const DeadLetterRow& d : *rows) {
    const std::string key = d.batch.ops.empty() ? "-" : d.batch.ops.front().key.dump();
    std::printf("%-5lld %-10s %-14s %6zu %-16s %5s %-6s %s\n", static_cast<long long>(d.id),
                d.endpoint.c_str(), Collections(d).c_str(), d.batch.ops.size(), key.c_str(),
                Age(d.created_at, now).c_str(), d.retry_requested ? "asked" : "-",
                OneLine(d.reason, 100, &cut).c_str());
  }
  if (cut) std::printf("(reasons shortened: `duplex dead-letters show ID` prints one in full)\n");
  return kExitOk;
}

int DeadLettersShow(const Options& o) {
  int64_t id = 0;
  if (!DeadLetterId(o, &id)) return kExitUsage;
  int rc = kExitOk;
  std::unique_ptr<StateStore> store = OpenStore(o, &rc);
  if (!store) return rc;
  Result<DeadLetterRow> d = store->GetDeadLetter(id);
  if (!d.ok()) return Fail(d.status());
  if (o.json) {
    std::printf("%s\n", d->ToJson().dump(2).c_str());
  } else {
    PrintDeadLetter(*d);
  }
  return kExitOk;
}

int DeadLettersRetry(const Options& o) {
  int64_t id = 0;
  if (!o.all && !DeadLetterId(o, &id)) return kExitUsage;
  int rc = kExitOk;
  std::unique_ptr<StateStore> store = OpenStore(o, &rc);
  if (!store) return rc;
  if (o.all) {
    Result<int64_t> n = RetryAllDeadLetters(*store);
    if (!n.ok()) return Fail(n.status());
    if (o.json) {
      std::printf("%s\n", nlohmann::json({{"retry_requested", *n}}).dump(2).c_str());
    } else {
      std::printf(
          "retry requested for %lld dead letters; the engine plans their records again from "
          "their current state on the next run\n",
          static_cast<long long>(*n));
    }
    return kExitOk;
  }
  Result<DeadLetterRow> d = RetryDeadLetter(*store, id);
  if (!d.ok()) return Fail(d.status());
  if (o.json) {
    std::printf("%s\n", d->ToJson().dump(2).c_str());
  } else {
    std::printf(
        "dead letter %lld: retry requested; the engine plans its records again from their current "
        "state on the next run\n",
        static_cast<long long>(id));
  }
  return kExitOk;
}

int DeadLettersDrop(const Options& o) {
  int64_t id = 0;
  if (!DeadLetterId(o, &id)) return kExitUsage;
  int rc = kExitOk;
  std::unique_ptr<StateStore> store = OpenStore(o, &rc);
  if (!store) return rc;
  Result<DeadLetterRow> d = DropDeadLetter(*store, id);
  if (!d.ok()) return Fail(d.status());
  const RowOp* first = d->batch.ops.empty() ? nullptr : &d->batch.ops.front();
  spdlog::warn(
      "endpoint={} collection={} key={} dead letter id={} writes={} dropped by the operator; "
      "they will not be applied",
      d->endpoint, first ? first->collection : "", first ? first->key.dump() : "", id,
      d->batch.ops.size());
  if (o.json) {
    std::printf("%s\n", d->ToJson().dump(2).c_str());
  } else {
    std::printf(
        "dead letter %lld dropped: its %zu write%s (%s) will not be applied on %s; those "
        "records may differ there from the other endpoints until they are changed again\n",
        static_cast<long long>(id), d->batch.ops.size(), d->batch.ops.size() == 1 ? "" : "s",
        Collections(*d).c_str(), d->endpoint.c_str());
  }
  return kExitOk;
}

}  // namespace duplex::cli
