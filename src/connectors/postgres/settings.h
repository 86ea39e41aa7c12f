// The "postgres" endpoint type: its settings, parsed from the config file, and its
// constructor, both registered in src/connectors/registry.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "connectors/settings.h"
#include "duplex/connector.h"
#include "duplex/result.h"

namespace duplex::pg {

// [endpoints.NAME] type = "postgres": dsn or dsn_env, schema, capture, max_retained_wal_mb.
struct PostgresSettings final : ConnectorSettings {
  // A libpq connection string or URI (`dsn`), or the environment variable holding it
  // (`dsn_env`), exactly one of them; the password comes from there or libpq's usual variables
  // (PGPASSWORD, .pgpass).
  std::string dsn;
  std::string dsn_env;
  std::string schema = "public";    // the schema of the tables
  std::string capture = "logical";  // "logical" (replication slot) or "trigger"
  // logical: `duplex status` warns when the slot retains more WAL than this.
  int64_t max_retained_wal_mb = 1024;

  // Never the dsn: it may hold a password.
  std::string Summary() const override { return "schema " + schema + ", capture " + capture; }
};

// Reads the section's keys. InvalidArgument "FILE:LINE: ..." for an unknown key, both or
// neither of dsn and dsn_env, an empty string, an unknown capture or a size out of range.
Result<std::shared_ptr<const ConnectorSettings>> ParseSettings(const SettingsReader& reader);

// A PostgresConnector, not yet connected. The dsn is read from the environment when dsn_env
// names a variable (InvalidArgument naming the endpoint if it is not set).
Result<std::unique_ptr<Connector>> MakeConnector(const ConnectorContext& context,
                                                 const ConnectorSettings& settings);

}  // namespace duplex::pg
