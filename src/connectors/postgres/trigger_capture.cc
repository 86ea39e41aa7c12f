#include "connectors/postgres/trigger_capture.h"

#include <algorithm>
#include <optional>

#include "connectors/postgres/txn_guard.h"
#include "util/json_value.h"

namespace duplex::pg {

// ---------------------------------------------------------------------------------------------
// Install

Status TriggerCapture::InstallObjects() {
  const std::string log = ep_.Q(ep_.TableName("log"));
  return ep_.db.Run(
      "CREATE TABLE IF NOT EXISTS " + log +
      " (id bigserial PRIMARY KEY, pos bigint, tbl text NOT NULL, op \"char\" NOT NULL, "
      "pk text, old jsonb, new jsonb, apply_id bigint, snapshot boolean NOT NULL DEFAULT false, "
      "at timestamptz NOT NULL DEFAULT statement_timestamp());"
      // The writing transaction (Change::txn), filled by the default in the trigger's
      // transaction. Added to logs created before it; their old rows keep NULL (unknown).
      "ALTER TABLE " +
      log +
      " ADD COLUMN IF NOT EXISTS txn bigint;"
      "ALTER TABLE " +
      log +
      " ALTER COLUMN txn SET DEFAULT txid_current();"
      "CREATE INDEX IF NOT EXISTS " +
      QuoteIdent(ep_.TableName("log_unstamped")) + " ON " + log +
      " (id) WHERE pos IS NULL;"
      "CREATE INDEX IF NOT EXISTS " +
      QuoteIdent(ep_.TableName("log_pos")) + " ON " + log +
      " (pos);"
      "CREATE INDEX IF NOT EXISTS " +
      QuoteIdent(ep_.TableName("log_pk")) + " ON " + log +
      " (tbl, pk);"
      "CREATE TABLE IF NOT EXISTS " +
      ep_.Q(ep_.TableName("applied")) +
      " (id int PRIMARY KEY CHECK (id = 1), apply_id bigint NOT NULL, stamped bigint NOT NULL);"
      "INSERT INTO " +
      ep_.Q(ep_.TableName("applied")) +
      " VALUES (1, 0, 0) ON CONFLICT DO NOTHING;"
      // The endpoint's own record of what duplex acked (CheckRestored).
      "CREATE TABLE IF NOT EXISTS " +
      ep_.Q(ep_.TableName("acked")) + " (id int PRIMARY KEY CHECK (id = 1), pos bigint NOT NULL)");
}

Result<bool> TriggerCapture::ObjectsInstalled() {
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> ok,
      ep_.db.Scalar("SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AND "
                    "to_regclass($3) IS NOT NULL",
                    {ep_.Q(ep_.TableName("log")), ep_.Q(ep_.TableName("applied")),
                     ep_.Q(ep_.TableName("acked"))}));
  return ok.value_or("f") == "t";
}

Result<bool> TriggerCapture::TablesInstalled() {
  for (const BoundTable& t : ep_.tables) {
    DUPLEX_ASSIGN_OR_RETURN(
        std::optional<std::string> ok,
        ep_.db.Scalar("SELECT EXISTS (SELECT 1 FROM pg_trigger g JOIN pg_proc p ON p.oid = "
                      "g.tgfoid WHERE g.tgrelid = to_regclass($1) AND g.tgname = $2 AND NOT "
                      "g.tgisinternal AND g.tgenabled <> 'D' AND p.prosrc LIKE '%' || $3 || "
                      "'%')",
                      {ep_.Q(t.binding.table), ep_.TableName("capture"), kTriggerVersion}));
    if (ok.value_or("f") != "t") return false;
  }
  return true;
}

