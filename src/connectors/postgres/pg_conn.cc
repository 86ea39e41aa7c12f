#include "connectors/postgres/pg_conn.h"

#include <cstring>

#include "connectors/postgres/pg_types.h"

namespace duplex::pg {

std::string SqlState(const PGresult* res) {
  if (res == nullptr) return {};
  const char* s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  return s ? s : "";
}

namespace {

// A libpq message on one line: trailing newlines dropped, the lines after the first (DETAIL,
// HINT: the server's hint about what is at fault) joined with "; ".
std::string OneLine(std::string msg) {
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  for (size_t p; (p = msg.find('\n')) != std::string::npos;) msg.replace(p, 1, "; ");
  return msg;
}

}  // namespace

Status ErrorStatus(PGconn* conn, const PGresult* res, const std::string& context) {
  std::string msg;
  if (res != nullptr && PQresultErrorMessage(res)[0] != '\0') {
    msg = PQresultErrorMessage(res);
  } else if (conn != nullptr) {
    msg = PQerrorMessage(conn);
  }
  const std::string text = context + ": " + OneLine(std::move(msg));
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) return Status::Unavailable(text);
  const std::string state = SqlState(res);
  if (state.empty()) return Status::Unavailable(text);  // no server answer: connection trouble
  const std::string cls = state.substr(0, 2);
  if (cls == "08" || cls == "53" || cls == "57" || state == "40001" || state == "40P01" ||
      state == "55P03" || state == "55006" || state == "25P02" || state == "58030") {
    return Status::Unavailable(text);
  }
  if (cls == "22" || cls == "23" || state == "42804") return Status::Refused(text);
  return Status::IOError(text);
}

std::string QuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string QuoteLiteral(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

PGconn* OpenConnection(const std::string& dsn, bool replication) {
  // expand_dbname: the first dbname is the user's whole conninfo or URI; the keywords after it
  // add duplex's settings.
  const char* keys[] = {"dbname",
                        "options",
                        "application_name",
                        "connect_timeout",
                        replication ? "replication" : nullptr,
                        nullptr};
  const char* values[] = {
      dsn.c_str(), kSessionOptions, "duplex", "10", replication ? "database" : nullptr, nullptr};
  return PQconnectdbParams(keys, values, 1);
}

Status Conn::Connect(const std::string& dsn, bool replication, const std::string& where) {
  Close();
  where_ = where;
  conn_ = OpenConnection(dsn, replication);
  if (conn_ == nullptr) return Status::Unavailable(where + ": cannot allocate a connection");
  if (PQstatus(conn_) != CONNECTION_OK) {
    const std::string msg = OneLine(PQerrorMessage(conn_));
    Close();
    // A bad password or an unknown database will not fix itself, but the operator may fix it
    // while duplex runs: retriable, reported with the server's reason.
    return Status::Unavailable(where + ": cannot connect: " + msg);
  }
  // Server messages (NOTICE) would go to stderr and mix with duplex's own logs.
  PQsetNoticeProcessor(
      conn_, [](void*, const char*) {}, nullptr);
  return Status::Ok();
}

void Conn::Close() {
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = nullptr;
}

bool Conn::EndedByServer() {
  if (!connected()) return false;
  // An idle connection receives nothing unless the server ends it: its reason first
  // ("terminating connection due to administrator command"; to the silenced notice processor
  // once parsed), then the end of the stream, which a second read sees when it came along.
  if (PQconsumeInput(conn_) != 0) PQconsumeInput(conn_);
  return PQstatus(conn_) != CONNECTION_OK;
}

Result<PgResult> Conn::Exec(const std::string& sql, const std::vector<Param>& params) {
  if (conn_ == nullptr) return Status::Unavailable(where_ + ": not connected");
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const Param& p : params) values.push_back(p ? p->c_str() : nullptr);
  PgResult res(PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                            values.data(), nullptr, nullptr, 0));
  ExecStatusType st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    return ErrorStatus(conn_, res.get(), where_);
  }
  return res;
}

Status Conn::Run(const std::string& sql) {
  if (conn_ == nullptr) return Status::Unavailable(where_ + ": not connected");
  PgResult res(PQexec(conn_, sql.c_str()));
  ExecStatusType st = res ? PQresultStatus(res.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    return ErrorStatus(conn_, res.get(), where_);
  }
  return Status::Ok();
}

Result<std::optional<std::string>> Conn::Scalar(const std::string& sql,
                                                const std::vector<Param>& params) {
  DUPLEX_ASSIGN_OR_RETURN(PgResult res, Exec(sql, params));
  if (PQntuples(res.get()) == 0 || PQnfields(res.get()) == 0) {
    return std::optional<std::string>();
  }
  return Field(res.get(), 0, 0);
}

}  // namespace duplex::pg
