#include "admin/server.h"

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "admin/assets.h"
#include "admin/prometheus.h"
#include "pipeline/operator.h"
#include "store/state_store.h"
#include "util/log.h"

namespace duplex {

namespace {

using json = nlohmann::json;

// The largest request body read; the API's bodies are small JSON objects.
constexpr size_t kMaxBodyBytes = 1 << 20;
// Connections served at once, and accepted ones waiting for a worker (see WorkerPool).
constexpr size_t kMaxWorkers = 32;
constexpr size_t kMaxPending = 64;

// The admin server's workers: cpp-httplib hands each accepted connection to enqueue(), and a
// worker serves it until it closes. A connection holds its worker for as long as its client
// keeps sending (cpp-httplib 0.11 has no deadline per request, only one per read), so a few
// slow or idle clients must not take every worker, as they did with a fixed pool of four:
// threads start on demand up to `max_workers` and end after a second without work. Once
// `max_pending` connections wait, enqueue() blocks the accept loop: further clients wait in
// the kernel's listen backlog instead of holding descriptors the engine needs.
class WorkerPool : public httplib::TaskQueue {
 public:
  WorkerPool(size_t max_workers, size_t max_pending)
      : max_workers_(max_workers), max_pending_(max_pending) {}
  ~WorkerPool() override { shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::unique_lock<std::mutex> lock(mu_);
    room_.wait(lock, [&] { return pending_.size() < max_pending_ || shutdown_; });
    pending_.push_back(std::move(fn));
    ReapLocked();
    if (pending_.size() > idle_ && running_ < max_workers_) {
      ++running_;
      threads_.emplace_back([this] { Work(); });
    }
    work_.notify_one();
  }

  // Serves what is queued, then joins every worker.
  void shutdown() override {
    std::list<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      shutdown_ = true;
      threads.swap(threads_);
    }
    work_.notify_all();
    room_.notify_all();
    for (std::thread& t : threads) t.join();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        ++idle_;
        const bool woken = work_.wait_for(lock, std::chrono::seconds(1),
                                          [&] { return !pending_.empty() || shutdown_; });
        --idle_;
        if (pending_.empty()) {
          if (!woken || shutdown_) {
            --running_;
            ended_.push_back(std::this_thread::get_id());
            return;
          }
          continue;
        }
        fn = std::move(pending_.front());
        pending_.pop_front();
      }
      room_.notify_one();
      fn();
    }
  }

  // Joins the workers that ended for want of work.
  void ReapLocked() {
    for (std::thread::id id : ended_) {
      for (auto it = threads_.begin(); it != threads_.end(); ++it) {
        if (it->get_id() != id) continue;
        it->join();  // It has left Work(): only its return is left.
        threads_.erase(it);
        break;
      }
    }
    ended_.clear();
  }

  const size_t max_workers_, max_pending_;
  std::mutex mu_;
  std::condition_variable work_, room_;
  std::deque<std::function<void()>> pending_;
  std::list<std::thread> threads_;
  std::vector<std::thread::id> ended_;
  size_t running_ = 0, idle_ = 0;
  bool shutdown_ = false;
};

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(2) + "\n", "application/json");
}

void SendError(httplib::Response& res, int status, const std::string& message) {
  SendJson(res, status, json{{"error", message}});
}

// HTTP status for an operation's error.
int HttpStatusFor(const Status& st) {
  switch (st.code()) {
    case Status::Code::kNotFound:
      return 404;
    case Status::Code::kInvalidArgument:
      return 400;
    case Status::Code::kConflict:
      return 409;
    case Status::Code::kUnavailable:
      return 503;
    case Status::Code::kRefused:
      return 422;
    default:
      return 500;
  }
}

// Compares without an early exit, so response times tell nothing about the token's content.
bool SameSecret(const std::string& given, const std::string& token) {
  if (given.size() != token.size() || token.empty()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < token.size(); ++i) diff |= given[i] ^ token[i];
  return diff == 0;
}

double NowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json OverviewJson(const TelemetrySnapshot& s) {
  json eps = json::array();
  for (const EndpointTelemetry& t : s.endpoints) {
    int64_t captured = 0, applied = 0;
    for (const auto& [k, n] : s.captured) captured += k.first == t.name ? n : 0;
    for (const auto& [k, n] : s.applied) applied += k.first == t.name ? n : 0;
    eps.push_back({{"name", t.name},
                   {"connected", t.connected},
                   {"stopped", t.stopped},
                   {"last_error", t.last_error.empty() ? json(nullptr) : json(t.last_error)},
                   {"lag_seconds", t.lag_seconds},
                   {"unreachable_seconds", t.unreachable_seconds},
                   {"alerting", t.alerting},
                   {"alert", t.alert.empty() ? json(nullptr) : json(t.alert)},
                   {"dead_letters", t.dead_letters},
                   {"capture_backlog", t.capture_backlog},
                   {"apply_backlog", t.apply_backlog},
                   {"captured", captured},
                   {"applied", applied}});
  }
  json history = json::array();
  for (const HistorySample& h : s.history) {
    json per = json::object();
    for (const auto& [name, v] : h.endpoints) {
      per[name] = {{"captured", std::get<0>(v)},
                   {"applied", std::get<1>(v)},
                   {"lag_seconds", std::get<2>(v)}};
    }
    history.push_back({{"time_ms", h.wall_ms}, {"endpoints", std::move(per)}});
  }
  return {{"time_ms", s.wall_ms},
          {"objective_seconds", s.latency_objective_seconds},
          {"ready", s.Ready()},
          {"endpoints", std::move(eps)},
          {"history", std::move(history)}};
}

}  // namespace

// The request handlers and what they share. The state store connection is used by one
// request at a time (SQLite connections and their cached statements are not thread-safe).
class AdminServer::Handlers {
 public:
  Handlers(std::string token, std::unique_ptr<StateStore> store, TelemetryHub& hub)
      : token_(std::move(token)), store_(std::move(store)), hub_(hub) {}

  // Pre-routing: the bearer token, when one is set.
  bool Authorized(const httplib::Request& req) const {
    if (token_.empty() || req.path == "/healthz" || FindAsset(req.path)) return true;
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    return auth.rfind(prefix, 0) == 0 && SameSecret(auth.substr(prefix.size()), token_);
  }

  void Readyz(httplib::Response& res) const {
    std::shared_ptr<const TelemetrySnapshot> s = hub_.Latest();
    if (!s) return SendJson(res, 503, {{"ready", false}, {"reasons", {"engine starting"}}});
    json reasons = json::array();
    for (const EndpointTelemetry& t : s->endpoints) {
      if (t.stopped) {
        // last_error starts with "stopped: " (endpoint_health.h)
        reasons.push_back("endpoint " + t.name + " " + t.last_error);
      } else if (!t.connected) {
        reasons.push_back("endpoint " + t.name + " unreachable: " + t.last_error);
      }
      if (t.connected && t.lag_seconds > s->latency_objective_seconds) {
        reasons.push_back(fmt::format("endpoint {} lags {:.1f}s (objective {:.1f}s)", t.name,
                                      t.lag_seconds, s->latency_objective_seconds));
      }
    }
    const bool ready = reasons.empty();
    SendJson(res, ready ? 200 : 503, {{"ready", ready}, {"reasons", std::move(reasons)}});
  }

  void Metrics(httplib::Response& res) const {
    std::shared_ptr<const TelemetrySnapshot> s = hub_.Latest();
    if (!s) return SendError(res, 503, "engine starting: no metrics yet");
    res.set_content(RenderPrometheus(*s), "text/plain; version=0.0.4; charset=utf-8");
  }

  void Status(httplib::Response& res) const {
    std::shared_ptr<const TelemetrySnapshot> s = hub_.Latest();
    if (!s || s->status.is_null()) return SendError(res, 503, "engine starting: no status yet");
    SendJson(res, 200, s->status);
  }

  void Overview(httplib::Response& res) const {
    std::shared_ptr<const TelemetrySnapshot> s = hub_.Latest();
    if (!s) return SendError(res, 503, "engine starting: no telemetry yet");
    SendJson(res, 200, OverviewJson(*s));
  }

  void Conflicts(const httplib::Request& req, httplib::Response& res) {
    const std::string all = req.get_param_value("all");
    std::lock_guard<std::mutex> lock(mu_);
    Result<std::vector<ConflictRow>> rows = store_->ListConflicts(all == "1" || all == "true");
    if (!rows.ok()) return SendError(res, HttpStatusFor(rows.status()), rows.status().message());
    json arr = json::array();
    for (const ConflictRow& c : *rows) arr.push_back(c.ToJson());
    SendJson(res, 200, arr);
  }

  void Conflict(const httplib::Request& req, httplib::Response& res) {
    int64_t id = 0;
    if (!ParseId(req.matches[1], &id)) return BadId(res, "conflict", req.matches[1]);
    std::lock_guard<std::mutex> lock(mu_);
    Result<ConflictRow> c = store_->GetConflict(id);
    if (!c.ok()) return SendError(res, HttpStatusFor(c.status()), c.status().message());
    SendJson(res, 200, c->ToJson());
  }

