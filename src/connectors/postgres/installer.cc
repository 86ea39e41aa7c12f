#include "connectors/postgres/installer.h"

#include <map>
#include <optional>
#include <utility>

#include "util/json_value.h"

namespace duplex::pg {

Result<std::vector<std::string>> Installer::Preflight() {
  DUPLEX_RETURN_IF_ERROR(ep_.EnsureDb());
  Conn& db = ep_.db;
  std::vector<std::string> problems;
  DUPLEX_ASSIGN_OR_RETURN(
      PgResult role,
      db.Exec("SELECT rolsuper, rolreplication, current_user, current_database() FROM pg_roles "
              "WHERE rolname = current_user"));
  const bool super = PQntuples(role.get()) > 0 && PQgetvalue(role.get(), 0, 0)[0] == 't';
  const bool repl = PQntuples(role.get()) > 0 && PQgetvalue(role.get(), 0, 1)[0] == 't';
  const std::string user = PQntuples(role.get()) > 0 ? PQgetvalue(role.get(), 0, 2) : "?";
  const std::string dbname = PQntuples(role.get()) > 0 ? PQgetvalue(role.get(), 0, 3) : "?";
  DUPLEX_RETURN_IF_ERROR(capture_.Preflight(super, repl, user, dbname, &problems));
  const std::string& schema = ep_.opt.schema;
  DUPLEX_ASSIGN_OR_RETURN(std::optional<std::string> schema_ok,
                          db.Scalar("SELECT has_schema_privilege($1, 'CREATE')", {schema}));
  if (schema_ok.value_or("f") != "t") {
    problems.push_back(
        "role '" + user + "' may not create duplex's bookkeeping tables in schema '" + schema +
        "': run GRANT CREATE ON SCHEMA " + QuoteIdent(schema) + " TO " + QuoteIdent(user) + ";");
  }
  for (const BoundTable& t : ep_.tables) {
    DUPLEX_ASSIGN_OR_RETURN(
        PgResult rel,
        db.Exec("SELECT c.relreplident, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid "
                "AND i.indisprimary), pg_has_role(c.relowner, 'USAGE'), "
                "has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE') "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = $1 AND c.relname = $2",
                {schema, t.binding.table}));
    const std::string name = QuoteIdent(schema) + "." + QuoteIdent(t.binding.table);
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
    } else if (ident == 'n' && capture_.NeedsReplicaIdentity()) {
      // Publishing a table without replica identity makes the APPLICATION's updates fail.
      problems.push_back("table " + name +
                         " has REPLICA IDENTITY NOTHING, so publishing it would "
                         "make the application's UPDATE and DELETE fail: run ALTER TABLE " +
                         name + " REPLICA IDENTITY DEFAULT;");
    }
    if (!super && PQgetvalue(rel.get(), 0, 2)[0] != 't') {
      problems.push_back("role '" + user + "' does not own table " + name + ", which " +
                         capture_.OwnershipNeededFor() + ": run ALTER TABLE " + name +
                         " OWNER TO " + QuoteIdent(user) + ";");
    }
    if (PQgetvalue(rel.get(), 0, 3)[0] != 't') {
      problems.push_back("role '" + user + "' may not read and write table " + name +
                         ": run GRANT SELECT, INSERT, UPDATE, DELETE ON " + name + " TO " +
                         QuoteIdent(user) + ";");
    }
  }
  return problems;
}

Result<bool> Installer::IsInstalled() {
  DUPLEX_RETURN_IF_ERROR(ep_.EnsureDb());
  DUPLEX_ASSIGN_OR_RETURN(bool exists, ep_.ObjectsExist());
  if (!exists) return false;
  DUPLEX_ASSIGN_OR_RETURN(bool objects, capture_.ObjectsInstalled());
  if (!objects) return false;
  // Installed by an older duplex: no key map (or, trigger mode, no txn column in the log).
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> current,
      ep_.db.Scalar("SELECT to_regclass($1) IS NOT NULL AND ($2 = '' OR EXISTS (SELECT 1 FROM "
                    "pg_attribute WHERE attrelid = to_regclass($2) AND attname = 'txn' AND NOT "
                    "attisdropped))",
                    {ep_.Q(ep_.TableName("keymap")), capture_.LogTable()}));
  if (current.value_or("f") != "t") return false;
  DUPLEX_ASSIGN_OR_RETURN(PgResult res, ep_.db.Exec("SELECT tbl, columns, snapshot_done FROM " +
                                                    ep_.Q(ep_.TableName("tables"))));
  std::map<std::string, std::pair<std::string, bool>> have;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    have[PQgetvalue(res.get(), r, 0)] = {PQgetvalue(res.get(), r, 1),
                                         PQgetvalue(res.get(), r, 2)[0] == 't'};
  }
  if (have.size() != ep_.tables.size()) return false;
  for (const BoundTable& t : ep_.tables) {
    auto it = have.find(t.binding.table);
    if (it == have.end() || !it->second.second) return false;
    if (Value::parse(it->second.first) != Value(t.columns)) return false;
  }
  return capture_.TablesInstalled();
}

Status Installer::Install() {
  DUPLEX_RETURN_IF_ERROR(ep_.EnsureDb());
  // Nothing to change: no DDL. Its locks would queue behind any application transaction open on
  // a synced table, and every later write to that table would queue behind them (issue 15).
  DUPLEX_ASSIGN_OR_RETURN(bool installed, IsInstalled());
  if (installed) return ep_.LoadTypes();
  // DDL that is needed waits for its locks at most kLockTimeout, then fails as Unavailable
  // (55P03): the engine tries again later, and no application write waits behind it longer.
  DUPLEX_RETURN_IF_ERROR(ep_.db.Run(std::string("SET lock_timeout = '") + kLockTimeout + "'"));
  Status st = InstallAll();
  Status reset = ep_.db.Run("RESET lock_timeout");
  return st.ok() ? reset : st;
}

