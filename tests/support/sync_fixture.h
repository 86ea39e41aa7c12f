#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "support/process.h"
#include "support/test_util.h"

namespace duplex::testing {

// A duplex.toml said in C++: endpoints of any config type, collections, engine settings. Toml()
// writes them in the order they were added (endpoint order is capture order; collection order is
// the order in the file, which a test may want to differ from the foreign keys' order).
//
//   ConfigBuilder c;
//   c.Sqlite("crm", "crm.db").Postgres("erp", dsn, "trigger").Engine("batch_rows", 300);
//   c.Collection("customer")
//       .On("crm", "customers")
//       .On("erp", "clients", {{"name", "full_name"}})
//       .Policy("balance", "max");
//
// Values are written as TOML strings with their quotes and backslashes escaped, so that any text
// (a shell command, a DSN) arrives as given. A test of config parsing itself writes literal TOML.
class ConfigBuilder {
 public:
  struct Endpoint {
    std::string name;
    std::string type;          // "sqlite", "postgres"
    std::string path;          // sqlite: the file, absolute or relative to the config's folder
    std::string dsn, dsn_env;  // postgres: exactly one of them
    std::string capture;       // postgres: "logical", "trigger", or "" (the default)
  };
  // One endpoint's table in a collection, with its canonical field -> column renames.
  struct Member {
    std::string endpoint, table;
    std::vector<std::pair<std::string, std::string>> fields;
  };
  class CollectionSpec {
   public:
    explicit CollectionSpec(std::string name) : name_(std::move(name)) {}
    CollectionSpec& Key(std::vector<std::string> fields);  // ["id"] unless said
    CollectionSpec& KeyMode(std::string mode);             // "shared" (the default), "mapped"
    CollectionSpec& DefaultPolicy(std::string policy);     // `policy = ...` for every field
    CollectionSpec& OnDeleteConflict(std::string what);    // "delete" (the default), "keep"
    // fields.FIELD = { policy = POLICY[, endpoint = ENDPOINT] }
    CollectionSpec& Policy(std::string field, std::string policy, std::string endpoint = "");
    // endpoints.ENDPOINT = { table = TABLE[, fields = { FIELD = "COLUMN", ... }] }
    CollectionSpec& On(std::string endpoint, std::string table,
                       std::vector<std::pair<std::string, std::string>> fields = {});

    const std::string& name() const { return name_; }
    const std::vector<std::string>& key() const { return key_; }
    const std::vector<Member>& members() const { return members_; }
    std::string Toml() const;

   private:
    std::string name_;
    std::vector<std::string> key_ = {"id"};
    std::string key_mode_, policy_, on_delete_;
    std::vector<std::pair<std::string, std::string>> policies_;  // field -> TOML inline table
    std::vector<Member> members_;
  };

  // [engine] state = PATH ("state.db" unless said).
  ConfigBuilder& State(std::string path);
  // Another [engine] setting, as a TOML string or integer.
  ConfigBuilder& Engine(const std::string& key, const std::string& value);
  ConfigBuilder& Engine(const std::string& key, const char* value);
  ConfigBuilder& Engine(const std::string& key, int64_t value);
  ConfigBuilder& Sqlite(std::string name, std::string path);
  ConfigBuilder& Postgres(std::string name, std::string dsn, std::string capture = "");
  // A PostgreSQL endpoint whose DSN is read from environment variable `env`.
  ConfigBuilder& PostgresEnv(std::string name, std::string env, std::string capture = "");
  // The collection `name`, added (with no members) if it is new.
  CollectionSpec& Collection(const std::string& name);

  const std::vector<Endpoint>& endpoints() const { return endpoints_; }
  const Endpoint* FindEndpoint(const std::string& name) const;
  const CollectionSpec* FindCollection(const std::string& name) const;
  std::string Toml() const;

