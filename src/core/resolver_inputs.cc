// The resolver's inputs besides captured changes (rejected writes, an operator's choice, a
// cascade or a revival, writes taken back, a scanned row, an echo) and the planning of the
// writes that bring every endpoint to the agreed values (Resolver::Plan).
#include <algorithm>
#include <cassert>
#include <optional>

#include "core/decimal.h"
#include "core/policy.h"
#include "core/resolver.h"
#include "core/resolver_detail.h"
#include "core/set_merge.h"
#include "util/json_value.h"

namespace duplex {

using resolver_detail::FieldOf;
using resolver_detail::IsPending;
using resolver_detail::MergesValues;
using resolver_detail::PruneObserved;

void Resolver::Correct(const Change& change, const std::string& endpoint, const PlanContext& ctx,
                       RecordState& state, ResolveOutput& out) const {
  assert(change.op == Op::kRejected);
  const CollectionModel* model = Find(change.collection);
  assert(model);  // The connector only reports bound collections.
  // The concurrent local change that made the write fail came earlier in the stream and has
  // been merged; this image is the truth after it. Writes planned from it compare-and-set on it.
  if (change.after.is_object()) {
    state.known[endpoint] = change.after;
  } else {
    state.known.erase(endpoint);
  }
  Plan(*model, ctx, state, out);
}

void Resolver::ResolveManual(const std::string& collection, const std::string& field,
                             const Value& value, double now_ms, const PlanContext& ctx,
                             RecordState& state, ResolveOutput& out) const {
  const CollectionModel* model = Find(collection);
  if (!model) return;
  state.diverged.erase(field);
  if (state.exists) {
    state.values[field] = value;
    state.versions[field] = Version{now_ms, "operator"};
  }
  Plan(*model, ctx, state, out);
}

bool Resolver::Unobserved(const RecordState& state, const std::string& endpoint,
                          const std::vector<std::string>& fields, int64_t watermark) {
  if (IsPending(state, endpoint, "", watermark)) return true;
  for (const std::string& f : fields) {
    if (IsPending(state, endpoint, f, watermark)) return true;
  }
  return false;
}

void Resolver::Cascade(const std::string& collection, const Version& deleted,
                       const PlanContext& ctx, RecordState& state, ResolveOutput& out) const {
  const CollectionModel* model = Find(collection);
  assert(model);
  state.exists = false;
  state.deleted = deleted;
  state.diverged.clear();
  Plan(*model, ctx, state, out);
}

void Resolver::Revive(const std::string& collection, const PlanContext& ctx, RecordState& state,
                      ResolveOutput& out) const {
  const CollectionModel* model = Find(collection);
  assert(model);
  state.exists = true;
  Plan(*model, ctx, state, out);
}

void Resolver::Retracted(const std::string& endpoint,
                         const std::vector<std::pair<int64_t, RowOp>>& writes, RecordState& state) {
  // Undone newest first: each write's expected values are what the endpoint held before it.
  for (auto it = writes.rbegin(); it != writes.rend(); ++it) {
    const auto& [id, op] = *it;
    auto pending = state.pending.find(endpoint);
    auto forget = [&](const std::string& field) {
      if (pending == state.pending.end()) return;
      auto f = pending->second.find(field);
      if (f != pending->second.end() && f->second == id) pending->second.erase(f);
    };
    if (op.op == WriteOp::kInsert) {
      state.known.erase(endpoint);
      forget("");
      continue;
    }
    Row& held = state.known[endpoint];
    if (!held.is_object() || op.op == WriteOp::kDelete) {
      held = Row::object();
      for (const auto& [k, v] : op.key.items()) held[k] = v;
    }
    for (const auto& [f, v] : op.expected.items()) held[f] = v;
    if (op.op == WriteOp::kDelete) {
      forget("");
      state.prior_row.erase(endpoint);
      continue;
    }
    for (const auto& [f, v] : op.values.items()) {
      forget(f);
      auto prior = state.prior.find(endpoint);
      if (prior != state.prior.end()) prior->second.erase(f);
      auto inflight = state.inflight.find(endpoint);
      if (inflight != state.inflight.end() && inflight->second.contains(f)) {
        Row& writes = inflight->second[f];
        Row kept = Row::array();
        for (const Value& w : writes) {
          if (w.at(0).get<int64_t>() != id) kept.push_back(w);
        }
        writes = std::move(kept);
        if (writes.empty()) inflight->second.erase(f);
        if (inflight->second.empty()) state.inflight.erase(inflight);
      }
    }
  }
  auto pending = state.pending.find(endpoint);
  if (pending != state.pending.end() && pending->second.empty()) state.pending.erase(pending);
  auto prior = state.prior.find(endpoint);
  if (prior != state.prior.end() && prior->second.empty()) state.prior.erase(prior);
}

void Resolver::Replan(const std::string& collection, const PlanContext& ctx, RecordState& state,
                      ResolveOutput& out) const {
  const CollectionModel* model = Find(collection);
  assert(model);
  Plan(*model, ctx, state, out);
}

void Resolver::Observe(const Change& present, const std::string& endpoint, const PlanContext& ctx,
                       RecordState& state, ResolveOutput& out) const {
  assert(present.op == Op::kPresent);
  const CollectionModel* model = Find(present.collection);
  assert(model);
  state.pending.erase(endpoint);
  state.prior.erase(endpoint);
  state.prior_row.erase(endpoint);
  state.inflight.erase(endpoint);
  if (present.after.is_object()) {
    state.known[endpoint] = present.after;
  } else {
    state.known.erase(endpoint);
  }
  Plan(*model, ctx, state, out, &endpoint);
}

void Resolver::Echo(const Change& echo, const std::string& endpoint, const PlanContext& ctx,
                    RecordState& state, ResolveOutput& out) const {
  assert(echo.op == Op::kEcho);
  const CollectionModel* model = Find(echo.collection);
  assert(model);
  auto pending = state.pending.find(endpoint);
  // The write of `field` ("" the row) to the endpoint is observed if it is no later than the
  // echo's.
  auto observed = [&](const std::string& field) {
    if (pending == state.pending.end()) return;
    auto it = pending->second.find(field);
    if (it == pending->second.end() || it->second > echo.apply_id) return;
    pending->second.erase(it);
    if (field.empty()) {
      state.prior_row.erase(endpoint);
    } else if (auto p = state.prior.find(endpoint); p != state.prior.end()) {
      p->second.erase(field);
      if (p->second.empty()) state.prior.erase(p);
    }
  };
  if (!echo.after.is_object()) {
    // Its delete landed: the endpoint holds no row.
    if (!state.exists) observed("");
    state.known.erase(endpoint);
  } else {
    if (state.exists) observed("");  // its insert landed
    Row& held = state.known[endpoint];
    if (!held.is_object()) held = KeyOf(*model, state.values);
    for (const auto& [field, value] : echo.after.items()) {
      if (std::find(model->config->key.begin(), model->config->key.end(), field) !=
          model->config->key.end()) {
        continue;
      }
      // A later write of the field, still unobserved, is what the endpoint will hold.
      if (pending != state.pending.end()) {
        auto later = pending->second.find(field);
        if (later != pending->second.end() && later->second > echo.apply_id) continue;
      }
      held[field] = value;
      observed(field);
    }
  }
  if (pending != state.pending.end() && pending->second.empty()) state.pending.erase(pending);
  Plan(*model, ctx, state, out, &endpoint);
}

void Resolver::Plan(const CollectionModel& model, const PlanContext& ctx, RecordState& state,
                    ResolveOutput& out, const std::string* only) const {
  const std::string& collection = model.config->name;
  for (const std::string& target : model.endpoints) {
    if (only && target != *only) continue;
    const int64_t id = ctx.apply_ids.at(target);
    auto seen_it = ctx.seen.find(target);
    const Position seen = seen_it == ctx.seen.end() ? Position() : seen_it->second;
    auto known = state.known.find(target);
    if (!state.exists) {
      if (known == state.known.end()) continue;
      RowOp op{WriteOp::kDelete, collection, KeyOf(model, known->second), {}, Row::object(), seen};
      for (const std::string& f : model.fields) op.expected[f] = FieldOf(known->second, f);
      // What the endpoint holds, once duplex's earlier writes land, until the delete does (an
      // update it makes meanwhile, without a before-image, started from it).
      state.prior_row[target] = known->second;
      state.known.erase(known);
      state.pending[target][""] = id;
      out.writes[target].push_back(std::move(op));
      continue;
    }
    if (known == state.known.end()) {
      RowOp op{WriteOp::kInsert, collection, KeyOf(model, state.values), state.values, {}, seen};
      state.known[target] = state.values;
      state.pending[target][""] = id;
      out.writes[target].push_back(std::move(op));
      continue;
    }
    RowOp op{WriteOp::kUpdate, collection,    KeyOf(model, state.values),
             Row::object(),    Row::object(), seen};
    for (const std::string& f : model.fields) {
      if (state.diverged.count(f)) continue;
      const Value& agreed = FieldOf(state.values, f);
      Value& held = known->second[f];
      if (ValuesEqual(held, agreed)) continue;
      op.values[f] = agreed;
      op.expected[f] = held;
      // The value before the oldest write of f the endpoint has not observed: what it still
      // holds until that write lands. A write it has observed no longer counts.
      Row& prior = state.prior[target];
      if (!prior.is_object()) prior = Row::object();
      auto wm = ctx.watermarks.find(target);
      const int64_t observed = wm == ctx.watermarks.end() ? 0 : wm->second;
      if (!prior.contains(f) || !IsPending(state, target, f, observed)) prior[f] = held;
      if (MergesValues(model.config->PolicyFor(f).policy)) {
        // Which of these writes had landed when the endpoint's application next changes f
        // tells exactly what it started from (PruneObserved). Those it has observed have.
        Row& writes = state.inflight[target][f];
        if (!writes.is_array()) writes = Row::array();
        while (!writes.empty() && writes.front().at(0).get<int64_t>() <= observed) {
          prior[f] = writes.front().at(1);
          writes.erase(writes.begin());
        }
        if (writes.empty()) prior[f] = held;
        // Two writes in one step: the endpoint gets only the last.
        if (!writes.empty() && writes.back().at(0).get<int64_t>() == id) {
          writes.erase(writes.end() - 1);
        }
        writes.push_back(Row::array({id, agreed}));
      }
      held = agreed;
      state.pending[target][f] = id;
    }
    if (!op.values.empty()) out.writes[target].push_back(std::move(op));
  }
}

}  // namespace duplex
