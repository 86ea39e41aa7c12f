#include "connectors/postgres/postgres_connector.h"

#include <algorithm>

#include "connectors/binding.h"
#include "connectors/postgres/logical_capture.h"
#include "connectors/postgres/pg_types.h"
#include "connectors/postgres/trigger_capture.h"
#include "util/json_value.h"

namespace duplex::pg {

namespace {

std::unique_ptr<PgCapture> MakeCapture(PgEndpoint& ep, KeyMap& keys) {
  if (ep.opt.capture == CaptureMode::kTrigger) return std::make_unique<TriggerCapture>(ep, keys);
  return std::make_unique<LogicalCapture>(ep, keys);
}

}  // namespace

PostgresConnector::PostgresConnector(Options options)
    : ep_(std::move(options)),
      keys_(ep_),
      capture_(MakeCapture(ep_, keys_)),
      applier_(ep_, keys_, *capture_),
      installer_(ep_, keys_, *capture_, applier_) {}

PostgresConnector::~PostgresConnector() = default;

Status PostgresConnector::Open() { return ep_.EnsureDb(); }

Result<TableInfo> PostgresConnector::Describe(const std::string& table) {
  DUPLEX_RETURN_IF_ERROR(ep_.EnsureDb());
  Conn& db = ep_.db;
  DUPLEX_ASSIGN_OR_RETURN(
      PgResult res,
      db.Exec("SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
              "a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '', "
              "coalesce((SELECT k.n FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(att, n) "
              "WHERE k.att = a.attnum), 0), "
              // Generated: an identity column, or a sequence default (serial).
              "a.attidentity IN ('a', 'd') OR coalesce(pg_get_expr(d.adbin, d.adrelid) "
              "LIKE 'nextval(%', false), "
              // The kind (ColumnKindOf): a domain's is its base type's.
              "coalesce(bt.typcategory, t.typcategory), coalesce(bt.oid, t.oid)::int8 "
              "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
              "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
              "JOIN pg_type t ON t.oid = a.atttypid "
              "LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype "
              "LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
              "LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary "
              "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') "
              "ORDER BY a.attnum",
              {ep_.opt.schema, table}));
  TableInfo info;
  info.name = table;
  info.exists = PQntuples(res.get()) > 0;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    ColumnInfo col;
    col.name = PQgetvalue(res.get(), r, 0);
    col.type = PQgetvalue(res.get(), r, 1);
    col.not_null = PQgetvalue(res.get(), r, 2)[0] == 't';
    col.has_default = PQgetvalue(res.get(), r, 3)[0] == 't';
    col.pk = std::atoi(PQgetvalue(res.get(), r, 4));
    col.generated = PQgetvalue(res.get(), r, 5)[0] == 't';
    col.kind =
        ColumnKindOf(PQgetvalue(res.get(), r, 6)[0], std::atoll(PQgetvalue(res.get(), r, 7)));
    info.columns.push_back(std::move(col));
  }
  if (!info.exists) return info;
  // Foreign keys to tables of the same schema (the endpoint is one schema); columns in the
  // constraint's order, so that columns[i] references ref_columns[i].
  DUPLEX_ASSIGN_OR_RETURN(
      PgResult fks,
      db.Exec("SELECT rc.relname, con.condeferrable, "
              "(SELECT json_agg(a.attname ORDER BY k.n) FROM unnest(con.conkey) "
              "WITH ORDINALITY k(att, n) JOIN pg_attribute a ON a.attrelid = con.conrelid "
              "AND a.attnum = k.att)::text, "
              "(SELECT json_agg(a.attname ORDER BY k.n) FROM unnest(con.confkey) "
              "WITH ORDINALITY k(att, n) JOIN pg_attribute a ON a.attrelid = con.confrelid "
              "AND a.attnum = k.att)::text "
              "FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid "
              "JOIN pg_namespace n ON n.oid = c.relnamespace "
              "JOIN pg_class rc ON rc.oid = con.confrelid "
              "WHERE con.contype = 'f' AND n.nspname = $1 AND c.relname = $2 "
              "AND rc.relnamespace = n.oid ORDER BY con.conname",
              {ep_.opt.schema, table}));
  for (int r = 0; r < PQntuples(fks.get()); ++r) {
    ForeignKeyInfo fk;
    fk.ref_table = PQgetvalue(fks.get(), r, 0);
    fk.deferrable = PQgetvalue(fks.get(), r, 1)[0] == 't';
    for (const Value& c : Value::parse(PQgetvalue(fks.get(), r, 2))) {
      fk.columns.push_back(c.get<std::string>());
    }
    for (const Value& c : Value::parse(PQgetvalue(fks.get(), r, 3))) {
      fk.ref_columns.push_back(c.get<std::string>());
    }
    info.foreign_keys.push_back(std::move(fk));
  }
  return info;
}

