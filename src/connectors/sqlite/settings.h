// The "sqlite" endpoint type: its settings, parsed from the config file, and its constructor,
// both registered in src/connectors/registry.cc.
#pragma once

#include <memory>
#include <string>

#include "connectors/settings.h"
#include "duplex/connector.h"
#include "duplex/result.h"

namespace duplex::sqlite {

// [endpoints.NAME] type = "sqlite", path = "FILE.db".
struct SqliteSettings final : ConnectorSettings {
  std::string path;  // absolute (resolved against the config file's folder)

  std::string Summary() const override { return path; }
};

// Reads the section's keys (`type`, `path`, required). InvalidArgument "FILE:LINE: ..." for an
// unknown key or a missing or empty path.
Result<std::shared_ptr<const ConnectorSettings>> ParseSettings(const SettingsReader& reader);

// A SqliteConnector on settings.path, not yet opened. InvalidArgument if the path is empty.
Result<std::unique_ptr<Connector>> MakeConnector(const ConnectorContext& context,
                                                 const ConnectorSettings& settings);

}  // namespace duplex::sqlite