Status TriggerCapture::InstallTable(const BoundTable& t, bool snapshot) {
  const std::string fn = ep_.Q(ep_.TableName("capture_" + t.binding.table));
  DUPLEX_ASSIGN_OR_RETURN(std::string new_image, ep_.ImageSql(t, "NEW."));
  DUPLEX_ASSIGN_OR_RETURN(std::string old_image, ep_.ImageSql(t, "OLD."));
  DUPLEX_ASSIGN_OR_RETURN(std::string snap_image, ep_.ImageSql(t, "s."));
  std::vector<std::string> snap_keys;
  for (const std::string& c : t.key_columns) snap_keys.push_back("s." + QuoteIdent(c));
  const std::string log = ep_.Q(ep_.TableName("log"));
  const std::string tbl = QuoteLiteral(t.binding.table);
  // The function's own settings make every value's text the same whatever the application's
  // session uses (pg_types.h); SET LOCAL by duplex's apply session marks its own writes.
  std::string sql = "CREATE OR REPLACE FUNCTION " + fn +
                    "() RETURNS trigger LANGUAGE plpgsql "
                    "SET DateStyle = 'ISO' SET TimeZone = 'UTC' SET extra_float_digits = 3 "
                    "SET IntervalStyle = 'postgres' SET bytea_output = 'hex' AS $duplex$\n"
                    "DECLARE o jsonb; n jsonb;\n"
                    "BEGIN\n"
                    "  -- " +
                    std::string(kTriggerVersion) +
                    "\n"
                    "  IF current_setting('duplex.origin', true) = " +
                    QuoteLiteral(ep_.opt.tag) +
                    " THEN\n"
                    "    RETURN NULL;\n"
                    "  END IF;\n"
                    "  IF TG_OP = 'INSERT' THEN\n"
                    "    INSERT INTO " +
                    log + " (tbl, op, pk, new) VALUES (" + tbl + ", 'I', " +
                    ep_.KeyTextSql(t, "NEW.") + ", " + new_image +
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
                    log + " (tbl, op, pk, old, new) VALUES (" + tbl + ", 'U', " +
                    ep_.KeyTextSql(t, "NEW.") +
                    ", o, n);\n"
                    "      IF " +
                    ep_.KeyTextSql(t, "OLD.") + " <> " + ep_.KeyTextSql(t, "NEW.") +
                    " THEN\n"
                    "        INSERT INTO " +
                    log + " (tbl, op, pk) VALUES (" + tbl + ", 'K', " + ep_.KeyTextSql(t, "OLD.") +
                    ");\n"
                    "      END IF;\n"
                    "    END IF;\n"
                    // The statement trigger: the table emptied at once (README "Truncate").
                    "  ELSIF TG_OP = 'TRUNCATE' THEN\n"
                    "    INSERT INTO " +
                    log + " (tbl, op) VALUES (" + tbl +
                    ", 'T');\n"
                    "  ELSE\n"
                    "    INSERT INTO " +
                    log + " (tbl, op, pk, old) VALUES (" + tbl + ", 'D', " +
                    ep_.KeyTextSql(t, "OLD.") + ", " + old_image +
                    ");\n"
                    "  END IF;\n"
                    "  RETURN NULL;\n"
                    "END\n$duplex$;"
                    "DROP TRIGGER IF EXISTS " +
                    QuoteIdent(ep_.TableName("capture")) + " ON " + ep_.Q(t.binding.table) +
                    ";"
                    "CREATE TRIGGER " +
                    QuoteIdent(ep_.TableName("capture")) + " AFTER INSERT OR UPDATE OR DELETE ON " +
                    ep_.Q(t.binding.table) + " FOR EACH ROW EXECUTE FUNCTION " + fn +
                    "();"
                    "DROP TRIGGER IF EXISTS " +
                    QuoteIdent(ep_.TableName("truncate")) + " ON " + ep_.Q(t.binding.table) +
                    ";"
                    "CREATE TRIGGER " +
                    QuoteIdent(ep_.TableName("truncate")) + " AFTER TRUNCATE ON " +
                    ep_.Q(t.binding.table) + " FOR EACH STATEMENT EXECUTE FUNCTION " + fn + "();";
  if (snapshot) {
    // In the transaction that created the trigger, which holds a lock that keeps writers out
    // until it commits: every row is either in the snapshot or logged by the trigger.
    sql +=
        "SET LOCAL DateStyle = 'ISO'; SET LOCAL TimeZone = 'UTC'; SET LOCAL "
        "extra_float_digits = 3;"
        "INSERT INTO " +
        log + " (tbl, op, pk, new, snapshot) SELECT " + tbl + ", 'I', " + ep_.KeyTextSql(t, "s.") +
        ", " + snap_image + ", true FROM " + ep_.Q(t.binding.table) + " s ORDER BY " +
        Join(snap_keys, ", ") + ";";
  }
  sql += "INSERT INTO " + ep_.Q(ep_.TableName("tables")) +
         " (tbl, columns, snapshot_done) VALUES (" + tbl + ", " +
         QuoteLiteral(Value(t.columns).dump()) +
         ", true) ON CONFLICT (tbl) DO UPDATE SET columns = excluded.columns, snapshot_done = "
         "true;";
  TxnGuard txn(ep_.db);
  Status st = txn.Begin();
  if (st.ok()) st = ep_.db.Run(sql);
  if (st.ok()) st = txn.Commit();
  if (!st.ok()) return st.WithContext(ep_.Where(t.binding.table));
  return Status::Ok();
}

