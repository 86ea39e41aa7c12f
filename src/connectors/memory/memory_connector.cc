#include "connectors/memory/memory_connector.h"

#include <algorithm>
#include <set>
#include <utility>

#include "connectors/binding.h"
#include "util/json_value.h"

namespace duplex::memory {

MemoryConnector::MemoryConnector(std::shared_ptr<MemoryEndpoint> endpoint)
    : ep_(std::move(endpoint)) {}

Status MemoryConnector::Open() {
  polled_ = false;
  return Status::Ok();
}

Status MemoryConnector::NotInstalled() const {
  return Status::InvalidArgument("endpoint '" + ep_->name() +
                                 "': change capture is not installed (run Install())");
}

Result<TableInfo> MemoryConnector::Describe(const std::string& table) {
  const TableInfo* info = ep_->Table(table);
  if (!info) {
    TableInfo none;
    none.name = table;
    return none;
  }
  TableInfo out = *info;
  // Tables are declared with SQL type names (MemoryEndpoint::DeclareTable): their kinds as
  // SQLite would read them.
  for (ColumnInfo& col : out.columns) col.kind = KindOfDeclaredType(col.type);
  out.foreign_keys.clear();
  for (const ForeignKey& fk : ep_->fks_) {
    if (fk.table != table) continue;
    // Checked on every statement (MemoryEndpoint::CheckForeignKeys): not deferrable.
    out.foreign_keys.push_back(
        ForeignKeyInfo{{fk.column}, fk.parent, ep_->KeyColumns(fk.parent), false});
  }
  return out;
}

Status MemoryConnector::Bind(std::vector<CollectionBinding> bindings) {
  DUPLEX_RETURN_IF_ERROR(ValidateBindings("endpoint '" + ep_->name() + "'", bindings));
  std::vector<BoundTable> tables;
  std::map<std::string, size_t> by_table, by_collection;
  for (CollectionBinding& b : bindings) {
    by_table.emplace(b.table, tables.size());
    by_collection.emplace(b.collection, tables.size());
    BoundTable t;
    for (const auto& [field, column] : b.fields) {
      t.column_of_field[field] = column;
      t.field_of_column[column] = field;
    }
    t.binding = std::move(b);
    tables.push_back(std::move(t));
  }
  tables_ = std::move(tables);
  by_table_ = std::move(by_table);
  by_collection_ = std::move(by_collection);
  return Status::Ok();
}

Result<bool> MemoryConnector::IsInstalled() {
  if (!ep_->installed_) return false;
  for (const BoundTable& t : tables_) {
    auto it = ep_->captured_.find(t.binding.table);
    if (it == ep_->captured_.end()) return false;
    std::vector<std::string> have = it->second, want;
    for (const auto& [f, c] : t.binding.fields) want.push_back(c);
    std::sort(have.begin(), have.end());
    std::sort(want.begin(), want.end());
    if (have != want) return false;
  }
  return true;
}

Status MemoryConnector::Install() {
  for (const BoundTable& t : tables_) {
    const TableInfo* info = ep_->Table(t.binding.table);
    std::string where = "endpoint '" + ep_->name() + "', table '" + t.binding.table + "'";
    if (!info) return Status::InvalidArgument(where + ": no such table");
    std::set<std::string> have;
    for (const ColumnInfo& c : info->columns) have.insert(c.name);
    for (const auto& [field, column] : t.binding.fields) {
      if (!have.count(column)) {
        return Status::InvalidArgument(where + ": column '" + column + "' does not exist");
      }
    }
    std::vector<std::string> key_cols;
    for (const std::string& k : t.binding.key) key_cols.push_back(t.column_of_field.at(k));
    if (key_cols != ep_->KeyColumns(t.binding.table)) {
      return Status::InvalidArgument(where + ": the key columns must be the primary key");
    }
  }
  ep_->installed_ = true;
  for (auto it = ep_->captured_.begin(); it != ep_->captured_.end();) {
    it = by_table_.count(it->first) ? std::next(it) : ep_->captured_.erase(it);
  }
  int64_t snapshot_txn = 0;
  for (const BoundTable& t : tables_) {
    const std::string& table = t.binding.table;
    std::vector<std::string> columns;
    for (const auto& [f, c] : t.binding.fields) columns.push_back(c);
    bool first = !ep_->captured_.count(table);
    ep_->captured_[table] = columns;
    if (first && snapshot_txn == 0) snapshot_txn = ++ep_->next_txn_;
    if (first) {
      // Every existing row becomes a snapshot insert, atomically with the "triggers".
      for (const auto& [key, row] : ep_->rows_[table]) {
        LogEntry e;
        e.seq = ++ep_->next_seq_;
        e.table = table;
        e.op = 'I';
        e.new_image = ep_->Image(table, row);
        e.snapshot = true;
        e.at = ep_->now_ms();
        e.pk = key;
        e.txn = snapshot_txn;  // the install's transaction
        ep_->changelog_.push_back(std::move(e));
      }
    }
  }
  ++ep_->log_version_;
  return Status::Ok();
}

Status MemoryConnector::Uninstall() {
  ep_->installed_ = false;
  ep_->captured_.clear();
  ep_->changelog_.clear();
  ep_->next_seq_ = 0;  // dropping an AUTOINCREMENT table drops its sqlite_sequence row
  ep_->applied_id_ = 0;
  ++ep_->log_version_;
  return Status::Ok();
}

Result<bool> MemoryConnector::Poll() {
  bool changed = !polled_ || ep_->log_version_ != polled_version_;
  polled_ = true;
  polled_version_ = ep_->log_version_;
  return changed;
}

Row MemoryConnector::MapImage(const BoundTable& t, const Row& image) const {
  Row out = Row::object();
  for (const auto& [field, column] : t.binding.fields) {
    auto it = image.find(column);
    if (it == image.end()) continue;
    out[field] = *it;
  }
  return out;
}

Row MemoryConnector::ToColumns(const BoundTable& t, const Row& fields) const {
  Row out = Row::object();
  if (!fields.is_object()) return out;
  for (const auto& item : fields.items()) {
    auto it = t.column_of_field.find(item.key());
    if (it != t.column_of_field.end()) out[it->second] = item.value();
  }
  return out;
}

Result<ChangeBatch> MemoryConnector::Capture(const Position& from_pos, size_t max_changes) {
  const int64_t from = from_pos.ToInt();
  ChangeBatch batch;
  batch.end = Position::FromInt(from);
  if (max_changes == 0) return batch;
  if (!ep_->installed_) return NotInstalled();
  auto it = std::upper_bound(ep_->changelog_.begin(), ep_->changelog_.end(), from,
                             [](int64_t p, const LogEntry& e) { return p < e.seq; });
  size_t read = 0;  // changelog rows read (the SQL LIMIT)
  for (; it != ep_->changelog_.end() && read < max_changes; ++it, ++read) {
    const LogEntry& e = *it;
    if (e.op == 'M') {
      Change c;
      c.op = Op::kMarker;
      c.txn = e.txn;
      c.apply_id = e.apply_id;
      c.position = Position::FromInt(e.seq);
      c.commit_ms = e.at;
      batch.changes.push_back(std::move(c));
      batch.end = Position::FromInt(e.seq);
      continue;
    }
    auto bound = by_table_.find(e.table);
    if (bound == by_table_.end()) {
      batch.end = Position::FromInt(e.seq);  // a table no longer bound
      continue;
    }
    const BoundTable& t = tables_[bound->second];
    Change c;
    c.collection = t.binding.collection;
    c.position = Position::FromInt(e.seq);
    c.commit_ms = e.at;
    c.txn = e.txn;
    if (e.op == 'R') {
      c.op = Op::kRejected;
      c.apply_id = e.apply_id;
      c.key = MapImage(t, e.old_image);
      if (!e.new_image.is_null()) c.after = MapImage(t, e.new_image);
      batch.changes.push_back(std::move(c));
      batch.end = Position::FromInt(e.seq);
      continue;
    }
    c.op = static_cast<Op>(e.op);
    c.snapshot = e.snapshot;
    if (e.op == 'D' || (e.op == 'U' && ep_->update_before_images && !ep_->rest_like)) {
      c.before = MapImage(t, e.old_image);
    }
    if (e.op != 'D') c.after = MapImage(t, e.new_image);
    const Row& key_image = e.op == 'D' ? c.before : c.after;
    c.key = Row::object();
    for (const std::string& k : t.binding.key) {
      auto kv = key_image.find(k);
      c.key[k] = kv == key_image.end() ? Value() : *kv;
    }
    // (The simulation never changes a key, so no update becomes delete + insert here.)
    batch.changes.push_back(std::move(c));
    batch.end = Position::FromInt(e.seq);
  }
  return batch;
}

Result<int64_t> MemoryConnector::Backlog(const Position& from_pos) {
  const int64_t from = from_pos.ToInt();
  int64_t n = 0;
  for (const LogEntry& e : ep_->changelog_) n += e.seq > from ? 1 : 0;
  return n;
}

Status MemoryConnector::Ack(const Position& upto_pos) {
  const int64_t upto = upto_pos.ToInt();
  auto& log = ep_->changelog_;
  size_t n = 0;
  while (n < log.size() && log[n].seq <= upto) ++n;
  log.erase(log.begin(), log.begin() + static_cast<std::ptrdiff_t>(n));
  return Status::Ok();
}

Result<int64_t> MemoryConnector::AppliedId() { return ep_->applied_id_; }

bool MemoryConnector::ChangedSince(const BoundTable& t, const RowOp& op) const {
  std::string pk = ep_->KeyText(t.binding.table, ToColumns(t, op.key));
  for (auto it = ep_->changelog_.rbegin();
       it != ep_->changelog_.rend() && it->seq > op.seen.ToInt(); ++it) {
    if (it->table == t.binding.table && it->pk == pk &&
        (it->op == 'I' || it->op == 'U' || it->op == 'D')) {
      return true;
    }
  }
  return false;
}

Result<bool> MemoryConnector::ApplyOne(const BoundTable& t, const RowOp& op) {
  const std::string& table = t.binding.table;
  std::string where = "endpoint '" + ep_->name() + "', table '" + table + "', key " + op.key.dump();
  if (!op.values.is_null() && !op.values.is_object()) {
    return Status::Refused(where + ": values must be a JSON object");
  }
  if (!op.expected.is_null() && !op.expected.is_object()) {
    return Status::Refused(where + ": expected must be a JSON object");
  }
  for (const std::string& k : t.binding.key) {
    if (!op.key.is_object() || !op.key.contains(k)) {
      return Status::Refused(where + ": key field '" + k + "' is missing");
    }
  }
  auto check_fields = [&](const Row& obj) -> Status {
    if (!obj.is_object()) return Status::Ok();
    for (const auto& item : obj.items()) {
      if (!t.column_of_field.count(item.key())) {
        return Status::Refused(where + ": field '" + item.key() +
                               "' is not mapped to a column of this table");
      }
    }
    return Status::Ok();
  };
  if (Status s = check_fields(op.values); !s.ok()) return s;
  if (Status s = check_fields(op.expected); !s.ok()) return s;

  Row key_cols = ToColumns(t, op.key);
  std::string key = ep_->KeyText(table, key_cols);
  auto& rows = ep_->rows_[table];
  auto it = rows.find(key);
  if (op.op == WriteOp::kInsert) {
    if (it != rows.end()) return false;  // ON CONFLICT(key) DO NOTHING
    Row full = Row::object();
    for (const ColumnInfo& c : ep_->Table(table)->columns) full[c.name] = Value();
    for (const auto& item : key_cols.items()) full[item.key()] = item.value();
    if (op.values.is_object()) {
      for (const auto& item : op.values.items()) {
        const std::string& col = t.column_of_field.at(item.key());
        if (!key_cols.contains(col)) full[col] = item.value();
      }
    }
    if (std::string why = ep_->CheckForeignKeys(table, key, full); !why.empty()) {
      return Status::Refused(where + ": " + why);
    }
    rows[key] = std::move(full);
    ep_->mtime_[table][key] = ep_->now_ms();
    ++ep_->sync_writes_;
    return true;
  }
  if (it == rows.end()) return false;
  if (op.expected.is_object()) {
    for (const auto& item : op.expected.items()) {
      auto have = it->second.find(t.column_of_field.at(item.key()));
      Value none;
      if (!ValuesEqual(have == it->second.end() ? none : *have, item.value())) return false;
    }
  }
  ++ep_->sync_writes_;
  if (op.op == WriteOp::kDelete) {
    if (std::string why = ep_->CheckForeignKeys(table, key, std::nullopt); !why.empty()) {
      return Status::Refused(where + ": " + why);
    }
    ep_->mtime_[table].erase(key);
    rows.erase(it);
    return true;
  }
  Row row = it->second;
  if (op.values.is_object()) {
    for (const auto& item : op.values.items()) {
      if (std::find(t.binding.key.begin(), t.binding.key.end(), item.key()) !=
          t.binding.key.end()) {
        continue;  // keys change by delete + insert
      }
      row[t.column_of_field.at(item.key())] = item.value();
    }
  }
  if (std::string why = ep_->CheckForeignKeys(table, key, row); !why.empty()) {
    return Status::Refused(where + ": " + why);
  }
  if (row == it->second) ++ep_->noop_writes_;
  it->second = std::move(row);
  ep_->mtime_[table][key] = ep_->now_ms();
  return true;  // SQLite counts a matched row even when nothing changed
}

Status MemoryConnector::ApplyCounted(const RowOp& op, int64_t batch_id, ApplyResult& result) {
  auto bound = by_collection_.find(op.collection);
  if (bound == by_collection_.end()) {
    return Status::InvalidArgument("endpoint '" + ep_->name() + "': collection '" + op.collection +
                                   "' is not bound to this endpoint");
  }
  const BoundTable& t = tables_[bound->second];
  bool applied = false;
  if (!ChangedSince(t, op)) {
    DUPLEX_ASSIGN_OR_RETURN(applied, ApplyOne(t, op));
  }
  if (applied) {
    ++result.applied;
    ep_->last_apply_.push_back(AppliedWrite{t.binding.table,
                                            ep_->KeyText(t.binding.table, ToColumns(t, op.key)),
                                            op.source, op.source_commit_ms, op.txn});
    return Status::Ok();
  }
  ++result.rejected;
  ++ep_->rejected_writes_;
  LogEntry e;
  e.seq = ++ep_->next_seq_;
  e.table = t.binding.table;
  e.op = 'R';
  e.old_image = ToColumns(t, op.key);
  std::optional<Row> actual = ep_->Get(t.binding.table, e.old_image);
  if (actual) e.new_image = ep_->Image(t.binding.table, *actual);
  e.apply_id = batch_id;
  e.at = ep_->now_ms();
  e.txn = -batch_id;
  ep_->changelog_.push_back(std::move(e));
  return Status::Ok();
}

Capabilities MemoryConnector::capabilities() const {
  Capabilities caps;
  if (ep_->rest_like) {
    caps.transactional_apply = false;
    caps.markers = false;
    caps.atomic_applied_id = false;
    caps.before_images = false;
    caps.compare_and_set = false;
  } else {
    caps.before_images = ep_->update_before_images;
  }
  caps.max_apply_rows = ep_->max_apply_rows;
  caps.min_poll_interval = ep_->min_poll_interval;
  caps.apply_hold = ep_->apply_hold;
  return caps;
}

Result<ApplyResult> MemoryConnector::ApplyUnconditionally(const std::vector<ApplyBatch>& batches) {
  ApplyResult result;
  for (const ApplyBatch& batch : batches) {
    for (const RowOp& op : batch.ops) {
      auto bound = by_collection_.find(op.collection);
      if (bound == by_collection_.end()) {
        return Status::InvalidArgument("endpoint '" + ep_->name() + "': collection '" +
                                       op.collection + "' is not bound to this endpoint");
      }
      const BoundTable& t = tables_[bound->second];
      const std::string& table = t.binding.table;
      Row key_cols = ToColumns(t, op.key);
      const std::string key = ep_->KeyText(table, key_cols);
      auto& rows = ep_->rows_[table];
      auto it = rows.find(key);
      std::optional<Row> before;
      if (it != rows.end()) before = it->second;
      std::optional<Row> after;
      if (!before && op.op != WriteOp::kInsert) {
        // Already gone (nothing to delete, nothing to update): no change to capture.
        result.no_effect.push_back(NoEffect{batch.id, op});
        continue;
      }
      if (op.op != WriteOp::kDelete) {
        Row row = before.value_or(Row::object());
        if (!before) {
          for (const ColumnInfo& c : ep_->Table(table)->columns) row[c.name] = Value();
          for (const auto& item : key_cols.items()) row[item.key()] = item.value();
        }
        if (op.values.is_object()) {
          for (const auto& item : op.values.items()) {
            auto col = t.column_of_field.find(item.key());
            if (col == t.column_of_field.end() || key_cols.contains(col->second)) continue;
            row[col->second] = item.value();
          }
        }
        after = std::move(row);
      }
      if (std::string why = ep_->CheckForeignKeys(table, key, after); !why.empty()) {
        // Refused alone: the writes before it stay, the ones after it go on.
        result.failed.push_back(FailedOp{batch.id,
                                         op.txn,
                                         {op},
                                         "endpoint '" + ep_->name() + "', table '" + table +
                                             "', key " + op.key.dump() + ": " + why});
        continue;
      }
      ++ep_->sync_writes_;
      ++result.applied;
      if (after) {
        rows[key] = *after;
        ep_->mtime_[table][key] = ep_->now_ms();
      } else {
        rows.erase(key);
        ep_->mtime_[table].erase(key);
      }
      ep_->last_apply_.push_back(AppliedWrite{table, key, op.source, op.source_commit_ms, op.txn});
      // Its trigger logs it like any write: there is no marker.
      if (!ep_->captured_.count(table)) continue;
      LogEntry e;
      e.table = table;
      e.op = !before ? 'I' : after ? 'U' : 'D';
      if (before) e.old_image = ep_->Image(table, *before);
      if (after) e.new_image = ep_->Image(table, *after);
      if (e.op == 'U' && e.old_image == e.new_image) continue;
      e.seq = ++ep_->next_seq_;
      e.at = ep_->now_ms();
      e.pk = key;
      e.txn = ++ep_->next_txn_;  // its own commit
      ep_->changelog_.push_back(std::move(e));
      ++ep_->log_version_;
    }
  }
  return result;
}

Result<ApplyResult> MemoryConnector::Apply(const std::vector<ApplyBatch>& batches,
                                           bool isolate_txns) {
  ApplyResult result;
  ep_->last_apply_.clear();
  if (batches.empty()) return result;
  if (!ep_->installed_) return NotInstalled();
  if (ep_->rest_like) return ApplyUnconditionally(batches);
  // What a rollback (of the whole call, or of one source transaction in it) puts back.
  struct Saved {
    std::map<std::string, std::map<std::string, Row>> rows;
    std::vector<LogEntry> log;
    std::map<std::string, std::map<std::string, double>> mtime;
    int64_t seq, noop, writes, rejected_writes;
    size_t applied, rejected, last_apply;
  };
  auto save = [&] {
    return Saved{ep_->rows_,        ep_->changelog_,        ep_->mtime_,           ep_->next_seq_,
                 ep_->noop_writes_, ep_->sync_writes_,      ep_->rejected_writes_, result.applied,
                 result.rejected,   ep_->last_apply_.size()};
  };
  auto restore = [&](Saved& v) {
    ep_->rows_ = std::move(v.rows);
    ep_->changelog_ = std::move(v.log);
    ep_->mtime_ = std::move(v.mtime);
    ep_->next_seq_ = v.seq;
    ep_->noop_writes_ = v.noop;
    ep_->sync_writes_ = v.writes;
    ep_->rejected_writes_ = v.rejected_writes;
    result.applied = v.applied;
    result.rejected = v.rejected;
    ep_->last_apply_.resize(v.last_apply);
  };
  // All or nothing: work on the endpoint's state and put it back on any error.
  Saved call = save();

  int64_t last = ep_->applied_id_;
  bool any = false;
  for (const ApplyBatch& batch : batches) {
    if (batch.id <= last) {
      ++result.skipped_batches;
      continue;
    }
    any = true;
    if (!isolate_txns) {
      for (const RowOp& op : batch.ops) {
        if (Status s = ApplyCounted(op, batch.id, result); !s.ok()) {
          restore(call);
          return s;
        }
      }
      last = batch.id;
      continue;
    }
    // One savepoint per source transaction (the ops with one RowOp::txn), in the order
    // their first op comes; a refused one is rolled back whole, the others stay.
    std::vector<int64_t> order;
    std::map<int64_t, std::vector<const RowOp*>> units;
    for (const RowOp& op : batch.ops) {
      auto [it, fresh] = units.try_emplace(op.txn);
      if (fresh) order.push_back(op.txn);
      it->second.push_back(&op);
    }
    for (int64_t txn : order) {
      Saved savepoint = save();
      for (const RowOp* op : units[txn]) {
        Status s = ApplyCounted(*op, batch.id, result);
        if (s.ok()) continue;
        if (!s.IsRefused()) {
          restore(call);
          return s;
        }
        restore(savepoint);
        std::vector<RowOp> ops;
        for (const RowOp* o : units[txn]) ops.push_back(*o);
        result.failed.push_back(FailedOp{batch.id, txn, std::move(ops), s.message()});
        break;
      }
    }
    last = batch.id;
  }
  if (!any) {
    restore(call);
    return result;
  }
  LogEntry marker;
  marker.seq = ++ep_->next_seq_;
  marker.op = 'M';
  marker.apply_id = last;
  marker.at = ep_->now_ms();
  marker.txn = -last;
  ep_->changelog_.push_back(std::move(marker));
  ep_->applied_id_ = last;
  ++ep_->apply_commits_;
  ++ep_->log_version_;
  return result;
}

}  // namespace duplex::memory
