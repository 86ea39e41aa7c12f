#include "connectors/postgres/logical_capture.h"

#include <algorithm>
#include <optional>

#include "connectors/postgres/pg_types.h"
#include "connectors/postgres/txn_guard.h"
#include "util/json_value.h"

namespace duplex::pg {

// ---------------------------------------------------------------------------------------------
// Install

Status LogicalCapture::Preflight(bool super, bool repl, const std::string& user,
                                 const std::string& dbname, std::vector<std::string>* problems) {
  Conn& db = ep_.db;
  DUPLEX_ASSIGN_OR_RETURN(std::optional<std::string> wal, db.Scalar("SHOW wal_level"));
  if (wal.value_or("") != "logical") {
    problems->push_back("wal_level is '" + wal.value_or("") +
                        "', logical capture needs 'logical': run ALTER SYSTEM SET wal_level = "
                        "logical; and restart the server (or set capture = \"trigger\")");
  }
  DUPLEX_ASSIGN_OR_RETURN(
      PgResult slots, db.Exec("SELECT current_setting('max_replication_slots')::int, "
                              "(SELECT count(*) FROM pg_replication_slots), "
                              "EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1), "
                              "current_setting('max_wal_senders')::int",
                              {ep_.SlotName()}));
  const int max_slots = std::atoi(PQgetvalue(slots.get(), 0, 0));
  const int used = std::atoi(PQgetvalue(slots.get(), 0, 1));
  const bool ours = PQgetvalue(slots.get(), 0, 2)[0] == 't';
  if (!ours && used >= max_slots) {
    problems->push_back("all " + std::to_string(max_slots) +
                        " replication slots are in use (max_replication_slots): run ALTER SYSTEM "
                        "SET max_replication_slots = " +
                        std::to_string(max_slots + 4) + "; and restart the server");
  }
  if (std::atoi(PQgetvalue(slots.get(), 0, 3)) < 1) {
    problems->push_back(
        "max_wal_senders is 0: run ALTER SYSTEM SET max_wal_senders = 10; and "
        "restart the server");
  }
  if (!super && !repl) {
    problems->push_back("role '" + user + "' may not stream changes: run ALTER ROLE " +
                        QuoteIdent(user) + " REPLICATION;");
  }
  if (!super) {
    DUPLEX_ASSIGN_OR_RETURN(
        std::optional<std::string> can,
        db.Scalar("SELECT has_function_privilege('pg_replication_origin_session_setup(text)', "
                  "'EXECUTE') AND has_function_privilege("
                  "'pg_replication_origin_xact_setup(pg_lsn, timestamptz)', 'EXECUTE')"));
    if (can.value_or("f") != "t") {
      problems->push_back(
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
        db.Scalar("SELECT has_database_privilege(current_database(), 'CREATE')"));
    if (create.value_or("f") != "t") {
      problems->push_back("role '" + user +
                          "' may not create the publication: run GRANT CREATE "
                          "ON DATABASE " +
                          QuoteIdent(dbname) + " TO " + QuoteIdent(user) + ";");
    }
  }
  return Status::Ok();
}

Result<bool> LogicalCapture::ObjectsInstalled() {
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> ok,
      ep_.db.Scalar("SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1) AND "
                    // A publication made before TRUNCATE was synced does not publish it.
                    "EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1 AND pubtruncate) "
                    "AND "
                    "EXISTS (SELECT 1 FROM pg_replication_origin WHERE roname = $1)",
                    {ep_.SlotName()}));
  return ok.value_or("f") == "t";
}

Result<bool> LogicalCapture::TablesInstalled() {
  DUPLEX_ASSIGN_OR_RETURN(
      PgResult pub, ep_.db.Exec("SELECT tablename FROM pg_publication_tables WHERE pubname = $1 "
                                "AND schemaname = $2",
                                {ep_.PublicationName(), ep_.opt.schema}));
  return PQntuples(pub.get()) == static_cast<int>(ep_.tables.size());
}

Status LogicalCapture::InstallObjects() {
  Conn& db = ep_.db;
  // Publication: exactly the bound tables.
  std::vector<std::string> names;
  for (const BoundTable& t : ep_.tables) names.push_back(ep_.Q(t.binding.table));
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> pub,
      db.Scalar("SELECT 1 FROM pg_publication WHERE pubname = $1", {ep_.PublicationName()}));
  const std::string list = names.empty() ? "" : " TABLE " + Join(names, ", ");
  // TRUNCATE too: it reaches the engine as a truncate of the collection (README "Truncate").
  const std::string publish = " (publish = 'insert, update, delete, truncate')";
  if (!pub) {
    DUPLEX_RETURN_IF_ERROR(db.Run("CREATE PUBLICATION " + QuoteIdent(ep_.PublicationName()) +
                                  (names.empty() ? "" : " FOR" + list) + " WITH" + publish));
  } else {
    if (!names.empty()) {
      DUPLEX_RETURN_IF_ERROR(
          db.Run("ALTER PUBLICATION " + QuoteIdent(ep_.PublicationName()) + " SET" + list));
    }
    DUPLEX_RETURN_IF_ERROR(
        db.Run("ALTER PUBLICATION " + QuoteIdent(ep_.PublicationName()) + " SET" + publish));
  }
  DUPLEX_RETURN_IF_ERROR(db.Exec("SELECT pg_replication_origin_create($1) WHERE NOT EXISTS "
                                 "(SELECT 1 FROM pg_replication_origin WHERE roname = $1)",
                                 {ep_.OriginName()})
                             .status());
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> slot,
      db.Scalar("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", {ep_.SlotName()}));
  if (!slot) {
    DUPLEX_RETURN_IF_ERROR(
        db.Exec("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", {ep_.SlotName()})
            .status());
  }
  return Status::Ok();
}

