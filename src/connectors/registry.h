#pragma once

#include <memory>

#include "config/config.h"
#include "duplex/connector.h"
#include "duplex/result.h"

namespace duplex {

// The one list of connector types (STYLE §6): makes the connector for an endpoint of the config,
// not yet opened. InvalidArgument naming the endpoint for an unknown type or a missing setting.
Result<std::unique_ptr<Connector>> MakeConnector(const EndpointConfig& cfg);

}  // namespace duplex
