#include "pipeline/dead_letters.h"

#include <set>

#include "pipeline/references.h"
#include "pipeline/resolve.h"
#include "util/json_value.h"
#include "util/log.h"

namespace duplex {

// The dead letter (`parked`: record -> dead letter id) that one of `ops` depends on: it writes
// a record of it, or refers to one; 0 if none.
int64_t ParkedDependency(const Planner& planner, const std::map<std::string, int64_t>& parked,
                         std::span<const RowOp> ops) {
  if (parked.empty()) return 0;
  for (const RowOp& op : ops) {
    std::vector<std::string> records = planner.ParentsOf(op, /*after=*/true);
    records.insert(records.begin(), planner.RecordOf(op));
    for (const std::string& r : records) {
      auto it = parked.find(r);
      if (it != parked.end()) return it->second;
    }
  }
  return 0;
}

Status LoadParked(EngineState& es, EndpointState& ep) {
  DUPLEX_ASSIGN_OR_RETURN(auto version, es.store->DeadLetterVersion(ep.name));
  if (version == ep.parked_version) return Status::Ok();
  ep.parked.clear();
  if (version.first > 0) {
    DUPLEX_ASSIGN_OR_RETURN(std::vector<DeadLetterRow> rows, es.store->ListDeadLetters(false));
    for (const DeadLetterRow& d : rows) {
      if (d.endpoint != ep.name) continue;
      for (const RowOp& op : d.batch.ops) ep.parked.emplace(es.planner->RecordOf(op), d.id);
    }
  }
  ep.parked_version = version;
  return Status::Ok();
}

std::vector<std::pair<FailedOp, int64_t>> HoldDependents(EngineState& es, EndpointState& ep,
                                                         std::vector<ApplyBatch>& batches) {
  std::vector<std::pair<FailedOp, int64_t>> held;
  if (ep.parked.empty()) return held;
  for (ApplyBatch& b : batches) {
    std::vector<RowOp> kept;
    for (size_t begin = 0; begin < b.ops.size();) {
      const size_t end = TxnEnd(b.ops, begin);
      const int64_t id =
          ParkedDependency(*es.planner, ep.parked, std::span(b.ops).subspan(begin, end - begin));
      if (id == 0) {
        for (size_t i = begin; i < end; ++i) kept.push_back(std::move(b.ops[i]));
      } else {
        FailedOp f{b.id, b.ops[begin].txn, {}, ""};
        for (size_t i = begin; i < end; ++i) f.ops.push_back(std::move(b.ops[i]));
        f.reason = "waits for dead letter " + std::to_string(id);
        // What waits is parked too: what depends on it waits for the same dead letter.
        for (const RowOp& op : f.ops) ep.parked.emplace(es.planner->RecordOf(op), id);
        held.emplace_back(std::move(f), id);
      }
      begin = end;
    }
    b.ops = std::move(kept);
  }
  return held;
}

Status ReplanRefused(EngineState& es, const std::string& endpoint, const std::vector<RowOp>& ops,
                     const PlanContext& ctx, ResolveOutput& out, RecordStates* states) {
  for (const RowOp& op : ops) {
    const CollectionModel* model = es.resolver->Find(op.collection);
    if (!model) continue;  // no longer in the config
    const RecordKey record = RecordKeyOf(op.collection, op.key, model->config->key);
    RecordStates own;
    DUPLEX_ASSIGN_OR_RETURN(RecordState * loaded,
                            LoadRecord(es, states ? *states : own, record.ToString()));
    if (!loaded) continue;
    RecordState& state = *loaded;
    // The refused write changed nothing: the target holds the row as it was before it. The
    // resolver believed it landed; correct that, and plan from the record's current state
    // with a fresh `seen`. Should the target's row differ still (changed since), the
    // compare-and-set rejects the write and the resolver corrects again from the real row.
    Change truth;
    truth.op = Op::kRejected;
    truth.collection = op.collection;
    truth.key = op.key;
    if (op.op != WriteOp::kInsert) {
      auto known = state.known.find(endpoint);
      truth.after = known != state.known.end() ? known->second : Row::object();
      for (const auto& [k, v] : op.key.items()) truth.after[k] = v;
      for (const auto& [f, v] : op.expected.items()) truth.after[f] = v;
    }
    es.resolver->Correct(truth, endpoint, ctx, state, out);
    if (!states) {
      DUPLEX_RETURN_IF_ERROR(es.store->SaveRecord(op.collection, record.key_text, state));
    }
  }
  return Status::Ok();
}

Result<bool> Superseded(EngineState& es, const std::string& endpoint, const FailedOp& f) {
  for (const RowOp& op : f.ops) {
    const CollectionModel* model = es.resolver->Find(op.collection);
    if (!model) continue;
    RecordStates loaded;
    DUPLEX_ASSIGN_OR_RETURN(
        const RecordState* found,
        LoadRecord(es, loaded, RecordKeyOf(op.collection, op.key, model->config->key).ToString()));
    if (!found) continue;
    const RecordState& state = *found;
    auto pending = state.pending.find(endpoint);
    if (pending == state.pending.end()) continue;
    // Overtaken: a refused delete of a record that exists again (its latest write planned
    // here is the re-insert, in a later batch or later in the same one); a refused insert or
    // update of a record deleted since (the delete, likewise), or written as a row again in a
    // later batch (deleted and made again). The refused write itself is never the later one:
    // what planning it again plans cannot be overtaken in turn.
    const bool deleting = op.op == WriteOp::kDelete;
    if (deleting && !state.exists) continue;
    for (const auto& [field, id] : pending->second) {
      if (deleting ? id >= f.batch_id
                   : field.empty() && (id > f.batch_id || (!state.exists && id == f.batch_id))) {
        return true;
      }
    }
  }
  return false;
}

Result<bool> RetryDeadLetters(EngineState& es) {
  DUPLEX_ASSIGN_OR_RETURN(std::vector<DeadLetterRow> asked, es.store->ListDeadLetters(true));
  if (asked.empty()) return false;
  // The dead letters waiting for a retried one are retried with it, after it (ids ascend),
  // whether or not they were asked for: one parked after the request (a change that came
  // meanwhile) would otherwise hold the retried writes back, and they it.
  DUPLEX_ASSIGN_OR_RETURN(std::vector<DeadLetterRow> all, es.store->ListDeadLetters(false));
  std::set<int64_t> retried;
  for (const DeadLetterRow& d : asked) retried.insert(d.id);
  std::vector<DeadLetterRow> rows;
  for (DeadLetterRow& d : all) {
    if (retried.count(d.id) || retried.count(d.waits_for)) {
      retried.insert(d.id);
      rows.push_back(std::move(d));
    }
  }
  for (const DeadLetterRow& d : rows) {
    DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, es.store->Begin());
    DUPLEX_ASSIGN_OR_RETURN(PlanContext ctx, NewPlanContext(es));
    ResolveOutput out;
    if (es.Find(d.endpoint)) {  // else no longer in the config
      DUPLEX_RETURN_IF_ERROR(ReplanRefused(es, d.endpoint, d.batch.ops, ctx, out));
      for (const RowOp& op : d.batch.ops) {
        spdlog::info("endpoint={} collection={} key={} dead letter id={} retried", d.endpoint,
                     op.collection, op.key.dump(), d.id);
      }
    }
    DUPLEX_RETURN_IF_ERROR(StoreOutput(es, out, ctx));
    DUPLEX_RETURN_IF_ERROR(es.store->DeleteDeadLetter(d.id));
    DUPLEX_RETURN_IF_ERROR(txn.Commit());
  }
  return !rows.empty();
}

