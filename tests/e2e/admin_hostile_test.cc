// End to end: the admin server of a real `duplex run` (DUPLEX_BIN) under a bounded, seeded
// burst of hostile requests on loopback (issue 15, §3) while an application writes rows:
// malformed request lines and headers, garbage, huge headers and URLs, oversized bodies and
// lying Content-Lengths, chunked bodies that never end, slowloris connections, invalid JSON,
// path traversal, unknown methods, bad tokens, idle connections held open. Afterwards the
// process is alive, /healthz answers quickly, memory, threads and file descriptors are back
// near where they were, and every row written during the burst reached the other endpoint.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "support/process.h"
#include "support/sync_fixture.h"
#include "support/test_util.h"

namespace duplex {
namespace {

using testing::ConfigBuilder;
using testing::PollUntil;
using testing::Process;
using testing::SqlExec;
using testing::SqlQuery;
using testing::SyncFixture;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint32_t kSeed = 15031;
constexpr int kClientThreads = 4;
constexpr auto kBurst = std::chrono::seconds(12);
constexpr int kMaxRequestsPerThread = 1500;
constexpr int kSlowConnections = 6;
constexpr int kIdleConnections = 48;
constexpr const char* kToken = "hostile-test-token-0815";

// What a process holds, from /proc.
struct Usage {
  long rss_kib = 0;
  int threads = 0;
  int fds = 0;
};

Usage UsageOf(pid_t pid) {
  Usage u;
  const std::string proc = "/proc/" + std::to_string(pid);
  std::ifstream status(proc + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) u.rss_kib = std::stol(line.substr(6));
    if (line.rfind("Threads:", 0) == 0) u.threads = std::stoi(line.substr(8));
  }
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(proc + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++u.fds;
  }
  return u;
}

// A loopback TCP connection to the admin server, closed by the destructor.
class Conn {
 public:
  explicit Conn(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      close(fd_);
      fd_ = -1;
    }
  }
  ~Conn() {
    if (fd_ >= 0) close(fd_);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool ok() const { return fd_ >= 0; }
  // Sends all of `data` unless the server closes or stops reading for `timeout`.
  bool Send(std::string_view data, milliseconds timeout = milliseconds(2000)) {
    const auto until = Clock::now() + timeout;
    while (!data.empty() && fd_ >= 0) {
      pollfd p{fd_, POLLOUT, 0};
      const auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now()).count();
      if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) return false;
      const ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return data.empty();
  }
  // Says that nothing more will be sent.
  void Finish() {
    if (fd_ >= 0) shutdown(fd_, SHUT_WR);
  }
  // The server's first response, or what it sent until it closed or `timeout` passed.
  std::string Receive(milliseconds timeout = milliseconds(3000)) {
    std::string got;
    const auto until = Clock::now() + timeout;
    char buf[4096];
    while (fd_ >= 0 && !Complete(got)) {
      pollfd p{fd_, POLLIN, 0};
      const auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now()).count();
      if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) break;
      const ssize_t n = recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    return got;
  }

 private:
  // Whether `got` holds a whole response (its head and Content-Length bytes of body).
  static bool Complete(const std::string& got) {
    const size_t head = got.find("\r\n\r\n");
    if (head == std::string::npos) return got.size() > 65536;
    static const std::regex kLength(R"(\r\n[Cc]ontent-[Ll]ength: *(\d+))");
    std::smatch m;
    const std::string h = got.substr(0, head);
    const size_t body = std::regex_search(h, m, kLength) ? std::stoul(m[1]) : 0;
    return got.size() >= head + 4 + body;
  }

  int fd_ = -1;
};

// The hostile request number `i` of a client, drawn from `rng`.
struct Attack {
  std::string name;
  std::string head;   // sent at once
  size_t filler = 0;  // then this many bytes of 'x' (a body or a line that never ends)
  bool endless_chunks = false;
};

