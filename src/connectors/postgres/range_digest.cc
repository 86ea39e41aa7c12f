// Reconcile's key-range digests computed by the server (include/duplex/connector.h,
// KeyRanges): one aggregate query per level, so that two tables that agree cost a few
// kilobytes on the wire. The hashes are duplex's own (KeyHash, RowHash: MD5 of the JSON text of
// the values), so they are computed in SQL only where the server renders each value's JSON text
// exactly as duplex does; other tables take the generic scan.

#include <libpq-fe.h>

#include <algorithm>
#include <cstdlib>

#include "connectors/postgres/pg_types.h"
#include "connectors/postgres/postgres_connector.h"

namespace duplex::pg {

namespace {

// The JSON text of a column's value as duplex renders the value FromText makes of it; ""
// where the server's rendering could differ (floats, numerics, timestamps, json, arrays...).
std::string JsonTextSql(Oid type, const std::string& col) {
  switch (type) {
    case kInt2Oid:
    case kInt4Oid:
    case kInt8Oid:
      return "COALESCE((" + col + ")::text, 'null')";
    case kBoolOid:
      return "COALESCE(CASE WHEN " + col + " THEN 'true' ELSE 'false' END, 'null')";
    case 25:    // text
    case 1043:  // varchar
    case kUuidOid:
    case 1082:  // date
      // to_json escapes as duplex's JSON writer does (\" \\ \b \f \n \r \t, \u00xx below 0x20).
      return "COALESCE(to_json((" + col + ")::text)::text, 'null')";
    default:
      return "";
  }
}

// The first 8 bytes of md5(`text_sql`), as a bigint (KeyHash and RowHash, signed).
std::string Md5Prefix(const std::string& text_sql) {
  return "('x' || substr(md5(" + text_sql + "), 1, 16))::bit(64)::bigint";
}

// "((kh >> (64 - bits)) & mask)": the top `bits` bits of a hash.
std::string TopBits(const std::string& hash, int bits) {
  const uint64_t mask = bits >= 63 ? ~uint64_t{0} >> 1 : (uint64_t{1} << bits) - 1;
  return "((" + hash + " >> " + std::to_string(64 - bits) + ") & " + std::to_string(mask) + ")";
}

// A numeric's text (a sum of bigints) mod 2^64.
uint64_t Mod64(const char* text) {
  bool negative = *text == '-';
  if (negative) ++text;
  uint64_t v = 0;
  for (; *text >= '0' && *text <= '9'; ++text) v = v * 10 + static_cast<uint64_t>(*text - '0');
  return negative ? ~v + 1 : v;
}

// The filter of rows in `within` ("" for every row), over key hash `kh`; the prefixes as $1.
std::string RangeFilter(const KeyRanges& within, const std::string& kh, std::vector<Param>* args) {
  if (within.bits <= 0) return "";
  std::string list = "{";
  for (size_t i = 0; i < within.prefixes.size(); ++i) {
    list += (i ? "," : "") + std::to_string(within.prefixes[i]);
  }
  args->push_back(list + "}");
  return " WHERE " + TopBits(kh, within.bits) + " = ANY($1::bigint[])";
}

}  // namespace

Result<std::optional<PostgresConnector::HashSql>> PostgresConnector::HashSqlFor(
    const KeyRanges& within) {
  DUPLEX_RETURN_IF_ERROR(ep_.EnsureDb());
  DUPLEX_RETURN_IF_ERROR(ep_.LoadTypes());
  const BoundTable* t = ep_.ByCollection(within.collection);
  if (t == nullptr) {
    return Status::InvalidArgument(ep_.Where() + ": collection '" + within.collection +
                                   "' is not bound");
  }
  if (t->binding.mapped_key || !t->binding.mapped_refs.empty()) return std::optional<HashSql>();
  auto values = [&](const std::vector<std::string>& fields) -> std::optional<std::string> {
    std::vector<std::string> parts;
    for (const std::string& f : fields) {
      auto col = t->column_of_field.find(f);
      if (col == t->column_of_field.end()) return std::nullopt;
      auto oid = t->oid_of_column.find(col->second);
      const std::string sql = JsonTextSql(oid == t->oid_of_column.end() ? 0 : oid->second,
                                          "s." + QuoteIdent(col->second));
      if (sql.empty()) return std::nullopt;
      parts.push_back(sql);
    }
    return "'[' || " + Join(parts, " || ',' || ") + " || ']'";
  };
  std::optional<std::string> key = values(within.key), row = values(within.fields);
  if (!key || !row) return std::optional<HashSql>();
  return std::optional<HashSql>(HashSql{t, Md5Prefix(*key), Md5Prefix(*row)});
}

Result<std::vector<RangeDigest>> PostgresConnector::DigestRanges(const KeyRanges& within,
                                                                 int split_bits) {
  DUPLEX_ASSIGN_OR_RETURN(std::optional<HashSql> hash, HashSqlFor(within));
  if (!hash) return DigestRangesByScan(*this, within, split_bits);
  std::vector<Param> args;
  const std::string sql = "SELECT " + TopBits("kh", within.bits + split_bits) +
                          ", count(*), sum(rh)::text FROM (SELECT " + hash->key_hash + " AS kh, " +
                          hash->row_hash + " AS rh FROM " + ep_.Q(hash->table->binding.table) +
                          " s) h" + RangeFilter(within, "kh", &args) + " GROUP BY 1";
  Result<PgResult> rows = ep_.db.Exec(sql, args);
  if (!rows.ok()) return rows.status().WithContext(ep_.Where(hash->table->binding.table));
  std::vector<RangeDigest> out;
  const int n = PQntuples(rows->get());
  out.reserve(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) {
    RangeDigest d;
    d.prefix = std::strtoull(PQgetvalue(rows->get(), r, 0), nullptr, 10);
    d.rows = std::strtoll(PQgetvalue(rows->get(), r, 1), nullptr, 10);
    d.sum = Mod64(PQgetvalue(rows->get(), r, 2));
    out.push_back(d);
  }
  return out;
}

Status PostgresConnector::ScanRanges(const KeyRanges& within, size_t max_rows,
                                     const std::function<Status(std::vector<Change>&&)>& visit) {
  DUPLEX_ASSIGN_OR_RETURN(std::optional<HashSql> hash, HashSqlFor(within));
  if (!hash) return ScanRangesByScan(*this, within, max_rows, visit);
  const BoundTable& t = *hash->table;
  DUPLEX_ASSIGN_OR_RETURN(std::string image, ep_.ImageSql(t, "s."));
  std::vector<Param> args;
  const std::string sql = "SELECT img FROM (SELECT " + image + " AS img, " + hash->key_hash +
                          " AS kh FROM " + ep_.Q(t.binding.table) + " s) h" +
                          RangeFilter(within, "kh", &args);
  Result<PgResult> rows = ep_.db.Exec(sql, args);
  if (!rows.ok()) return rows.status().WithContext(ep_.Where(t.binding.table));
  const int n = PQntuples(rows->get());
  const size_t chunk_rows = std::max<size_t>(max_rows, 1);
  std::vector<Change> chunk;
  for (int r = 0; r < n; ++r) {
    Change c;
    c.op = Op::kPresent;
    c.collection = within.collection;
    c.after = ep_.ImageToRow(t, Value::parse(PQgetvalue(rows->get(), r, 0)));
    c.key = KeyOf(t.binding.key, c.after);
    c.txn = MadeUpTxn(chunk.size());
    chunk.push_back(std::move(c));
    if (chunk.size() >= chunk_rows || r == n - 1) {
      DUPLEX_RETURN_IF_ERROR(visit(std::move(chunk)));
      chunk.clear();
    }
  }
  return Status::Ok();
}

}  // namespace duplex::pg
