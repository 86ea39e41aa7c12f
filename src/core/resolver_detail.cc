#include "core/resolver_detail.h"

#include <algorithm>
#include <iterator>

namespace duplex::resolver_detail {

namespace {

const Value kNull = nullptr;

}  // namespace

bool MergesValues(Policy p) {
  return p == Policy::kSum || p == Policy::kUnion || p == Policy::kMerge;
}

const Value& FieldOf(const Row& row, const std::string& field) {
  if (!row.is_object()) return kNull;
  auto it = row.find(field);
  return it == row.end() ? kNull : *it;
}

bool IsPending(const RecordState& s, const std::string& endpoint, const std::string& field,
               int64_t watermark) {
  auto ep = s.pending.find(endpoint);
  if (ep == s.pending.end()) return false;
  auto f = ep->second.find(field);
  return f != ep->second.end() && f->second > watermark;
}

bool AnyPending(const RecordState& s, const std::string& endpoint, int64_t watermark) {
  auto ep = s.pending.find(endpoint);
  if (ep == s.pending.end()) return false;
  for (const auto& [field, id] : ep->second) {
    if (id > watermark) return true;
  }
  return false;
}

void PruneObserved(RecordState& s, const std::string& endpoint, int64_t watermark) {
  auto ep = s.pending.find(endpoint);
  if (ep == s.pending.end()) {
    s.prior_row.erase(endpoint);
    return;
  }
  std::erase_if(ep->second, [&](const auto& kv) { return kv.second <= watermark; });
  if (!ep->second.count("")) s.prior_row.erase(endpoint);
  // A merging field's writes up to the watermark have landed: the endpoint holds the last of
  // them until the next one lands.
  auto inflight = s.inflight.find(endpoint);
  if (inflight != s.inflight.end()) {
    for (auto it = inflight->second.begin(); it != inflight->second.end();) {
      Row& writes = it.value();
      Value landed;
      bool any = false;
      while (!writes.empty() && writes.front().at(0).get<int64_t>() <= watermark) {
        landed = std::move(writes.front().at(1));
        any = true;
        writes.erase(writes.begin());
      }
      if (writes.empty()) {
        it = inflight->second.erase(it);
        continue;
      }
      if (any) s.prior[endpoint][it.key()] = std::move(landed);
      ++it;
    }
    if (inflight->second.empty()) s.inflight.erase(inflight);
  }
  auto prior = s.prior.find(endpoint);
  if (prior != s.prior.end()) {
    for (auto it = prior->second.begin(); it != prior->second.end();) {
      it = ep->second.count(it.key()) ? std::next(it) : prior->second.erase(it);
    }
    if (prior->second.empty()) s.prior.erase(prior);
  }
  if (ep->second.empty()) s.pending.erase(ep);
}

nlohmann::json Side(const Value& value, double ts) { return {{"value", value}, {"ts", ts}}; }

double VersionTs(const Change& c) { return c.snapshot ? 0 : c.commit_ms; }

double LatestTs(const RecordState& s) {
  double ts = 0;
  for (const auto& [f, v] : s.versions) ts = std::max(ts, v.ts);
  return ts;
}

std::string LatestOrigin(const RecordState& s) {
  const Version* best = nullptr;
  for (const auto& [f, v] : s.versions) {
    if (!best || v.ts > best->ts) best = &v;
  }
  return best ? best->origin : std::string();
}

}  // namespace duplex::resolver_detail
