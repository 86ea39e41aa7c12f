#include "connectors/postgres/pgoutput.h"

#include <sys/select.h>

#include <chrono>
#include <cstring>

#include "connectors/postgres/pg_conn.h"

namespace duplex::pg {

namespace {

// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
constexpr int64_t kPgEpochUs = 946684800LL * 1000000;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t PgNowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
             .count() -
         kPgEpochUs;
}

// Big-endian reader over one message; reads past the end set `bad`.
class Reader {
 public:
  Reader(const char* p, int len) : p_(p), end_(p + len) {}
  bool bad() const { return bad_; }
  bool done() const { return p_ >= end_; }
  uint8_t U8() {
    if (p_ + 1 > end_) return Bad<uint8_t>();
    return static_cast<uint8_t>(*p_++);
  }
  uint16_t U16() { return static_cast<uint16_t>(Uint(2)); }
  uint32_t U32() { return static_cast<uint32_t>(Uint(4)); }
  uint64_t U64() { return Uint(8); }
  std::string CStr() {
    const void* nul = std::memchr(p_, '\0', static_cast<size_t>(end_ - p_));
    if (nul == nullptr) return Bad<std::string>();
    std::string s(p_, static_cast<const char*>(nul));
    p_ = static_cast<const char*>(nul) + 1;
    return s;
  }
  std::string Bytes(uint32_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return Bad<std::string>();
    std::string s(p_, n);
    p_ += n;
    return s;
  }

