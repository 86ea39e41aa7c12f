#include "config/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

#include "connectors/registry.h"
#include "connectors/settings.h"

namespace duplex {

namespace {

namespace fs = std::filesystem;

// 64-bit FNV-1a: a stable hash for names derived from paths.
uint64_t Fnv1a(std::string_view text) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

// `[engine] name` when absent: the state file's name, then a hash of its absolute path, so that
// two configs with different state files never share server objects.
std::string DefaultName(const std::string& state_path) {
  std::string stem;
  for (char c : fs::path(state_path).stem().string()) {
    if (stem.size() >= 14) break;
    unsigned char u = static_cast<unsigned char>(c);
    stem += std::isalnum(u) ? static_cast<char>(std::tolower(u)) : '_';
  }
  if (stem.empty() || !std::islower(static_cast<unsigned char>(stem[0]))) stem = "d" + stem;
  return fmt::format("{}_{:08x}", stem, Fnv1a(state_path) & 0xffffffffu);
}

constexpr const char* kPolicyList = "lww, prefer, max, min, sum, union, manual";
constexpr std::pair<Policy, const char*> kPolicyNames[] = {
    {Policy::kLww, "lww"},      {Policy::kPrefer, "prefer"}, {Policy::kMax, "max"},
    {Policy::kMin, "min"},      {Policy::kSum, "sum"},       {Policy::kUnion, "union"},
    {Policy::kManual, "manual"}};

int LineOf(const toml::source_region& s) { return static_cast<int>(s.begin.line); }

struct Entry {
  std::string name;
  const toml::node* node;
  int line;  // of the key: where the entry is first named
};

// A table's entries in file order (toml++ tables are sorted maps).
std::vector<Entry> InFileOrder(const toml::table& t) {
  std::vector<std::pair<toml::source_position, Entry>> v;
  for (auto&& [k, node] : t) {
    v.push_back({k.source().begin, Entry{std::string(k.str()), &node, LineOf(k.source())}});
  }
  std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.first.line != b.first.line ? a.first.line < b.first.line
                                        : a.first.column < b.first.column;
  });
  std::vector<Entry> out;
  for (auto& e : v) out.push_back(std::move(e.second));
  return out;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

bool ValidName(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

// Walks the parsed TOML document and builds the Config, stopping at the first error.
class Parser {
 public:
  Parser(std::string file, Config* config) : file_(std::move(file)), config_(config) {
    dir_ = fs::path(config->path).parent_path();
  }

  Status Parse(const toml::table& root) {
    DUPLEX_RETURN_IF_ERROR(CheckKeys(root, {"engine", "endpoints", "collections"}, ""));
    std::string state = "duplex-state.db";
    std::string name;
    if (const toml::node* n = root.get("engine")) {
      DUPLEX_ASSIGN_OR_RETURN(const toml::table* t, Table(*n, LineOf(n->source()), "engine",
                                                          "write an [engine] section"));
      DUPLEX_RETURN_IF_ERROR(
          CheckKeys(*t,
                    {"state", "name", "batch_rows", "poll_interval_ms", "http", "http_token_env",
                     "latency_objective", "alert_after", "alert_command", "reconcile_every"},
                    "engine"));
      DUPLEX_RETURN_IF_ERROR(GetString(*t, "state", "engine", "\"duplex-state.db\"", &state));
      DUPLEX_RETURN_IF_ERROR(GetString(*t, "name", "engine", "\"orders_sync\"", &name));
      if (!name.empty()) {
        const toml::node* n = t->get("name");
        const bool ok = name.size() <= 24 && std::islower(static_cast<unsigned char>(name[0])) &&
                        std::all_of(name.begin(), name.end(), [](char c) {
                          return std::islower(static_cast<unsigned char>(c)) ||
                                 std::isdigit(static_cast<unsigned char>(c)) || c == '_';
                        });
        if (!ok) {
          return Error(LineOf(n->source()),
                       "engine: name must be 1 to 24 characters of a-z, 0-9 and _, starting with "
                       "a letter (it names duplex's objects on the servers)",
                       "write name = \"orders_sync\"");
        }
      }
      DUPLEX_RETURN_IF_ERROR(GetInt(*t, "batch_rows", 1, 1000000, &config_->engine.batch_rows));
      DUPLEX_RETURN_IF_ERROR(
          GetInt(*t, "poll_interval_ms", 1, 1000, &config_->engine.poll_interval_ms));
      DUPLEX_RETURN_IF_ERROR(ParseEngineAdmin(*t));
    }
    config_->engine.state_path = Resolve(state);
    config_->engine.name = name.empty() ? DefaultName(config_->engine.state_path) : name;
    DUPLEX_ASSIGN_OR_RETURN(
        const toml::table* eps,
        Sections(root, "endpoints",
                 "add an [endpoints.NAME] section with type = \"sqlite\" and path = \"FILE.db\""));
    for (const Entry& e : InFileOrder(*eps)) DUPLEX_RETURN_IF_ERROR(ParseEndpoint(e));
    DUPLEX_ASSIGN_OR_RETURN(const toml::table* cols,
                            Sections(root, "collections",
                                     "add a [collections.NAME] section with key = [...] and "
                                     "endpoints.NAME = { table = \"TABLE\" } for 2+ endpoints"));
    for (const Entry& e : InFileOrder(*cols)) DUPLEX_RETURN_IF_ERROR(ParseCollection(e));
    // References may name collections defined further down.
    for (const CollectionConfig& c : config_->collections) {
      for (const auto& [field, target] : c.references) {
        auto it = std::find_if(config_->collections.begin(), config_->collections.end(),
                               [&](const CollectionConfig& o) { return o.name == target; });
        std::vector<std::string> names;
        for (const CollectionConfig& o : config_->collections) names.push_back(o.name);
        if (it == config_->collections.end()) {
          return Error(c.reference_lines.at(field),
                       fmt::format("collection '{}': references.{} names unknown collection '{}'",
                                   c.name, field, target),
                       fmt::format("defined collections: {}", Join(names)));
        }
        if (it->key.size() != 1) {
          return Error(c.reference_lines.at(field),
                       fmt::format("collection '{}': references.{}: collection '{}' has a key of "
                                   "{} fields; a reference holds a one-field key",
                                   c.name, field, target, it->key.size()),
                       "declare the foreign key in the endpoints' schema instead");
        }
      }
    }
    return Status::Ok();
  }

 private:
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

  // The admin server and alert keys of [engine].
  Status ParseEngineAdmin(const toml::table& t) {
    EngineConfig& e = config_->engine;
    DUPLEX_RETURN_IF_ERROR(GetString(t, "http", "engine", "\"127.0.0.1:8787\"", &e.http));
    if (!e.http.empty()) {
      const size_t colon = e.http.rfind(':');
      const std::string port = colon == std::string::npos ? "" : e.http.substr(colon + 1);
      const bool digits =
          !port.empty() && port.size() <= 5 && std::all_of(port.begin(), port.end(), [](char c) {
            return std::isdigit(static_cast<unsigned char>(c));
          });
      if (colon == 0 || !digits || std::stoi(port) > 65535) {
        return Error(LineOf(t.get("http")->source()),
                     fmt::format("engine: http must be \"HOST:PORT\", got \"{}\"", e.http),
                     "write http = \"127.0.0.1:8787\"");
      }
    }
    DUPLEX_RETURN_IF_ERROR(
        GetString(t, "http_token_env", "engine", "\"DUPLEX_HTTP_TOKEN\"", &e.http_token_env));
    DUPLEX_RETURN_IF_ERROR(GetDuration(t, "latency_objective", &e.latency_objective_ms));
    DUPLEX_RETURN_IF_ERROR(GetDuration(t, "alert_after", &e.alert_after_ms));
    DUPLEX_RETURN_IF_ERROR(GetDuration(t, "reconcile_every", &e.reconcile_every_ms));
    DUPLEX_RETURN_IF_ERROR(GetString(t, "alert_command", "engine",
                                     "\"notify-send duplex \\\"$DUPLEX_ALERT_MESSAGE\\\"\"",
                                     &e.alert_command));
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

  std::string EndpointNames() const {
    std::vector<std::string> names;
    for (const EndpointConfig& e : config_->endpoints) names.push_back(e.name);
    return Join(names);
  }

  // A SettingsReader over one [endpoints.NAME] section: the connector type's parser reads its
  // keys through it, with the same checks and messages as the rest of the file.
  class EndpointReader final : public SettingsReader {
   public:
    EndpointReader(const Parser& parser, const toml::table& t, const Entry& e)
        : parser_(parser), t_(t), e_(e), where_(fmt::format("endpoint '{}'", e.name)) {}

    const std::string& where() const override { return where_; }
    int line() const override { return e_.line; }
    int KeyLine(std::string_view key) const override {
      const toml::node* n = t_.get(key);
      return n ? LineOf(n->source()) : e_.line;
    }
    Status CheckKeys(std::initializer_list<std::string_view> known) const override {
      return parser_.CheckKeys(t_, known, where_);
    }
    Status GetString(std::string_view key, std::string_view example, std::string* out,
                     bool required) const override {
      return parser_.GetString(t_, key, where_, example, out, required ? &e_ : nullptr);
    }
    Status GetInt(std::string_view key, int64_t lo, int64_t hi, int64_t* out) const override {
      return parser_.GetInt(t_, key, lo, hi, out, where_);
    }
    std::string ResolvePath(const std::string& path) const override {
      return parser_.Resolve(path);
    }
    Status Error(int line, std::string_view what, std::string_view fix) const override {
      return parser_.Error(line, what, fix);
    }

   private:
    const Parser& parser_;
    const toml::table& t_;
    const Entry& e_;
    std::string where_;
  };

  // The keys every endpoint has (type), then the rest by its type's parser (the registry's).
  Status ParseEndpoint(const Entry& e) {
    DUPLEX_ASSIGN_OR_RETURN(
        const toml::table* t,
        Section(e, "endpoint", fmt::format("write it as an [endpoints.{}] section", e.name)));
    EndpointReader reader(*this, *t, e);
    EndpointConfig ep;
    ep.name = e.name;
    ep.line = e.line;
    DUPLEX_RETURN_IF_ERROR(GetString(*t, "type", reader.where(), "\"sqlite\"", &ep.type, &e));
    const ConnectorType* type = FindConnectorType(ep.type);
    if (type == nullptr) {
      return Error(LineOf(t->get("type")->source()),
                   fmt::format("{}: unknown endpoint type '{}'", reader.where(), ep.type),
                   fmt::format("known types: {}", KnownTypes()));
    }
    DUPLEX_ASSIGN_OR_RETURN(ep.settings, type->parse(reader));
    config_->endpoints.push_back(std::move(ep));
    return Status::Ok();
  }

  Status ParseCollection(const Entry& e) {
    DUPLEX_ASSIGN_OR_RETURN(
        const toml::table* t,
        Section(e, "collection", fmt::format("write it as a [collections.{}] section", e.name)));
    std::string where = fmt::format("collection '{}'", e.name);
    DUPLEX_RETURN_IF_ERROR(CheckKeys(*t,
                                     {"key", "key_mode", "policy", "endpoint", "on_delete_conflict",
                                      "endpoints", "fields", "references"},
                                     where));
    CollectionConfig c;
    c.name = e.name;
    c.line = e.line;

    const toml::node* key = t->get("key");
    if (!key) return Error(e.line, fmt::format("{} has no key", where), "add key = [\"id\"]");
    const toml::array* arr = key->as_array();
    for (size_t i = 0; arr && i < arr->size(); ++i) {
      std::optional<std::string> field = (*arr)[i].value<std::string>();
      if (!field || field->empty() || std::count(c.key.begin(), c.key.end(), *field)) break;
      c.key.push_back(*field);
    }
    if (!arr || arr->empty() || c.key.size() != arr->size()) {
      return Error(LineOf(key->source()),
                   fmt::format("{}: key must be an array of strings, each a distinct field", where),
                   "write key = [\"id\"] with the collection's key fields");
    }

    DUPLEX_RETURN_IF_ERROR(ParseMappings(*t, where, &c));
    DUPLEX_RETURN_IF_ERROR(ParsePolicy(*t, where, c, nullptr, &c.default_policy));
    // A set is one field's form (its separator, its column type); a collection's other fields
    // (numbers, names) are no sets, so union is set per field.
    if (c.default_policy.policy == Policy::kUnion) {
      const toml::node* pn = t->get("policy");
      return Error(
          LineOf(pn->source()),
          fmt::format("{}: policy 'union' is set per field, not for a whole collection", where),
          "write fields.NAME = { policy = \"union\" } for each field holding a set");
    }

    if (const toml::node* n = t->get("on_delete_conflict")) {
      std::optional<std::string_view> v = n->value<std::string_view>();
      if (!v || (*v != "delete" && *v != "keep")) {
        return Error(LineOf(n->source()),
                     fmt::format("{}: on_delete_conflict must be \"delete\" or \"keep\"", where),
                     "write on_delete_conflict = \"delete\" (the default) or \"keep\"");
      }
      c.delete_wins = *v == "delete";
    }

    if (const toml::node* n = t->get("key_mode")) {
      std::optional<std::string_view> v = n->value<std::string_view>();
      if (!v || (*v != "shared" && *v != "mapped")) {
        return Error(LineOf(n->source()),
                     fmt::format("{}: key_mode must be \"shared\" or \"mapped\"", where),
                     "write key_mode = \"shared\" (the same key everywhere, the default) or "
                     "\"mapped\" (each endpoint generates its own)");
      }
      c.mapped_key = *v == "mapped";
      if (c.mapped_key && c.key.size() != 1) {
        return Error(LineOf(n->source()),
                     fmt::format("{}: key_mode = \"mapped\" needs a key of one field (the "
                                 "generated id), not {}",
                                 where, c.key.size()),
                     "write key = [\"id\"]");
      }
    }

    if (const toml::node* n = t->get("references")) {
      DUPLEX_ASSIGN_OR_RETURN(
          const toml::table* refs,
          Table(*n, LineOf(n->source()), where + ": references",
                "write references = { customer_id = \"customer\" } (field = collection)"));
      for (const Entry& r : InFileOrder(*refs)) {
        std::optional<std::string> target = r.node->value<std::string>();
        if (!target || target->empty()) {
          return Error(
              r.line,
              fmt::format("{}: references.{} must name a collection (a string)", where, r.name),
              fmt::format("write references = {{ {} = \"COLLECTION\" }}", r.name));
        }
        if (std::count(c.key.begin(), c.key.end(), r.name)) {
          return Error(r.line,
                       fmt::format("{}: references.{}: a key field cannot reference another "
                                   "collection",
                                   where, r.name),
                       fmt::format("remove references.{}", r.name));
        }
        c.references[r.name] = *target;
        c.reference_lines[r.name] = r.line;
      }
    }

    if (const toml::node* n = t->get("fields")) {
      DUPLEX_ASSIGN_OR_RETURN(const toml::table* fields,
                              Table(*n, LineOf(n->source()), where + ": fields",
                                    "write fields.NAME = { policy = \"max\" }"));
      for (const Entry& f : InFileOrder(*fields)) {
        std::string fwhere = fmt::format("{} field '{}'", where, f.name);
        if (std::count(c.key.begin(), c.key.end(), f.name)) {
          return Error(f.line, fwhere + " is a key field; key fields are not resolved by policy",
                       fmt::format("remove fields.{}", f.name));
        }
        DUPLEX_ASSIGN_OR_RETURN(
            const toml::table* ft,
            Table(*f.node, f.line, fwhere,
                  fmt::format("write fields.{} = {{ policy = \"max\" }}", f.name)));
        DUPLEX_RETURN_IF_ERROR(CheckKeys(*ft, {"policy", "endpoint", "separator"}, fwhere));
        DUPLEX_RETURN_IF_ERROR(ParsePolicy(*ft, fwhere, c, &f, &c.field_policies[f.name]));
      }
    }
    config_->collections.push_back(std::move(c));
    return Status::Ok();
  }

  // Reads `policy` (and `endpoint` for prefer) from t into *out; a missing policy is an error
  // when `required` (t's entry).
  Status ParsePolicy(const toml::table& t, const std::string& where, const CollectionConfig& c,
                     const Entry* required, FieldPolicy* out) const {
    const toml::node* pn = t.get("policy");
    const toml::node* en = t.get("endpoint");
    if (!pn && required) {
      return Error(required->line, fmt::format("{} has no policy", where),
                   fmt::format("add policy = \"NAME\" (one of: {})", kPolicyList));
    }
    if (pn) {
      std::optional<std::string_view> name = pn->value<std::string_view>();
      auto it = std::find_if(std::begin(kPolicyNames), std::end(kPolicyNames),
                             [&](const auto& p) { return name && *name == p.second; });
      if (it == std::end(kPolicyNames)) {
        return Error(LineOf(pn->source()),
                     name ? fmt::format("{}: unknown policy '{}'", where, *name)
                          : fmt::format("{}: policy must be a string", where),
                     fmt::format("valid policies: {}", kPolicyList));
      }
      out->policy = it->first;
    }
    if (const toml::node* sn = t.get("separator")) {
      if (out->policy != Policy::kUnion) {
        return Error(LineOf(sn->source()),
                     fmt::format("{}: separator is only used with policy \"union\"", where),
                     "remove separator, or set policy = \"union\"");
      }
      std::optional<std::string_view> sep = sn->value<std::string_view>();
      if (!sep || sep->empty()) {
        return Error(LineOf(sn->source()),
                     fmt::format("{}: separator must be a non-empty string", where),
                     "write separator = \";\" (the text between a delimited set's elements)");
      }
      out->separator = std::string(*sep);
    }
    std::vector<std::string> members;
    for (const CollectionEndpoint& ce : c.endpoints) members.push_back(ce.endpoint);
    if (out->policy == Policy::kPrefer && !en) {
      return Error(LineOf(pn->source()),
                   fmt::format("{}: policy 'prefer' needs an endpoint", where),
                   fmt::format("add endpoint = \"NAME\" naming one of: {}", Join(members)));
    }
    if (!en) return Status::Ok();
    if (out->policy != Policy::kPrefer) {
      return Error(LineOf(en->source()),
                   fmt::format("{}: endpoint is only used with policy \"prefer\"", where),
                   "remove endpoint, or set policy = \"prefer\"");
    }
    DUPLEX_RETURN_IF_ERROR(GetString(t, "endpoint", where, "\"NAME\"", &out->prefer_endpoint));
    if (!config_->FindEndpoint(out->prefer_endpoint)) {
      return Error(LineOf(en->source()),
                   fmt::format("{}: unknown endpoint '{}'", where, out->prefer_endpoint),
                   fmt::format("defined endpoints: {}", EndpointNames()));
    }
    if (std::find(members.begin(), members.end(), out->prefer_endpoint) == members.end()) {
      return Error(LineOf(en->source()),
                   fmt::format("{}: preferred endpoint '{}' is not an endpoint of {}", where,
                               out->prefer_endpoint, c.name),
                   fmt::format("prefer one of: {}", Join(members)));
    }
    return Status::Ok();
  }

  // Parses the collection's `endpoints` table into c->endpoints, in file order.
  Status ParseMappings(const toml::table& t, const std::string& where, CollectionConfig* c) const {
    const toml::node* n = t.get("endpoints");
    std::string fix = fmt::format(
        "add endpoints.NAME = {{ table = \"TABLE\" }} for each endpoint (defined endpoints: {})",
        EndpointNames());
    const toml::table* eps = nullptr;
    if (n) {
      DUPLEX_ASSIGN_OR_RETURN(eps, Table(*n, LineOf(n->source()), where + ": endpoints", fix));
    }
    if (!eps || eps->size() < 2) {
      return Error(n ? LineOf(n->source()) : c->line,
                   fmt::format("{} has {} endpoint(s); a collection syncs two or more", where,
                               eps ? eps->size() : 0),
                   fix);
    }
    // Every canonical field the config names, to catch two fields landing on one column.
    std::set<std::string> canonical(c->key.begin(), c->key.end());
    if (const toml::table* fields = t["fields"].as_table()) {
      for (auto&& [k, v] : *fields) canonical.insert(std::string(k.str()));
    }
    for (auto&& [k, v] : *eps) {
      if (const toml::table* m = v.as_table(); m && (*m)["fields"].as_table()) {
        for (auto&& [f, col] : *(*m)["fields"].as_table()) canonical.insert(std::string(f.str()));
      }
    }

    for (const Entry& e : InFileOrder(*eps)) {
      std::string ewhere = fmt::format("{} endpoint '{}'", where, e.name);
      if (!config_->FindEndpoint(e.name)) {
        return Error(e.line, fmt::format("{}: unknown endpoint '{}'", where, e.name),
                     fmt::format("defined endpoints: {}", EndpointNames()));
      }
      DUPLEX_ASSIGN_OR_RETURN(
          const toml::table* et,
          Table(*e.node, e.line, ewhere,
                fmt::format("write endpoints.{} = {{ table = \"TABLE\" }}", e.name)));
      DUPLEX_RETURN_IF_ERROR(CheckKeys(*et, {"table", "fields"}, ewhere));
      CollectionEndpoint ce;
      ce.endpoint = e.name;
      DUPLEX_RETURN_IF_ERROR(GetString(*et, "table", ewhere, "\"TABLE\"", &ce.table, &e));
      for (const CollectionConfig& other : config_->collections) {
        for (const CollectionEndpoint& o : other.endpoints) {
          if (o.endpoint != ce.endpoint || o.table != ce.table) continue;
          return Error(e.line,
                       fmt::format("{}: table '{}' is already synced by collection '{}'", ewhere,
                                   ce.table, other.name),
                       "map each table to one collection only");
        }
      }
      std::map<std::string, int> lines;  // mapped field -> line
      if (const toml::node* fn = et->get("fields")) {
        DUPLEX_ASSIGN_OR_RETURN(const toml::table* ft,
                                Table(*fn, LineOf(fn->source()), ewhere + ": fields",
                                      "write fields = { CANONICAL_FIELD = \"COLUMN\" }"));
        for (const Entry& f : InFileOrder(*ft)) {
          std::optional<std::string> col = f.node->value<std::string>();
          if (!col || col->empty()) {
            return Error(
                f.line,
                fmt::format("{}: fields.{} must be a column name (a string)", ewhere, f.name),
                fmt::format("write fields = {{ {} = \"COLUMN\" }}", f.name));
          }
          if (*col != f.name) ce.fields[f.name] = *col;
          lines[f.name] = f.line;
        }
      }
      std::map<std::string, std::string> owner;  // column -> canonical field
      for (const std::string& field : canonical) {
        std::string col = ce.Column(field);
        auto [it, inserted] = owner.emplace(col, field);
        if (inserted) continue;
        const std::string& renamed = ce.fields.count(field) ? field : it->second;
        return Error(lines[renamed],
                     fmt::format("{}: fields '{}' and '{}' both map to column '{}'", ewhere,
                                 it->second, field, col),
                     "map each canonical field to its own column");
      }
      c->endpoints.push_back(std::move(ce));
    }
    return Status::Ok();
  }

  std::string file_;
  fs::path dir_;
  Config* config_;
};

}  // namespace

const char* PolicyName(Policy p) {
  for (const auto& [policy, name] : kPolicyNames) {
    if (policy == p) return name;
  }
  return "unknown";
}

const EndpointConfig* Config::FindEndpoint(const std::string& name) const {
  for (const EndpointConfig& e : endpoints) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

std::optional<int64_t> ParseDurationMs(std::string_view text) {
  size_t i = 0;
  int64_t n = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    if (n > 1000000000) return std::nullopt;
    n = n * 10 + (text[i++] - '0');
  }
  if (i == 0) return std::nullopt;
  const std::string_view unit = text.substr(i);
  if (unit == "ms") return n;
  if (unit == "s") return n * 1000;
  if (unit == "m") return n * 60 * 1000;
  if (unit == "h") return n * 3600 * 1000;
  return std::nullopt;
}

Result<Config> LoadConfig(const std::string& path) {
  std::error_code ec;
  std::ifstream in;
  errno = 0;
  if (!fs::is_directory(path, ec)) in.open(path, std::ios::binary);
  if (!in.is_open()) {
    return Status::InvalidArgument(
        fmt::format("cannot read config file '{}' ({}); check the path, or write an example "
                    "config with `duplex init`",
                    path, errno ? std::strerror(errno) : "not a regular file"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), path);
}

Result<Config> ParseConfig(const std::string& text, const std::string& path) {
  Config config;
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  config.path = (ec ? fs::path(path) : abs).lexically_normal().string();
  config.shown_path = path;
  toml::table root;
  try {
    root = toml::parse(std::string_view(text), std::string_view(path));
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(fmt::format("{}:{}: {}; fix the TOML syntax there", path,
                                               e.source().begin.line, e.description()));
  }
  Parser parser(path, &config);
  DUPLEX_RETURN_IF_ERROR(parser.Parse(root));
  return config;
}

std::string ExampleConfig() {
  return R"(# duplex configuration: which databases to keep in sync, and how.
# Relative paths in this file are resolved against the folder this file is in.

[engine]
# duplex's own SQLite file: the sync state of every record and the change journal.
state = "duplex-state.db"
# Most row changes captured or applied in one batch (1 to 1000000).
# batch_rows = 10000
# Idle wait between cheap checks for new changes, in milliseconds (1 to 1000).
# poll_interval_ms = 5
# HTTP admin server of `duplex run`: dashboard at /, /metrics (Prometheus), /healthz, /readyz,
# JSON API under /api/v1/. Off when absent. Bound anywhere but loopback it needs a bearer
# token, read from the environment variable named by http_token_env.
# http = "127.0.0.1:8787"
# http_token_env = "DUPLEX_HTTP_TOKEN"
# An endpoint whose capture lags more than this, or that stays unreachable longer than
# alert_after, raises an alert: one warning line, the dashboard, /readyz, and alert_command
# (run by /bin/sh with DUPLEX_ALERT_* variables in its environment; once more on clearing).
# latency_objective = "5s"
# alert_after = "30s"
# alert_command = "logger -t duplex \"$DUPLEX_ALERT_MESSAGE\""

# Endpoints: the databases to keep in sync. The name after "endpoints." is yours to choose
# (letters, digits, '_' and '-'); collections refer to endpoints by it. Endpoint types:
#   "sqlite"      a SQLite database file (no server needed)
#   "postgres"    a PostgreSQL database: capture by a logical replication slot, or triggers
#   "salesforce"  a Salesforce org over its REST API
# This example syncs two SQLite files; the other types are shown commented out below.
[endpoints.crm]
type = "sqlite"
path = "crm.db"     # the SQLite database file (created by your application, not by duplex)

[endpoints.billing]
type = "sqlite"
path = "billing.db"

# A PostgreSQL endpoint (`duplex check` lists what the server lacks, with the fix):
# [endpoints.shop]
# type = "postgres"
# dsn = "postgresql://duplex@db1:5432/shop"  # or dsn_env = "SHOP_DSN"; the password from there,
#                                            # PGPASSWORD or ~/.pgpass; never logged
# schema = "public"
# capture = "logical"         # "logical" (default): replication slot + pgoutput;
#                             # "trigger": AFTER triggers + a changelog table
# max_retained_wal_mb = 1024  # `duplex status` warns when the slot holds more WAL than this

# A Salesforce org (use key_mode = "mapped" in its collections: the org makes its own ids):
# [endpoints.org]
# type = "salesforce"
# instance_url = "https://login.salesforce.com"  # or your My Domain URL
# client_id_env = "SF_CLIENT_ID"          # the connected app's key and secret come only from
# client_secret_env = "SF_CLIENT_SECRET"  # these environment variables; never logged
# external_id = "External_Id__c"          # a Text, External ID, Unique field on every object
# capture = "cdc"                         # change events (default) or "poll"
# poll_interval = "2s"                    # never poll more often
# api_budget = "100%"                     # of the org's daily API requests (default: all it
#                                         # has left); or a number of calls per 24 hours

# Collections: one kind of record kept equal on two or more endpoints. Here a customer lives in
# table "customers" of crm and in table "clients" of billing.
[collections.customer]
# The canonical fields that identify a record on every endpoint (a primary or unique key).
key = ["id"]
# How a field changed concurrently on two endpoints is resolved; the default of every field:
#   "lww"     last writer wins: the later commit wins
#   "prefer"  one endpoint's value always wins; name it with endpoint = "NAME"
#   "max"     the larger value wins (NULL < numbers < text < binary)
#   "min"     the smaller value wins
#   "sum"     a counter or balance: concurrent changes are added up as deltas from the value
#             both sides started from (100 -> 110 here, 100 -> 95 there: 105); integers and
#             exact decimals (PostgreSQL numeric, decimal text), never rounded
#   "union"   a set (per field only): what either side added is kept, what either side removed
#             goes; for PostgreSQL arrays, JSON arrays, and delimited text with
#             separator = ";" (a multipicklist "a;b;c")
#   "manual"  nothing is overwritten: each endpoint keeps its value, and the conflict waits
#             for an operator (`duplex conflicts resolve`)
policy = "lww"
# A delete on one endpoint concurrent with an update on another:
#   "delete" (the default) the delete wins; "keep" the updated record is kept.
on_delete_conflict = "delete"
# Keys: "shared" (the default) when the key means the same record everywhere (a natural key,
# or ids one side hands out); "mapped" when each endpoint generates its own ids (serial,
# identity, INTEGER PRIMARY KEY on both sides): duplex then inserts without the key, keeps a
# key map, and translates every reference to the collection.
# key_mode = "shared"
# Foreign keys declared in the endpoints' schemas are read from them: parents are written
# before children, children deleted before parents. Declare here the ones a system does not:
# references = { account_id = "account" }
# Where the collection lives on each endpoint: `table` is the endpoint's table, and `fields`
# maps canonical field names to this endpoint's column names where they differ
# (canonical = "column"). By default every column present on all of the collection's endpoints
# (under its mapped name) is synced.
endpoints.crm     = { table = "customers" }
endpoints.billing = { table = "clients", fields = { name = "full_name" } }
# Per-field policies, overriding the collection's policy (key fields are never resolved by
# policy: they identify the record).
fields.balance = { policy = "sum" }   # a balance: deposits on both sides both count
fields.tier    = { policy = "prefer", endpoint = "crm" }
fields.notes   = { policy = "manual" }
# fields.tags  = { policy = "union", separator = ";" }   # tags "a;b": additions on both sides count
)";
}

}  // namespace duplex
