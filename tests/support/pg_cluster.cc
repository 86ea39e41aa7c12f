#include "support/pg_cluster.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>

namespace duplex::testing {
namespace {

// A TCP port on 127.0.0.1 that nobody listens on right now (the kernel's pick for port 0).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string ScriptPath() {
  const char* src = std::getenv("DUPLEX_SOURCE_DIR");
  std::string root = src && *src ? src : DUPLEX_TEST_SOURCE_DIR;
  return root + "/scripts/pg-cluster.sh";
}

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

struct ConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultClearer {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgConnPtr = std::unique_ptr<PGconn, ConnCloser>;
using PgResultPtr = std::unique_ptr<PGresult, ResultClearer>;

Result<PgResultPtr> Run(const std::string& dsn, const std::string& sql) {
  PgConnPtr conn(PQconnectdb(dsn.c_str()));
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return Status::Unavailable(dsn + ": " + PQerrorMessage(conn.get()));
  }
  PgResultPtr res(PQexec(conn.get(), sql.c_str()));
  ExecStatusType st = PQresultStatus(res.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    return Status::InvalidArgument(dsn + ": " + sql + ": " + PQerrorMessage(conn.get()));
  }
  return res;
}

}  // namespace

PgCluster::PgCluster(std::vector<std::string> settings) : settings_(std::move(settings)) {
  // The server may run as the `postgres` OS user, which must reach the data directory.
  std::error_code ec;
  std::filesystem::permissions(tmp_.path(), std::filesystem::perms(0755),
                               std::filesystem::perm_options::replace, ec);
}

PgCluster::~PgCluster() {
  if (created_) {
    // The server's files belong to it; stop it before TempDir removes them.
    Status st = Stop(/*immediate=*/true);
    if (!st.ok()) ADD_FAILURE() << st.ToString();
  }
}

Status PgCluster::RunScript(const std::string& args, std::string* output) {
  std::string out;
  int rc = RunCommand(Quote(ScriptPath()) + " " + args, &out);
  if (output) *output = out;
  if (rc != 0) {
    return Status::IOError("pg-cluster.sh " + args + " exited " + std::to_string(rc) + ":\n" + out);
  }
  return Status::Ok();
}

Status PgCluster::Start() {
  std::string settings;
  for (const std::string& s : settings_) settings += " " + Quote(s);
  if (created_)
    return RunScript("start " + Quote(dir()) + " " + std::to_string(port_) + settings, nullptr);
  // Another process may take the port between FreePort() and the server's bind: try a few.
  Status st;
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = FreePort();
    if (port_ == 0) return Status::IOError("no free TCP port on 127.0.0.1");
    std::string out;
    st = RunScript("start " + Quote(dir()) + " " + std::to_string(port_) + settings, &out);
    if (std::filesystem::exists(dir() + "/PG_VERSION")) created_ = true;
    if (st.ok()) return st;
    if (out.find("Address already in use") == std::string::npos) return st;
  }
  return st;
}

Status PgCluster::Stop(bool immediate) {
  if (!created_) return Status::Ok();
  return RunScript("stop " + Quote(dir()) + (immediate ? " immediate" : " fast"), nullptr);
}

Status PgCluster::Restart() {
  if (!created_) return Start();
  return RunScript("restart " + Quote(dir()), nullptr);
}

std::string PgCluster::dsn(const std::string& dbname) const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + dbname;
}

Status PgCluster::CreateDatabase(const std::string& name) {
  std::string quoted = "\"";
  for (char c : name) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return Exec("CREATE DATABASE " + quoted + "\"");
}

Status PgCluster::Exec(const std::string& sql, const std::string& dbname) {
  Result<PgResultPtr> res = Run(dsn(dbname), sql);
  return res.status();
}

Result<std::string> PgCluster::Query(const std::string& sql, const std::string& dbname) {
  DUPLEX_ASSIGN_OR_RETURN(PgResultPtr res, Run(dsn(dbname), sql));
  std::string out;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    for (int c = 0; c < PQnfields(res.get()); ++c) {
      if (c) out += '|';
      out += PQgetisnull(res.get(), r, c) ? "NULL" : PQgetvalue(res.get(), r, c);
    }
    out += '\n';
  }
  return out;
}

}  // namespace duplex::testing