Result<bool> PropagateResolutions(EngineState& es) {
  DUPLEX_ASSIGN_OR_RETURN(std::vector<ConflictRow> rows, es.store->PendingResolutions());
  for (const ConflictRow& c : rows) {
    DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, es.store->Begin());
    std::map<std::string, RecordState> states;
    DUPLEX_RETURN_IF_ERROR(es.store->LoadRecords(c.collection, {c.key_text}, states));
    DUPLEX_ASSIGN_OR_RETURN(PlanContext ctx, NewPlanContext(es));
    ResolveOutput out;
    auto it = states.find(c.key_text);
    if (it != states.end()) {
      RecordState& state = it->second;
      const std::string record = RecordKey{c.collection, c.key_text}.ToString();
      const std::vector<std::string> before =
          state.exists ? ParentRecords(es, c.collection, state.values) : std::vector<std::string>();
      es.resolver->ResolveManual(c.collection, c.field, c.resolution, es.env->WallMs(), ctx, state,
                                 out);
      // The chosen value may be a reference: the index follows it.
      if (state.exists) {
        DUPLEX_RETURN_IF_ERROR(
            UpdateRefIndex(es, record, before, ParentRecords(es, c.collection, state.values)));
      }
      DUPLEX_RETURN_IF_ERROR(es.store->SaveRecord(c.collection, c.key_text, state));
    }
    DUPLEX_RETURN_IF_ERROR(StoreOutput(es, out, ctx));
    DUPLEX_RETURN_IF_ERROR(es.store->MarkPropagated(c.id));
    DUPLEX_RETURN_IF_ERROR(txn.Commit());
    spdlog::info("conflict id={} collection={} key={} field={} resolved ({}): propagating {}", c.id,
                 c.collection, c.key_text, c.field, c.status, ValueToDisplay(c.resolution));
  }
  return !rows.empty();
}

Result<bool> ParkedWrite(EngineState& es, const EndpointState& ep, const std::string& record,
                         const std::function<bool(const RowOp&)>& match) {
  if (!ep.parked.count(record)) return false;
  DUPLEX_ASSIGN_OR_RETURN(std::vector<DeadLetterRow> letters, es.store->ListDeadLetters(false));
  for (const DeadLetterRow& d : letters) {
    if (d.endpoint != ep.name) continue;
    for (const RowOp& op : d.batch.ops) {
      if (es.planner->RecordOf(op) == record && match(op)) return true;
    }
  }
  return false;
}

}  // namespace duplex
