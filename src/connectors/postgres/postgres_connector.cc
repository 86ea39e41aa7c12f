#include "connectors/postgres/postgres_connector.h"

#include <algorithm>
#include <chrono>

#include "connectors/binding.h"
#include "connectors/postgres/pg_types.h"
#include "util/json_value.h"

namespace duplex::pg {

namespace {

// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
constexpr int64_t kPgEpochMs = 946684800LL * 1000;

// Types without an equality operator: compared as text.
bool CompareAsText(Oid oid) {
  return oid == 114 /* json */ || oid == 142 /* xml */ || (oid >= 600 && oid <= 604) ||
         oid == 628 /* line */ || oid == 718 /* circle */;
}

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

std::string Placeholder(int i) { return "$" + std::to_string(i); }

// The key fields of a row image (null where the image lacks one).
Row KeyOf(const std::vector<std::string>& key_fields, const Row& image) {
  Row key = Row::object();
  for (const std::string& k : key_fields) key[k] = image.value(k, Value());
  return key;
}

// Appends a captured row change. An update whose old key (`old_key`, null if the source did not
// send one) differs from its new one moved the row: for duplex the old record is gone and a new
// one exists, so it becomes a delete and an insert at the same position. Returns whether it did.
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

}  // namespace

PostgresConnector::PostgresConnector(Options options) : opt_(std::move(options)) {}

PostgresConnector::~PostgresConnector() = default;

std::string PostgresConnector::Where() const {
  return "endpoint '" + opt_.name + "' (postgres, schema " + opt_.schema + ")";
}

std::string PostgresConnector::Where(const std::string& table) const {
  return Where() + ", table '" + table + "'";
}

std::string PostgresConnector::Q(const std::string& name) const {
  return QuoteIdent(opt_.schema) + "." + QuoteIdent(name);
}

Status PostgresConnector::Connect(Conn& conn, bool origin_session) {
  if (Status st = conn.Connect(opt_.dsn, false, Where()); !st.ok()) {
    // The server refuses connections: most often it is shutting down or restarting. A fast
    // shutdown ends the regular backends at once but keeps a walsender until its client has
    // confirmed all the WAL sent (up to wal_sender_timeout, 60 s by default), and the stream is
    // read only through calls that first need this connection. Let go of it now so that the
    // shutdown need not wait for it; it starts again from the slot's confirmed position.
    stream_.Close();
    return st;
  }
  if (origin_session && opt_.capture == CaptureMode::kLogical) {
    Status st =
        conn.Exec("SELECT pg_replication_origin_session_setup($1)", {OriginName()}).status();
    if (!st.ok()) {
      conn.Close();
      return st;
    }
  }
  return Status::Ok();
}

Status PostgresConnector::EnsureDb() {
  if (db_.connected()) return Status::Ok();
  DUPLEX_RETURN_IF_ERROR(Connect(db_, false));
  types_loaded_ = false;
  return Status::Ok();
}

Status PostgresConnector::Open() { return EnsureDb(); }

Result<TableInfo> PostgresConnector::Describe(const std::string& table) {
  DUPLEX_RETURN_IF_ERROR(EnsureDb());
  DUPLEX_ASSIGN_OR_RETURN(
      PgResult res,
      db_.Exec("SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
               "a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '', "
               "coalesce((SELECT k.n FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(att, n) "
               "WHERE k.att = a.attnum), 0), "
               // Generated: an identity column, or a sequence default (serial).
               "a.attidentity IN ('a', 'd') OR coalesce(pg_get_expr(d.adbin, d.adrelid) "
               "LIKE 'nextval(%', false) "
               "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
               "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
               "LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
               "LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary "
               "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') "
               "ORDER BY a.attnum",
               {opt_.schema, table}));
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
    info.columns.push_back(std::move(col));
  }
  if (!info.exists) return info;
  // Foreign keys to tables of the same schema (the endpoint is one schema); columns in the
  // constraint's order, so that columns[i] references ref_columns[i].
  DUPLEX_ASSIGN_OR_RETURN(
      PgResult fks,
      db_.Exec("SELECT rc.relname, con.condeferrable, "
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
               {opt_.schema, table}));
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
  DUPLEX_RETURN_IF_ERROR(ValidateBindings(Where(), bindings));
  tables_.clear();
  by_table_.clear();
  by_collection_.clear();
  stmts_.clear();
  types_loaded_ = false;
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
    by_table_[t.binding.table] = tables_.size();
    by_collection_[t.binding.collection] = tables_.size();
    tables_.push_back(std::move(t));
  }
  records_.clear();
  records_cached_ = 0;
  any_records_ = false;
  for (BoundTable& t : tables_) {
    if (t.binding.mapped_key) t.record_table[t.binding.key.front()] = t.binding.table;
    for (const auto& [field, collection] : t.binding.mapped_refs) {
      const std::string at = Where(t.binding.table) + ", field '" + field + "'";
      if (!t.column_of_field.count(field)) {
        return Status::InvalidArgument(at + ": references collection '" + collection +
                                       "' but is not a mapped field");
      }
      const BoundTable* ref = ByCollection(collection);
      if (ref == nullptr || !ref->binding.mapped_key) {
        return Status::InvalidArgument(
            at + ": references collection '" + collection +
            "', which is not bound to this endpoint with a mapped key (its record ids could "
            "not be translated)");
      }
      t.record_table[field] = ref->binding.table;
    }
    any_records_ = any_records_ || !t.record_table.empty();
  }
  return Status::Ok();
}

const PostgresConnector::BoundTable* PostgresConnector::ByCollection(const std::string& c) const {
  auto it = by_collection_.find(c);
  return it == by_collection_.end() ? nullptr : &tables_[it->second];
}

Status PostgresConnector::LoadTypes() {
  if (types_loaded_) return Status::Ok();
  DUPLEX_RETURN_IF_ERROR(EnsureDb());
  for (BoundTable& t : tables_) {
    DUPLEX_ASSIGN_OR_RETURN(
        PgResult res,
        db_.Exec("SELECT a.attname, a.atttypid::int8, format_type(a.atttypid, a.atttypmod) "
                 "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                 "JOIN pg_namespace n ON n.oid = c.relnamespace "
                 "WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
                 {opt_.schema, t.binding.table}));
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
  types_loaded_ = true;
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Preflight, install, uninstall

Result<std::vector<std::string>> PostgresConnector::Preflight() {
  DUPLEX_RETURN_IF_ERROR(EnsureDb());
  std::vector<std::string> problems;
  DUPLEX_ASSIGN_OR_RETURN(
      PgResult role,
      db_.Exec("SELECT rolsuper, rolreplication, current_user, current_database() FROM pg_roles "
               "WHERE rolname = current_user"));
  const bool super = PQntuples(role.get()) > 0 && PQgetvalue(role.get(), 0, 0)[0] == 't';
  const bool repl = PQntuples(role.get()) > 0 && PQgetvalue(role.get(), 0, 1)[0] == 't';
  const std::string user = PQntuples(role.get()) > 0 ? PQgetvalue(role.get(), 0, 2) : "?";
  const std::string dbname = PQntuples(role.get()) > 0 ? PQgetvalue(role.get(), 0, 3) : "?";
  if (opt_.capture == CaptureMode::kLogical) {
    DUPLEX_ASSIGN_OR_RETURN(std::optional<std::string> wal, db_.Scalar("SHOW wal_level"));
    if (wal.value_or("") != "logical") {
      problems.push_back("wal_level is '" + wal.value_or("") +
                         "', logical capture needs 'logical': run ALTER SYSTEM SET wal_level = "
                         "logical; and restart the server (or set capture = \"trigger\")");
    }
    DUPLEX_ASSIGN_OR_RETURN(
        PgResult slots,
        db_.Exec("SELECT current_setting('max_replication_slots')::int, "
                 "(SELECT count(*) FROM pg_replication_slots), "
                 "EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1), "
                 "current_setting('max_wal_senders')::int",
                 {SlotName()}));
    const int max_slots = std::atoi(PQgetvalue(slots.get(), 0, 0));
    const int used = std::atoi(PQgetvalue(slots.get(), 0, 1));
    const bool ours = PQgetvalue(slots.get(), 0, 2)[0] == 't';
    if (!ours && used >= max_slots) {
      problems.push_back("all " + std::to_string(max_slots) +
                         " replication slots are in use (max_replication_slots): run ALTER SYSTEM "
                         "SET max_replication_slots = " +
                         std::to_string(max_slots + 4) + "; and restart the server");
    }
    if (std::atoi(PQgetvalue(slots.get(), 0, 3)) < 1) {
      problems.push_back(
          "max_wal_senders is 0: run ALTER SYSTEM SET max_wal_senders = 10; and "
          "restart the server");
    }
    if (!super && !repl) {
      problems.push_back("role '" + user + "' may not stream changes: run ALTER ROLE " +
                         QuoteIdent(user) + " REPLICATION;");
    }
    if (!super) {
      DUPLEX_ASSIGN_OR_RETURN(
          std::optional<std::string> can,
          db_.Scalar("SELECT has_function_privilege('pg_replication_origin_session_setup(text)', "
                     "'EXECUTE') AND has_function_privilege("
                     "'pg_replication_origin_xact_setup(pg_lsn, timestamptz)', 'EXECUTE')"));
      if (can.value_or("f") != "t") {
        problems.push_back(
            "role '" + user +
            "' may not use replication origins (duplex's echo marker): as a superuser run "
            "GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text), "
            "pg_replication_origin_drop(text), pg_replication_origin_session_setup(text), "
            "pg_replication_origin_xact_setup(pg_lsn, timestamptz), "
            "pg_replication_origin_progress(text, boolean) TO " +
            QuoteIdent(user) + ";");
      }
      DUPLEX_ASSIGN_OR_RETURN(
          std::optional<std::string> create,
          db_.Scalar("SELECT has_database_privilege(current_database(), 'CREATE')"));
      if (create.value_or("f") != "t") {
        problems.push_back("role '" + user +
                           "' may not create the publication: run GRANT CREATE "
                           "ON DATABASE " +
                           QuoteIdent(dbname) + " TO " + QuoteIdent(user) + ";");
      }
    }
  }
  DUPLEX_ASSIGN_OR_RETURN(std::optional<std::string> schema_ok,
                          db_.Scalar("SELECT has_schema_privilege($1, 'CREATE')", {opt_.schema}));
  if (schema_ok.value_or("f") != "t") {
    problems.push_back("role '" + user +
                       "' may not create duplex's bookkeeping tables in schema '" + opt_.schema +
                       "': run GRANT CREATE ON SCHEMA " + QuoteIdent(opt_.schema) + " TO " +
                       QuoteIdent(user) + ";");
  }
  for (const BoundTable& t : tables_) {
    DUPLEX_ASSIGN_OR_RETURN(
        PgResult rel,
        db_.Exec("SELECT c.relreplident, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid "
                 "AND i.indisprimary), pg_has_role(c.relowner, 'USAGE'), "
                 "has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE') "
                 "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                 "WHERE n.nspname = $1 AND c.relname = $2",
                 {opt_.schema, t.binding.table}));
    const std::string name = QuoteIdent(opt_.schema) + "." + QuoteIdent(t.binding.table);
    if (PQntuples(rel.get()) == 0) {
      problems.push_back("table " + name + " does not exist");
      continue;
    }
    const char ident = PQgetvalue(rel.get(), 0, 0)[0];
    const bool pk = PQgetvalue(rel.get(), 0, 1)[0] == 't';
    if (!pk) {
      problems.push_back("table " + name +
                         " has no primary key: duplex matches rows by key; run "
                         "ALTER TABLE " +
                         name + " ADD PRIMARY KEY (...);");
    } else if (ident == 'n' && opt_.capture == CaptureMode::kLogical) {
      // Publishing a table without replica identity makes the APPLICATION's updates fail.
      problems.push_back("table " + name +
                         " has REPLICA IDENTITY NOTHING, so publishing it would "
                         "make the application's UPDATE and DELETE fail: run ALTER TABLE " +
                         name + " REPLICA IDENTITY DEFAULT;");
    }
    if (!super && PQgetvalue(rel.get(), 0, 2)[0] != 't') {
      problems.push_back("role '" + user + "' does not own table " + name + ", which " +
                         (opt_.capture == CaptureMode::kLogical ? "adding it to a publication needs"
                                                                : "creating its triggers needs") +
                         ": run ALTER TABLE " + name + " OWNER TO " + QuoteIdent(user) + ";");
    }
    if (PQgetvalue(rel.get(), 0, 3)[0] != 't') {
      problems.push_back("role '" + user + "' may not read and write table " + name +
                         ": run GRANT SELECT, INSERT, UPDATE, DELETE ON " + name + " TO " +
                         QuoteIdent(user) + ";");
    }
  }
  return problems;
}

Result<bool> PostgresConnector::ObjectsExist() {
  // Once seen, they stay until Uninstall: polls, captures and acks need not ask again.
  if (objects_exist_) return true;
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> v,
      db_.Scalar("SELECT to_regclass($1) IS NOT NULL",
                 {QuoteIdent(opt_.schema) + "." + QuoteIdent(TableName("tables"))}));
  objects_exist_ = v.value_or("f") == "t";
  return objects_exist_;
}

Result<bool> PostgresConnector::IsInstalled() {
  DUPLEX_RETURN_IF_ERROR(EnsureDb());
  DUPLEX_ASSIGN_OR_RETURN(bool exists, ObjectsExist());
  if (!exists) return false;
  if (opt_.capture == CaptureMode::kLogical) {
    DUPLEX_ASSIGN_OR_RETURN(
        std::optional<std::string> ok,
        db_.Scalar("SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1) AND "
                   "EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1) AND "
                   "EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)",
                   {SlotName()}));
    if (ok.value_or("f") != "t") return false;
  }
  // Installed by an older duplex: no key map (or, trigger mode, no txn column in the log).
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> current,
      db_.Scalar("SELECT to_regclass($1) IS NOT NULL AND ($2 = '' OR EXISTS (SELECT 1 FROM "
                 "pg_attribute WHERE attrelid = to_regclass($2) AND attname = 'txn' AND NOT "
                 "attisdropped))",
                 {Q(TableName("keymap")),
                  opt_.capture == CaptureMode::kTrigger ? Q(TableName("log")) : std::string()}));
  if (current.value_or("f") != "t") return false;
  DUPLEX_ASSIGN_OR_RETURN(
      PgResult res, db_.Exec("SELECT tbl, columns, snapshot_done FROM " + Q(TableName("tables"))));
  std::map<std::string, std::pair<std::string, bool>> have;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    have[PQgetvalue(res.get(), r, 0)] = {PQgetvalue(res.get(), r, 1),
                                         PQgetvalue(res.get(), r, 2)[0] == 't'};
  }
  if (have.size() != tables_.size()) return false;
  for (const BoundTable& t : tables_) {
    auto it = have.find(t.binding.table);
    if (it == have.end() || !it->second.second) return false;
    if (Value::parse(it->second.first) != Value(t.columns)) return false;
  }
  if (opt_.capture == CaptureMode::kLogical) {
    DUPLEX_ASSIGN_OR_RETURN(
        PgResult pub, db_.Exec("SELECT tablename FROM pg_publication_tables WHERE pubname = $1 "
                               "AND schemaname = $2",
                               {PublicationName(), opt_.schema}));
    if (PQntuples(pub.get()) != static_cast<int>(tables_.size())) return false;
  }
  return true;
}

