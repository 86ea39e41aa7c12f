#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "duplex/connector.h"

namespace duplex {

// Checks what every connector's Bind needs of `bindings`, whatever the system: each table and
// each collection bound once, at least one key field, every key field mapped, no field or
// column mapped twice, no table named like duplex's own (`_duplex_*`). `where` prefixes each
// message (e.g. "endpoint 'crm' (/path/crm.db)"). InvalidArgument naming the table otherwise.
Status ValidateBindings(const std::string& where, const std::vector<CollectionBinding>& bindings);

// The kind of a column declared `type`, by SQLite's affinity rules (sqlite.org/datatype3.html
// §3.1) refined by name: a name with INT is kInteger; CHAR, CLOB or TEXT kText; BLOB kBinary;
// REAL, FLOA or DOUB kReal; no type at all kAny; of the rest (NUMERIC affinity), BOOL... is
// kBoolean, a name with DATE or TIME kTime, JSON kJson, anything else kDecimal. For systems that
// only have type names (SQLite, the memory connector).
ColumnKind KindOfDeclaredType(std::string_view type);

}  // namespace duplex
