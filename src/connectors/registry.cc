#include "connectors/registry.h"

#include <string>

#include "connectors/sqlite/sqlite_connector.h"

namespace duplex {

namespace {

std::string Describe(const EndpointConfig& cfg) {
  std::string out = "endpoint '" + cfg.name + "'";
  if (cfg.line > 0) out += " (line " + std::to_string(cfg.line) + ")";
  return out;
}

}  // namespace

Result<std::unique_ptr<Connector>> MakeConnector(const EndpointConfig& cfg) {
  if (cfg.type == "sqlite") {
    if (cfg.path.empty()) {
      return Status::InvalidArgument(Describe(cfg) + ": type \"sqlite\" needs a path");
    }
    return std::unique_ptr<Connector>(
        std::make_unique<sqlite::SqliteConnector>(cfg.name, cfg.path));
  }
  return Status::InvalidArgument(Describe(cfg) + ": unknown type '" + cfg.type +
                                 "' (known types: sqlite)");
}

}  // namespace duplex
