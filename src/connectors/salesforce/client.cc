#include "connectors/salesforce/client.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace duplex::sf {

namespace {

constexpr std::string_view kBase62 =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// The first error of a REST error body: [{"message", "errorCode", "fields"}], or an OAuth
// error {"error", "error_description"}.
std::pair<std::string, std::string> FirstError(const nlohmann::json& body) {
  if (body.is_array() && !body.empty() && body[0].is_object()) {
    const nlohmann::json& e = body[0];
    std::string message = e.value("message", "");
    if (e.contains("fields") && e["fields"].is_array() && !e["fields"].empty()) {
      message += " (fields: " + e["fields"].dump() + ")";
    }
    return {e.value("errorCode", ""), message};
  }
  if (body.is_object() && body.contains("error")) {
    return {body.value("error", ""), body.value("error_description", "")};
  }
  return {"", body.is_null() ? "" : body.dump()};
}

bool Retriable(int status, const std::string& code) {
  return status == 503 || status == 429 || status >= 500 || code == "UNABLE_TO_LOCK_ROW" ||
         code == "SERVER_UNAVAILABLE";
}

}  // namespace

std::string Id18(std::string_view id15) {
  std::string out(id15.substr(0, 15));
  for (int run = 0; run < 3; ++run) {
    int bits = 0;
    for (int i = 0; i < 5 && static_cast<size_t>(run * 5 + i) < out.size(); ++i) {
      const char c = out[static_cast<size_t>(run * 5 + i)];
      if (c >= 'A' && c <= 'Z') bits |= 1 << i;
    }
    out += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits];
  }
  return out;
}

std::optional<std::string> NormalizeId(std::string_view id) {
  if (id.size() != 15 && id.size() != 18) return std::nullopt;
  for (size_t i = 0; i < 15; ++i) {
    if (kBase62.find(id[i]) == std::string_view::npos) return std::nullopt;
  }
  std::string full = Id18(id.substr(0, 15));
  if (id.size() == 18) {
    for (size_t i = 15; i < 18; ++i) {
      if (std::toupper(static_cast<unsigned char>(id[i])) != full[i]) return std::nullopt;
    }
  }
  return full;
}

