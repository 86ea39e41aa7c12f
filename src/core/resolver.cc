#include "core/resolver.h"

#include <algorithm>
#include <cassert>
#include <optional>

#include "core/decimal.h"
#include "core/json_merge.h"
#include "core/policy.h"
#include "core/resolver_detail.h"
#include "core/set_merge.h"
#include "util/json_value.h"

namespace duplex {

using resolver_detail::AnyPending;
using resolver_detail::FieldOf;
using resolver_detail::IsPending;
using resolver_detail::LatestOrigin;
using resolver_detail::LatestTs;
using resolver_detail::MergesValues;
using resolver_detail::PruneObserved;
using resolver_detail::Side;
using resolver_detail::VersionTs;

namespace {

// Appends to `out` one entry per path of a merged document both sides changed (`merged`, the
// document's own entry, names the sides): the path's values and what the nested policy made
// of them. An absent side (the key removed) is logged as deleted.
void LogPathConflicts(const JsonMerge& doc, const ConflictRecord& merged,
                      const std::string& endpoint, ResolveOutput& out) {
  std::string cur_name;
  for (const auto& [name, side] : merged.values.items()) {
    if (name != endpoint) cur_name = name;
  }
  for (const PathConflict& pc : doc.conflicts) {
    ConflictRecord c;
    c.collection = merged.collection;
    c.key = merged.key;
    c.key_text = merged.key_text;
    c.field = merged.field;
    c.path = pc.path;
    c.policy = merged.policy;
    c.base = pc.base.value_or(Value());
    auto side = [](const std::optional<Value>& v, double ts) {
      return v ? Side(*v, ts) : nlohmann::json{{"deleted", true}, {"ts", ts}};
    };
    c.values[cur_name] = side(pc.current, merged.values.at(cur_name).value("ts", 0.0));
    c.values[endpoint] = side(pc.incoming, merged.values.at(endpoint).value("ts", 0.0));
    if (pc.outcome == PathConflict::Outcome::kMerged) {
      c.merged = true;
      c.result = pc.result.value_or(Value());
    } else {
      c.winner = pc.outcome == PathConflict::Outcome::kIncoming ? endpoint : cur_name;
    }
    out.conflicts.push_back(std::move(c));
  }
}

}  // namespace

Row KeyOf(const CollectionModel& model, const Row& values) {
  Row key = Row::object();
  for (const std::string& k : model.config->key) key[k] = FieldOf(values, k);
  return key;
}

Resolver::Resolver(std::vector<CollectionModel> collections) {
  for (CollectionModel& m : collections) {
    std::string name = m.config->name;
    collections_.emplace(std::move(name), std::move(m));
  }
}

const CollectionModel* Resolver::Find(const std::string& collection) const {
  auto it = collections_.find(collection);
  return it == collections_.end() ? nullptr : &it->second;
}

void Resolver::Merge(const Change& change, const std::string& endpoint, int64_t watermark,
                     const PlanContext& ctx, RecordState& state, ResolveOutput& out) const {
  assert(change.op != Op::kMarker);  // Markers move the watermark; the engine handles them.
  const CollectionModel* model = Find(change.collection);
  assert(model);  // The connector only captures bound collections.
  PruneObserved(state, endpoint, watermark);
  // A delete of a row the record's tombstone already covers, made without having seen
  // duplex's delete of it (another endpoint's delete, or the delete that undid this endpoint's
  // own concurrent insert): the endpoint's next change of the row (a re-insert) stays
  // concurrent with the tombstone until it observes that write. If the tombstone is another
  // endpoint's, the two deletes agree but neither endpoint has seen the other's: every other
  // endpoint's next change stays concurrent too, until it observes a write planned from now on
  // (this delete reaches no one: their rows are gone already). Otherwise a re-insert would
  // count as after this delete or not depending on arrival order (P4).
  auto own = state.pending.find(endpoint);
  const std::map<std::string, int64_t> unseen_before =
      own == state.pending.end() ? std::map<std::string, int64_t>() : own->second;
  int64_t unseen_delete = 0;
  if (change.op == Op::kDelete && !state.exists && IsPending(state, endpoint, "", watermark)) {
    unseen_delete = unseen_before.at("");
    if (state.deleted.origin != endpoint && !state.known.count(endpoint)) {
      for (const std::string& other : model->endpoints) {
        if (other == endpoint) continue;
        int64_t& id = state.pending[other][""];
        id = std::max(id, ctx.apply_ids.at(other));
        out.observe.insert(other);  // this delete, a no-op there: observed with its marker
      }
    }
  }
  if (change.op == Op::kDelete) {
    MergeDelete(*model, change, endpoint, watermark, state, out);
  } else {
    MergeUpsert(*model, change, endpoint, watermark, state, out);
  }
  // Every write to this row planned before this change was planned without seeing it, so the
  // endpoint rejects it (RowOp::seen): it will never be observed, and must not make the
  // endpoint's later changes look concurrent. Plan sets what is really on its way. (The
  // rejected batch's marker still comes: an unseen delete counts until then.)
  state.pending.erase(endpoint);
  state.prior.erase(endpoint);
  state.prior_row.erase(endpoint);
  state.inflight.erase(endpoint);
  if (unseen_delete != 0) state.pending[endpoint][""] = unseen_delete;
  // Likewise a field the change left at the value duplex's unobserved write carries (the same
  // edit, made concurrently): the write is moot, but the endpoint has not seen the other
  // endpoint's edit, so its next edit of the field is still concurrent with it until then.
  if (state.exists && change.op != Op::kDelete) {
    for (const auto& [f, id] : unseen_before) {
      if (f.empty() || state.diverged.count(f) || state.versions[f].origin == endpoint) continue;
      if (ValuesEqual(FieldOf(change.after, f), FieldOf(state.values, f))) {
        state.pending[endpoint][f] = id;
      }
    }
  }
  ++out.changes;
  Plan(*model, ctx, state, out);
}

void Resolver::MergeDelete(const CollectionModel& model, const Change& change,
                           const std::string& endpoint, int64_t watermark, RecordState& state,
                           ResolveOutput& out) const {
  state.known.erase(endpoint);
  if (!state.exists) return;  // Already deleted: both sides agree.
  const double ts = VersionTs(change);
  // A delete made without having seen duplex's latest write to the row is concurrent with
  // the update behind that write.
  if (AnyPending(state, endpoint, watermark)) {
    const bool delete_wins = model.config->delete_wins;
    ConflictRecord c;
    c.collection = model.config->name;
    c.key = KeyOf(model, state.values);
    c.key_text = KeyText(c.key, model.config->key);
    c.policy = delete_wins ? "delete" : "keep";
    c.values[endpoint] = {{"deleted", true}, {"ts", ts}};
    std::string other = LatestOrigin(state);
    if (other == endpoint || other.empty()) other = "agreed";
    c.values[other] = Side(state.values, LatestTs(state));
    c.winner = delete_wins ? endpoint : other;
    out.conflicts.push_back(std::move(c));
    if (!delete_wins) return;  // The record stays; Plan writes it back to `endpoint`.
  }
  state.exists = false;
  state.deleted = Version{ts, endpoint};
  state.diverged.clear();
}

void Resolver::MergeUpsert(const CollectionModel& model, const Change& change,
                           const std::string& endpoint, int64_t watermark, RecordState& state,
                           ResolveOutput& out) const {
  const Row& after = change.after;
  const double ts = VersionTs(change);
  const std::string& collection = model.config->name;

  if (!state.exists) {
    const bool tombstone = !state.deleted.origin.empty();
    // An update or insert made without having seen duplex's delete of the row.
    if (tombstone && IsPending(state, endpoint, "", watermark)) {
      const bool delete_wins = model.config->delete_wins;
      ConflictRecord c;
      c.collection = collection;
      c.key = change.key;
      c.key_text = KeyText(change.key, model.config->key);
      c.policy = delete_wins ? "delete" : "keep";
      c.values[state.deleted.origin] = {{"deleted", true}, {"ts", state.deleted.ts}};
      c.values[endpoint] = Side(after, ts);
      c.winner = delete_wins ? state.deleted.origin : endpoint;
      out.conflicts.push_back(std::move(c));
      if (delete_wins) {
        state.known[endpoint] = after;  // Plan deletes it there again.
        return;
      }
      // Keep: the update undoes the delete. The record comes back as it was (the tombstone
      // keeps its values and versions) and the update is merged into it field by field, like
      // any update: concurrent updates of other fields, merged before or after, survive (P3).
      if (change.op == Op::kUpdate) state.exists = true;
    }
  }
  if (!state.exists) {
    // A new record (or one re-created after its delete was seen): the change is the record.
    state.exists = true;
    state.values = Row::object();
    state.versions.clear();
    state.diverged.clear();
    for (const std::string& k : model.config->key) state.values[k] = FieldOf(after, k);
    for (const std::string& f : model.fields) {
      state.values[f] = FieldOf(after, f);
      state.versions[f] = Version{ts, endpoint};
    }
    state.known[endpoint] = after;
    return;
  }

  const bool row_pending = IsPending(state, endpoint, "", watermark);
  // Without a before-image, what the endpoint held before this update: the agreed values,
  // except where duplex's writes had not reached it: the row it held when a delete it has not
  // observed was planned, and before that, fields with a write it had not observed, which it
  // still held as before. (An insert had no row before: every value is its own.)
  Row held_before = state.values;
  if (change.op == Op::kUpdate) {
    auto r = state.prior_row.find(endpoint);
    if (row_pending && r != state.prior_row.end()) {
      for (const std::string& f : model.fields) held_before[f] = FieldOf(r->second, f);
    }
    auto p = state.prior.find(endpoint);
    if (p != state.prior.end()) {
      for (const auto& [f, v] : p->second.items()) {
        if (IsPending(state, endpoint, f, watermark)) held_before[f] = v;
      }
    }
  }
  // The image is the truth about the endpoint's row now. Every write of duplex's to this row
  // that the endpoint had not observed before this change was planned without seeing it and
  // will be rejected (RowOp::seen), so what duplex believes the endpoint holds is this image.
  state.known[endpoint] = after;
  const bool has_before = change.op == Op::kUpdate && change.before.is_object();

  for (const std::string& f : model.fields) {
    const Value& nv = FieldOf(after, f);
    // What the endpoint's application changed: against its before-image where the source
    // gives one, otherwise against what it held before.
    const Value& started_from = has_before ? FieldOf(change.before, f) : FieldOf(held_before, f);
    if (ValuesEqual(started_from, nv)) continue;
    if (state.diverged.count(f)) {
      out.conflict_updates.push_back(
          {collection, KeyText(state.values, model.config->key), f, endpoint, nv, ts});
      continue;
    }
    const Value& current = FieldOf(state.values, f);
    const FieldPolicy& rule = model.config->PolicyFor(f);
    if (MergesValues(rule.policy) && change.op == Op::kUpdate && !change.snapshot) {
      // A counter: the edit is a delta from what the endpoint started from, added to the
      // agreed value. A set: what the edit added and removed, against what the endpoint
      // started from, applied to the agreed value. A sequential edit started from the agreed
      // value, so it simply sets it (P2); concurrent ones add up whatever order they arrive in
      // (P4). Not a number (or a sum beyond 64-bit integers), not a set: decided like lww
      // below.
      std::optional<Value> merged;
      std::optional<JsonMerge> doc;
      // merge: whether the endpoint started from the agreed document, in whatever form.
      const bool from_agreed = rule.policy == Policy::kMerge ? SameDocument(current, started_from)
                                                             : ValuesEqual(current, started_from);
      if (rule.policy == Policy::kSum) {
        merged = AddDelta(current, started_from, nv);
      } else if (rule.policy == Policy::kMerge) {
        // A document: the paths each side changed, from what the endpoint started from.
        // Nothing to merge: taken as written. Not two documents, or a same-path conflict under
        // a manual nested policy: decided below, by the nested policy on the whole value.
        if (from_agreed) {
          merged = nv;
        } else {
          doc = MergeJson(started_from, Candidate{current, state.versions[f]},
                          Candidate{nv, Version{ts, endpoint}}, rule);
          if (doc && !doc->manual) merged = doc->value;
        }
      } else {
        // The values duplex wrote to the endpoint that it had not seen when it made the edit
        // (PruneObserved has dropped the others): an element removed and added back there
        // meanwhile is an addition concurrent with this edit's removal of it, and stays.
        std::vector<Value> unseen;
        if (auto inf = state.inflight.find(endpoint); inf != state.inflight.end()) {
          if (auto w = inf->second.find(f); w != inf->second.end()) {
            for (const Value& write : *w) unseen.push_back(write.at(1));
          }
        }
        std::optional<Value> edit = KeepReAdded(started_from, nv, current, unseen, rule.separator);
        if (!edit) {
          // Not a set: lww below.
        } else if (ValuesEqual(current, started_from) && ValuesEqual(*edit, nv)) {
          // Taken as written (its order, even its duplicates) when there is nothing to merge.
          merged = nv;
        } else {
          merged = UnionMerge(started_from, {current, *edit}, rule.separator);
        }
      }
      if (merged) {
        // Logged when there was something to merge: the endpoint started from another value
        // than the agreed one, or (union) an element it removed was added back meanwhile.
        if (!from_agreed || (rule.policy == Policy::kUnion && !ValuesEqual(*merged, nv))) {
          ConflictRecord c;
          c.collection = collection;
          c.key = KeyOf(model, state.values);
          c.key_text = KeyText(c.key, model.config->key);
          c.field = f;
          c.policy = PolicyName(rule.policy);
          c.base = started_from;
          const Version& cv = state.versions[f];
          std::string cur_name =
              cv.origin == endpoint || cv.origin.empty() ? std::string("agreed") : cv.origin;
          c.values[cur_name] = Side(current, cv.ts);
          c.values[endpoint] = Side(nv, ts);
          c.merged = true;
          c.result = *merged;
          if (doc) LogPathConflicts(*doc, c, endpoint, out);
          out.conflicts.push_back(std::move(c));
        }
        state.values[f] = std::move(*merged);
        // A merged document's version is the later of the two (lww order): what its paths
        // count with in a later same-path conflict, whatever order the edits arrived in.
        if (rule.policy != Policy::kMerge || from_agreed ||
            IncomingWins(FieldPolicy{}, {current, state.versions[f]}, {nv, {ts, endpoint}})) {
          state.versions[f] = Version{ts, endpoint};
        }
        continue;
      }
    }
    if (ValuesEqual(current, nv)) continue;  // Both sides made the same change.
    // Concurrent: made without having seen duplex's write of the field (or row) to this
    // endpoint, unless the agreed value is this endpoint's own earlier write, which its stream
    // orders before this one. An unseen write of the row (a delete, the insert that brings the
    // record back) hides only the field values the endpoint did not start from: an update
    // of the value it held is not concurrent with that value. (An insert started from no row.)
    const bool row_unseen =
        row_pending && (change.op != Op::kUpdate || !ValuesEqual(current, started_from));
    const bool field_pending = row_unseen || IsPending(state, endpoint, f, watermark);
    const bool concurrent =
        change.snapshot || (field_pending && state.versions[f].origin != endpoint);
    if (!concurrent) {  // Sequential intent wins, whatever the clocks say (P2).
      state.values[f] = nv;
      state.versions[f] = Version{ts, endpoint};
      continue;
    }
    Candidate cur{current, state.versions[f]};
    Candidate inc{nv, Version{ts, endpoint}};
    ConflictRecord c;
    c.collection = collection;
    c.key = KeyOf(model, state.values);
    c.key_text = KeyText(c.key, model.config->key);
    c.field = f;
    c.policy = PolicyName(rule.policy);
    c.base = has_before ? FieldOf(change.before, f) : Value(nullptr);
    std::string cur_name = cur.version.origin == endpoint || cur.version.origin.empty()
                               ? std::string("agreed")
                               : cur.version.origin;
    c.values[cur_name] = Side(cur.value, cur.version.ts);
    c.values[endpoint] = Side(inc.value, inc.version.ts);
    if (rule.policy == Policy::kManual ||
        (rule.policy == Policy::kMerge && rule.merge_policy == Policy::kManual)) {
      // Parked: each side keeps its value until an operator resolves it.
      state.diverged.insert(f);
      c.open = true;
      out.conflicts.push_back(std::move(c));
      continue;
    }
    const bool wins = IncomingWins(rule, cur, inc);
    c.winner = wins ? endpoint : cur_name;
    if (wins) {
      state.values[f] = nv;
      state.versions[f] = inc.version;
    }
    out.conflicts.push_back(std::move(c));
  }
}

}  // namespace duplex