Status LogicalCapture::InstallTable(const BoundTable& t, bool snapshot) {
  DUPLEX_RETURN_IF_ERROR(
      ep_.db
          .Exec("INSERT INTO " + ep_.Q(ep_.TableName("tables")) +
                    " (tbl, columns) VALUES ($1, $2) ON CONFLICT (tbl) DO UPDATE SET columns = "
                    "excluded.columns",
                {t.binding.table, Value(t.columns).dump()})
          .status());
  if (snapshot) DUPLEX_RETURN_IF_ERROR(SnapshotTable(t));
  return Status::Ok();
}

Status LogicalCapture::SnapshotTable(const BoundTable& t) {
  // Chunks in key order, each in its own transaction (README "initial load").
  Conn& db = ep_.db;
  const std::string registry = ep_.Q(ep_.TableName("tables"));
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> last,
      db.Scalar("SELECT last_key::text FROM " + registry + " WHERE tbl = $1", {t.binding.table}));
  Value last_key = last ? Value::parse(*last) : Value();
  DUPLEX_ASSIGN_OR_RETURN(std::string image, ep_.ImageSql(t, "s."));
  std::vector<std::string> keys, key_texts, params;
  int i = 1;
  for (const std::string& c : t.key_columns) {
    keys.push_back("s." + QuoteIdent(c));
    key_texts.push_back("(s." + QuoteIdent(c) + ")::text");
    params.push_back(Placeholder(i++) + "::" + t.type_of_column.at(c));
  }
  const std::string base = "SELECT " + image + ", jsonb_build_array(" + Join(key_texts, ", ") +
                           ") FROM " + ep_.Q(t.binding.table) + " s";
  const std::string order = " ORDER BY " + Join(keys, ", ") + " LIMIT " +
                            std::to_string(kSnapshotChunkRows) + " FOR SHARE";
  const std::string after = " WHERE (" + Join(keys, ", ") + ") > (" + Join(params, ", ") + ")";
  while (true) {
    TxnGuard txn(db);
    DUPLEX_RETURN_IF_ERROR(txn.Begin());
    std::vector<Param> args;
    if (last_key.is_array()) {
      for (const Value& v : last_key) args.push_back(v.is_null() ? Param() : v.get<std::string>());
    }
    Result<PgResult> rows = db.Exec(base + (args.empty() ? "" : after) + order, args);
    if (!rows.ok()) return rows.status().WithContext(ep_.Where(t.binding.table));
    const int n = PQntuples(rows->get());
    Value msg = {{"t", t.binding.table}, {"rows", Value::array()}};
    for (int r = 0; r < n; ++r) {
      msg["rows"].push_back(Value::parse(PQgetvalue(rows->get(), r, 0)));
      if (r == n - 1) last_key = Value::parse(PQgetvalue(rows->get(), r, 1));
    }
    Status st = Status::Ok();
    if (n > 0) {
      st = db.Exec("SELECT pg_logical_emit_message(true, $1, $2)",
                   {ep_.SlotName() + "_snapshot", msg.dump()})
               .status();
    }
    if (st.ok()) {
      st = db.Exec("UPDATE " + registry + " SET last_key = $2, snapshot_done = $3 WHERE tbl = $1",
                   {t.binding.table, last_key.dump(),
                    std::string(n < kSnapshotChunkRows ? "true" : "false")})
               .status();
    }
    if (st.ok()) st = txn.Commit();
    if (!st.ok()) return st.WithContext(ep_.Where(t.binding.table));
    if (n < kSnapshotChunkRows) break;
  }
  return Status::Ok();
}

