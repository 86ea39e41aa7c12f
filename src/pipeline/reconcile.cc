#include "pipeline/reconcile.h"

#include <algorithm>

#include "util/json_value.h"
#include "util/log.h"

namespace duplex {

namespace {

// Each level splits a differing range into 2^kSplitBits ranges (256 digests a range at most).
constexpr int kSplitBits = 8;
// Splitting stops at this many bits of the key hash (2^40 ranges: one row each in practice).
constexpr int kMaxBits = 40;
// Once the differing ranges hold at most this many rows (on the endpoint holding most), their
// rows are read and compared field by field rather than split again.
constexpr int64_t kReadRows = 2000;
// What one digest costs on the wire, roughly (prefix, count, sum).
constexpr int64_t kDigestBytes = 24;

const Value& FieldOr(const Row& row, const std::string& f) {
  static const Value kNull;
  if (!row.is_object()) return kNull;
  auto it = row.find(f);
  return it == row.end() ? kNull : *it;
}

// The fields of `model` whose values differ between `a` and `b`.
std::vector<std::string> DifferingFields(const CollectionModel& m, const Row& a, const Row& b) {
  std::vector<std::string> out;
  for (const std::string& f : m.fields) {
    if (!ValuesEqual(FieldOr(a, f), FieldOr(b, f))) out.push_back(f);
  }
  return out;
}

Result<std::vector<EndpointState*>> EndpointsOf(EngineState& es, const CollectionModel& m) {
  std::vector<EndpointState*> eps;
  for (const std::string& name : m.endpoints) {
    EndpointState* ep = es.Find(name);
    if (!ep || !ep->open || !ep->installed || !ep->last_error.empty()) {
      const std::string why = !ep                       ? std::string("not in the config")
                              : !ep->last_error.empty() ? ep->last_error
                              : !ep->open               ? ep->open_error.message()
                                                        : std::string("capture not installed");
      return Status::Unavailable("endpoint '" + name + "': cannot compare collection '" +
                                 m.config->name + "': " + why);
    }
    eps.push_back(ep);
  }
  // The model leaves out endpoints that are not open: every endpoint of the collection counts.
  for (const CollectionConfig& cc : es.config.collections) {
    if (cc.name != m.config->name) continue;
    for (const CollectionEndpoint& ce : cc.endpoints) {
      if (std::find(m.endpoints.begin(), m.endpoints.end(), ce.endpoint) == m.endpoints.end()) {
        return Status::Unavailable("endpoint '" + ce.endpoint + "': cannot compare collection '" +
                                   cc.name + "': it could not be opened");
      }
    }
  }
  return eps;
}

Result<CollectionReconcile> CompareCollection(EngineState& es, const CollectionModel& m) {
  CollectionReconcile r;
  r.collection = m.config->name;
  r.endpoints = m.endpoints;
  DUPLEX_ASSIGN_OR_RETURN(std::vector<EndpointState*> eps, EndpointsOf(es, m));
  const size_t n = eps.size();
  KeyRanges within;
  within.collection = m.config->name;
  within.key = m.config->key;
  within.fields = m.config->key;
  within.fields.insert(within.fields.end(), m.fields.begin(), m.fields.end());
  // Level by level: the digests of the ranges that differed, split further.
  bool first = true;
  while (true) {
    std::map<uint64_t, std::vector<RangeDigest>> table;  // prefix -> each endpoint's digest
    for (size_t i = 0; i < n; ++i) {
      Result<std::vector<RangeDigest>> digests =
          eps[i]->connector->DigestRanges(within, kSplitBits);
      if (!digests.ok()) {
        return digests.status().WithContext("endpoint '" + eps[i]->name +
                                            "': digests of collection '" + r.collection + "'");
      }
      for (const RangeDigest& d : *digests) {
        std::vector<RangeDigest>& v = table[d.prefix];
        v.resize(n);
        v[i] = d;
        if (first) r.rows_compared += d.rows;
        r.bytes += kDigestBytes;
      }
    }
    r.ranges += static_cast<int64_t>(table.size());
    std::vector<uint64_t> differing;
    int64_t rows_in = 0;
    for (auto& [prefix, v] : table) {
      v.resize(n);
      bool same = true;
      int64_t most = 0;
      for (const RangeDigest& d : v) {
        same = same && d.rows == v[0].rows && d.sum == v[0].sum;
        most = std::max(most, d.rows);
      }
      if (same) continue;
      differing.push_back(prefix);
      rows_in += most;
    }
    within.bits += kSplitBits;
    within.prefixes = std::move(differing);
    r.ranges_differing = static_cast<int64_t>(within.prefixes.size());
    first = false;
    if (within.prefixes.empty()) return r;
    if (rows_in <= kReadRows || within.bits + kSplitBits > kMaxBits) break;
  }
  // The rows of the ranges that differ, compared field by field (values as a database sees
  // them: a range's digests may differ where the values agree, 2 against 2.0).
  std::map<std::string, std::pair<Row, std::vector<Row>>> by_key;
  const size_t chunk = std::max<size_t>(es.config.engine.batch_rows, 1);
  for (size_t i = 0; i < n; ++i) {
    Status st =
        eps[i]->connector->ScanRanges(within, chunk, [&](std::vector<Change>&& rows) -> Status {
          for (Change& c : rows) {
            auto& entry = by_key[KeyText(c.key, m.config->key)];
            entry.first = c.key;
            entry.second.resize(n);
            r.bytes += static_cast<int64_t>(c.after.dump().size());
            ++r.rows_read;
            entry.second[i] = std::move(c.after);
          }
          return Status::Ok();
        });
    if (!st.ok()) {
      return st.WithContext("endpoint '" + eps[i]->name + "': rows of collection '" + r.collection +
                            "'");
    }
  }
  std::vector<std::string> keys;
  for (auto& [key_text, entry] : by_key) {
    auto& [key, rows] = entry;
    rows.resize(n);
    RecordDiff d;
    const Row* first_row = nullptr;
    for (size_t i = 0; i < n; ++i) {
      if (!rows[i].is_object()) {
        d.missing = true;
        continue;
      }
      if (!first_row) {
        first_row = &rows[i];
        continue;
      }
      for (const std::string& f : DifferingFields(m, *first_row, rows[i])) {
        if (std::find(d.fields.begin(), d.fields.end(), f) == d.fields.end()) d.fields.push_back(f);
      }
    }
    if (!d.missing && d.fields.empty()) continue;
    d.collection = r.collection;
    d.key = key;
    d.key_text = key_text;
    for (size_t i = 0; i < n; ++i) d.rows[eps[i]->name] = std::move(rows[i]);
    keys.push_back(key_text);
    r.diffs.push_back(std::move(d));
  }
  // What duplex agreed for them. A field with an open manual conflict differs on purpose
  // until an operator resolves it.
  std::map<std::string, RecordState> states;
  if (!keys.empty()) DUPLEX_RETURN_IF_ERROR(es.store->LoadRecords(r.collection, keys, states));
  std::vector<RecordDiff> kept;
  for (RecordDiff& d : r.diffs) {
    auto it = states.find(d.key_text);
    if (it != states.end() && !Resolver::Unknown(it->second)) {
      const RecordState& s = it->second;
      d.agreed = s.values;
      d.deleted = !s.exists;
      std::erase_if(d.fields, [&](const std::string& f) { return s.diverged.count(f) > 0; });
      if (!d.missing && d.fields.empty()) continue;
    }
    kept.push_back(std::move(d));
  }
  r.diffs = std::move(kept);
  return r;
}

Change RowChange(Op op, const std::string& collection, const Row& key, Row before, Row after,
                 double now_ms) {
  Change c;
  c.op = op;
  c.collection = collection;
  c.key = key;
  c.before = std::move(before);
  c.after = std::move(after);
  c.commit_ms = now_ms;
  return c;
}

// Appends `changes` to `ep`'s journal as what it holds now (at its capture position, as a
// rescan does), in entries of at most `batch_rows`, each change a unit of its own.
Status JournalAsHeld(EngineState& es, EndpointState& ep, std::vector<Change>& changes) {
  const size_t chunk = std::max<size_t>(es.config.engine.batch_rows, 1);
  for (size_t begin = 0; begin < changes.size(); begin += chunk) {
    ChangeBatch batch;
    batch.end = ep.capture;
    const size_t end = std::min(changes.size(), begin + chunk);
    for (size_t i = begin; i < end; ++i) {
      Change& c = changes[i];
      c.position = ep.capture;
      c.txn = MadeUpTxn(i - begin);
      batch.changes.push_back(std::move(c));
    }
    DUPLEX_RETURN_IF_ERROR(es.store->AppendJournal(ep.name, batch).status());
  }
  changes.clear();
  return Status::Ok();
}

}  // namespace

size_t ReconcileReport::Differences() const {
  size_t n = 0;
  for (const CollectionReconcile& c : collections) n += c.diffs.size();
  return n;
}

Result<ReconcileReport> CompareEndpoints(EngineState& es, const ReconcileOptions& o) {
  if (!o.collection.empty() && !es.FindModel(o.collection)) {
    bool configured = false;
    for (const CollectionConfig& cc : es.config.collections) configured |= cc.name == o.collection;
    return Status::InvalidArgument(
        configured ? "collection '" + o.collection + "' has an endpoint that could not be opened"
                   : "no collection '" + o.collection + "' in the config");
  }
  if (!o.take.empty() && !es.Find(o.take)) {
    return Status::InvalidArgument("--take " + o.take + ": no endpoint '" + o.take +
                                   "' in the config");
  }
  ReconcileReport report;
  for (const CollectionModel& m : es.models) {
    if (!o.collection.empty() && m.config->name != o.collection) continue;
    if (!o.take.empty() &&
        std::find(m.endpoints.begin(), m.endpoints.end(), o.take) == m.endpoints.end()) {
      if (!o.collection.empty()) {
        return Status::InvalidArgument("--take " + o.take + ": collection '" + o.collection +
                                       "' is not on endpoint '" + o.take + "'");
      }
      continue;  // --take names the truth of the collections it holds
    }
    DUPLEX_ASSIGN_OR_RETURN(CollectionReconcile c, CompareCollection(es, m));
    report.collections.push_back(std::move(c));
  }
  return report;
}

Result<int64_t> FeedRepairs(EngineState& es, const ReconcileReport& report,
                            const ReconcileOptions& o) {
  const double now_ms = es.env->WallMs();
  // Per endpoint, in journal order: what it holds (kPresent) first, so that what duplex
  // believes of every row is right before the edits are merged; then the edits; then (with
  // --take) the rows of other endpoints of records duplex never saw.
  std::map<std::string, std::vector<Change>> present, edits, present_after;
  int64_t fed = 0;
  for (const CollectionReconcile& c : report.collections) {
    const CollectionModel* m = es.FindModel(c.collection);
    if (!m) continue;
    for (const RecordDiff& d : c.diffs) {
      ++fed;
      const bool unknown = d.agreed.is_null();
      const bool exists = !unknown && !d.deleted;
      if (!o.take.empty()) {
        const Row& truth = d.rows.at(o.take);
        for (const auto& [name, row] : d.rows) {
          if (name == o.take || (unknown && !truth.is_object())) continue;
          (unknown ? present_after : present)[name].push_back(
              RowChange(Op::kPresent, c.collection, d.key, Row(), row, now_ms));
        }
        if (truth.is_object()) {
          if (!exists) {
            edits[o.take].push_back(
                RowChange(Op::kInsert, c.collection, d.key, Row(), truth, now_ms));
          } else if (!DifferingFields(*m, d.agreed, truth).empty()) {
            edits[o.take].push_back(
                RowChange(Op::kUpdate, c.collection, d.key, d.agreed, truth, now_ms));
          }
        } else if (exists) {
          edits[o.take].push_back(
              RowChange(Op::kDelete, c.collection, d.key, d.agreed, Row(), now_ms));
        } else if (unknown) {
          // Rows elsewhere of a record duplex never saw, none on the truth: taken as made
          // there and deleted there, so that the delete reaches the others.
          for (const auto& [name, row] : d.rows) {
            if (!row.is_object()) continue;
            edits[o.take].push_back(
                RowChange(Op::kInsert, c.collection, d.key, Row(), row, now_ms));
            edits[o.take].push_back(
                RowChange(Op::kDelete, c.collection, d.key, row, Row(), now_ms));
            break;
          }
        }
        spdlog::info("reconcile: collection={} key={} taken from endpoint '{}'", c.collection,
                     d.key_text, o.take);
        continue;
      }
      for (const auto& [name, row] : d.rows) {
        if (row.is_object() && exists && !DifferingFields(*m, d.agreed, row).empty()) {
          // Another value than agreed: an edit made there that no change stream reported.
          edits[name].push_back(RowChange(Op::kUpdate, c.collection, d.key, d.agreed, row, now_ms));
          spdlog::info(
              "reconcile: collection={} key={} endpoint '{}' holds an edit no capture "
              "reported (fields {}): merged as an edit made there",
              c.collection, d.key_text, name,
              fmt::format("{}", fmt::join(DifferingFields(*m, d.agreed, row), ",")));
        } else if (row.is_object() && unknown) {
          // A row duplex never saw: merged like a row of an initial load.
          Change ch = RowChange(Op::kInsert, c.collection, d.key, Row(), row, now_ms);
          ch.snapshot = true;
          edits[name].push_back(std::move(ch));
        } else {
          // The agreed values, a row of a record duplex saw deleted (deleted there), or no row
          // of a record that exists (copied there).
          present[name].push_back(RowChange(Op::kPresent, c.collection, d.key, Row(), row, now_ms));
          if (!row.is_object() && exists) {
            spdlog::info("reconcile: collection={} key={} endpoint '{}' holds no row: copied there",
                         c.collection, d.key_text, name);
          } else if (row.is_object() && d.deleted) {
            spdlog::info(
                "reconcile: collection={} key={} endpoint '{}' holds a row duplex saw "
                "deleted: deleted there",
                c.collection, d.key_text, name);
          }
        }
      }
    }
  }
  for (auto* group : {&present, &edits, &present_after}) {
    for (EndpointState& ep : es.endpoints) {
      auto it = group->find(ep.name);
      if (it != group->end()) DUPLEX_RETURN_IF_ERROR(JournalAsHeld(es, ep, it->second));
    }
  }
  return fed;
}

}  // namespace duplex

