// A delete against a new reference (DESIGN §4): a parent deleted on one endpoint while another
// endpoint made a row refer to it (inserted a child, or moved one to it), neither having seen
// the other's write. Each write alone is fine; together the targets refuse them both (the
// parent's delete where the child is, the child where the parent is gone). The parent's
// `on_delete_conflict` decides, as for a delete against an update of the record itself:
//   delete (default): the child is deleted with the parent, and every row referring to it;
//   keep: the parent comes back, with any deleted record it refers to.
// Writes already planned that the decision makes wrong or out of order (the child's insert
// where the parent is gone, the parent's delete where the child is) are taken back from the
// outbox before they land, or from the dead letters they were parked in (which are planned
// again whole), and planned again in one transaction with the decision's own writes, so that
// the planner orders them. A parent's delete that waits on a target for a row moved away from
// it, or for a row the engine learns of only now, is planned again after that row's write.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>

#include "core/planner.h"
#include "pipeline/engine.h"
#include "util/json_value.h"

namespace duplex {

namespace {

std::pair<std::string, std::string> SplitRecord(const std::string& record) {
  const size_t nl = record.find('\n');
  return {record.substr(0, nl), record.substr(nl + 1)};
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// The version a record's reference fields got their values with (the write that made it
// refer to its parent).
Version ReferenceVersion(const RecordState& state, const std::vector<std::string>& fields) {
  Version v;
  for (const std::string& f : fields) {
    auto it = state.versions.find(f);
    if (it != state.versions.end() && it->second.ts >= v.ts) v = it->second;
  }
  return v;
}

}  // namespace

Status Engine::EnsureRefIndex() {
  if (ref_index_ready_) return Status::Ok();
  std::vector<std::string> spelled;
  std::vector<std::string> children;
  for (const Reference& r : planner_->references()) {
    std::string s = r.child + "(";
    for (const std::string& f : r.fields) s += f + ",";
    spelled.push_back(s + ")->" + r.parent);
    if (!Contains(children, r.child)) children.push_back(r.child);
  }
  std::sort(spelled.begin(), spelled.end());
  std::string signature;
  for (const std::string& s : spelled) signature += s + ";";
  DUPLEX_RETURN_IF_ERROR(store_->RebuildRefs(
      signature, children, [&](const std::string& collection, const RecordState& state) {
        return ParentRecords(collection, state.values);
      }));
  ref_index_ready_ = true;
  return Status::Ok();
}

std::vector<std::string> Engine::ParentRecords(const std::string& collection,
                                               const Row& values) const {
  std::vector<std::string> out;
  for (const Reference& r : planner_->references()) {
    if (r.child != collection) continue;
    std::optional<Row> key = Planner::ParentKeyRow(r, values);
    if (!key) continue;
    std::string record = r.parent + "\n" + KeyText(*key, r.parent_key);
    if (!Contains(out, record)) out.push_back(std::move(record));
  }
  return out;
}

std::vector<std::string> Engine::ReferenceFields(const std::string& child,
                                                 const std::string& parent) const {
  std::vector<std::string> fields;
  for (const Reference& r : planner_->references()) {
    if (r.child == child && r.parent == parent) {
      fields.insert(fields.end(), r.fields.begin(), r.fields.end());
    }
  }
  return fields;
}

Status Engine::UpdateRefIndex(const std::string& record, const std::vector<std::string>& before,
                              const std::vector<std::string>& after) {
  for (const std::string& p : before) {
    if (!Contains(after, p)) DUPLEX_RETURN_IF_ERROR(store_->RemoveRef(p, record));
  }
  for (const std::string& p : after) {
    if (!Contains(before, p)) DUPLEX_RETURN_IF_ERROR(store_->AddRef(p, record));
  }
  return Status::Ok();
}

Result<bool> Engine::ParkedWrite(const Endpoint& ep, const std::string& collection, const Row& key,
                                 const std::function<bool(const RowOp&)>& match) {
  if (!ep.parked.count(collection + "\n" + key.dump())) return false;
  DUPLEX_ASSIGN_OR_RETURN(std::vector<DeadLetterRow> letters, store_->ListDeadLetters(false));
  for (const DeadLetterRow& d : letters) {
    if (d.endpoint != ep.name) continue;
    for (const RowOp& op : d.batch.ops) {
      if (op.collection == collection && op.key == key && match(op)) return true;
    }
  }
  return false;
}

Result<RecordState*> Engine::LoadRecord(RecordStates& states, const std::string& record) {
  auto [collection, key] = SplitRecord(record);
  if (!FindModel(collection)) return nullptr;
  std::map<std::string, RecordState>& loaded = states[collection];
  auto it = loaded.find(key);
  if (it == loaded.end()) {
    DUPLEX_RETURN_IF_ERROR(store_->LoadRecords(collection, {key}, loaded));
    it = loaded.find(key);
    if (it == loaded.end()) return nullptr;
  }
  return &it->second;
}

Status Engine::CheckReferences(const Change& c, const std::string& from, int64_t watermark,
                               const std::string& record, bool was_live,
                               const std::vector<std::string>& parents_before,
                               const std::map<std::string, size_t>& first_op, RecordStates& states,
                               const PlanContext& ctx, ResolveOutput& out) {
  DUPLEX_ASSIGN_OR_RETURN(RecordState * state, LoadRecord(states, record));
  if (!state) return Status::Ok();
  const std::vector<std::string> parents_after =
      state->exists ? ParentRecords(c.collection, state->values) : std::vector<std::string>();
  DUPLEX_RETURN_IF_ERROR(UpdateRefIndex(record, parents_before, parents_after));
  // The row now refers to a parent another endpoint deleted, a delete `from` had not seen.
  for (const std::string& p : parents_after) {
    if (!state->exists) break;                              // deleted with an earlier parent
    if (was_live && Contains(parents_before, p)) continue;  // not a new reference
    DUPLEX_ASSIGN_OR_RETURN(RecordState * parent, LoadRecord(states, p));
    if (!parent) continue;
    const bool unseen = Resolver::Unobserved(*parent, from, {}, watermark);
    if (!parent->exists && !parent->deleted.origin.empty() && parent->deleted.origin != from &&
        unseen) {
      DUPLEX_RETURN_IF_ERROR(
          SettleReference(p, record, parent->deleted.origin, from, states, ctx, out));
      continue;
    }
    // A write of the parent to `from` that has not landed, or was refused there (its delete,
    // before it was made again elsewhere: `from` may have refused it for this very row).
    DUPLEX_RETURN_IF_ERROR(ReplanWaiting(p, from, watermark, states, ctx, out));
  }
  // Writes planned now that move a target's row away from a parent (or delete it), where the
  // parent's delete has not landed or was refused: it may have waited for them.
  std::vector<std::pair<std::string, std::string>> left;  // target, parent
  for (const auto& [target, ops] : out.writes) {
    auto first = first_op.find(target);
    for (size_t i = first == first_op.end() ? 0 : first->second; i < ops.size(); ++i) {
      const RowOp& op = ops[i];
      if (op.op == Op::kMarker || op.op == Op::kInsert || !planner_->Involves(op.collection)) {
        continue;
      }
      const std::vector<std::string> now = ParentRecords(op.collection, op.values);
      for (const std::string& p : ParentRecords(op.collection, op.expected)) {
        if (op.op == Op::kDelete || !Contains(now, p)) left.emplace_back(target, p);
      }
    }
  }
  for (const auto& [target, p] : left) {
    DUPLEX_RETURN_IF_ERROR(ReplanWaiting(p, target, ctx.watermarks.at(target), states, ctx, out));
  }
  // The record came back, or went: a write of it a target refused and parked that this makes
  // moot (its delete, now that it exists again; its insert or update, now that it is gone) is
  // planned again from the record's state, with the rest of its dead letter, rather than left
  // to hold back this change's writes.
  if (was_live != state->exists) {
    const Row key = KeyOf(*FindModel(c.collection), state->values);
    for (Endpoint& e : endpoints_) {
      DUPLEX_ASSIGN_OR_RETURN(bool moot, ParkedWrite(e, c.collection, key, [&](const RowOp& op) {
                                return (op.op == Op::kDelete) == state->exists;
                              }));
      if (!moot) continue;
      DUPLEX_RETURN_IF_ERROR(RetractWrites(record, *state, states, ctx, out, e.name));
      resolver_->Replan(c.collection, ctx, *state, out);
    }
  }
  // `from` deleted a parent that a row refers to in a write `from` had not seen.
  if (c.op != Op::kDelete || !was_live || !parent_collections_.count(c.collection)) {
    return Status::Ok();
  }
  DUPLEX_ASSIGN_OR_RETURN(std::vector<std::string> children, store_->ChildrenOf(record));
  for (const std::string& child : children) {
    DUPLEX_ASSIGN_OR_RETURN(RecordState * cs, LoadRecord(states, child));
    if (!cs || !cs->exists) continue;
    const std::string collection = SplitRecord(child).first;
    if (!Contains(ParentRecords(collection, cs->values), record)) continue;
    const std::vector<std::string> fields = ReferenceFields(collection, c.collection);
    if (!Resolver::Unobserved(*cs, from, fields, watermark)) continue;
    if (state->exists) {
      // The parent stays (its delete lost to a concurrent update of it, or it was brought
      // back for an earlier child): it goes back to `from`, and the row's writes there,
      // planned when the parent was still there, follow it.
      DUPLEX_RETURN_IF_ERROR(RetractWrites(child, *cs, states, ctx, out, from));
      resolver_->Replan(collection, ctx, *cs, out);
      continue;
    }
    const std::string writer = ReferenceVersion(*cs, fields).origin;
    DUPLEX_RETURN_IF_ERROR(SettleReference(record, child, from, writer, states, ctx, out));
  }
  return Status::Ok();
}

Status Engine::ReplanWaiting(const std::string& parent, const std::string& target,
                             int64_t watermark, RecordStates& states, const PlanContext& ctx,
                             ResolveOutput& out) {
  DUPLEX_ASSIGN_OR_RETURN(RecordState * state, LoadRecord(states, parent));
  Endpoint* ep = Find(target);
  if (!state || !ep) return Status::Ok();
  const std::string collection = SplitRecord(parent).first;
  // Its delete, planned and not landed yet,
  bool waits = !state->exists && !state->known.count(target) &&
               Resolver::Unobserved(*state, target, {}, watermark);
  // or refused there.
  if (!waits) {
    DUPLEX_ASSIGN_OR_RETURN(
        waits, ParkedWrite(*ep, collection, KeyOf(*FindModel(collection), state->values),
                           [](const RowOp& op) { return op.op == Op::kDelete; }));
  }
  if (!waits) return Status::Ok();
  DUPLEX_RETURN_IF_ERROR(RetractWrites(parent, *state, states, ctx, out, target));
  resolver_->Replan(collection, ctx, *state, out);
  return Status::Ok();
}

Status Engine::SettleReference(const std::string& parent, const std::string& child,
                               const std::string& deleter, const std::string& writer,
                               RecordStates& states, const PlanContext& ctx, ResolveOutput& out) {
  DUPLEX_ASSIGN_OR_RETURN(RecordState * ps, LoadRecord(states, parent));
  DUPLEX_ASSIGN_OR_RETURN(RecordState * cs, LoadRecord(states, child));
  const auto [pc, pk] = SplitRecord(parent);
  const auto [cc, ck] = SplitRecord(child);
  const CollectionModel* pm = FindModel(pc);
  const CollectionModel* cm = FindModel(cc);
  const Version deleted = ps->deleted;
  const Version referred = ReferenceVersion(*cs, ReferenceFields(cc, pc));
  // Delete wins: the conflict is the child's (it goes with the parent). Keep: the parent's (it
  // comes back).
  const bool cascade = pm->config->delete_wins;
  ConflictRecord conflict;
  conflict.policy = cascade ? "delete" : "keep";
  conflict.collection = cascade ? cc : pc;
  conflict.key = cascade ? KeyOf(*cm, cs->values) : KeyOf(*pm, ps->values);
  conflict.key_text = cascade ? ck : pk;
  conflict.winner = cascade ? deleter : writer;
  conflict.values[deleter] = {{"deleted", true}, {"ts", deleted.ts}, {"record", pc + " " + pk}};
  conflict.values[writer] = {{"value", cs->values}, {"ts", referred.ts}, {"record", cc + " " + ck}};
  out.conflicts.push_back(std::move(conflict));
  // The child and every live row that refers to it, or the parent and every deleted record it
  // refers to, at any depth.
  DUPLEX_ASSIGN_OR_RETURN(std::vector<std::string> settled,
                          Reach(states, cascade ? child : parent, cascade));
  for (const std::string& r : settled) {
    DUPLEX_ASSIGN_OR_RETURN(RecordState * s, LoadRecord(states, r));
    const auto [collection, key] = SplitRecord(r);
    DUPLEX_RETURN_IF_ERROR(RetractWrites(r, *s, states, ctx, out));
    if (cascade) {
      DUPLEX_RETURN_IF_ERROR(UpdateRefIndex(r, ParentRecords(collection, s->values), {}));
      resolver_->Cascade(collection, deleted, ctx, *s, out);
      spdlog::info("collection={} key={} deleted with {} {} (deleted on {}, referred to on {})",
                   collection, key, pc, pk, deleter, writer);
    } else {
      resolver_->Revive(collection, ctx, *s, out);
      DUPLEX_RETURN_IF_ERROR(UpdateRefIndex(r, {}, ParentRecords(collection, s->values)));
      spdlog::info("collection={} key={} kept (deleted on {}; {} {} referred to it on {})",
                   collection, key, deleter, cc, ck, writer);
    }
  }
  // The other record's writes are planned again after these: the parent's deletes after those
  // of the rows that referred to it, the child's writes after the parent's re-insert.
  const std::string& other = cascade ? parent : child;
  RecordState* os = cascade ? ps : cs;
  DUPLEX_RETURN_IF_ERROR(RetractWrites(other, *os, states, ctx, out));
  resolver_->Replan(cascade ? pc : cc, ctx, *os, out);
  return Status::Ok();
}

Result<std::vector<std::string>> Engine::Reach(RecordStates& states, const std::string& start,
                                               bool down) {
  std::vector<std::string> reached{start};
  for (size_t i = 0; i < reached.size(); ++i) {
    std::vector<std::string> next;
    if (down) {
      DUPLEX_ASSIGN_OR_RETURN(next, store_->ChildrenOf(reached[i]));
    } else {
      DUPLEX_ASSIGN_OR_RETURN(RecordState * s, LoadRecord(states, reached[i]));
      if (s) next = ParentRecords(SplitRecord(reached[i]).first, s->values);
    }
    for (const std::string& r : next) {
      if (Contains(reached, r)) continue;
      DUPLEX_ASSIGN_OR_RETURN(RecordState * s, LoadRecord(states, r));
      if (s && (down ? s->exists : !s->exists && !s->deleted.origin.empty())) {
        reached.push_back(r);
      }
    }
  }
  return reached;
}

Status Engine::RetractWrites(const std::string& record, RecordState& state, RecordStates& states,
                             const PlanContext& ctx, ResolveOutput& out, const std::string& only) {
  const auto [collection, key_text] = SplitRecord(record);
  const CollectionModel* model = FindModel(collection);
  const std::string parked_as = collection + "\n" + KeyOf(*model, state.values).dump();
  auto mine = [&](const RowOp& op) {
    return op.op != Op::kMarker && op.collection == collection &&
           KeyText(op.key, model->config->key) == key_text;
  };
  auto take = [&](std::vector<RowOp>& ops, int64_t id,
                  std::vector<std::pair<int64_t, RowOp>>& taken) {
    const size_t before = taken.size();
    std::erase_if(ops, [&](const RowOp& op) {
      if (!mine(op)) return false;
      taken.emplace_back(id, op);
      return true;
    });
    return taken.size() > before;
  };
  for (const std::string& target : model->endpoints) {
    Endpoint* ep = Find(target);
    if (!ep || (!only.empty() && target != only)) continue;
    std::vector<std::pair<int64_t, RowOp>> taken;
    // Refused and parked: they changed nothing on the target. The dead letters holding the
    // record's writes, and those waiting for them, are planned again now, in this transaction:
    // the write taken out may be why they were refused, and what is left of them (a row
    // moved away from a parent) may have to come before what is planned here (the parent's
    // delete). The planner orders them all.
    std::vector<RowOp> replan;
    if (ep->parked.count(parked_as)) {
      DUPLEX_ASSIGN_OR_RETURN(std::vector<DeadLetterRow> letters, store_->ListDeadLetters(false));
      std::set<int64_t> hit;
      for (DeadLetterRow& d : letters) {  // oldest first: a waiter after what it waits for
        if (d.endpoint != target) continue;
        const bool waits = hit.count(d.waits_for) > 0;
        if (!take(d.batch.ops, d.batch.id, taken) && !waits) continue;
        hit.insert(d.id);
        replan.insert(replan.end(), d.batch.ops.begin(), d.batch.ops.end());
        spdlog::info("endpoint={} dead letter id={} planned again: it held a write of {} {}",
                     target, d.id, collection, key_text);
        DUPLEX_RETURN_IF_ERROR(store_->DeleteDeadLetter(d.id));
      }
      std::erase_if(ep->parked, [&](const auto& kv) { return hit.count(kv.second) > 0; });
      ep->parked_version = {-1, -1};  // reloaded before the next apply
    }
    // Planned, not applied yet: this step's writes, and batches still in the outbox, up to
    // the record's latest write there (its pending ids keep only the latest per field: an
    // earlier write, say a delete before a repeated delete's empty batch, is found by looking).
    int64_t latest = 0;
    auto pending = state.pending.find(target);
    if (pending != state.pending.end()) {
      for (const auto& [field, id] : pending->second) latest = std::max(latest, id);
    }
    std::vector<int64_t> ids;
    if (latest > ctx.watermarks.at(target)) {
      DUPLEX_ASSIGN_OR_RETURN(ids, store_->OutboxIds(target, ctx.watermarks.at(target), latest));
      if (latest == ctx.apply_ids.at(target)) ids.push_back(latest);
    }
    for (int64_t id : ids) {
      if (id == ctx.apply_ids.at(target)) {
        // Already in `out`: marked, and dropped when stored (other writes keep their places).
        for (RowOp& op : out.writes[target]) {
          if (!mine(op)) continue;
          taken.emplace_back(id, op);
          op.op = Op::kMarker;
        }
        continue;
      }
      DUPLEX_ASSIGN_OR_RETURN(std::optional<ApplyBatch> batch, store_->ReadOutboxBatch(target, id));
      if (!batch || !take(batch->ops, id, taken)) continue;
      DUPLEX_RETURN_IF_ERROR(store_->ReplaceOutbox(target, *batch));
      fresh_outbox_[target].erase(id);
    }
    if (!taken.empty()) {
      std::stable_sort(taken.begin(), taken.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      Resolver::Retracted(target, taken, state);
    }
    DUPLEX_RETURN_IF_ERROR(ReplanRefused(target, replan, ctx, out, &states));
  }
  return Status::Ok();
}

}  // namespace duplex
