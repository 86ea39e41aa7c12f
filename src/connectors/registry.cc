#include "connectors/registry.h"

#include <fmt/format.h>

#include <cctype>
#include <cstdlib>
#include <string>

#include "connectors/postgres/postgres_connector.h"
#include "connectors/sqlite/sqlite_connector.h"

namespace duplex {

namespace {

std::string Describe(const EndpointConfig& cfg) {
  std::string out = "endpoint '" + cfg.name + "'";
  if (cfg.line > 0) out += " (line " + std::to_string(cfg.line) + ")";
  return out;
}

}  // namespace

// "<engine name>_<endpoint>" in [a-z0-9_], at most 40 characters (a hash keeps long ones
// distinct), so that every server object name fits PostgreSQL's 63.
std::string ServerTag(const std::string& engine_name, const std::string& endpoint) {
  std::string tag;
  for (char c : engine_name + "_" + endpoint) {
    unsigned char u = static_cast<unsigned char>(c);
    tag += std::isalnum(u) ? static_cast<char>(std::tolower(u)) : '_';
  }
  if (tag.size() > 40) {
    uint64_t h = 1469598103934665603ULL;
    for (unsigned char c : tag) h = (h ^ c) * 1099511628211ULL;
    tag = fmt::format("{}_{:08x}", tag.substr(0, 31), h & 0xffffffffu);
  }
  return tag;
}

Result<std::unique_ptr<Connector>> MakeConnector(const EndpointConfig& cfg,
                                                 const std::string& engine_name) {
  if (cfg.type == "postgres") {
    pg::PostgresConnector::Options o;
    o.name = cfg.name;
    o.dsn = cfg.dsn;
    if (!cfg.dsn_env.empty()) {
      const char* v = std::getenv(cfg.dsn_env.c_str());
      if (v == nullptr || *v == '\0') {
        return Status::InvalidArgument(Describe(cfg) + ": dsn_env names " + cfg.dsn_env +
                                       ", which is not set in the environment; export it");
      }
      o.dsn = v;
    }
    o.schema = cfg.schema;
    o.max_retained_wal_bytes = cfg.max_retained_wal_mb << 20;
    o.capture = cfg.capture == "trigger" ? pg::PostgresConnector::CaptureMode::kTrigger
                                         : pg::PostgresConnector::CaptureMode::kLogical;
    o.tag = ServerTag(engine_name.empty() ? "duplex" : engine_name, cfg.name);
    return std::unique_ptr<Connector>(std::make_unique<pg::PostgresConnector>(std::move(o)));
  }
  if (cfg.type == "sqlite") {
    if (cfg.path.empty()) {
      return Status::InvalidArgument(Describe(cfg) + ": type \"sqlite\" needs a path");
    }
    return std::unique_ptr<Connector>(
        std::make_unique<sqlite::SqliteConnector>(cfg.name, cfg.path));
  }
  return Status::InvalidArgument(Describe(cfg) + ": unknown type '" + cfg.type +
                                 "' (known types: sqlite, postgres)");
}

}  // namespace duplex