Status PostgresConnector::Bind(std::vector<CollectionBinding> bindings) {
  DUPLEX_RETURN_IF_ERROR(ValidateBindings(ep_.Where(), bindings));
  ep_.tables.clear();
  ep_.by_table.clear();
  ep_.by_collection.clear();
  applier_.ClearStatements();
  ep_.types_loaded = false;
  for (CollectionBinding& b : bindings) {
    BoundTable t;
    for (const auto& [field, column] : b.fields) {
      t.column_of_field[field] = column;
      t.field_of_column[column] = field;
      t.columns.push_back(column);
    }
    for (const std::string& k : b.key) {
      t.key_fields.insert(k);
      t.key_columns.push_back(t.column_of_field.at(k));
    }
    t.binding = std::move(b);
    ep_.by_table[t.binding.table] = ep_.tables.size();
    ep_.by_collection[t.binding.collection] = ep_.tables.size();
    ep_.tables.push_back(std::move(t));
  }
  return keys_.Bind();
}

Result<std::vector<std::string>> PostgresConnector::Preflight() { return installer_.Preflight(); }

Result<bool> PostgresConnector::IsInstalled() { return installer_.IsInstalled(); }

Status PostgresConnector::Install() { return installer_.Install(); }

Status PostgresConnector::Uninstall() { return installer_.Uninstall(); }

Result<std::vector<std::string>> PostgresConnector::Warnings() { return capture_->Warnings(); }

// A connection the server dropped (a restart) fails on its first use after the server is back;
// it is reopened by the next call. Retrying once at once spares the endpoint a backoff.
template <typename F>
auto PostgresConnector::Reconnecting(F&& call) -> decltype(call()) {
  auto r = call();
  // Each of the three connections may be found dead in turn: a few rounds at most.
  for (int round = 0; round < 3 && !r.ok() && r.status().IsRetriable(); ++round) {
    const bool db_dead = ep_.db.get() != nullptr && ep_.db.Broken();
    const bool apply_dead = ep_.apply.get() != nullptr && ep_.apply.Broken();
    const bool stream_dead = capture_->Dead();
    if (!db_dead && !apply_dead && !stream_dead) break;
    if (db_dead) ep_.db.Close();
    if (apply_dead) applier_.Reset();
    r = call();
  }
  return r;
}

Result<bool> PostgresConnector::Poll() {
  return Reconnecting([&] { return capture_->Poll(); });
}

Result<ChangeBatch> PostgresConnector::Capture(const Position& from, size_t max_changes) {
  return Reconnecting([&] { return capture_->Capture(from, max_changes); });
}

Result<ApplyResult> PostgresConnector::Apply(const std::vector<ApplyBatch>& batches,
                                             bool isolate_txns) {
  return Reconnecting([&] { return applier_.Apply(batches, isolate_txns); });
}

Result<int64_t> PostgresConnector::Backlog(const Position& from) { return capture_->Backlog(from); }

Status PostgresConnector::Ack(const Position& upto) { return capture_->Ack(upto); }

