#include "connectors/salesforce/writes.h"

#include <algorithm>
#include <cctype>

namespace duplex::sf {

namespace {

// Per-record codes worth sending again: the lock wait timed out (10 s, typical when parallel
// calls touch children of one parent), or the server was briefly unavailable.
bool RetriableCode(const std::string& code) {
  return code == "UNABLE_TO_LOCK_ROW" || code == "SERVER_UNAVAILABLE";
}

bool SameName(const std::string& a, const std::string& b) {
  // API names are case-insensitive.
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string Text(const nlohmann::json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// The value of `field` in `record` as text (the record's key in messages and URLs).
std::string KeyOf(const nlohmann::json& record, const std::string& field) {
  for (const auto& [k, v] : record.items()) {
    if (SameName(k, field)) return Text(v);
  }
  return "";
}

// Every record of a call that failed as a whole.
std::vector<RecordResult> CallFailed(const Client& client, const Status& st, size_t n) {
  RecordResult r;
  r.outcome = client.quota_exhausted() ? WriteOutcome::kQuotaExceeded : WriteOutcome::kRetriable;
  r.code = client.quota_exhausted() ? "REQUEST_LIMIT_EXCEEDED" : "";
  r.message = st.message();
  return std::vector<RecordResult>(n, r);
}

nlohmann::json UpsertSubrequest(const std::string& api_base, const std::string& object,
                                const std::string& field, const nlohmann::json& record,
                                const std::string& ref) {
  // Rows by External ID take the key in the URL and refuse it in the body.
  nlohmann::json body = nlohmann::json::object();
  std::string key;
  for (const auto& [k, v] : record.items()) {
    if (k == "attributes") continue;
    if (SameName(k, field)) {
      key = Text(v);
    } else {
      body[k] = v;
    }
  }
  // Percent-encode the key: external ids may hold '/', spaces or '#'.
  std::string url = api_base + "/sobjects/" + object + "/" + field + "/";
  static const char* kHex = "0123456789ABCDEF";
  for (unsigned char c : key) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      url += static_cast<char>(c);
    } else {
      url += '%';
      url += kHex[c >> 4];
      url += kHex[c & 15];
    }
  }
  return {{"method", "PATCH"}, {"url", url}, {"referenceId", ref}, {"body", body}};
}

}  // namespace

const char* WriteOutcomeName(WriteOutcome o) {
  switch (o) {
    case WriteOutcome::kCreated:
      return "created";
    case WriteOutcome::kUpdated:
      return "updated";
    case WriteOutcome::kDeleted:
      return "deleted";
    case WriteOutcome::kRefused:
      return "refused";
    case WriteOutcome::kRetriable:
      return "retriable";
    case WriteOutcome::kRolledBack:
      return "rolled back";
    case WriteOutcome::kQuotaExceeded:
      return "quota exceeded";
  }
  return "?";
}

RecordResult RecordResultOf(const nlohmann::json& result, const std::string& object,
                            const std::string& key, bool deleting) {
  RecordResult r;
  const nlohmann::json* errors = nullptr;
  if (result.is_object()) {
    if (result.contains("id") && result["id"].is_string()) r.id = result["id"].get<std::string>();
    if (result.value("success", false)) {
      r.outcome = deleting                         ? WriteOutcome::kDeleted
                  : result.value("created", false) ? WriteOutcome::kCreated
                                                   : WriteOutcome::kUpdated;
      return r;
    }
    if (result.contains("errors")) errors = &result["errors"];
  } else if (result.is_array()) {
    errors = &result;  // a Composite subrequest's error body
  }
  std::string message;
  if (errors && errors->is_array() && !errors->empty() && (*errors)[0].is_object()) {
    const nlohmann::json& e = (*errors)[0];
    r.code = e.value("statusCode", e.value("errorCode", ""));
    message = e.value("message", "");
    if (e.contains("fields") && e["fields"].is_array()) {
      for (const nlohmann::json& f : e["fields"]) {
        if (!f.is_string()) continue;
        r.fields += (r.fields.empty() ? "" : ",") + f.get<std::string>();
      }
    }
  }
  r.message = "object '" + object + "', record '" + key + "'" +
              (r.fields.empty() ? "" : ", field '" + r.fields + "'") + ": " +
              (r.code.empty() ? "no error code" : r.code) + ": " + message;
  if (RetriableCode(r.code)) {
    r.outcome = WriteOutcome::kRetriable;
  } else if (r.code == "ALL_OR_NONE_OPERATION_ROLLED_BACK" || r.code == "PROCESSING_HALTED") {
    r.outcome = WriteOutcome::kRolledBack;
  } else if (r.code == "REQUEST_LIMIT_EXCEEDED") {
    r.outcome = WriteOutcome::kQuotaExceeded;
  } else if (deleting && r.code == "ENTITY_IS_DELETED") {
    // Deleted before: by a Salesforce user, or by our own delete whose reply was lost.
    r.outcome = WriteOutcome::kDeleted;
  } else {
    r.outcome = WriteOutcome::kRefused;
  }
  return r;
}

Writer::Writer(Client& client, Env& env, int attempts, std::chrono::milliseconds first_backoff)
    : client_(client), env_(env), attempts_(std::max(1, attempts)), first_backoff_(first_backoff) {}

Result<std::vector<RecordResult>> Writer::WithRetries(
    size_t n,
    const std::function<Result<std::vector<RecordResult>>(const std::vector<size_t>&)>& send) {
  last_calls_ = 0;
  std::vector<RecordResult> out(n);
  std::vector<size_t> todo(n);
  for (size_t i = 0; i < n; ++i) todo[i] = i;
  std::chrono::milliseconds backoff = first_backoff_;
  for (int attempt = 1; !todo.empty(); ++attempt) {
    std::vector<size_t> again;
    bool quota = false;
    for (size_t start = 0; start < todo.size(); start += kMaxCollection) {
      std::vector<size_t> which(todo.begin() + static_cast<std::ptrdiff_t>(start),
                                todo.begin() + static_cast<std::ptrdiff_t>(
                                                   std::min(todo.size(), start + kMaxCollection)));
      const int64_t before = client_.calls();
      Result<std::vector<RecordResult>> got = send(which);
      last_calls_ += static_cast<int>(client_.calls() - before);
      if (!got.ok()) return got.status();
      if (got->size() != which.size()) {
        return Status::Corruption("Salesforce answered " + std::to_string(got->size()) +
                                  " results for " + std::to_string(which.size()) + " records");
      }
      for (size_t i = 0; i < which.size(); ++i) {
        RecordResult& r = (*got)[i];
        r.resent = attempt > 1;
        if (r.outcome == WriteOutcome::kQuotaExceeded) quota = true;
        if (r.outcome == WriteOutcome::kRetriable && attempt < attempts_) {
          again.push_back(which[i]);
        }
        out[which[i]] = std::move(r);
      }
      // The daily quota is gone: every further call would be refused and still be counted.
      if (quota) {
        for (size_t j = start + which.size(); j < todo.size(); ++j) {
          out[todo[j]] = CallFailed(client_,
                                    Status::Unavailable("not sent: the org's daily API "
                                                        "requests are used up"),
                                    1)[0];
          out[todo[j]].outcome = WriteOutcome::kQuotaExceeded;
        }
        return out;
      }
    }
    if (again.empty()) break;
    env_.Sleep(backoff);
    backoff *= 2;
    todo = std::move(again);
  }
  return out;
}

Result<std::vector<RecordResult>> Writer::Upsert(const std::string& object,
                                                 const std::string& external_id_field,
                                                 const std::vector<nlohmann::json>& records) {
  return WithRetries(
      records.size(), [&](const std::vector<size_t>& which) -> Result<std::vector<RecordResult>> {
        nlohmann::json batch = nlohmann::json::array();
        for (size_t i : which) {
          nlohmann::json r = records[i];
          r["attributes"] = {{"type", object}};
          batch.push_back(std::move(r));
        }
        Result<nlohmann::json> answer =
            client_.Send("PATCH", "/composite/sobjects/" + object + "/" + external_id_field,
                         {{"allOrNone", false}, {"records", std::move(batch)}});
        if (!answer.ok()) {
          if (!answer.status().IsRetriable()) {
            return answer.status().WithContext("upsert of " + std::to_string(which.size()) + " " +
                                               object + " records by " + external_id_field);
          }
          return CallFailed(client_, answer.status(), which.size());
        }
        if (!answer->is_array()) {
          return Status::Corruption("upsert of " + object + ": the answer is not a result list: " +
                                    answer->dump().substr(0, 200));
        }
        std::vector<RecordResult> out;
        for (size_t k = 0; k < answer->size(); ++k) {
          out.push_back(RecordResultOf(
              (*answer)[k], object,
              k < which.size() ? KeyOf(records[which[k]], external_id_field) : "", false));
        }
        return out;
      });
}

Result<std::vector<RecordResult>> Writer::Update(const std::string& object,
                                                 const std::vector<nlohmann::json>& records) {
  return WithRetries(
      records.size(), [&](const std::vector<size_t>& which) -> Result<std::vector<RecordResult>> {
        nlohmann::json batch = nlohmann::json::array();
        for (size_t i : which) {
          nlohmann::json r = nlohmann::json::object();
          r["attributes"] = {{"type", object}};
          for (const auto& [k, v] : records[i].items()) {
            if (k == "attributes") continue;
            r[SameName(k, "Id") ? "id" : k] = v;
          }
          batch.push_back(std::move(r));
        }
        Result<nlohmann::json> answer = client_.Send("PATCH", "/composite/sobjects",
                                                     {{"allOrNone", false}, {"records", batch}});
        if (!answer.ok()) {
          if (!answer.status().IsRetriable()) {
            return answer.status().WithContext("update of " + std::to_string(which.size()) + " " +
                                               object + " records");
          }
          return CallFailed(client_, answer.status(), which.size());
        }
        if (!answer->is_array()) {
          return Status::Corruption("update of " + object + ": the answer is not a result list: " +
                                    answer->dump().substr(0, 200));
        }
        std::vector<RecordResult> out;
        for (size_t k = 0; k < answer->size(); ++k) {
          out.push_back(RecordResultOf(
              (*answer)[k], object, k < which.size() ? KeyOf(records[which[k]], "Id") : "", false));
        }
        return out;
      });
}

Result<std::vector<RecordResult>> Writer::Delete(const std::string& object,
                                                 const std::vector<std::string>& ids) {
  return WithRetries(
      ids.size(), [&](const std::vector<size_t>& which) -> Result<std::vector<RecordResult>> {
        std::string list;
        for (size_t i : which) list += (list.empty() ? "" : ",") + ids[i];
        Result<nlohmann::json> answer =
            client_.Send("DELETE", "/composite/sobjects?ids=" + list + "&allOrNone=false", nullptr);
        if (!answer.ok()) {
          if (!answer.status().IsRetriable()) {
            return answer.status().WithContext("delete of " + std::to_string(which.size()) + " " +
                                               object + " records");
          }
          return CallFailed(client_, answer.status(), which.size());
        }
        if (!answer->is_array()) {
          return Status::Corruption("delete of " + object + ": the answer is not a result list: " +
                                    answer->dump().substr(0, 200));
        }
        std::vector<RecordResult> out;
        for (size_t k = 0; k < answer->size(); ++k) {
          out.push_back(
              RecordResultOf((*answer)[k], object, k < which.size() ? ids[which[k]] : "", true));
        }
        return out;
      });
}

Result<std::vector<RecordResult>> Writer::UpsertTree(const Tree& tree) {
  const size_t n = 1 + tree.children.size();
  if (n > kMaxSubrequests) {
    return Status::InvalidArgument(
        "a Composite call holds at most " + std::to_string(kMaxSubrequests) + " subrequests; " +
        tree.parent_object + " '" + KeyOf(tree.parent, tree.parent_external_id_field) + "' has " +
        std::to_string(tree.children.size()) + " children");
  }
  last_calls_ = 0;
  std::chrono::milliseconds backoff = first_backoff_;
  std::vector<RecordResult> out;
  for (int attempt = 1; attempt <= attempts_; ++attempt) {
    nlohmann::json subs = nlohmann::json::array();
    subs.push_back(UpsertSubrequest(client_.api_base(), tree.parent_object,
                                    tree.parent_external_id_field, tree.parent, "parent"));
    for (size_t i = 0; i < tree.children.size(); ++i) {
      nlohmann::json child = tree.children[i];
      child[tree.reference_field] = "@{parent.id}";
      subs.push_back(UpsertSubrequest(client_.api_base(), tree.child_object,
                                      tree.child_external_id_field, child,
                                      "child" + std::to_string(i)));
    }
    const int64_t before = client_.calls();
    Result<nlohmann::json> answer =
        client_.Send("POST", "/composite", {{"allOrNone", true}, {"compositeRequest", subs}});
    last_calls_ += static_cast<int>(client_.calls() - before);
    if (!answer.ok()) {
      if (!answer.status().IsRetriable()) {
        return answer.status().WithContext("composite upsert of " + tree.parent_object + " '" +
                                           KeyOf(tree.parent, tree.parent_external_id_field) +
                                           "' and its children");
      }
      out = CallFailed(client_, answer.status(), n);
    } else {
      const nlohmann::json* list = answer->is_object() && answer->contains("compositeResponse")
                                       ? &(*answer)["compositeResponse"]
                                       : nullptr;
      if (!list || !list->is_array() || list->size() != n) {
        return Status::Corruption(
            "composite upsert of " + tree.parent_object +
            ": the answer does not match the request: " + answer->dump().substr(0, 200));
      }
      out.clear();
      for (size_t i = 0; i < n; ++i) {
        const nlohmann::json& item = (*list)[i];
        const bool parent = i == 0;
        const std::string& object = parent ? tree.parent_object : tree.child_object;
        const std::string key = parent ? KeyOf(tree.parent, tree.parent_external_id_field)
                                       : KeyOf(tree.children[i - 1], tree.child_external_id_field);
        nlohmann::json body = item.contains("body") ? item["body"] : nlohmann::json();
        const int status = item.value("httpStatusCode", 0);
        if (status >= 200 && status < 300 && body.is_object()) {
          // Rows by External ID: 201 created, 200 updated (API 46+).
          body["success"] = true;
          body["created"] = status == 201;
        }
        out.push_back(RecordResultOf(body, object, key, false));
      }
    }
    const bool retry = std::all_of(out.begin(), out.end(),
                                   [](const RecordResult& r) {
                                     return r.outcome == WriteOutcome::kRetriable ||
                                            r.outcome == WriteOutcome::kRolledBack;
                                   }) &&
                       std::any_of(out.begin(), out.end(), [](const RecordResult& r) {
                         return r.outcome == WriteOutcome::kRetriable;
                       });
    if (!retry || attempt == attempts_) break;
    env_.Sleep(backoff);
    backoff *= 2;
  }
  return out;
}

namespace {

// The Collections call of `which` records of `r`, as a Composite subrequest.
nlohmann::json CollectionsSubrequest(const std::string& api_base, const Writer::Request& r,
                                     const std::vector<size_t>& which, const std::string& ref) {
  using Kind = Writer::Request::Kind;
  if (r.kind == Kind::kDelete) {
    std::string list;
    for (size_t i : which) list += (list.empty() ? "" : ",") + r.ids[i];
    return {{"method", "DELETE"},
            {"url", api_base + "/composite/sobjects?ids=" + list + "&allOrNone=false"},
            {"referenceId", ref}};
  }
  nlohmann::json batch = nlohmann::json::array();
  for (size_t i : which) {
    nlohmann::json rec = nlohmann::json::object();
    rec["attributes"] = {{"type", r.object}};
    for (const auto& [k, v] : r.records[i].items()) {
      if (k == "attributes") continue;
      rec[r.kind == Kind::kUpdate && SameName(k, "Id") ? "id" : k] = v;
    }
    batch.push_back(std::move(rec));
  }
  const std::string url =
      api_base + "/composite/sobjects" +
      (r.kind == Kind::kUpsert ? "/" + r.object + "/" + r.external_id_field : std::string());
  return {{"method", "PATCH"},
          {"url", url},
          {"referenceId", ref},
          {"body", {{"allOrNone", false}, {"records", std::move(batch)}}}};
}

std::string KeyIn(const Writer::Request& r, size_t i) {
  using Kind = Writer::Request::Kind;
  if (r.kind == Kind::kDelete) return r.ids[i];
  return KeyOf(r.records[i], r.kind == Kind::kUpsert ? r.external_id_field : "Id");
}

}  // namespace

Result<std::vector<std::vector<RecordResult>>> Writer::Write(
    const std::vector<Request>& requests, const std::vector<std::string>& queries,
    std::vector<nlohmann::json>* answers) {
  if (answers) answers->clear();
  using Kind = Request::Kind;
  std::vector<std::vector<RecordResult>> out(requests.size());
  // (request, the records of it) per subrequest, in request order.
  using Sub = std::pair<size_t, std::vector<size_t>>;
  std::vector<Sub> subs;
  for (size_t r = 0; r < requests.size(); ++r) {
    out[r].resize(requests[r].size());
    for (size_t start = 0; start < requests[r].size(); start += kMaxCollection) {
      std::vector<size_t> which;
      for (size_t i = start; i < std::min(requests[r].size(), start + kMaxCollection); ++i) {
        which.push_back(i);
      }
      subs.emplace_back(r, std::move(which));
    }
  }
  // The queries ride in the first call if it has room for them.
  const bool ride =
      !queries.empty() && answers != nullptr &&
      std::min(subs.size(), kMaxHeavySubrequests) + queries.size() <= kMaxHeavySubrequests;
  if (subs.size() == 1 && !ride) {
    // One call either way: the plain Collections call, with its own retries.
    const Request& r = requests[0];
    Result<std::vector<RecordResult>> got = r.kind == Kind::kDelete ? Delete(r.object, r.ids)
                                            : r.kind == Kind::kUpdate
                                                ? Update(r.object, r.records)
                                                : Upsert(r.object, r.external_id_field, r.records);
    if (!got.ok()) return got.status();
    out[0] = std::move(*got);
    return out;
  }
  last_calls_ = 0;
  std::chrono::milliseconds backoff = first_backoff_;
  for (int attempt = 1; !subs.empty(); ++attempt) {
    std::vector<Sub> again;
    for (size_t start = 0; start < subs.size(); start += kMaxHeavySubrequests) {
      const size_t end = std::min(subs.size(), start + kMaxHeavySubrequests);
      nlohmann::json list = nlohmann::json::array();
      for (size_t k = start; k < end; ++k) {
        list.push_back(CollectionsSubrequest(client_.api_base(), requests[subs[k].first],
                                             subs[k].second, "w" + std::to_string(k)));
      }
      const bool with_queries = ride && attempt == 1 && start == 0;
      if (with_queries) {
        for (size_t q = 0; q < queries.size(); ++q) {
          list.push_back(
              {{"method", "GET"}, {"url", queries[q]}, {"referenceId", "q" + std::to_string(q)}});
        }
      }
      const size_t expected = end - start + (with_queries ? queries.size() : 0);
      const int64_t before = client_.calls();
      Result<nlohmann::json> answer = client_.Send(
          "POST", "/composite",
          {{"allOrNone", false}, {"collateSubrequests", false}, {"compositeRequest", list}});
      last_calls_ += static_cast<int>(client_.calls() - before);
      const nlohmann::json* items =
          answer.ok() && answer->is_object() && answer->contains("compositeResponse")
              ? &(*answer)["compositeResponse"]
              : nullptr;
      if (answer.ok() && (!items || !items->is_array() || items->size() != expected)) {
        return Status::Corruption("composite write: the answer does not match the request: " +
                                  answer->dump().substr(0, 200));
      }
      if (!answer.ok() && !answer.status().IsRetriable()) {
        return answer.status().WithContext("composite write of " + std::to_string(end - start) +
                                           " Collections calls");
      }
      if (with_queries && answer.ok()) {
        std::vector<nlohmann::json> got;
        for (size_t q = 0; q < queries.size(); ++q) {
          const nlohmann::json& item = (*items)[end - start + q];
          const int status = item.value("httpStatusCode", 0);
          if (status < 200 || status >= 300 || !item.contains("body")) break;
          got.push_back(item["body"]);
        }
        if (got.size() == queries.size()) *answers = std::move(got);
      }
      bool quota = false;
      for (size_t k = start; k < end; ++k) {
        const auto& [r, which] = subs[k];
        const Request& req = requests[r];
        std::vector<RecordResult> got;
        if (!answer.ok()) {
          got = CallFailed(client_, answer.status(), which.size());
        } else {
          const nlohmann::json& item = (*items)[k - start];
          const int status = item.value("httpStatusCode", 0);
          const nlohmann::json body = item.contains("body") ? item["body"] : nlohmann::json();
          if (status >= 200 && status < 300 && body.is_array() && body.size() == which.size()) {
            for (size_t i = 0; i < which.size(); ++i) {
              got.push_back(RecordResultOf(body[i], req.object, KeyIn(req, which[i]),
                                           req.kind == Kind::kDelete));
            }
          } else {
            // The subrequest failed whole: the same error for each of its records; one that is
            // no per-record fact (a malformed request) is returned as the Status.
            RecordResult e = RecordResultOf(body, req.object, "", req.kind == Kind::kDelete);
            if (e.outcome == WriteOutcome::kRefused || e.outcome == WriteOutcome::kDeleted) {
              return Status::InvalidArgument("composite write, " + req.object + ": " +
                                             std::to_string(status) + ": " + e.message);
            }
            for (size_t i = 0; i < which.size(); ++i) {
              got.push_back(RecordResultOf(body, req.object, KeyIn(req, which[i]),
                                           req.kind == Kind::kDelete));
            }
          }
        }
        std::vector<size_t> retry;
        for (size_t i = 0; i < which.size(); ++i) {
          got[i].resent = attempt > 1;
          if (got[i].outcome == WriteOutcome::kQuotaExceeded) quota = true;
          if (got[i].outcome == WriteOutcome::kRetriable && attempt < attempts_) {
            retry.push_back(which[i]);
          }
          out[r][which[i]] = std::move(got[i]);
        }
        if (!retry.empty()) again.emplace_back(r, std::move(retry));
      }
      if (quota) {
        // Every further call would be refused and still be counted.
        for (size_t k = end; k < subs.size(); ++k) {
          for (size_t i : subs[k].second) {
            RecordResult q;
            q.outcome = WriteOutcome::kQuotaExceeded;
            q.code = "REQUEST_LIMIT_EXCEEDED";
            q.message = "not sent: the org's daily API requests are used up";
            out[subs[k].first][i] = q;
          }
        }
        return out;
      }
    }
    if (again.empty()) break;
    env_.Sleep(backoff);
    backoff *= 2;
    subs = std::move(again);
  }
  return out;
}

}  // namespace duplex::sf
