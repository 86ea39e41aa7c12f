#include "connectors/postgres/endpoint.h"

#include "connectors/binding.h"
#include "connectors/postgres/pg_types.h"
#include "util/json_value.h"

namespace duplex::pg {

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

Row KeyOf(const std::vector<std::string>& key_fields, const Row& image) {
  Row key = Row::object();
  for (const std::string& k : key_fields) key[k] = image.value(k, Value());
  return key;
}

bool AppendRowChange(Change c, const Row& old_key, const std::vector<std::string>& key_fields,
                     std::vector<Change>* out) {
  const bool moved = c.op == Op::kUpdate && old_key.is_object() &&
                     KeyText(old_key, key_fields) != KeyText(c.key, key_fields);
  if (moved) {
    Change del;
    del.op = Op::kDelete;
    del.collection = c.collection;
    del.position = c.position;
    del.commit_ms = c.commit_ms;
    del.txn = c.txn;
    del.key = old_key;
    del.before = c.before;
    out->push_back(std::move(del));
    c.op = Op::kInsert;
    c.before = Row();
  }
  out->push_back(std::move(c));
  return moved;
}

std::string PgEndpoint::Where() const {
  return "endpoint '" + opt.name + "' (postgres, schema " + opt.schema + ")";
}

std::string PgEndpoint::Where(const std::string& table) const {
  return Where() + ", table '" + table + "'";
}

std::string PgEndpoint::Q(const std::string& name) const {
  return QuoteIdent(opt.schema) + "." + QuoteIdent(name);
}

Status PgEndpoint::Connect(Conn& conn) {
  Status st = conn.Connect(opt.dsn, false, Where());
  // The server refuses connections: most often it is shutting down or restarting. A fast
  // shutdown ends the regular backends at once but keeps a walsender until its client has
  // confirmed all the WAL sent (up to wal_sender_timeout, 60 s by default), and the stream is
  // read only through calls that first need this connection. Let go of it now so that the
  // shutdown need not wait for it; it starts again from the slot's confirmed position.
  if (!st.ok() && on_refused) on_refused();
  return st;
}

Status PgEndpoint::EnsureDb() {
  if (db.connected()) return Status::Ok();
  DUPLEX_RETURN_IF_ERROR(Connect(db));
  types_loaded = false;
  return Status::Ok();
}

const BoundTable* PgEndpoint::ByCollection(const std::string& c) const {
  auto it = by_collection.find(c);
  return it == by_collection.end() ? nullptr : &tables[it->second];
}

Status PgEndpoint::LoadTypes() {
  if (types_loaded) return Status::Ok();
  DUPLEX_RETURN_IF_ERROR(EnsureDb());
  for (BoundTable& t : tables) {
    DUPLEX_ASSIGN_OR_RETURN(
        PgResult res,
        db.Exec("SELECT a.attname, a.atttypid::int8, format_type(a.atttypid, a.atttypmod) "
                "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
                {opt.schema, t.binding.table}));
    for (int r = 0; r < PQntuples(res.get()); ++r) {
      std::string col = PQgetvalue(res.get(), r, 0);
      t.oid_of_column[col] = static_cast<Oid>(std::atoll(PQgetvalue(res.get(), r, 1)));
      t.type_of_column[col] = PQgetvalue(res.get(), r, 2);
    }
    for (const std::string& c : t.columns) {
      if (!t.oid_of_column.count(c)) {
        return Status::InvalidArgument(Where(t.binding.table) + ": no column '" + c +
                                       "' (or no such table)");
      }
    }
  }
  types_loaded = true;
  return Status::Ok();
}

Result<bool> PgEndpoint::ObjectsExist() {
  // Once seen, they stay until Uninstall: polls, captures and acks need not ask again.
  if (objects_exist) return true;
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> v,
      db.Scalar("SELECT to_regclass($1) IS NOT NULL",
                {QuoteIdent(opt.schema) + "." + QuoteIdent(TableName("tables"))}));
  objects_exist = v.value_or("f") == "t";
  return objects_exist;
}

Result<std::string> PgEndpoint::ImageSql(const BoundTable& t, const std::string& prefix) const {
  // jsonb_build_object takes at most 100 arguments: chunks of 40 columns joined with ||.
  std::vector<std::string> chunks;
  std::string cur;
  int n = 0;
  for (const std::string& c : t.columns) {
    if (n == 40) {
      chunks.push_back("jsonb_build_object(" + cur + ")");
      cur.clear();
      n = 0;
    }
    cur += (cur.empty() ? "" : ", ") + QuoteLiteral(c) + ", (" + prefix + QuoteIdent(c) + ")::text";
    ++n;
  }
  chunks.push_back("jsonb_build_object(" + cur + ")");
  return Join(chunks, " || ");
}

std::string PgEndpoint::KeyTextSql(const BoundTable& t, const std::string& prefix) const {
  std::vector<std::string> parts;
  for (const std::string& c : t.key_columns)
    parts.push_back("(" + prefix + QuoteIdent(c) + ")::text");
  return "jsonb_build_array(" + Join(parts, ", ") + ")::text";
}

Row PgEndpoint::ImageToRow(const BoundTable& t, const Value& image) const {
  if (!image.is_object()) return Row();
  Row row = Row::object();
  for (const auto& [col, v] : image.items()) {
    auto f = t.field_of_column.find(col);
    if (f == t.field_of_column.end()) continue;
    auto oid = t.oid_of_column.find(col);
    row[f->second] = v.is_string() ? FromText(oid == t.oid_of_column.end() ? 0 : oid->second,
                                              v.get_ref<const std::string&>())
                                   : Value();
  }
  return row;
}

}  // namespace duplex::pg