Status PostgresConnector::Install() {
  DUPLEX_RETURN_IF_ERROR(EnsureDb());
  DUPLEX_ASSIGN_OR_RETURN(std::vector<std::string> problems, Preflight());
  if (!problems.empty()) {
    return Status::InvalidArgument(Where() + ": cannot install capture:\n  - " +
                                   Join(problems, "\n  - "));
  }
  DUPLEX_RETURN_IF_ERROR(LoadTypes());
  stmts_.clear();
  apply_.Close();
  const std::string registry = Q(TableName("tables"));
  DUPLEX_RETURN_IF_ERROR(db_.Run(
      "CREATE TABLE IF NOT EXISTS " + registry +
      " (tbl text PRIMARY KEY, columns jsonb NOT NULL, snapshot_done boolean NOT NULL DEFAULT "
      "false, last_key jsonb)"));
  // The key map (README "Mapped keys"): written by apply in the row's transaction, never
  // published nor captured. `native` is the native key as JSON, exactly as RecordId prints it.
  const std::string keymap = Q(TableName("keymap"));
  const std::string own = QuoteLiteral(opt_.name + ":");
  DUPLEX_RETURN_IF_ERROR(
      db_.Run("CREATE TABLE IF NOT EXISTS " + keymap +
              " (tbl text NOT NULL, record text NOT NULL, native text NOT NULL, "
              "PRIMARY KEY (tbl, record), UNIQUE (tbl, native));"
              "CREATE OR REPLACE FUNCTION " +
              Q(TableName("native")) +
              "(p_tbl text, p_record text, p_refusal text) RETURNS text LANGUAGE plpgsql STABLE "
              "AS $duplex$\n"
              "DECLARE n text;\n"
              "BEGIN\n"
              "  IF p_record IS NULL THEN RETURN NULL; END IF;\n"
              "  SELECT m.native INTO n FROM " +
              keymap +
              " m WHERE m.tbl = p_tbl AND m.record = p_record;\n"
              // A record first seen here (OwnNativeKey): its native key is in its id.
              "  IF n IS NULL AND starts_with(p_record, " +
              own + ") THEN\n    n := substr(p_record, length(" + own +
              ") + 1);\n"
              "  END IF;\n"
              "  IF n IS NULL OR jsonb_typeof(n::jsonb) NOT IN ('number', 'string') THEN\n"
              "    IF p_refusal IS NOT NULL THEN\n"
              "      RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', "
              "MESSAGE = replace(p_refusal, '{record}', p_record);\n"
              "    END IF;\n"
              "    RETURN NULL;\n"
              "  END IF;\n"
              "  RETURN n::jsonb #>> '{}';\n"
              "END\n$duplex$"));

  if (opt_.capture == CaptureMode::kLogical) {
    // Publication: exactly the bound tables.
    std::vector<std::string> names;
    for (const BoundTable& t : tables_) names.push_back(Q(t.binding.table));
    DUPLEX_ASSIGN_OR_RETURN(
        std::optional<std::string> pub,
        db_.Scalar("SELECT 1 FROM pg_publication WHERE pubname = $1", {PublicationName()}));
    const std::string list = names.empty() ? "" : " TABLE " + Join(names, ", ");
    if (!pub) {
      DUPLEX_RETURN_IF_ERROR(db_.Run("CREATE PUBLICATION " + QuoteIdent(PublicationName()) +
                                     (names.empty() ? "" : " FOR" + list) +
                                     " WITH (publish = 'insert, update, delete')"));
    } else if (!names.empty()) {
      DUPLEX_RETURN_IF_ERROR(
          db_.Run("ALTER PUBLICATION " + QuoteIdent(PublicationName()) + " SET" + list));
    }
    DUPLEX_RETURN_IF_ERROR(db_.Exec("SELECT pg_replication_origin_create($1) WHERE NOT EXISTS "
                                    "(SELECT 1 FROM pg_replication_origin WHERE roname = $1)",
                                    {OriginName()})
                               .status());
    DUPLEX_ASSIGN_OR_RETURN(
        std::optional<std::string> slot,
        db_.Scalar("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", {SlotName()}));
    if (!slot) {
      DUPLEX_RETURN_IF_ERROR(
          db_.Exec("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", {SlotName()})
              .status());
    }
  } else {
    DUPLEX_RETURN_IF_ERROR(db_.Run(
        "CREATE TABLE IF NOT EXISTS " + Q(TableName("log")) +
        " (id bigserial PRIMARY KEY, pos bigint, tbl text NOT NULL, op \"char\" NOT NULL, "
        "pk text, old jsonb, new jsonb, apply_id bigint, snapshot boolean NOT NULL DEFAULT false, "
        "at timestamptz NOT NULL DEFAULT statement_timestamp());"
        // The writing transaction (Change::txn), filled by the default in the trigger's
        // transaction. Added to logs created before it; their old rows keep NULL (unknown).
        "ALTER TABLE " +
        Q(TableName("log")) +
        " ADD COLUMN IF NOT EXISTS txn bigint;"
        "ALTER TABLE " +
        Q(TableName("log")) +
        " ALTER COLUMN txn SET DEFAULT txid_current();"
        "CREATE INDEX IF NOT EXISTS " +
        QuoteIdent(TableName("log_unstamped")) + " ON " + Q(TableName("log")) +
        " (id) WHERE pos IS NULL;"
        "CREATE INDEX IF NOT EXISTS " +
        QuoteIdent(TableName("log_pos")) + " ON " + Q(TableName("log")) +
        " (pos);"
        "CREATE INDEX IF NOT EXISTS " +
        QuoteIdent(TableName("log_pk")) + " ON " + Q(TableName("log")) +
        " (tbl, pk);"
        "CREATE TABLE IF NOT EXISTS " +
        Q(TableName("applied")) +
        " (id int PRIMARY KEY CHECK (id = 1), apply_id bigint NOT NULL, stamped bigint NOT NULL);"
        "INSERT INTO " +
        Q(TableName("applied")) +
        " VALUES (1, 0, 0) ON CONFLICT DO NOTHING;"
        // The endpoint's own record of what duplex acked (CheckRestored).
        "CREATE TABLE IF NOT EXISTS " +
        Q(TableName("acked")) + " (id int PRIMARY KEY CHECK (id = 1), pos bigint NOT NULL)"));
  }

  // Per table: register (columns), then the initial load where it was not done yet.
  DUPLEX_ASSIGN_OR_RETURN(PgResult res, db_.Exec("SELECT tbl, snapshot_done FROM " + registry));
  std::map<std::string, bool> done;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    done[PQgetvalue(res.get(), r, 0)] = PQgetvalue(res.get(), r, 1)[0] == 't';
  }
  for (const BoundTable& t : tables_) {
    const bool snapshot = !done.count(t.binding.table) || !done[t.binding.table];
    if (opt_.capture == CaptureMode::kTrigger) {
      DUPLEX_RETURN_IF_ERROR(InstallTriggers(t, snapshot));
      continue;
    }
    DUPLEX_RETURN_IF_ERROR(
        db_.Exec("INSERT INTO " + registry +
                     " (tbl, columns) VALUES ($1, $2) ON CONFLICT (tbl) DO UPDATE SET columns = "
                     "excluded.columns",
                 {t.binding.table, Value(t.columns).dump()})
            .status());
    if (snapshot) DUPLEX_RETURN_IF_ERROR(SnapshotTable(t));
  }
  // Tables no longer bound: forget them (and their triggers).
  for (const auto& [tbl, d] : done) {
    if (by_table_.count(tbl)) continue;
    if (opt_.capture == CaptureMode::kTrigger) {
      DUPLEX_RETURN_IF_ERROR(db_.Run("DROP TRIGGER IF EXISTS " + QuoteIdent(TableName("capture")) +
                                     " ON " + Q(tbl) + "; DROP FUNCTION IF EXISTS " +
                                     Q(TableName("capture_" + tbl)) + "()"));
    }
    DUPLEX_RETURN_IF_ERROR(db_.Exec("DELETE FROM " + registry + " WHERE tbl = $1", {tbl}).status());
  }
  return Status::Ok();
}

