#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace duplex {

// A change of an endpoint's alert state.
struct AlertEvent {
  std::string endpoint;
  bool firing = false;  // false: it cleared
  std::string reason;   // "lag", "unreachable" or "stopped" (of the alert that fired or cleared)
  std::string message;  // one line for people
  double lag_seconds = 0;
  double unreachable_seconds = 0;
  std::string error;  // the endpoint's last error, if unreachable or stopped
};

// Decides when an endpoint's alert fires and clears (DESIGN §8): it fires once when the
// endpoint is reachable but lags more than the objective, has been unreachable longer than
// `alert_after`, or at once when it is stopped (a capture error a retry cannot mend:
// endpoint_health.h); it clears once when none holds any more. Pure: no clock, no I/O.
class AlertMonitor {
 public:
  AlertMonitor(double objective_seconds, double alert_after_seconds)
      : objective_(objective_seconds), alert_after_(alert_after_seconds) {}

  // The endpoint's current state; returns an event when its alert starts or ends.
  std::optional<AlertEvent> Update(const std::string& endpoint, double lag_seconds,
                                   double unreachable_seconds, const std::string& error,
                                   bool stopped = false);
  // The current alert of `endpoint` (empty if none).
  std::string Active(const std::string& endpoint) const;

 private:
  double objective_, alert_after_;
  std::map<std::string, AlertEvent> firing_;  // endpoint -> the event that fired
};

// Runs `command` with /bin/sh, the event in DUPLEX_ALERT_* environment variables, without
// waiting for it; returns the child's pid (-1 if it could not start). Reap with ReapAlerts.
pid_t RunAlertCommand(const std::string& command, const AlertEvent& e);
// Reaps finished alert commands (non-blocking); removes them from `pids`.
void ReapAlerts(std::vector<pid_t>& pids);

}  // namespace duplex