 private:
  std::string state_ = "state.db";
  std::vector<std::pair<std::string, std::string>> engine_;  // key -> TOML value
  std::vector<Endpoint> endpoints_;
  std::deque<CollectionSpec> collections_;  // a deque: Collection()'s references stay valid
};

// `text` as a TOML basic string, quotes included.
std::string TomlString(const std::string& text);

// One table's rows in canonical form: key (the key fields' values joined by '|') -> canonical
// field -> value (nullopt for NULL). Values are text as the database prints them; a SQLite blob
// is written like PostgreSQL's bytea (\x and lowercase hex).
using CanonicalRows = std::map<std::string, std::map<std::string, std::optional<std::string>>>;

// A temp dir with a duplex.toml in it, and what a test does with the real `duplex` binary
// (DUPLEX_BIN): run subcommands, read an endpoint's rows, compare the endpoints of a collection.
// See tests/support/README.md.
class SyncFixture {
 public:
  static constexpr std::chrono::milliseconds kCommandTimeout{180000};

  const TempDir& dir() const { return *dir_; }
  std::string File(const std::string& name) const { return dir_->File(name); }
  // Starts over in a new empty temp dir (the old one is removed), with no config.
  void FreshDir();
  std::string ConfigPath() const { return File("duplex.toml"); }
  const ConfigBuilder& config() const { return config_; }

  // Writes `config` to duplex.toml (replacing it) and remembers it for Rows and Converged.
  void WriteConfig(const ConfigBuilder& config);

  // Runs `duplex args... --config duplex.toml` to completion (killed after `timeout`).
  Outcome Duplex(std::vector<std::string> args,
                 std::chrono::milliseconds timeout = kCommandTimeout);
  // Runs `duplex args...` as given (no --config added).
  Outcome DuplexRaw(const std::vector<std::string>& args,
                    std::chrono::milliseconds timeout = kCommandTimeout);
  // Starts `duplex args... --config duplex.toml` in the background.
  std::unique_ptr<Process> Background(std::vector<std::string> args);
  // A fresh log prefix for a process's .out/.err in the temp dir.
  std::string NextLog();

  // `run --until-idle`, expecting exit 0 (fails the test otherwise; check HasFatalFailure()).
  void SyncIdle();
  // `status --json` (expecting exit 0 and JSON; an empty object otherwise).
  nlohmann::json StatusJson();
  // `conflicts list --json [--all]` (expecting exit 0 and an array; an empty one otherwise).
  nlohmann::json ConflictsJson(bool all);
  // Whether `status` shows nothing waiting anywhere: capture, journal, apply.
  static bool NoBacklog(const nlohmann::json& status);

  // The rows of `collection`'s table on `endpoint`, read over a connection of its own.
  CanonicalRows Rows(const std::string& collection, const std::string& endpoint);
  // Whether every endpoint of `collection` holds the same rows (on the fields all of them
  // have); if not, the message names the first difference: endpoints, key, field, values.
  ::testing::AssertionResult Converged(const std::string& collection);
  // Polls Converged until it holds or `timeout` passes. With `idle`, also until status shows no
  // backlog, and it gives up early once nothing has waited for 3 s while the rows still differ
  // (duplex has nothing left to do, so they will not converge).
  ::testing::AssertionResult WaitConverged(const std::string& collection,
                                           std::chrono::milliseconds timeout, bool idle = false);

 private:
  std::optional<TempDir> dir_{std::in_place};
  ConfigBuilder config_;
  int commands_ = 0;
};

#define EXPECT_CONVERGED(fixture, collection) EXPECT_TRUE((fixture).Converged(collection))
#define ASSERT_CONVERGED(fixture, collection) ASSERT_TRUE((fixture).Converged(collection))

// The rows of `table` in the SQLite file `path`, keyed by `key` (columns, as canonical fields
// through `columns` = canonical field -> column, identity for those not named).
Result<CanonicalRows> ReadSqliteRows(
    const std::string& path, const std::string& table, const std::vector<std::string>& key,
    const std::vector<std::pair<std::string, std::string>>& columns = {});
// The same from PostgreSQL database `dsn`.
Result<CanonicalRows> ReadPgRows(
    const std::string& dsn, const std::string& table, const std::vector<std::string>& key,
    const std::vector<std::pair<std::string, std::string>>& columns = {});
// The first difference between two endpoints' rows ("" if none), naming them `a` and `b`.
std::string FirstRowDifference(const std::string& a, const CanonicalRows& ra, const std::string& b,
                               const CanonicalRows& rb);

}  // namespace duplex::testing
