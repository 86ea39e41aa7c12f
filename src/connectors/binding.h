#pragma once

#include <string>
#include <vector>

#include "duplex/connector.h"

namespace duplex {

// Checks what every connector's Bind needs of `bindings`, whatever the system: each table and
// each collection bound once, at least one key field, every key field mapped, no field or
// column mapped twice, no table named like duplex's own (`_duplex_*`). `where` prefixes each
// message (e.g. "endpoint 'crm' (/path/crm.db)"). InvalidArgument naming the table otherwise.
Status ValidateBindings(const std::string& where, const std::vector<CollectionBinding>& bindings);

}  // namespace duplex
