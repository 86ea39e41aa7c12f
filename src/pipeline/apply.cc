#include "pipeline/apply.h"

#include <algorithm>
#include <set>

#include "pipeline/dead_letters.h"
#include "pipeline/resolve.h"
#include "util/json_value.h"
#include "util/log.h"

namespace duplex {

Status RecordLedger(EngineState& es, const EndpointState& ep,
                    const std::vector<ApplyBatch>& batches) {
  // Before the writes reach the endpoint: its capture may show them before the apply returns,
  // or after a crash that lost the apply's reply.
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, es.store->Begin());
  for (const ApplyBatch& b : batches) {
    std::vector<std::string> keys;
    keys.reserve(b.ops.size());
    for (const RowOp& op : b.ops) {
      // A collection no longer in the sync model has no key fields to name its records by,
      // and its changes are not matched against the ledger (MatchLedger): not recorded.
      const CollectionModel* model = es.FindModel(op.collection);
      keys.push_back(model ? KeyText(op.key, model->config->key) : std::string());
    }
    DUPLEX_RETURN_IF_ERROR(es.store->RecordLedger(ep.name, b.id, b.ops, keys));
  }
  return txn.Commit();
}

std::vector<std::vector<ApplyBatch>> ApplyCalls(const Capabilities& caps,
                                                std::vector<ApplyBatch> batches) {
  std::vector<std::vector<ApplyBatch>> calls;
  const size_t max = caps.max_apply_rows;
  auto rows_of = [](const std::vector<ApplyBatch>& bs) {
    size_t n = 0;
    for (const ApplyBatch& b : bs) n += b.ops.size();
    return n;
  };
  if (max == 0 || rows_of(batches) <= max) {
    calls.push_back(std::move(batches));
    return calls;
  }
  std::vector<ApplyBatch> call;
  size_t rows = 0;
  auto flush = [&] {
    if (!call.empty()) calls.push_back(std::move(call));
    call.clear();
    rows = 0;
  };
  for (ApplyBatch& b : batches) {
    if (rows + b.ops.size() <= max) {  // whole batches while they fit
      rows += b.ops.size();
      call.push_back(std::move(b));
      continue;
    }
    flush();
    if (b.ops.size() <= max || caps.atomic_applied_id) {
      // A sink that skips batches by their id (AppliedId) takes a batch in one call: a second
      // call with the same id would be skipped. Over the limit, it goes alone.
      rows = b.ops.size();
      call.push_back(std::move(b));
      if (rows >= max) flush();
      continue;
    }
    // Idempotent writes (no applied id): the batch in parts of at most `max` rows, each source
    // transaction (a unit: TxnEnd) whole in one part, unless it alone is over the limit (P7).
    ApplyBatch part{b.id, {}};
    size_t i = 0;
    while (i < b.ops.size()) {
      const size_t end = TxnEnd(b.ops, i);
      const size_t unit = end - i;
      if (!part.ops.empty() && part.ops.size() + unit > max) {
        calls.push_back({std::move(part)});
        part = ApplyBatch{b.id, {}};
      }
      for (; i < end; ++i) {
        part.ops.push_back(std::move(b.ops[i]));
        if (part.ops.size() == max) {
          calls.push_back({std::move(part)});
          part = ApplyBatch{b.id, {}};
        }
      }
    }
    if (!part.ops.empty()) {
      rows = part.ops.size();
      call.push_back(std::move(part));
    }
  }
  flush();
  return calls;
}

namespace {

// Apply through ApplyCalls: one call after the other, their results added up. The first error
// ends it (the calls before it have committed: applying them again is skipped by id, or
// idempotent).
Result<ApplyResult> ApplyInCalls(EndpointState& ep, const std::vector<ApplyBatch>& batches,
                                 bool isolate_txns) {
  if (ep.caps.max_apply_rows == 0) return ep.connector->Apply(batches, isolate_txns);
  ApplyResult total;
  for (const std::vector<ApplyBatch>& call : ApplyCalls(ep.caps, batches)) {
    DUPLEX_ASSIGN_OR_RETURN(ApplyResult r, ep.connector->Apply(call, isolate_txns));
    total.applied += r.applied;
    total.rejected += r.rejected;
    total.skipped_batches += r.skipped_batches;
    for (FailedOp& f : r.failed) total.failed.push_back(std::move(f));
    for (NoEffect& n : r.no_effect) total.no_effect.push_back(std::move(n));
  }
  return total;
}

}  // namespace

