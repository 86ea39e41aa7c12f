#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "duplex/result.h"
#include "duplex/status.h"

namespace duplex::pg {

// One column value of a pgoutput TupleData.
struct TupleValue {
  enum class Kind : uint8_t { kNull, kUnchanged, kText };
  Kind kind = Kind::kNull;
  std::string text;
};
using Tuple = std::vector<TupleValue>;

// A Relation message: the table a row event refers to.
struct Relation {
  std::string schema;
  std::string table;
  std::vector<std::string> columns;
  std::vector<Oid> types;
};

// A row change or a logical message inside a transaction, in stream order.
struct StreamEvent {
  char kind = 0;                 // 'I', 'U', 'D', 'T' (TRUNCATE), or 'M' (pg_logical_emit_message)
  uint32_t relid = 0;            // I/U/D
  std::vector<uint32_t> relids;  // T: every table the statement truncated
  Tuple old_tuple;               // U/D: the old key ('K') or the old row ('O'); empty if none
  bool old_is_key = false;
  Tuple new_tuple;      // I/U
  std::string prefix;   // M
  std::string content;  // M
};

// A committed transaction as pgoutput sends it (proto_version 1).
struct StreamTxn {
  uint32_t xid = 0;
  uint64_t final_lsn = 0;
  uint64_t end_lsn = 0;   // the position to resume after this transaction
  int64_t commit_us = 0;  // commit time, microseconds since 2000-01-01 (origin time if set)
  std::string origin;     // replication origin name ("" if none)
  uint64_t origin_lsn = 0;
  std::vector<StreamEvent> events;
};

// The client side of one logical replication slot streaming pgoutput (CDC-FACTS Q1): a libpq
// replication=database connection in COPY BOTH mode. Pump() reads what the server sent without
// blocking long, assembles whole transactions, answers keepalives, and sends the flushed
// position (only what the caller confirmed durable) at least once a second.
class ReplicationStream {
 public:
  ReplicationStream() = default;
  ~ReplicationStream() { Close(); }
  ReplicationStream(const ReplicationStream&) = delete;
  ReplicationStream& operator=(const ReplicationStream&) = delete;

  // Connects and starts streaming `slot` from its confirmed position.
  Status Start(const std::string& conninfo, const std::string& slot, const std::string& publication,
               const std::string& where);
  void Close();
  bool running() const { return conn_ != nullptr; }

  // Reads everything available, waiting at most `wait_ms` for the first message. Complete
  // transactions are appended to ready(). Unavailable when the connection is lost (Close()d).
  Status Pump(int wait_ms);
  // Asks the server for a keepalive (its current WAL end), and waits until received_lsn()
  // reaches `lsn` or `timeout_ms` passes. Returns whether it was reached.
  Result<bool> WaitFor(uint64_t lsn, int timeout_ms);

  std::deque<StreamTxn>& ready() { return ready_; }
  const Relation* relation(uint32_t relid) const;

  // The caller has made everything up to `lsn` durable: the slot may release it.
  void Confirm(uint64_t lsn);
  // Whether the caller holds nothing it has not confirmed: then the server's WAL end may be
  // confirmed while no transaction is open (else an endpoint whose traffic is all unpublished
  // would hold WAL forever). False by default.
  void SetCallerIdle(bool idle) { caller_idle_ = idle; }
  // Highest WAL position the server reported sending (XLogData end or keepalive walEnd).
  uint64_t received_lsn() const { return received_; }
  // Whether a transaction is being received (Begin seen, Commit not yet).
  bool in_txn() const { return in_txn_; }

  // Test hook (tests/connectors/pgoutput_test.cc): handles one CopyData message as if the server
  // had sent it (XLogData 'w' carrying a pgoutput message, or keepalive 'k'), without a
  // connection. Unavailable for a malformed message, as Pump.
  Status TestReceive(const std::string& message) {
    return Handle(message.data(), static_cast<int>(message.size()));
  }

 private:
  Status Fail(const std::string& what);
  Status Handle(const char* buf, int len);
  Status HandleXLog(const char* data, int len);
  Status SendStatus(bool reply_requested);

  PGconn* conn_ = nullptr;
  std::string where_;
  std::unordered_map<uint32_t, Relation> relations_;
  std::deque<StreamTxn> ready_;
  StreamTxn current_;
  bool in_txn_ = false;
  uint64_t received_ = 0;
  uint64_t confirmed_ = 0;
  uint64_t idle_end_ = 0;  // keepalive walEnd seen while nothing was open or pending
  int64_t last_status_ms_ = 0;
  bool caller_idle_ = false;
};

}  // namespace duplex::pg