namespace duplex {

Status RecordReconcile(EngineState& es, const ReconcileReport& report, int64_t repaired) {
  int64_t rows = 0;
  for (const CollectionReconcile& c : report.collections) {
    rows += c.rows_compared;
    es.telemetry.drift_rows[c.collection] += static_cast<int64_t>(c.diffs.size());
  }
  es.telemetry.reconcile_rows_compared += rows;
  const nlohmann::json last = {{"at_ms", es.env->WallMs()},
                               {"rows_compared", rows},
                               {"records_differing", report.Differences()},
                               {"repaired", repaired}};
  DUPLEX_ASSIGN_OR_RETURN(
      sqlite::Stmt st,
      es.store->db().Prepare("INSERT OR REPLACE INTO meta(k, v) VALUES('reconcile_last', ?)"));
  st.Bind(1, last.dump());
  return st.Run();
}

Result<nlohmann::json> LastReconcile(EngineState& es) {
  DUPLEX_ASSIGN_OR_RETURN(sqlite::Stmt st,
                          es.store->db().Prepare("SELECT v FROM meta WHERE k = 'reconcile_last'"));
  DUPLEX_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return nlohmann::json();
  nlohmann::json v = nlohmann::json::parse(st.Text(0), nullptr, false);
  return v.is_discarded() ? nlohmann::json() : v;
}

Result<bool> ReconcileIfDue(EngineState& es) {
  const int64_t every = es.config.engine.reconcile_every_ms;
  if (every <= 0) return false;
  const auto now = es.env->Now();
  if (es.next_reconcile == std::chrono::steady_clock::time_point{}) {
    es.next_reconcile = now + std::chrono::milliseconds(every);
    return false;
  }
  if (now < es.next_reconcile) return false;
  es.next_reconcile = now + std::chrono::milliseconds(every);
  Result<ReconcileReport> report = CompareEndpoints(es, ReconcileOptions{});
  if (!report.ok()) {
    if (!report.status().IsRetriable()) return report.status();
    spdlog::warn("reconcile put off to the next interval: {}", report.status().message());
    return false;
  }
  const size_t differing = report->Differences();
  int64_t fed = 0;
  if (differing > 0) {
    DUPLEX_ASSIGN_OR_RETURN(fed, FeedRepairs(es, *report, ReconcileOptions{}));
  }
  DUPLEX_RETURN_IF_ERROR(RecordReconcile(es, *report, fed));
  spdlog::info("reconcile: {} records differed across the endpoints{}", differing,
               differing ? "; their repair follows" : "");
  return fed > 0;
}

}  // namespace duplex
