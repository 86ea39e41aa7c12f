#include "admin/prometheus.h"

#include <fmt/format.h>

#include <cmath>

namespace duplex {

namespace {

// Appends one metric family's HELP and TYPE lines.
void Family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  return fmt::format("{}", v);
}

std::string Labels(std::initializer_list<std::pair<std::string_view, std::string_view>> labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    out += fmt::format("{}{}=\"{}\"", out.empty() ? "{" : ",", k, EscapeLabel(v));
  }
  return out.empty() ? out : out + "}";
}

// A histogram's _bucket (cumulative, `le` last), _sum and _count lines; `labels` without braces.
void HistogramLines(std::string& out, std::string_view name, const std::string& labels,
                    const Histogram& h) {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.counts.size(); ++i) {
    cumulative += h.counts[i];
    const std::string le = i < h.bounds.size() ? Number(h.bounds[i]) : std::string("+Inf");
    out += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", name, labels, le, cumulative);
  }
  out += fmt::format("{}_sum{{{}}} {}\n", name, labels, Number(h.sum));
  out += fmt::format("{}_count{{{}}} {}\n", name, labels, h.count);
}

}  // namespace

std::string EscapeLabel(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string RenderPrometheus(const TelemetrySnapshot& s) {
  std::string out;
  Family(out, "duplex_changes_captured_total", "counter",
         "Row changes captured from an endpoint (its applications' writes; duplex's own are "
         "echoes).");
  for (const auto& [k, n] : s.captured) {
    out += fmt::format("duplex_changes_captured_total{} {}\n",
                       Labels({{"endpoint", k.first}, {"collection", k.second}}), n);
  }
  Family(out, "duplex_changes_applied_total", "counter",
         "Row writes duplex committed to an endpoint (refused rows excluded; writes skipped by "
         "their compare-and-set included, see duplex_writes_rejected_total).");
  for (const auto& [k, n] : s.applied) {
    out += fmt::format("duplex_changes_applied_total{} {}\n",
                       Labels({{"endpoint", k.first}, {"collection", k.second}}), n);
  }
  Family(out, "duplex_conflicts_total", "counter",
         "Concurrent same-field (or delete-vs-update) edits, by the policy that decided them.");
  for (const auto& [k, n] : s.conflicts) {
    const auto& [collection, field, policy] = k;
    out +=
        fmt::format("duplex_conflicts_total{} {}\n",
                    Labels({{"collection", collection}, {"field", field}, {"policy", policy}}), n);
  }
  Family(out, "duplex_reconcile_rows_compared_total", "counter",
         "Rows hashed on every endpoint by the reconciles of this process ([engine] "
         "reconcile_every).");
  out += fmt::format("duplex_reconcile_rows_compared_total {}\n", s.reconcile_rows_compared);
  Family(out, "duplex_drift_rows_total", "counter",
         "Records a reconcile found differing across a collection's endpoints (drift no change "
         "stream reported), repaired by it.");
  for (const auto& [collection, n] : s.drift_rows) {
    out += fmt::format("duplex_drift_rows_total{} {}\n", Labels({{"collection", collection}}), n);
  }
  struct PerEndpoint {
    const char* name;
    const char* type;
    const char* help;
    double (*get)(const EndpointTelemetry&);
  };
  static const PerEndpoint kPerEndpoint[] = {
      {"duplex_echoes_skipped_total", "counter",
       "duplex's own apply transactions seen in the endpoint's capture and skipped (no echo).",
       [](const EndpointTelemetry& t) { return static_cast<double>(t.echoes_skipped); }},
      {"duplex_writes_rejected_total", "counter",
       "Row writes the endpoint's compare-and-set skipped (a local edit duplex had not seen).",
       [](const EndpointTelemetry& t) { return static_cast<double>(t.writes_rejected); }},
      {"duplex_apply_errors_total", "counter",
       "Apply attempts that failed and are retried (endpoint busy or unreachable).",
       [](const EndpointTelemetry& t) { return static_cast<double>(t.apply_errors); }},
      {"duplex_capture_errors_total", "counter",
       "Capture or install attempts that failed and are retried.",
       [](const EndpointTelemetry& t) { return static_cast<double>(t.capture_errors); }},
      {"duplex_dead_letters", "gauge",
       "Row writes the endpoint refused (constraint, type), parked until retried.",
       [](const EndpointTelemetry& t) { return static_cast<double>(t.dead_letters); }},
      {"duplex_capture_lag_seconds", "gauge",
       "Time since every change committed on the endpoint was last captured (0 when caught up).",
       [](const EndpointTelemetry& t) { return t.lag_seconds; }},
      {"duplex_capture_backlog_changes", "gauge",
       "Changes committed on the endpoint and not yet captured (positions behind).",
       [](const EndpointTelemetry& t) { return static_cast<double>(t.capture_backlog); }},
      {"duplex_apply_backlog_rows", "gauge", "Planned row writes waiting to be applied.",
       [](const EndpointTelemetry& t) { return static_cast<double>(t.apply_backlog); }},
      {"duplex_endpoint_up", "gauge", "1 if the last capture and apply attempts worked.",
       [](const EndpointTelemetry& t) { return t.connected ? 1.0 : 0.0; }},
      {"duplex_endpoint_stopped", "gauge",
       "1 while a capture error a retry cannot mend keeps the endpoint stopped.",
       [](const EndpointTelemetry& t) { return t.stopped ? 1.0 : 0.0; }},
      {"duplex_endpoint_alerting", "gauge",
       "1 while the endpoint's alert fires (lag over the objective, unreachable too long, or "
       "stopped).",
       [](const EndpointTelemetry& t) { return t.alerting ? 1.0 : 0.0; }},
  };
  for (const PerEndpoint& m : kPerEndpoint) {
    Family(out, m.name, m.type, m.help);
    for (const EndpointTelemetry& t : s.endpoints) {
      const double v = m.get(t);
      if (v < 0) continue;  // not known yet
      out += fmt::format("{}{} {}\n", m.name, Labels({{"endpoint", t.name}}), Number(v));
    }
  }
  Family(out, "duplex_sync_latency_seconds", "histogram",
         "From a change's commit on its source to the commit of the write it caused on a target.");
  for (const auto& [route, h] : s.latency) {
    HistogramLines(out, "duplex_sync_latency_seconds",
                   fmt::format("source=\"{}\",target=\"{}\"", EscapeLabel(route.first),
                               EscapeLabel(route.second)),
                   h);
  }
  Family(out, "duplex_apply_batch_rows", "histogram",
         "Row writes per apply transaction on an endpoint.");
  for (const EndpointTelemetry& t : s.endpoints) {
    HistogramLines(out, "duplex_apply_batch_rows",
                   fmt::format("endpoint=\"{}\"", EscapeLabel(t.name)), t.batch_rows);
  }
  Family(out, "duplex_journal_backlog_changes", "gauge",
         "Captured changes in the journal, not yet resolved.");
  if (s.journal_backlog >= 0) {
    out += fmt::format("duplex_journal_backlog_changes {}\n", s.journal_backlog);
  }
  Family(out, "duplex_latency_objective_seconds", "gauge",
         "The configured latency objective ([engine] latency_objective).");
  out += fmt::format("duplex_latency_objective_seconds {}\n", Number(s.latency_objective_seconds));
  Family(out, "duplex_ready", "gauge", "1 if every endpoint is up and under the objective.");
  out += fmt::format("duplex_ready {}\n", s.Ready() ? 1 : 0);
  return out;
}

}  // namespace duplex
