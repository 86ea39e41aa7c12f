#include "connectors/sqlite/changelog_capture.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>

#include "connectors/sqlite/images.h"
#include "util/json_value.h"

namespace duplex::sqlite {

namespace {

// Replaces ill-formed UTF-8 with U+FFFD. SQLite TEXT may hold any bytes, json_object() copies
// them as they are, and a changelog row that never parses would stop capture for good.
std::string SanitizeUtf8(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  while (i < in.size()) {
    auto c = static_cast<unsigned char>(in[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    bool ok = len > 0 && i + len <= in.size();
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (static_cast<unsigned char>(in[i + k]) & 0xC0) == 0x80;
    }
    if (ok && len > 1) {
      // Reject overlong forms, surrogates and code points above U+10FFFF.
      uint32_t cp = c & (0xFF >> (len + 1));
      for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (in[i + k] & 0x3F);
      static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMin[len] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
    }
    if (ok) {
      out.append(in.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

}  // namespace

void ChangelogCapture::ClearStatements() {
  poll_stmt_ = Stmt();
  capture_stmt_ = Stmt();
  backlog_stmt_ = Stmt();
  ack_stmt_ = Stmt();
  ack_stamp_stmt_ = Stmt();
  acked_stamp_ = -1;
}

Result<bool> ChangelogCapture::Poll() {
  DUPLEX_RETURN_IF_ERROR(ep_.CheckOpen());
  DUPLEX_ASSIGN_OR_RETURN(Stmt * stmt, ep_.Prepared(poll_stmt_, "PRAGMA data_version"));
  ResetOnExit reset(*stmt);
  Result<bool> row = stmt->Step();
  if (!row.ok()) return row.status().WithContext(ep_.Where());
  int64_t version = *row ? stmt->Int(0) : 0;
  // data_version only moves for other connections' commits; our own need the note.
  bool own_commit = ep_.TakeOwnCommit();
  bool changed = !polled_ || version != data_version_ || own_commit;
  polled_ = true;
  data_version_ = version;
  return changed;
}

Result<Value> ChangelogCapture::ParseImage(const BoundTable& t, int64_t seq, int col) {
  const char* text = reinterpret_cast<const char*>(sqlite3_column_text(capture_stmt_.get(), col));
  if (text == nullptr) return Value();
  std::string_view sv(text, static_cast<size_t>(sqlite3_column_bytes(capture_stmt_.get(), col)));
  Value v = Value::parse(sv.begin(), sv.end(), nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) {
    std::string clean = SanitizeUtf8(sv);
    v = Value::parse(clean, nullptr, /*allow_exceptions=*/false);
    if (!v.is_discarded()) {
      spdlog::warn(
          "{}: changelog seq {}: text that is not valid UTF-8 was captured with U+FFFD "
          "in place of the invalid bytes",
          ep_.Where(t.binding.table), seq);
    }
  }
  if (!v.is_object()) {
    return Status::Corruption(ep_.Where(t.binding.table) + ": changelog seq " +
                              std::to_string(seq) + " holds an image that is not a JSON object");
  }
  return v;
}

Result<ChangeBatch> ChangelogCapture::Capture(const Position& from_pos, size_t max_changes) {
  const int64_t from = from_pos.ToInt();
  DUPLEX_RETURN_IF_ERROR(ep_.CheckOpen());
  ChangeBatch batch;
  batch.end = Position::FromInt(from);
  if (max_changes == 0) return batch;
  if (!capture_stmt_.valid()) {
    Result<Stmt*> s = ep_.Prepared(capture_stmt_,
                                   "SELECT seq, tbl, op, old, new, apply_id, snapshot, at FROM "
                                   "_duplex_changelog WHERE seq > ?1 ORDER BY seq LIMIT ?2");
    if (!s.ok()) {
      Result<bool> exists = ep_.BookkeepingExists();
      if (exists.ok() && !*exists) return ep_.NotInstalled();
      return s.status();
    }
  }
  Stmt& stmt = capture_stmt_;
  stmt.Reset();
  ResetOnExit reset(stmt);
  int64_t limit = static_cast<int64_t>(
      std::min<size_t>(max_changes, static_cast<size_t>(std::numeric_limits<int64_t>::max())));
  stmt.Bind(1, static_cast<int64_t>(from)).Bind(2, limit);
  batch.changes.reserve(std::min<size_t>(max_changes, 4096));
  std::string tbl;
  while (true) {
    Result<bool> row = stmt.Step();
    if (!row.ok()) return row.status().WithContext(ep_.Where());
    if (!*row) break;
    int64_t seq = stmt.Int(0);
    const unsigned char* op_text = sqlite3_column_text(stmt.get(), 2);
    char op = op_text ? static_cast<char>(op_text[0]) : '\0';
    if (op == 'M') {
      Change c;
      c.op = Op::kMarker;
      c.apply_id = stmt.Int(5);
      c.position = Position::FromInt(seq);
      c.commit_ms = stmt.Double(7);
      batch.changes.push_back(std::move(c));
      batch.end = Position::FromInt(seq);
      continue;
    }
    tbl.assign(reinterpret_cast<const char*>(sqlite3_column_text(stmt.get(), 1)),
               static_cast<size_t>(sqlite3_column_bytes(stmt.get(), 1)));
    const BoundTable* bound = ep_.ByTable(tbl);
    if (bound == nullptr || (op != 'I' && op != 'U' && op != 'D' && op != 'R')) {
      batch.end = Position::FromInt(seq);  // a table no longer bound
      continue;
    }
    const BoundTable& t = *bound;
    if (op == 'R') {
      Change c;
      c.op = Op::kRejected;
      c.collection = t.binding.collection;
      c.position = Position::FromInt(seq);
      c.commit_ms = stmt.Double(7);
      c.apply_id = stmt.Int(5);
      DUPLEX_ASSIGN_OR_RETURN(Value key_image, ParseImage(t, seq, 3));
      c.key = MapImage(t, std::move(key_image));
      if (!stmt.IsNull(4)) {
        DUPLEX_ASSIGN_OR_RETURN(Value actual, ParseImage(t, seq, 4));
        c.after = MapImage(t, std::move(actual));
      }
      batch.changes.push_back(std::move(c));
      batch.end = Position::FromInt(seq);
      continue;
    }

    Change c;
    c.collection = t.binding.collection;
    c.position = Position::FromInt(seq);
    c.commit_ms = stmt.Double(7);
    c.snapshot = stmt.Int(6) != 0;
    if (op != 'I') {
      DUPLEX_ASSIGN_OR_RETURN(Value old_image, ParseImage(t, seq, 3));
      c.before = MapImage(t, std::move(old_image));
    }
    if (op != 'D') {
      DUPLEX_ASSIGN_OR_RETURN(Value new_image, ParseImage(t, seq, 4));
      c.after = MapImage(t, std::move(new_image));
    }
    const Row& key_image = op == 'D' ? c.before : c.after;
    c.key = Row::object();
    for (const std::string& k : t.binding.key) {
      auto it = key_image.find(k);
      c.key.emplace(k, it == key_image.end() ? Value() : *it);
    }

    bool key_changed = false;
    if (op == 'U') {
      for (const std::string& k : t.binding.key) {
        auto b = c.before.find(k);
        Value none;
        if (!ValuesEqual(b == c.before.end() ? none : *b, c.key[k])) key_changed = true;
      }
    }
    size_t produced = key_changed ? 2 : 1;
    if (!batch.changes.empty() && batch.changes.size() + produced > max_changes) break;

    if (key_changed) {
      // The row moved to another key: for duplex, the old record is gone and a new one exists.
      Change del;
      del.op = Op::kDelete;
      del.collection = c.collection;
      del.position = Position::FromInt(seq);
      del.commit_ms = c.commit_ms;
      del.key = Row::object();
      for (const std::string& k : t.binding.key) {
        auto it = c.before.find(k);
        del.key.emplace(k, it == c.before.end() ? Value() : *it);
      }
      del.before = std::move(c.before);
      batch.changes.push_back(std::move(del));
      c.op = Op::kInsert;
      c.before = Row();
    } else {
      c.op = static_cast<Op>(op);
    }
    batch.changes.push_back(std::move(c));
    batch.end = Position::FromInt(seq);
  }
  return batch;
}

Result<int64_t> ChangelogCapture::Backlog(const Position& from_pos) {
  const int64_t from = from_pos.ToInt();
  DUPLEX_RETURN_IF_ERROR(ep_.CheckOpen());
  if (!backlog_stmt_.valid()) {
    DUPLEX_ASSIGN_OR_RETURN(bool exists, ep_.BookkeepingExists());
    if (!exists) return int64_t{0};
  }
  DUPLEX_ASSIGN_OR_RETURN(
      Stmt * stmt,
      ep_.Prepared(backlog_stmt_, "SELECT count(*) FROM _duplex_changelog WHERE seq > ?1"));
  stmt->Reset().Bind(1, static_cast<int64_t>(from));
  ResetOnExit reset(*stmt);
  Result<bool> row = stmt->Step();
  if (!row.ok()) return row.status().WithContext(ep_.Where());
  return *row ? stmt->Int(0) : int64_t{0};
}

Status ChangelogCapture::Ack(const Position& upto_pos) {
  const int64_t upto = upto_pos.ToInt();
  DUPLEX_RETURN_IF_ERROR(ep_.CheckOpen());
  if (!ack_stmt_.valid()) {
    DUPLEX_ASSIGN_OR_RETURN(bool exists, ep_.BookkeepingExists());
    if (!exists) return Status::Ok();  // nothing to release
  }
  // One autocommit statement per chunk: each its own short write transaction, bounded so that a
  // large backlog does not hold the write lock (and the applications' writes) for long; the
  // applications get the lock between chunks. No Txn: a transaction over every chunk is what
  // this avoids.
  DUPLEX_ASSIGN_OR_RETURN(
      Stmt * stmt,
      ep_.Prepared(ack_stmt_,
                   "DELETE FROM _duplex_changelog WHERE seq IN (SELECT seq FROM _duplex_changelog "
                   "WHERE seq <= ?1 ORDER BY seq LIMIT ?2)"));
  while (true) {
    stmt->Reset().Bind(1, static_cast<int64_t>(upto)).Bind(2, kAckMaxRows);
    DUPLEX_RETURN_IF_ERROR(stmt->Run().WithContext(ep_.Where()));
    const int64_t deleted = ep_.db().Changes();
    // Only when something was deleted: an engine that acks after every (empty) capture must be
    // able to go idle.
    if (deleted > 0) ep_.NoteOwnCommit();
    if (deleted < kAckMaxRows) break;
  }
  if (upto == acked_stamp_) return Status::Ok();
  // The endpoint's own record of what duplex acked: a file restored from a backup holds an
  // older one than the state file (CheckRestored).
  DUPLEX_ASSIGN_OR_RETURN(Stmt * stamp,
                          ep_.Prepared(ack_stamp_stmt_,
                                       "INSERT INTO _duplex_acked(id, seq) VALUES(1, ?1) "
                                       "ON CONFLICT(id) DO UPDATE SET seq = excluded.seq"));
  stamp->Reset().Bind(1, static_cast<int64_t>(upto));
  DUPLEX_RETURN_IF_ERROR(stamp->Run().WithContext(ep_.Where()));
  acked_stamp_ = upto;
  ep_.NoteOwnCommit();
  return Status::Ok();
}

Result<RestoreCheck> ChangelogCapture::CheckRestored(const Position& captured_pos,
                                                     const Position& acked_pos) {
  const int64_t captured = captured_pos.ToInt();
  const int64_t acked = acked_pos.ToInt();
  DUPLEX_RETURN_IF_ERROR(ep_.CheckOpen());
  RestoreCheck check{"", captured_pos};
  DUPLEX_ASSIGN_OR_RETURN(bool exists, ep_.BookkeepingExists());
  if (!exists) {
    if (!captured_pos.IsStart()) {
      check.reason =
          "duplex's changelog is gone from it (a copy from before duplex was installed?)";
      check.resume = Position::FromInt(0);
    }
    return check;
  }
  // Each a single value; a missing table (an older install) reads as none.
  auto scalar = [&](const char* sql) -> std::optional<int64_t> {
    Result<Stmt> stmt = ep_.db().Prepare(sql);
    if (!stmt.ok()) return std::nullopt;
    Result<bool> row = stmt->Step();
    if (!row.ok() || !*row || stmt->IsNull(0)) return std::nullopt;
    return stmt->Int(0);
  };
  const std::optional<int64_t> stamp = scalar("SELECT seq FROM _duplex_acked WHERE id = 1");
  // AUTOINCREMENT's high-water mark: it never goes down while the file lives.
  const int64_t top =
      scalar("SELECT seq FROM sqlite_sequence WHERE name = '_duplex_changelog'").value_or(0);
  if (stamp && *stamp < acked) {
    check.reason = "its changelog records duplex's acknowledgements up to position " +
                   std::to_string(*stamp) + ", the state file up to " + std::to_string(acked);
  } else if (top < captured) {
    check.reason = "its changelog ends at position " + std::to_string(top) + ", before position " +
                   std::to_string(captured) + " that duplex captured";
  }
  if (!check.reason.empty()) {
    // The changelog keeps what was not acked when the copy was made: resume right after it.
    check.resume = Position::FromInt(stamp.value_or(0));
  }
  return check;
}

Status ChangelogCapture::Scan(const std::string& collection, size_t max_rows,
                              const std::function<Status(std::vector<Change>&&)>& visit) {
  DUPLEX_RETURN_IF_ERROR(ep_.CheckOpen());
  const BoundTable* bound = ep_.ByCollection(collection);
  if (bound == nullptr) {
    return Status::InvalidArgument(ep_.Where() + ": collection '" + collection + "' is not bound");
  }
  const BoundTable& t = *bound;
  DUPLEX_ASSIGN_OR_RETURN(std::string image, ImageExpr(ep_, t, ""));
  Result<Stmt> stmt = ep_.db().Prepare("SELECT " + image + " FROM " + QuoteIdent(t.binding.table));
  if (!stmt.ok()) return stmt.status().WithContext(ep_.Where(t.binding.table));
  std::vector<Change> chunk;
  size_t unit = 0;
  while (true) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status().WithContext(ep_.Where(t.binding.table));
    if (!*row) break;
    Value v = Value::parse(stmt->Text(0), nullptr, false);
    if (!v.is_object()) {
      return Status::Corruption(ep_.Where(t.binding.table) +
                                ": a row's image is not a JSON object");
    }
    Change c;
    c.op = Op::kPresent;
    c.collection = collection;
    c.after = MapImage(t, std::move(v));
    c.key = Row::object();
    for (const std::string& k : t.binding.key) {
      auto it = c.after.find(k);
      c.key.emplace(k, it == c.after.end() ? Value() : *it);
    }
    c.txn = MadeUpTxn(unit++);  // one unit each
    chunk.push_back(std::move(c));
    if (chunk.size() >= std::max<size_t>(max_rows, 1)) {
      DUPLEX_RETURN_IF_ERROR(visit(std::move(chunk)));
      chunk.clear();
    }
  }
  if (!chunk.empty()) DUPLEX_RETURN_IF_ERROR(visit(std::move(chunk)));
  return Status::Ok();
}

}  // namespace duplex::sqlite