Status Installer::InstallAll() {
  DUPLEX_ASSIGN_OR_RETURN(std::vector<std::string> problems, Preflight());
  if (!problems.empty()) {
    return Status::InvalidArgument(ep_.Where() + ": cannot install capture:\n  - " +
                                   Join(problems, "\n  - "));
  }
  DUPLEX_RETURN_IF_ERROR(ep_.LoadTypes());
  applier_.Reset();
  Conn& db = ep_.db;
  const std::string registry = ep_.Q(ep_.TableName("tables"));
  DUPLEX_RETURN_IF_ERROR(db.Run(
      "CREATE TABLE IF NOT EXISTS " + registry +
      " (tbl text PRIMARY KEY, columns jsonb NOT NULL, snapshot_done boolean NOT NULL DEFAULT "
      "false, last_key jsonb)"));
  DUPLEX_RETURN_IF_ERROR(keys_.Install());
  DUPLEX_RETURN_IF_ERROR(capture_.InstallObjects());

  // Per table: register (columns), then the initial load where it was not done yet.
  DUPLEX_ASSIGN_OR_RETURN(PgResult res, db.Exec("SELECT tbl, snapshot_done FROM " + registry));
  std::map<std::string, bool> done;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    done[PQgetvalue(res.get(), r, 0)] = PQgetvalue(res.get(), r, 1)[0] == 't';
  }
  for (const BoundTable& t : ep_.tables) {
    const bool snapshot = !done.count(t.binding.table) || !done[t.binding.table];
    DUPLEX_RETURN_IF_ERROR(capture_.InstallTable(t, snapshot));
  }
  // Tables no longer bound: forget them (and their capture).
  for (const auto& [tbl, d] : done) {
    if (ep_.by_table.count(tbl)) continue;
    DUPLEX_RETURN_IF_ERROR(capture_.ForgetTable(tbl));
    DUPLEX_RETURN_IF_ERROR(db.Exec("DELETE FROM " + registry + " WHERE tbl = $1", {tbl}).status());
  }
  return Status::Ok();
}

Status Installer::Uninstall() {
  DUPLEX_RETURN_IF_ERROR(ep_.EnsureDb());
  capture_.Reset();
  applier_.Reset();
  ep_.objects_exist = false;
  keys_.Reset();  // the key map goes: what it said no longer holds
  Conn& db = ep_.db;
  DUPLEX_ASSIGN_OR_RETURN(bool exists, ep_.ObjectsExist());
  std::vector<std::string> registered;
  if (exists) {
    DUPLEX_ASSIGN_OR_RETURN(PgResult res,
                            db.Exec("SELECT tbl FROM " + ep_.Q(ep_.TableName("tables"))));
    for (int r = 0; r < PQntuples(res.get()); ++r)
      registered.push_back(PQgetvalue(res.get(), r, 0));
  }
  for (const BoundTable& t : ep_.tables) registered.push_back(t.binding.table);
  // Both modes' objects, whichever this endpoint used before.
  std::string sql;
  for (const std::string& tbl : registered) {
    DUPLEX_ASSIGN_OR_RETURN(std::optional<std::string> has,
                            db.Scalar("SELECT to_regclass($1) IS NOT NULL", {ep_.Q(tbl)}));
    if (has.value_or("f") == "t") {
      sql += "DROP TRIGGER IF EXISTS " + QuoteIdent(ep_.TableName("capture")) + " ON " +
             ep_.Q(tbl) + ";";
      sql += "DROP TRIGGER IF EXISTS " + QuoteIdent(ep_.TableName("truncate")) + " ON " +
             ep_.Q(tbl) + ";";
    }
    sql += "DROP FUNCTION IF EXISTS " + ep_.Q(ep_.TableName("capture_" + tbl)) + "();";
  }
  sql += "DROP TABLE IF EXISTS " + ep_.Q(ep_.TableName("log")) + ", " +
         ep_.Q(ep_.TableName("applied")) + ", " + ep_.Q(ep_.TableName("acked")) + ", " +
         ep_.Q(ep_.TableName("tables")) + ", " + ep_.Q(ep_.TableName("keymap")) + ";";
  sql += "DROP FUNCTION IF EXISTS " + ep_.Q(ep_.TableName("native")) + "(text, text, text);";
  sql += "DROP PUBLICATION IF EXISTS " + QuoteIdent(ep_.PublicationName()) + ";";
  DUPLEX_RETURN_IF_ERROR(db.Run(sql).WithContext(ep_.Where()));
  ep_.objects_exist = false;
  // The slot holds WAL until dropped; an active one (another duplex still streaming) is
  // reported, not waited for. The functions need privileges: only called for what exists.
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> slot,
      db.Scalar("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", {ep_.SlotName()}));
  if (slot) {
    DUPLEX_RETURN_IF_ERROR(
        db.Exec("SELECT pg_drop_replication_slot($1)", {ep_.SlotName()}).status());
  }
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> origin,
      db.Scalar("SELECT 1 FROM pg_replication_origin WHERE roname = $1", {ep_.OriginName()}));
  if (origin) {
    DUPLEX_RETURN_IF_ERROR(
        db.Exec("SELECT pg_replication_origin_drop($1)", {ep_.OriginName()}).status());
  }
  return Status::Ok();
}

}  // namespace duplex::pg
