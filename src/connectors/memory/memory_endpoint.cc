#include "connectors/memory/memory_endpoint.h"

#include <algorithm>
#include <set>
#include <utility>

#include "connectors/binding.h"
#include "util/json_value.h"

namespace duplex::memory {

MemoryEndpoint::MemoryEndpoint(std::string name, double clock_ms)
    : name_(std::move(name)), clock_ms_(clock_ms) {}

void MemoryEndpoint::DeclareTable(const TableInfo& info) {
  TableInfo t = info;
  t.exists = true;
  schema_[t.name] = t;
  rows_[t.name];
}

const TableInfo* MemoryEndpoint::Table(const std::string& table) const {
  auto it = schema_.find(table);
  return it == schema_.end() ? nullptr : &it->second;
}

std::vector<std::string> MemoryEndpoint::KeyColumns(const std::string& table) const {
  const TableInfo* info = Table(table);
  std::vector<std::pair<int, std::string>> pk;
  if (info) {
    for (const ColumnInfo& c : info->columns) {
      if (c.pk > 0) pk.emplace_back(c.pk, c.name);
    }
  }
  std::sort(pk.begin(), pk.end());
  std::vector<std::string> out;
  for (auto& [pos, name] : pk) out.push_back(name);
  return out;
}

std::string MemoryEndpoint::KeyText(const std::string& table, const Row& row) const {
  Value arr = Value::array();
  for (const std::string& k : KeyColumns(table)) {
    auto it = row.is_object() ? row.find(k) : row.end();
    Value v = (!row.is_object() || it == row.end()) ? Value() : *it;
    // Spell 2 and 2.0 the same way (SQLite's integer key).
    if (v.is_number_float() &&
        static_cast<double>(static_cast<int64_t>(v.get<double>())) == v.get<double>()) {
      v = static_cast<int64_t>(v.get<double>());
    }
    if (v.is_number_unsigned()) v = static_cast<int64_t>(v.get<uint64_t>());
    arr.push_back(v);
  }
  return arr.dump();
}

Row MemoryEndpoint::Image(const std::string& table, const Row& row) const {
  Row out = Row::object();
  auto it = captured_.find(table);
  if (it == captured_.end()) return out;
  for (const std::string& c : it->second) {
    auto v = row.find(c);
    out[c] = v == row.end() ? Value() : *v;
  }
  return out;
}

void MemoryEndpoint::Log(const std::string& table, char op, const Row& old_row,
                         const Row& new_row) {
  if (!installed_ || !captured_.count(table)) return;  // no trigger
  LogEntry e;
  e.seq = ++next_seq_;
  e.table = table;
  e.op = op;
  if (op != 'I') e.old_image = Image(table, old_row);
  if (op != 'D') e.new_image = Image(table, new_row);
  if (op == 'U' && e.old_image == e.new_image) {
    --next_seq_;  // the update trigger requires a captured column to differ
    return;
  }
  e.at = CommitTime();
  e.pk = KeyText(table, op == 'D' ? old_row : new_row);
  e.txn = CurrentTxn();
  SourceTxn& txn = source_txns_[e.txn];
  txn.at = e.at;
  txn.rows.emplace(table, e.pk);
  changelog_.push_back(std::move(e));
  ++log_version_;
}

bool MemoryEndpoint::Insert(const std::string& table, const Row& row) {
  const TableInfo* info = Table(table);
  if (!info) return false;
  std::string key = KeyText(table, row);
  auto& rows = rows_[table];
  if (rows.count(key)) return false;
  Row full = Row::object();
  for (const ColumnInfo& c : info->columns) {
    auto it = row.find(c.name);
    full[c.name] = it == row.end() ? Value() : *it;
  }
  if (!CheckForeignKeys(table, key, full).empty()) return false;
  rows[key] = full;
  mtime_[table][key] = CommitTime();
  Log(table, 'I', Row(), full);
  return true;
}

bool MemoryEndpoint::Update(const std::string& table, const Row& key, const Row& changes) {
  auto& rows = rows_[table];
  auto it = rows.find(KeyText(table, key));
  if (it == rows.end()) return false;
  Row new_row = it->second;
  for (const auto& item : changes.items()) {
    if (new_row.contains(item.key())) new_row[item.key()] = item.value();
  }
  if (!CheckForeignKeys(table, it->first, new_row).empty()) return false;
  Row old_row = std::move(it->second);
  it->second = new_row;
  mtime_[table][it->first] = CommitTime();
  Log(table, 'U', old_row, it->second);
  return true;
}

bool MemoryEndpoint::Delete(const std::string& table, const Row& key) {
  auto& rows = rows_[table];
  auto it = rows.find(KeyText(table, key));
  if (it == rows.end()) return false;
  if (!CheckForeignKeys(table, it->first, std::nullopt).empty()) return false;
  Row old_row = std::move(it->second);
  mtime_[table].erase(it->first);
  rows.erase(it);
  Log(table, 'D', old_row, Row());
  return true;
}

void MemoryEndpoint::Begin() {
  in_txn_ = true;
  txn_time_ = clock_ms_;
  txn_id_ = ++next_txn_;
}

std::string MemoryEndpoint::CheckForeignKeys(const std::string& table, const std::string& key_text,
                                             const std::optional<Row>& row) const {
  for (const ForeignKey& fk : fks_) {
    if (row && fk.table == table) {
      auto v = row->find(fk.column);
      if (v == row->end() || v->is_null()) continue;
      std::vector<std::string> pk = KeyColumns(fk.parent);
      if (pk.size() != 1) continue;
      Row parent_key = {{pk[0], *v}};
      auto parents = rows_.find(fk.parent);
      if (parents == rows_.end() || !parents->second.count(KeyText(fk.parent, parent_key))) {
        return "FOREIGN KEY constraint failed: " + table + " " + key_text + " references " +
               fk.parent + " " + v->dump() + ", which is absent";
      }
    }
    if (!row && fk.parent == table) {
      auto children = rows_.find(fk.table);
      if (children == rows_.end()) continue;
      std::vector<std::string> pk = KeyColumns(fk.parent);
      for (const auto& [child_key, child] : children->second) {
        auto v = child.find(fk.column);
        if (v == child.end() || v->is_null() || pk.size() != 1) continue;
        if (KeyText(fk.parent, Row{{pk[0], *v}}) == key_text) {
          return "FOREIGN KEY constraint failed: deleting " + table + " " + key_text +
                 " referenced by " + fk.table + " " + child_key;
        }
      }
    }
  }
  return "";
}

std::string MemoryEndpoint::Orphans() const {
  for (const ForeignKey& fk : fks_) {
    auto children = rows_.find(fk.table);
    if (children == rows_.end()) continue;
    for (const auto& [key, child] : children->second) {
      std::string why = CheckForeignKeys(fk.table, key, child);
      if (!why.empty()) return why;
    }
  }
  return "";
}

bool MemoryEndpoint::RawPut(const std::string& table, const Row& row, double mtime) {
  std::string key = KeyText(table, row);
  auto& rows = rows_[table];
  auto it = rows.find(key);
  ++sync_writes_;
  bool same = it != rows.end() && it->second == row && Mtime(table, key) == mtime;
  if (same) ++noop_writes_;
  rows[key] = row;
  mtime_[table][key] = mtime;
  return !same;
}

double MemoryEndpoint::Mtime(const std::string& table, const std::string& key_text) const {
  auto t = mtime_.find(table);
  if (t == mtime_.end()) return 0;
  auto it = t->second.find(key_text);
  return it == t->second.end() ? 0 : it->second;
}

void MemoryEndpoint::Commit() { in_txn_ = false; }

std::optional<Row> MemoryEndpoint::Get(const std::string& table, const Row& key) const {
  auto t = rows_.find(table);
  if (t == rows_.end()) return std::nullopt;
  auto it = t->second.find(KeyText(table, key));
  if (it == t->second.end()) return std::nullopt;
  return it->second;
}

}  // namespace duplex::memory