Attack NextAttack(std::mt19937& rng, const std::string& token) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
  const std::string auth = "Authorization: Bearer " + token + "\r\n";
  const std::string post = "POST /api/v1/conflicts/1/resolve HTTP/1.1\r\nHost: x\r\n" + auth;
  switch (pick(14)) {
    case 0: {
      std::string junk(1 + pick(4096), '\0');
      for (char& c : junk) c = static_cast<char>(rng());
      return {"garbage", junk};
    }
    case 1: {
      const char* lines[] = {"GET\r\n\r\n",
                             "GET / HTTP/9.9\r\n\r\n",
                             "\r\n\r\n\r\n",
                             " / HTTP/1.1\r\n\r\n",
                             "GET /healthz\r\n\r\n",
                             "GET /healthz HTTP/1.1 extra\r\n\r\n",
                             "GET\t/\tHTTP/1.1\r\n\r\n",
                             "GET /healthz HTTP/1.1\n\n",
                             "\x16\x03\x01\x02\x00\x01\x00\x01\xfc"};
      return {"bad request line", lines[pick(9)]};
    }
    case 2: {
      std::string h = "GET /api/v1/status HTTP/1.1\r\n";
      const int n = pick(3) == 0 ? 5000 : 50;
      for (int k = 0; k < n; ++k) {
        h += pick(2) ? "NoColonHere\r\n" : "X-" + std::to_string(k) + ": \x01\x7f\xff\r\n";
      }
      return {"bad headers", h + "\r\n"};
    }
    case 3:  // One header of 256 KiB to 2 MiB.
      return {"huge header",
              "GET /api/v1/status HTTP/1.1\r\nX-Big: ", static_cast<size_t>(256 << 10) << pick(4)};
    case 4:  // A body of 2 to 8 MiB, sent in full.
    {
      const size_t n = static_cast<size_t>(2 << 20) << pick(3);
      return {"oversized body", post + "Content-Length: " + std::to_string(n) + "\r\n\r\n", n};
    }
    case 5:  // Says 1 GiB, sends 64 KiB.
      return {"lying length", post + "Content-Length: 1073741824\r\n\r\n", 64 << 10};
    case 6:
      return {"endless chunks", post + "Transfer-Encoding: chunked\r\n\r\n", 0, true};
    case 7: {
      const char* bodies[] = {"{not json",
                              "[1]",
                              "{\"take\": 5}",
                              "\"str\"",
                              "null",
                              "{}",
                              "{\"take\": \"crm\", \"value\": 1}",
                              "\xff\xfe{",
                              "{\"take\":",
                              "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["};
      const std::string b = bodies[pick(10)];
      const char* paths[] = {"/api/v1/conflicts/1/resolve", "/api/v1/dead-letters/1/retry",
                             "/api/v1/dead-letters/retry-all", "/api/v1/conflicts/x/resolve"};
      return {"invalid json", std::string("POST ") + paths[pick(4)] + " HTTP/1.1\r\nHost: x\r\n" +
                                  auth + "Content-Length: " + std::to_string(b.size()) +
                                  "\r\n\r\n" + b};
    }
    case 8: {
      const char* paths[] = {"/../../etc/passwd",
                             "/%2e%2e/%2e%2e/etc/passwd",
                             "/..%2f..%2f..%2fetc%2fpasswd",
                             "/api/v1/../../../../etc/passwd",
                             "/app.js/../../../etc/passwd",
                             "//etc/passwd",
                             "/%00",
                             "/%",
                             "/api/v1/conflicts/%2e%2e%2f%2e%2e%2fetc%2fpasswd"};
      return {"traversal",
              std::string("GET ") + paths[pick(9)] + " HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n"};
    }
    case 9: {
      const char* methods[] = {"FOO",   "PROPFIND", "TRACE",  "CONNECT", "OPTIONS",
                               "PATCH", "PUT",      "G\x01T", "HEAD"};
      return {"method", std::string(methods[pick(9)]) + " /api/v1/status HTTP/1.1\r\n" + auth +
                            "Content-Length: 0\r\n\r\n"};
    }
    case 10:  // A URL of 16 KiB to 1 MiB.
      return {"long url", "GET /api/v1/", static_cast<size_t>(16 << 10) << pick(7)};
    case 11: {
      const std::string bad[] = {"",
                                 "Authorization: Bearer wrong\r\n",
                                 "Authorization: Basic eDp5\r\n",
                                 "Authorization: Bearer \r\n",
                                 "Authorization: " + token + "\r\n",
                                 "Authorization: Bearer " + std::string(100000, 'a') + "\r\n"};
      return {"bad token", "GET /api/v1/conflicts HTTP/1.1\r\nHost: x\r\n" + bad[pick(6)] + "\r\n"};
    }
    case 12:  // A request line that never ends, 256 KiB to 4 MiB.
      return {"endless line", "GET /", static_cast<size_t>(256 << 10) << pick(5)};
    default: {
      const char* paths[] = {"/healthz",         "/readyz",           "/metrics", "/api/v1/status",
                             "/api/v1/overview", "/api/v1/conflicts", "/"};
      return {"valid",
              std::string("GET ") + paths[pick(7)] + " HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n"};
    }
  }
}

