// A delete against a new reference (docs/DESIGN.md §4): a parent deleted on one endpoint while
// another endpoint made a row refer to it (inserted a child, or moved one to it), neither having
// seen the other's write. Each write alone is fine; together the targets refuse them both (the
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
#include "pipeline/references.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <set>

#include "core/reference_conflict.h"
#include "pipeline/dead_letters.h"
#include "util/json_value.h"

namespace duplex {

namespace {

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// The records as a resolution step sees them (for core/reference_conflict.h): its states,
// loaded from the state store as needed, and the state store's index of references.
class StepLookup : public RecordLookup {
 public:
  StepLookup(EngineState& es, RecordStates& states) : es_(es), states_(states) {}

  Result<const RecordState*> Find(const std::string& record) override {
    DUPLEX_ASSIGN_OR_RETURN(RecordState * s, LoadRecord(es_, states_, record));
    const RecordState* found = s;
    return found;
  }
  Result<std::vector<std::string>> ReferringTo(const std::string& record) override {
    return es_.store->ChildrenOf(record);
  }
  std::vector<std::string> ReferredBy(const std::string& collection, const Row& values) override {
    return ParentRecords(es_, collection, values);
  }

 private:
  EngineState& es_;
  RecordStates& states_;
};

}  // namespace

Status EnsureRefIndex(EngineState& es) {
  if (es.ref_index_ready) return Status::Ok();
  std::vector<std::string> spelled;
  std::vector<std::string> children;
  for (const Reference& r : es.planner->references()) {
    std::string s = r.child + "(";
    for (const std::string& f : r.fields) s += f + ",";
    spelled.push_back(s + ")->" + r.parent);
    if (!Contains(children, r.child)) children.push_back(r.child);
  }
  std::sort(spelled.begin(), spelled.end());
  std::string signature;
  for (const std::string& s : spelled) signature += s + ";";
  DUPLEX_RETURN_IF_ERROR(es.store->RebuildRefs(
      signature, children, [&](const std::string& collection, const RecordState& state) {
        return ParentRecords(es, collection, state.values);
      }));
  es.ref_index_ready = true;
  return Status::Ok();
}

std::vector<std::string> ParentRecords(const EngineState& es, const std::string& collection,
                                       const Row& values) {
  std::vector<std::string> out;
  for (const Reference& r : es.planner->references()) {
    if (r.child != collection) continue;
    std::optional<Row> key = Planner::ParentKeyRow(r, values);
    if (!key) continue;
    std::string record = RecordKeyOf(r.parent, *key, r.parent_key).ToString();
    if (!Contains(out, record)) out.push_back(std::move(record));
  }
  return out;
}

std::vector<std::string> ReferenceFields(const EngineState& es, const std::string& child,
                                         const std::string& parent) {
  std::vector<std::string> fields;
  for (const Reference& r : es.planner->references()) {
    if (r.child == child && r.parent == parent) {
      fields.insert(fields.end(), r.fields.begin(), r.fields.end());
    }
  }
  return fields;
}

Status UpdateRefIndex(EngineState& es, const std::string& record,
                      const std::vector<std::string>& before,
                      const std::vector<std::string>& after) {
  for (const std::string& p : before) {
    if (!Contains(after, p)) DUPLEX_RETURN_IF_ERROR(es.store->RemoveRef(p, record));
  }
  for (const std::string& p : after) {
    if (!Contains(before, p)) DUPLEX_RETURN_IF_ERROR(es.store->AddRef(p, record));
  }
  return Status::Ok();
}

Status CheckReferences(EngineState& es, const Change& c, const std::string& from, int64_t watermark,
                       const std::string& record, bool was_live,
                       const std::vector<std::string>& parents_before,
                       const std::map<std::string, size_t>& first_op, RecordStates& states,
                       const PlanContext& ctx, ResolveOutput& out) {
  DUPLEX_ASSIGN_OR_RETURN(RecordState * state, LoadRecord(es, states, record));
  if (!state) return Status::Ok();
  const std::vector<std::string> parents_after =
      state->exists ? ParentRecords(es, c.collection, state->values) : std::vector<std::string>();
  DUPLEX_RETURN_IF_ERROR(UpdateRefIndex(es, record, parents_before, parents_after));
  // The row now refers to a parent another endpoint deleted, a delete `from` had not seen.
  for (const std::string& p : parents_after) {
    if (!state->exists) break;                              // deleted with an earlier parent
    if (was_live && Contains(parents_before, p)) continue;  // not a new reference
    DUPLEX_ASSIGN_OR_RETURN(RecordState * parent, LoadRecord(es, states, p));
    if (!parent) continue;
    const bool unseen = Resolver::Unobserved(*parent, from, {}, watermark);
    if (!parent->exists && !parent->deleted.origin.empty() && parent->deleted.origin != from &&
        unseen) {
      DUPLEX_RETURN_IF_ERROR(
          SettleReference(es, p, record, parent->deleted.origin, from, states, ctx, out));
      continue;
    }
    // A write of the parent to `from` that has not landed, or was refused there (its delete,
    // before it was made again elsewhere: `from` may have refused it for this very row).
    DUPLEX_RETURN_IF_ERROR(ReplanWaiting(es, p, from, watermark, states, ctx, out));
  }
  // Writes planned now that move a target's row away from a parent (or delete it), where the
  // parent's delete has not landed or was refused: it may have waited for them.
  std::vector<std::pair<std::string, std::string>> left;  // target, parent
  for (const auto& [target, ops] : out.writes) {
    auto first = first_op.find(target);
    for (size_t i = first == first_op.end() ? 0 : first->second; i < ops.size(); ++i) {
      const RowOp& op = ops[i];
      if (out.taken_back[target].count(i) || op.op == WriteOp::kInsert ||
          !es.planner->Involves(op.collection)) {
        continue;
      }
      const std::vector<std::string> now = ParentRecords(es, op.collection, op.values);
      for (const std::string& p : ParentRecords(es, op.collection, op.expected)) {
        if (op.op == WriteOp::kDelete || !Contains(now, p)) left.emplace_back(target, p);
      }
    }
  }
  for (const auto& [target, p] : left) {
    DUPLEX_RETURN_IF_ERROR(
        ReplanWaiting(es, p, target, ctx.watermarks.at(target), states, ctx, out));
  }
  // The record came back, or went: a write of it a target refused and parked that this makes
  // moot (its delete, now that it exists again; its insert or update, now that it is gone) is
  // planned again from the record's state, with the rest of its dead letter, rather than left
  // to hold back this change's writes.
  if (was_live != state->exists) {
    for (EndpointState& e : es.endpoints) {
      DUPLEX_ASSIGN_OR_RETURN(bool moot, ParkedWrite(es, e, record, [&](const RowOp& op) {
                                return (op.op == WriteOp::kDelete) == state->exists;
                              }));
      if (!moot) continue;
      DUPLEX_RETURN_IF_ERROR(RetractWrites(es, record, *state, states, ctx, out, e.name));
      es.resolver->Replan(c.collection, ctx, *state, out);
    }
  }
  // `from` deleted a parent that a row refers to in a write `from` had not seen.
  if (c.op != Op::kDelete || !was_live || !es.parent_collections.count(c.collection)) {
    return Status::Ok();
  }
  DUPLEX_ASSIGN_OR_RETURN(std::vector<std::string> children, es.store->ChildrenOf(record));
  for (const std::string& child : children) {
    DUPLEX_ASSIGN_OR_RETURN(RecordState * cs, LoadRecord(es, states, child));
    if (!cs || !cs->exists) continue;
    const std::string collection = RecordKey::Parse(child).collection;
    if (!Contains(ParentRecords(es, collection, cs->values), record)) continue;
    const std::vector<std::string> fields = ReferenceFields(es, collection, c.collection);
    if (!Resolver::Unobserved(*cs, from, fields, watermark)) continue;
    if (state->exists) {
      // The parent stays (its delete lost to a concurrent update of it, or it was brought
      // back for an earlier child): it goes back to `from`, and the row's writes there,
      // planned when the parent was still there, follow it.
      DUPLEX_RETURN_IF_ERROR(RetractWrites(es, child, *cs, states, ctx, out, from));
      es.resolver->Replan(collection, ctx, *cs, out);
      continue;
    }
    const std::string writer = ReferenceVersion(*cs, fields).origin;
    DUPLEX_RETURN_IF_ERROR(SettleReference(es, record, child, from, writer, states, ctx, out));
  }
  return Status::Ok();
}

Status ReplanWaiting(EngineState& es, const std::string& parent, const std::string& target,
                     int64_t watermark, RecordStates& states, const PlanContext& ctx,
                     ResolveOutput& out) {
  DUPLEX_ASSIGN_OR_RETURN(RecordState * state, LoadRecord(es, states, parent));
  EndpointState* ep = es.Find(target);
  if (!state || !ep) return Status::Ok();
  const std::string collection = RecordKey::Parse(parent).collection;
  // Its delete, planned and not landed yet,
  bool waits = !state->exists && !state->known.count(target) &&
               Resolver::Unobserved(*state, target, {}, watermark);
  // or refused there.
  if (!waits) {
    DUPLEX_ASSIGN_OR_RETURN(waits, ParkedWrite(es, *ep, parent, [](const RowOp& op) {
                              return op.op == WriteOp::kDelete;
                            }));
  }
  if (!waits) return Status::Ok();
  DUPLEX_RETURN_IF_ERROR(RetractWrites(es, parent, *state, states, ctx, out, target));
  es.resolver->Replan(collection, ctx, *state, out);
  return Status::Ok();
}

Status SettleReference(EngineState& es, const std::string& parent, const std::string& child,
                       const std::string& deleter, const std::string& writer, RecordStates& states,
                       const PlanContext& ctx, ResolveOutput& out) {
  DUPLEX_ASSIGN_OR_RETURN(RecordState * ps, LoadRecord(es, states, parent));
  DUPLEX_ASSIGN_OR_RETURN(RecordState * cs, LoadRecord(es, states, child));
  const auto [pc, pk] = RecordKey::Parse(parent);
  const auto [cc, ck] = RecordKey::Parse(child);
  // The decision (core/reference_conflict.h): cascade or keep, the conflict entry, and the
  // records it settles. What follows carries it out.
  StepLookup lookup(es, states);
  DUPLEX_ASSIGN_OR_RETURN(
      ReferenceDecision d,
      DecideReference(ReferenceConflict{parent, child, es.FindModel(pc), es.FindModel(cc), deleter,
                                        writer, ReferenceFields(es, cc, pc)},
                      lookup));
  const bool cascade = d.cascade;
  out.conflicts.push_back(std::move(d.conflict));
  for (const std::string& r : d.settled) {
    DUPLEX_ASSIGN_OR_RETURN(RecordState * s, LoadRecord(es, states, r));
    const auto [collection, key] = RecordKey::Parse(r);
    DUPLEX_RETURN_IF_ERROR(RetractWrites(es, r, *s, states, ctx, out));
    if (cascade) {
      DUPLEX_RETURN_IF_ERROR(UpdateRefIndex(es, r, ParentRecords(es, collection, s->values), {}));
      es.resolver->Cascade(collection, d.deleted, ctx, *s, out);
      spdlog::info("collection={} key={} deleted with {} {} (deleted on {}, referred to on {})",
                   collection, key, pc, pk, deleter, writer);
    } else {
      es.resolver->Revive(collection, ctx, *s, out);
      DUPLEX_RETURN_IF_ERROR(UpdateRefIndex(es, r, {}, ParentRecords(es, collection, s->values)));
      spdlog::info("collection={} key={} kept (deleted on {}; {} {} referred to it on {})",
                   collection, key, deleter, cc, ck, writer);
    }
  }
  // The other record's writes are planned again after these: the parent's deletes after those
  // of the rows that referred to it, the child's writes after the parent's re-insert.
  const std::string& other = cascade ? parent : child;
  RecordState* os = cascade ? ps : cs;
  DUPLEX_RETURN_IF_ERROR(RetractWrites(es, other, *os, states, ctx, out));
  es.resolver->Replan(cascade ? pc : cc, ctx, *os, out);
  return Status::Ok();
}

Status RetractWrites(EngineState& es, const std::string& record, RecordState& state,
                     RecordStates& states, const PlanContext& ctx, ResolveOutput& out,
                     const std::string& only) {
  const auto [collection, key_text] = RecordKey::Parse(record);
  const CollectionModel* model = es.FindModel(collection);
  auto mine = [&](const RowOp& op) {
    return op.collection == collection && es.planner->RecordOf(op) == record;
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
    EndpointState* ep = es.Find(target);
    if (!ep || (!only.empty() && target != only)) continue;
    std::vector<std::pair<int64_t, RowOp>> taken;
    // Refused and parked: they changed nothing on the target. The dead letters holding the
    // record's writes, and those waiting for them, are planned again now, in this transaction:
    // the write taken out may be why they were refused, and what is left of them (a row
    // moved away from a parent) may have to come before what is planned here (the parent's
    // delete). The planner orders them all.
    std::vector<RowOp> replan;
    if (ep->parked.count(record)) {
      DUPLEX_ASSIGN_OR_RETURN(std::vector<DeadLetterRow> letters, es.store->ListDeadLetters(false));
      std::set<int64_t> hit;
      for (DeadLetterRow& d : letters) {  // oldest first: a waiter after what it waits for
        if (d.endpoint != target) continue;
        const bool waits = hit.count(d.waits_for) > 0;
        if (!take(d.batch.ops, d.batch.id, taken) && !waits) continue;
        hit.insert(d.id);
        replan.insert(replan.end(), d.batch.ops.begin(), d.batch.ops.end());
        spdlog::info("endpoint={} dead letter id={} planned again: it held a write of {} {}",
                     target, d.id, collection, key_text);
        DUPLEX_RETURN_IF_ERROR(es.store->DeleteDeadLetter(d.id));
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
      DUPLEX_ASSIGN_OR_RETURN(ids, es.store->OutboxIds(target, ctx.watermarks.at(target), latest));
      if (latest == ctx.apply_ids.at(target)) ids.push_back(latest);
    }
    for (int64_t id : ids) {
      if (id == ctx.apply_ids.at(target)) {
        // Already in `out`: marked, and dropped when stored (other writes keep their places).
        std::vector<RowOp>& ops = out.writes[target];
        std::set<size_t>& back = out.taken_back[target];
        for (size_t i = 0; i < ops.size(); ++i) {
          if (back.count(i) || !mine(ops[i])) continue;
          taken.emplace_back(id, ops[i]);
          back.insert(i);
        }
        continue;
      }
      DUPLEX_ASSIGN_OR_RETURN(std::optional<ApplyBatch> batch,
                              es.store->ReadOutboxBatch(target, id));
      if (!batch || !take(batch->ops, id, taken)) continue;
      DUPLEX_RETURN_IF_ERROR(es.store->ReplaceOutbox(target, *batch));
      es.fresh_outbox[target].erase(id);
    }
    if (!taken.empty()) {
      std::stable_sort(taken.begin(), taken.end(),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
      Resolver::Retracted(target, taken, state);
    }
    DUPLEX_RETURN_IF_ERROR(ReplanRefused(es, target, replan, ctx, out, &states));
  }
  return Status::Ok();
}

}  // namespace duplex
