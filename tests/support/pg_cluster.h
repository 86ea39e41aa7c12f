#pragma once

#include <string>
#include <vector>

#include "duplex/result.h"
#include "duplex/status.h"
#include "support/test_util.h"

namespace duplex::testing {

// A throwaway PostgreSQL 15 cluster for one test: its own data directory under a fresh temp dir
// and its own free TCP port on 127.0.0.1, started through scripts/pg-cluster.sh (wal_level=logical,
// trust auth for the superuser `postgres`, durability on). The destructor stops the server
// (immediate) and removes the directory (kept when DUPLEX_KEEP_TMP is set).
//
// Works as root (the server runs as the `postgres` OS user) and as any other user. Not
// thread-safe; Exec/Query open a new libpq connection per call.
class PgCluster {
 public:
  // `settings` are extra postgresql.conf lines, "name=value" (e.g. "track_commit_timestamp=on").
  explicit PgCluster(std::vector<std::string> settings = {});
  ~PgCluster();
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  // Starts the server; the first call creates the cluster and picks the port, which then stays
  // the same for the object's life. OK if it already runs.
  Status Start();
  // Stops the server: a fast shutdown, or with `immediate` one without a checkpoint (crash
  // recovery runs at the next start). OK if it is not running.
  Status Stop(bool immediate = false);
  // Stop (fast), then Start.
  Status Restart();

  // libpq URI for `dbname` on this cluster, e.g. postgresql://postgres@127.0.0.1:41234/app.
  std::string dsn(const std::string& dbname = "postgres") const;
  int port() const { return port_; }
  // The data directory; the server log is log/postgresql.log inside it.
  std::string dir() const { return tmp_.path() + "/pg"; }
  std::string log_path() const { return dir() + "/log/postgresql.log"; }

  // CREATE DATABASE `name` (an identifier, quoted here).
  Status CreateDatabase(const std::string& name);
  // Runs `sql` (one or more statements) on `dbname`. Unavailable if the server cannot be reached,
  // InvalidArgument with the server's message if a statement fails.
  Status Exec(const std::string& sql, const std::string& dbname = "postgres");
  // The rows of `sql` as text lines, columns separated by '|' (NULL as "NULL").
  Result<std::string> Query(const std::string& sql, const std::string& dbname = "postgres");

 private:
  Status RunScript(const std::string& args, std::string* output);

  TempDir tmp_;
  std::vector<std::string> settings_;
  int port_ = 0;
  bool created_ = false;
};

}  // namespace duplex::testing