Status TriggerCapture::ForgetTable(const std::string& table) {
  return ep_.db.Run("DROP TRIGGER IF EXISTS " + QuoteIdent(ep_.TableName("capture")) + " ON " +
                    ep_.Q(table) + "; DROP TRIGGER IF EXISTS " +
                    QuoteIdent(ep_.TableName("truncate")) + " ON " + ep_.Q(table) +
                    "; DROP FUNCTION IF EXISTS " + ep_.Q(ep_.TableName("capture_" + table)) + "()");
}

// ---------------------------------------------------------------------------------------------
// Capture

Result<bool> TriggerCapture::Poll() {
  DUPLEX_RETURN_IF_ERROR(ep_.EnsureDb());
  if (first_poll_) {
    first_poll_ = false;
    return true;
  }
  DUPLEX_ASSIGN_OR_RETURN(bool exists, ep_.ObjectsExist());
  if (!exists) return false;
  const std::string log = ep_.Q(ep_.TableName("log"));
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> v,
      ep_.db.Scalar("SELECT EXISTS (SELECT 1 FROM " + log +
                        " WHERE pos IS NULL) OR EXISTS (SELECT 1 FROM " + log + " WHERE pos > $1)",
                    {std::to_string(last_stamped_)}));
  return v.value_or("f") == "t";
}

Status TriggerCapture::StampLog() {
  // Positions in commit order: a round stamps only committed rows, in id order. A row of a
  // transaction still running is invisible here and gets a later position when it commits;
  // two changes of one row are ordered by the row lock, so their ids are in commit order.
  const std::string log = ep_.Q(ep_.TableName("log"));
  const std::string applied = ep_.Q(ep_.TableName("applied"));
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
  DUPLEX_ASSIGN_OR_RETURN(std::optional<std::string> top, ep_.db.Scalar(sql));
  if (top) last_stamped_ = std::atoll(top->c_str());
  return Status::Ok();
}

