#include "connectors/salesforce/pacer.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace duplex::sf {

namespace {

constexpr double kDay = 24 * 3600;

int64_t HourOf(double now) { return static_cast<int64_t>(std::floor(now / 3600)); }

}  // namespace

Result<ApiBudget> ApiBudget::Parse(std::string_view text) {
  const std::string s(text);
  const auto bad = [&] {
    return Status::InvalidArgument("api_budget '" + s +
                                   "': expected a share of the org's daily API requests (\"50%\") "
                                   "or a number of calls (\"20000\")");
  };
  if (s.empty()) return bad();
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  const std::string rest(end);
  ApiBudget b;
  if (rest == "%") {
    if (!(v > 0 && v <= 100)) return bad();
    b.fraction = v / 100;
    return b;
  }
  if (!rest.empty() || !(v >= 1) || v != std::floor(v)) return bad();
  b.absolute = static_cast<int64_t>(v);
  return b;
}

int64_t ApiBudget::Of(int64_t org_max) const {
  if (absolute > 0) return org_max >= 0 ? std::min(absolute, org_max) : absolute;
  if (org_max < 0) return -1;
  return static_cast<int64_t>(std::floor(fraction * static_cast<double>(org_max)));
}

std::string ApiBudget::ToString() const {
  if (absolute > 0) return std::to_string(absolute) + " calls";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g%%", fraction * 100);
  return buf;
}

QuotaPacer::QuotaPacer(Options options) : opt_(options) { hour_of_.fill(-1); }

void QuotaPacer::Observe(const ApiUsage& usage, int64_t own_calls, bool quota_exceeded,
                         double now) {
  if (usage.max >= 0) usage_ = usage;
  const int64_t hour = HourOf(now);
  const size_t slot = static_cast<size_t>(hour % kHours);
  if (hour_of_[slot] != hour) {
    hour_of_[slot] = hour;
    buckets_[slot] = 0;
  }
  buckets_[slot] += std::max<int64_t>(0, own_calls);
  if (quota_exceeded) {
    exhausted_ = true;
    paused_until_ = now + opt_.probe_seconds;
  } else if (own_calls > 0) {
    // A call went through: whatever the org's count says, the quota has room again.
    exhausted_ = false;
    paused_until_ = 0;
  }
}

void QuotaPacer::Observe(const Client& client, double now) {
  const int64_t made = client.calls() - client_calls_seen_;
  client_calls_seen_ = client.calls();
  // The quota flag stays set until the client's next call: only a new call tells anything new.
  Observe(client.usage(), made, made > 0 && client.quota_exhausted(), now);
}

int64_t QuotaPacer::OwnCalls(double now) const {
  const int64_t hour = HourOf(now);
  int64_t n = 0;
  for (int i = 0; i < kHours; ++i) {
    if (hour_of_[static_cast<size_t>(i)] > hour - kHours) n += buckets_[static_cast<size_t>(i)];
  }
  return n;
}

int64_t QuotaPacer::CallsLeft(double now) const {
  const int64_t allowed = opt_.budget.Of(usage_.max);
  if (allowed < 0) return -1;
  int64_t left = allowed - OwnCalls(now);
  // The org's other integrations count too: never more than the org has left.
  if (usage_.max >= 0 && usage_.used >= 0) left = std::min(left, usage_.max - usage_.used);
  return std::max<int64_t>(0, left);
}

double QuotaPacer::NextPollIn(double now) const {
  if (Paused(now)) return paused_until_ - now;
  const int64_t left = CallsLeft(now);
  if (left < 0) return opt_.min_poll_seconds;  // no response yet: the first poll tells
  if (left == 0) return opt_.max_poll_seconds;
  // Spread what is left over a day: calls made now age out of the rolling window after 24 h,
  // so this rate can be kept up indefinitely.
  const double rate = static_cast<double>(left) / kDay * opt_.poll_share;
  const double interval = opt_.calls_per_poll / rate;
  return std::clamp(interval, opt_.min_poll_seconds, opt_.max_poll_seconds);
}

bool QuotaPacer::WritesPaused(double now) const {
  if (Paused(now) || exhausted_) return true;
  const int64_t left = CallsLeft(now);
  return left >= 0 && left <= opt_.capture_reserve;
}

}  // namespace duplex::sf
