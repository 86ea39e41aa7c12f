#include "pipeline/resolve.h"

#include <algorithm>
#include <functional>

#include "pipeline/dead_letters.h"
#include "pipeline/references.h"
#include "util/json_value.h"
#include "util/log.h"

namespace duplex {

namespace {

using MergeChange = std::function<Status(const Change&, const std::string& key_text)>;

// A truncate from `ep` (every row of the collection gone there at once) is what it means for
// the collection: a delete from `ep` of every record it held at that point of its stream, each
// merged like a delete it captured (`merge`), at the truncate's position and in its
// transaction, so every other endpoint deletes its rows in one transaction and a concurrent
// update elsewhere meets it as any delete (on_delete_conflict, DESIGN §4 "Truncate"). Every
// record of the collection is loaded into `states`: one step holds them all (a P9 limit).
Status ResolveTruncate(EngineState& es, const Change& truncate, const EndpointState& ep,
                       int64_t watermark, RecordStates& states, const MergeChange& merge) {
  const CollectionModel* model = es.resolver->Find(truncate.collection);
  if (!model) return Status::Ok();  // a collection removed from the config
  const std::string& collection = model->config->name;
  std::map<std::string, RecordState>& records = states[collection];
  constexpr size_t kChunk = 1000;
  std::string after;
  while (true) {
    DUPLEX_ASSIGN_OR_RETURN(std::vector<std::string> keys,
                            es.store->LiveKeys(collection, after, kChunk));
    if (keys.empty()) break;
    after = keys.back();
    const bool last = keys.size() < kChunk;
    // A record this entry has loaded already may have changed in memory: keep that state.
    std::erase_if(keys, [&](const std::string& k) { return records.count(k) != 0; });
    DUPLEX_RETURN_IF_ERROR(es.store->LoadRecords(collection, keys, records));
    if (last) break;
  }
  // Records this entry made that the store does not hold yet are in `records` too.
  std::vector<std::pair<std::string, Row>> held;
  for (const auto& [key_text, state] : records) {
    if (!state.exists || !state.known.count(ep.name)) continue;
    // Inserted there by duplex after the truncate (its marker is not before it in the stream,
    // so its apply committed later, or has not yet): the truncate did not remove that row.
    if (auto p = state.pending.find(ep.name); p != state.pending.end()) {
      if (auto row = p->second.find(""); row != p->second.end() && row->second > watermark) {
        continue;
      }
    }
    Row key = Row::object();
    for (const std::string& k : model->config->key) {
      key[k] = state.values.is_object() && state.values.contains(k) ? state.values[k] : Value();
    }
    held.emplace_back(key_text, std::move(key));
  }
  for (auto& [key_text, key] : held) {
    Change del;
    del.op = Op::kDelete;
    del.collection = collection;
    del.key = std::move(key);
    del.position = truncate.position;
    del.commit_ms = truncate.commit_ms;
    del.txn = truncate.txn;
    DUPLEX_RETURN_IF_ERROR(merge(del, key_text));
  }
  std::string table = "?";
  for (const CollectionEndpoint& ce : model->config->endpoints) {
    if (ce.endpoint == ep.name) table = ce.table;
  }
  spdlog::info(
      "endpoint={} collection={} table={} truncated: {} records deleted on the other "
      "endpoints",
      ep.name, collection, table, held.size());
  return Status::Ok();
}

}  // namespace

Status StoreOutput(EngineState& es, ResolveOutput& out, const PlanContext& ctx) {
  const double now = es.env->WallMs();
  for (const std::string& target : out.observe) out.writes[target];  // even if empty
  for (auto& [target, ops] : out.writes) {
    // Writes taken back in this step (references.cc) are marked, not removed.
    if (auto back = out.taken_back.find(target); back != out.taken_back.end()) {
      std::vector<RowOp> kept;
      kept.reserve(ops.size());
      for (size_t i = 0; i < ops.size(); ++i) {
        if (!back->second.count(i)) kept.push_back(std::move(ops[i]));
      }
      ops = std::move(kept);
    }
    if (ops.empty() && !out.observe.count(target)) continue;
    es.planner->Order(target, ops);
    ApplyBatch batch{ctx.apply_ids.at(target), std::move(ops)};
    DUPLEX_RETURN_IF_ERROR(es.store->AddOutbox(target, batch));
    // Like fresh journal entries: kept decoded for the applier, a few at most (P9).
    std::map<int64_t, ApplyBatch>& cache = es.fresh_outbox[target];
    if (cache.size() < kMaxFreshBatches) cache.emplace(batch.id, std::move(batch));
  }
  for (const ConflictRecord& c : out.conflicts) {
    DUPLEX_ASSIGN_OR_RETURN(int64_t id, es.store->AddConflict(c, now));
    ++es.telemetry.conflicts[{c.collection, c.field.empty() ? "(row)" : c.field, c.policy}];
    if (c.merged) {
      // Both edits kept: nothing was lost, so not worth a line each (a busy counter merges
      // thousands a minute); `duplex conflicts list --all` has them.
      spdlog::debug("merged id={} collection={} key={} field={} policy={} value={}", id,
                    c.collection, c.key_text, c.field + c.path, c.policy, c.result.dump());
    } else if (c.open) {
      spdlog::warn(
          "conflict id={} collection={} key={} field={} policy=manual: parked until "
          "`duplex conflicts resolve {}`",
          id, c.collection, c.key_text, c.field, id);
    } else {
      // A merge field's same-path conflict names its path: field=doc/address/city.
      spdlog::info("conflict id={} collection={} key={} field={} policy={} winner={}", id,
                   c.collection, c.key_text, c.field.empty() ? "(row)" : c.field + c.path, c.policy,
                   c.winner);
    }
  }
  for (const ConflictValueUpdate& u : out.conflict_updates) {
    DUPLEX_RETURN_IF_ERROR(es.store->UpdateOpenConflict(u));
  }
  return Status::Ok();
}

Status ResolveEntry(EngineState& es, const JournalEntry& entry) {
  EndpointState* ep = es.Find(entry.endpoint);
  if (!ep) {
    // An endpoint removed from the config: its captured changes have nowhere to go.
    spdlog::warn("journal entry {} from unknown endpoint '{}' dropped", entry.id, entry.endpoint);
    return es.store->DeleteJournal(entry.id);
  }
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, es.store->Begin());
  // Load every record the batch touches at once.
  std::map<std::string, std::vector<std::string>> keys;
  std::vector<std::string> key_texts(entry.batch.changes.size());
  for (size_t i = 0; i < entry.batch.changes.size(); ++i) {
    const Change& c = entry.batch.changes[i];
    if (c.op == Op::kMarker || c.op == Op::kTruncate) continue;
    const CollectionModel* model = es.resolver->Find(c.collection);
    if (!model) continue;  // collection removed from the config
    key_texts[i] = KeyText(c.key, model->config->key);
    keys[c.collection].push_back(key_texts[i]);
  }
  RecordStates states;
  for (const auto& [collection, ks] : keys) {
    DUPLEX_RETURN_IF_ERROR(es.store->LoadRecords(collection, ks, states[collection]));
  }
  DUPLEX_ASSIGN_OR_RETURN(PlanContext ctx, NewPlanContext(es));
  if (!es.planner->references().empty()) {
    // What each endpoint has parked: a parent's refused delete may wait for a row in this
    // batch (CheckReferences).
    for (EndpointState& e : es.endpoints) DUPLEX_RETURN_IF_ERROR(LoadParked(es, e));
  }
  ResolveOutput out;
  std::map<std::string, size_t> traced;  // target -> its writes given a source commit time
  int64_t watermark = ep->watermark;
  // Merges one change of a record into its state (`key_text`: the record's key text).
  auto merge = [&](const Change& c, const std::string& key_text) -> Status {
    RecordState& state = states[c.collection][key_text];
    if (c.op == Op::kRejected) {
      es.resolver->Correct(c, ep->name, ctx, state, out);
    } else if (c.op == Op::kEcho) {
      if (!Resolver::Unknown(state)) es.resolver->Echo(c, ep->name, ctx, state, out);
    } else if (c.op == Op::kPresent) {
      if (!Resolver::Unknown(state)) {
        es.resolver->Observe(c, ep->name, ctx, state, out);
      } else if (c.after.is_object()) {
        // A row duplex has never seen: copied, like a row of the initial load.
        Change row = c;
        row.op = Op::kInsert;
        row.snapshot = true;
        es.resolver->Merge(row, ep->name, watermark, ctx, state, out);
        if (es.planner->Involves(c.collection)) {
          DUPLEX_RETURN_IF_ERROR(CheckReferences(es, row, ep->name, watermark,
                                                 RecordKey{c.collection, key_text}.ToString(),
                                                 false, {}, traced, states, ctx, out));
        }
      }
    } else if (!es.planner->Involves(c.collection)) {
      es.resolver->Merge(c, ep->name, watermark, ctx, state, out);
    } else {
      const bool was_live = state.exists;
      const std::vector<std::string> parents_before =
          was_live ? ParentRecords(es, c.collection, state.values) : std::vector<std::string>();
      es.resolver->Merge(c, ep->name, watermark, ctx, state, out);
      DUPLEX_RETURN_IF_ERROR(CheckReferences(es, c, ep->name, watermark,
                                             RecordKey{c.collection, key_text}.ToString(), was_live,
                                             parents_before, traced, states, ctx, out));
    }
    return Status::Ok();
  };
  for (size_t i = 0; i < entry.batch.changes.size(); ++i) {
    const Change& c = entry.batch.changes[i];
    // Writes planned from here on have seen the endpoint's stream up to this change.
    ctx.seen[ep->name] = c.position;
    if (c.op == Op::kMarker) {
      watermark = std::max(watermark, c.apply_id);
      ctx.watermarks[ep->name] = watermark;
      continue;
    }
    if (c.op == Op::kTruncate) {
      DUPLEX_RETURN_IF_ERROR(ResolveTruncate(es, c, *ep, watermark, states, merge));
    } else if (key_texts[i].empty()) {
      continue;  // a collection removed from the config
    } else {
      DUPLEX_RETURN_IF_ERROR(merge(c, key_texts[i]));
    }
    // For the sync latency metric: the writes this change caused carry its commit time (none
    // for the initial load's snapshot rows and for corrections).
    for (auto& [target, ops] : out.writes) {
      size_t& done = traced[target];
      for (; done < ops.size(); ++done) {
        ops[done].txn = c.txn;  // one source transaction: one unit on the target (P7)
        if (c.op == Op::kRejected || c.op == Op::kPresent || c.snapshot || c.commit_ms <= 0)
          continue;
        ops[done].source = ep->name;
        ops[done].source_commit_ms = c.commit_ms;
      }
    }
  }
  for (const auto& [collection, records] : states) {
    for (const auto& [key, state] : records) {
      DUPLEX_RETURN_IF_ERROR(es.store->SaveRecord(collection, key, state));
    }
  }
  const size_t conflicts = out.conflicts.size();
  DUPLEX_RETURN_IF_ERROR(StoreOutput(es, out, ctx));
  DUPLEX_RETURN_IF_ERROR(es.store->SetResolved(ep->name, watermark, entry.batch.end));
  DUPLEX_RETURN_IF_ERROR(es.store->DeleteJournal(entry.id));
  Counters counters;
  counters.conflicts = static_cast<int64_t>(conflicts);
  DUPLEX_RETURN_IF_ERROR(es.store->AddCounters(ep->name, counters));
  DUPLEX_RETURN_IF_ERROR(txn.Commit());
  ep->watermark = watermark;
  ep->resolved = std::max(ep->resolved, entry.batch.end);
  es.synced_changes += static_cast<int64_t>(out.changes);
  return Status::Ok();
}

Result<bool> ResolveJournal(EngineState& es) {
  DUPLEX_RETURN_IF_ERROR(EnsureRefIndex(es));
  DUPLEX_ASSIGN_OR_RETURN(auto heads, es.store->JournalHeads(2));
  for (const auto& [id, endpoint] : heads) {
    while (!es.fresh.empty() && es.fresh.front().id < id) es.fresh.pop_front();
    Status st;
    if (!es.fresh.empty() && es.fresh.front().id == id) {
      JournalEntry entry = std::move(es.fresh.front());
      es.fresh.pop_front();
      st = ResolveEntry(es, entry);
    } else {
      DUPLEX_ASSIGN_OR_RETURN(ChangeBatch batch, es.store->ReadJournalBatch(id));
      st = ResolveEntry(es, JournalEntry{id, endpoint, std::move(batch)});
    }
    if (!st.ok()) {
      // The transaction rolled back, and with it the apply ids of batches already cached:
      // they would be handed out again for other batches.
      es.fresh_outbox.clear();
      return st;
    }
  }
  return !heads.empty();
}

}  // namespace duplex
