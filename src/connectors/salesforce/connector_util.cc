#include "connectors/salesforce/connector_util.h"

#include "connectors/salesforce/describe.h"

namespace duplex::sf {

// The value of `column` in a row keyed by API names (the API matches names case-insensitively).
const nlohmann::json* FieldOf(const nlohmann::json& row, const std::string& column) {
  if (!row.is_object()) return nullptr;
  auto it = row.find(column);
  if (it != row.end()) return &*it;
  for (auto i = row.begin(); i != row.end(); ++i) {
    if (SameName(i.key(), column)) return &*i;
  }
  return nullptr;
}

std::string Quoted(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\\' || c == '\'') out += '\\';
    out += c;
  }
  return out + "'";
}

}  // namespace duplex::sf
