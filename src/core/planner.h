#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "duplex/change.h"

namespace duplex {

// A foreign key between collections, in canonical names: `fields` of `child` hold the key of
// a record of `parent` (its key fields `parent_key`, in the same order).
struct Reference {
  std::string child;
  std::vector<std::string> fields;
  std::string parent;
  std::vector<std::string> parent_key;
  // Endpoints that check this constraint per statement (PostgreSQL NOT DEFERRABLE): there a
  // cycle is broken by writing the reference empty first and setting it later in the same
  // transaction. Elsewhere the check waits for the commit.
  std::set<std::string> immediate_on;
};

// The planner's ordering step (DESIGN §5, P7): within each source transaction of a target
// batch, a parent row is written before the rows that reference it, and rows that stop
// referencing a parent (deleted, or moved to another) are written before the parent's
// delete. Writes to one record keep their order. Pure: no I/O.
class Planner {
 public:
  // `key_fields`: each collection's key fields in the config's order (the one spelling of a
  // record, RecordKeyOf).
  Planner(std::vector<Reference> references,
          std::map<std::string, std::vector<std::string>> key_fields);

  const std::vector<Reference>& references() const { return refs_; }

  // Reorders `ops`, one batch for `target`, in place. Ops with equal RowOp::txn are contiguous
  // and stay so. A cycle (rows referencing each other, or a self-referencing row pair) is
  // written in its original order where `target` defers the constraint; where it checks per
  // statement, the row is inserted with the reference empty and an update sets it once the
  // parent is written; a deleted cycle there gets an update emptying one row's references to
  // the other deleted rows first, and that row's delete then expects them empty.
  void Order(const std::string& target, std::vector<RowOp>& ops) const;

  // `collections` with every referenced collection before those referencing it; otherwise in
  // the given order (and in the given order within a cycle).
  std::vector<std::string> DependencyOrder(const std::vector<std::string>& collections) const;

  // For a write to `op.collection`: each parent record its new values refer to (`after`) or
  // its expected (old) values referred to (`before`), named as RecordOf names them.
  std::vector<std::string> ParentsOf(const RowOp& op, bool after) const;

  // Whether `collection` refers to another or is referred to.
  bool Involves(const std::string& collection) const { return involved_.count(collection) > 0; }

  // The key of the parent record `values` (a child's fields, some or all) refer to through
  // `r`, or nullopt if one of its fields is missing or null (no reference).
  static std::optional<Row> ParentKeyRow(const Reference& r, const Row& values);

  // The name of the record `op` writes: RecordKeyOf(...).ToString() ("customer\n[1]"), as
  // the rest of the engine names it. A collection the planner has no key fields of (one no
  // longer in the config, its writes still parked) has its key fields in the key's own order.
  std::string RecordOf(const RowOp& op) const;

 private:
  void OrderTxn(const std::string& target, std::vector<RowOp>& ops, size_t begin, size_t end,
                std::vector<RowOp>& out) const;

  std::vector<Reference> refs_;
  std::map<std::string, std::vector<std::string>> key_fields_;  // collection -> its key fields
  std::map<std::string, std::vector<size_t>> by_child_;         // child collection -> refs_ indexes
  std::set<std::string> involved_;                              // children and parents
};

}  // namespace duplex
