#include "pipeline/schema_binding.h"

#include <algorithm>
#include <set>

#include "util/log.h"

namespace duplex {

namespace {

// What can clash between column kinds, whatever the system (ColumnKind): numbers against
// text. Decimals travel as numbers or exact text, times as text or numbers, binary and `any`
// as whatever the column holds: they go with either group.
enum class KindGroup { kNumber, kText, kEither };

KindGroup GroupOf(ColumnKind kind) {
  switch (kind) {
    case ColumnKind::kInteger:
    case ColumnKind::kReal:
    case ColumnKind::kBoolean:
      return KindGroup::kNumber;
    case ColumnKind::kText:
    case ColumnKind::kJson:
      return KindGroup::kText;
    case ColumnKind::kDecimal:
    case ColumnKind::kBinary:
    case ColumnKind::kTime:
    case ColumnKind::kAny:
      return KindGroup::kEither;
  }
  return KindGroup::kEither;
}

std::string Where(const Config& config, int line) {
  return config.shown_path + (line > 0 ? ":" + std::to_string(line) : std::string());
}

const CollectionModel* FindModel(const std::vector<CollectionModel>& models,
                                 const std::string& collection) {
  for (const CollectionModel& m : models) {
    if (m.config->name == collection) return &m;
  }
  return nullptr;
}

}  // namespace

Result<SyncModel> BindSchema(const Config& config, const DescribeTable& describe) {
  std::vector<Status> problems;
  SyncModel sync = BindSchemaAll(config, describe, &problems);
  if (!problems.empty()) return problems.front();
  return sync;
}

SyncModel BindSchemaAll(const Config& config, const DescribeTable& describe,
                        std::vector<Status>* problems) {
  // Every problem is noted and the binding goes on, so that `duplex check` can list them all;
  // a collection with a problem on one of its tables is left out of the model.
  auto problem = [&](Status st) { problems->push_back(std::move(st)); };
  SyncModel sync;
  std::map<std::string, std::vector<CollectionBinding>>& bindings = sync.bindings;
  // Foreign keys as the endpoints declare them, in canonical field names of the child.
  struct DeclaredKey {
    std::string endpoint, child;
    std::vector<std::string> fields;
    ForeignKeyInfo fk;
  };
  std::vector<DeclaredKey> declared;
  for (const CollectionConfig& cc : config.collections) {
    const std::string where = Where(config, cc.line) + ": collection '" + cc.name + "'";
    // canonical field -> (endpoint -> column), and the column's declared type and kind
    std::map<std::string, std::map<std::string, std::string>> columns;
    std::map<std::string, std::map<std::string, const ColumnInfo*>> types;
    std::vector<TableInfo> tables;  // owns what `types` points to
    tables.reserve(cc.endpoints.size());
    std::map<std::string, std::vector<std::string>> all_columns;
    bool bad = false;  // a table of this collection has a problem
    for (const CollectionEndpoint& ce : cc.endpoints) {
      const std::string at = where + ", endpoint '" + ce.endpoint + "', table '" + ce.table + "'";
      Result<TableInfo> described = describe(ce.endpoint, ce.table);
      if (!described.ok()) {
        problem(described.status());
        bad = true;
        continue;
      }
      tables.push_back(std::move(described).value());
      const TableInfo& info = tables.back();
      if (!info.exists) {
        problem(Status::InvalidArgument(at + ": no such table; create it or fix `table`"));
        bad = true;
        continue;
      }
      std::map<std::string, std::string> column_to_field;
      for (const auto& [field, column] : ce.fields) column_to_field[column] = field;
      std::set<std::string> have;
      for (const ColumnInfo& col : info.columns) have.insert(col.name);
      for (const auto& [field, column] : ce.fields) {
        if (!have.count(column)) {
          // The field is then simply not on every endpoint; the rest is checked on.
          problem(Status::InvalidArgument(at + ": `fields` maps '" + field + "' to column '" +
                                          column + "', which the table does not have"));
        }
      }
      std::set<std::string> pk;
      auto field_of = [&](const std::string& column) {
        auto it = column_to_field.find(column);
        return it == column_to_field.end() ? column : it->second;
      };
      for (const ColumnInfo& col : info.columns) {
        const std::string field = field_of(col.name);
        columns[field][ce.endpoint] = col.name;
        types[field][ce.endpoint] = &col;
        all_columns[ce.endpoint].push_back(col.name);
        if (col.pk > 0) pk.insert(field);
        if (cc.mapped_key && col.pk > 0 && !col.generated) {
          bad = true;
          problem(Status::InvalidArgument(
              at +
              ": key_mode = \"mapped\" needs a key the endpoint generates (SQLite "
              "INTEGER PRIMARY KEY, a PostgreSQL identity or serial column), and column '" +
              col.name + "' is not; use key_mode = \"shared\" or change the column"));
        }
      }
      for (const ForeignKeyInfo& fk : info.foreign_keys) {
        DeclaredKey d{ce.endpoint, cc.name, {}, fk};
        for (const std::string& c : fk.columns) d.fields.push_back(field_of(c));
        declared.push_back(std::move(d));
      }
      bool key_columns = true;
      for (const std::string& k : cc.key) {
        if (!columns.count(k) || !columns[k].count(ce.endpoint)) {
          problem(Status::InvalidArgument(at + ": key field '" + k +
                                          "' has no column; add it or map it with `fields`"));
          key_columns = false;
        }
      }
      if (!key_columns) {
        bad = true;
      } else if (pk != std::set<std::string>(cc.key.begin(), cc.key.end())) {
        problem(Status::InvalidArgument(
            at + ": the key [" + fmt::format("{}", fmt::join(cc.key, ", ")) +
            "] must be the table's PRIMARY KEY (it is [" + fmt::format("{}", fmt::join(pk, ", ")) +
            "]); change `key` or the table"));
        bad = true;
      }
    }
    if (bad) continue;
    CollectionModel model;
    model.config = &cc;
    SchemaReport::Collection report;
    report.config = &cc;
    report.name = cc.name;
    report.key = cc.key;
    std::set<std::string> key(cc.key.begin(), cc.key.end());
    for (const auto& [field, per_endpoint] : columns) {
      if (per_endpoint.size() != cc.endpoints.size()) continue;  // not on every endpoint
      const ColumnInfo* first = nullptr;
      std::string first_endpoint;
      for (const auto& [endpoint, col] : types[field]) {
        const KindGroup group = GroupOf(col->kind);
        if (group == KindGroup::kEither) continue;
        if (first == nullptr) {
          first = col;
          first_endpoint = endpoint;
        } else if (group != GroupOf(first->kind)) {
          problem(Status::InvalidArgument(fmt::format(
              "{}: type clash on field '{}': {} has '{}' ({}), {} has '{}' ({}); make the column "
              "types compatible or map another column with `fields`",
              where, field, first_endpoint, first->type, ColumnKindName(first->kind), endpoint,
              col->type, ColumnKindName(col->kind))));
          break;
        }
      }
      if (!key.count(field)) model.fields.push_back(field);
    }
    for (const auto& [field, rule] : cc.field_policies) {
      if (std::find(model.fields.begin(), model.fields.end(), field) == model.fields.end()) {
        problem(Status::InvalidArgument(where + ": `fields." + field +
                                        "` sets a policy, but no column '" + field +
                                        "' is synced (it must exist on every endpoint, under its "
                                        "mapped name)"));
      }
      // union reads each value as a set: an array (PostgreSQL arrays are kAny), JSON, or
      // delimited text; merge as a JSON document (json, jsonb, text). A number, time or binary
      // column holds neither.
      if (rule.policy != Policy::kUnion && rule.policy != Policy::kMerge) continue;
      const bool is_union = rule.policy == Policy::kUnion;
      for (const auto& [endpoint, col] : types[field]) {
        if (col->kind == ColumnKind::kText || col->kind == ColumnKind::kJson ||
            col->kind == ColumnKind::kAny) {
          continue;
        }
        problem(Status::InvalidArgument(fmt::format(
            "{}: field '{}' has policy \"{}\", but {} has column '{}' of type '{}' ({}), "
            "which holds no {}",
            where, field, PolicyName(rule.policy), endpoint, col->name, col->type,
            ColumnKindName(col->kind),
            is_union ? "set; union needs an array, JSON or text column (with separator for "
                       "delimited text)"
                     : "JSON document; merge needs a json, jsonb or text column")));
        break;
      }
    }
    report.synced = model.fields;
    for (const CollectionEndpoint& ce : cc.endpoints) {
      model.endpoints.push_back(ce.endpoint);
      CollectionBinding b;
      b.collection = cc.name;
      b.table = ce.table;
      b.key = cc.key;
      for (const std::string& k : cc.key) b.fields.emplace_back(k, ce.Column(k));
      for (const std::string& f : model.fields) b.fields.emplace_back(f, ce.Column(f));
      std::set<std::string> synced_cols;
      for (const auto& [f, c] : b.fields) synced_cols.insert(c);
      for (const std::string& c : all_columns[ce.endpoint]) {
        if (!synced_cols.count(c)) report.left_alone[ce.endpoint].push_back(c);
      }
      bindings[ce.endpoint].push_back(std::move(b));
    }
    sync.models.push_back(std::move(model));
    sync.report.collections.push_back(std::move(report));
  }
  // The references between collections: declared foreign keys onto a synced table's key, and
  // the config's `references`. A foreign key onto a table duplex does not sync, or onto
  // columns other than the key, orders nothing.
  std::vector<Reference> refs;
  auto add = [&](Reference r, const std::string& immediate_on) {
    for (Reference& have : refs) {
      if (have.child == r.child && have.parent == r.parent && have.fields == r.fields) {
        if (!immediate_on.empty()) have.immediate_on.insert(immediate_on);
        return;
      }
    }
    if (!immediate_on.empty()) r.immediate_on.insert(immediate_on);
    refs.push_back(std::move(r));
  };
  for (const DeclaredKey& d : declared) {
    const CollectionConfig* parent = nullptr;
    const CollectionEndpoint* parent_at = nullptr;
    for (const CollectionConfig& cc : config.collections) {
      for (const CollectionEndpoint& ce : cc.endpoints) {
        if (ce.endpoint == d.endpoint && ce.table == d.fk.ref_table) {
          parent = &cc;
          parent_at = &ce;
        }
      }
    }
    const CollectionModel* child = FindModel(sync.models, d.child);
    if (!parent || !child || d.fk.ref_columns.size() != parent->key.size()) continue;
    Reference r{d.child, {}, parent->name, parent->key, {}};
    for (const std::string& k : parent->key) {
      auto it = std::find(d.fk.ref_columns.begin(), d.fk.ref_columns.end(), parent_at->Column(k));
      if (it == d.fk.ref_columns.end()) break;
      const std::string& field = d.fields[static_cast<size_t>(it - d.fk.ref_columns.begin())];
      if (std::find(child->fields.begin(), child->fields.end(), field) == child->fields.end()) {
        break;  // not synced: duplex never writes it
      }
      r.fields.push_back(field);
    }
    if (r.fields.size() != parent->key.size()) continue;
    add(std::move(r), d.fk.deferrable ? "" : d.endpoint);
  }
  for (const CollectionConfig& cc : config.collections) {
    const CollectionModel* child = FindModel(sync.models, cc.name);
    if (!child) continue;  // left out above, for a problem already noted
    for (const auto& [field, parent] : cc.references) {
      if (std::find(child->fields.begin(), child->fields.end(), field) == child->fields.end()) {
        problem(Status::InvalidArgument(Where(config, cc.reference_lines.at(field)) +
                                        ": collection '" + cc.name + "': references." + field +
                                        " names a field that is not synced (it must be a column " +
                                        "on every endpoint, under its mapped name)"));
        continue;
      }
      const CollectionModel* parent_model = FindModel(sync.models, parent);
      if (!parent_model) continue;
      add(Reference{cc.name, {field}, parent, parent_model->config->key, {}}, "");
    }
  }
  // A reference to a collection with mapped keys is translated to the parent's key on the
  // target, which exists only once the parent is written: in a cycle, the row goes in with
  // the reference empty and an update sets it, whether the target could defer it or not.
  for (Reference& r : refs) {
    const CollectionModel* parent = FindModel(sync.models, r.parent);
    const CollectionModel* child = FindModel(sync.models, r.child);
    if (!parent || !child || !parent->config->mapped_key) continue;
    r.immediate_on.insert(child->endpoints.begin(), child->endpoints.end());
  }
  const Planner planner(refs, {});  // for DependencyOrder only: it names no records
  std::vector<std::string> names;
  for (const CollectionConfig& cc : config.collections) names.push_back(cc.name);
  const std::vector<std::string> order = planner.DependencyOrder(names);
  auto rank = [&](const std::string& c) { return std::find(order.begin(), order.end(), c); };
  for (const EndpointConfig& ep : config.endpoints) {
    std::vector<CollectionBinding>& bs = bindings[ep.name];
    // References to a collection with mapped keys travel as record ids, translated by the
    // endpoint like the keys themselves.
    for (CollectionBinding& b : bs) {
      for (const Reference& r : refs) {
        if (r.child != b.collection || r.fields.size() != 1) continue;
        const CollectionModel* parent = FindModel(sync.models, r.parent);
        if (parent && parent->config->mapped_key) b.mapped_refs[r.fields[0]] = r.parent;
      }
      const CollectionModel* self = FindModel(sync.models, b.collection);
      b.mapped_key = self && self->config->mapped_key;
    }
    // Parents first: the initial load then loads them first.
    std::stable_sort(bs.begin(), bs.end(), [&](const auto& x, const auto& y) {
      return rank(x.collection) < rank(y.collection);
    });
  }
  sync.references = std::move(refs);
  return sync;
}

}  // namespace duplex