class AdminHostileTest : public ::testing::TestWithParam<bool>, protected SyncFixture {
 protected:
  void SetUp() override {
    SqlExec(Db("crm"), "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);");
    SqlExec(Db("billing"), "CREATE TABLE clients(id INTEGER PRIMARY KEY, name TEXT);");
  }

  std::string Db(const std::string& ep) const { return File(ep + ".db"); }

  std::string token() const { return GetParam() ? kToken : ""; }

  void Start() {
    ConfigBuilder config;
    config.Engine("http", "127.0.0.1:0");
    if (GetParam()) config.Engine("http_token_env", "DUPLEX_HOSTILE_TEST_TOKEN");
    config.Sqlite("crm", "crm.db").Sqlite("billing", "billing.db");
    config.Collection("customer").On("crm", "customers").On("billing", "clients");
    WriteConfig(config);
    if (GetParam()) setenv("DUPLEX_HOSTILE_TEST_TOKEN", kToken, 1);
    // In a sanitized build ASan keeps up to 256 MiB of freed memory in quarantine (measured:
    // +220 MiB of RSS after the burst, +9 MiB without it); 16 MiB keeps the RSS bound about
    // what the server holds. Other builds ignore the variable.
    const char* asan = getenv("ASAN_OPTIONS");
    const std::string saved = asan ? asan : "";
    setenv("ASAN_OPTIONS",
           (saved.empty() ? "" : saved + ":").append("quarantine_size_mb=16").c_str(), 1);
    run_ = Background({"run"});
    if (asan) {
      setenv("ASAN_OPTIONS", saved.c_str(), 1);
    } else {
      unsetenv("ASAN_OPTIONS");
    }
    unsetenv("DUPLEX_HOSTILE_TEST_TOKEN");
    static const std::regex kListening(R"(admin server listening on http://[^:]+:(\d+)/)");
    std::smatch m;
    ASSERT_TRUE(PollUntil(
        [&] {
          std::string err = run_->Err();
          if (!std::regex_search(err, m, kListening)) return !run_->Running();
          port_ = std::stoi(m[1]);
          return true;
        },
        milliseconds(20000)))
        << run_->Err();
    ASSERT_GT(port_, 0) << "duplex run exited: " << run_->Err();
  }

  // How long GET /healthz takes (-1 if it fails within 10 s).
  double HealthzSeconds() {
    httplib::Client c("127.0.0.1", port_);
    c.set_connection_timeout(10);
    c.set_read_timeout(10);
    const auto t0 = Clock::now();
    auto r = c.Get("/healthz");
    if (!r || r->status != 200) return -1;
    return std::chrono::duration<double>(Clock::now() - t0).count();
  }

  std::unique_ptr<Process> run_;
  int port_ = 0;
};