void LogicalCapture::Reset() {
  stream_.Close();
  pending_.clear();
  pending_changes_ = 0;
}

Result<std::vector<std::string>> LogicalCapture::Warnings() {
  std::vector<std::string> out;
  DUPLEX_RETURN_IF_ERROR(ep_.EnsureDb());
  DUPLEX_ASSIGN_OR_RETURN(
      PgResult res,
      ep_.db.Exec("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8, active FROM "
                  "pg_replication_slots WHERE slot_name = $1",
                  {ep_.SlotName()}));
  if (PQntuples(res.get()) == 0) return out;
  const int64_t retained = std::atoll(PQgetvalue(res.get(), 0, 0));
  if (retained >= ep_.opt.max_retained_wal_bytes) {
    out.push_back(
        "replication slot '" + ep_.SlotName() + "' retains " + std::to_string(retained >> 20) +
        " MiB of WAL; run duplex so that it catches up, or `duplex uninstall --endpoint " +
        ep_.opt.name + "` if this endpoint is gone (an abandoned slot fills the disk)");
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Capture

Result<bool> LogicalCapture::Poll() {
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
                          ep_.db.Scalar("SELECT pg_current_wal_flush_lsn()::text"));
  const uint64_t now_flushed = ParseLsn(flushed.value_or("0/0"));
  const uint64_t target = previous_flush_ != 0 ? previous_flush_ : now_flushed;
  previous_flush_ = now_flushed;
  DUPLEX_ASSIGN_OR_RETURN(bool reached, stream_.WaitFor(target, 2));
  DUPLEX_RETURN_IF_ERROR(DrainStream(0));
  return !reached || !pending_.empty() || stream_.in_txn();
}

Result<ChangeBatch> LogicalCapture::Capture(const Position& from_pos, size_t max_changes) {
  const int64_t from = from_pos.ToInt();
  DUPLEX_RETURN_IF_ERROR(DrainStream(0));
  ChangeBatch batch;
  batch.end = Position::FromInt(from);
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
    batch.end = Position::FromInt(static_cast<int64_t>(txn.end_lsn));
    pending_changes_ -= txn.changes.size();
    pending_.pop_front();
  }
  Status presented = keys_.PresentRecords(&batch.changes);
  if (!presented.ok()) {
    // The batch has left pending_: stream it again from the slot's confirmed position.
    stream_.Close();
    pending_.clear();
    pending_changes_ = 0;
    return presented;
  }
  if (batch.end.ToInt() > static_cast<int64_t>(delivered_)) {
    delivered_ = static_cast<uint64_t>(batch.end.ToInt());
  }
  stream_.SetCallerIdle(pending_.empty() && delivered_ <= acked_);
  return batch;
}

