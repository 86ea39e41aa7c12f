#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "duplex/result.h"

namespace duplex {

class ConnectorSettings;  // connectors/settings.h

// Per-field conflict policies (DESIGN §4).
enum class Policy { kLww, kPrefer, kMax, kMin, kManual, kSum, kUnion, kMerge };

const char* PolicyName(Policy p);

struct FieldPolicy {
  Policy policy = Policy::kLww;
  // kPrefer (or kMerge with merge_policy kPrefer) only: the endpoint whose value wins
  std::string prefer_endpoint;
  // kUnion only: the text between a delimited set's elements ("a;b;c"); empty: the values are
  // arrays (PostgreSQL, JSON) or text holding one (core/set_merge.h).
  std::string separator;
  // kMerge only: the policy that decides a path both sides changed (core/json_merge.h); any
  // but kMerge.
  Policy merge_policy = Policy::kLww;
};

// What every endpoint has; the rest of its section is its type's (src/connectors/registry.h).
struct EndpointConfig {
  std::string name;
  std::string type;  // a registered type's name or alias ("sqlite", "postgres")
  int line = 0;      // where it is defined in the config file (for messages), 0 if unknown
  // The type's own settings (e.g. sqlite::SqliteSettings), as its parser read them.
  std::shared_ptr<const ConnectorSettings> settings;

  // The settings as type T (e.g. `ep.settings_as<sqlite::SqliteSettings>()->path`); nullptr
  // if they are of another type.
  template <typename T>
  const T* settings_as() const {
    return dynamic_cast<const T*>(settings.get());
  }
};

// A collection's mapping onto one endpoint.
struct CollectionEndpoint {
  std::string endpoint;
  std::string table;
  std::map<std::string, std::string> fields;  // canonical field -> column, only where renamed
  // The endpoint's column for a canonical field (identity unless renamed).
  std::string Column(const std::string& field) const {
    auto it = fields.find(field);
    return it == fields.end() ? field : it->second;
  }
};

struct CollectionConfig {
  std::string name;
  std::vector<std::string> key;  // canonical key fields
  FieldPolicy default_policy;
  std::map<std::string, FieldPolicy> field_policies;  // canonical field -> override
  bool delete_wins = true;  // on_delete_conflict = "delete" (default) | "keep"
  // key_mode = "mapped": every endpoint generates its own key for a record (serial, identity,
  // rowid); duplex keeps a key map (DESIGN §5). "shared" (default): the key is the same value
  // on every endpoint.
  bool mapped_key = false;
  // references = { FIELD = "COLLECTION" }: foreign keys the endpoints do not declare; each
  // FIELD holds the key of a record of COLLECTION (whose key is one field). Declared foreign
  // keys are read from the endpoints.
  std::map<std::string, std::string> references;
  std::map<std::string, int> reference_lines;  // field -> config line
  // In config-file order; at least two.
  std::vector<CollectionEndpoint> endpoints;
  int line = 0;

  const FieldPolicy& PolicyFor(const std::string& field) const {
    auto it = field_policies.find(field);
    return it == field_policies.end() ? default_policy : it->second;
  }
};

struct EngineConfig {
  std::string state_path;  // absolute
  // Names the objects duplex creates on servers (slots, publications, origins, tables), so that
  // two configs on one server never clash: [a-z0-9_], from `name` or else derived from the
  // state file's absolute path.
  std::string name;
  size_t batch_rows = 10000;  // most changes captured or applied in one batch
  int poll_interval_ms = 5;   // idle wait between cheap change checks
  // HTTP admin server ("HOST:PORT"); empty: off. Port 0 picks a free port (logged).
  std::string http;
  // Name of the environment variable holding the admin server's bearer token; required when
  // `http` is not bound to loopback. The token itself never appears in the config or logs.
  std::string http_token_env;
  int64_t latency_objective_ms = 5000;  // lag above this alerts and fails /readyz
  int64_t alert_after_ms = 30000;       // unreachable longer than this alerts
  int64_t reconcile_every_ms = 0;       // `duplex run` reconciles this often (0: never)
  std::string alert_command;            // run by /bin/sh on alert and on clear; empty: none
};

// Parses a duration such as "5s", "250ms", "2m", "1h" into milliseconds; nullopt if malformed.
std::optional<int64_t> ParseDurationMs(std::string_view text);

struct Config {
  std::string path;  // the config file, absolute
  // The config file as the user named it (relative or not): every message that names the file
  // uses this, so one run never names it two ways.
  std::string shown_path;
  EngineConfig engine;
  std::vector<EndpointConfig> endpoints;      // in config-file order (capture order)
  std::vector<CollectionConfig> collections;  // in config-file order

  const EndpointConfig* FindEndpoint(const std::string& name) const;
};

// Reads and validates a config file: syntax, unknown keys, required keys, references between
// sections (an endpoint named by a collection or a policy must exist), policy names. Errors
// are InvalidArgument with "FILE:LINE: what is wrong; what to change". Does not open endpoints
// (the engine checks tables and columns against them).
Result<Config> LoadConfig(const std::string& path);
Result<Config> ParseConfig(const std::string& text, const std::string& path);

// The commented example config `duplex init` writes.
std::string ExampleConfig();

}  // namespace duplex