std::string SoqlDateTime(int64_t epoch_seconds) {
  const std::time_t t = static_cast<std::time_t>(epoch_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<double> ParseDateTime(std::string_view text) {
  // 2013-05-07T22:07:19.000+0000 (also without milliseconds, with Z or +hh:mm).
  int y, mo, d, h, mi, s;
  if (text.size() < 19 || std::sscanf(std::string(text.substr(0, 19)).c_str(),
                                      "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &s) != 6) {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  double secs = static_cast<double>(timegm(&tm));
  size_t i = 19;
  if (i < text.size() && text[i] == '.') {
    double frac = 0, scale = 0.1;
    for (++i; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
      frac += (text[i] - '0') * scale;
      scale /= 10;
    }
    secs += frac;
  }
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
    const int sign = text[i] == '+' ? 1 : -1;
    std::string digits;
    for (++i; i < text.size(); ++i) {
      if (std::isdigit(static_cast<unsigned char>(text[i]))) digits += text[i];
    }
    if (digits.size() != 4) return std::nullopt;
    secs -= sign * (std::stoi(digits.substr(0, 2)) * 3600 + std::stoi(digits.substr(2)) * 60);
  }
  return secs;
}

Client::Client(ClientOptions options)
    : opt_(std::move(options)),
      api_base_("/services/data/v" + opt_.api_version),
      http_(std::make_unique<httplib::Client>(opt_.instance_url)) {
  http_->set_connection_timeout(opt_.timeout_seconds, 0);
  http_->set_read_timeout(opt_.timeout_seconds, 0);
  http_->set_write_timeout(opt_.timeout_seconds, 0);
  http_->set_keep_alive(true);
}

Client::~Client() = default;

void Client::Interrupt() { http_->stop(); }

Status Client::Login() {
  httplib::Params form{{"grant_type", "client_credentials"},
                       {"client_id", opt_.client_id},
                       {"client_secret", opt_.client_secret}};
  httplib::Result r = http_->Post("/services/oauth2/token", form);
  if (!r) {
    return Status::Unavailable(opt_.where + ": cannot reach " + opt_.instance_url + ": " +
                               httplib::to_string(r.error()));
  }
  nlohmann::json body = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200 || !body.is_object() || !body.contains("access_token")) {
    auto [code, message] = FirstError(body);
    const std::string text = opt_.where + ": login at " + opt_.instance_url + " refused (" +
                             std::to_string(r->status) + " " + code + ": " + message + ")";
    return Retriable(r->status, code) ? Status::Unavailable(text) : Status::InvalidArgument(text);
  }
  token_ = body["access_token"].get<std::string>();
  return Status::Ok();
}

Result<Client::Answer> Client::CallOnce(const std::string& method, const std::string& path,
                                        const std::string* body) {
  httplib::Headers headers{{"Authorization", "Bearer " + token_}, {"Accept", "application/json"}};
  if (!opt_.call_client.empty())
    headers.emplace("Sforce-Call-Options", "client=" + opt_.call_client);
  if (!cookies_.empty()) {
    std::string cookie;
    for (const auto& [name, value] : cookies_) {
      cookie += (cookie.empty() ? "" : "; ") + name + "=" + value;
    }
    headers.emplace("Cookie", cookie);
  }
  const std::string content = body ? *body : std::string();
  auto send = [&]() -> httplib::Result {
    if (method == "GET") return http_->Get(path, headers);
    if (method == "POST") return http_->Post(path, headers, content, "application/json");
    if (method == "PATCH") return http_->Patch(path, headers, content, "application/json");
    return http_->Delete(path, headers);
  };
  if (method != "GET" && method != "POST" && method != "PATCH" && method != "DELETE") {
    return Status::InvalidArgument(opt_.where + ": unknown HTTP method " + method);
  }
  httplib::Result r = send();
  ++calls_;
  if (!r) {
    return Status::Unavailable(opt_.where + ": " + method + " " + path + ": no answer from " +
                               opt_.instance_url + " (" + httplib::to_string(r.error()) +
                               "); a write may have been applied");
  }
  for (size_t i = 0, n = r->get_header_value_count("Set-Cookie"); i < n; ++i) {
    const std::string c = r->get_header_value("Set-Cookie", i);
    const std::string pair = c.substr(0, c.find(';'));
    const size_t eq = pair.find('=');
    if (eq != std::string::npos && eq > 0) cookies_[pair.substr(0, eq)] = pair.substr(eq + 1);
  }
  const std::string limit = r->get_header_value("Sforce-Limit-Info");
  long long used = 0, max = 0;
  if (std::sscanf(limit.c_str(), "api-usage=%lld/%lld", &used, &max) == 2) {
    usage_.used = used;
    usage_.max = max;
  }
  Answer a;
  a.status = r->status;
  if (!r->body.empty()) a.body = nlohmann::json::parse(r->body, nullptr, false);
  if (a.body.is_discarded()) {
    return Status::Unavailable(opt_.where + ": " + method + " " + path + ": answer " +
                               std::to_string(r->status) + " is not JSON");
  }
  return a;
}

Result<Client::Answer> Client::Call(const std::string& method, const std::string& path,
                                    const std::string* body) {
  if (token_.empty()) DUPLEX_RETURN_IF_ERROR(Login());
  DUPLEX_ASSIGN_OR_RETURN(Answer a, CallOnce(method, path, body));
  if (a.status == 401) {
    // The session expired (tokens last as long as the org's session timeout): once.
    DUPLEX_RETURN_IF_ERROR(Login());
    DUPLEX_ASSIGN_OR_RETURN(a, CallOnce(method, path, body));
  }
  quota_exhausted_ = false;
  if (a.status >= 200 && a.status < 300) return a;
  return ErrorOf(method, path, a);
}

Status Client::ErrorOf(const std::string& method, const std::string& path, const Answer& a) {
  auto [code, message] = FirstError(a.body);
  std::string text = opt_.where + ": " + method + " " + path + ": " + std::to_string(a.status) +
                     (code.empty() ? "" : " " + code) + ": " + message;
  if (a.status == 403 && code == "REQUEST_LIMIT_EXCEEDED") {
    quota_exhausted_ = true;
    if (usage_.max >= 0) {
      text += " (api-usage " + std::to_string(usage_.used) + "/" + std::to_string(usage_.max) + ")";
    }
    return Status::Unavailable(text + "; paused until the org's daily API requests free up");
  }
  if (a.status == 401 || Retriable(a.status, code)) return Status::Unavailable(text);
  if (a.status == 404) return Status::NotFound(text);
  return Status::InvalidArgument(text);
}

Result<nlohmann::json> Client::Get(const std::string& path) {
  DUPLEX_ASSIGN_OR_RETURN(Answer a, Call("GET", api_base_ + path, nullptr));
  return std::move(a.body);
}

Result<nlohmann::json> Client::Send(const std::string& method, const std::string& path,
                                    const nlohmann::json& body) {
  const std::string text = body.is_null() ? std::string() : body.dump();
  DUPLEX_ASSIGN_OR_RETURN(Answer a,
                          Call(method, api_base_ + path, body.is_null() ? nullptr : &text));
  return std::move(a.body);
}

Result<nlohmann::json> Client::SendPath(const std::string& method, const std::string& path,
                                        const nlohmann::json& body) {
  const std::string text = body.is_null() ? std::string() : body.dump();
  DUPLEX_ASSIGN_OR_RETURN(Answer a, Call(method, path, body.is_null() ? nullptr : &text));
  return std::move(a.body);
}

Status Client::Query(const std::string& soql, bool include_deleted,
                     const std::function<Status(nlohmann::json& records)>& visit) {
  DUPLEX_ASSIGN_OR_RETURN(Answer a, Call("GET", QueryPath(soql, include_deleted), nullptr));
  return Pages(std::move(a.body), visit);
}

Status Client::Pages(nlohmann::json page,
                     const std::function<Status(nlohmann::json& records)>& visit) {
  while (true) {
    if (!page.is_object() || !page.contains("records")) {
      return Status::Corruption(opt_.where +
                                ": query answer without records: " + page.dump().substr(0, 200));
    }
    DUPLEX_RETURN_IF_ERROR(visit(page["records"]));
    if (page.value("done", true) || !page.contains("nextRecordsUrl")) return Status::Ok();
    const std::string next = page["nextRecordsUrl"].get<std::string>();
    DUPLEX_ASSIGN_OR_RETURN(Answer a, Call("GET", next, nullptr));
    page = std::move(a.body);
  }
}

std::string Client::QueryPath(const std::string& soql, bool include_deleted) const {
  return api_base_ + (include_deleted ? "/queryAll?q=" : "/query?q=") +
         httplib::detail::encode_query_param(soql);
}

Status Client::QueryMany(const std::vector<std::string>& soqls, bool include_deleted,
                         const std::function<Status(size_t i, nlohmann::json& records)>& visit) {
  if (soqls.size() == 1) {
    return Query(soqls[0], include_deleted, [&](nlohmann::json& r) { return visit(0, r); });
  }
  const std::string resource = include_deleted ? "/queryAll?q=" : "/query?q=";
  for (size_t start = 0; start < soqls.size(); start += kQueriesPerComposite) {
    const size_t end = std::min(soqls.size(), start + kQueriesPerComposite);
    nlohmann::json subs = nlohmann::json::array();
    for (size_t i = start; i < end; ++i) {
      subs.push_back({{"method", "GET"},
                      {"url", QueryPath(soqls[i], include_deleted)},
                      {"referenceId", "q" + std::to_string(i)}});
    }
    const std::string body =
        nlohmann::json{{"allOrNone", false}, {"compositeRequest", std::move(subs)}}.dump();
    DUPLEX_ASSIGN_OR_RETURN(Answer a, Call("POST", api_base_ + "/composite", &body));
    nlohmann::json* answers = a.body.is_object() && a.body.contains("compositeResponse")
                                  ? &a.body["compositeResponse"]
                                  : nullptr;
    if (answers == nullptr || !answers->is_array() || answers->size() != end - start) {
      return Status::Corruption(opt_.where +
                                ": composite query answer without one response "
                                "per query: " +
                                a.body.dump().substr(0, 200));
    }
    for (size_t i = start; i < end; ++i) {
      nlohmann::json& sub = (*answers)[i - start];
      Answer page{sub.value("httpStatusCode", 0),
                  sub.contains("body") ? std::move(sub["body"]) : nlohmann::json()};
      if (page.status < 200 || page.status >= 300) {
        return ErrorOf("GET", api_base_ + resource + soqls[i], page);
      }
      DUPLEX_RETURN_IF_ERROR(
          Pages(std::move(page.body), [&](nlohmann::json& records) { return visit(i, records); }));
    }
  }
  return Status::Ok();
}

}  // namespace duplex::sf
