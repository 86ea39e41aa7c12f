#pragma once

#include <string>
#include <vector>

#include "connectors/sqlite/endpoint.h"
#include "duplex/change.h"
#include "duplex/result.h"

// How a row is spelled in `_duplex_changelog` (src/connectors/sqlite/README.md): the SQL
// expressions that write an image or a key (the triggers and the snapshot of Installer, Scan,
// kRejected rows and ChangedSince of Applier) and the C++ that reads an image back (Capture,
// Scan). Both sides live here so that what one writes the other reads; the functions only build
// strings and values, they run nothing.
namespace duplex::sqlite {

// Commit time as the changelog stores it: ms since the Unix epoch. julianday('now') is fixed for
// the duration of one statement, so every row a statement logs gets the same time.
inline constexpr char kNowMs[] = "((julianday('now') - 2440587.5) * 86400000.0)";

// A column value (`ref`: a column or parameter) as json_object() can hold it: blobs as
// {"$blob": "HEX"}, reals with 18 digits, infinities as {"$real": "Inf"}.
std::string JsonValueExpr(const std::string& ref);
// The key of a row as JSON text: json_array() of `refs` (columns or parameters), each wrapped
// like an image value, so that a trigger and Apply spell the same key the same way.
std::string KeyArray(const std::vector<std::string>& refs);
// A key value as JSON text, as the key map stores it: json_quote gives 5 for the integer 5 and
// "x" (quoted, escaped) for the text x, as nlohmann's dump() does for RecordId.
std::string NativeExpr(const std::string& ref);

// A column's value as the changelog holds it, read as `prefix` + "column": JsonValueExpr for
// most, the record id (RecordExpr) for a column captured as record ids.
std::string ColumnJson(const Endpoint& ep, const BoundTable& t, const std::string& column,
                       const std::string& prefix);
// The json_object(...) expression for the captured columns of `t`, each read as `prefix` +
// "col". InvalidArgument if too many column names cannot be spelled in a JSON path.
Result<std::string> ImageExpr(const Endpoint& ep, const BoundTable& t, const std::string& prefix);
// json_array() of the key columns of `t`, each read as `prefix` + column: the changelog's `pk`.
// Spelled like KeyArray of the values Apply receives (record ids for mapped columns), so that
// ChangedSince finds the rows the triggers logged.
std::string KeyExpr(const Endpoint& ep, const BoundTable& t, const std::string& prefix);

// Values as the rest of duplex expects them: signed integers (nlohmann parses non-negative ones
// as unsigned), and the trigger's {"$real": "Inf"} (JSON has no infinity) as a float.
void NormalizeValue(Value& v);
// `image` (changelog JSON of columns) to the canonical fields of `t`; columns logged before they
// were bound are left out.
Row MapImage(const BoundTable& t, Value&& image);

}  // namespace duplex::sqlite
