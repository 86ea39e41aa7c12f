#include "connectors/postgres/applier.h"

#include <algorithm>
#include <optional>
#include <tuple>

#include "connectors/postgres/pg_types.h"
#include "connectors/postgres/txn_guard.h"
#include "util/json_value.h"

namespace duplex::pg {

namespace {

// Types without an equality operator: compared as text.
bool CompareAsText(Oid oid) {
  return oid == 114 /* json */ || oid == 142 /* xml */ || (oid >= 600 && oid <= 604) ||
         oid == 628 /* line */ || oid == 718 /* circle */;
}

}  // namespace

Result<Applier::OpStmt*> Applier::Statement(const BoundTable& t, const RowOp& op) {
  std::string shape;
  shape += static_cast<char>(op.op);
  shape += t.binding.collection + '\x1f';
  if (op.values.is_object()) {
    for (const auto& item : op.values.items()) shape += item.key() + '\x1e';
  }
  shape += '\x1f';
  if (op.expected.is_object()) {
    for (const auto& item : op.expected.items()) shape += item.key() + '\x1e';
  }
  auto hit = stmts_.find(shape);
  if (hit != stmts_.end()) return &hit->second;

  const std::string where = ep_.Where(t.binding.table) + ", key " + op.key.dump();
  OpStmt out;
  using Source = OpStmt::Source;
  int n = 0;
  auto param = [&](Source s, const std::string& field) -> Result<std::string> {
    auto c = t.column_of_field.find(field);
    if (c == t.column_of_field.end()) {
      return Status::Refused(where + ": field '" + field + "' is not mapped to a column");
    }
    out.params.emplace_back(s, field);
    // A reference to a record this endpoint lacks cannot be written; a key it lacks is a row
    // that is absent (the write is rejected).
    const bool refuse = s != Source::kKey && t.binding.mapped_refs.count(field) > 0;
    return keys_.ValueSql(t, field, Placeholder(++n), refuse);
  };
  auto column = [&](const std::string& field) { return QuoteIdent(t.column_of_field.at(field)); };
  std::vector<std::string> cond;
  if (op.op != WriteOp::kInsert) {
    for (const std::string& k : t.binding.key) {
      DUPLEX_ASSIGN_OR_RETURN(std::string p, param(Source::kKey, k));
      cond.push_back(column(k) + " = " + p);
    }
    if (op.expected.is_object()) {
      for (const auto& item : op.expected.items()) {
        DUPLEX_ASSIGN_OR_RETURN(std::string p, param(Source::kExpected, item.key()));
        const Oid oid = t.oid_of_column.at(t.column_of_field.at(item.key()));
        if (CompareAsText(oid)) {
          cond.push_back(column(item.key()) + "::text IS NOT DISTINCT FROM (" + p + ")::text");
        } else {
          cond.push_back(column(item.key()) + " IS NOT DISTINCT FROM " + p);
        }
      }
    }
  }
  // Trigger mode: the application changed the row after the position the write was planned
  // at (op.seen), so it must not overwrite that change (the log says so; logical mode checks
  // its stream instead, in Apply).
  std::string unseen;
  if (capture_.SeenInStatement()) {
    std::vector<std::string> key_params;
    for (const std::string& k : t.binding.key) {
      DUPLEX_ASSIGN_OR_RETURN(std::string p, param(Source::kKey, k));
      key_params.push_back("(" + p + ")::text");
    }
    out.params.emplace_back(Source::kSeen, "");
    ++n;
    unseen = capture_.UnseenSql(t, "jsonb_build_array(" + Join(key_params, ", ") + ")::text",
                                Placeholder(n));
  }
  std::string sql;
  const std::string table = ep_.Q(t.binding.table);
  switch (op.op) {
    case WriteOp::kInsert: {
      std::vector<std::string> cols, vals, keys;
      // Every synced non-key field, after the key's parameters.
      auto add_values = [&]() -> Status {
        if (!op.values.is_object()) return Status::Ok();
        for (const auto& item : op.values.items()) {
          if (t.key_fields.count(item.key())) continue;  // taken from `key`
          cols.push_back(column(item.key()));
          DUPLEX_ASSIGN_OR_RETURN(std::string p, param(Source::kValues, item.key()));
          vals.push_back(p);
        }
        return Status::Ok();
      };
      if (t.binding.mapped_key) {
        // The endpoint generates the key: the row goes in without it and its key map entry in
        // the same statement. A record whose row is here already is a key conflict (rejected);
        // one whose row was deleted gets a new row, and its entry the new key.
        const std::string& k = t.binding.key.front();
        const std::string kc = column(k);
        out.params.emplace_back(Source::kKey, k);
        const std::string rec = Placeholder(++n) + "::text";
        DUPLEX_RETURN_IF_ERROR(add_values());
        std::string conds = "NOT EXISTS (SELECT 1 FROM " + table + " x WHERE x." + kc + " = " +
                            keys_.ValueSql(t, k, rec, false) + ")";
        if (!unseen.empty()) conds += " AND " + unseen;
        const Oid oid = t.oid_of_column.at(t.column_of_field.at(k));
        const bool number = oid == kInt2Oid || oid == kInt4Oid || oid == kInt8Oid || oid == kOidOid;
        const std::string native =
            number ? "to_jsonb(ins." + kc + ")::text" : "to_jsonb(ins." + kc + "::text)::text";
        sql = "WITH ins AS (INSERT INTO " + table +
              (cols.empty() ? "" : " (" + Join(cols, ", ") + ")") + " SELECT " + Join(vals, ", ") +
              " WHERE " + conds + " RETURNING " + kc + ") INSERT INTO " +
              ep_.Q(ep_.TableName("keymap")) + " (tbl, record, native) SELECT " +
              QuoteLiteral(t.binding.table) + ", " + rec + ", " + native +
              " FROM ins ON CONFLICT (tbl, record) DO UPDATE SET native = "
              "excluded.native";
        break;
      }
      for (const std::string& k : t.binding.key) {
        cols.push_back(column(k));
        keys.push_back(column(k));
        DUPLEX_ASSIGN_OR_RETURN(std::string p, param(Source::kKey, k));
        vals.push_back(p);
      }
      DUPLEX_RETURN_IF_ERROR(add_values());
      sql = "INSERT INTO " + table + " (" + Join(cols, ", ") + ") SELECT " + Join(vals, ", ") +
            (unseen.empty() ? "" : " WHERE " + unseen) + " ON CONFLICT (" + Join(keys, ", ") +
            ") DO NOTHING";
      break;
    }
    case WriteOp::kUpdate: {
      std::vector<std::string> set;
      if (op.values.is_object()) {
        for (const auto& item : op.values.items()) {
          if (t.key_fields.count(item.key())) continue;
          DUPLEX_ASSIGN_OR_RETURN(std::string p, param(Source::kValues, item.key()));
          set.push_back(column(item.key()) + " = " + p);
        }
      }
      if (set.empty())
        set.push_back(column(t.binding.key.front()) + " = " + column(t.binding.key.front()));
      if (!unseen.empty()) cond.push_back(unseen);
      sql = "UPDATE " + table + " SET " + Join(set, ", ") + " WHERE " + Join(cond, " AND ");
      break;
    }
    case WriteOp::kDelete:
      if (!unseen.empty()) cond.push_back(unseen);
      sql = "DELETE FROM " + table + " WHERE " + Join(cond, " AND ");
      break;
  }
  out.name = "duplex_op_" + std::to_string(++stmt_counter_);
  PgResult res(PQprepare(ep_.apply.get(), out.name.c_str(), sql.c_str(), 0, nullptr));
  if (!res || PQresultStatus(res.get()) != PGRES_COMMAND_OK) {
    return ErrorStatus(ep_.apply.get(), res.get(), where);
  }
  auto inserted = stmts_.emplace(shape, std::move(out));
  return &inserted.first->second;
}

Result<ApplyResult> Applier::Apply(const std::vector<ApplyBatch>& batches, bool isolate_txns) {
  ApplyResult result;
  if (batches.empty()) return result;
  DUPLEX_RETURN_IF_ERROR(ep_.EnsureDb());
  DUPLEX_RETURN_IF_ERROR(ep_.LoadTypes());
  if (!ep_.apply.connected()) {
    stmts_.clear();
    DUPLEX_RETURN_IF_ERROR(ep_.Connect(ep_.apply));
    DUPLEX_RETURN_IF_ERROR(capture_.SetUpApplySession(ep_.apply));
  }
  DUPLEX_ASSIGN_OR_RETURN(int64_t last, capture_.AppliedId());
  std::vector<const ApplyBatch*> todo;
  for (const ApplyBatch& b : batches) {
    if (b.id <= last) {
      ++result.skipped_batches;  // applied before (replay after a crash): P6
    } else {
      todo.push_back(&b);
    }
  }
  if (todo.empty()) return result;
  // Rows the application changed after the write was planned (logical mode): found after the
  // first attempt, then left out (rejected) on the next.
  std::set<std::pair<size_t, size_t>> stale;
  std::vector<std::vector<std::string>> native_keys;
  if (!capture_.SeenInStatement()) {
    // The stream shows native keys; duplex sends record ids for mapped ones.
    DUPLEX_ASSIGN_OR_RETURN(native_keys, keys_.NativeKeyTexts(todo));
    // What the stream already shows: changed after the write was planned.
    for (size_t b = 0; b < todo.size(); ++b) {
      for (size_t i = 0; i < todo[b]->ops.size(); ++i) {
        const RowOp& op = todo[b]->ops[i];
        const BoundTable* t = ep_.ByCollection(op.collection);
        if (t == nullptr) continue;
        if (capture_.ChangedAfter(t->binding.table, native_keys[b][i], op.seen)) {
          stale.insert({b, i});
        }
      }
    }
  }
  for (int attempt = 0; attempt < 16; ++attempt) {
    size_t before = stale.size();
    Result<ApplyResult> r = ApplyOnce(todo, native_keys, isolate_txns, &stale);
    if (!r.ok()) {
      if (ep_.apply.Broken()) Reset();
      return r.status();
    }
    if (stale.size() == before) {
      r->skipped_batches += result.skipped_batches;
      return r;
    }
  }
  return Status::Unavailable(ep_.Where() +
                             ": the application keeps changing the rows being applied; "
                             "retrying");
}

Result<ApplyResult> Applier::ApplyOnce(const std::vector<const ApplyBatch*>& todo,
                                       const std::vector<std::vector<std::string>>& native_keys,
                                       bool isolate_txns,
                                       std::set<std::pair<size_t, size_t>>* stale) {
  ApplyResult result;
  const int64_t top = todo.back()->id;
  Conn& apply = ep_.apply;
  // Deferrable foreign keys are checked at commit: the ops of a source transaction may come
  // in any order that satisfies the ones that are not deferrable (the planner's). Any return
  // before the commit rolls back.
  TxnGuard txn(apply);
  DUPLEX_RETURN_IF_ERROR(txn.Begin("BEGIN; SET CONSTRAINTS ALL DEFERRED"));
  DUPLEX_RETURN_IF_ERROR(capture_.BeginApply(apply, top));

  // Prepare every shape first (outside the pipeline).
  struct Planned {
    size_t b, i;
    const BoundTable* t;
    const RowOp* op;
    OpStmt* stmt;
  };
  std::vector<Planned> planned;
  std::vector<std::tuple<size_t, size_t, const BoundTable*, const RowOp*>> rejected;
  for (size_t b = 0; b < todo.size(); ++b) {
    for (size_t i = 0; i < todo[b]->ops.size(); ++i) {
      const RowOp& op = todo[b]->ops[i];
      const BoundTable* t = ep_.ByCollection(op.collection);
      if (t == nullptr) {
        return Status::InvalidArgument(ep_.Where() + ": collection '" + op.collection +
                                       "' is not bound to this endpoint");
      }
      if (stale->count({b, i})) {
        rejected.emplace_back(b, i, t, &op);
        continue;
      }
      DUPLEX_ASSIGN_OR_RETURN(OpStmt * s, Statement(*t, op));
      planned.push_back({b, i, t, &op, s});
    }
  }

  auto params_of = [&](const Planned& p, std::vector<std::optional<std::string>>& vals) -> Status {
    vals.clear();
    for (const auto& [source, field] : p.stmt->params) {
      if (source == OpStmt::Source::kSeen) {
        vals.push_back(std::to_string(p.op->seen.ToInt()));
        continue;
      }
      const Row& obj = source == OpStmt::Source::kKey      ? p.op->key
                       : source == OpStmt::Source::kValues ? p.op->values
                                                           : p.op->expected;
      if (!obj.is_object() || !obj.contains(field)) {
        return Status::Refused(ep_.Where(p.t->binding.table) + ", key " + p.op->key.dump() +
                               ": field '" + field + "' is missing");
      }
      vals.push_back(ToText(obj[field]));
    }
    return Status::Ok();
  };

  // The source transactions (P7): contiguous ops of one batch with one RowOp::txn, stale ones
  // included (a unit that fails is reported whole). Txn 0 (a source that cannot tell its
  // transactions, such as SQLite) is a unit too: its ops were captured together.
  struct Unit {
    size_t b, first_op, end_op;         // todo[b]->ops[first_op, end_op)
    size_t first_planned, end_planned;  // planned[first_planned, end_planned)
  };
  std::vector<Unit> units;
  {
    size_t k = 0;
    for (size_t b = 0; b < todo.size(); ++b) {
      const std::vector<RowOp>& ops = todo[b]->ops;
      for (size_t i = 0; i < ops.size(); ++i) {
        if (i == 0 || ops[i].txn != ops[i - 1].txn) {
          units.push_back({b, i, i, k, k});
        }
        units.back().end_op = i + 1;
        if (k < planned.size() && planned[k].b == b && planned[k].i == i) ++k;
        units.back().end_planned = k;
      }
    }
  }

  // Sends planned[from, to) in one round trip, between `before` and `after` (plain statements),
  // and reads every result: affected rows per planned op (-1 if it did not run). Returns the
  // first error, naming the table and key of the statement at fault.
  std::vector<int64_t> affected(planned.size(), 0);
  std::vector<std::optional<std::string>> vals;
  std::vector<const char*> ptrs;
  auto pipeline = [&](size_t from, size_t to, const std::vector<std::string>& before,
                      const std::vector<std::string>& after, const std::string& where) -> Status {
    PGconn* c = apply.get();
    if (PQenterPipelineMode(c) != 1) return ErrorStatus(c, nullptr, ep_.Where());
    Status sent = Status::Ok();
    for (const std::string& sql : before) {
      if (sent.ok() &&
          PQsendQueryParams(c, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) != 1) {
        sent = ErrorStatus(c, nullptr, ep_.Where());
      }
    }
    for (size_t k = from; k < to && sent.ok(); ++k) {
      affected[k] = -1;
      sent = params_of(planned[k], vals);
      if (!sent.ok()) break;
      ptrs.clear();
      for (auto& v : vals) ptrs.push_back(v ? v->c_str() : nullptr);
      if (PQsendQueryPrepared(c, planned[k].stmt->name.c_str(), static_cast<int>(ptrs.size()),
                              ptrs.data(), nullptr, nullptr, 0) != 1) {
        sent = ErrorStatus(c, nullptr, ep_.Where());
      }
    }
    for (const std::string& sql : after) {
      if (sent.ok() &&
          PQsendQueryParams(c, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) != 1) {
        sent = ErrorStatus(c, nullptr, ep_.Where());
      }
    }
    if (PQpipelineSync(c) != 1 && sent.ok()) sent = ErrorStatus(c, nullptr, ep_.Where());
    Status first_error = Status::Ok();
    // Results in the order sent: `before`, the ops, `after`; one result (then a NULL) each.
    size_t n = 0;
    while (true) {
      PgResult res(PQgetResult(c));
      if (!res) {
        if (PQstatus(c) != CONNECTION_OK) {
          first_error = ErrorStatus(c, nullptr, ep_.Where());
          break;
        }
        continue;  // end of one statement's results
      }
      ExecStatusType st = PQresultStatus(res.get());
      if (st == PGRES_PIPELINE_SYNC) break;
      const size_t at = n++;
      const bool is_op = at >= before.size() && at - before.size() < to - from;
      const size_t k = from + (at - before.size());
      if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (is_op) affected[k] = std::atoll(PQcmdTuples(res.get()));
      } else if (st != PGRES_PIPELINE_ABORTED && first_error.ok()) {
        first_error = ErrorStatus(
            c, res.get(),
            is_op ? ep_.Where(planned[k].t->binding.table) + ", key " + planned[k].op->key.dump()
                  : where);
      }
    }
    PQexitPipelineMode(c);
    if (!sent.ok()) return sent;
    return first_error;
  };

