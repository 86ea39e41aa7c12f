// Reading a config file's TOML with checks: every error names FILE:LINE, what is wrong and the
// fix. The base of the config parser (parser.cc); internal to src/config/.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.h"
#include "duplex/result.h"
#include "duplex/status.h"

namespace duplex::config_detail {

inline int LineOf(const toml::source_region& s) { return static_cast<int>(s.begin.line); }

struct Entry {
  std::string name;
  const toml::node* node;
  int line;  // of the key: where the entry is first named
};

// A table's entries in file order (toml++ tables are sorted maps).
std::vector<Entry> InFileOrder(const toml::table& t);
// "a, b, c".
std::string Join(const std::vector<std::string>& v);
// A section name: letters, digits, '_' and '-'.
bool ValidName(std::string_view s);

// The checked reads of one config file: values of the right type and range, known keys,
// sections, paths resolved against the file's folder.
class TomlReader {
 public:
  TomlReader(std::string file, std::filesystem::path dir)
      : file_(std::move(file)), dir_(std::move(dir)) {}

  Status Error(int line, std::string_view what, std::string_view fix) const {
    std::string where = line > 0 ? fmt::format("{}:{}", file_, line) : file_;
    return Status::InvalidArgument(fmt::format("{}: {}; {}", where, what, fix));
  }

  Result<const toml::table*> Table(const toml::node& n, int line, std::string_view what,
                                   std::string_view fix) const {
    if (!n.is_table()) return Error(line, fmt::format("{} must be a table", what), fix);
    return n.as_table();
  }

  // The top-level table `name` ("endpoints"), which must hold at least one section.
  Result<const toml::table*> Sections(const toml::table& root, std::string_view name,
                                      std::string_view fix) const {
    const toml::node* n = root.get(name);
    if (!n) return Error(0, fmt::format("no {} defined", name), fix);
    DUPLEX_ASSIGN_OR_RETURN(const toml::table* t, Table(*n, LineOf(n->source()), name, fix));
    if (t->empty()) return Error(LineOf(n->source()), fmt::format("no {} defined", name), fix);
    return t;
  }

  // A named section ("endpoint 'crm'"): checks its name and that it is a table.
  Result<const toml::table*> Section(const Entry& e, std::string_view kind,
                                     std::string_view fix) const {
    if (!ValidName(e.name)) {
      return Error(e.line, fmt::format("{} name '{}' is invalid", kind, e.name),
                   "use only letters, digits, '_' and '-'");
    }
    return Table(*e.node, e.line, fmt::format("{} '{}'", kind, e.name), fix);
  }

  // `where` names the enclosing section ("endpoint 'crm'"); empty for the top level.
  Status CheckKeys(const toml::table& t, std::initializer_list<std::string_view> known,
                   std::string_view where) const {
    for (const Entry& e : InFileOrder(t)) {
      if (std::find(known.begin(), known.end(), e.name) != known.end()) continue;
      std::string in = where.empty() ? "at the top level" : fmt::format("in {}", where);
      return Error(e.line, fmt::format("unknown key '{}' {}", e.name, in),
                   fmt::format("known keys: {}", fmt::join(known, ", ")));
    }
    return Status::Ok();
  }

  // Reads the string at t[key] into *out. If absent, an error when `required` (the table's
  // entry), else *out is left as it is.
  Status GetString(const toml::table& t, std::string_view key, std::string_view where,
                   std::string_view example, std::string* out,
                   const Entry* required = nullptr) const {
    const toml::node* n = t.get(key);
    if (!n && required) {
      return Error(required->line, fmt::format("{} has no {}", where, key),
                   fmt::format("add {} = {}", key, example));
    }
    if (!n) return Status::Ok();
    if (!n->is_string() || n->as_string()->get().empty()) {
      return Error(LineOf(n->source()),
                   fmt::format("{}: {} must be a non-empty string", where, key),
                   fmt::format("write {} = {}", key, example));
    }
    *out = n->as_string()->get();
    return Status::Ok();
  }

  template <typename T>
  Status GetInt(const toml::table& t, std::string_view key, int64_t lo, int64_t hi, T* out,
                std::string_view where = "engine") const {
    const toml::node* n = t.get(key);
    if (!n) return Status::Ok();
    std::optional<int64_t> v = n->is_integer() ? n->value<int64_t>() : std::nullopt;
    if (!v || *v < lo || *v > hi) {
      return Error(LineOf(n->source()),
                   fmt::format("{}: {} must be an integer from {} to {}", where, key, lo, hi),
                   fmt::format("set {} to a value in that range, or remove it", key));
    }
    *out = static_cast<T>(*v);
    return Status::Ok();
  }

  Status GetDuration(const toml::table& t, std::string_view key, int64_t* out) const {
    const toml::node* n = t.get(key);
    if (!n) return Status::Ok();
    std::optional<std::string_view> text = n->value<std::string_view>();
    std::optional<int64_t> ms = text ? ParseDurationMs(*text) : std::nullopt;
    if (!ms || *ms <= 0) {
      return Error(LineOf(n->source()),
                   fmt::format("engine: {} must be a duration such as \"5s\", \"250ms\" or "
                               "\"2m\"",
                               key),
                   fmt::format("write {} = \"5s\"", key));
    }
    *out = *ms;
    return Status::Ok();
  }

  std::string Resolve(const std::string& p) const { return (dir_ / p).lexically_normal().string(); }

 protected:
  std::string file_;
  std::filesystem::path dir_;
};

}  // namespace duplex::config_detail
