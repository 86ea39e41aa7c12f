#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "duplex/result.h"
#include "duplex/status.h"

namespace httplib {
class Client;
}

namespace duplex::sf {

// 18-character Salesforce ids: the 15-character case-sensitive id plus three checksum
// characters, one per run of five (an upper-case letter at position i sets bit i).
std::string Id18(std::string_view id15);
// The id as the API returns it (18 characters), from either form; nullopt if it is none.
std::optional<std::string> NormalizeId(std::string_view id);

// How to reach one org. Secrets are passed in, never logged.
struct ClientOptions {
  std::string instance_url;  // https://acme.my.salesforce.com, or the emulator's http URL
  std::string client_id;
  std::string client_secret;
  std::string call_client;  // Sforce-Call-Options: client=..., recorded as changeOrigin
  std::string api_version = "61.0";
  std::string where;  // "endpoint 'crm'": the prefix of every message
  int timeout_seconds = 30;
};

// The org's daily API requests as the last response's Sforce-Limit-Info said.
struct ApiUsage {
  int64_t used = -1;  // -1: not known yet
  int64_t max = -1;
};

// A REST client for one org: OAuth client credentials, JSON calls under
// /services/data/vXX.X, SOQL with paging (shared/SALESFORCE.md §1-§4). An expired session
// (401 INVALID_SESSION_ID) is renewed once per call. Errors, by what duplex should do:
//   Unavailable: the org cannot be reached, 503, 429, UNABLE_TO_LOCK_ROW, a reply lost after
//     the request was sent (the write may have committed: retry idempotent writes only), and
//     403 REQUEST_LIMIT_EXCEEDED (quota_exhausted() is then true: pause until it frees);
//   InvalidArgument: the org refuses the request (bad credentials, validation, a malformed
//     query), with its errorCode and message;
//   NotFound: 404.
// Not thread-safe.
class Client {
 public:
  explicit Client(ClientOptions options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Gets a new access token (client credentials).
  Status Login();

  // GET / POST / PATCH / DELETE `path` under /services/data/vXX.X (e.g. "/limits"). Returns
  // the JSON body of a 2xx answer (null for 204).
  Result<nlohmann::json> Get(const std::string& path);
  Result<nlohmann::json> Send(const std::string& method, const std::string& path,
                              const nlohmann::json& body);

  // The same for a path outside /services/data (e.g. /cometd/61.0): `path` is absolute on the
  // instance. Used by the CometD stream.
  Result<nlohmann::json> SendPath(const std::string& method, const std::string& path,
                                  const nlohmann::json& body);

  // Runs `soql` through query (or queryAll, which includes deleted rows), following
  // nextRecordsUrl; `visit` gets each page's records array.
  Status Query(const std::string& soql, bool include_deleted,
               const std::function<Status(nlohmann::json& records)>& visit);

  // Visits the records of `page` (a query answer's body, e.g. a Composite subrequest's) and of
  // every page after it, following nextRecordsUrl: a call per further page.
  Status Pages(nlohmann::json page, const std::function<Status(nlohmann::json& records)>& visit);

  // The absolute path of `soql` through query (or queryAll): for a Composite subrequest.
  std::string QueryPath(const std::string& soql, bool include_deleted) const;

  // Runs several queries in one API call: a Composite request (shared/SALESFORCE.md §3.3:
  // the whole request counts as one call) of up to kQueriesPerComposite query subrequests,
  // then a call per further page of any of them. `visit` gets the query's index and each
  // page's records, in order per query. A query the org refuses fails the whole; one query
  // goes alone, as Query.
  static constexpr size_t kQueriesPerComposite = 5;
  Status QueryMany(const std::vector<std::string>& soqls, bool include_deleted,
                   const std::function<Status(size_t i, nlohmann::json& records)>& visit);

  // Breaks off a call in progress from another thread (a CometD long-poll when stopping): it
  // fails as Unavailable. The only member that may be called concurrently with the others.
  void Interrupt();

  const ApiUsage& usage() const { return usage_; }
  bool quota_exhausted() const { return quota_exhausted_; }
  // API calls this client made (each counts against the org's daily limit).
  int64_t calls() const { return calls_; }
  const std::string& api_base() const { return api_base_; }

 private:
  struct Answer {
    int status = 0;
    nlohmann::json body;
  };
  // One HTTP call (`path` absolute on the instance), renewing the session once on 401.
  Result<Answer> Call(const std::string& method, const std::string& path, const std::string* body);
  Result<Answer> CallOnce(const std::string& method, const std::string& path,
                          const std::string* body);
  // The Status for a non-2xx answer.
  Status ErrorOf(const std::string& method, const std::string& path, const Answer& a);

  ClientOptions opt_;
  std::string api_base_;  // /services/data/v61.0
  std::unique_ptr<httplib::Client> http_;
  std::string token_;
  // Cookies the org set (Set-Cookie), sent back on every call: CometD ties a client to its
  // server through one (BAYEUX_BROWSER).
  std::map<std::string, std::string> cookies_;
  ApiUsage usage_;
  bool quota_exhausted_ = false;
  int64_t calls_ = 0;
};

// "SOQL datetime": 2024-01-02T03:04:05Z from seconds since the epoch.
std::string SoqlDateTime(int64_t epoch_seconds);
// Seconds since the epoch from an API datetime (2013-05-07T22:07:19.000+0000); nullopt if it
// is none.
std::optional<double> ParseDateTime(std::string_view text);

}  // namespace duplex::sf
