#include "pipeline/endpoint_health.h"

#include <algorithm>
#include <string_view>

#include "util/log.h"

namespace duplex {

void MarkFailure(EngineState& es, EndpointState& ep, const Status& st, const char* stage) {
  auto now = es.env->Now();
  if (ep.last_error.empty()) ep.failing_since = now;
  std::string msg = std::string(stage) + ": " + st.message();
  // A busy database is an everyday moment (an application holds its write lock): worth a
  // warning only when it lasts.
  const bool lasting = !st.IsRetriable() || now - ep.failing_since > kTransientFailure;
  if (lasting && (msg != ep.last_error || !ep.warned)) {
    spdlog::warn("endpoint={} stage={} error=\"{}\" (retrying)", ep.name, stage, st.message());
    ep.warned = true;
  }
  if (msg != ep.last_error) (void)es.store->SetLastError(ep.name, msg);
  ep.last_error = msg;
  EndpointTelemetry& t = es.telemetry.endpoints[ep.index];
  ++(std::string_view(stage) == "apply" ? t.apply_errors : t.capture_errors);
  ep.backoff = std::min<std::chrono::milliseconds>(
      std::chrono::milliseconds(2000),
      ep.backoff.count() == 0 ? std::chrono::milliseconds(20) : ep.backoff * 2);
  ep.retry_at = now + ep.backoff;
}

void MarkStopped(EngineState& es, EndpointState& ep, const Status& st, const char* stage) {
  const auto now = es.env->Now();
  if (ep.last_error.empty()) ep.failing_since = now;
  const std::string msg = std::string(kStoppedPrefix) + stage + ": " + st.ToString();
  const auto minutes = std::chrono::duration_cast<std::chrono::minutes>(kStoppedRetry).count();
  spdlog::error(
      "endpoint={} stage={} stopped: {} (the other endpoints go on; tried again in {} min or at "
      "the next `duplex run`)",
      ep.name, stage, st.ToString(), minutes);
  if (msg != ep.last_error) (void)es.store->SetLastError(ep.name, msg);
  ep.last_error = msg;
  ep.stopped = st;
  ep.warned = true;
  ++es.telemetry.endpoints[ep.index].capture_errors;
  ep.backoff = std::chrono::milliseconds(0);
  ep.retry_at = now + kStoppedRetry;
}

void MarkSuccess(EngineState& es, EndpointState& ep) {
  if (ep.last_error.empty()) return;
  if (ep.warned) spdlog::info("endpoint={} recovered", ep.name);
  ep.warned = false;
  ep.stopped = Status::Ok();
  ep.last_error.clear();
  ep.backoff = std::chrono::milliseconds(0);
  (void)es.store->SetLastError(ep.name, "");
}

}  // namespace duplex