Result<bool> ApplyTo(EngineState& es, EndpointState& ep) {
  const auto now = es.env->Now();
  if (now < ep.refused_retry_at) {
    es.news_pending = true;  // a refused transaction is retried soon: not idle
    return false;
  }
  // At most what one call takes (Capabilities::max_apply_rows): a larger first batch comes
  // alone, and ApplyCalls splits it where the sink allows.
  size_t rows = es.config.engine.batch_rows;
  if (ep.caps.max_apply_rows > 0) rows = std::min(rows, ep.caps.max_apply_rows);
  DUPLEX_ASSIGN_OR_RETURN(std::vector<ApplyBatch> batches,
                          es.store->ReadOutbox(ep.name, rows, &es.fresh_outbox[ep.name]));
  if (batches.empty()) {
    ep.held_since.reset();
    return false;
  }
  if (ep.caps.apply_hold.count() > 0 && ep.last_error.empty()) {
    // Held so that more changes join one call (Capabilities::apply_hold), until the endpoint's
    // capture has news, the hold runs out, or one call's worth is waiting. Not while the
    // endpoint fails: its retries (backoff) would pass for successes.
    if (!ep.held_since) ep.held_since = now;
    size_t ops = 0;
    for (const ApplyBatch& b : batches) ops += b.ops.size();
    const bool news = ep.last_news && *ep.last_news > *ep.held_since;
    if (!news && now - *ep.held_since < ep.caps.apply_hold && ops < rows) {
      es.news_pending = true;  // not idle: writes are waiting
      return false;
    }
    ep.held_since.reset();
  }
  const int64_t last_id = batches.back().id;
  // Transactions that write a record a parked transaction holds, or refer to a row it would
  // have inserted, wait for it instead of failing (or overtaking it); the others flow.
  DUPLEX_RETURN_IF_ERROR(LoadParked(es, ep));
  std::vector<std::pair<FailedOp, int64_t>> held = HoldDependents(es, ep, batches);
  if (!ep.caps.markers) {
    if (ep.unsure_upto < 0) {
      // Every batch planned before this process's first apply may have been sent by an earlier
      // process. (Read here, not at open: commands that only look write nothing.)
      DUPLEX_ASSIGN_OR_RETURN(const ApplyId next, es.store->AllocateApplyIds(0));
      ep.unsure_upto = next - 1;
    }
    DUPLEX_RETURN_IF_ERROR(RecordLedger(es, ep, batches));
  }
  Result<ApplyResult> result = ApplyInCalls(ep, batches, /*isolate_txns=*/false);
  if (!result.ok()) {
    // Only transactions the target refuses (Refused: constraint, type) are parked; anything
    // else (busy, unreachable, disk) is the endpoint's trouble and is retried (status.h). A
    // sink without transactions may have taken some of the writes.
    if (!result.status().IsRefused()) {
      ep.unsure_upto = std::max(ep.unsure_upto, last_id);
      return result.status();
    }
    // A refusal may pass (a row the application was about to change, a lock timeout the
    // server reports as a constraint): try the whole apply again a few times first.
    if (++ep.refusals < kApplyAttempts) {
      spdlog::warn("endpoint={} apply refused (attempt {} of {}), retrying: {}", ep.name,
                   ep.refusals, kApplyAttempts, result.status().message());
      ep.refused_retry_at = now + std::chrono::milliseconds(250) * ep.refusals;
      es.news_pending = true;
      return false;
    }
    // Write transaction by transaction, park the refused ones with their reason, let the rest
    // flow.
    result = ApplyInCalls(ep, batches, /*isolate_txns=*/true);
    if (!result.ok()) {
      if (!result.status().IsRefused()) {
        ep.unsure_upto = std::max(ep.unsure_upto, last_id);
        return result.status();
      }
      // Not even one by one: park the batches whole.
      std::string reason = result.status().message();
      result = ApplyResult{};
      for (const ApplyBatch& b : batches) {
        result->failed.push_back(FailedOp{b.id, kWholeBatch, b.ops, reason});
      }
    }
  }
  ep.refusals = 0;
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, es.store->Begin());
  // record -> dead letter, parked by this apply: a refused transaction that writes or refers
  // to a record an earlier refused one writes (a child of a refused parent) waits for it.
  std::map<std::string, int64_t> parked_now;
  // Refused transactions with a write that a later one has overtaken: a parent's delete
  // refused for a row that refers to it, where the parent was made again since; a child's
  // insert refused for its absent parent, where the child was deleted since. Planned again
  // whole from their records' current state instead of parked. (What that plans is an insert
  // or update of a live record, or a delete of a deleted one: neither can be overtaken in
  // turn.)
  std::vector<bool> superseded(result->failed.size());
  for (size_t i = 0; i < superseded.size(); ++i) {
    DUPLEX_ASSIGN_OR_RETURN(superseded[i], Superseded(es, ep.name, result->failed[i]));
  }
  PlanContext replan_ctx;
  ResolveOutput replanned;
  for (size_t i = 0; i < superseded.size(); ++i) {
    if (!superseded[i]) continue;
    const FailedOp& f = result->failed[i];
    if (replan_ctx.apply_ids.empty()) {
      DUPLEX_ASSIGN_OR_RETURN(replan_ctx, NewPlanContext(es));
    }
    spdlog::info(
        "endpoint={} collection={} key={} refused transaction of {} writes planned "
        "again (its records were written since): {}",
        ep.name, f.ops.front().collection, f.ops.front().key.dump(), f.ops.size(), f.reason);
    DUPLEX_RETURN_IF_ERROR(ReplanRefused(es, ep.name, f.ops, replan_ctx, replanned));
  }
  if (!replan_ctx.apply_ids.empty()) DUPLEX_RETURN_IF_ERROR(StoreOutput(es, replanned, replan_ctx));
  for (size_t i = 0; i < superseded.size(); ++i) {
    if (superseded[i]) continue;
    const FailedOp& f = result->failed[i];
    const int64_t waits_for = ParkedDependency(*es.planner, parked_now, f.ops);
    const RowOp* first = f.ops.empty() ? nullptr : &f.ops.front();
    spdlog::error(
        "endpoint={} collection={} key={} transaction of {} writes parked as dead letter: {}",
        ep.name, first ? first->collection : "", first ? first->key.dump() : "", f.ops.size(),
        f.reason);
    DUPLEX_ASSIGN_OR_RETURN(
        int64_t id, es.store->AddDeadLetter(ep.name, ApplyBatch{f.batch_id, f.ops}, f.reason,
                                            es.env->WallMs(), waits_for));
    for (const RowOp& op : f.ops) parked_now.emplace(es.planner->RecordOf(op), id);
  }
  for (const auto& [f, waits_for] : held) {
    const RowOp& first = f.ops.front();
    spdlog::warn(
        "endpoint={} collection={} key={} transaction of {} writes waits for dead letter {}",
        ep.name, first.collection, first.key.dump(), f.ops.size(), waits_for);
    DUPLEX_RETURN_IF_ERROR(es.store
                               ->AddDeadLetter(ep.name, ApplyBatch{f.batch_id, f.ops}, f.reason,
                                               es.env->WallMs(), waits_for)
                               .status());
  }
  // A write that found nothing to do never shows in capture: its ledger entries go, or another
  // writer's delete of the row would be taken for duplex's (docs/DESIGN.md §3.4). Unless the
  // batch may have landed in an earlier attempt, whose echo may still be on its way.
  for (const NoEffect& n : result->no_effect) {
    if (n.batch_id <= ep.unsure_upto) continue;
    const CollectionModel* model = es.FindModel(n.op.collection);
    if (!model) continue;
    DUPLEX_RETURN_IF_ERROR(
        es.store->ForgetLedger(ep.name, n.batch_id, n.op, KeyText(n.op.key, model->config->key)));
  }
  DUPLEX_RETURN_IF_ERROR(es.store->DeleteOutbox(ep.name, last_id));
  Counters counters;
  counters.applied = static_cast<int64_t>(result->applied);
  counters.rejected = static_cast<int64_t>(result->rejected);
  counters.dead_letters = static_cast<int64_t>(result->failed.size() + held.size());
  DUPLEX_RETURN_IF_ERROR(es.store->AddCounters(ep.name, counters));
  DUPLEX_RETURN_IF_ERROR(txn.Commit());
  ep.applied_since_poll = true;
  ObserveApplied(es, ep, batches, *result);
  return true;
}

