#include "connectors/salesforce/describe.h"

#include <algorithm>
#include <cctype>

namespace duplex::sf {

bool SameName(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

namespace {

std::vector<std::string> Strings(const nlohmann::json& list) {
  std::vector<std::string> out;
  if (!list.is_array()) return out;
  for (const nlohmann::json& v : list) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

template <typename T>
T Get(const nlohmann::json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if constexpr (std::is_same_v<T, bool>) {
    return it->is_boolean() ? it->template get<bool>() : fallback;
  } else if constexpr (std::is_same_v<T, std::string>) {
    return it->is_string() ? it->template get<std::string>() : fallback;
  } else {
    return it->is_number() ? it->template get<T>() : fallback;
  }
}

}  // namespace

const char* SfColumnKindName(SfColumnKind kind) {
  switch (kind) {
    case SfColumnKind::kInteger:
      return "integer";
    case SfColumnKind::kReal:
      return "real";
    case SfColumnKind::kDecimal:
      return "decimal";
    case SfColumnKind::kText:
      return "text";
    case SfColumnKind::kBinary:
      return "binary";
    case SfColumnKind::kBoolean:
      return "boolean";
    case SfColumnKind::kTime:
      return "time";
  }
  return "?";
}

std::optional<SfColumnKind> ColumnKindOf(std::string_view type) {
  static const std::pair<std::string_view, SfColumnKind> kKinds[] = {
      {"int", SfColumnKind::kInteger},        {"long", SfColumnKind::kInteger},
      {"double", SfColumnKind::kReal},        {"currency", SfColumnKind::kDecimal},
      {"percent", SfColumnKind::kDecimal},    {"string", SfColumnKind::kText},
      {"textarea", SfColumnKind::kText},      {"picklist", SfColumnKind::kText},
      {"multipicklist", SfColumnKind::kText}, {"combobox", SfColumnKind::kText},
      {"email", SfColumnKind::kText},         {"phone", SfColumnKind::kText},
      {"url", SfColumnKind::kText},           {"id", SfColumnKind::kText},
      {"reference", SfColumnKind::kText},     {"encryptedstring", SfColumnKind::kText},
      {"boolean", SfColumnKind::kBoolean},    {"date", SfColumnKind::kTime},
      {"datetime", SfColumnKind::kTime},      {"time", SfColumnKind::kTime},
      {"base64", SfColumnKind::kBinary},
  };
  for (const auto& [name, kind] : kKinds) {
    if (SameName(name, type)) return kind;
  }
  return std::nullopt;
}

const FieldInfo* ObjectInfo::Field(std::string_view name) const {
  for (const FieldInfo& f : fields) {
    if (SameName(f.name, name)) return &f;
  }
  return nullptr;
}

Result<ObjectInfo> ParseDescribe(const nlohmann::json& body) {
  if (!body.is_object() || !body.contains("name") || !body["name"].is_string() ||
      !body.contains("fields") || !body["fields"].is_array()) {
    return Status::Corruption("Salesforce describe answer without name and fields: " +
                              body.dump().substr(0, 200));
  }
  ObjectInfo o;
  o.name = body["name"].get<std::string>();
  o.key_prefix = Get<std::string>(body, "keyPrefix", "");
  o.queryable = Get(body, "queryable", true);
  o.replicateable = Get(body, "replicateable", true);
  o.createable = Get(body, "createable", true);
  o.updateable = Get(body, "updateable", true);
  o.deletable = Get(body, "deletable", true);
  for (const nlohmann::json& f : body["fields"]) {
    if (!f.is_object() || !f.contains("name") || !f["name"].is_string()) {
      return Status::Corruption("object '" + o.name + "': describe has a field without a name");
    }
    FieldInfo fi;
    fi.name = f["name"].get<std::string>();
    fi.type = Get<std::string>(f, "type", "");
    fi.length = Get<int64_t>(f, "length", 0);
    fi.nillable = Get(f, "nillable", true);
    fi.external_id = Get(f, "externalId", false);
    fi.unique = Get(f, "unique", false);
    fi.createable = Get(f, "createable", true);
    fi.updateable = Get(f, "updateable", true);
    fi.calculated = Get(f, "calculated", false);
    fi.reference_to = Strings(f.value("referenceTo", nlohmann::json::array()));
    fi.relationship_name = Get<std::string>(f, "relationshipName", "");
    fi.restricted_picklist = Get(f, "restrictedPicklist", false);
    if (f.contains("picklistValues") && f["picklistValues"].is_array()) {
      for (const nlohmann::json& p : f["picklistValues"]) {
        if (p.is_object() && Get(p, "active", true) && p.contains("value") &&
            p["value"].is_string()) {
          fi.picklist_values.push_back(p["value"].get<std::string>());
        }
      }
    }
    o.fields.push_back(std::move(fi));
  }
  return o;
}

Result<ObjectInfo> Describe(Client& client, const std::string& object) {
  Result<nlohmann::json> body = client.Get("/sobjects/" + object + "/describe");
  if (!body.ok()) return body.status().WithContext("describe of object '" + object + "'");
  return ParseDescribe(*body);
}

std::vector<std::string> CheckObject(const ObjectInfo& object, const std::string& external_id_field,
                                     const std::vector<std::string>& fields) {
  std::vector<std::string> out;
  const std::string where = "object '" + object.name + "'";
  if (!object.queryable) {
    out.push_back(where +
                  " is not queryable by the integration user: grant Read on it in the "
                  "user's permission set");
  }
  if (!object.replicateable) {
    out.push_back(where +
                  " is not replicateable: the updated/deleted sweep cannot run on it; "
                  "polling alone may miss late-committing writes");
  }
  const FieldInfo* ext = object.Field(external_id_field);
  if (!ext) {
    out.push_back(where + " has no field '" + external_id_field +
                  "': create a Text(255) custom field marked External ID and Unique, and give "
                  "the integration user edit access to it");
  } else if (!ext->external_id) {
    out.push_back(where + ": field '" + ext->name +
                  "' is not an External ID: mark it External ID (and Unique) in its setup, or "
                  "upserts cannot match records on it");
  } else if (!ext->unique) {
    out.push_back(where + ": field '" + ext->name +
                  "' is not Unique: mark it Unique, or two records may share a key");
  }
  for (const std::string& name : fields) {
    const FieldInfo* f = object.Field(name);
    if (!f) {
      out.push_back(where + " has no field '" + name +
                    "' (or the integration user cannot see it): check the mapping's spelling "
                    "and the field-level security");
    } else if (!f->kind()) {
      out.push_back(where + ": field '" + f->name + "' has type '" + f->type +
                    "', which duplex does not sync: map its component fields instead");
    } else if (!f->updateable && !f->calculated) {
      out.push_back(where + ": field '" + f->name +
                    "' is read-only for the integration user: changes from the other side "
                    "cannot be written to it; grant edit access or map it one way");
    }
  }
  return out;
}

}  // namespace duplex::sf