TEST_P(AdminHostileTest, BurstOfMalformedAndOversizedRequestsLeavesServerAndSyncIntact) {
  Start();
  ASSERT_GT(port_, 0);
  const pid_t pid = run_->pid();
  // Warm up: every route once, a row synced, so lazily allocated state exists before the
  // baseline is taken.
  SqlExec(Db("crm"), "INSERT INTO customers VALUES (0, 'warm')");
  ASSERT_TRUE(
      PollUntil([&] { return SqlQuery(Db("billing"), "SELECT count(*) FROM clients") == "1\n"; },
                milliseconds(15000)));
  {
    httplib::Client c("127.0.0.1", port_);
    httplib::Headers auth = {{"Authorization", std::string("Bearer ") + kToken}};
    for (const char* p : {"/", "/app.js", "/metrics", "/readyz", "/api/v1/status",
                          "/api/v1/overview", "/api/v1/conflicts", "/api/v1/dead-letters"}) {
      auto r = c.Get(p, auth);
      ASSERT_TRUE(r) << p;
    }
  }
  std::this_thread::sleep_for(milliseconds(500));
  const Usage before = UsageOf(pid);

  std::atomic<bool> stop{false};
  // The application: one row every 20 ms on crm for the whole burst.
  std::atomic<int> rows_written{0};
  std::thread app([&] {
    for (int id = 1; !stop; ++id) {
      SqlExec(Db("crm"), "INSERT INTO customers VALUES (" + std::to_string(id) + ", 'row')");
      rows_written = id;
      std::this_thread::sleep_for(milliseconds(20));
    }
  });
  // A probe: /healthz every 500 ms; the slowest answer (or -1 for none within 10 s).
  std::atomic<double> slowest_health{0};
  std::atomic<int> failed_health{0};
  std::thread probe([&] {
    while (!stop) {
      const double s = HealthzSeconds();
      if (s < 0) ++failed_health;
      if (s > slowest_health) slowest_health = s;
      std::this_thread::sleep_for(milliseconds(500));
    }
  });
  // Idle connections held open for the burst, and slowloris ones sending a byte a second.
  std::vector<std::unique_ptr<Conn>> idle;
  for (int i = 0; i < kIdleConnections; ++i) idle.push_back(std::make_unique<Conn>(port_));
  std::thread slow([&] {
    std::vector<std::unique_ptr<Conn>> conns;
    for (int i = 0; i < kSlowConnections; ++i) conns.push_back(std::make_unique<Conn>(port_));
    const std::string request = "GET /api/v1/status HTTP/1.1\r\nX-Slow: " + std::string(64, 's');
    for (size_t at = 0; !stop; at = (at + 1) % request.size()) {
      for (auto& c : conns) {
        if (!c->Send(request.substr(at, 1), milliseconds(100))) c = std::make_unique<Conn>(port_);
      }
      std::this_thread::sleep_for(milliseconds(1000));
    }
  });

  const auto end = Clock::now() + kBurst;
  std::atomic<int> sent{0}, answered{0}, server_errors{0}, leaked{0};
  std::mutex mu;
  std::map<std::string, int> per_kind, answered_kind;
  std::vector<std::thread> clients;
  for (int t = 0; t < kClientThreads; ++t) {
    clients.emplace_back([&, t] {
      std::mt19937 rng(kSeed + static_cast<uint32_t>(t));
      for (int i = 0; i < kMaxRequestsPerThread && Clock::now() < end; ++i) {
        const Attack a = NextAttack(rng, token());
        Conn c(port_);
        if (!c.ok()) continue;
        ++sent;
        {
          std::lock_guard<std::mutex> lock(mu);
          ++per_kind[a.name];
        }
        bool open = c.Send(a.head);
        const std::string chunk(1 << 16, 'x');
        for (size_t left = a.filler; open && left > 0;) {
          const size_t n = std::min(left, chunk.size());
          open = c.Send(std::string_view(chunk).substr(0, n));
          left -= n;
        }
        // A chunked body that never ends: chunks for 0.5 s (or until the server stops
        // reading), then the connection is dropped.
        const std::string piece = "1000\r\n" + std::string(0x1000, 'y') + "\r\n";
        for (auto until = Clock::now() + milliseconds(500);
             a.endless_chunks && open && Clock::now() < until;) {
          open = c.Send(piece, milliseconds(500));
        }
        // A request that never got its end: say so, or the server waits for the rest. (A
        // whole one is left open: cpp-httplib does not answer a client that half-closed.)
        if (a.head.find("\r\n\r\n") == std::string::npos) c.Finish();
        const std::string reply =
            c.Receive(milliseconds(a.filler > 0 || a.endless_chunks ? 500 : 2000));
        if (!reply.empty()) {
          ++answered;
          std::lock_guard<std::mutex> lock(mu);
          ++answered_kind[a.name + " " + reply.substr(9, 3)];
        }
        if (reply.rfind("HTTP/1.1 5", 0) == 0) {
          ++server_errors;
          ADD_FAILURE() << a.name << " got " << reply.substr(0, 200);
        }
        if (reply.find("root:") != std::string::npos) {
          ++leaked;
          ADD_FAILURE() << a.name << " leaked a file: " << reply.substr(0, 200);
        }
      }
    });
  }
  for (std::thread& c : clients) c.join();
  stop = true;
  slow.join();
  probe.join();
  app.join();
  idle.clear();

  ASSERT_TRUE(run_->Running()) << "duplex run died during the burst:\n" << run_->Err();
  // Every row the application wrote reached billing.
  const std::string want = std::to_string(rows_written + 1) + "\n";
  EXPECT_TRUE(
      PollUntil([&] { return SqlQuery(Db("billing"), "SELECT count(*) FROM clients") == want; },
                milliseconds(20000)))
      << "billing has " << SqlQuery(Db("billing"), "SELECT count(*) FROM clients") << " rows, want "
      << want;
  // Connections and threads the burst opened are closed again (the server times idle ones
  // out after its keep-alive and read timeouts).
  Usage after;
  PollUntil(
      [&] {
        after = UsageOf(pid);
        return after.fds <= before.fds + 2 && after.threads <= before.threads + 2;
      },
      milliseconds(15000), milliseconds(200));
  const double health = HealthzSeconds();
  std::printf("hostile burst (token %s): %d requests sent, %d answered; per kind:",
              GetParam() ? "on" : "off", sent.load(), answered.load());
  for (const auto& [k, n] : per_kind) std::printf(" %s=%d", k.c_str(), n);
  std::printf("\n  answered:");
  for (const auto& [k, n] : answered_kind) std::printf(" %s=%d", k.c_str(), n);
  std::printf(
      "\n  rows written during the burst: %d; /healthz during: slowest %.3f s, %d failed; after: "
      "%.3f s\n  RSS %ld -> %ld KiB (%+ld), threads %d -> %d, fds %d -> %d\n",
      rows_written.load(), slowest_health.load(), failed_health.load(), health, before.rss_kib,
      after.rss_kib, after.rss_kib - before.rss_kib, before.threads, after.threads, before.fds,
      after.fds);
  EXPECT_GE(sent, 100);  // How many fit in the burst depends on the load of the machine.
  EXPECT_EQ(server_errors, 0);
  EXPECT_EQ(leaked, 0);
  EXPECT_GE(health, 0);
  EXPECT_LT(health, 1.0);
  EXPECT_EQ(failed_health, 0) << "/healthz went unanswered for 10 s during the burst";
  EXPECT_LT(slowest_health, 5.0) << "/healthz starved during the burst";
  EXPECT_LE(after.fds, before.fds + 2);
  EXPECT_LE(after.threads, before.threads + 2);
  // ASan's quarantine keeps up to 256 MiB of freed memory; the bound is for what is held.
  EXPECT_LT(after.rss_kib - before.rss_kib, 64 << 10);
  run_->Signal(SIGTERM);
  EXPECT_EQ(run_->Wait(milliseconds(20000)), 0) << run_->Err();
}