  void Resolve(const httplib::Request& req, httplib::Response& res) {
    int64_t id = 0;
    if (!ParseId(req.matches[1], &id)) return BadId(res, "conflict", req.matches[1]);
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return SendError(res, 400,
                       "the body must be a JSON object: {\"take\": \"ENDPOINT\"} or "
                       "{\"value\": VALUE}");
    }
    Resolution r;
    const bool take = body.contains("take"), value = body.contains("value");
    if (take == value || body.size() != 1) {
      return SendError(res, 400, "give exactly one of \"take\" (an endpoint) or \"value\"");
    }
    if (take) {
      if (!body["take"].is_string()) return SendError(res, 400, "\"take\" must be a string");
      r.take = body["take"].get<std::string>();
    } else {
      r.value = body["value"];
      r.has_value = true;
    }
    std::lock_guard<std::mutex> lock(mu_);
    Result<ConflictRow> c = ResolveConflict(*store_, id, r, NowMs());
    if (!c.ok()) return SendError(res, HttpStatusFor(c.status()), c.status().message());
    spdlog::info("conflict id={} collection={} key={} field={} {} through the admin server", id,
                 c->collection, c->key_text, c->field, c->status);
    SendJson(res, 200, c->ToJson());
  }

  void DeadLetters(httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu_);
    Result<std::vector<DeadLetterRow>> rows = store_->ListDeadLetters(false);
    if (!rows.ok()) return SendError(res, HttpStatusFor(rows.status()), rows.status().message());
    json arr = json::array();
    for (const DeadLetterRow& d : *rows) arr.push_back(d.ToJson());
    SendJson(res, 200, arr);
  }

  void Retry(const httplib::Request& req, httplib::Response& res) {
    int64_t id = 0;
    if (!ParseId(req.matches[1], &id)) return BadId(res, "dead letter", req.matches[1]);
    std::lock_guard<std::mutex> lock(mu_);
    Result<DeadLetterRow> d = RetryDeadLetter(*store_, id);
    if (!d.ok()) return SendError(res, HttpStatusFor(d.status()), d.status().message());
    spdlog::info("endpoint={} dead letter id={} retry requested through the admin server",
                 d->endpoint, id);
    SendJson(res, 202, d->ToJson());
  }

  void DeadLetter(const httplib::Request& req, httplib::Response& res) {
    int64_t id = 0;
    if (!ParseId(req.matches[1], &id)) return BadId(res, "dead letter", req.matches[1]);
    std::lock_guard<std::mutex> lock(mu_);
    Result<DeadLetterRow> d = store_->GetDeadLetter(id);
    if (!d.ok()) return SendError(res, HttpStatusFor(d.status()), d.status().message());
    SendJson(res, 200, d->ToJson());
  }

  void RetryAll(httplib::Response& res) {
    std::lock_guard<std::mutex> lock(mu_);
    Result<int64_t> n = RetryAllDeadLetters(*store_);
    if (!n.ok()) return SendError(res, HttpStatusFor(n.status()), n.status().message());
    spdlog::info("retry of all {} dead letters requested through the admin server", *n);
    SendJson(res, 202, {{"retry_requested", *n}});
  }

  void Drop(const httplib::Request& req, httplib::Response& res) {
    int64_t id = 0;
    if (!ParseId(req.matches[1], &id)) return BadId(res, "dead letter", req.matches[1]);
    std::lock_guard<std::mutex> lock(mu_);
    Result<DeadLetterRow> d = DropDeadLetter(*store_, id);
    if (!d.ok()) return SendError(res, HttpStatusFor(d.status()), d.status().message());
    const RowOp* first = d->batch.ops.empty() ? nullptr : &d->batch.ops.front();
    spdlog::warn(
        "endpoint={} collection={} key={} dead letter id={} writes={} dropped through the admin "
        "server; they will not be applied",
        d->endpoint, first ? first->collection : "", first ? first->key.dump() : "", id,
        d->batch.ops.size());
    SendJson(res, 200, d->ToJson());
  }

 private:
  static void BadId(httplib::Response& res, const char* what, const std::string& text) {
    SendError(res, 400, fmt::format("{} id must be a positive number, got '{}'", what, text));
  }

  const std::string token_;
  std::mutex mu_;
  std::unique_ptr<StateStore> store_;
  TelemetryHub& hub_;
};

bool AdminServer::IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

