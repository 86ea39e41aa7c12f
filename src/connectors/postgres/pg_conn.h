#pragma once

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "duplex/result.h"
#include "duplex/status.h"

namespace duplex::pg {

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

// A text parameter; nullopt is SQL NULL.
using Param = std::optional<std::string>;

// The Status for a failed libpq call. Connection loss, shutdown, lock and serialization
// failures are Unavailable (retriable); data and constraint errors (SQLSTATE classes 22, 23,
// and 42804 datatype mismatch) Refused, so that the engine parks the row at fault; anything
// else IOError.
// `context` prefixes the server's message (which names the table and constraint).
Status ErrorStatus(PGconn* conn, const PGresult* res, const std::string& context);

// SQLSTATE of a failed result ("" if none).
std::string SqlState(const PGresult* res);

// "ident" quoted as a PostgreSQL identifier.
std::string QuoteIdent(std::string_view name);
// 'text' quoted as a PostgreSQL string literal (only for DDL, which takes no parameters).
std::string QuoteLiteral(std::string_view text);

// One libpq connection (RAII). Statements take text parameters, never SQL built from data.
class Conn {
 public:
  Conn() = default;
  ~Conn() { Close(); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // Connects with `dsn` (a conninfo string or URI) and duplex's session settings
  // (kSessionOptions), as a replication=database connection if `replication`. `where` names the
  // endpoint in messages (the dsn may hold a password and is never part of a message).
  // Unavailable if the server cannot be reached.
  Status Connect(const std::string& dsn, bool replication, const std::string& where);
  void Close();
  bool connected() const { return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK; }
  PGconn* get() const { return conn_; }

  // Runs one statement with text parameters; the result holds its rows.
  Result<PgResult> Exec(const std::string& sql, const std::vector<Param>& params = {});
  // Runs one or more statements without parameters (DDL, BEGIN/COMMIT).
  Status Run(const std::string& sql);
  // The first column of the first row (nullopt for NULL or no row).
  Result<std::optional<std::string>> Scalar(const std::string& sql,
                                            const std::vector<Param>& params = {});

  // Whether the last failure lost the connection (the caller reconnects next time).
  bool Broken() const { return conn_ == nullptr || PQstatus(conn_) != CONNECTION_OK; }
  // Whether the server has ended this idle connection (terminated its backend, as a shutdown
  // does): reads what has arrived, without blocking. False if it is not connected.
  bool EndedByServer();

 private:
  PGconn* conn_ = nullptr;
  std::string where_;
};

// Opens a libpq connection to `dsn` with duplex's session settings (never null).
PGconn* OpenConnection(const std::string& dsn, bool replication);

// The text of a field of a result row (nullopt if NULL).
inline std::optional<std::string> Field(const PGresult* res, int row, int col) {
  if (PQgetisnull(res, row, col)) return std::nullopt;
  return std::string(PQgetvalue(res, row, col), static_cast<size_t>(PQgetlength(res, row, col)));
}

}  // namespace duplex::pg