  // Ops of failed units: neither applied nor rejected.
  std::set<std::pair<size_t, size_t>> refused;
  if (isolate_txns) {
    // Each source transaction in its own savepoint, one round trip each. SET CONSTRAINTS ALL
    // IMMEDIATE checks the deferred foreign keys the unit left outstanding (PostgreSQL checks
    // them retroactively at that moment), so that a unit the target refuses is found here and
    // not at COMMIT; DEFERRED again for the next unit.
    for (const Unit& u : units) {
      const ApplyBatch& batch = *todo[u.b];
      const int64_t unit_txn = batch.ops[u.first_op].txn;
      const std::string where = ep_.Where() + ", batch " + std::to_string(batch.id) +
                                ", source transaction " + std::to_string(unit_txn);
      Status st = pipeline(u.first_planned, u.end_planned, {"SAVEPOINT duplex_txn"},
                           {"SET CONSTRAINTS ALL IMMEDIATE", "SET CONSTRAINTS ALL DEFERRED",
                            "RELEASE SAVEPOINT duplex_txn"},
                           where);
      if (st.ok()) continue;
      if (!st.IsRefused()) return st;
      DUPLEX_RETURN_IF_ERROR(
          apply.Run("ROLLBACK TO SAVEPOINT duplex_txn; RELEASE SAVEPOINT duplex_txn"));
      FailedOp f{batch.id, unit_txn, {}, st.message()};
      for (size_t i = u.first_op; i < u.end_op; ++i) {
        f.ops.push_back(batch.ops[i]);
        refused.insert({u.b, i});
      }
      for (size_t k = u.first_planned; k < u.end_planned; ++k) affected[k] = -1;
      result.failed.push_back(std::move(f));
    }
    if (!refused.empty()) {
      rejected.erase(std::remove_if(rejected.begin(), rejected.end(),
                                    [&](const auto& r) {
                                      return refused.count({std::get<0>(r), std::get<1>(r)}) > 0;
                                    }),
                     rejected.end());
    }
  } else if (!planned.empty()) {
    // Pipelined: every statement sent before the first result is read (one round trip).
    DUPLEX_RETURN_IF_ERROR(pipeline(0, planned.size(), {}, {}, ep_.Where()));
  }

