#include "connectors/binding.h"

#include <algorithm>
#include <cctype>
#include <set>

namespace duplex {

const char* ColumnKindName(ColumnKind kind) {
  switch (kind) {
    case ColumnKind::kInteger:
      return "integer";
    case ColumnKind::kReal:
      return "real";
    case ColumnKind::kDecimal:
      return "decimal";
    case ColumnKind::kText:
      return "text";
    case ColumnKind::kBinary:
      return "binary";
    case ColumnKind::kBoolean:
      return "boolean";
    case ColumnKind::kTime:
      return "time";
    case ColumnKind::kJson:
      return "json";
    case ColumnKind::kAny:
      return "any";
  }
  return "any";
}

ColumnKind KindOfDeclaredType(std::string_view type) {
  std::string upper(type);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  auto has = [&](const char* s) { return upper.find(s) != std::string::npos; };
  // SQLite's rules, in its order: the first that matches decides the affinity.
  if (has("INT")) return ColumnKind::kInteger;
  if (has("CHAR") || has("CLOB") || has("TEXT")) return ColumnKind::kText;
  if (has("BLOB")) return ColumnKind::kBinary;
  if (upper.find_first_not_of(' ') == std::string::npos) return ColumnKind::kAny;
  if (has("REAL") || has("FLOA") || has("DOUB")) return ColumnKind::kReal;
  // NUMERIC affinity: what the name says the application keeps there.
  if (upper.rfind("BOOL", 0) == 0) return ColumnKind::kBoolean;
  if (has("DATE") || has("TIME")) return ColumnKind::kTime;
  if (has("JSON")) return ColumnKind::kJson;
  return ColumnKind::kDecimal;
}

std::string RecordId(const std::string& endpoint, const Value& native) {
  return endpoint + ":" + native.dump();
}

std::optional<Value> OwnNativeKey(const std::string& endpoint, const std::string& record) {
  if (record.size() <= endpoint.size() || record.compare(0, endpoint.size(), endpoint) != 0 ||
      record[endpoint.size()] != ':') {
    return std::nullopt;
  }
  Value v = Value::parse(record.substr(endpoint.size() + 1), nullptr, false);
  if (v.is_discarded() || v.is_null() || v.is_object() || v.is_array()) return std::nullopt;
  return v;
}

Status ValidateBindings(const std::string& where, const std::vector<CollectionBinding>& bindings) {
  std::set<std::string> tables, collections;
  for (const CollectionBinding& b : bindings) {
    const std::string at = where + ", table '" + b.table + "', collection '" + b.collection + "'";
    if (b.table.rfind("_duplex_", 0) == 0) {
      return Status::InvalidArgument(at + ": tables named _duplex_* are duplex's own");
    }
    if (!tables.insert(b.table).second) {
      return Status::InvalidArgument(at + ": the table is bound to two collections");
    }
    if (!collections.insert(b.collection).second) {
      return Status::InvalidArgument(at + ": the collection is bound twice");
    }
    if (b.key.empty()) return Status::InvalidArgument(at + ": no key fields");
    if (b.mapped_key && b.key.size() != 1) {
      return Status::InvalidArgument(at + ": key_mode = \"mapped\" needs a key of one field");
    }
    std::set<std::string> fields, columns;
    for (const auto& [field, column] : b.fields) {
      if (!fields.insert(field).second) {
        return Status::InvalidArgument(at + ": field '" + field + "' is mapped twice");
      }
      if (!columns.insert(column).second) {
        return Status::InvalidArgument(at + ": column '" + column + "' is mapped twice");
      }
    }
    for (const std::string& k : b.key) {
      if (!fields.count(k)) {
        return Status::InvalidArgument(at + ": key field '" + k + "' is not a mapped field");
      }
    }
  }
  return Status::Ok();
}

}  // namespace duplex