Result<std::string> PostgresConnector::ImageSql(const BoundTable& t,
                                                const std::string& prefix) const {
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

std::string PostgresConnector::KeyTextSql(const BoundTable& t, const std::string& prefix) const {
  std::vector<std::string> parts;
  for (const std::string& c : t.key_columns)
    parts.push_back("(" + prefix + QuoteIdent(c) + ")::text");
  return "jsonb_build_array(" + Join(parts, ", ") + ")::text";
}

Status PostgresConnector::InstallTriggers(const BoundTable& t, bool snapshot) {
  const std::string fn = Q(TableName("capture_" + t.binding.table));
  DUPLEX_ASSIGN_OR_RETURN(std::string new_image, ImageSql(t, "NEW."));
  DUPLEX_ASSIGN_OR_RETURN(std::string old_image, ImageSql(t, "OLD."));
  DUPLEX_ASSIGN_OR_RETURN(std::string snap_image, ImageSql(t, "s."));
  std::vector<std::string> snap_keys;
  for (const std::string& c : t.key_columns) snap_keys.push_back("s." + QuoteIdent(c));
  const std::string log = Q(TableName("log"));
  const std::string tbl = QuoteLiteral(t.binding.table);
  // The function's own settings make every value's text the same whatever the application's
  // session uses (pg_types.h); SET LOCAL by duplex's apply session marks its own writes.
  std::string sql =
      "BEGIN;"
      "CREATE OR REPLACE FUNCTION " +
      fn +
      "() RETURNS trigger LANGUAGE plpgsql "
      "SET DateStyle = 'ISO' SET TimeZone = 'UTC' SET extra_float_digits = 3 "
      "SET IntervalStyle = 'postgres' SET bytea_output = 'hex' AS $duplex$\n"
      "DECLARE o jsonb; n jsonb;\n"
      "BEGIN\n"
      "  IF current_setting('duplex.origin', true) = " +
      QuoteLiteral(opt_.tag) +
      " THEN\n"
      "    RETURN NULL;\n"
      "  END IF;\n"
      "  IF TG_OP = 'INSERT' THEN\n"
      "    INSERT INTO " +
      log + " (tbl, op, pk, new) VALUES (" + tbl + ", 'I', " + KeyTextSql(t, "NEW.") + ", " +
      new_image +
      ");\n"
      "  ELSIF TG_OP = 'UPDATE' THEN\n"
      // Compared as text images: some types (json, point) have no equality operator.
      "    o := " +
      old_image +
      ";\n"
      "    n := " +
      new_image +
      ";\n"
      "    IF o IS DISTINCT FROM n THEN\n"
      "      INSERT INTO " +
      log + " (tbl, op, pk, old, new) VALUES (" + tbl + ", 'U', " + KeyTextSql(t, "NEW.") +
      ", o, n);\n"
      "      IF " +
      KeyTextSql(t, "OLD.") + " <> " + KeyTextSql(t, "NEW.") +
      " THEN\n"
      "        INSERT INTO " +
      log + " (tbl, op, pk) VALUES (" + tbl + ", 'K', " + KeyTextSql(t, "OLD.") +
      ");\n"
      "      END IF;\n"
      "    END IF;\n"
      "  ELSE\n"
      "    INSERT INTO " +
      log + " (tbl, op, pk, old) VALUES (" + tbl + ", 'D', " + KeyTextSql(t, "OLD.") + ", " +
      old_image +
      ");\n"
      "  END IF;\n"
      "  RETURN NULL;\n"
      "END\n$duplex$;"
      "DROP TRIGGER IF EXISTS " +
      QuoteIdent(TableName("capture")) + " ON " + Q(t.binding.table) +
      ";"
      "CREATE TRIGGER " +
      QuoteIdent(TableName("capture")) + " AFTER INSERT OR UPDATE OR DELETE ON " +
      Q(t.binding.table) + " FOR EACH ROW EXECUTE FUNCTION " + fn + "();";
  if (snapshot) {
    // In the transaction that created the trigger, which holds a lock that keeps writers out
    // until it commits: every row is either in the snapshot or logged by the trigger.
    sql +=
        "SET LOCAL DateStyle = 'ISO'; SET LOCAL TimeZone = 'UTC'; SET LOCAL "
        "extra_float_digits = 3;"
        "INSERT INTO " +
        log + " (tbl, op, pk, new, snapshot) SELECT " + tbl + ", 'I', " + KeyTextSql(t, "s.") +
        ", " + snap_image + ", true FROM " + Q(t.binding.table) + " s ORDER BY " +
        Join(snap_keys, ", ") + ";";
  }
  sql += "INSERT INTO " + Q(TableName("tables")) + " (tbl, columns, snapshot_done) VALUES (" + tbl +
         ", " + QuoteLiteral(Value(t.columns).dump()) +
         ", true) ON CONFLICT (tbl) DO UPDATE SET columns = excluded.columns, snapshot_done = "
         "true;"
         "COMMIT;";
  Status st = db_.Run(sql);
  if (!st.ok()) {
    (void)db_.Run("ROLLBACK");
    return st.WithContext(Where(t.binding.table));
  }
  return Status::Ok();
}

Status PostgresConnector::SnapshotTable(const BoundTable& t) {
  // Chunks in key order, each in its own transaction (README "initial load").
  const std::string registry = Q(TableName("tables"));
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> last,
      db_.Scalar("SELECT last_key::text FROM " + registry + " WHERE tbl = $1", {t.binding.table}));
  Value last_key = last ? Value::parse(*last) : Value();
  DUPLEX_ASSIGN_OR_RETURN(std::string image, ImageSql(t, "s."));
  std::vector<std::string> keys, key_texts, params;
  int i = 1;
  for (const std::string& c : t.key_columns) {
    keys.push_back("s." + QuoteIdent(c));
    key_texts.push_back("(s." + QuoteIdent(c) + ")::text");
    params.push_back(Placeholder(i++) + "::" + t.type_of_column.at(c));
  }
  const std::string base = "SELECT " + image + ", jsonb_build_array(" + Join(key_texts, ", ") +
                           ") FROM " + Q(t.binding.table) + " s";
  const std::string order = " ORDER BY " + Join(keys, ", ") + " LIMIT " +
                            std::to_string(kSnapshotChunkRows) + " FOR SHARE";
  const std::string after = " WHERE (" + Join(keys, ", ") + ") > (" + Join(params, ", ") + ")";
  while (true) {
    DUPLEX_RETURN_IF_ERROR(db_.Run("BEGIN"));
    std::vector<Param> args;
    if (last_key.is_array()) {
      for (const Value& v : last_key) args.push_back(v.is_null() ? Param() : v.get<std::string>());
    }
    Result<PgResult> rows = db_.Exec(base + (args.empty() ? "" : after) + order, args);
    if (!rows.ok()) {
      (void)db_.Run("ROLLBACK");
      return rows.status().WithContext(Where(t.binding.table));
    }
    const int n = PQntuples(rows->get());
    Value msg = {{"t", t.binding.table}, {"rows", Value::array()}};
    for (int r = 0; r < n; ++r) {
      msg["rows"].push_back(Value::parse(PQgetvalue(rows->get(), r, 0)));
      if (r == n - 1) last_key = Value::parse(PQgetvalue(rows->get(), r, 1));
    }
    Status st = Status::Ok();
    if (n > 0) {
      st = db_.Exec("SELECT pg_logical_emit_message(true, $1, $2)",
                    {SlotName() + "_snapshot", msg.dump()})
               .status();
    }
    if (st.ok()) {
      st = db_.Exec("UPDATE " + registry + " SET last_key = $2, snapshot_done = $3 WHERE tbl = $1",
                    {t.binding.table, last_key.dump(),
                     std::string(n < kSnapshotChunkRows ? "true" : "false")})
               .status();
    }
    if (st.ok()) st = db_.Run("COMMIT");
    if (!st.ok()) {
      (void)db_.Run("ROLLBACK");
      return st.WithContext(Where(t.binding.table));
    }
    if (n < kSnapshotChunkRows) break;
  }
  return Status::Ok();
}

Status PostgresConnector::Uninstall() {
  DUPLEX_RETURN_IF_ERROR(EnsureDb());
  stream_.Close();
  apply_.Close();
  pending_.clear();
  pending_changes_ = 0;
  stmts_.clear();
  objects_exist_ = false;
  records_.clear();  // the key map goes: what it said no longer holds
  records_cached_ = 0;
  acked_stamp_ = -1;
  DUPLEX_ASSIGN_OR_RETURN(bool exists, ObjectsExist());
  std::vector<std::string> registered;
  if (exists) {
    DUPLEX_ASSIGN_OR_RETURN(PgResult res, db_.Exec("SELECT tbl FROM " + Q(TableName("tables"))));
    for (int r = 0; r < PQntuples(res.get()); ++r)
      registered.push_back(PQgetvalue(res.get(), r, 0));
  }
  for (const BoundTable& t : tables_) registered.push_back(t.binding.table);
  std::string sql;
  for (const std::string& tbl : registered) {
    DUPLEX_ASSIGN_OR_RETURN(std::optional<std::string> has,
                            db_.Scalar("SELECT to_regclass($1) IS NOT NULL", {Q(tbl)}));
    if (has.value_or("f") == "t") {
      sql += "DROP TRIGGER IF EXISTS " + QuoteIdent(TableName("capture")) + " ON " + Q(tbl) + ";";
    }
    sql += "DROP FUNCTION IF EXISTS " + Q(TableName("capture_" + tbl)) + "();";
  }
  sql += "DROP TABLE IF EXISTS " + Q(TableName("log")) + ", " + Q(TableName("applied")) + ", " +
         Q(TableName("acked")) + ", " + Q(TableName("tables")) + ", " + Q(TableName("keymap")) +
         ";";
  sql += "DROP FUNCTION IF EXISTS " + Q(TableName("native")) + "(text, text, text);";
  sql += "DROP PUBLICATION IF EXISTS " + QuoteIdent(PublicationName()) + ";";
  DUPLEX_RETURN_IF_ERROR(db_.Run(sql).WithContext(Where()));
  objects_exist_ = false;
  // The slot holds WAL until dropped; an active one (another duplex still streaming) is
  // reported, not waited for. The functions need privileges: only called for what exists.
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> slot,
      db_.Scalar("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", {SlotName()}));
  if (slot) {
    DUPLEX_RETURN_IF_ERROR(db_.Exec("SELECT pg_drop_replication_slot($1)", {SlotName()}).status());
  }
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> origin,
      db_.Scalar("SELECT 1 FROM pg_replication_origin WHERE roname = $1", {OriginName()}));
  if (origin) {
    DUPLEX_RETURN_IF_ERROR(
        db_.Exec("SELECT pg_replication_origin_drop($1)", {OriginName()}).status());
  }
  return Status::Ok();
}

