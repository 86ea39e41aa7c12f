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

void MarkSuccess(EngineState& es, EndpointState& ep) {
  if (ep.last_error.empty()) return;
  if (ep.warned) spdlog::info("endpoint={} recovered", ep.name);
  ep.warned = false;
  ep.last_error.clear();
  ep.backoff = std::chrono::milliseconds(0);
  (void)es.store->SetLastError(ep.name, "");
}

}  // namespace duplex