Result<int64_t> LogicalCapture::Backlog(const Position& from_pos) {
  const int64_t from = from_pos.ToInt();
  // Outside `run` nothing is streamed: the slot's retained WAL is in Warnings().
  if (!stream_.running()) return Status::Unavailable(ep_.Where() + ": not streaming");
  int64_t n = 0;
  for (const PendingTxn& t : pending_) {
    if (t.end_lsn > static_cast<uint64_t>(from)) n += static_cast<int64_t>(t.changes.size());
  }
  return n;
}

Status LogicalCapture::Ack(const Position& upto_pos) {
  const int64_t upto = upto_pos.ToInt();
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

Result<RestoreCheck> LogicalCapture::CheckRestored(const Position& captured_pos,
                                                   const Position& /*acked*/) {
  const int64_t captured = captured_pos.ToInt();
  RestoreCheck check{"", captured_pos};
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> slot,
      ep_.db.Scalar("SELECT coalesce(confirmed_flush_lsn, restart_lsn)::text FROM "
                    "pg_replication_slots WHERE slot_name = $1",
                    {ep_.SlotName()}));
  if (!slot) {
    if (!captured_pos.IsStart()) {
      check.reason = "its replication slot '" + ep_.SlotName() +
                     "' is gone (a dump restored, or the slot dropped): what was written there "
                     "before the slot is made again cannot be captured";
      check.resume = Position::FromInt(0);
    }
    return check;
  }
  DUPLEX_ASSIGN_OR_RETURN(std::optional<std::string> now,
                          ep_.db.Scalar("SELECT pg_current_wal_lsn()::text"));
  const uint64_t head = now ? ParseLsn(*now) : 0;
  if (head < static_cast<uint64_t>(captured)) {
    check.reason = "the server's WAL ends at " + (now ? *now : std::string("?")) +
                   ", before the position duplex captured (a snapshot of the server restored?)";
    check.resume = Position::FromInt(static_cast<int64_t>(ParseLsn(*slot)));
  }
  return check;
}

Result<int64_t> LogicalCapture::AppliedId() {
  DUPLEX_ASSIGN_OR_RETURN(
      std::optional<std::string> lsn,
      ep_.db.Scalar("SELECT pg_replication_origin_progress(roname, true)::text FROM "
                    "pg_replication_origin WHERE roname = $1",
                    {ep_.OriginName()}));
  return static_cast<int64_t>(lsn ? ParseLsn(*lsn) : 0);
}

// ---------------------------------------------------------------------------------------------
// Apply

Status LogicalCapture::SetUpApplySession(Conn& apply) {
  Status st =
      apply.Exec("SELECT pg_replication_origin_session_setup($1)", {ep_.OriginName()}).status();
  if (!st.ok()) apply.Close();
  return st;
}

Status LogicalCapture::BeginApply(Conn& apply, int64_t top) {
  rejected_ = Value::array();
  // The batch id as the origin position: stored with the commit (P6) and sent with it in the
  // Origin message (the marker). The origin time is the apply time.
  return apply
      .Exec("SELECT pg_replication_origin_xact_setup($1::pg_lsn, now())",
            {FormatLsn(static_cast<uint64_t>(top))})
      .status();
}

Status LogicalCapture::Reject(Conn& /*apply*/, const BoundTable& t, const RowOp& op,
                              const Value& image, int64_t /*batch_id*/) {
  rejected_.push_back({{"c", t.binding.collection}, {"k", op.key}, {"row", image}});
  return Status::Ok();
}

Status LogicalCapture::Mark(Conn& apply, int64_t /*top*/, bool writes) {
  // A transaction without a change would not be decoded (pgoutput skips empty ones): a
  // batch with no row writes (only there to be observed) sends an empty message instead.
  if (rejected_.empty() && writes) return Status::Ok();
  Value msg = {{"rejected", std::move(rejected_)}};
  rejected_ = Value::array();
  return apply.Exec("SELECT pg_logical_emit_message(true, $1, $2)", {ep_.SlotName(), msg.dump()})
      .status();
}

}  // namespace duplex::pg
