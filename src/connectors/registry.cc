#include "connectors/registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <string>

#include "connectors/postgres/settings.h"
#include "connectors/salesforce/settings.h"
#include "connectors/sqlite/settings.h"

namespace duplex {

const std::vector<ConnectorType>& ConnectorTypes() {
  // Adding a type: its folder under src/connectors/ (settings.h: ParseSettings, MakeConnector)
  // and one line here.
  static const std::vector<ConnectorType> types = {
      {"sqlite", {}, sqlite::ParseSettings, sqlite::MakeConnector},
      {"postgres", {}, pg::ParseSettings, pg::MakeConnector},
      {"salesforce", {}, sf::ParseSettings, sf::MakeConnector},
  };
  return types;
}

const ConnectorType* FindConnectorType(std::string_view name) {
  for (const ConnectorType& t : ConnectorTypes()) {
    if (t.name == name || std::find(t.aliases.begin(), t.aliases.end(), name) != t.aliases.end()) {
      return &t;
    }
  }
  return nullptr;
}

std::string KnownTypes() {
  std::string out;
  for (const ConnectorType& t : ConnectorTypes()) out += (out.empty() ? "" : ", ") + t.name;
  return out;
}

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
  ConnectorContext context;
  context.name = cfg.name;
  context.line = cfg.line;
  context.tag = ServerTag(engine_name.empty() ? "duplex" : engine_name, cfg.name);
  const ConnectorType* type = FindConnectorType(cfg.type);
  if (type == nullptr) {
    return Status::InvalidArgument(context.where() + ": unknown type '" + cfg.type +
                                   "' (known types: " + KnownTypes() + ")");
  }
  if (cfg.settings == nullptr) {
    return Status::InvalidArgument(context.where() + ": type \"" + cfg.type +
                                   "\" has no settings (parse them with its ConnectorType)");
  }
  return type->make(context, *cfg.settings);
}

}  // namespace duplex
