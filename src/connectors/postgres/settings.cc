#include "connectors/postgres/settings.h"

#include <cstdlib>
#include <utility>

#include "connectors/postgres/postgres_connector.h"

namespace duplex::pg {

Result<std::shared_ptr<const ConnectorSettings>> ParseSettings(const SettingsReader& reader) {
  DUPLEX_RETURN_IF_ERROR(
      reader.CheckKeys({"type", "dsn", "dsn_env", "schema", "capture", "max_retained_wal_mb"}));
  auto s = std::make_shared<PostgresSettings>();
  const std::string dsn_example = "\"postgresql://USER@HOST:5432/DB\"";
  DUPLEX_RETURN_IF_ERROR(reader.GetString("dsn", dsn_example, &s->dsn));
  DUPLEX_RETURN_IF_ERROR(reader.GetString("dsn_env", "\"CRM_DSN\"", &s->dsn_env));
  if (s->dsn.empty() == s->dsn_env.empty()) {
    return reader.Error(reader.line(), reader.where() + " needs exactly one of dsn and dsn_env",
                        "add dsn = " + dsn_example +
                            " (password from PGPASSWORD or ~/.pgpass), or dsn_env = \"VAR\" "
                            "naming an environment variable that holds it");
  }
  DUPLEX_RETURN_IF_ERROR(reader.GetString("schema", "\"public\"", &s->schema));
  DUPLEX_RETURN_IF_ERROR(reader.GetString("capture", "\"logical\"", &s->capture));
  DUPLEX_RETURN_IF_ERROR(
      reader.GetInt("max_retained_wal_mb", 1, int64_t{1} << 30, &s->max_retained_wal_mb));
  if (s->capture != "logical" && s->capture != "trigger") {
    return reader.Error(reader.KeyLine("capture"),
                        reader.where() + ": unknown capture '" + s->capture + "'",
                        "write capture = \"logical\" (a replication slot, the default) or "
                        "capture = \"trigger\" (for servers without logical decoding)");
  }
  return std::shared_ptr<const ConnectorSettings>(std::move(s));
}

Result<std::unique_ptr<Connector>> MakeConnector(const ConnectorContext& context,
                                                 const ConnectorSettings& settings) {
  const auto* s = dynamic_cast<const PostgresSettings*>(&settings);
  if (s == nullptr) {
    return Status::InvalidArgument(context.where() + ": type \"postgres\" needs a dsn");
  }
  PostgresConnector::Options o;
  o.name = context.name;
  o.dsn = s->dsn;
  if (!s->dsn_env.empty()) {
    const char* v = std::getenv(s->dsn_env.c_str());
    if (v == nullptr || *v == '\0') {
      return Status::InvalidArgument(context.where() + ": dsn_env names " + s->dsn_env +
                                     ", which is not set in the environment; export it");
    }
    o.dsn = v;
  }
  o.schema = s->schema;
  o.max_retained_wal_bytes = s->max_retained_wal_mb << 20;
  o.capture = s->capture == "trigger" ? PostgresConnector::CaptureMode::kTrigger
                                      : PostgresConnector::CaptureMode::kLogical;
  o.tag = context.tag;
  return std::unique_ptr<Connector>(std::make_unique<PostgresConnector>(std::move(o)));
}

}  // namespace duplex::pg
