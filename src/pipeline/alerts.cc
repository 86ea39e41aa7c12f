#include "pipeline/alerts.h"

#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstring>

extern char** environ;

namespace duplex {

std::optional<AlertEvent> AlertMonitor::Update(const std::string& endpoint, double lag_seconds,
                                               double unreachable_seconds, const std::string& error,
                                               bool stopped) {
  AlertEvent now;
  now.endpoint = endpoint;
  now.lag_seconds = lag_seconds;
  now.unreachable_seconds = unreachable_seconds;
  now.error = error;
  if (stopped) {
    now.firing = true;
    now.reason = "stopped";
    now.message = fmt::format("endpoint {} stopped: {}", endpoint, error);
  } else if (!error.empty() && unreachable_seconds > alert_after_) {
    now.firing = true;
    now.reason = "unreachable";
    now.message = fmt::format("endpoint {} unreachable for {:.0f}s (alert_after {:.0f}s): {}",
                              endpoint, unreachable_seconds, alert_after_, error);
  } else if (error.empty() && lag_seconds > objective_) {
    now.firing = true;
    now.reason = "lag";
    now.message = fmt::format("endpoint {} lags {:.1f}s, over the latency objective {:.1f}s",
                              endpoint, lag_seconds, objective_);
  }
  auto it = firing_.find(endpoint);
  if (now.firing) {
    // Already firing: one line, not one a second; but a stop says more than lag or an outage.
    if (it != firing_.end() && (it->second.reason == "stopped" || now.reason != "stopped")) {
      return std::nullopt;
    }
    firing_[endpoint] = now;
    return now;
  }
  if (it == firing_.end()) return std::nullopt;
  AlertEvent cleared = now;
  cleared.reason = it->second.reason;
  cleared.message = fmt::format("endpoint {}: alert cleared ({})", endpoint, it->second.reason);
  firing_.erase(it);
  return cleared;
}

std::string AlertMonitor::Active(const std::string& endpoint) const {
  auto it = firing_.find(endpoint);
  return it == firing_.end() ? std::string() : it->second.message;
}

pid_t RunAlertCommand(const std::string& command, const AlertEvent& e) {
  std::vector<std::string> env;
  for (char** p = environ; *p; ++p) {
    if (std::strncmp(*p, "DUPLEX_ALERT_", 13) != 0) env.emplace_back(*p);
  }
  env.push_back("DUPLEX_ALERT_STATE=" + std::string(e.firing ? "firing" : "cleared"));
  env.push_back("DUPLEX_ALERT_ENDPOINT=" + e.endpoint);
  env.push_back("DUPLEX_ALERT_REASON=" + e.reason);
  env.push_back("DUPLEX_ALERT_MESSAGE=" + e.message);
  env.push_back(fmt::format("DUPLEX_ALERT_LAG_SECONDS={:.3f}", e.lag_seconds));
  env.push_back(fmt::format("DUPLEX_ALERT_UNREACHABLE_SECONDS={:.3f}", e.unreachable_seconds));
  env.push_back("DUPLEX_ALERT_ERROR=" + e.error);
  std::vector<char*> envp;
  for (std::string& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string sh = "/bin/sh", dash_c = "-c", cmd = command;
  char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};
  pid_t pid = -1;
  if (posix_spawn(&pid, "/bin/sh", nullptr, nullptr, argv, envp.data()) != 0) return -1;
  return pid;
}

void ReapAlerts(std::vector<pid_t>& pids) {
  std::erase_if(pids, [](pid_t pid) {
    int st = 0;
    return waitpid(pid, &st, WNOHANG) != 0;
  });
}

}  // namespace duplex
