#include "pipeline/capture.h"

#include <algorithm>
#include <chrono>

#include "pipeline/resolve.h"
#include "util/json_value.h"
#include "util/log.h"

namespace duplex {

Status InstallOn(EngineState& es, EndpointState& ep) {
  DUPLEX_ASSIGN_OR_RETURN(EndpointProgress p, es.store->Progress(ep.name));
  if (!p.exists) {
    // This state file has never captured from the endpoint (a new endpoint, or a state file
    // deleted to start over): whatever capture is installed belongs to no state we have.
    // Start it afresh, so that the install snapshots every row for the initial load.
    DUPLEX_RETURN_IF_ERROR(ep.connector->Uninstall());
  } else {
    DUPLEX_RETURN_IF_ERROR(CheckRestored(es, ep, p));
  }
  // The first install may take a while (a replication slot waits for open transactions; the
  // rows already there are read for the initial load): say what is happening.
  const auto started = std::chrono::steady_clock::now();
  if (!p.exists) {
    spdlog::info(
        "endpoint={} installing change capture (first run: the initial load reads its "
        "rows next)",
        ep.name);
  }
  DUPLEX_RETURN_IF_ERROR(ep.connector->Install());
  if (!p.exists) {
    spdlog::info("endpoint={} change capture installed in {:.1f}s", ep.name,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  // Batches applied under an earlier state file carry ids this one may hand out again;
  // they would be skipped as replays. (A sink that does not store them skips nothing.)
  if (ep.caps.atomic_applied_id) {
    DUPLEX_ASSIGN_OR_RETURN(ApplyId applied, ep.connector->AppliedId());
    DUPLEX_RETURN_IF_ERROR(es.store->EnsureApplyIdsAbove(applied));
  }
  if (!p.exists) {
    DUPLEX_RETURN_IF_ERROR(es.store->AppendJournal(ep.name, ChangeBatch{}).status());
  }
  ep.installed = true;
  return Status::Ok();
}

Status CheckRestored(EngineState& es, EndpointState& ep, const EndpointProgress& p) {
  DUPLEX_ASSIGN_OR_RETURN(RestoreCheck check, ep.connector->CheckRestored(p.capture, p.acked));
  // Every apply records its id on the endpoint, in its own transaction: the endpoint cannot
  // hold an older one than a marker it has shown, unless it went back in time.
  ApplyId applied = p.watermark;
  if (ep.caps.atomic_applied_id) {
    DUPLEX_ASSIGN_OR_RETURN(applied, ep.connector->AppliedId());
  }
  std::string reason = check.reason;
  if (applied < p.watermark) {
    reason += (reason.empty() ? "" : "; ") +
              fmt::format("it holds duplex's writes up to apply id {}, but had shown {} before",
                          applied, p.watermark);
  }
  if (reason.empty()) return Status::Ok();
  spdlog::warn(
      "endpoint '{}' went back in time (a backup restored?): {}. Capturing the changes made there "
      "since, then bringing its rows back to the agreed values",
      ep.name, reason);
  // What was captured before the restore is merged as captured, before the positions start
  // again: the journal's positions are of the endpoint's old history.
  while (true) {
    DUPLEX_ASSIGN_OR_RETURN(bool more, ResolveJournal(es));
    if (!more) break;
  }
  DUPLEX_RETURN_IF_ERROR(es.store->ResetRestored(ep.name, check.resume, applied));
  DUPLEX_ASSIGN_OR_RETURN(EndpointProgress now, es.store->Progress(ep.name));
  es.fresh_outbox.erase(ep.name);
  ep.capture = ep.resolved = ep.acked = check.resume;
  ep.watermark = applied;
  ep.guard_pos = now.guard_pos;
  ep.guard_ms = now.guard_ms;
  ep.rescan = true;
  ep.more = true;
  return Status::Ok();
}

Status Rescan(EngineState& es, EndpointState& ep) {
  DUPLEX_RETURN_IF_ERROR(es.store->ClearScanned());
  const size_t chunk_rows = std::max<size_t>(es.config.engine.batch_rows, 1);
  int64_t rows = 0, absent = 0;
  // Each chunk a journal entry of kPresent changes at the capture position: the resolver takes
  // them after everything captured before, in order.
  auto journal = [&](const std::string& collection, std::vector<Change>&& changes,
                     const std::vector<std::string>& keys) -> Status {
    ChangeBatch batch{std::move(changes), ep.capture};
    for (Change& c : batch.changes) c.position = ep.capture;
    DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, es.store->Begin());
    if (!keys.empty()) DUPLEX_RETURN_IF_ERROR(es.store->AddScanned(collection, keys));
    DUPLEX_RETURN_IF_ERROR(es.store->AppendJournal(ep.name, batch).status());
    return txn.Commit();
  };
  for (const CollectionModel& m : es.models) {
    if (std::find(m.endpoints.begin(), m.endpoints.end(), ep.name) == m.endpoints.end()) continue;
    const std::string& collection = m.config->name;
    const std::vector<std::string>& key_fields = m.config->key;
    DUPLEX_RETURN_IF_ERROR(
        ep.connector->Scan(collection, chunk_rows, [&](std::vector<Change>&& chunk) -> Status {
          std::vector<std::string> keys;
          keys.reserve(chunk.size());
          for (const Change& c : chunk) keys.push_back(KeyText(c.key, key_fields));
          rows += static_cast<int64_t>(chunk.size());
          return journal(collection, std::move(chunk), keys);
        }));
    // The records it holds no row of.
    std::string after;
    while (true) {
      DUPLEX_ASSIGN_OR_RETURN(std::vector<std::string> missing,
                              es.store->Unscanned(collection, after, chunk_rows));
      if (missing.empty()) break;
      after = missing.back();
      std::vector<Change> changes;
      size_t unit = 0;
      for (const std::string& text : missing) {
        Change c;
        c.op = Op::kPresent;
        c.collection = collection;
        c.key = Row::object();
        const Value values = Value::parse(text, nullptr, false);
        for (size_t i = 0; i < key_fields.size(); ++i) {
          c.key[key_fields[i]] = values.is_array() && i < values.size() ? values[i] : Value();
        }
        c.txn = MadeUpTxn(unit++);  // one unit each
        changes.push_back(std::move(c));
      }
      absent += static_cast<int64_t>(changes.size());
      DUPLEX_RETURN_IF_ERROR(journal(collection, std::move(changes), {}));
    }
  }
  DUPLEX_RETURN_IF_ERROR(es.store->SetRescanned(ep.name));
  ep.rescan = false;
  spdlog::info(
      "endpoint '{}': read back {} rows and {} records it holds no row of; the writes that bring "
      "it to the agreed values follow",
      ep.name, rows, absent);
  return Status::Ok();
}

Status MatchLedger(EngineState& es, const EndpointState& ep, std::vector<Change>& changes) {
  DUPLEX_ASSIGN_OR_RETURN(bool any, es.store->AnyLedger(ep.name));
  if (!any) return Status::Ok();
  std::vector<Change> out;
  out.reserve(changes.size());
  for (Change& c : changes) {
    const CollectionModel* model = c.collection.empty() ? nullptr : es.FindModel(c.collection);
    if (!model || c.snapshot ||
        (c.op != Op::kInsert && c.op != Op::kUpdate && c.op != Op::kDelete)) {
      out.push_back(std::move(c));
      continue;
    }
    const std::string key_text = KeyText(c.key, model->config->key);
    DUPLEX_ASSIGN_OR_RETURN(auto entries, es.store->LedgerOf(ep.name, c.collection, key_text));
    if (entries.empty()) {
      out.push_back(std::move(c));
      continue;
    }
    // The newest write of `field` whose value `v` is (0: none): the stream shows duplex's
    // writes in order, and an older one may show after a newer was planned.
    auto written = [&](const std::string& field, const Value& v) -> ApplyId {
      auto it = entries.find(field);
      if (it == entries.end()) return 0;
      for (auto e = it->second.rbegin(); e != it->second.rend(); ++e) {
        if (ValuesEqual(e->value, v)) return e->apply_id;
      }
      return 0;
    };
    std::vector<std::pair<std::string, ApplyId>> consumed;
    auto echo_change = [&](ApplyId id, Row after) {
      Change echo;
      echo.op = Op::kEcho;
      echo.collection = c.collection;
      echo.key = c.key;
      echo.after = std::move(after);
      echo.position = c.position;
      echo.commit_ms = c.commit_ms;
      echo.txn = c.txn;
      echo.apply_id = id;
      return echo;
    };
    // apply id -> the fields (and key) it wrote with the values shown: one kEcho each.
    std::map<ApplyId, Row> echoes;
    auto echo_of = [&](ApplyId id) -> Row& {
      auto [it, fresh] = echoes.try_emplace(id);
      if (fresh) it->second = c.key.is_object() ? c.key : Row::object();
      return it->second;
    };
    if (c.op == Op::kDelete) {
      // The row is gone: duplex's delete, if it wrote one.
      ApplyId id = written("", Value());
      if (id == 0) {
        out.push_back(std::move(c));
        continue;
      }
      consumed.emplace_back("", id);
      DUPLEX_RETURN_IF_ERROR(es.store->DropLedger(ep.name, c.collection, key_text, consumed));
      out.push_back(echo_change(id, Row()));
      continue;
    }
    // Field by field: a value duplex wrote is its write showing; any other is an edit made
    // there (after it, or around it: the resolver's causal check tells). A rule the endpoint
    // ran in the same transaction (a Salesforce Flow) changes other fields: those are edits.
    size_t fields = 0, echoed = 0;
    for (const std::string& f : model->fields) {
      if (!c.after.is_object() || !c.after.contains(f)) continue;
      ++fields;
      const ApplyId id = written(f, c.after[f]);
      if (id == 0) continue;
      echo_of(id)[f] = c.after[f];
      consumed.emplace_back(f, id);
      ++echoed;
    }
    if (ApplyId id = written("", Value(true)); id != 0) {
      echo_of(id);  // its insert shows
      consumed.emplace_back("", id);
    }
    if (consumed.empty()) {
      out.push_back(std::move(c));
      continue;
    }
    DUPLEX_RETURN_IF_ERROR(es.store->DropLedger(ep.name, c.collection, key_text, consumed));
    for (auto& [id, after] : echoes) out.push_back(echo_change(id, std::move(after)));
    // Every value of the image is one duplex wrote: nothing was edited there.
    if (echoed < fields) out.push_back(std::move(c));
  }
  changes = std::move(out);
  return Status::Ok();
}

std::chrono::milliseconds PollInterval(const Capabilities& caps) {
  std::chrono::milliseconds interval = caps.min_poll_interval;
  if (caps.quota_calls > 0 && caps.quota_period.count() > 0) {
    // Polls alone never spend more than the quota (each is at least one call; the connector
    // paces the calls of its own it makes besides).
    const auto share =
        std::chrono::duration_cast<std::chrono::milliseconds>(caps.quota_period) / caps.quota_calls;
    interval = std::max(interval, share);
  }
  return std::max(interval, std::chrono::milliseconds(0));
}

Result<bool> PollNow(EngineState& es, EndpointState& ep) {
  if (ep.more) return true;
  // No more often than the endpoint declares worth it (Capabilities::min_poll_interval, the
  // quota): until then there is nothing new to be told, but the run is not idle either.
  const auto now = es.env->Now();
  const std::chrono::milliseconds interval = PollInterval(ep.caps);
  if (interval.count() > 0 && ep.last_poll && now - *ep.last_poll < interval) {
    // duplex's own writes since the last poll are still to show there: not idle.
    if (ep.applied_since_poll) es.news_pending = true;
    return false;
  }
  ep.last_poll = now;
  ep.applied_since_poll = false;
  DUPLEX_ASSIGN_OR_RETURN(bool changed, ep.connector->Poll());
  if (!changed) {
    ep.caught_up_at = es.env->Now();
    return false;
  }
  ep.last_news = now;
  // The poll has consumed the news: if the capture fails, the retry must capture without
  // polling first (found by the simulation, seed 51: a change stuck until the next).
  ep.more = true;
  return true;
}

Result<bool> CaptureFrom(EngineState& es, EndpointState& ep) {
  DUPLEX_ASSIGN_OR_RETURN(bool news, PollNow(es, ep));
  if (!news) return false;
  DUPLEX_ASSIGN_OR_RETURN(ChangeBatch batch,
                          ep.connector->Capture(ep.capture, es.config.engine.batch_rows));
  ep.more = batch.changes.size() >= es.config.engine.batch_rows;
  if (!ep.more) ep.caught_up_at = es.env->Now();
  // A connector may deliver again what it delivered before (a stream resent from an earlier
  // point after a reconnect, a poll with an overlap window): changes at or before the capture
  // position are in the journal already, and merging one twice would bring its old value back
  // over newer ones (found by the simulation, seeds 6, 32 and 33).
  std::erase_if(batch.changes, [&](const Change& c) { return c.position <= ep.capture; });
  if (!ep.guard_pos.IsStart()) {
    // An endpoint that went back in time delivers again changes captured before it did: the
    // ones at a position and a commit time both at most those captured then. A rejected write
    // of duplex's from then answers a write of the old history.
    std::erase_if(batch.changes, [&](const Change& c) {
      return c.position <= ep.guard_pos && c.op != Op::kMarker &&
             (c.op == Op::kRejected || c.commit_ms <= ep.guard_ms);
    });
  }
  if (ep.rescan) {
    // Its initial load made again (its capture objects were gone): what it holds, not edits.
    for (Change& c : batch.changes) {
      if (c.snapshot && c.op == Op::kInsert) c.op = Op::kPresent;
    }
  }
  if (!ep.caps.markers) {
    DUPLEX_RETURN_IF_ERROR(MatchLedger(es, ep, batch.changes));
  }
  if (batch.end <= ep.capture) {
    // The endpoint said more is coming (e.g. a PostgreSQL server still decoding a large
    // transaction) but nothing has arrived yet: nothing moved, yet it is not idle.
    es.news_pending = true;
    return false;
  }
  Counters counters;
  EndpointTelemetry& t = es.telemetry.endpoints[ep.index];
  std::pair<std::string, std::string> last{ep.name, ""};
  int64_t* captured = nullptr;
  for (const Change& c : batch.changes) {
    if (c.op == Op::kMarker || c.op == Op::kEcho) {
      ++counters.echoes;
      ++t.echoes_skipped;
    } else if (c.op != Op::kRejected) {
      ++counters.captured;
      if (!captured || c.collection != last.second) {
        last.second = c.collection;
        captured = &es.telemetry.captured[last];
      }
      ++*captured;
      if (c.snapshot) ++es.loaded_rows[last];
    } else {
      ++t.writes_rejected;
    }
  }
  int64_t id = 0;
  {
    DUPLEX_ASSIGN_OR_RETURN(sqlite::Txn txn, es.store->Begin());
    DUPLEX_ASSIGN_OR_RETURN(id, es.store->AppendJournal(ep.name, batch));
    DUPLEX_RETURN_IF_ERROR(es.store->AddCounters(ep.name, counters));
    DUPLEX_RETURN_IF_ERROR(txn.Commit());
  }
  ep.capture = batch.end;
  // Keep the batch just journaled at hand so that resolving it need not decode it again; a
  // few at most (P9), the rest is read back from the journal.
  if (id != 0 && es.fresh.size() < kMaxFreshBatches) {
    es.fresh.push_back(JournalEntry{id, ep.name, std::move(batch)});
  }
  return true;
}

// Pruning the source's changelog is housekeeping: only after the journal commit (so nothing
// the journal lacks is released), and not after every batch (it takes the source's write lock).
void AckCaptured(EngineState& es, EndpointState& ep, bool force) {
  auto now = es.env->Now();
  if (!force && now - ep.last_ack < std::chrono::milliseconds(500)) return;
  // The changelog after a planned write's `seen` position is what its compare-and-set asks
  // (RowOp::seen): keep it until the write is applied, and keep what is not yet resolved.
  Position upto = std::min(ep.capture, ep.resolved);
  Result<std::optional<Position>> min_seen = es.store->MinOutboxSeen(ep.name);
  if (!min_seen.ok()) return;
  if (min_seen->has_value()) upto = std::min(upto, **min_seen);
  if (upto <= ep.acked) return;
  Status st = ep.connector->Ack(upto);
  if (st.ok()) {
    ep.acked = upto;
    ep.last_ack = now;
    // After the endpoint recorded it (CheckRestored compares the two).
    (void)es.store->SetAcked(ep.name, upto);
  }
}

}  // namespace duplex