void ObserveApplied(EngineState& es, const EndpointState& ep,
                    const std::vector<ApplyBatch>& batches, const ApplyResult& result) {
  // Row writes committed on the target, by collection (refused rows left out), and the time
  // from each causing change's commit on its source to now, when the target has committed.
  std::set<std::pair<int64_t, int64_t>> failed;
  for (const FailedOp& f : result.failed) failed.insert({f.batch_id, f.txn});
  const double now = es.env->WallMs();
  size_t rows = 0;
  std::pair<std::string, std::string> cell{ep.name, ""};
  int64_t* applied = nullptr;
  std::pair<std::string, std::string> route{"", ep.name};
  Histogram* latency = nullptr;
  for (const ApplyBatch& b : batches) {
    for (const RowOp& op : b.ops) {
      ++rows;
      if (!failed.empty() && (failed.count({b.id, op.txn}) || failed.count({b.id, kWholeBatch}))) {
        continue;
      }
      if (!applied || op.collection != cell.second) {
        cell.second = op.collection;
        applied = &es.telemetry.applied[cell];
      }
      ++*applied;
      if (op.source_commit_ms <= 0) continue;
      if (!latency || op.source != route.first) {
        route.first = op.source;
        latency = &es.telemetry.latency.try_emplace(route, LatencyBuckets()).first->second;
      }
      latency->Observe(std::max(0.0, now - op.source_commit_ms) / 1000);
    }
  }
  EndpointTelemetry& t = es.telemetry.endpoints[ep.index];
  t.batch_rows.Observe(static_cast<double>(rows));
  t.writes_rejected += static_cast<int64_t>(result.rejected);
}

}  // namespace duplex
