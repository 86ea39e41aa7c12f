#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "connectors/settings.h"
#include "duplex/connector.h"
#include "duplex/result.h"

namespace duplex {

// One endpoint type (`type = "NAME"` in the config): how its settings are parsed and how its
// connector is made. Each connector folder provides both (e.g. connectors/sqlite/settings.h).
struct ConnectorType {
  std::string name;                  // the `type` value
  std::vector<std::string> aliases;  // other `type` values accepted for it
  // Reads the endpoint's section (every key, "type" included) into the type's settings.
  Result<std::shared_ptr<const ConnectorSettings>> (*parse)(const SettingsReader& reader);
  // Makes the connector, not yet opened, from what `parse` returned.
  Result<std::unique_ptr<Connector>> (*make)(const ConnectorContext& context,
                                             const ConnectorSettings& settings);
};

// The one list of endpoint types (STYLE §6), in the order `KnownTypes` lists them.
const std::vector<ConnectorType>& ConnectorTypes();

// The type named `name` (or one of its aliases); nullptr if none.
const ConnectorType* FindConnectorType(std::string_view name);

// "sqlite, postgres": the registered type names, for messages.
std::string KnownTypes();

// Makes the connector for an endpoint of the config, not yet opened. InvalidArgument naming the
// endpoint for an unknown type or missing settings. `engine_name` ([engine] name) prefixes what
// the connector creates on a server.
Result<std::unique_ptr<Connector>> MakeConnector(const EndpointConfig& cfg,
                                                 const std::string& engine_name = "");

// The prefix of the objects an endpoint creates on a server: "<engine name>_<endpoint>",
// lowercase, at most 40 characters.
std::string ServerTag(const std::string& engine_name, const std::string& endpoint);

}  // namespace duplex
