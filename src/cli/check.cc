// `duplex init` and `duplex check`.
#include <fmt/format.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "cli/common.h"
#include "config/config.h"
#include "connectors/registry.h"
#include "connectors/settings.h"
#include "pipeline/engine.h"
#include "pipeline/schema_binding.h"

namespace duplex::cli {

namespace {

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

}  // namespace duplex::cli