 private:
  template <typename T>
  T Bad() {
    bad_ = true;
    p_ = end_;
    return T();
  }
  uint64_t Uint(int n) {
    if (end_ - p_ < n) return Bad<uint64_t>();
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<uint8_t>(p_[i]);
    p_ += n;
    return v;
  }
  const char* p_;
  const char* end_;
  bool bad_ = false;
};

Tuple ReadTuple(Reader& r) {
  uint16_t n = r.U16();
  Tuple t(n);
  for (uint16_t i = 0; i < n && !r.bad(); ++i) {
    switch (r.U8()) {
      case 'n':
        t[i].kind = TupleValue::Kind::kNull;
        break;
      case 'u':
        t[i].kind = TupleValue::Kind::kUnchanged;
        break;
      case 't':
      case 'b': {
        t[i].kind = TupleValue::Kind::kText;
        uint32_t len = r.U32();
        t[i].text = r.Bytes(len);
        break;
      }
      default:
        r.U32();  // unknown: force `bad`
        return {};
    }
  }
  return t;
}

void PutU64(char* p, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

}  // namespace

Status ReplicationStream::Start(const std::string& conninfo, const std::string& slot,
                                const std::string& publication, const std::string& where) {
  Close();
  where_ = where;
  conn_ = OpenConnection(conninfo, /*replication=*/true);
  if (conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    std::string msg = conn_ ? PQerrorMessage(conn_) : "out of memory";
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    Close();
    return Status::Unavailable(where + ": cannot open the replication connection: " + msg);
  }
  std::string cmd = "START_REPLICATION SLOT " + QuoteIdent(slot) +
                    " LOGICAL 0/0 (proto_version '1', publication_names " +
                    QuoteLiteral(QuoteIdent(publication)) + ", messages 'true')";
  PgResult res(PQexec(conn_, cmd.c_str()));
  if (!res || PQresultStatus(res.get()) != PGRES_COPY_BOTH) {
    Status st = ErrorStatus(conn_, res.get(), where + ": START_REPLICATION");
    Close();
    return st;
  }
  relations_.clear();
  current_ = StreamTxn();
  in_txn_ = false;
  ready_.clear();
  last_status_ms_ = 0;
  return Status::Ok();
}

void ReplicationStream::Close() {
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = nullptr;
  in_txn_ = false;
}

Status ReplicationStream::Fail(const std::string& what) {
  std::string msg = conn_ ? PQerrorMessage(conn_) : "";
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  Close();
  return Status::Unavailable(where_ + ": replication stream " + what +
                             (msg.empty() ? "" : ": " + msg));
}

const Relation* ReplicationStream::relation(uint32_t relid) const {
  auto it = relations_.find(relid);
  return it == relations_.end() ? nullptr : &it->second;
}

void ReplicationStream::Confirm(uint64_t lsn) {
  if (lsn > confirmed_) confirmed_ = lsn;
}

Status ReplicationStream::SendStatus(bool reply_requested) {
  // When nothing is open or waiting, the server's WAL end may be confirmed too: otherwise an
  // endpoint whose traffic is all unpublished (or all ours) would hold WAL forever
  // (CDC-FACTS Q1 pitfalls).
  uint64_t flushed = confirmed_;
  if (caller_idle_ && !in_txn_ && ready_.empty() && idle_end_ > flushed) flushed = idle_end_;
  char msg[34];
  msg[0] = 'r';
  PutU64(msg + 1, received_);
  PutU64(msg + 9, flushed);
  PutU64(msg + 17, flushed);
  PutU64(msg + 25, static_cast<uint64_t>(PgNowUs()));
  msg[33] = reply_requested ? 1 : 0;
  if (PQputCopyData(conn_, msg, sizeof msg) != 1 || PQflush(conn_) != 0) {
    return Fail("lost while sending status");
  }
  last_status_ms_ = NowMs();
  return Status::Ok();
}

Status ReplicationStream::Pump(int wait_ms) {
  if (conn_ == nullptr) return Status::Unavailable(where_ + ": replication stream not running");
  bool waited = false;
  while (true) {
    char* buf = nullptr;
    int len = PQgetCopyData(conn_, &buf, 1);
    if (len > 0) {
      Status st = Handle(buf, len);
      PQfreemem(buf);
      if (!st.ok()) return st;
      continue;
    }
    if (len == -1) {
      PgResult res(PQgetResult(conn_));
      return Fail("ended by the server");
    }
    if (len == -2) return Fail("failed");
    // Nothing buffered: wait once for the socket, then stop.
    if (waited || wait_ms <= 0) {
      if (!waited && wait_ms <= 0) {
        if (PQconsumeInput(conn_) == 0) return Fail("lost");
        waited = true;
        continue;
      }
      break;
    }
    int fd = PQsocket(conn_);
    fd_set rfds;
    FD_ZERO(&rfds);
    FD_SET(fd, &rfds);
    timeval tv{wait_ms / 1000, (wait_ms % 1000) * 1000};
    select(fd + 1, &rfds, nullptr, nullptr, &tv);
    if (PQconsumeInput(conn_) == 0) return Fail("lost");
    waited = true;
  }
  if (NowMs() - last_status_ms_ >= 1000) return SendStatus(false);
  return Status::Ok();
}

Result<bool> ReplicationStream::WaitFor(uint64_t lsn, int timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  int64_t asked = 0;
  while (received_ < lsn) {
    const int64_t now = NowMs();
    if (now >= deadline) return false;
    if (now - asked >= 20) {
      DUPLEX_RETURN_IF_ERROR(SendStatus(true));
      asked = now;
    }
    DUPLEX_RETURN_IF_ERROR(Pump(5));
  }
  return true;
}

Status ReplicationStream::Handle(const char* buf, int len) {
  Reader r(buf, len);
  char kind = static_cast<char>(r.U8());
  if (kind == 'k') {
    uint64_t wal_end = r.U64();
    r.U64();  // send time
    bool reply = r.U8() != 0;
    if (wal_end > received_) received_ = wal_end;
    if (!in_txn_ && ready_.empty()) idle_end_ = wal_end;
    if (reply) return SendStatus(false);
    return Status::Ok();
  }
  if (kind != 'w') return Status::Ok();
  uint64_t start = r.U64();
  uint64_t wal_end = r.U64();
  r.U64();  // send time
  if (r.bad()) return Fail("sent a malformed XLogData");
  (void)start;
  if (wal_end > received_) received_ = wal_end;
  constexpr int kHeader = 1 + 8 + 8 + 8;
  return HandleXLog(buf + kHeader, len - kHeader);
}

Status ReplicationStream::HandleXLog(const char* data, int len) {
  Reader r(data, len);
  char tag = static_cast<char>(r.U8());
  switch (tag) {
    case 'B':
      current_ = StreamTxn();
      current_.final_lsn = r.U64();
      current_.commit_us = static_cast<int64_t>(r.U64());
      current_.xid = r.U32();
      in_txn_ = true;
      break;
    case 'O':
      current_.origin_lsn = r.U64();
      current_.origin = r.CStr();
      break;
    case 'R': {
      uint32_t relid = r.U32();
      Relation rel;
      rel.schema = r.CStr();
      rel.table = r.CStr();
      r.U8();  // replica identity
      uint16_t n = r.U16();
      for (uint16_t i = 0; i < n && !r.bad(); ++i) {
        r.U8();  // flags
        rel.columns.push_back(r.CStr());
        rel.types.push_back(r.U32());
        r.U32();  // typmod
      }
      relations_[relid] = std::move(rel);
      break;
    }
    case 'Y':
      break;
    case 'I': {
      StreamEvent e;
      e.kind = 'I';
      e.relid = r.U32();
      r.U8();  // 'N'
      e.new_tuple = ReadTuple(r);
      current_.events.push_back(std::move(e));
      break;
    }
    case 'U': {
      StreamEvent e;
      e.kind = 'U';
      e.relid = r.U32();
      char sub = static_cast<char>(r.U8());
      if (sub == 'K' || sub == 'O') {
        e.old_is_key = sub == 'K';
        e.old_tuple = ReadTuple(r);
        sub = static_cast<char>(r.U8());
      }
      e.new_tuple = ReadTuple(r);
      current_.events.push_back(std::move(e));
      break;
    }
    case 'D': {
      StreamEvent e;
      e.kind = 'D';
      e.relid = r.U32();
      char sub = static_cast<char>(r.U8());
      e.old_is_key = sub == 'K';
      e.old_tuple = ReadTuple(r);
      current_.events.push_back(std::move(e));
      break;
    }
    case 'M': {
      StreamEvent e;
      e.kind = 'M';
      uint8_t flags = r.U8();
      r.U64();  // lsn
      e.prefix = r.CStr();
      uint32_t n = r.U32();
      e.content = r.Bytes(n);
      // Only transactional messages belong to a transaction; others are not ours.
      if ((flags & 1) != 0 && in_txn_) current_.events.push_back(std::move(e));
      break;
    }
    case 'C': {
      r.U8();   // flags
      r.U64();  // commit lsn
      current_.end_lsn = r.U64();
      current_.commit_us = static_cast<int64_t>(r.U64());
      in_txn_ = false;
      ready_.push_back(std::move(current_));
      current_ = StreamTxn();
      break;
    }
    case 'T': {
      // TRUNCATE: the tables it emptied (proto_version 1 has no xid here).
      StreamEvent e;
      e.kind = 'T';
      const uint32_t n = r.U32();
      r.U8();  // options: CASCADE, RESTART IDENTITY
      for (uint32_t i = 0; i < n && !r.bad(); ++i) e.relids.push_back(r.U32());
      if (in_txn_) current_.events.push_back(std::move(e));
      break;
    }
    default:
      break;
  }
  if (r.bad()) return Fail(std::string("sent a malformed '") + tag + "' message");
  return Status::Ok();
}

}  // namespace duplex::pg
