// The config file's parser: the TOML document to a Config ([engine], [endpoints.NAME] through
// the connector registry, [collections.NAME]), stopping at the first error.
#include "config/parser.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <initializer_list>
#include <set>
#include <string_view>
#include <utility>

#include "config/toml_reader.h"
#include "connectors/registry.h"
#include "connectors/settings.h"

namespace duplex {

namespace {

namespace fs = std::filesystem;
using config_detail::Entry;
using config_detail::InFileOrder;
using config_detail::Join;
using config_detail::LineOf;
using config_detail::TomlReader;
using config_detail::ValidName;

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

constexpr const char* kPolicyList = "lww, prefer, max, min, sum, union, merge, manual";
constexpr const char* kNestedPolicyList = "lww, prefer, max, min, sum, union, manual";
constexpr std::pair<Policy, const char*> kPolicyNames[] = {
    {Policy::kLww, "lww"},     {Policy::kPrefer, "prefer"}, {Policy::kMax, "max"},
    {Policy::kMin, "min"},     {Policy::kSum, "sum"},       {Policy::kUnion, "union"},
    {Policy::kMerge, "merge"}, {Policy::kManual, "manual"}};

class Parser final : public TomlReader {
 public:
  Parser(std::string file, Config* config)
      : TomlReader(std::move(file), fs::path(config->path).parent_path()), config_(config) {}

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
    // A set (a document) is one field's form (its separator, its column type); a collection's
    // other fields (numbers, names) are no sets (documents), so union and merge are set per
    // field.
    if (c.default_policy.policy == Policy::kUnion || c.default_policy.policy == Policy::kMerge) {
      const toml::node* pn = t->get("policy");
      const char* name = PolicyName(c.default_policy.policy);
      return Error(
          LineOf(pn->source()),
          fmt::format("{}: policy '{}' is set per field, not for a whole collection", where, name),
          fmt::format("write fields.NAME = {{ policy = \"{}\" }} for each field holding "
                      "a {}",
                      name, c.default_policy.policy == Policy::kUnion ? "set" : "JSON document"));
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
        DUPLEX_RETURN_IF_ERROR(
            CheckKeys(*ft, {"policy", "endpoint", "separator", "merge_policy"}, fwhere));
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
    const toml::node* mn = t.get("merge_policy");
    if (mn) {
      if (out->policy != Policy::kMerge) {
        return Error(LineOf(mn->source()),
                     fmt::format("{}: merge_policy is only used with policy \"merge\"", where),
                     "remove merge_policy, or set policy = \"merge\"");
      }
      std::optional<std::string_view> name = mn->value<std::string_view>();
      auto it = std::find_if(std::begin(kPolicyNames), std::end(kPolicyNames),
                             [&](const auto& p) { return name && *name == p.second; });
      if (it == std::end(kPolicyNames) || it->first == Policy::kMerge) {
        return Error(LineOf(mn->source()),
                     !name ? fmt::format("{}: merge_policy must be a string", where)
                     : it == std::end(kPolicyNames)
                         ? fmt::format("{}: unknown merge_policy '{}'", where, *name)
                         : fmt::format("{}: merge_policy cannot be 'merge' (it decides the "
                                       "paths both sides changed)",
                                       where),
                     fmt::format("valid merge policies: {}", kNestedPolicyList));
      }
      out->merge_policy = it->first;
    }
    // prefer, or merge deciding same-path conflicts by prefer, names the preferred endpoint.
    const bool prefers = out->policy == Policy::kPrefer ||
                         (out->policy == Policy::kMerge && out->merge_policy == Policy::kPrefer);
    std::vector<std::string> members;
    for (const CollectionEndpoint& ce : c.endpoints) members.push_back(ce.endpoint);
    if (prefers && !en) {
      return Error(
          LineOf((mn ? mn : pn)->source()),
          fmt::format("{}: {} 'prefer' needs an endpoint", where, mn ? "merge_policy" : "policy"),
          fmt::format("add endpoint = \"NAME\" naming one of: {}", Join(members)));
    }
    if (!en) return Status::Ok();
    if (!prefers) {
      return Error(LineOf(en->source()),
                   fmt::format("{}: endpoint is only used with policy \"prefer\" (or "
                               "merge_policy \"prefer\")",
                               where),
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

  Config* config_;
};

}  // namespace

const char* PolicyName(Policy p) {
  for (const auto& [policy, name] : kPolicyNames) {
    if (policy == p) return name;
  }
  return "unknown";
}

Status ParseConfigDocument(const toml::table& root, const std::string& file, Config* config) {
  Parser parser(file, config);
  return parser.Parse(root);
}

}  // namespace duplex
