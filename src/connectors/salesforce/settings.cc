#include "connectors/salesforce/settings.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <utility>

#include "connectors/salesforce/salesforce_connector.h"

namespace duplex::sf {

std::string SalesforceSettings::Summary() const {
  return instance_url + ", external id " + external_id + ", capture " +
         (capture == Capture::kCdc ? "cdc" : "poll") + ", api budget " + api_budget_text +
         (write_window_ms ? ", write window " + std::to_string(*write_window_ms) + " ms" : "");
}

std::optional<int64_t> ParseIntervalMs(std::string_view text) {
  const std::string s(text);
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || !(v >= 0) || !std::isfinite(v)) return std::nullopt;
  const std::string unit(end);
  double ms;
  if (unit == "ms") {
    ms = v;
  } else if (unit == "s") {
    ms = v * 1000;
  } else if (unit == "m") {
    ms = v * 60000;
  } else if (unit == "h") {
    ms = v * 3600000;
  } else {
    return std::nullopt;
  }
  return static_cast<int64_t>(std::llround(ms));
}

Result<std::shared_ptr<const ConnectorSettings>> ParseSettings(const SettingsReader& reader) {
  DUPLEX_RETURN_IF_ERROR(
      reader.CheckKeys({"type", "instance_url", "client_id_env", "client_secret_env", "external_id",
                        "capture", "poll_interval", "api_budget", "write_window", "cross_check"}));
  auto s = std::make_shared<SalesforceSettings>();
  DUPLEX_RETURN_IF_ERROR(reader.GetString(
      "instance_url", "\"https://login.salesforce.com\" (or the org's My Domain URL)",
      &s->instance_url, /*required=*/true));
  if (s->instance_url.rfind("https://", 0) != 0 && s->instance_url.rfind("http://", 0) != 0) {
    return reader.Error(
        reader.KeyLine("instance_url"),
        reader.where() + ": instance_url '" + s->instance_url + "' is not an http(s) URL",
        "write instance_url = \"https://acme.my.salesforce.com\"");
  }
  while (s->instance_url.size() > 8 && s->instance_url.back() == '/') s->instance_url.pop_back();
  DUPLEX_RETURN_IF_ERROR(reader.GetString("client_id_env",
                                          "\"SF_CLIENT_ID\" (a variable holding the connected "
                                          "app's consumer key)",
                                          &s->client_id_env, /*required=*/true));
  DUPLEX_RETURN_IF_ERROR(reader.GetString(
      "client_secret_env", "\"SF_CLIENT_SECRET\" (a variable holding the consumer secret)",
      &s->client_secret_env, /*required=*/true));
  DUPLEX_RETURN_IF_ERROR(reader.GetString(
      "external_id", "\"External_Id__c\" (a custom field marked External ID and Unique)",
      &s->external_id, /*required=*/true));
  std::string capture = "cdc";
  DUPLEX_RETURN_IF_ERROR(reader.GetString("capture", "\"cdc\"", &capture));
  if (capture == "cdc") {
    s->capture = SalesforceSettings::Capture::kCdc;
  } else if (capture == "poll") {
    s->capture = SalesforceSettings::Capture::kPoll;
  } else {
    return reader.Error(reader.KeyLine("capture"),
                        reader.where() + ": unknown capture '" + capture + "'",
                        "write capture = \"cdc\" (change events, the default) or capture = "
                        "\"poll\" (for orgs without Change Data Capture on the objects)");
  }
  std::string interval;
  DUPLEX_RETURN_IF_ERROR(reader.GetString("poll_interval", "\"2s\"", &interval));
  if (!interval.empty()) {
    std::optional<int64_t> ms = ParseIntervalMs(interval);
    if (!ms || *ms < 100) {
      return reader.Error(
          reader.KeyLine("poll_interval"),
          reader.where() + ": poll_interval '" + interval + "' is not a duration of at least 100ms",
          "write poll_interval = \"2s\" (units: ms, s, m, h)");
    }
    s->poll_interval_ms = *ms;
  }
  auto duration = [&](const char* key, const char* example, std::optional<int64_t>* ms) -> Status {
    std::string text;
    DUPLEX_RETURN_IF_ERROR(reader.GetString(key, example, &text));
    if (text.empty()) return Status::Ok();
    *ms = ParseIntervalMs(text);
    if (!*ms) {
      return reader.Error(reader.KeyLine(key),
                          reader.where() + ": " + key + " '" + text + "' is not a duration",
                          std::string("write ") + key + " = " + example + " (units: ms, s, m, h)");
    }
    return Status::Ok();
  };
  DUPLEX_RETURN_IF_ERROR(duration("write_window", "\"10s\"", &s->write_window_ms));
  std::optional<int64_t> cross_check;
  DUPLEX_RETURN_IF_ERROR(duration("cross_check", "\"60s\"", &cross_check));
  if (cross_check) s->cross_check_ms = *cross_check;
  DUPLEX_RETURN_IF_ERROR(reader.GetString("api_budget", "\"50%\"", &s->api_budget_text));
  Result<ApiBudget> budget = ApiBudget::Parse(s->api_budget_text);
  if (!budget.ok()) {
    return reader.Error(reader.KeyLine("api_budget"),
                        reader.where() + ": api_budget '" + s->api_budget_text +
                            "' is not a "
                            "budget",
                        "write api_budget = \"50%\" (a share of the org's daily API requests) "
                        "or api_budget = \"20000\" (calls per 24 hours)");
  }
  s->api_budget = *budget;
  return std::shared_ptr<const ConnectorSettings>(std::move(s));
}

