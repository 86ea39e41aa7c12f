// LogicalCapture, its stream side: pgoutput transactions into changes (README "Positions",
// "Echo, marker, exactly once"), and apply's writes checked against the stream (README "Causal
// compare-and-set").

#include "connectors/binding.h"
#include "connectors/postgres/logical_capture.h"
#include "connectors/postgres/pg_types.h"
#include "util/json_value.h"

namespace duplex::pg {

namespace {

// Milliseconds between the Unix epoch and PostgreSQL's (2000-01-01).
constexpr int64_t kPgEpochMs = 946684800LL * 1000;

}  // namespace

Status LogicalCapture::EnsureStream() {
  if (stream_.running()) return Status::Ok();
  pending_.clear();
  pending_changes_ = 0;
  DUPLEX_RETURN_IF_ERROR(ep_.LoadTypes());
  return stream_.Start(ep_.opt.dsn, ep_.SlotName(), ep_.PublicationName(), ep_.Where());
}

Row LogicalCapture::TupleRow(const BoundTable& t, const Relation& rel, const Tuple& tuple,
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

Status LogicalCapture::FillUnchanged(const BoundTable& t, Row& after) {
  // An unchanged TOASTed value is not in the stream (CDC-FACTS Q3): read the row as it is now.
  // Only values this change did not touch are taken from it.
  DUPLEX_ASSIGN_OR_RETURN(Value image, keys_.ReadImage(t, after, false));
  const Row now = ep_.ImageToRow(t, image);
  for (const std::string& c : t.columns) {
    const std::string& f = t.field_of_column.at(c);
    if (!after.contains(f)) after[f] = now.is_object() && now.contains(f) ? now[f] : Value();
  }
  return Status::Ok();
}

Status LogicalCapture::ReadSnapshotMessage(const std::string& content, uint64_t end_lsn,
                                           int64_t commit_ms, std::vector<Change>* out) {
  Value msg = Value::parse(content, nullptr, false);
  if (!msg.is_object() || !msg.contains("t") || !msg["t"].is_string()) return Status::Ok();
  auto bound = ep_.by_table.find(msg["t"].get<std::string>());
  if (bound == ep_.by_table.end()) return Status::Ok();
  const BoundTable& t = ep_.tables[bound->second];
  for (const Value& image : msg["rows"]) {
    Change c;
    c.op = Op::kInsert;
    c.collection = t.binding.collection;
    c.after = ep_.ImageToRow(t, image);
    c.key = KeyOf(t.binding.key, c.after);
    c.snapshot = true;
    // No source transaction groups the rows of an initial load: each row is a unit of its
    // own, so that a row the target refuses parks only itself.
    c.txn = MadeUpTxn(snapshot_units_++);
    c.position = Position::FromInt(static_cast<int64_t>(end_lsn));
    c.commit_ms = static_cast<double>(commit_ms);
    out->push_back(std::move(c));
  }
  return Status::Ok();
}

Status LogicalCapture::Convert(StreamTxn&& txn) {
  PendingTxn out;
  out.end_lsn = txn.end_lsn;
  const int64_t commit_ms = txn.commit_us / 1000 + kPgEpochMs;
  const int64_t pos = static_cast<int64_t>(txn.end_lsn);
  if (txn.origin == ep_.OriginName()) {
    // duplex's own transaction: its rows are echoes (P5); it is the causal marker.
    for (const StreamEvent& e : txn.events) {
      if (e.kind != 'M' || e.prefix != ep_.SlotName()) continue;
      Value msg = Value::parse(e.content, nullptr, false);
      if (!msg.is_object() || !msg.contains("rejected")) continue;
      for (const Value& r : msg["rejected"]) {
        const BoundTable* t = ep_.ByCollection(r.value("c", std::string()));
        if (t == nullptr) continue;
        Change c;
        c.op = Op::kRejected;
        c.collection = t->binding.collection;
        c.key = r.value("k", Value::object());
        c.after = ep_.ImageToRow(*t, r.value("row", Value()));
        c.apply_id = static_cast<int64_t>(txn.origin_lsn);
        c.position = Position::FromInt(pos);
        c.txn = txn.xid;
        c.commit_ms = static_cast<double>(commit_ms);
        out.changes.push_back(std::move(c));
      }
    }
    Change m;
    m.op = Op::kMarker;
    m.apply_id = static_cast<int64_t>(txn.origin_lsn);
    m.position = Position::FromInt(pos);
    m.txn = txn.xid;
    m.commit_ms = static_cast<double>(commit_ms);
    out.changes.push_back(std::move(m));
  } else {
    for (const StreamEvent& e : txn.events) {
      if (e.kind == 'M') {
        if (e.prefix == ep_.SlotName() + "_snapshot") {
          DUPLEX_RETURN_IF_ERROR(
              ReadSnapshotMessage(e.content, txn.end_lsn, commit_ms, &out.changes));
        }
        continue;
      }
      if (e.kind == 'T') {
        // Each bound table it emptied: a truncate of that collection (README "Truncate").
        for (uint32_t relid : e.relids) {
          const Relation* rel = stream_.relation(relid);
          if (rel == nullptr || rel->schema != ep_.opt.schema) continue;
          auto bound = ep_.by_table.find(rel->table);
          if (bound == ep_.by_table.end()) continue;
          Change c;
          c.op = Op::kTruncate;
          c.collection = ep_.tables[bound->second].binding.collection;
          c.position = Position::FromInt(pos);
          c.commit_ms = static_cast<double>(commit_ms);
          c.txn = txn.xid;
          out.changes.push_back(std::move(c));
        }
        continue;
      }
      const Relation* rel = stream_.relation(e.relid);
      if (rel == nullptr) {
        return Status::Corruption(ep_.Where() + ": change for an unknown relation " +
                                  std::to_string(e.relid));
      }
      if (rel->schema != ep_.opt.schema) continue;
      auto bound = ep_.by_table.find(rel->table);
      if (bound == ep_.by_table.end()) continue;
      const BoundTable& t = ep_.tables[bound->second];
      Change c;
      c.collection = t.binding.collection;
      c.position = Position::FromInt(pos);
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

void LogicalCapture::NoteAppChange(const std::string& table, std::string key, uint64_t lsn) {
  app_changed_[table][key] = lsn;
  app_changed_order_.emplace_back(lsn, table, std::move(key));
}

Status LogicalCapture::ConvertReady() {
  while (!stream_.ready().empty()) {
    StreamTxn txn = std::move(stream_.ready().front());
    stream_.ready().pop_front();
    DUPLEX_RETURN_IF_ERROR(Convert(std::move(txn)));
  }
  return Status::Ok();
}

Status LogicalCapture::DrainStream(int wait_ms) {
  // A server shutting down ends the regular backends at once but streams on until duplex has
  // confirmed all it sent, however long its backlog takes: the end of the regular connection is
  // the sign. Reconnecting then fails, and PgEndpoint::Connect lets go of the stream.
  if (ep_.db.EndedByServer()) ep_.db.Close();
  DUPLEX_RETURN_IF_ERROR(ep_.EnsureDb());
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
  return ConvertReady();
}

Status LogicalCapture::CatchUp(Conn& apply) {
  // Every change the application committed before our row locks is in WAL before this
  // position; once the stream has it, app_changed_ tells which writes were planned without
  // seeing one of them.
  // The flushed end, not the insert position: our own uncommitted rows are not flushed, and
  // the server sends only flushed WAL. A synchronous commit is flushed when it returns.
  DUPLEX_ASSIGN_OR_RETURN(std::optional<std::string> lsn,
                          apply.Scalar("SELECT pg_current_wal_flush_lsn()::text"));
  DUPLEX_RETURN_IF_ERROR(EnsureStream());
  const uint64_t target = ParseLsn(lsn.value_or("0/0"));
  Result<bool> reached = stream_.WaitFor(target, 5);
  if (reached.ok() && !*reached) {
    // The flushed end may split a record (ours, uncommitted, or anyone's) that the server
    // cannot send until the rest is flushed, by the WAL writer (wal_writer_delay, 200 ms by
    // default) or the next commit. Commit a tiny transaction on the other connection: its
    // flush carries everything before it.
    DUPLEX_RETURN_IF_ERROR(
        ep_.db.Exec("SELECT pg_logical_emit_message(true, $1, '')", {ep_.SlotName() + "_nudge"})
            .status());
    reached = stream_.WaitFor(target, 5000);
  }
  if (!reached.ok()) return reached.status();
  if (!*reached) {
    return Status::Unavailable(ep_.Where() + ": the change stream is behind; applying later");
  }
  return ConvertReady();
}

bool LogicalCapture::ChangedAfter(const std::string& table, const std::string& key_text,
                                  const Position& seen) const {
  auto tbl = app_changed_.find(table);
  if (tbl == app_changed_.end()) return false;
  auto it = tbl->second.find(key_text);
  return it != tbl->second.end() && it->second > static_cast<uint64_t>(seen.ToInt());
}

}  // namespace duplex::pg