Result<ChangeBatch> TriggerCapture::Capture(const Position& from_pos, size_t max_changes) {
  const int64_t from = from_pos.ToInt();
  DUPLEX_RETURN_IF_ERROR(ep_.EnsureDb());
  DUPLEX_RETURN_IF_ERROR(ep_.LoadTypes());
  ChangeBatch batch;
  batch.end = Position::FromInt(from);
  DUPLEX_ASSIGN_OR_RETURN(bool exists, ep_.ObjectsExist());
  if (!exists)
    return Status::InvalidArgument(ep_.Where() +
                                   ": change capture is not installed (run Install())");
  DUPLEX_RETURN_IF_ERROR(StampLog());
  DUPLEX_ASSIGN_OR_RETURN(
      PgResult res,
      ep_.db.Exec("SELECT pos, tbl, op, old::text, new::text, apply_id, snapshot, "
                  "(extract(epoch FROM at) * 1000)::float8, pk, txn FROM " +
                      ep_.Q(ep_.TableName("log")) + " WHERE pos > $1 ORDER BY pos LIMIT $2",
                  {std::to_string(from), std::to_string(std::max<size_t>(max_changes, 1))}));
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    const int64_t pos = std::atoll(PQgetvalue(res.get(), r, 0));
    const std::string tbl = PQgetvalue(res.get(), r, 1);
    const char op = PQgetvalue(res.get(), r, 2)[0];
    const double at = std::atof(PQgetvalue(res.get(), r, 7));
    // The initial load's rows share Install's transaction but belong to none: one unit each
    // (from -2: the engine's kWholeBatch is -1).
    const int64_t txn = PQgetvalue(res.get(), r, 6)[0] == 't' ? -pos - 1
                        : PQgetisnull(res.get(), r, 9)        ? 0
                                                       : std::atoll(PQgetvalue(res.get(), r, 9));
    batch.end = Position::FromInt(pos);
    if (op == 'M') {
      Change m;
      m.op = Op::kMarker;
      m.apply_id = std::atoll(PQgetvalue(res.get(), r, 5));
      m.position = Position::FromInt(pos);
      m.commit_ms = at;
      m.txn = txn;
      batch.changes.push_back(std::move(m));
      continue;
    }
    auto bound = ep_.by_table.find(tbl);
    if (bound == ep_.by_table.end() || op == 'K') continue;
    const BoundTable& t = ep_.tables[bound->second];
    if (op == 'T') {
      Change c;
      c.op = Op::kTruncate;
      c.collection = t.binding.collection;
      c.position = Position::FromInt(pos);
      c.commit_ms = at;
      c.txn = txn;
      batch.changes.push_back(std::move(c));
      continue;
    }
    Change c;
    c.collection = t.binding.collection;
    c.position = Position::FromInt(pos);
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
      c.after = ep_.ImageToRow(t, new_img);
      batch.changes.push_back(std::move(c));
      continue;
    }
    c.before = ep_.ImageToRow(t, old_img);
    c.after = ep_.ImageToRow(t, new_img);
    c.op = static_cast<Op>(op);
    c.key = KeyOf(t.binding.key, op == 'D' ? c.before : c.after);
    const Row old_key = op == 'U' ? KeyOf(t.binding.key, c.before) : Row();
    AppendRowChange(std::move(c), old_key, t.binding.key, &batch.changes);
  }
  DUPLEX_RETURN_IF_ERROR(keys_.PresentRecords(&batch.changes));
  return batch;
}

Result<int64_t> TriggerCapture::Backlog(const Position& from_pos) {
  const int64_t from = from_pos.ToInt();
  DUPLEX_RETURN_IF_ERROR(ep_.EnsureDb());
  DUPLEX_ASSIGN_OR_RETURN(bool exists, ep_.ObjectsExist());
  if (!exists) return int64_t{0};
  DUPLEX_ASSIGN_OR_RETURN(std::optional<std::string> n,
                          ep_.db.Scalar("SELECT count(*) FROM " + ep_.Q(ep_.TableName("log")) +
                                            " WHERE pos IS NULL OR pos > $1",
                                        {std::to_string(from)}));
  return static_cast<int64_t>(std::atoll(n.value_or("0").c_str()));
}

Status TriggerCapture::Ack(const Position& upto_pos) {
  const int64_t upto = upto_pos.ToInt();
  DUPLEX_RETURN_IF_ERROR(ep_.EnsureDb());
  DUPLEX_ASSIGN_OR_RETURN(bool exists, ep_.ObjectsExist());
  if (!exists) return Status::Ok();
  const std::string log = ep_.Q(ep_.TableName("log"));
  if (upto == acked_stamp_) {
    return ep_.db.Exec("DELETE FROM " + log + " WHERE pos <= $1", {std::to_string(upto)}).status();
  }
  // With the endpoint's own record of what duplex acked (CheckRestored).
  DUPLEX_RETURN_IF_ERROR(ep_.db
                             .Exec("WITH d AS (DELETE FROM " + log +
                                       " WHERE pos <= $1) INSERT INTO " +
                                       ep_.Q(ep_.TableName("acked")) +
                                       " VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET pos = "
                                       "excluded.pos",
                                   {std::to_string(upto)})
                             .status());
  acked_stamp_ = upto;
  return Status::Ok();
}

