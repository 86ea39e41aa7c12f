#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "connectors/salesforce/client.h"
#include "support/test_util.h"

namespace duplex::testing {

// The local Salesforce (scripts/sf-emulator.sh) on a free port with its data in a fresh temp
// dir, for one test or suite. The destructor stops it (SIGTERM).
class SfEmulator {
 public:
  // Extra arguments, e.g. {"--daily-limit", "50"}.
  explicit SfEmulator(std::vector<std::string> args = {});
  ~SfEmulator();
  SfEmulator(const SfEmulator&) = delete;
  SfEmulator& operator=(const SfEmulator&) = delete;

  bool running() const { return pid_ > 0 && !url_.empty(); }
  const std::string& url() const { return url_; }  // http://127.0.0.1:PORT
  // How a test's client reaches this org: its URL and the emulator's default client
  // (duplex:secret), calls marked as `call_client` (changeOrigin), messages prefixed `where`.
  sf::ClientOptions ClientOptions(const std::string& call_client = "duplex-crm",
                                  const std::string& where = "endpoint 'crm'") const {
    sf::ClientOptions o;
    o.instance_url = url_;
    o.client_id = "duplex";
    o.client_secret = "secret";
    o.call_client = call_client;
    o.where = where;
    return o;
  }
  // A test hook under /__emulator/: GET when `body` is null, else POST it.
  nlohmann::json Hook(const std::string& name, const nlohmann::json& body = nullptr);
  // A REST call as an application (a Salesforce user) would make it: the body of the answer.
  nlohmann::json Api(const std::string& method, const std::string& path,
                     const nlohmann::json& body = nullptr);

 private:
  TempDir tmp_;
  pid_t pid_ = -1;
  std::string url_;
  std::string token_;
};

}  // namespace duplex::testing