Result<std::vector<std::string>> PostgresConnector::Warnings() {
  std::vector<std::string> out;
  if (opt_.capture != CaptureMode::kLogical) return out;
  DUPLEX_RETURN_IF_ERROR(EnsureDb());
  DUPLEX_ASSIGN_OR_RETURN(
      PgResult res,
      db_.Exec("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8, active FROM "
               "pg_replication_slots WHERE slot_name = $1",
               {SlotName()}));
  if (PQntuples(res.get()) == 0) return out;
  const int64_t retained = std::atoll(PQgetvalue(res.get(), 0, 0));
  if (retained >= opt_.max_retained_wal_bytes) {
    out.push_back(
        "replication slot '" + SlotName() + "' retains " + std::to_string(retained >> 20) +
        " MiB of WAL; run duplex so that it catches up, or `duplex uninstall --endpoint " +
        opt_.name + "` if this endpoint is gone (an abandoned slot fills the disk)");
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Capture

Status PostgresConnector::EnsureStream() {
  if (stream_.running()) return Status::Ok();
  pending_.clear();
  pending_changes_ = 0;
  DUPLEX_RETURN_IF_ERROR(LoadTypes());
  return stream_.Start(opt_.dsn, SlotName(), PublicationName(), Where());
}

Row PostgresConnector::ImageToRow(const BoundTable& t, const Value& image) const {
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

Row PostgresConnector::TupleRow(const BoundTable& t, const Relation& rel, const Tuple& tuple,
                                bool* unchanged_toast) {
  Row row = Row::object();
  for (size_t i = 0; i < tuple.size() && i < rel.columns.size(); ++i) {
    auto f = t.field_of_column.find(rel.columns[i]);
    if (f == t.field_of_column.end()) continue;
    switch (tuple[i].kind) {
      case TupleValue::Kind::kNull:
        row[f->second] = Value();
        break;
      case TupleValue::Kind::kUnchanged:
        if (unchanged_toast) *unchanged_toast = true;
        break;
      case TupleValue::Kind::kText:
        row[f->second] = FromText(rel.types[i], tuple[i].text);
        break;
    }
  }
  return row;
}

Result<Value> PostgresConnector::ReadImage(const BoundTable& t, const Row& key, bool records) {
  DUPLEX_ASSIGN_OR_RETURN(std::string image, ImageSql(t, "s."));
  std::vector<std::string> cond;
  std::vector<Param> args;
  int i = 1;
  for (const std::string& k : t.binding.key) {
    const std::string& c = t.column_of_field.at(k);
    const std::string ph = Placeholder(i++);
    cond.push_back("s." + QuoteIdent(c) + " = " +
                   (records ? ValueSql(t, k, ph, false) : ph + "::" + t.type_of_column.at(c)));
    auto it = key.find(k);
    args.push_back(ToText(it == key.end() ? Value() : *it));
  }
  Conn& conn = apply_.connected() ? apply_ : db_;
  DUPLEX_ASSIGN_OR_RETURN(
      PgResult res, conn.Exec("SELECT " + image + " FROM " + Q(t.binding.table) + " s WHERE " +
                                  Join(cond, " AND "),
                              args));
  if (PQntuples(res.get()) == 0) return Value();
  return Value::parse(PQgetvalue(res.get(), 0, 0));
}

Status PostgresConnector::FillUnchanged(const BoundTable& t, Row& after) {
  // An unchanged TOASTed value is not in the stream (CDC-FACTS Q3): read the row as it is now.
  // Only values this change did not touch are taken from it.
  DUPLEX_ASSIGN_OR_RETURN(Value image, ReadImage(t, after, false));
  const Row now = ImageToRow(t, image);
  for (const std::string& c : t.columns) {
    const std::string& f = t.field_of_column.at(c);
    if (!after.contains(f)) after[f] = now.is_object() && now.contains(f) ? now[f] : Value();
  }
  return Status::Ok();
}

Status PostgresConnector::ReadSnapshotMessage(const std::string& content, uint64_t end_lsn,
                                              int64_t commit_ms, std::vector<Change>* out) {
  Value msg = Value::parse(content, nullptr, false);
  if (!msg.is_object() || !msg.contains("t") || !msg["t"].is_string()) return Status::Ok();
  auto bound = by_table_.find(msg["t"].get<std::string>());
  if (bound == by_table_.end()) return Status::Ok();
  const BoundTable& t = tables_[bound->second];
  for (const Value& image : msg["rows"]) {
    Change c;
    c.op = Op::kInsert;
    c.collection = t.binding.collection;
    c.after = ImageToRow(t, image);
    c.key = KeyOf(t.binding.key, c.after);
    c.snapshot = true;
    // No source transaction groups the rows of an initial load: each row is a unit of its
    // own, so that a row the target refuses parks only itself.
    c.txn = --snapshot_txn_;  // from -2: the engine's kWholeBatch is -1
    c.position = static_cast<Position>(end_lsn);
    c.commit_ms = static_cast<double>(commit_ms);
    out->push_back(std::move(c));
  }
  return Status::Ok();
}

Status PostgresConnector::Convert(StreamTxn&& txn) {
  PendingTxn out;
  out.end_lsn = txn.end_lsn;
  const int64_t commit_ms = txn.commit_us / 1000 + kPgEpochMs;
  const Position pos = static_cast<Position>(txn.end_lsn);
  if (txn.origin == OriginName()) {
    // duplex's own transaction: its rows are echoes (P5); it is the causal marker.
    for (const StreamEvent& e : txn.events) {
      if (e.kind != 'M' || e.prefix != SlotName()) continue;
      Value msg = Value::parse(e.content, nullptr, false);
      if (!msg.is_object() || !msg.contains("rejected")) continue;
      for (const Value& r : msg["rejected"]) {
        const BoundTable* t = ByCollection(r.value("c", std::string()));
        if (t == nullptr) continue;
        Change c;
        c.op = Op::kRejected;
        c.collection = t->binding.collection;
        c.key = r.value("k", Value::object());
        c.after = ImageToRow(*t, r.value("row", Value()));
        c.apply_id = static_cast<int64_t>(txn.origin_lsn);
        c.position = pos;
        c.txn = txn.xid;
        c.commit_ms = static_cast<double>(commit_ms);
        out.changes.push_back(std::move(c));
      }
    }
    Change m;
    m.op = Op::kMarker;
    m.apply_id = static_cast<int64_t>(txn.origin_lsn);
    m.position = pos;
    m.txn = txn.xid;
    m.commit_ms = static_cast<double>(commit_ms);
    out.changes.push_back(std::move(m));
  } else {
    for (const StreamEvent& e : txn.events) {
      if (e.kind == 'M') {
        if (e.prefix == SlotName() + "_snapshot") {
          DUPLEX_RETURN_IF_ERROR(
              ReadSnapshotMessage(e.content, txn.end_lsn, commit_ms, &out.changes));
        }
        continue;
      }
      const Relation* rel = stream_.relation(e.relid);
      if (rel == nullptr) {
        return Status::Corruption(Where() + ": change for an unknown relation " +
                                  std::to_string(e.relid));
      }
      if (rel->schema != opt_.schema) continue;
      auto bound = by_table_.find(rel->table);
      if (bound == by_table_.end()) continue;
      const BoundTable& t = tables_[bound->second];
      Change c;
      c.collection = t.binding.collection;
      c.position = pos;
      c.commit_ms = static_cast<double>(commit_ms);
      c.txn = txn.xid;  // the Begin message's xid: the same for every change of the transaction
      // The old key ('K', the default identity when the key changed) or the old row ('O',
      // identity FULL); neither for most updates. A key-only image is not a before image.
      Row old_key;
      if (!e.old_tuple.empty()) {
        Row old = TupleRow(t, *rel, e.old_tuple, nullptr);
        old_key = KeyOf(t.binding.key, old);
        if (!e.old_is_key) c.before = std::move(old);
      }
      if (e.kind == 'D') {
        c.op = Op::kDelete;
        c.key = std::move(old_key);
        NoteAppChange(t.binding.table, KeyText(c.key, t.binding.key), txn.end_lsn);
        out.changes.push_back(std::move(c));
        continue;
      }
      bool unchanged = false;
      c.after = TupleRow(t, *rel, e.new_tuple, &unchanged);
      if (unchanged) {
        if (c.before.is_object()) {
          for (const auto& [f, v] : c.before.items()) {
            if (!c.after.contains(f)) c.after[f] = v;
          }
        } else {
          DUPLEX_RETURN_IF_ERROR(FillUnchanged(t, c.after));
        }
      }
      c.op = e.kind == 'I' ? Op::kInsert : Op::kUpdate;
      c.key = KeyOf(t.binding.key, c.after);
      const std::string new_key = KeyText(c.key, t.binding.key);
      if (AppendRowChange(std::move(c), old_key, t.binding.key, &out.changes)) {
        NoteAppChange(t.binding.table, KeyText(old_key, t.binding.key), txn.end_lsn);
      }
      NoteAppChange(t.binding.table, new_key, txn.end_lsn);
    }
  }
  pending_changes_ += out.changes.size();
  pending_.push_back(std::move(out));
  return Status::Ok();
}

void PostgresConnector::NoteAppChange(const std::string& table, std::string key, uint64_t lsn) {
  app_changed_[table][key] = lsn;
  app_changed_order_.emplace_back(lsn, table, std::move(key));
}

Status PostgresConnector::DrainStream(int wait_ms) {
  // A server shutting down ends the regular backends at once but streams on until duplex has
  // confirmed all it sent, however long its backlog takes: the end of the regular connection is
  // the sign. Reconnecting then fails, and Connect lets go of the stream.
  if (db_.EndedByServer()) db_.Close();
  DUPLEX_RETURN_IF_ERROR(EnsureDb());
  DUPLEX_RETURN_IF_ERROR(EnsureStream());
  stream_.SetCallerIdle(pending_.empty() && delivered_ <= acked_);
  if (pending_changes_ < kMaxBufferedChanges) {
    Status st = stream_.Pump(wait_ms);
    if (!st.ok()) {
      pending_.clear();
      pending_changes_ = 0;
      return st;
    }
  }
  while (!stream_.ready().empty()) {
    StreamTxn txn = std::move(stream_.ready().front());
    stream_.ready().pop_front();
    DUPLEX_RETURN_IF_ERROR(Convert(std::move(txn)));
  }
  return Status::Ok();
}

// A connection the server dropped (a restart) fails on its first use after the server is back;
// it is reopened by the next call. Retrying once at once spares the endpoint a backoff.
template <typename F>
auto PostgresConnector::Reconnecting(F&& call) -> decltype(call()) {
  auto r = call();
  // Each of the three connections may be found dead in turn: a few rounds at most.
  for (int round = 0; round < 3 && !r.ok() && r.status().IsRetriable(); ++round) {
    const bool db_dead = db_.get() != nullptr && db_.Broken();
    const bool apply_dead = apply_.get() != nullptr && apply_.Broken();
    const bool stream_dead = opt_.capture == CaptureMode::kLogical && !stream_.running();
    if (!db_dead && !apply_dead && !stream_dead) break;
    if (db_dead) db_.Close();
    if (apply_dead) {
      apply_.Close();
      stmts_.clear();
    }
    r = call();
  }
  return r;
}

Result<bool> PostgresConnector::Poll() {
  return Reconnecting([&] { return PollOnce(); });
}

Result<ChangeBatch> PostgresConnector::Capture(Position from, size_t max_changes) {
  return Reconnecting([&] { return CaptureOnce(from, max_changes); });
}

Result<ApplyResult> PostgresConnector::Apply(const std::vector<ApplyBatch>& batches,
                                             bool isolate_txns) {
  return Reconnecting([&] { return ApplyBatches(batches, isolate_txns); });
}

Result<bool> PostgresConnector::PollOnce() {
  if (opt_.capture == CaptureMode::kTrigger) {
    DUPLEX_RETURN_IF_ERROR(EnsureDb());
    if (first_poll_) {
      first_poll_ = false;
      return true;
    }
    DUPLEX_ASSIGN_OR_RETURN(bool exists, ObjectsExist());
    if (!exists) return false;
    DUPLEX_ASSIGN_OR_RETURN(std::optional<std::string> v,
                            db_.Scalar("SELECT EXISTS (SELECT 1 FROM " + Q(TableName("log")) +
                                           " WHERE pos IS NULL) OR EXISTS (SELECT 1 FROM " +
                                           Q(TableName("log")) + " WHERE pos > $1)",
                                       {std::to_string(last_stamped_)}));
    return v.value_or("f") == "t";
  }
  DUPLEX_RETURN_IF_ERROR(DrainStream(0));
  if (first_poll_) {
    first_poll_ = false;
    return true;
  }
  if (!pending_.empty() || stream_.in_txn()) return true;
  // Nothing received: the server may still be decoding (a large transaction is sent only
  // once decoded whole). Idle only once the stream has reached the server's flushed WAL end as
  // of the previous poll: everything committed before then has arrived. (The current end may
  // keep moving with other databases' traffic, or split a record the server cannot send yet.)
  DUPLEX_ASSIGN_OR_RETURN(std::optional<std::string> flushed,
                          db_.Scalar("SELECT pg_current_wal_flush_lsn()::text"));
  const uint64_t now_flushed = ParseLsn(flushed.value_or("0/0"));
  const uint64_t target = previous_flush_ != 0 ? previous_flush_ : now_flushed;
  previous_flush_ = now_flushed;
  DUPLEX_ASSIGN_OR_RETURN(bool reached, stream_.WaitFor(target, 2));
  DUPLEX_RETURN_IF_ERROR(DrainStream(0));
  return !reached || !pending_.empty() || stream_.in_txn();
}

Result<ChangeBatch> PostgresConnector::CaptureOnce(Position from, size_t max_changes) {
  if (opt_.capture == CaptureMode::kTrigger) return CaptureLog(from, max_changes);
  DUPLEX_RETURN_IF_ERROR(DrainStream(0));
  ChangeBatch batch;
  batch.end = from;
  while (!pending_.empty()) {
    PendingTxn& txn = pending_.front();
    if (txn.end_lsn <= static_cast<uint64_t>(from)) {  // journaled before a restart
      pending_changes_ -= txn.changes.size();
      pending_.pop_front();
      continue;
    }
    // Whole transactions only: one may exceed max_changes (README "limits").
    if (!batch.changes.empty() && batch.changes.size() + txn.changes.size() > max_changes) break;
    for (Change& c : txn.changes) batch.changes.push_back(std::move(c));
    batch.end = static_cast<Position>(txn.end_lsn);
    pending_changes_ -= txn.changes.size();
    pending_.pop_front();
  }
  Status presented = PresentRecords(&batch.changes);
  if (!presented.ok()) {
    // The batch has left pending_: stream it again from the slot's confirmed position.
    stream_.Close();
    pending_.clear();
    pending_changes_ = 0;
    return presented;
  }
  if (batch.end > static_cast<Position>(delivered_)) delivered_ = static_cast<uint64_t>(batch.end);
  stream_.SetCallerIdle(pending_.empty() && delivered_ <= acked_);
  return batch;
}

Result<int64_t> PostgresConnector::Backlog(Position from) {
  if (opt_.capture == CaptureMode::kTrigger) {
    DUPLEX_RETURN_IF_ERROR(EnsureDb());
    DUPLEX_ASSIGN_OR_RETURN(bool exists, ObjectsExist());
    if (!exists) return int64_t{0};
    DUPLEX_ASSIGN_OR_RETURN(
        std::optional<std::string> n,
        db_.Scalar("SELECT count(*) FROM " + Q(TableName("log")) + " WHERE pos IS NULL OR pos > $1",
                   {std::to_string(from)}));
    return static_cast<int64_t>(std::atoll(n.value_or("0").c_str()));
  }
  // Outside `run` nothing is streamed: the slot's retained WAL is in Warnings().
  if (!stream_.running()) return Status::Unavailable(Where() + ": not streaming");
  int64_t n = 0;
  for (const PendingTxn& t : pending_) {
    if (t.end_lsn > static_cast<uint64_t>(from)) n += static_cast<int64_t>(t.changes.size());
  }
  return n;
}

Status PostgresConnector::Ack(Position upto) {
  if (opt_.capture == CaptureMode::kTrigger) {
    DUPLEX_RETURN_IF_ERROR(EnsureDb());
    DUPLEX_ASSIGN_OR_RETURN(bool exists, ObjectsExist());
    if (!exists) return Status::Ok();
    if (upto == acked_stamp_) {
      return db_
          .Exec("DELETE FROM " + Q(TableName("log")) + " WHERE pos <= $1", {std::to_string(upto)})
          .status();
    }
    // With the endpoint's own record of what duplex acked (CheckRestored).
    DUPLEX_RETURN_IF_ERROR(db_.Exec("WITH d AS (DELETE FROM " + Q(TableName("log")) +
                                        " WHERE pos <= $1) INSERT INTO " + Q(TableName("acked")) +
                                        " VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET pos = "
                                        "excluded.pos",
                                    {std::to_string(upto)})
                               .status());
    acked_stamp_ = upto;
    return Status::Ok();
  }
  stream_.Confirm(static_cast<uint64_t>(upto));
  acked_ = std::max(acked_, static_cast<uint64_t>(upto));
  stream_.SetCallerIdle(pending_.empty() && delivered_ <= acked_);
  while (!app_changed_order_.empty() &&
         std::get<0>(app_changed_order_.front()) <= static_cast<uint64_t>(upto)) {
    auto& [lsn, table, key] = app_changed_order_.front();
    auto tbl = app_changed_.find(table);
    if (tbl != app_changed_.end()) {
      auto it = tbl->second.find(key);
      if (it != tbl->second.end() && it->second <= lsn) tbl->second.erase(it);
    }
    app_changed_order_.pop_front();
  }
  return Status::Ok();
}

Status PostgresConnector::StampLog() {
  // Positions in commit order: a round stamps only committed rows, in id order. A row of a
  // transaction still running is invisible here and gets a later position when it commits;
  // two changes of one row are ordered by the row lock, so their ids are in commit order.
  const std::string log = Q(TableName("log"));
  const std::string applied = Q(TableName("applied"));
  std::string sql = "WITH base AS (SELECT stamped FROM " + applied +
                    " WHERE id = 1 FOR UPDATE), "
                    "todo AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM " +
                    log +
                    " WHERE pos IS NULL ORDER BY id LIMIT 100000), "
                    "upd AS (UPDATE " +
                    log +
                    " l SET pos = base.stamped + todo.n FROM todo, base WHERE "
                    "l.id = todo.id RETURNING l.pos) "
                    "UPDATE " +
                    applied +
                    " SET stamped = stamped + (SELECT count(*) FROM upd) WHERE id = 1 "
                    "RETURNING stamped";
  DUPLEX_ASSIGN_OR_RETURN(std::optional<std::string> top, db_.Scalar(sql));
  if (top) last_stamped_ = std::atoll(top->c_str());
  return Status::Ok();
}

Result<ChangeBatch> PostgresConnector::CaptureLog(Position from, size_t max_changes) {
  DUPLEX_RETURN_IF_ERROR(EnsureDb());
  DUPLEX_RETURN_IF_ERROR(LoadTypes());
  ChangeBatch batch;
  batch.end = from;
  DUPLEX_ASSIGN_OR_RETURN(bool exists, ObjectsExist());
  if (!exists)
    return Status::InvalidArgument(Where() + ": change capture is not installed (run Install())");
  DUPLEX_RETURN_IF_ERROR(StampLog());
  DUPLEX_ASSIGN_OR_RETURN(
      PgResult res,
      db_.Exec("SELECT pos, tbl, op, old::text, new::text, apply_id, snapshot, "
               "(extract(epoch FROM at) * 1000)::float8, pk, txn FROM " +
                   Q(TableName("log")) + " WHERE pos > $1 ORDER BY pos LIMIT $2",
               {std::to_string(from), std::to_string(std::max<size_t>(max_changes, 1))}));
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    const Position pos = std::atoll(PQgetvalue(res.get(), r, 0));
    const std::string tbl = PQgetvalue(res.get(), r, 1);
    const char op = PQgetvalue(res.get(), r, 2)[0];
    const double at = std::atof(PQgetvalue(res.get(), r, 7));
    // The initial load's rows share Install's transaction but belong to none: one unit each
    // (from -2: the engine's kWholeBatch is -1).
    const int64_t txn = PQgetvalue(res.get(), r, 6)[0] == 't' ? -pos - 1
                        : PQgetisnull(res.get(), r, 9)        ? 0
                                                       : std::atoll(PQgetvalue(res.get(), r, 9));
    batch.end = pos;
    if (op == 'M') {
      Change m;
      m.op = Op::kMarker;
      m.apply_id = std::atoll(PQgetvalue(res.get(), r, 5));
      m.position = pos;
      m.commit_ms = at;
      m.txn = txn;
      batch.changes.push_back(std::move(m));
      continue;
    }
    auto bound = by_table_.find(tbl);
    if (bound == by_table_.end() || op == 'K') continue;
    const BoundTable& t = tables_[bound->second];
    Change c;
    c.collection = t.binding.collection;
    c.position = pos;
    c.commit_ms = at;
    c.txn = txn;
    c.snapshot = PQgetvalue(res.get(), r, 6)[0] == 't';
    Value old_img =
        PQgetisnull(res.get(), r, 3) ? Value() : Value::parse(PQgetvalue(res.get(), r, 3));
    Value new_img =
        PQgetisnull(res.get(), r, 4) ? Value() : Value::parse(PQgetvalue(res.get(), r, 4));
    if (op == 'R') {
      c.op = Op::kRejected;
      c.apply_id = std::atoll(PQgetvalue(res.get(), r, 5));
      c.key = old_img.is_object() ? old_img : Value::object();
      c.after = ImageToRow(t, new_img);
      batch.changes.push_back(std::move(c));
      continue;
    }
    c.before = ImageToRow(t, old_img);
    c.after = ImageToRow(t, new_img);
    c.op = static_cast<Op>(op);
    c.key = KeyOf(t.binding.key, op == 'D' ? c.before : c.after);
    const Row old_key = op == 'U' ? KeyOf(t.binding.key, c.before) : Row();
    AppendRowChange(std::move(c), old_key, t.binding.key, &batch.changes);
  }
  DUPLEX_RETURN_IF_ERROR(PresentRecords(&batch.changes));
  return batch;
}

// ---------------------------------------------------------------------------------------------
// Mapped keys

std::string PostgresConnector::ValueSql(const BoundTable& t, const std::string& field,
                                        const std::string& ph, bool refuse) const {
  const std::string& type = t.type_of_column.at(t.column_of_field.at(field));
  auto rt = t.record_table.find(field);
  if (rt == t.record_table.end()) return ph + "::" + type;
  std::string refusal = "NULL";
  if (refuse) {
    const std::string& collection = tables_[by_table_.at(rt->second)].binding.collection;
    refusal = QuoteLiteral("field '" + field + "' of collection '" + t.binding.collection +
                           "' references record '{record}' of collection '" + collection +
                           "', which endpoint '" + opt_.name + "' does not hold");
  }
  return "(" + Q(TableName("native")) + "(" + QuoteLiteral(rt->second) + ", " + ph + "::text, " +
         refusal + "))::" + type;
}

Status PostgresConnector::PresentRecords(std::vector<Change>* changes) {
  if (!any_records_) return Status::Ok();
  // Every row image of a change, with the table it belongs to. A rejected write's key is the
  // one duplex sent (record ids already).
  auto rows_of = [&](Change& c, auto&& fn) {
    const BoundTable* t = ByCollection(c.collection);
    if (t == nullptr || t->record_table.empty()) return;
    for (Row* row : {&c.key, &c.before, &c.after}) {
      if (row == &c.key && c.op == Op::kRejected) continue;
      if (!row->is_object()) continue;
      for (const auto& [field, table] : t->record_table) {
        auto v = row->find(field);
        if (v == row->end() || v->is_null()) continue;
        fn(*v, table);
      }
    }
  };
  if (records_cached_ > 200000) {
    records_.clear();
    records_cached_ = 0;
  }
  // table -> native keys (JSON texts) not in the cache
  std::map<std::string, std::set<std::string>> wanted;
  for (Change& c : *changes) {
    rows_of(c, [&](Value& v, const std::string& table) {
      std::string native = v.dump();
      if (!records_[table].count(native)) wanted[table].insert(std::move(native));
    });
  }
  for (auto& [table, natives] : wanted) {
    DUPLEX_ASSIGN_OR_RETURN(PgResult res,
                            db_.Exec("SELECT native, record FROM " + Q(TableName("keymap")) +
                                         " WHERE tbl = $1 AND native IN "
                                         "(SELECT jsonb_array_elements_text($2::jsonb))",
                                     {table, Value(natives).dump()}));
    auto& cache = records_[table];
    for (int r = 0; r < PQntuples(res.get()); ++r) {
      cache[PQgetvalue(res.get(), r, 0)] = PQgetvalue(res.get(), r, 1);
    }
    // Not in the key map: the application's own row, first seen here.
    for (const std::string& native : natives) {
      if (!cache.count(native)) cache[native] = RecordId(opt_.name, Value::parse(native));
    }
    records_cached_ += natives.size();
  }
  for (Change& c : *changes) {
    rows_of(c, [&](Value& v, const std::string& table) { v = records_[table].at(v.dump()); });
  }
  return Status::Ok();
}

Result<std::vector<std::vector<std::string>>> PostgresConnector::NativeKeyTexts(
    const std::vector<const ApplyBatch*>& todo) {
  // Records the key map knows, for key fields that hold record ids.
  Value pairs = Value::array();
  for (const ApplyBatch* b : todo) {
    for (const RowOp& op : b->ops) {
      const BoundTable* t = ByCollection(op.collection);
      if (t == nullptr || !op.key.is_object()) continue;
      for (const std::string& k : t->binding.key) {
        auto rt = t->record_table.find(k);
        auto v = op.key.find(k);
        if (rt == t->record_table.end() || v == op.key.end() || !v->is_string()) continue;
        pairs.push_back({rt->second, *v});
      }
    }
  }
  std::map<std::pair<std::string, std::string>, Value> natives;
  if (!pairs.empty()) {
    DUPLEX_ASSIGN_OR_RETURN(
        PgResult res,
        apply_.Exec("SELECT m.tbl, m.record, m.native FROM " + Q(TableName("keymap")) +
                        " m JOIN jsonb_array_elements($1::jsonb) x ON m.tbl = x->>0 AND "
                        "m.record = x->>1",
                    {pairs.dump()}));
    for (int r = 0; r < PQntuples(res.get()); ++r) {
      natives[{PQgetvalue(res.get(), r, 0), PQgetvalue(res.get(), r, 1)}] =
          Value::parse(PQgetvalue(res.get(), r, 2));
    }
  }
  std::vector<std::vector<std::string>> out;
  for (const ApplyBatch* b : todo) {
    out.emplace_back();
    for (const RowOp& op : b->ops) {
      const BoundTable* t = ByCollection(op.collection);
      if (t == nullptr || t->record_table.empty() || !op.key.is_object()) {
        out.back().push_back(t == nullptr ? std::string() : KeyText(op.key, t->binding.key));
        continue;
      }
      Row key = op.key;
      for (const std::string& k : t->binding.key) {
        auto rt = t->record_table.find(k);
        if (rt == t->record_table.end() || !key[k].is_string()) continue;
        const std::string record = key[k].get<std::string>();
        auto m = natives.find({rt->second, record});
        // A record unknown here has no row: null matches no change the stream showed.
        key[k] = m != natives.end() ? m->second : OwnNativeKey(opt_.name, record).value_or(Value());
      }
      out.back().push_back(KeyText(key, t->binding.key));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Apply

Result<RestoreCheck> PostgresConnector::CheckRestored(Position captured, Position acked) {
  DUPLEX_RETURN_IF_ERROR(EnsureDb());
  RestoreCheck check{"", captured};
  DUPLEX_ASSIGN_OR_RETURN(bool exists, ObjectsExist());
  if (!exists) {
    if (captured > 0) {
      check.reason =
          "duplex's tables are gone from it (a dump from before duplex was installed, or a new "
          "database?)";
      check.resume = 0;
    }
    return check;
  }
  auto number = [](const std::optional<std::string>& v) -> std::optional<int64_t> {
    if (!v) return std::nullopt;
    return static_cast<int64_t>(std::atoll(v->c_str()));
  };
  if (opt_.capture == CaptureMode::kTrigger) {
    DUPLEX_ASSIGN_OR_RETURN(
        std::optional<std::string> has,
        db_.Scalar("SELECT to_regclass($1) IS NOT NULL", {Q(TableName("acked"))}));
    std::optional<int64_t> stamp;
    if (has.value_or("f") == "t") {
      DUPLEX_ASSIGN_OR_RETURN(
          std::optional<std::string> v,
          db_.Scalar("SELECT pos FROM " + Q(TableName("acked")) + " WHERE id = 1"));
      stamp = number(v);
    }
    DUPLEX_ASSIGN_OR_RETURN(
        std::optional<std::string> top,
        db_.Scalar("SELECT stamped FROM " + Q(TableName("applied")) + " WHERE id = 1"));
    if (stamp && *stamp < acked) {
      check.reason = "its changelog records duplex's acknowledgements up to position " +
                     std::to_string(*stamp) + ", the state file up to " + std::to_string(acked);
    } else if (number(top).value_or(0) < captured) {
      check.reason = "its changelog's positions end at " + std::to_string(number(top).value_or(0)) +
                     ", before position " + std::to_string(captured) + " that duplex captured";
    }
    if (!check.reason.empty()) check.resume = stamp.value_or(0);
    return check;
  }
  DUPLEX_ASSIGN_OR_RETURN(std::optional<std::string> slot,
                          db_.Scalar("SELECT coalesce(confirmed_flush_lsn, restart_lsn)::text FROM "
                                     "pg_replication_slots WHERE slot_name = $1",
                                     {SlotName()}));
  if (!slot) {
    if (captured > 0) {
      check.reason = "its replication slot '" + SlotName() +
                     "' is gone (a dump restored, or the slot dropped): what was written there "
                     "before the slot is made again cannot be captured";
      check.resume = 0;
    }
    return check;
  }
  DUPLEX_ASSIGN_OR_RETURN(std::optional<std::string> now,
                          db_.Scalar("SELECT pg_current_wal_lsn()::text"));
  const uint64_t head = now ? ParseLsn(*now) : 0;
  if (head < static_cast<uint64_t>(captured)) {
    check.reason = "the server's WAL ends at " + (now ? *now : std::string("?")) +
                   ", before the position duplex captured (a snapshot of the server restored?)";
    check.resume = static_cast<Position>(ParseLsn(*slot));
  }
  return check;
}

Status PostgresConnector::Scan(const std::string& collection, size_t max_rows,
                               const std::function<Status(std::vector<Change>&&)>& visit) {
  DUPLEX_RETURN_IF_ERROR(EnsureDb());
  DUPLEX_RETURN_IF_ERROR(LoadTypes());
  const BoundTable* t = ByCollection(collection);
  if (t == nullptr) {
    return Status::InvalidArgument(Where() + ": collection '" + collection + "' is not bound");
  }
  DUPLEX_ASSIGN_OR_RETURN(std::string image, ImageSql(*t, "s."));
  std::vector<std::string> keys, key_texts, params;
  int i = 1;
  for (const std::string& c : t->key_columns) {
    keys.push_back("s." + QuoteIdent(c));
    key_texts.push_back("(s." + QuoteIdent(c) + ")::text");
    params.push_back(Placeholder(i++) + "::" + t->type_of_column.at(c));
  }
  // In key order, a chunk a query: no transaction held open, no row locked.
  const std::string base = "SELECT " + image + ", jsonb_build_array(" + Join(key_texts, ", ") +
                           ") FROM " + Q(t->binding.table) + " s";
  const std::string after = " WHERE (" + Join(keys, ", ") + ") > (" + Join(params, ", ") + ")";
  const int64_t limit = static_cast<int64_t>(std::max<size_t>(max_rows, 1));
  const std::string order = " ORDER BY " + Join(keys, ", ") + " LIMIT " + std::to_string(limit);
  Value last_key;
  int64_t txn = -1;
  while (true) {
    std::vector<Param> args;
    if (last_key.is_array()) {
      for (const Value& v : last_key) args.push_back(v.is_null() ? Param() : v.get<std::string>());
    }
    Result<PgResult> rows = db_.Exec(base + (args.empty() ? "" : after) + order, args);
    if (!rows.ok()) return rows.status().WithContext(Where(t->binding.table));
    const int n = PQntuples(rows->get());
    std::vector<Change> chunk;
    chunk.reserve(static_cast<size_t>(n));
    for (int r = 0; r < n; ++r) {
      Change c;
      c.op = Op::kPresent;
      c.collection = collection;
      c.after = ImageToRow(*t, Value::parse(PQgetvalue(rows->get(), r, 0)));
      c.key = KeyOf(t->binding.key, c.after);
      c.txn = --txn;  // one unit each (from -2: txn 0 and -1 mean other things)
      chunk.push_back(std::move(c));
      if (r == n - 1) last_key = Value::parse(PQgetvalue(rows->get(), r, 1));
    }
    DUPLEX_RETURN_IF_ERROR(PresentRecords(&chunk));
    if (!chunk.empty()) DUPLEX_RETURN_IF_ERROR(visit(std::move(chunk)));
    if (n < limit) break;
  }
  return Status::Ok();
}

Result<int64_t> PostgresConnector::AppliedId() {
  DUPLEX_RETURN_IF_ERROR(EnsureDb());
  if (opt_.capture == CaptureMode::kLogical) {
    DUPLEX_ASSIGN_OR_RETURN(
        std::optional<std::string> lsn,
        db_.Scalar("SELECT pg_replication_origin_progress(roname, true)::text FROM "
                   "pg_replication_origin WHERE roname = $1",
                   {OriginName()}));
    return static_cast<int64_t>(lsn ? ParseLsn(*lsn) : 0);
  }
  DUPLEX_ASSIGN_OR_RETURN(bool exists, ObjectsExist());
  if (!exists) return int64_t{0};
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> id,
      db_.Scalar("SELECT apply_id FROM " + Q(TableName("applied")) + " WHERE id = 1"));
  return static_cast<int64_t>(std::atoll(id.value_or("0").c_str()));
}

Result<PostgresConnector::OpStmt*> PostgresConnector::Statement(const BoundTable& t,
                                                                const RowOp& op) {
  std::string shape;
  shape += static_cast<char>(op.op);
  shape += t.binding.collection + '\x1f';
  if (op.values.is_object()) {
    for (const auto& item : op.values.items()) shape += item.key() + '\x1e';
  }
  shape += '\x1f';
  if (op.expected.is_object()) {
    for (const auto& item : op.expected.items()) shape += item.key() + '\x1e';
  }
  auto hit = stmts_.find(shape);
  if (hit != stmts_.end()) return &hit->second;

  const std::string where = Where(t.binding.table) + ", key " + op.key.dump();
  OpStmt out;
  using Source = OpStmt::Source;
  int n = 0;
  auto param = [&](Source s, const std::string& field) -> Result<std::string> {
    auto c = t.column_of_field.find(field);
    if (c == t.column_of_field.end()) {
      return Status::InvalidArgument(where + ": field '" + field + "' is not mapped to a column");
    }
    out.params.emplace_back(s, field);
    // A reference to a record this endpoint lacks cannot be written; a key it lacks is a row
    // that is absent (the write is rejected).
    const bool refuse = s != Source::kKey && t.binding.mapped_refs.count(field) > 0;
    return ValueSql(t, field, Placeholder(++n), refuse);
  };
  auto column = [&](const std::string& field) { return QuoteIdent(t.column_of_field.at(field)); };
  std::vector<std::string> cond;
  if (op.op != Op::kInsert) {
    for (const std::string& k : t.binding.key) {
      DUPLEX_ASSIGN_OR_RETURN(std::string p, param(Source::kKey, k));
      cond.push_back(column(k) + " = " + p);
    }
    if (op.expected.is_object()) {
      for (const auto& item : op.expected.items()) {
        DUPLEX_ASSIGN_OR_RETURN(std::string p, param(Source::kExpected, item.key()));
        const Oid oid = t.oid_of_column.at(t.column_of_field.at(item.key()));
        if (CompareAsText(oid)) {
          cond.push_back(column(item.key()) + "::text IS NOT DISTINCT FROM (" + p + ")::text");
        } else {
          cond.push_back(column(item.key()) + " IS NOT DISTINCT FROM " + p);
        }
      }
    }
  }
  // Trigger mode: the application changed the row after the position the write was planned
  // at (op.seen), so it must not overwrite that change (the log says so; logical mode checks
  // its stream instead, in Apply).
  std::string unseen;
  if (opt_.capture == CaptureMode::kTrigger) {
    std::vector<std::string> key_params;
    for (const std::string& k : t.binding.key) {
      DUPLEX_ASSIGN_OR_RETURN(std::string p, param(Source::kKey, k));
      key_params.push_back("(" + p + ")::text");
    }
    out.params.emplace_back(Source::kSeen, "");
    ++n;
    unseen = "NOT EXISTS (SELECT 1 FROM " + Q(TableName("log")) +
             " WHERE tbl = " + QuoteLiteral(t.binding.table) + " AND pk = jsonb_build_array(" +
             Join(key_params, ", ") +
             ")::text AND op IN ('I', 'U', 'D', 'K') AND (pos IS NULL "
             "OR pos > " +
             Placeholder(n) + "::int8))";
  }
  std::string sql;
  const std::string table = Q(t.binding.table);
  switch (op.op) {
    case Op::kInsert: {
      std::vector<std::string> cols, vals, keys;
      // Every synced non-key field, after the key's parameters.
      auto add_values = [&]() -> Status {
        if (!op.values.is_object()) return Status::Ok();
        for (const auto& item : op.values.items()) {
          if (t.key_fields.count(item.key())) continue;  // taken from `key`
          cols.push_back(column(item.key()));
          DUPLEX_ASSIGN_OR_RETURN(std::string p, param(Source::kValues, item.key()));
          vals.push_back(p);
        }
        return Status::Ok();
      };
      if (t.binding.mapped_key) {
        // The endpoint generates the key: the row goes in without it and its key map entry in
        // the same statement. A record whose row is here already is a key conflict (rejected);
        // one whose row was deleted gets a new row, and its entry the new key.
        const std::string& k = t.binding.key.front();
        const std::string kc = column(k);
        out.params.emplace_back(Source::kKey, k);
        const std::string rec = Placeholder(++n) + "::text";
        DUPLEX_RETURN_IF_ERROR(add_values());
        std::string conds = "NOT EXISTS (SELECT 1 FROM " + table + " x WHERE x." + kc + " = " +
                            ValueSql(t, k, rec, false) + ")";
        if (!unseen.empty()) conds += " AND " + unseen;
        const Oid oid = t.oid_of_column.at(t.column_of_field.at(k));
        const bool number = oid == kInt2Oid || oid == kInt4Oid || oid == kInt8Oid || oid == kOidOid;
        const std::string native =
            number ? "to_jsonb(ins." + kc + ")::text" : "to_jsonb(ins." + kc + "::text)::text";
        sql = "WITH ins AS (INSERT INTO " + table +
              (cols.empty() ? "" : " (" + Join(cols, ", ") + ")") + " SELECT " + Join(vals, ", ") +
              " WHERE " + conds + " RETURNING " + kc + ") INSERT INTO " + Q(TableName("keymap")) +
              " (tbl, record, native) SELECT " + QuoteLiteral(t.binding.table) + ", " + rec + ", " +
              native +
              " FROM ins ON CONFLICT (tbl, record) DO UPDATE SET native = "
              "excluded.native";
        break;
      }
      for (const std::string& k : t.binding.key) {
        cols.push_back(column(k));
        keys.push_back(column(k));
        DUPLEX_ASSIGN_OR_RETURN(std::string p, param(Source::kKey, k));
        vals.push_back(p);
      }
      DUPLEX_RETURN_IF_ERROR(add_values());
      sql = "INSERT INTO " + table + " (" + Join(cols, ", ") + ") SELECT " + Join(vals, ", ") +
            (unseen.empty() ? "" : " WHERE " + unseen) + " ON CONFLICT (" + Join(keys, ", ") +
            ") DO NOTHING";
      break;
    }
    case Op::kUpdate: {
      std::vector<std::string> set;
      if (op.values.is_object()) {
        for (const auto& item : op.values.items()) {
          if (t.key_fields.count(item.key())) continue;
          DUPLEX_ASSIGN_OR_RETURN(std::string p, param(Source::kValues, item.key()));
          set.push_back(column(item.key()) + " = " + p);
        }
      }
      if (set.empty())
        set.push_back(column(t.binding.key.front()) + " = " + column(t.binding.key.front()));
      if (!unseen.empty()) cond.push_back(unseen);
      sql = "UPDATE " + table + " SET " + Join(set, ", ") + " WHERE " + Join(cond, " AND ");
      break;
    }
    case Op::kDelete:
      if (!unseen.empty()) cond.push_back(unseen);
      sql = "DELETE FROM " + table + " WHERE " + Join(cond, " AND ");
      break;
    default:
      return Status::InvalidArgument(where + ": a marker is not a row write");
  }
  out.name = "duplex_op_" + std::to_string(++stmt_counter_);
  PgResult res(PQprepare(apply_.get(), out.name.c_str(), sql.c_str(), 0, nullptr));
  if (!res || PQresultStatus(res.get()) != PGRES_COMMAND_OK) {
    return ErrorStatus(apply_.get(), res.get(), where);
  }
  auto inserted = stmts_.emplace(shape, std::move(out));
  return &inserted.first->second;
}

Result<ApplyResult> PostgresConnector::ApplyBatches(const std::vector<ApplyBatch>& batches,
                                                    bool isolate_txns) {
  ApplyResult result;
  if (batches.empty()) return result;
  DUPLEX_RETURN_IF_ERROR(EnsureDb());
  DUPLEX_RETURN_IF_ERROR(LoadTypes());
  if (!apply_.connected()) {
    stmts_.clear();
    DUPLEX_RETURN_IF_ERROR(Connect(apply_, true));
  }
  DUPLEX_ASSIGN_OR_RETURN(int64_t last, AppliedId());
  std::vector<const ApplyBatch*> todo;
  for (const ApplyBatch& b : batches) {
    if (b.id <= last) {
      ++result.skipped_batches;  // applied before (replay after a crash): P6
    } else {
      todo.push_back(&b);
    }
  }
  if (todo.empty()) return result;
  // Rows the application changed after the write was planned (logical mode): found after the
  // first attempt, then left out (rejected) on the next.
  std::set<std::pair<size_t, size_t>> stale;
  std::vector<std::vector<std::string>> native_keys;
  if (opt_.capture == CaptureMode::kLogical) {
    // The stream shows native keys; duplex sends record ids for mapped ones.
    DUPLEX_ASSIGN_OR_RETURN(native_keys, NativeKeyTexts(todo));
    // What the stream already shows: changed after the write was planned.
    for (size_t b = 0; b < todo.size(); ++b) {
      for (size_t i = 0; i < todo[b]->ops.size(); ++i) {
        const RowOp& op = todo[b]->ops[i];
        const BoundTable* t = ByCollection(op.collection);
        if (t == nullptr) continue;
        auto tbl = app_changed_.find(t->binding.table);
        if (tbl == app_changed_.end()) continue;
        auto it = tbl->second.find(native_keys[b][i]);
        if (it != tbl->second.end() && it->second > static_cast<uint64_t>(op.seen)) {
          stale.insert({b, i});
        }
      }
    }
  }
  for (int attempt = 0; attempt < 16; ++attempt) {
    size_t before = stale.size();
    Result<ApplyResult> r = ApplyOnce(todo, native_keys, isolate_txns, &stale);
    if (!r.ok()) {
      if (apply_.Broken()) {
        apply_.Close();
        stmts_.clear();
      }
      return r.status();
    }
    if (stale.size() == before) {
      r->skipped_batches += result.skipped_batches;
      return r;
    }
  }
  return Status::Unavailable(Where() +
                             ": the application keeps changing the rows being applied; "
                             "retrying");
}

Result<ApplyResult> PostgresConnector::ApplyOnce(
    const std::vector<const ApplyBatch*>& todo,
    const std::vector<std::vector<std::string>>& native_keys, bool isolate_txns,
    std::set<std::pair<size_t, size_t>>* stale) {
  ApplyResult result;
  const int64_t top = todo.back()->id;
  auto fail = [&](Status st) -> Status {
    (void)apply_.Run("ROLLBACK");
    return st;
  };
  // Deferrable foreign keys are checked at commit: the ops of a source transaction may come
  // in any order that satisfies the ones that are not deferrable (the planner's).
  DUPLEX_RETURN_IF_ERROR(apply_.Run("BEGIN; SET CONSTRAINTS ALL DEFERRED"));
  if (opt_.capture == CaptureMode::kLogical) {
    // The batch id as the origin position: stored with the commit (P6) and sent with it in the
    // Origin message (the marker). The origin time is the apply time.
    Status st = apply_
                    .Exec("SELECT pg_replication_origin_xact_setup($1::pg_lsn, now())",
                          {FormatLsn(static_cast<uint64_t>(top))})
                    .status();
    if (!st.ok()) return fail(st);
  } else {
    Status st = apply_.Exec("SELECT set_config('duplex.origin', $1, true)", {opt_.tag}).status();
    if (!st.ok()) return fail(st);
  }

  // Prepare every shape first (outside the pipeline).
  struct Planned {
    size_t b, i;
    const BoundTable* t;
    const RowOp* op;
    OpStmt* stmt;
  };
  std::vector<Planned> planned;
  std::vector<std::tuple<size_t, size_t, const BoundTable*, const RowOp*>> rejected;
  for (size_t b = 0; b < todo.size(); ++b) {
    for (size_t i = 0; i < todo[b]->ops.size(); ++i) {
      const RowOp& op = todo[b]->ops[i];
      const BoundTable* t = ByCollection(op.collection);
      if (t == nullptr) {
        return fail(Status::InvalidArgument(Where() + ": collection '" + op.collection +
                                            "' is not bound to this endpoint"));
      }
      if (stale->count({b, i})) {
        rejected.emplace_back(b, i, t, &op);
        continue;
      }
      Result<OpStmt*> s = Statement(*t, op);
      if (!s.ok()) return fail(s.status());
      planned.push_back({b, i, t, &op, *s});
    }
  }

  auto params_of = [&](const Planned& p, std::vector<std::optional<std::string>>& vals) -> Status {
    vals.clear();
    for (const auto& [source, field] : p.stmt->params) {
      if (source == OpStmt::Source::kSeen) {
        vals.push_back(std::to_string(p.op->seen));
        continue;
      }
      const Row& obj = source == OpStmt::Source::kKey      ? p.op->key
                       : source == OpStmt::Source::kValues ? p.op->values
                                                           : p.op->expected;
      if (!obj.is_object() || !obj.contains(field)) {
        return Status::InvalidArgument(Where(p.t->binding.table) + ", key " + p.op->key.dump() +
                                       ": field '" + field + "' is missing");
      }
      vals.push_back(ToText(obj[field]));
    }
    return Status::Ok();
  };

  // The source transactions (P7): contiguous ops of one batch with one RowOp::txn, stale ones
  // included (a unit that fails is reported whole). Txn 0 (a source that cannot tell its
  // transactions, such as SQLite) is a unit too: its ops were captured together.
  struct Unit {
    size_t b, first_op, end_op;         // todo[b]->ops[first_op, end_op)
    size_t first_planned, end_planned;  // planned[first_planned, end_planned)
  };
  std::vector<Unit> units;
  {
    size_t k = 0;
    for (size_t b = 0; b < todo.size(); ++b) {
      const std::vector<RowOp>& ops = todo[b]->ops;
      for (size_t i = 0; i < ops.size(); ++i) {
        if (i == 0 || ops[i].txn != ops[i - 1].txn) {
          units.push_back({b, i, i, k, k});
        }
        units.back().end_op = i + 1;
        if (k < planned.size() && planned[k].b == b && planned[k].i == i) ++k;
        units.back().end_planned = k;
      }
    }
  }

  // Sends planned[from, to) in one round trip, between `before` and `after` (plain statements),
  // and reads every result: affected rows per planned op (-1 if it did not run). Returns the
  // first error, naming the table and key of the statement at fault.
  std::vector<int64_t> affected(planned.size(), 0);
  std::vector<std::optional<std::string>> vals;
  std::vector<const char*> ptrs;
  auto pipeline = [&](size_t from, size_t to, const std::vector<std::string>& before,
                      const std::vector<std::string>& after, const std::string& where) -> Status {
    PGconn* c = apply_.get();
    if (PQenterPipelineMode(c) != 1) return ErrorStatus(c, nullptr, Where());
    Status sent = Status::Ok();
    for (const std::string& sql : before) {
      if (sent.ok() &&
          PQsendQueryParams(c, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) != 1) {
        sent = ErrorStatus(c, nullptr, Where());
      }
    }
    for (size_t k = from; k < to && sent.ok(); ++k) {
      affected[k] = -1;
      sent = params_of(planned[k], vals);
      if (!sent.ok()) break;
      ptrs.clear();
      for (auto& v : vals) ptrs.push_back(v ? v->c_str() : nullptr);
      if (PQsendQueryPrepared(c, planned[k].stmt->name.c_str(), static_cast<int>(ptrs.size()),
                              ptrs.data(), nullptr, nullptr, 0) != 1) {
        sent = ErrorStatus(c, nullptr, Where());
      }
    }
    for (const std::string& sql : after) {
      if (sent.ok() &&
          PQsendQueryParams(c, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) != 1) {
        sent = ErrorStatus(c, nullptr, Where());
      }
    }
    if (PQpipelineSync(c) != 1 && sent.ok()) sent = ErrorStatus(c, nullptr, Where());
    Status first_error = Status::Ok();
    // Results in the order sent: `before`, the ops, `after`; one result (then a NULL) each.
    size_t n = 0;
    while (true) {
      PgResult res(PQgetResult(c));
      if (!res) {
        if (PQstatus(c) != CONNECTION_OK) {
          first_error = ErrorStatus(c, nullptr, Where());
          break;
        }
        continue;  // end of one statement's results
      }
      ExecStatusType st = PQresultStatus(res.get());
      if (st == PGRES_PIPELINE_SYNC) break;
      const size_t at = n++;
      const bool is_op = at >= before.size() && at - before.size() < to - from;
      const size_t k = from + (at - before.size());
      if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (is_op) affected[k] = std::atoll(PQcmdTuples(res.get()));
      } else if (st != PGRES_PIPELINE_ABORTED && first_error.ok()) {
        first_error = ErrorStatus(
            c, res.get(),
            is_op ? Where(planned[k].t->binding.table) + ", key " + planned[k].op->key.dump()
                  : where);
      }
    }
    PQexitPipelineMode(c);
    if (!sent.ok()) return sent;
    return first_error;
  };

  // Ops of failed units: neither applied nor rejected.
  std::set<std::pair<size_t, size_t>> refused;
  if (isolate_txns) {
    // Each source transaction in its own savepoint, one round trip each. SET CONSTRAINTS ALL
    // IMMEDIATE checks the deferred foreign keys the unit left outstanding (PostgreSQL checks
    // them retroactively at that moment), so that a unit the target refuses is found here and
    // not at COMMIT; DEFERRED again for the next unit.
    for (const Unit& u : units) {
      const ApplyBatch& batch = *todo[u.b];
      const int64_t txn = batch.ops[u.first_op].txn;
      const std::string where = Where() + ", batch " + std::to_string(batch.id) +
                                ", source transaction " + std::to_string(txn);
      Status st = pipeline(u.first_planned, u.end_planned, {"SAVEPOINT duplex_txn"},
                           {"SET CONSTRAINTS ALL IMMEDIATE", "SET CONSTRAINTS ALL DEFERRED",
                            "RELEASE SAVEPOINT duplex_txn"},
                           where);
      if (st.ok()) continue;
      if (!st.IsInvalidArgument()) return fail(st);
      Status rb = apply_.Run("ROLLBACK TO SAVEPOINT duplex_txn; RELEASE SAVEPOINT duplex_txn");
      if (!rb.ok()) return fail(rb);
      FailedOp f{batch.id, txn, {}, st.message()};
      for (size_t i = u.first_op; i < u.end_op; ++i) {
        f.ops.push_back(batch.ops[i]);
        refused.insert({u.b, i});
      }
      for (size_t k = u.first_planned; k < u.end_planned; ++k) affected[k] = -1;
      result.failed.push_back(std::move(f));
    }
    if (!refused.empty()) {
      rejected.erase(std::remove_if(rejected.begin(), rejected.end(),
                                    [&](const auto& r) {
                                      return refused.count({std::get<0>(r), std::get<1>(r)}) > 0;
                                    }),
                     rejected.end());
    }
  } else if (!planned.empty()) {
    // Pipelined: every statement sent before the first result is read (one round trip).
    Status st = pipeline(0, planned.size(), {}, {}, Where());
    if (!st.ok()) return fail(st);
  }

  if (opt_.capture == CaptureMode::kLogical && !planned.empty()) {
    // Every change the application committed before our row locks is in WAL before this
    // position; once the stream has it, app_changed_ tells which writes were planned without
    // seeing one of them.
    // The flushed end, not the insert position: our own uncommitted rows are not flushed, and
    // the server sends only flushed WAL. A synchronous commit is flushed when it returns.
    Result<std::optional<std::string>> lsn =
        apply_.Scalar("SELECT pg_current_wal_flush_lsn()::text");
    if (!lsn.ok()) return fail(lsn.status());
    Status st = EnsureStream();
    if (!st.ok()) return fail(st);
    const uint64_t target = ParseLsn(lsn->value_or("0/0"));
    Result<bool> reached = stream_.WaitFor(target, 5);
    if (reached.ok() && !*reached) {
      // The flushed end may split a record (ours, uncommitted, or anyone's) that the server
      // cannot send until the rest is flushed, by the WAL writer (wal_writer_delay, 200 ms by
      // default) or the next commit. Commit a tiny transaction on the other connection: its
      // flush carries everything before it.
      Status nudge =
          db_.Exec("SELECT pg_logical_emit_message(true, $1, '')", {SlotName() + "_nudge"})
              .status();
      if (!nudge.ok()) return fail(nudge);
      reached = stream_.WaitFor(target, 5000);
    }
    if (!reached.ok()) return fail(reached.status());
    if (!*reached) {
      return fail(Status::Unavailable(Where() + ": the change stream is behind; applying later"));
    }
    while (!stream_.ready().empty()) {
      StreamTxn txn = std::move(stream_.ready().front());
      stream_.ready().pop_front();
      Status cv = Convert(std::move(txn));
      if (!cv.ok()) return fail(cv);
    }
    bool found = false;
    for (size_t k = 0; k < planned.size(); ++k) {
      if (affected[k] <= 0) continue;
      auto tbl = app_changed_.find(planned[k].t->binding.table);
      if (tbl == app_changed_.end()) continue;
      auto it = tbl->second.find(native_keys[planned[k].b][planned[k].i]);
      if (it != tbl->second.end() && it->second > static_cast<uint64_t>(planned[k].op->seen)) {
        stale->insert({planned[k].b, planned[k].i});
        found = true;
      }
    }
    if (found) {
      (void)apply_.Run("ROLLBACK");
      return ApplyResult{};
    }
  }

  for (size_t k = 0; k < planned.size(); ++k) {
    if (affected[k] > 0) {
      ++result.applied;
    } else if (affected[k] == 0) {
      rejected.emplace_back(planned[k].b, planned[k].i, planned[k].t, planned[k].op);
    }
  }
  // Rejected writes: what the row really is now, so that the resolver corrects its belief.
  Value msg = {{"rejected", Value::array()}};
  for (const auto& [b, i, t, op] : rejected) {
    ++result.rejected;
    // The row's text image, as the log and the stream carry rows (null: no row).
    Result<Value> image = ReadImage(*t, op->key, true);
    if (!image.ok()) return fail(image.status());
    if (opt_.capture == CaptureMode::kLogical) {
      msg["rejected"].push_back({{"c", t->binding.collection}, {"k", op->key}, {"row", *image}});
    } else {
      Status st = apply_
                      .Exec("INSERT INTO " + Q(TableName("log")) +
                                " (tbl, op, old, new, apply_id) VALUES ($1, 'R', $2, $3, $4)",
                            {t->binding.table, op->key.dump(),
                             image->is_null() ? Param() : Param(image->dump()),
                             std::to_string(todo[b]->id)})
                      .status();
      if (!st.ok()) return fail(st);
    }
  }
  if (opt_.capture == CaptureMode::kLogical) {
    // A transaction without a change would not be decoded (pgoutput skips empty ones): a
    // batch with no row writes (only there to be observed) sends an empty message instead.
    bool writes = false;
    for (const ApplyBatch* b : todo) writes |= !b->ops.empty();
    if (!msg["rejected"].empty() || !writes) {
      Status st =
          apply_.Exec("SELECT pg_logical_emit_message(true, $1, $2)", {SlotName(), msg.dump()})
              .status();
      if (!st.ok()) return fail(st);
    }
  } else {
    Status st = apply_
                    .Exec("INSERT INTO " + Q(TableName("log")) +
                              " (tbl, op, apply_id) VALUES ('', 'M', $1)",
                          {std::to_string(top)})
                    .status();
    if (st.ok()) {
      st = apply_
               .Exec("UPDATE " + Q(TableName("applied")) + " SET apply_id = $1 WHERE id = 1",
                     {std::to_string(top)})
               .status();
    }
    if (!st.ok()) return fail(st);
  }
  DUPLEX_RETURN_IF_ERROR(apply_.Run("COMMIT"));
  return result;
}

}  // namespace duplex::pg