Result<std::unique_ptr<AdminServer>> AdminServer::Start(const Options& o, TelemetryHub& hub) {
  const size_t colon = o.address.rfind(':');
  if (colon == std::string::npos) {
    return Status::InvalidArgument("engine.http must be HOST:PORT, got '" + o.address + "'");
  }
  std::string host = o.address.substr(0, colon);
  const int port = std::atoi(o.address.c_str() + colon + 1);
  if (!IsLoopback(host) && o.token.empty()) {
    return Status::InvalidArgument(
        "engine.http binds " + host +
        ", which is not loopback: anyone who reaches it could resolve conflicts. Set "
        "http_token_env = \"VAR\" in [engine] and export VAR with a secret token, or bind "
        "127.0.0.1");
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  DUPLEX_ASSIGN_OR_RETURN(std::unique_ptr<StateStore> store,
                          StateStore::Open(o.state_path, /*create=*/false));
  std::unique_ptr<AdminServer> s(new AdminServer());
  s->handlers_ = std::make_unique<Handlers>(o.token, std::move(store), hub);
  s->server_ = std::make_unique<httplib::Server>();
  s->server_->new_task_queue = [] { return new WorkerPool(kMaxWorkers, kMaxPending); };
  s->server_->set_payload_max_length(kMaxBodyBytes);
  s->server_->set_read_timeout(2);
  s->server_->set_write_timeout(5);
  s->server_->set_keep_alive_timeout(2);
  s->Routes();
  const int bound = port == 0 ? s->server_->bind_to_any_port(host)
                              : (s->server_->bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return Status::Unavailable("admin server: cannot listen on " + o.address +
                               " (in use, or not an address of this machine)");
  }
  s->port_ = bound;
  s->thread_ = std::thread([srv = s->server_.get()] { srv->listen_after_bind(); });
  return s;
}

void AdminServer::Routes() {
  httplib::Server& srv = *server_;
  Handlers& h = *handlers_;
  srv.set_pre_routing_handler([&h](const httplib::Request& req, httplib::Response& res) {
    // A chunked body is refused before any of it is read: cpp-httplib 0.11 appends every
    // chunk to the request in memory, whatever payload_max_length says. (A Content-Length
    // over it is read and discarded, then answered 413, so that the client sees the answer.)
    if (req.has_header("Transfer-Encoding")) {
      SendError(res, 411, "send the body with a Content-Length, not a Transfer-Encoding");
      res.set_header("Connection", "close");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (h.Authorized(req)) return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("WWW-Authenticate", "Bearer");
    SendError(res, 401, "this admin server needs Authorization: Bearer <token>");
    return httplib::Server::HandlerResponse::Handled;
  });
  srv.set_exception_handler([](const httplib::Request&, httplib::Response& res,
                               std::exception_ptr) { SendError(res, 500, "internal error"); });
  // Unknown paths and wrong methods: a JSON error instead of httplib's empty body.
  srv.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    SendError(res, res.status,
              res.status == 404 ? "no such resource: " + req.method + " " + req.path
                                : fmt::format("bad request ({})", res.status));
  });
  srv.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  srv.Get("/readyz", [&h](const httplib::Request&, httplib::Response& res) { h.Readyz(res); });
  srv.Get("/metrics", [&h](const httplib::Request&, httplib::Response& res) { h.Metrics(res); });
  for (const Asset& a : Assets()) {
    const Asset* asset = &a;
    srv.Get(std::string(a.path), [asset](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(asset->body), asset->type);
    });
  }
  srv.Get("/api/v1/status",
          [&h](const httplib::Request&, httplib::Response& res) { h.Status(res); });
  srv.Get("/api/v1/overview",
          [&h](const httplib::Request&, httplib::Response& res) { h.Overview(res); });
  srv.Get("/api/v1/conflicts",
          [&h](const httplib::Request& req, httplib::Response& res) { h.Conflicts(req, res); });
  srv.Get(R"(/api/v1/conflicts/([^/]+))",
          [&h](const httplib::Request& req, httplib::Response& res) { h.Conflict(req, res); });
  srv.Post(R"(/api/v1/conflicts/([^/]+)/resolve)",
           [&h](const httplib::Request& req, httplib::Response& res) { h.Resolve(req, res); });
  srv.Get("/api/v1/dead-letters",
          [&h](const httplib::Request&, httplib::Response& res) { h.DeadLetters(res); });
  srv.Post("/api/v1/dead-letters/retry-all",
           [&h](const httplib::Request&, httplib::Response& res) { h.RetryAll(res); });
  srv.Get(R"(/api/v1/dead-letters/([^/]+))",
          [&h](const httplib::Request& req, httplib::Response& res) { h.DeadLetter(req, res); });
  srv.Delete(R"(/api/v1/dead-letters/([^/]+))",
             [&h](const httplib::Request& req, httplib::Response& res) { h.Drop(req, res); });
  srv.Post(R"(/api/v1/dead-letters/([^/]+)/retry)",
           [&h](const httplib::Request& req, httplib::Response& res) { h.Retry(req, res); });
}

void AdminServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

AdminServer::~AdminServer() { Stop(); }

}  // namespace duplex
