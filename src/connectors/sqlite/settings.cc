#include "connectors/sqlite/settings.h"

#include <utility>

#include "connectors/sqlite/sqlite_connector.h"

namespace duplex::sqlite {

Result<std::shared_ptr<const ConnectorSettings>> ParseSettings(const SettingsReader& reader) {
  DUPLEX_RETURN_IF_ERROR(reader.CheckKeys({"type", "path"}));
  auto s = std::make_shared<SqliteSettings>();
  DUPLEX_RETURN_IF_ERROR(reader.GetString(
      "path", "\"FILE.db\" (relative to the config file's folder)", &s->path, /*required=*/true));
  s->path = reader.ResolvePath(s->path);
  return std::shared_ptr<const ConnectorSettings>(std::move(s));
}

Result<std::unique_ptr<Connector>> MakeConnector(const ConnectorContext& context,
                                                 const ConnectorSettings& settings) {
  const auto* s = dynamic_cast<const SqliteSettings*>(&settings);
  if (s == nullptr || s->path.empty()) {
    return Status::InvalidArgument(context.where() + ": type \"sqlite\" needs a path");
  }
  return std::unique_ptr<Connector>(std::make_unique<SqliteConnector>(context.name, s->path));
}

}  // namespace duplex::sqlite