Result<std::unique_ptr<Connector>> MakeConnector(const ConnectorContext& context,
                                                 const ConnectorSettings& settings) {
  const auto* s = dynamic_cast<const SalesforceSettings*>(&settings);
  if (s == nullptr || s->instance_url.empty()) {
    return Status::InvalidArgument(context.where() + ": type \"salesforce\" needs instance_url");
  }
  auto secret = [&](const std::string& var, const char* key) -> Result<std::string> {
    const char* v = std::getenv(var.c_str());
    if (v == nullptr || *v == '\0') {
      return Status::InvalidArgument(context.where() + ": " + key + " names the environment " +
                                     "variable '" + var + "', which is not set");
    }
    return std::string(v);
  };
  SfEndpoint::Options o;
  o.client.instance_url = s->instance_url;
  DUPLEX_ASSIGN_OR_RETURN(o.client.client_id, secret(s->client_id_env, "client_id_env"));
  DUPLEX_ASSIGN_OR_RETURN(o.client.client_secret,
                          secret(s->client_secret_env, "client_secret_env"));
  // changeOrigin of duplex's writes: a pre-filter only (the engine's ledger decides).
  o.client.call_client = "duplex";
  o.client.where = "endpoint '" + context.name + "'";
  o.external_id = s->external_id;
  o.events = s->capture == SalesforceSettings::Capture::kCdc;
  o.pacing.budget = s->api_budget;
  // Polling, writes wait for the next poll (at most 10 s): then the poll and the writes of a
  // few seconds cost a call each instead of a call per change. With events, writes go at once.
  o.write_window_seconds =
      static_cast<double>(s->write_window_ms.value_or(o.events ? 0 : 10000)) / 1000.0;
  o.cross_check_seconds = static_cast<double>(s->cross_check_ms) / 1000.0;
  o.pacing.min_poll_seconds = static_cast<double>(s->poll_interval_ms) / 1000.0;
  // After a 403 REQUEST_LIMIT_EXCEEDED one call probes every 30 poll intervals, at most a
  // minute apart (the default 2s polls: a minute): an org whose quota frees (an admin raises
  // it, the rolling day moves on) is used again within that, and a refused probe is one call.
  o.pacing.probe_seconds = std::min(60.0, 30 * o.pacing.min_poll_seconds);
  return std::unique_ptr<Connector>(
      std::make_unique<SalesforceConnector>(context.name, std::move(o), *Env::Default()));
}

}  // namespace duplex::sf