std::string PostgresConnector::DescribePosition(const Position& p) const {
  if (ep_.opt.capture != CaptureMode::kLogical) return PositionText(p);
  return FormatLsn(static_cast<uint64_t>(p.ToInt()));
}

Result<RestoreCheck> PostgresConnector::CheckRestored(const Position& captured_pos,
                                                      const Position& acked) {
  DUPLEX_RETURN_IF_ERROR(ep_.EnsureDb());
  DUPLEX_ASSIGN_OR_RETURN(bool exists, ep_.ObjectsExist());
  if (!exists) {
    RestoreCheck check{"", captured_pos};
    if (!captured_pos.IsStart()) {
      check.reason =
          "duplex's tables are gone from it (a dump from before duplex was installed, or a new "
          "database?)";
      check.resume = Position::FromInt(0);
    }
    return check;
  }
  return capture_->CheckRestored(captured_pos, acked);
}

Status PostgresConnector::Scan(const std::string& collection, size_t max_rows,
                               const std::function<Status(std::vector<Change>&&)>& visit) {
  DUPLEX_RETURN_IF_ERROR(ep_.EnsureDb());
  DUPLEX_RETURN_IF_ERROR(ep_.LoadTypes());
  const BoundTable* t = ep_.ByCollection(collection);
  if (t == nullptr) {
    return Status::InvalidArgument(ep_.Where() + ": collection '" + collection + "' is not bound");
  }
  DUPLEX_ASSIGN_OR_RETURN(std::string image, ep_.ImageSql(*t, "s."));
  std::vector<std::string> keys, key_texts, params;
  int i = 1;
  for (const std::string& c : t->key_columns) {
    keys.push_back("s." + QuoteIdent(c));
    key_texts.push_back("(s." + QuoteIdent(c) + ")::text");
    params.push_back(Placeholder(i++) + "::" + t->type_of_column.at(c));
  }
  // In key order, a chunk a query: no transaction held open, no row locked.
  const std::string base = "SELECT " + image + ", jsonb_build_array(" + Join(key_texts, ", ") +
                           ") FROM " + ep_.Q(t->binding.table) + " s";
  const std::string after = " WHERE (" + Join(keys, ", ") + ") > (" + Join(params, ", ") + ")";
  const int64_t limit = static_cast<int64_t>(std::max<size_t>(max_rows, 1));
  const std::string order = " ORDER BY " + Join(keys, ", ") + " LIMIT " + std::to_string(limit);
  Value last_key;
  size_t unit = 0;
  while (true) {
    std::vector<Param> args;
    if (last_key.is_array()) {
      for (const Value& v : last_key) args.push_back(v.is_null() ? Param() : v.get<std::string>());
    }
    Result<PgResult> rows = ep_.db.Exec(base + (args.empty() ? "" : after) + order, args);
    if (!rows.ok()) return rows.status().WithContext(ep_.Where(t->binding.table));
    const int n = PQntuples(rows->get());
    std::vector<Change> chunk;
    chunk.reserve(static_cast<size_t>(n));
    for (int r = 0; r < n; ++r) {
      Change c;
      c.op = Op::kPresent;
      c.collection = collection;
      c.after = ep_.ImageToRow(*t, Value::parse(PQgetvalue(rows->get(), r, 0)));
      c.key = KeyOf(t->binding.key, c.after);
      c.txn = MadeUpTxn(unit++);  // one unit each
      chunk.push_back(std::move(c));
      if (r == n - 1) last_key = Value::parse(PQgetvalue(rows->get(), r, 1));
    }
    DUPLEX_RETURN_IF_ERROR(keys_.PresentRecords(&chunk));
    if (!chunk.empty()) DUPLEX_RETURN_IF_ERROR(visit(std::move(chunk)));
    if (n < limit) break;
  }
  return Status::Ok();
}

Result<int64_t> PostgresConnector::AppliedId() {
  DUPLEX_RETURN_IF_ERROR(ep_.EnsureDb());
  return capture_->AppliedId();
}

}  // namespace duplex::pg