Result<RestoreCheck> TriggerCapture::CheckRestored(const Position& captured_pos,
                                                   const Position& acked_pos) {
  const int64_t captured = captured_pos.ToInt();
  const int64_t acked = acked_pos.ToInt();
  RestoreCheck check{"", captured_pos};
  auto number = [](const std::optional<std::string>& v) -> std::optional<int64_t> {
    if (!v) return std::nullopt;
    return static_cast<int64_t>(std::atoll(v->c_str()));
  };
  Conn& db = ep_.db;
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> has,
      db.Scalar("SELECT to_regclass($1) IS NOT NULL", {ep_.Q(ep_.TableName("acked"))}));
  std::optional<int64_t> stamp;
  if (has.value_or("f") == "t") {
    DUPLEX_ASSIGN_OR_RETURN(
        std::optional<std::string> v,
        db.Scalar("SELECT pos FROM " + ep_.Q(ep_.TableName("acked")) + " WHERE id = 1"));
    stamp = number(v);
  }
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> top,
      db.Scalar("SELECT stamped FROM " + ep_.Q(ep_.TableName("applied")) + " WHERE id = 1"));
  if (stamp && *stamp < acked) {
    check.reason = "its changelog records duplex's acknowledgements up to position " +
                   std::to_string(*stamp) + ", the state file up to " + std::to_string(acked);
  } else if (number(top).value_or(0) < captured) {
    check.reason = "its changelog's positions end at " + std::to_string(number(top).value_or(0)) +
                   ", before position " + std::to_string(captured) + " that duplex captured";
  }
  if (!check.reason.empty()) check.resume = Position::FromInt(stamp.value_or(0));
  return check;
}

Result<int64_t> TriggerCapture::AppliedId() {
  DUPLEX_ASSIGN_OR_RETURN(bool exists, ep_.ObjectsExist());
  if (!exists) return int64_t{0};
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> id,
      ep_.db.Scalar("SELECT apply_id FROM " + ep_.Q(ep_.TableName("applied")) + " WHERE id = 1"));
  return static_cast<int64_t>(std::atoll(id.value_or("0").c_str()));
}

// ---------------------------------------------------------------------------------------------
// Apply

Status TriggerCapture::BeginApply(Conn& apply, int64_t /*top*/) {
  return apply.Exec("SELECT set_config('duplex.origin', $1, true)", {ep_.opt.tag}).status();
}

std::string TriggerCapture::UnseenSql(const BoundTable& t, const std::string& key_sql,
                                      const std::string& seen_ph) const {
  // The application changed the row after the position the write was planned at (op.seen), so
  // the write must not overwrite that change: the log says so.
  return "NOT EXISTS (SELECT 1 FROM " + ep_.Q(ep_.TableName("log")) +
         " WHERE tbl = " + QuoteLiteral(t.binding.table) + " AND pk = " + key_sql +
         " AND op IN ('I', 'U', 'D', 'K') AND (pos IS NULL "
         "OR pos > " +
         seen_ph + "::int8))";
}

Status TriggerCapture::Reject(Conn& apply, const BoundTable& t, const RowOp& op, const Value& image,
                              int64_t batch_id) {
  return apply
      .Exec("INSERT INTO " + ep_.Q(ep_.TableName("log")) +
                " (tbl, op, old, new, apply_id) VALUES ($1, 'R', $2, $3, $4)",
            {t.binding.table, op.key.dump(), image.is_null() ? Param() : Param(image.dump()),
             std::to_string(batch_id)})
      .status();
}

Status TriggerCapture::Mark(Conn& apply, int64_t top, bool /*writes*/) {
  DUPLEX_RETURN_IF_ERROR(apply
                             .Exec("INSERT INTO " + ep_.Q(ep_.TableName("log")) +
                                       " (tbl, op, apply_id) VALUES ('', 'M', $1)",
                                   {std::to_string(top)})
                             .status());
  return apply
      .Exec("UPDATE " + ep_.Q(ep_.TableName("applied")) + " SET apply_id = $1 WHERE id = 1",
            {std::to_string(top)})
      .status();
}

}  // namespace duplex::pg
