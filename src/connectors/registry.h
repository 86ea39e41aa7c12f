#pragma once

#include <memory>
#include <string>

#include "config/config.h"
#include "duplex/connector.h"
#include "duplex/result.h"

namespace duplex {

// The one list of connector types (STYLE §6): makes the connector for an endpoint of the config,
// not yet opened. InvalidArgument naming the endpoint for an unknown type or a missing setting.
// `engine_name` ([engine] name) prefixes what the connector creates on a server.
Result<std::unique_ptr<Connector>> MakeConnector(const EndpointConfig& cfg,
                                                 const std::string& engine_name = "");

// The prefix of the objects an endpoint creates on a server: "<engine name>_<endpoint>",
// lowercase, at most 40 characters.
std::string ServerTag(const std::string& engine_name, const std::string& endpoint);

}  // namespace duplex
