#include "store/progress.h"

namespace duplex {

Result<EndpointProgress> ProgressTable::Get(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt * s,
      db_.Cached("SELECT capture, watermark, last_error, resolved, acked, captured_ms, guard_pos, "
                 "guard_ms, rescan FROM progress WHERE endpoint = ?"));
  s->Bind(1, endpoint);
  DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
  EndpointProgress p;
  if (row) {
    p.capture = StoreDb::ColumnPosition(*s, 0);
    p.watermark = s->Int(1);
    p.last_error = s->Text(2);
    p.resolved = StoreDb::ColumnPosition(*s, 3);
    p.acked = StoreDb::ColumnPosition(*s, 4);
    p.captured_ms = s->Double(5);
    p.guard_pos = StoreDb::ColumnPosition(*s, 6);
    p.guard_ms = s->Double(7);
    p.rescan = s->Int(8) != 0;
    p.exists = true;
  }
  s->Reset();
  return p;
}

Status ProgressTable::SetCaptured(const std::string& endpoint, const Position& capture,
                                  double newest_commit_ms) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * p, db_.Cached(R"sql(
    INSERT INTO progress(endpoint, capture, captured_ms) VALUES(?1, ?2, ?3)
    ON CONFLICT(endpoint) DO UPDATE SET capture = ?2, captured_ms = max(captured_ms, ?3))sql"));
  p->Bind(1, endpoint).Bind(3, newest_commit_ms);
  StoreDb::BindPosition(*p, 2, capture);
  return p->Run();
}

Status ProgressTable::SetResolved(const std::string& endpoint, int64_t watermark,
                                  const Position& resolved) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, db_.Cached(R"sql(
    INSERT INTO progress(endpoint, watermark, resolved) VALUES(?1, ?2, ?3)
    ON CONFLICT(endpoint) DO UPDATE SET watermark = max(watermark, ?2),
                                        resolved = max(resolved, ?3))sql"));
  s->Bind(1, endpoint).Bind(2, watermark);
  StoreDb::BindPosition(*s, 3, resolved);
  return s->Run();
}

Status ProgressTable::SetLastError(const std::string& endpoint, const std::string& error) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, db_.Cached(R"sql(
    INSERT INTO progress(endpoint, last_error) VALUES(?1, ?2)
    ON CONFLICT(endpoint) DO UPDATE SET last_error = ?2)sql"));
  return s->Bind(1, endpoint).Bind(2, error).Run();
}

Status ProgressTable::SetAcked(const std::string& endpoint, const Position& acked) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, db_.Cached(R"sql(
    INSERT INTO progress(endpoint, acked) VALUES(?1, ?2)
    ON CONFLICT(endpoint) DO UPDATE SET acked = ?2)sql"));
  s->Bind(1, endpoint);
  StoreDb::BindPosition(*s, 2, acked);
  return s->Run();
}

Status ProgressTable::ResetRestored(const std::string& endpoint, const Position& resume,
                                    int64_t watermark) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, db_.Cached(R"sql(
    UPDATE progress SET guard_pos = max(guard_pos, capture), guard_ms = max(guard_ms, captured_ms),
      capture = ?2, resolved = ?2, acked = ?2, watermark = ?3, rescan = 1 WHERE endpoint = ?1)sql"));
  s->Bind(1, endpoint).Bind(3, watermark);
  StoreDb::BindPosition(*s, 2, resume);
  return s->Run();
}

Status ProgressTable::SetRescanned(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("UPDATE progress SET rescan = 0 WHERE endpoint = ?"));
  return s->Bind(1, endpoint).Run();
}

Status ProgressTable::MarkRescan(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("UPDATE progress SET rescan = 1 WHERE endpoint = ?"));
  return s->Bind(1, endpoint).Run();
}

Status CounterTable::Add(const std::string& endpoint, const Counters& d) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s, db_.Cached(R"sql(
    INSERT INTO counters(endpoint, name, value) VALUES(?1, ?2, ?3)
    ON CONFLICT(endpoint, name) DO UPDATE SET value = value + ?3)sql"));
  const std::pair<const char*, int64_t> items[] = {
      {"captured", d.captured}, {"applied", d.applied},     {"echoes", d.echoes},
      {"rejected", d.rejected}, {"conflicts", d.conflicts}, {"dead_letters", d.dead_letters}};
  for (const auto& [name, value] : items) {
    if (value == 0) continue;
    s->Reset();
    DUPLEX_RETURN_IF_ERROR(s->Bind(1, endpoint).Bind(2, name).Bind(3, value).Run());
  }
  return Status::Ok();
}

Result<Counters> CounterTable::Get(const std::string& endpoint) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("SELECT name, value FROM counters WHERE endpoint = ?"));
  s->Bind(1, endpoint);
  Counters c;
  while (true) {
    DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    std::string name = s->Text(0);
    int64_t v = s->Int(1);
    if (name == "captured") c.captured = v;
    if (name == "applied") c.applied = v;
    if (name == "echoes") c.echoes = v;
    if (name == "rejected") c.rejected = v;
    if (name == "conflicts") c.conflicts = v;
    if (name == "dead_letters") c.dead_letters = v;
  }
  s->Reset();
  return c;
}

Result<int64_t> ApplyIds::Allocate(int n) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("UPDATE meta SET v = v + ? WHERE k = 'next_apply_id' "
                                     "RETURNING v"));
  s->Bind(1, n);
  DUPLEX_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return Status::Corruption("state file: meta.next_apply_id is missing");
  int64_t next = s->Int(0);
  s->Reset();
  return next - n;
}

Status ApplyIds::EnsureAbove(int64_t id) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt * s,
                          db_.Cached("UPDATE meta SET v = max(v, ?) WHERE k = 'next_apply_id'"));
  return s->Bind(1, id + 1).Run();
}

}  // namespace duplex
