#pragma once

#include <gtest/gtest.h>

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

// A fixture base sharing one cluster across a test binary's suite (starting one takes seconds):
// derive from SharedPgCluster<::testing::Test> or SharedPgCluster<::testing::TestWithParam<T>>.
template <typename Base>
class SharedPgCluster : public Base {
 protected:
  static void SetUpTestSuite() {
    cluster_ = new PgCluster();
    Status st = cluster_->Start();
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  // A fresh database `name` holding `schema` (may be empty).
  static void NewDatabase(const std::string& name, const std::string& schema) {
    Status st = cluster_->CreateDatabase(name);
    EXPECT_TRUE(st.ok()) << st.ToString();
    if (!schema.empty()) PgExec(name, schema);
  }
  // Runs `sql` on database `db` like an application would, failing the test on error.
  static void PgExec(const std::string& db, const std::string& sql) {
    Status st = cluster_->Exec(sql, db);
    EXPECT_TRUE(st.ok()) << st.ToString() << "\n" << sql;
  }
  static std::string PgQuery(const std::string& db, const std::string& sql) {
    Result<std::string> r = cluster_->Query(sql, db);
    EXPECT_TRUE(r.ok()) << r.status().ToString() << "\n" << sql;
    return r.ok() ? *r : "";
  }

  static inline PgCluster* cluster_ = nullptr;
  static inline int databases_ = 0;  // databases made so far, for unique names
};

}  // namespace duplex::testing
