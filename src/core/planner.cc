#include "core/planner.h"

#include <algorithm>
#include <unordered_map>

#include "util/json_value.h"

namespace duplex {

namespace {

// The name of the parent record the child's values refer to through `r`, as RecordOf names it
// (empty if a field is missing or null: no reference). `r.parent_key` is the parent's key
// fields in the config's order.
std::string ParentKey(const Reference& r, const Row& values) {
  std::optional<Row> key = Planner::ParentKeyRow(r, values);
  return key ? RecordKeyOf(r.parent, *key, r.parent_key).ToString() : "";
}

}  // namespace

Planner::Planner(std::vector<Reference> references,
                 std::map<std::string, std::vector<std::string>> key_fields)
    : refs_(std::move(references)), key_fields_(std::move(key_fields)) {
  for (size_t i = 0; i < refs_.size(); ++i) {
    by_child_[refs_[i].child].push_back(i);
    involved_.insert(refs_[i].child);
    involved_.insert(refs_[i].parent);
  }
}

std::optional<Row> Planner::ParentKeyRow(const Reference& r, const Row& values) {
  if (!values.is_object()) return std::nullopt;
  Row key = Row::object();
  for (size_t i = 0; i < r.fields.size(); ++i) {
    auto it = values.find(r.fields[i]);
    if (it == values.end() || it->is_null()) return std::nullopt;
    key[r.parent_key[i]] = *it;
  }
  return key;
}

std::string Planner::RecordOf(const RowOp& op) const {
  auto it = key_fields_.find(op.collection);
  if (it != key_fields_.end()) return RecordKeyOf(op.collection, op.key, it->second).ToString();
  std::vector<std::string> own;
  if (op.key.is_object()) {
    for (const auto& [field, value] : op.key.items()) own.push_back(field);
  }
  return RecordKeyOf(op.collection, op.key, own).ToString();
}

std::vector<std::string> Planner::ParentsOf(const RowOp& op, bool after) const {
  std::vector<std::string> out;
  auto it = by_child_.find(op.collection);
  if (it == by_child_.end()) return out;
  for (size_t r : it->second) {
    std::string key = ParentKey(refs_[r], after ? op.values : op.expected);
    if (!key.empty()) out.push_back(std::move(key));
  }
  return out;
}

void Planner::Order(const std::string& target, std::vector<RowOp>& ops) const {
  if (refs_.empty() || ops.size() < 2) return;
  std::vector<RowOp> out;
  out.reserve(ops.size());
  for (size_t begin = 0, end = 0; begin < ops.size(); begin = end) {
    end = TxnEnd(ops, begin);
    OrderTxn(target, ops, begin, end, out);
  }
  ops = std::move(out);
}

void Planner::OrderTxn(const std::string& target, std::vector<RowOp>& ops, size_t begin, size_t end,
                       std::vector<RowOp>& out) const {
  bool any = false;
  for (size_t i = begin; i < end && !any; ++i) any = involved_.count(ops[i].collection) > 0;
  if (!any || end - begin < 2) {
    for (size_t i = begin; i < end; ++i) out.push_back(std::move(ops[i]));
    return;
  }
  struct InRef {
    size_t from;
    const Reference* ref;
  };
  struct Node {
    RowOp op;
    size_t rank = 0;  // position in the source order; ties go to the lower rank
    bool done = false;
    int waiting = 0;  // edges from nodes not yet written
    std::vector<size_t> next;
    std::vector<InRef> parents;   // inserts of the parents this node's new values refer to
    size_t same_next = SIZE_MAX;  // the next write to the same record
    size_t same_prev = SIZE_MAX;  // the previous write to the same record
    bool cleared = false;         // a delete whose references were cleared by an update
  };
  std::vector<Node> nodes;
  // An update of the record node `x` writes, in its unit and with its `seen` (values and
  // expected filled by the caller): what breaks a cycle on a per-statement constraint.
  auto update_of = [&nodes](size_t x, size_t rank) {
    Node f;
    f.op.op = WriteOp::kUpdate;
    f.op.collection = nodes[x].op.collection;
    f.op.key = nodes[x].op.key;
    f.op.values = Row::object();
    f.op.expected = Row::object();
    f.op.seen = nodes[x].op.seen;
    f.op.txn = nodes[x].op.txn;
    f.rank = rank;
    return f;
  };
  nodes.reserve(end - begin);
  for (size_t i = begin; i < end; ++i) {
    Node n;
    n.op = std::move(ops[i]);
    n.rank = 2 * (i - begin);
    nodes.push_back(std::move(n));
  }
  auto edge = [&](size_t from, size_t to) {
    nodes[from].next.push_back(to);
    ++nodes[to].waiting;
  };
  std::unordered_map<std::string, size_t> last;  // record -> its latest write so far
  std::unordered_map<std::string, std::vector<size_t>> inserts, leaving;
  std::vector<std::string> record(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    record[i] = RecordOf(nodes[i].op);
    auto [it, first] = last.emplace(record[i], i);
    if (!first) {
      edge(it->second, i);
      nodes[it->second].same_next = i;
      nodes[i].same_prev = it->second;
      it->second = i;
    }
    if (nodes[i].op.op == WriteOp::kInsert) inserts[record[i]].push_back(i);
    // A row that referred to a parent before this write and does not after it.
    for (const std::string& p : ParentsOf(nodes[i].op, /*after=*/false)) leaving[p].push_back(i);
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].op.op == WriteOp::kDelete) {
      auto it = leaving.find(record[i]);
      if (it == leaving.end()) continue;
      for (size_t c : it->second) {
        if (c != i) edge(c, i);
      }
      continue;
    }
    auto refs = by_child_.find(nodes[i].op.collection);
    if (refs == by_child_.end()) continue;
    for (size_t r : refs->second) {
      std::string parent = ParentKey(refs_[r], nodes[i].op.values);
      auto it = parent.empty() ? inserts.end() : inserts.find(parent);
      if (it == inserts.end()) continue;
      for (size_t p : it->second) {
        if (p == i) continue;
        edge(p, i);
        nodes[i].parents.push_back(InRef{p, &refs_[r]});
      }
    }
  }

  std::set<std::pair<size_t, size_t>> ready;  // (rank, node)
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].waiting == 0) ready.emplace(nodes[i].rank, i);
  }
  // For a delete `x` in a cycle: an update, ready now, that empties x's references to rows
  // deleted later in this transaction where `target` checks them per statement. Those deletes
  // wait for the update instead of x; x follows the update and expects the emptied fields
  // (RowOp::expected: the delete compares every field). False if nothing is to be cleared, or
  // an earlier write to x's record is still waiting (the update must follow it).
  auto clear_before_delete = [&](size_t x) {
    nodes[x].cleared = true;
    if (nodes[x].same_prev != SIZE_MAX && !nodes[nodes[x].same_prev].done) return false;
    auto refs = by_child_.find(nodes[x].op.collection);
    if (refs == by_child_.end()) return false;
    // (reference, delete of its parent waiting for x through it)
    std::vector<std::pair<const Reference*, size_t>> clear;
    for (size_t r : refs->second) {
      const Reference& ref = refs_[r];
      if (!ref.immediate_on.count(target)) continue;
      const std::string parent = ParentKey(ref, nodes[x].op.expected);
      // A row referring to itself is deleted in one statement: the check finds it gone.
      if (parent.empty() || parent == record[x]) continue;
      std::set<size_t> deletes;
      for (size_t n : nodes[x].next) {
        if (!nodes[n].done && nodes[n].op.op == WriteOp::kDelete &&
            RecordOf(nodes[n].op) == parent) {
          deletes.insert(n);
        }
      }
      for (size_t d : deletes) clear.emplace_back(&ref, d);
    }
    if (clear.empty()) return false;
    Node f = update_of(x, nodes[x].rank);
    f.same_prev = nodes[x].same_prev;
    f.same_next = x;
    nodes.push_back(std::move(f));
    const size_t fix = nodes.size() - 1;
    for (const auto& [ref, d] : clear) {
      // One edge per reference: x may refer to the same parent through several.
      std::vector<size_t>& next = nodes[x].next;
      auto it = std::find(next.begin(), next.end(), d);
      if (it == next.end()) continue;
      next.erase(it);
      --nodes[d].waiting;
      edge(fix, d);
      for (const std::string& field : ref->fields) {
        Value& v = nodes[x].op.expected[field];
        if (v.is_null()) continue;
        nodes[fix].op.values[field] = nullptr;
        nodes[fix].op.expected[field] = v;
        v = nullptr;
      }
    }
    nodes[x].same_prev = fix;
    edge(fix, x);
    ready.emplace(nodes[fix].rank, fix);
    return true;
  };
  size_t written = 0;
  while (written < nodes.size()) {
    if (ready.empty()) {
      // A cycle: take the earliest row still waiting.
      size_t x = SIZE_MAX;
      for (size_t i = 0; i < nodes.size(); ++i) {
        if (!nodes[i].done && (x == SIZE_MAX || nodes[i].rank < nodes[x].rank)) x = i;
      }
      // Where the target checks a reference per statement, a delete cannot go while a row
      // still refers to it: clear this row's references to rows deleted later with an update
      // now, which lets those go first, and delete this row after them.
      if (nodes[x].op.op == WriteOp::kDelete && !nodes[x].cleared && clear_before_delete(x)) {
        continue;
      }
      // Where the target checks a reference per statement, write it empty now and set it
      // with a follow-up update once the parent is written.
      if (nodes[x].op.op != WriteOp::kDelete) {
        size_t fix = SIZE_MAX;
        const std::vector<InRef> parents = nodes[x].parents;  // nodes grows below
        for (const InRef& in : parents) {
          if (nodes[in.from].done || !in.ref->immediate_on.count(target)) continue;
          if (fix == SIZE_MAX) {
            nodes.push_back(update_of(x, nodes[x].rank + 1));
            fix = nodes.size() - 1;
            edge(x, fix);
            if (nodes[x].same_next != SIZE_MAX) edge(fix, nodes[x].same_next);
          }
          for (const std::string& field : in.ref->fields) {
            Value& v = nodes[x].op.values[field];
            if (v.is_null()) continue;
            nodes[fix].op.values[field] = v;
            nodes[fix].op.expected[field] = nullptr;
            v = nullptr;
          }
          edge(in.from, fix);
          nodes[fix].rank = std::max(nodes[fix].rank, nodes[in.from].rank + 1);
        }
      }
      nodes[x].waiting = 0;
      ready.emplace(nodes[x].rank, x);
    }
    auto [rank, i] = *ready.begin();
    ready.erase(ready.begin());
    if (nodes[i].done) continue;
    nodes[i].done = true;
    ++written;
    for (size_t n : nodes[i].next) {
      if (!nodes[n].done && --nodes[n].waiting == 0) ready.emplace(nodes[n].rank, n);
    }
    out.push_back(nodes[i].op);
  }
}

std::vector<std::string> Planner::DependencyOrder(
    const std::vector<std::string>& collections) const {
  std::vector<std::string> out;
  std::vector<std::string> left = collections;
  auto blocked = [&](const std::string& c) {
    auto refs = by_child_.find(c);
    if (refs == by_child_.end()) return false;
    for (size_t r : refs->second) {
      const std::string& parent = refs_[r].parent;
      if (parent != c && std::find(left.begin(), left.end(), parent) != left.end()) return true;
    }
    return false;
  };
  while (!left.empty()) {
    // The first collection whose parents are all placed; in a cycle, the first one left.
    auto it =
        std::find_if(left.begin(), left.end(), [&](const std::string& c) { return !blocked(c); });
    if (it == left.end()) it = left.begin();
    out.push_back(*it);
    left.erase(it);
  }
  return out;
}

}  // namespace duplex
