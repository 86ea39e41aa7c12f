// What a connector type gives the registry (registry.h) and gets from it: its settings, read
// from the endpoint's section of the config file, and what its constructor is told about the
// endpoint. Each connector folder implements one settings parser and one constructor with these
// types (sqlite/settings.h, postgres/settings.h); the config parser and the engine call them
// through the registry, never by name.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "duplex/status.h"

namespace duplex {

// One endpoint's type-specific settings, as its connector type parsed them. Immutable once
// parsed; shared by every copy of the config.
class ConnectorSettings {
 public:
  virtual ~ConnectorSettings() = default;

  // Where the endpoint is, for `duplex check` ("/data/crm.db", "schema public, capture
  // logical"). Never a secret: no password, no connection string.
  virtual std::string Summary() const = 0;
};

// The keys of one `[endpoints.NAME]` section, as a settings parser reads them. Implemented by
// the config parser over the TOML file. Every error is InvalidArgument
// "FILE:LINE: what is wrong; what to change", the line being the key's (or the section's).
class SettingsReader {
 public:
  virtual ~SettingsReader() = default;

  // "endpoint 'NAME'": how every message names the endpoint.
  virtual const std::string& where() const = 0;
  // The line of the section's name in the config file.
  virtual int line() const = 0;
  // The line of `key`, or the section's line if the key is absent.
  virtual int KeyLine(std::string_view key) const = 0;

  // An error for any key of the section not in `known` (which includes "type"), listing them.
  virtual Status CheckKeys(std::initializer_list<std::string_view> known) const = 0;
  // Reads the non-empty string at `key` into *out. Absent: an error when `required`, else *out
  // is left as it is. `example` is the value suggested in the message ("\"FILE.db\"").
  virtual Status GetString(std::string_view key, std::string_view example, std::string* out,
                           bool required = false) const = 0;
  // Reads the integer at `key`, from `lo` to `hi`, into *out; left as it is when absent.
  virtual Status GetInt(std::string_view key, int64_t lo, int64_t hi, int64_t* out) const = 0;
  // `path` made absolute against the config file's folder, as every path in the config is.
  virtual std::string ResolvePath(const std::string& path) const = 0;
  // An error at `line`: "FILE:LINE: what; fix".
  virtual Status Error(int line, std::string_view what, std::string_view fix) const = 0;
};

// What the registry tells a connector type's constructor about the endpoint.
struct ConnectorContext {
  std::string name;  // the endpoint's name in the config
  int line = 0;      // where the config file defines it; 0 if unknown
  // Prefix of every object the connector creates on a shared server (ServerTag in registry.h):
  // [a-z0-9_], unique per (duplex config, endpoint).
  std::string tag;

  // "endpoint 'NAME' (line N)": how a constructor's errors name the endpoint.
  std::string where() const {
    return "endpoint '" + name + "'" + (line > 0 ? " (line " + std::to_string(line) + ")" : "");
  }
};

}  // namespace duplex