  if (!capture_.SeenInStatement() && !planned.empty()) {
    // The stream now holds every change the application committed before our row locks: a
    // write whose row it shows changed after `seen` was planned without seeing that change.
    DUPLEX_RETURN_IF_ERROR(capture_.CatchUp(apply));
    bool found = false;
    for (size_t k = 0; k < planned.size(); ++k) {
      if (affected[k] <= 0) continue;
      if (capture_.ChangedAfter(planned[k].t->binding.table,
                                native_keys[planned[k].b][planned[k].i], planned[k].op->seen)) {
        stale->insert({planned[k].b, planned[k].i});
        found = true;
      }
    }
    if (found) return ApplyResult{};  // rolled back; the caller runs it again without them
  }

  for (size_t k = 0; k < planned.size(); ++k) {
    if (affected[k] > 0) {
      ++result.applied;
    } else if (affected[k] == 0) {
      rejected.emplace_back(planned[k].b, planned[k].i, planned[k].t, planned[k].op);
    }
  }
  // Rejected writes: what the row really is now, so that the resolver corrects its belief.
  for (const auto& [b, i, t, op] : rejected) {
    ++result.rejected;
    // The row's text image, as the log and the stream carry rows (null: no row).
    DUPLEX_ASSIGN_OR_RETURN(Value image, keys_.ReadImage(*t, op->key, true));
    DUPLEX_RETURN_IF_ERROR(capture_.Reject(apply, *t, *op, image, todo[b]->id));
  }
  bool writes = false;
  for (const ApplyBatch* b : todo) writes |= !b->ops.empty();
  DUPLEX_RETURN_IF_ERROR(capture_.Mark(apply, top, writes));
  DUPLEX_RETURN_IF_ERROR(txn.Commit());
  return result;
}

}  // namespace duplex::pg
