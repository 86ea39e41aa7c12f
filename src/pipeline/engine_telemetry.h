#pragma once

#include <nlohmann/json.hpp>

#include "pipeline/engine_state.h"

// Telemetry (telemetry.h, alerts.h): alerts, and the snapshots published to the admin
// server's TelemetryHub; the status JSON.
namespace duplex {

// Alerts, and the telemetry snapshot when a hub is set; cheap unless something is due.
void UpdateTelemetry(EngineState& es);

// Per endpoint: position, backlog, counters, last error; per collection: records, open
// conflicts; dead letters. What `duplex status --json` prints.
Result<nlohmann::json> StatusJson(EngineState& es);

}  // namespace duplex
