#pragma once

#include <string>
#include <string_view>

#include "pipeline/telemetry.h"

namespace duplex {

// The Prometheus text exposition format (version 0.0.4) of a telemetry snapshot: what
// /metrics serves. Counters end in _total, durations are in seconds (metric naming
// conventions of https://prometheus.io/docs/practices/naming/).
std::string RenderPrometheus(const TelemetrySnapshot& s);

// A label value escaped for the text format: backslash, double quote and newline.
std::string EscapeLabel(std::string_view v);

}  // namespace duplex
