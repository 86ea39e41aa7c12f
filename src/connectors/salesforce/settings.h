// The "salesforce" endpoint type's settings, parsed from the config file (issue 13 §2).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "connectors/salesforce/pacer.h"
#include "connectors/settings.h"
#include "duplex/connector.h"
#include "duplex/result.h"

namespace duplex::sf {

// [endpoints.NAME]
//   type = "salesforce"
//   instance_url = "https://acme.my.salesforce.com"  (or the local emulator's http URL)
//   client_id_env = "SF_CLIENT_ID"          secrets only from the environment, never logged
//   client_secret_env = "SF_CLIENT_SECRET"
//   external_id = "External_Id__c"          duplex's record key: idempotent upserts
//   capture = "cdc"                         "cdc" (change events, cross-checked by polling) or
//                                           "poll" (queryAll polling and the sweep alone)
//   poll_interval = "2s"                    the shortest time between polls
//   api_budget = "100%"                     the most of the org's daily API requests duplex uses
//                                           (the default; "50%" a share, "20000" calls a day)
//   write_window = "10s"                    how long writes may wait to go in one call with
//                                           others: they go right after the next poll, at most
//                                           this late (default 10s polling, 0s with cdc)
//   cross_check = "60s"                     with cdc, how often a poll cross-checks the events
struct SalesforceSettings final : ConnectorSettings {
  std::string instance_url;
  std::string client_id_env;
  std::string client_secret_env;
  std::string external_id;
  enum class Capture { kCdc, kPoll } capture = Capture::kCdc;
  int64_t poll_interval_ms = 2000;
  ApiBudget api_budget;  // 100% unless set
  std::string api_budget_text = "100%";
  std::optional<int64_t> write_window_ms;  // unset: 10 s polling, 0 with cdc
  int64_t cross_check_ms = 60000;

  // Never the secrets, nor the names of the variables holding them.
  std::string Summary() const override;
};

// Reads the section's keys. InvalidArgument "FILE:LINE: ..." for an unknown key, a missing
// instance_url, client_id_env, client_secret_env or external_id, an instance_url that is not
// http(s)://HOST[:PORT], an unknown capture, a bad poll_interval or api_budget.
Result<std::shared_ptr<const ConnectorSettings>> ParseSettings(const SettingsReader& reader);

// Builds the connector: the secrets from the environment variables the settings name
// (InvalidArgument naming the variable when one is unset; the values are never logged).
Result<std::unique_ptr<Connector>> MakeConnector(const ConnectorContext& context,
                                                 const ConnectorSettings& settings);

// "500ms", "2s", "1.5s", "5m", "1h" in milliseconds; nullopt for anything else (the config's own
// duration syntax, which this layer cannot link).
std::optional<int64_t> ParseIntervalMs(std::string_view text);

}  // namespace duplex::sf
