#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/salesforce/client.h"
#include "duplex/result.h"

namespace duplex::sf {

// What duplex stores a Salesforce field's values as. The same kinds, by the same names, as the
// contract's ColumnKind is planned to have, so switching to it is a rename.
enum class SfColumnKind { kInteger, kReal, kDecimal, kText, kBinary, kBoolean, kTime };
const char* SfColumnKindName(SfColumnKind kind);

// The kind of a describe `type` (shared/SALESFORCE.md §5): int → integer; double → real;
// currency, percent → decimal; string, textarea, picklist, email, phone, url, id, reference,
// combobox, encryptedstring → text; multipicklist → text (values joined by ';', as the API
// sends them); boolean; date, datetime, time → time; base64 → binary. nullopt for what duplex
// does not sync (compound address and location fields, anyType).
std::optional<SfColumnKind> ColumnKindOf(std::string_view type);

// Whether two Salesforce names (objects, fields, types) are the same: they compare without
// regard to case.
bool SameName(std::string_view a, std::string_view b);

// One field of GET sobjects/{T}/describe, with the properties duplex uses.
struct FieldInfo {
  std::string name;
  std::string type;  // describe's type: "string", "picklist", "reference", ...
  int64_t length = 0;
  bool nillable = true;
  bool external_id = false;
  bool unique = false;
  bool createable = true;
  bool updateable = true;
  bool calculated = false;  // a formula: read-only, and never in change events
  std::vector<std::string> reference_to;
  std::string relationship_name;
  std::vector<std::string> picklist_values;  // the active ones
  bool restricted_picklist = false;

  std::optional<SfColumnKind> kind() const { return ColumnKindOf(type); }
};

// An object's describe.
struct ObjectInfo {
  std::string name;
  std::string key_prefix;
  bool queryable = true;
  bool replicateable = true;  // needed by sobjects/{T}/updated and /deleted
  bool createable = true;
  bool updateable = true;
  bool deletable = true;
  std::vector<FieldInfo> fields;

  // The field by API name (case-insensitive, as the API matches names); nullptr if none.
  const FieldInfo* Field(std::string_view name) const;
};

// Reads a describe answer; Corruption naming the object if it is not one.
Result<ObjectInfo> ParseDescribe(const nlohmann::json& body);
// GET sobjects/{object}/describe (one API call). NotFound if the org has no such object (or
// the integration user may not see it).
Result<ObjectInfo> Describe(Client& client, const std::string& object);

// What the org lacks for syncing `object` keyed by `external_id_field` with `fields`, each with
// its fix ("object 'Account': field 'Ext__c' is not an External ID: ..."); empty when nothing.
std::vector<std::string> CheckObject(const ObjectInfo& object, const std::string& external_id_field,
                                     const std::vector<std::string>& fields);

}  // namespace duplex::sf
