#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/planner.h"
#include "core/resolver.h"
#include "duplex/connector.h"
#include "duplex/result.h"

// Schema binding (docs/DESIGN.md §2, §5 "References and order"): the config and each endpoint's
// tables give the sync model. Pure: the tables come from `describe`, nothing else is read or
// written.
namespace duplex {

// What `duplex check` prints: per collection, the synced fields and the columns left alone.
struct SchemaReport {
  struct Collection {
    const CollectionConfig* config = nullptr;  // points into the config bound
    std::string name;
    std::vector<std::string> key;
    std::vector<std::string> synced;  // canonical non-key fields synced on every endpoint
    // endpoint -> columns of its table that are not synced
    std::map<std::string, std::vector<std::string>> left_alone;
  };
  std::vector<Collection> collections;
};

// The sync model: what the resolver, the planner and each connector are given.
struct SyncModel {
  std::vector<CollectionModel> models;  // config order; point into the config bound
  // Declared foreign keys onto a synced table's key, and the config's `references`.
  std::vector<Reference> references;
  // endpoint -> its bindings (Connector::Bind), parents first; every endpoint of the config
  // has an entry, empty if it syncs no collection.
  std::map<std::string, std::vector<CollectionBinding>> bindings;
  SchemaReport report;
};

// The table `table` of endpoint `endpoint` (Connector::Describe).
using DescribeTable =
    std::function<Result<TableInfo>(const std::string& endpoint, const std::string& table)>;

// Checks `config` against the endpoints' tables, in config order, and builds the sync model.
// A missing table or column, a key that is not the table's primary key, a policy or reference
// for a field that is not synced, or a type clash is InvalidArgument naming the config line,
// endpoint, table and column; an error of `describe` is returned as is. The model points into
// `config`, which must outlive it.
Result<SyncModel> BindSchema(const Config& config, const DescribeTable& describe);

// The same, going on past a problem: appends every problem found to `*problems` (a table that
// cannot be described, one missing, a column, a key, a type clash, a policy or reference for a
// field not synced) and returns the model of the collections that bound without one. What
// `duplex check` uses to list every problem at once.
SyncModel BindSchemaAll(const Config& config, const DescribeTable& describe,
                        std::vector<Status>* problems);

}  // namespace duplex