// A chunked body is refused before it is read: cpp-httplib 0.11 would append every chunk to
// the request in memory, whatever payload_max_length says.
TEST_P(AdminHostileTest, ChunkedBodyIsRefusedBeforeItIsRead) {
  Start();
  ASSERT_GT(port_, 0);
  const Usage before = UsageOf(run_->pid());
  Conn c(port_);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(
      c.Send("POST /api/v1/conflicts/1/resolve HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer " +
             token() + "\r\nTransfer-Encoding: chunked\r\n\r\n"));
  // 64 MiB of chunks, or until the server stops reading.
  const std::string piece = "10000\r\n" + std::string(0x10000, 'y') + "\r\n";
  long peak_kib = 0;
  for (int i = 0; i < 1024 && c.Send(piece, milliseconds(500)); ++i) {
    if (i % 64 == 0) peak_kib = std::max(peak_kib, UsageOf(run_->pid()).rss_kib);
  }
  const std::string reply = c.Receive(milliseconds(2000));
  EXPECT_EQ(reply.substr(0, 12), "HTTP/1.1 411") << reply.substr(0, 300);
  peak_kib = std::max(peak_kib, UsageOf(run_->pid()).rss_kib);
  std::printf("chunked body: RSS %ld KiB before, peak %ld KiB (%+ld)\n", before.rss_kib, peak_kib,
              peak_kib - before.rss_kib);
  EXPECT_LT(peak_kib - before.rss_kib, 32 << 10);
  EXPECT_TRUE(run_->Running());
}

INSTANTIATE_TEST_SUITE_P(Token, AdminHostileTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "WithToken" : "WithoutToken";
                         });

}  // namespace
}  // namespace duplex
