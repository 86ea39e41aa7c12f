#include "connectors/sqlite/images.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "connectors/sqlite/key_map.h"
#include "util/json_value.h"

namespace duplex::sqlite {

namespace {

// Whether json_set('$."name"') can add `name` correctly: SQLite 3.40's JSON path has no escapes,
// and json_set writes the label unescaped.
bool SafeForJsonPath(const std::string& name) {
  return std::none_of(name.begin(), name.end(), [](char c) {
    return c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20;
  });
}

}  // namespace

// Unwrapped, a BLOB makes json_object() fail, which would fail the APPLICATION's write that fired
// the trigger; a REAL would be rendered with 15 digits (lossy), and an infinite REAL as the
// invalid JSON token Inf. SQLite's printf is not correctly rounded at 17 digits for large
// exponents (measured: ~0.3% of values above 1e100 lose an ulp); 18 digits round-trip every
// double we tried (12M, all exponents).
std::string JsonValueExpr(const std::string& ref) {
  return "CASE typeof(" + ref + ") WHEN 'blob' THEN json_object('$blob', hex(" + ref +
         ")) WHEN 'real' THEN CASE WHEN " + ref +
         " BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308 THEN json(printf('%!.18g', " +
         ref + ")) ELSE json_object('$real', printf('%!.18g', " + ref + ")) END ELSE " + ref +
         " END";
}

std::string KeyArray(const std::vector<std::string>& refs) {
  std::string out = "json_array(";
  for (size_t i = 0; i < refs.size(); ++i) out += (i ? ", " : "") + JsonValueExpr(refs[i]);
  return out + ")";
}

std::string NativeExpr(const std::string& ref) { return "json_quote(" + JsonValueExpr(ref) + ")"; }

std::string ColumnJson(const Endpoint& ep, const BoundTable& t, const std::string& column,
                       const std::string& prefix) {
  auto it = t.record_table_of_column.find(column);
  if (it == t.record_table_of_column.end()) return JsonValueExpr(prefix + QuoteIdent(column));
  return RecordExpr(ep.name(), it->second, prefix + QuoteIdent(column));
}

Result<std::string> ImageExpr(const Endpoint& ep, const BoundTable& t, const std::string& prefix) {
  const std::string& table = t.binding.table;
  const std::vector<std::string>& columns = t.columns;
  // A function takes at most SQLITE_LIMIT_FUNCTION_ARG arguments (127 by default), so wide tables
  // get their first columns from json_object() and the rest from nested json_set() calls. Names
  // json_set() cannot spell go first.
  int max_args = sqlite3_limit(ep.handle(), SQLITE_LIMIT_FUNCTION_ARG, -1);
  size_t per_object = static_cast<size_t>(max_args) / 2;
  size_t per_set = static_cast<size_t>(max_args - 1) / 2;
  std::vector<std::string> cols = columns;
  auto safe_begin = std::stable_partition(cols.begin(), cols.end(),
                                          [](const std::string& c) { return !SafeForJsonPath(c); });
  if (static_cast<size_t>(safe_begin - cols.begin()) > per_object) {
    return Status::InvalidArgument(ep.Where(table) + ": more than " + std::to_string(per_object) +
                                   " synced columns have a '\"', '\\' or control character in "
                                   "their name");
  }
  std::string expr = "json_object(";
  size_t i = 0;
  for (; i < cols.size() && i < per_object; ++i) {
    if (i) expr += ", ";
    expr += QuoteString(cols[i]) + ", " + ColumnJson(ep, t, cols[i], prefix);
  }
  expr += ")";
  while (i < cols.size()) {
    std::string set = "json_set(" + expr;
    for (size_t n = 0; n < per_set && i < cols.size(); ++n, ++i) {
      set +=
          ", " + QuoteString("$.\"" + cols[i] + "\"") + ", " + ColumnJson(ep, t, cols[i], prefix);
    }
    expr = set + ")";
  }
  return expr;
}

std::string KeyExpr(const Endpoint& ep, const BoundTable& t, const std::string& prefix) {
  std::string out = "json_array(";
  for (size_t i = 0; i < t.binding.key.size(); ++i) {
    out += (i ? ", " : "") + ColumnJson(ep, t, t.column_of_field.at(t.binding.key[i]), prefix);
  }
  return out + ")";
}

void NormalizeValue(Value& v) {
  if (v.is_number_unsigned()) {
    v = static_cast<int64_t>(v.get<uint64_t>());
  } else if (v.is_object() && v.size() == 1) {
    auto it = v.find("$real");
    if (it != v.end() && it->is_string()) {
      const std::string& s = it->get_ref<const std::string&>();
      double inf = std::numeric_limits<double>::infinity();
      v = (!s.empty() && s[0] == '-') ? -inf : inf;
    }
  }
}

Row MapImage(const BoundTable& t, Value&& image) {
  Row out = Row::object();
  for (const auto& [field, column] : t.binding.fields) {
    auto it = image.find(column);
    if (it == image.end()) continue;  // logged before the column was bound
    NormalizeValue(*it);
    out.emplace(field, std::move(*it));
  }
  return out;
}

}  // namespace duplex::sqlite
