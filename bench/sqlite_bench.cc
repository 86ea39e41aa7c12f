// duplex_bench: SQLite -> SQLite benchmark of the real `duplex` binary.
//
// The bench plays the application: it owns its own connections to two SQLite files (WAL,
// busy_timeout 5 s, synchronous=NORMAL, via util/sqlite.h) in a fresh temp dir per scenario, and
// runs `duplex run` as a separate process against them. It only measures; it asserts nothing
// about speed (exit code 0 unless the bench itself failed: duplex died, rows never arrived, ...).
//
// Scenarios (see BENCHMARKS.md for what every number means):
//   bulk     one transaction inserting N rows on A, then one UPDATE of all N rows; time from
//            commit until B has all of them (polled every 5 ms)
//   small    N/10 single-row update transactions on A as fast as possible; time from the first
//            commit until B has all of them, and from the last commit until caught up
//   latency  single-row updates, alternating A->B and B->A, with duplex idle in between; commit
//            to visible on the other side (polled every 1 ms): p50/p95/p99/max
//   backlog  10*N rows written on A (10k per transaction) while duplex is stopped, then
//            `duplex run --until-idle`: catch-up time and duplex's peak RSS
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "util/sqlite.h"

#ifndef DUPLEX_BENCH_DEFAULT_BIN
#define DUPLEX_BENCH_DEFAULT_BIN "duplex"
#endif
#ifndef DUPLEX_BENCH_SOURCE_DIR
#define DUPLEX_BENCH_SOURCE_DIR ""
#endif

extern char** environ;

namespace {

namespace fs = std::filesystem;
using duplex::Result;
using duplex::Status;
using duplex::sqlite::Db;
using duplex::sqlite::Stmt;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::atomic<bool> g_interrupted{false};
void OnSignal(int) { g_interrupted.store(true); }

struct BenchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void Must(const Status& st, const std::string& what) {
  if (!st.ok()) throw BenchError(what + ": " + st.ToString());
}
template <typename T>
T Must(Result<T> r, const std::string& what) {
  if (!r.ok()) throw BenchError(what + ": " + r.status().ToString());
  return std::move(r).value();
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
double Secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
double Round(double v, int digits = 1) {
  double f = std::pow(10.0, digits);
  return std::round(v * f) / f;
}

struct Options {
  std::string duplex = DUPLEX_BENCH_DEFAULT_BIN;
  int64_t rows = 100000;  // bulk rows; small = rows/10, backlog = rows*10 unless given
  int64_t small_txns = -1;
  int64_t backlog_rows = -1;
  int64_t backlog_txn_rows = 10000;
  int samples = 300;
  std::string only;
  bool json = false;
  bool keep = false;
  std::string dir;
  std::string log_level = "info";
  int batch_rows = 0;        // 0: duplex's default
  int poll_interval_ms = 0;  // 0: duplex's default
  double timeout_s = 600;    // per wait
};

// ---------------------------------------------------------------------------------------------
// Machine info

std::string ReadFirstMatch(const std::string& path, const std::string& prefix) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      auto colon = line.find(':');
      std::string v = colon == std::string::npos ? line : line.substr(colon + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return "";
}

std::string FsType(const std::string& path) {
  struct statfs s {};
  if (statfs(path.c_str(), &s) != 0) return "?";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53:
      return "ext4";
    case 0x01021994:
      return "tmpfs";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x794c7630:
      return "overlayfs";
    default:
      return fmt::format("0x{:x}", static_cast<unsigned long>(s.f_type));
  }
}

// The source revision the bench was built from ("abc1234-dirty"), if git is at hand.
std::string SourceRevision() {
  if (std::string(DUPLEX_BENCH_SOURCE_DIR).empty()) return "";
  std::string cmd =
      fmt::format("git -C '{}' describe --always --dirty 2>/dev/null", DUPLEX_BENCH_SOURCE_DIR);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "";
  char buf[128] = {0};
  std::string out = std::fgets(buf, sizeof buf, p) ? buf : "";
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// The 1-minute load average: other work on the machine makes every wall-clock number noisy.
double LoadAvg() {
  std::ifstream in("/proc/loadavg");
  double l = -1;
  in >> l;
  return l;
}

json MachineInfo(const Options& o, const std::string& tmp) {
  struct utsname u {};
  uname(&u);
  std::time_t now = std::time(nullptr);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&now));
  double mem_kb = std::atof(ReadFirstMatch("/proc/meminfo", "MemTotal").c_str());
  return {{"date", date},
          {"nproc", static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN))},
          {"cpu_model", ReadFirstMatch("/proc/cpuinfo", "model name")},
          {"ram_gib", Round(mem_kb / 1024 / 1024, 1)},
          {"kernel", std::string(u.sysname) + " " + u.release},
          {"sqlite", sqlite3_libversion()},
          {"tmp_dir", tmp},
          {"tmp_fs", FsType(tmp)},
          {"duplex", o.duplex},
          {"source", SourceRevision()},
          {"loadavg_start", LoadAvg()}};
}

// ---------------------------------------------------------------------------------------------
// The duplex process

struct ProcStats {
  double cpu_s = 0;  // user + system
  int64_t rss_kb = 0;
  int64_t hwm_kb = 0;
};

ProcStats ReadProc(pid_t pid) {
  ProcStats s;
  {
    std::ifstream in(fmt::format("/proc/{}/stat", pid));
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto close = all.rfind(')');
    if (close != std::string::npos) {
      std::istringstream rest(all.substr(close + 2));
      std::vector<std::string> f;
      std::string tok;
      while (rest >> tok) f.push_back(tok);
      // After "pid (comm) ", field 3 (state) is f[0]; utime is field 14, stime 15.
      if (f.size() > 12) {
        double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
        s.cpu_s = (std::atof(f[11].c_str()) + std::atof(f[12].c_str())) / ticks;
      }
    }
  }
  s.rss_kb = std::atoll(ReadFirstMatch(fmt::format("/proc/{}/status", pid), "VmRSS").c_str());
  s.hwm_kb = std::atoll(ReadFirstMatch(fmt::format("/proc/{}/status", pid), "VmHWM").c_str());
  return s;
}

class DuplexProcess {
 public:
  DuplexProcess(const Options& o, const std::vector<std::string>& args, const std::string& log,
                const std::string& out = "")
      : log_(log) {
    std::vector<std::string> argv = {o.duplex, "--log-level", o.log_level};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (std::string& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    const std::string& stdout_path = out.empty() ? log : out;
    posix_spawn_file_actions_addopen(&fa, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    started_ = Clock::now();
    int rc = posix_spawn(&pid_, o.duplex.c_str(), &fa, nullptr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      pid_ = -1;
      throw BenchError(fmt::format("cannot start {}: {}", o.duplex, std::strerror(rc)));
    }
  }
  DuplexProcess(const DuplexProcess&) = delete;
  DuplexProcess& operator=(const DuplexProcess&) = delete;
  ~DuplexProcess() {
    try {
      Stop();
    } catch (...) {
    }
  }

  pid_t pid() const { return pid_; }
  bool running() { return !Reap(false); }
  Clock::time_point started() const { return started_; }
  Clock::time_point ended() const { return ended_; }
  int exit_code() const { return exit_code_; }
  const rusage& usage() const { return usage_; }
  int64_t max_rss_kb() const { return usage_.ru_maxrss; }
  double cpu_s() const {
    auto tv = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
    return tv(usage_.ru_utime) + tv(usage_.ru_stime);
  }

  // SIGTERM, then wait (up to 120 s, then SIGKILL).
  void Stop() {
    if (Reap(false)) return;
    kill(pid_, SIGTERM);
    auto deadline = Clock::now() + 120s;
    while (!Reap(false)) {
      if (Clock::now() > deadline) {
        kill(pid_, SIGKILL);
        Reap(true);
        throw BenchError("duplex did not stop within 120 s of SIGTERM (killed)");
      }
      std::this_thread::sleep_for(2ms);
    }
  }

  // Waits for the process to exit by itself (run --until-idle), sampling RSS every 10 ms.
  void Wait(double timeout_s, const std::function<void()>& sample) {
    auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    while (!Reap(false)) {
      if (g_interrupted) throw BenchError("interrupted");
      if (Clock::now() > deadline) {
        Stop();
        throw BenchError(fmt::format("duplex did not finish within {} s", timeout_s));
      }
      if (sample) sample();
      std::this_thread::sleep_for(10ms);
    }
  }

  std::string LogTail(size_t bytes = 2000) const {
    std::ifstream in(log_);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return all.size() > bytes ? all.substr(all.size() - bytes) : all;
  }

 private:
  // Returns whether the process is gone (reaping it, with its rusage, if it just exited).
  bool Reap(bool block) {
    if (pid_ < 0) return true;
    int status = 0;
    pid_t r = wait4(pid_, &status, block ? 0 : WNOHANG, &usage_);
    if (r == 0) return false;
    ended_ = Clock::now();
    if (r == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    pid_ = -1;
    return true;
  }

  std::string log_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
  rusage usage_{};
  Clock::time_point started_{}, ended_{};
};

// Runs duplex to completion and returns (exit code, stdout).
std::pair<int, std::string> RunDuplex(const Options& o, const std::vector<std::string>& args,
                                      const std::string& log, const std::string& out) {
  fs::remove(out);
  DuplexProcess p(o, args, log, out);
  p.Wait(o.timeout_s, nullptr);
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {p.exit_code(), text};
}

// ---------------------------------------------------------------------------------------------
// The application's side: connections, the table, queries.

constexpr char kSchema[] =
    "CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY, name TEXT, qty INTEGER, "
    "price REAL, note TEXT)";

class AppDb {
 public:
  explicit AppDb(const std::string& path) : db_(Must(Db::Open(path, true, 5000), path)) {}

  void Exec(const std::string& sql) { Must(db_.Exec(sql), db_.path() + ": " + sql); }

  // Runs `sql` with integer binds; returns the first column of the first row (or `none`).
  // The statement is reset before returning so it never pins an old WAL snapshot.
  int64_t Int(const std::string& sql, std::initializer_list<int64_t> binds = {},
              int64_t none = -1) {
    Stmt& s = Cached(sql);
    s.Reset();
    int i = 1;
    for (int64_t b : binds) s.Bind(i++, b);
    bool row = Must(s.Step(), db_.path() + ": " + sql);
    int64_t v = row ? s.Int(0) : none;
    s.Reset();
    return v;
  }

  // Runs a write statement with integer binds (one autocommit transaction unless in BEGIN).
  int64_t Write(const std::string& sql, std::initializer_list<int64_t> binds = {}) {
    Stmt& s = Cached(sql);
    s.Reset();
    int i = 1;
    for (int64_t b : binds) s.Bind(i++, b);
    Must(s.Run(), db_.path() + ": " + sql);
    s.Reset();
    return db_.Changes();
  }

  // Inserts rows [first, first + n) in transactions of `per_txn` rows.
  void InsertRows(int64_t first, int64_t n, int64_t per_txn) {
    Stmt& s = Cached("INSERT INTO items(id, name, qty, price, note) VALUES(?, ?, ?, ?, ?)");
    for (int64_t done = 0; done < n;) {
      if (g_interrupted) throw BenchError("interrupted");
      Exec("BEGIN IMMEDIATE");
      int64_t end = std::min(n, done + per_txn);
      for (; done < end; ++done) {
        int64_t id = first + done;
        s.Reset();
        s.Bind(1, id)
            .Bind(2, fmt::format("item-{:07}", id))
            .Bind(3, id % 1000)
            .Bind(4, static_cast<double>(id % 10000) * 0.25 + 0.99)
            .Bind(5, fmt::format("note for item {}: some payload text", id));
        Must(s.Run(), "insert");
      }
      s.Reset();
      Exec("COMMIT");
    }
  }

  Db& db() { return db_; }

 private:
  Stmt& Cached(const std::string& sql) {
    auto it = stmts_.find(sql);
    if (it == stmts_.end()) {
      it = stmts_.emplace(sql, Must(db_.Prepare(sql), db_.path() + ": " + sql)).first;
    }
    return it->second;
  }

  Db db_;
  std::map<std::string, Stmt> stmts_;
};

int64_t FileSize(const std::string& path) {
  std::error_code ec;
  int64_t n = 0;
  for (const char* suffix : {"", "-wal"}) {
    auto s = fs::file_size(path + suffix, ec);
    if (!ec) n += static_cast<int64_t>(s);
  }
  return n;
}

// One scenario's world: a.db and b.db with the items table, the config, the state file.
struct Env {
  std::string dir, a_path, b_path, config, log;
  std::unique_ptr<AppDb> a, b;

  Env(const Options& o, const std::string& root, const std::string& name) {
    dir = root + "/" + name;
    fs::create_directories(dir);
    a_path = dir + "/a.db";
    b_path = dir + "/b.db";
    config = dir + "/duplex.toml";
    log = dir + "/duplex.log";
    a = std::make_unique<AppDb>(a_path);
    b = std::make_unique<AppDb>(b_path);
    a->Exec(kSchema);
    b->Exec(kSchema);
    std::ofstream out(config);
    out << "[engine]\nstate = \"state.db\"\n";
    if (o.batch_rows > 0) out << "batch_rows = " << o.batch_rows << "\n";
    if (o.poll_interval_ms > 0) out << "poll_interval_ms = " << o.poll_interval_ms << "\n";
    out << "\n[endpoints.a]\ntype = \"sqlite\"\npath = \"a.db\"\n\n"
           "[endpoints.b]\ntype = \"sqlite\"\npath = \"b.db\"\n\n"
           "[collections.items]\nkey = [\"id\"]\n"
           "endpoints.a = { table = \"items\" }\n"
           "endpoints.b = { table = \"items\" }\n";
    if (!out) throw BenchError("cannot write " + config);
  }

  std::vector<std::string> RunArgs(bool until_idle) const {
    std::vector<std::string> args = {"run", "--config", config};
    if (until_idle) args.push_back("--until-idle");
    return args;
  }
};

// Polls `done` every `interval` until it returns true; returns the time it did. Fails if duplex
// (when given) exits, on timeout, or on Ctrl-C.
Clock::time_point WaitUntil(DuplexProcess* d, const Options& o, Clock::duration interval,
                            const std::string& what, const std::function<bool()>& done,
                            double timeout_s = -1) {
  if (timeout_s < 0) timeout_s = o.timeout_s;
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(timeout_s));
  while (true) {
    if (done()) return Clock::now();
    if (g_interrupted) throw BenchError("interrupted");
    if (d && !d->running()) {
      throw BenchError(fmt::format("duplex exited (code {}) while waiting for {}; log tail:\n{}",
                                   d->exit_code(), what, d->LogTail()));
    }
    if (Clock::now() > deadline) {
      throw BenchError(fmt::format("timed out after {} s waiting for {}", timeout_s, what));
    }
    std::this_thread::sleep_for(interval);
  }
}

// Starts `duplex run` and waits until capture is installed on both sides and one row has made
// the round trip A -> B -> A (the pipeline is warm). Uses row id -1 (outside every range).
std::unique_ptr<DuplexProcess> StartRunning(const Options& o, Env& env) {
  auto d = std::make_unique<DuplexProcess>(o, env.RunArgs(false), env.log);
  const std::string triggers =
      "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE "
      "'\\_duplex\\_items\\_%' "
      "ESCAPE '\\'";
  WaitUntil(d.get(), o, 5ms, "change capture installed",
            [&] { return env.a->Int(triggers) == 3 && env.b->Int(triggers) == 3; });
  env.a->Write("INSERT OR REPLACE INTO items(id, name, qty) VALUES(-1, 'warmup', 1)");
  WaitUntil(d.get(), o, 1ms, "warmup row on B",
            [&] { return env.b->Int("SELECT qty FROM items WHERE id = -1") == 1; });
  env.b->Write("UPDATE items SET qty = 2 WHERE id = -1");
  WaitUntil(d.get(), o, 1ms, "warmup row back on A",
            [&] { return env.a->Int("SELECT qty FROM items WHERE id = -1") == 2; });
  return d;
}

// Waits until `side` shows every row of a change: first a cheap probe (the last row written),
// then the full count. Returns the time the full count matched.
Clock::time_point WaitAll(DuplexProcess* d, const Options& o, AppDb& side, int64_t expected,
                          const std::string& probe_sql, std::initializer_list<int64_t> probe_binds,
                          const std::string& count_sql, const std::string& what,
                          Clock::duration interval = 5ms) {
  std::vector<int64_t> binds(probe_binds);
  bool probed = false;
  return WaitUntil(d, o, interval, what, [&] {
    if (!probed) {
      // The probe is cheap (one indexed read); the full count runs only once it passes.
      int64_t v = binds.size() == 1 ? side.Int(probe_sql, {binds[0]}) : side.Int(probe_sql);
      if (v <= 0) return false;
      probed = true;
    }
    return side.Int(count_sql) == expected;
  });
}

json Rate(int64_t rows, double secs) {
  return secs > 0 ? json(Round(rows / secs, 0)) : json(nullptr);
}

// ---------------------------------------------------------------------------------------------
// Scenarios

json Bulk(const Options& o, const std::string& root) {
  const int64_t n = o.rows;
  json r;
  r["rows"] = n;

  // The application's own cost without change capture: the same writes on a plain file.
  {
    AppDb plain(root + "/bulk-baseline.db");
    plain.Exec(kSchema);
    auto t0 = Clock::now();
    plain.InsertRows(1, n, n);
    auto t1 = Clock::now();
    plain.Write("UPDATE items SET qty = qty + 1000000, price = price + 0.5 WHERE id > 0");
    auto t2 = Clock::now();
    r["insert"]["app_write_no_capture_ms"] = Round(Ms(t1 - t0));
    r["update"]["app_write_no_capture_ms"] = Round(Ms(t2 - t1));
  }

  Env env(o, root, "bulk");
  auto d = StartRunning(o, env);

  // INSERT of n rows in one transaction.
  ProcStats before = ReadProc(d->pid());
  auto t0 = Clock::now();
  env.a->InsertRows(1, n, n);
  auto committed = Clock::now();
  auto visible = WaitAll(d.get(), o, *env.b, n, "SELECT count(*) FROM items WHERE id = ?", {n},
                         "SELECT count(*) FROM items WHERE id > 0", "bulk insert on B");
  ProcStats after = ReadProc(d->pid());
  json& ins = r["insert"];
  ins["app_write_ms"] = Round(Ms(committed - t0));
  ins["commit_to_visible_ms"] = Round(Ms(visible - committed));
  ins["rows_per_s"] = Rate(n, Secs(visible - committed));
  ins["duplex_cpu_s"] = Round(after.cpu_s - before.cpu_s, 2);
  ins["rows_per_duplex_cpu_s"] = Rate(n, after.cpu_s - before.cpu_s);

  // UPDATE of all n rows, one statement, one transaction.
  before = after;
  t0 = Clock::now();
  env.a->Write("UPDATE items SET qty = qty + 1000000, price = price + 0.5 WHERE id > 0");
  committed = Clock::now();
  visible = WaitAll(
      d.get(), o, *env.b, n, "SELECT count(*) FROM items WHERE id = ? AND qty >= 1000000", {n},
      "SELECT count(*) FROM items WHERE id > 0 AND qty >= 1000000", "bulk update on B");
  after = ReadProc(d->pid());
  json& upd = r["update"];
  upd["app_write_ms"] = Round(Ms(committed - t0));
  upd["commit_to_visible_ms"] = Round(Ms(visible - committed));
  upd["rows_per_s"] = Rate(n, Secs(visible - committed));
  upd["duplex_cpu_s"] = Round(after.cpu_s - before.cpu_s, 2);
  upd["rows_per_duplex_cpu_s"] = Rate(n, after.cpu_s - before.cpu_s);

  d->Stop();
  r["duplex_peak_rss_mib"] = Round(d->max_rss_kb() / 1024.0, 1);
  r["duplex_exit_code"] = d->exit_code();
  return r;
}

json Small(const Options& o, const std::string& root) {
  const int64_t n = o.small_txns > 0 ? o.small_txns : std::max<int64_t>(1, o.rows / 10);
  json r;
  r["txns"] = n;
  const std::string upd = "UPDATE items SET qty = ?, note = 'small txn' WHERE id = ?";
  // The application's own cost without change capture: the same transactions on a plain file.
  {
    AppDb plain(root + "/small-baseline.db");
    plain.Exec(kSchema);
    plain.InsertRows(1, n, n);
    auto t0 = Clock::now();
    for (int64_t i = 1; i <= n; ++i) plain.Write(upd, {2000000 + i, i});
    r["app_write_no_capture_ms"] = Round(Ms(Clock::now() - t0));
  }
  Env env(o, root, "small");
  auto d = StartRunning(o, env);
  env.a->InsertRows(1, n, n);
  WaitAll(d.get(), o, *env.b, n, "SELECT count(*) FROM items WHERE id = ?", {n},
          "SELECT count(*) FROM items WHERE id > 0", "seed rows on B");
  // Let the engine settle (ack, idle) before the measured part.
  std::this_thread::sleep_for(600ms);

  ProcStats before = ReadProc(d->pid());
  auto first_begin = Clock::now();
  Clock::time_point first_commit{};
  for (int64_t i = 1; i <= n; ++i) {
    env.a->Write(upd, {2000000 + i, i});  // one autocommit transaction per row
    if (i == 1) first_commit = Clock::now();
    if (g_interrupted) throw BenchError("interrupted");
  }
  auto last_commit = Clock::now();
  auto visible = WaitAll(
      d.get(), o, *env.b, n, "SELECT count(*) FROM items WHERE id = ? AND qty >= 2000000", {n},
      "SELECT count(*) FROM items WHERE id > 0 AND qty >= 2000000", "single-row transactions on B");
  ProcStats after = ReadProc(d->pid());
  r["app_write_ms"] = Round(Ms(last_commit - first_begin));
  r["app_txns_per_s"] = Rate(n, Secs(last_commit - first_begin));
  r["first_commit_to_all_visible_ms"] = Round(Ms(visible - first_commit));
  r["rows_per_s"] = Rate(n, Secs(visible - first_commit));
  r["last_commit_to_caught_up_ms"] = Round(Ms(visible - last_commit));
  r["duplex_cpu_s"] = Round(after.cpu_s - before.cpu_s, 2);
  d->Stop();
  r["duplex_peak_rss_mib"] = Round(d->max_rss_kb() / 1024.0, 1);
  return r;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  // Nearest rank.
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
}

json Dist(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return {{"n", v.size()},
          {"mean_ms", Round(v.empty() ? 0 : sum / static_cast<double>(v.size()), 2)},
          {"p50_ms", Round(Percentile(v, 50), 2)},
          {"p95_ms", Round(Percentile(v, 95), 2)},
          {"p99_ms", Round(Percentile(v, 99), 2)},
          {"max_ms", Round(v.empty() ? 0 : *std::max_element(v.begin(), v.end()), 2)}};
}

json Latency(const Options& o, const std::string& root) {
  const int64_t rows = std::max<int64_t>(1000, o.samples);
  json r;
  Env env(o, root, "latency");
  auto d = StartRunning(o, env);
  env.a->InsertRows(1, rows, rows);
  WaitAll(d.get(), o, *env.b, rows, "SELECT count(*) FROM items WHERE id = ?", {rows},
          "SELECT count(*) FROM items WHERE id > 0", "seed rows on B");
  std::this_thread::sleep_for(1s);  // past the engine's ack interval: duplex is idle now

  // Idle cost: duplex's CPU while nothing is written.
  ProcStats idle0 = ReadProc(d->pid());
  auto idle_t0 = Clock::now();
  std::this_thread::sleep_for(3s);
  ProcStats idle1 = ReadProc(d->pid());
  r["idle_cpu_percent"] = Round(100 * (idle1.cpu_s - idle0.cpu_s) / Secs(Clock::now() - idle_t0));

  std::mt19937 rng(42);
  std::uniform_int_distribution<int> gap_ms(10, 30);
  std::vector<double> all, ab, ba;
  const std::string upd = "UPDATE items SET qty = ? WHERE id = ?";
  const std::string read = "SELECT qty FROM items WHERE id = ?";
  for (int i = 0; i < o.samples; ++i) {
    // A random gap, so the commits do not phase-lock with duplex's poll interval.
    std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms(rng)));
    const bool a_to_b = i % 2 == 0;
    AppDb& src = a_to_b ? *env.a : *env.b;
    AppDb& dst = a_to_b ? *env.b : *env.a;
    const int64_t id = i % rows + 1;
    const int64_t value = 3000000 + i;
    src.Write(upd, {value, id});
    auto committed = Clock::now();
    auto visible = WaitUntil(
        d.get(), o, 1ms, fmt::format("latency sample {}", i),
        [&] { return dst.Int(read, {id}) == value; }, 30);
    double ms = Ms(visible - committed);
    all.push_back(ms);
    (a_to_b ? ab : ba).push_back(ms);
  }
  r["samples"] = Dist(all);
  r["a_to_b"] = Dist(ab);
  r["b_to_a"] = Dist(ba);
  d->Stop();
  r["duplex_peak_rss_mib"] = Round(d->max_rss_kb() / 1024.0, 1);
  return r;
}

json Backlog(const Options& o, const std::string& root) {
  const int64_t n = o.backlog_rows > 0 ? o.backlog_rows : o.rows * 10;
  json r;
  r["rows"] = n;
  r["rows_per_app_txn"] = o.backlog_txn_rows;
  Env env(o, root, "backlog");
  // duplex has run once (capture installed, state created), then is stopped.
  {
    DuplexProcess first(o, env.RunArgs(true), env.log);
    first.Wait(o.timeout_s, nullptr);
    if (first.exit_code() != 0) {
      throw BenchError(fmt::format("first `duplex run --until-idle` exited {}; log tail:\n{}",
                                   first.exit_code(), first.LogTail()));
    }
  }
  auto w0 = Clock::now();
  env.a->InsertRows(1, n, o.backlog_txn_rows);
  r["app_write_ms"] = Round(Ms(Clock::now() - w0));
  r["a_db_mib_before"] = Round(FileSize(env.a_path) / 1048576.0, 1);

  int64_t sampled_hwm = 0, sampled_rss = 0;
  DuplexProcess d(o, env.RunArgs(true), env.log);
  d.Wait(o.timeout_s, [&] {
    ProcStats s = ReadProc(d.pid());
    sampled_hwm = std::max(sampled_hwm, s.hwm_kb);
    sampled_rss = std::max(sampled_rss, s.rss_kb);
  });
  double secs = Secs(d.ended() - d.started());
  int64_t on_b = env.b->Int("SELECT count(*) FROM items WHERE id > 0");
  r["duplex_exit_code"] = d.exit_code();
  r["catch_up_ms"] = Round(secs * 1000);
  r["rows_per_s"] = Rate(n, secs);
  r["rows_on_b"] = on_b;
  r["peak_rss_mib"] = Round(d.max_rss_kb() / 1024.0, 1);
  r["sampled_vmhwm_mib"] = Round(sampled_hwm / 1024.0, 1);
  r["duplex_cpu_s"] = Round(d.cpu_s(), 2);
  r["rows_per_duplex_cpu_s"] = Rate(n, d.cpu_s());
  r["state_db_mib_after"] = Round(FileSize(env.dir + "/state.db") / 1048576.0, 1);
  if (d.exit_code() != 0 || on_b != n) {
    throw BenchError(fmt::format("backlog: duplex exited {} with {} of {} rows on B; log tail:\n{}",
                                 d.exit_code(), on_b, n, d.LogTail()));
  }
  // What duplex itself reports afterwards (dead letters, journal).
  auto [rc, out] =
      RunDuplex(o, {"status", "--config", env.config, "--json"}, env.log, env.dir + "/status.json");
  if (rc == 0) {
    json s = json::parse(out, nullptr, false);
    if (!s.is_discarded()) {
      int64_t dead = 0;
      for (const json& ep : s["endpoints"]) dead += ep.value("dead_letters", 0);
      r["status_dead_letters"] = dead;
      r["status_journal_backlog"] = s.value("journal_backlog", -1);
    }
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Output

std::string Num(const json& v, const char* unit = "") {
  if (v.is_null()) return "-";
  double d = v.get<double>();
  std::string s = std::abs(d) >= 100 ? fmt::format("{:.0f}", d) : fmt::format("{:.1f}", d);
  if (std::abs(d) < 10 && std::abs(d) > 0) s = fmt::format("{:.2f}", d);
  return s + unit;
}

std::string Kilo(const json& v) {
  if (v.is_null()) return "-";
  double d = v.get<double>();
  return d >= 1000 ? fmt::format("{:.1f}k", d / 1000) : fmt::format("{:.0f}", d);
}

void PrintText(const json& res) {
  const json& m = res["machine"];
  std::printf("duplex_bench  %s\n", m["date"].get<std::string>().c_str());
  std::printf("machine: %d cores, %s, %.1f GiB RAM, %s; SQLite %s; temp dir %s (%s)\n",
              m["nproc"].get<int>(), m["cpu_model"].get<std::string>().c_str(),
              m["ram_gib"].get<double>(), m["kernel"].get<std::string>().c_str(),
              m["sqlite"].get<std::string>().c_str(), m["tmp_dir"].get<std::string>().c_str(),
              m["tmp_fs"].get<std::string>().c_str());
  std::printf("load average (1 min): %.2f at start, %.2f at end%s\n",
              m["loadavg_start"].get<double>(), m["loadavg_end"].get<double>(),
              std::max(m["loadavg_start"].get<double>(), m["loadavg_end"].get<double>()) > 0.5
                  ? "  <- other work was running: wall-clock numbers are noisy"
                  : "");
  std::printf(
      "duplex:  %s (source %s)\n\n", m["duplex"].get<std::string>().c_str(),
      m["source"].get<std::string>().empty() ? "?" : m["source"].get<std::string>().c_str());

  if (res.contains("bulk")) {
    const json& b = res["bulk"];
    std::printf("bulk: %lld rows in ONE transaction on A, duplex running; commit -> all on B\n",
                static_cast<long long>(b["rows"].get<int64_t>()));
    std::printf("  %-7s %10s %12s %12s %14s %13s %12s\n", "", "rows/s", "commit->B", "duplex CPU",
                "rows/CPU-s", "app write", "(no capture)");
    for (const char* k : {"insert", "update"}) {
      const json& x = b[k];
      std::printf("  %-7s %10s %12s %12s %14s %13s %12s\n", k, Kilo(x["rows_per_s"]).c_str(),
                  Num(x["commit_to_visible_ms"], " ms").c_str(),
                  Num(x["duplex_cpu_s"], " s").c_str(), Kilo(x["rows_per_duplex_cpu_s"]).c_str(),
                  Num(x["app_write_ms"], " ms").c_str(),
                  Num(x["app_write_no_capture_ms"], " ms").c_str());
    }
    std::printf("  duplex peak RSS %s MiB\n\n", Num(b["duplex_peak_rss_mib"]).c_str());
  }
  if (res.contains("small")) {
    const json& s = res["small"];
    std::printf("small: %lld single-row update transactions on A, as fast as possible\n",
                static_cast<long long>(s["txns"].get<int64_t>()));
    std::printf(
        "  app wrote them in %s (%s txn/s; %s without capture); first commit -> all on B "
        "%s = %s rows/s\n",
        Num(s["app_write_ms"], " ms").c_str(), Kilo(s["app_txns_per_s"]).c_str(),
        Num(s["app_write_no_capture_ms"], " ms").c_str(),
        Num(s["first_commit_to_all_visible_ms"], " ms").c_str(), Kilo(s["rows_per_s"]).c_str());
    std::printf("  last commit -> caught up %s; duplex CPU %s; peak RSS %s MiB\n\n",
                Num(s["last_commit_to_caught_up_ms"], " ms").c_str(),
                Num(s["duplex_cpu_s"], " s").c_str(), Num(s["duplex_peak_rss_mib"]).c_str());
  }
  if (res.contains("latency")) {
    const json& l = res["latency"];
    std::printf(
        "latency: one-row update, commit -> visible on the other side (1 ms polling), "
        "duplex idle between samples\n");
    std::printf("  %-8s %6s %9s %9s %9s %9s %9s\n", "", "n", "mean", "p50", "p95", "p99", "max");
    for (const char* k : {"samples", "a_to_b", "b_to_a"}) {
      const json& x = l[k];
      std::printf(
          "  %-8s %6lld %9s %9s %9s %9s %9s\n",
          std::string(k) == "samples" ? "all" : (std::string(k) == "a_to_b" ? "A->B" : "B->A"),
          static_cast<long long>(x["n"].get<int64_t>()), Num(x["mean_ms"], " ms").c_str(),
          Num(x["p50_ms"], " ms").c_str(), Num(x["p95_ms"], " ms").c_str(),
          Num(x["p99_ms"], " ms").c_str(), Num(x["max_ms"], " ms").c_str());
    }
    std::printf("  duplex idle CPU %s%% of one core\n\n", Num(l["idle_cpu_percent"]).c_str());
  }
  if (res.contains("backlog")) {
    const json& b = res["backlog"];
    std::printf(
        "backlog: %lld rows written on A (%lld per transaction) while duplex was stopped, "
        "then `duplex run --until-idle`\n",
        static_cast<long long>(b["rows"].get<int64_t>()),
        static_cast<long long>(b["rows_per_app_txn"].get<int64_t>()));
    std::printf(
        "  catch-up %s = %s rows/s; peak RSS %s MiB (sampled VmHWM %s MiB); duplex CPU "
        "%s (%s rows/CPU-s)\n",
        Num(b["catch_up_ms"], " ms").c_str(), Kilo(b["rows_per_s"]).c_str(),
        Num(b["peak_rss_mib"]).c_str(), Num(b["sampled_vmhwm_mib"]).c_str(),
        Num(b["duplex_cpu_s"], " s").c_str(), Kilo(b["rows_per_duplex_cpu_s"]).c_str());
    std::printf("  app write %s; a.db before %s MiB; state.db after %s MiB; exit code %d\n\n",
                Num(b["app_write_ms"], " ms").c_str(), Num(b["a_db_mib_before"]).c_str(),
                Num(b["state_db_mib_after"]).c_str(), b["duplex_exit_code"].get<int>());
  }
  if (res.contains("errors")) {
    for (const auto& [k, e] : res["errors"].items()) {
      std::printf("%s: FAILED: %s\n\n", k.c_str(), e.get<std::string>().c_str());
    }
  }
  // The aims from the issue, for reading; never an assert.
  std::printf("aims (informational): bulk >= 50k rows/s");
  if (res.contains("bulk")) {
    std::printf(" -> insert %s, update %s", Kilo(res["bulk"]["insert"]["rows_per_s"]).c_str(),
                Kilo(res["bulk"]["update"]["rows_per_s"]).c_str());
  }
  std::printf("; latency p99 <= 100 ms");
  if (res.contains("latency")) {
    std::printf(" -> %s", Num(res["latency"]["samples"]["p99_ms"], " ms").c_str());
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "duplex_bench: SQLite -> SQLite throughput, latency and backlog RSS of the real "
      "duplex binary (see BENCHMARKS.md)",
      "duplex_bench"};
  app.add_option("--duplex", o.duplex, "the duplex binary to run")->capture_default_str();
  app.add_option("--rows", o.rows,
                 "scale: bulk rows (small = rows/10 transactions, backlog = rows*10)")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  app.add_option("--small-txns", o.small_txns, "override: single-row transactions (small)");
  app.add_option("--backlog-rows", o.backlog_rows, "override: backlog rows");
  app.add_option("--samples", o.samples, "latency samples")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000000));
  app.add_option("--only", o.only, "run one scenario")
      ->check(CLI::IsMember({"bulk", "small", "latency", "backlog"}));
  app.add_flag("--json", o.json, "print the results as JSON");
  app.add_option("--dir", o.dir, "where to create the temp dir (default $TMPDIR or /tmp)");
  app.add_flag("--keep", o.keep, "keep the temp dir (databases, configs, duplex logs)");
  app.add_option("--log-level", o.log_level, "duplex's --log-level")->capture_default_str();
  app.add_option("--batch-rows", o.batch_rows, "set [engine] batch_rows (default: duplex's)");
  app.add_option("--poll-interval-ms", o.poll_interval_ms,
                 "set [engine] poll_interval_ms (default: duplex's)");
  app.add_option("--timeout", o.timeout_s, "seconds to wait for any one step")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (o.duplex.find('/') != std::string::npos) o.duplex = fs::absolute(o.duplex).string();
  if (access(o.duplex.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "error: duplex binary '%s' is not executable; pass --duplex PATH\n",
                 o.duplex.c_str());
    return 2;
  }
  std::string base = o.dir;
  if (base.empty()) {
    const char* t = std::getenv("TMPDIR");
    base = t && *t ? t : "/tmp";
  }
  std::string tmpl = base + "/duplex-bench-XXXXXX";
  if (!mkdtemp(tmpl.data())) {
    std::fprintf(stderr, "error: cannot create a temp dir under %s: %s\n", base.c_str(),
                 std::strerror(errno));
    return 1;
  }
  const std::string root = tmpl;

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  json res;
  res["machine"] = MachineInfo(o, root);
  res["params"] = {
      {"rows", o.rows},
      {"samples", o.samples},
      {"batch_rows", o.batch_rows > 0 ? json(o.batch_rows) : json("default")},
      {"poll_interval_ms", o.poll_interval_ms > 0 ? json(o.poll_interval_ms) : json("default")},
      {"log_level", o.log_level}};
  const std::vector<std::pair<const char*, json (*)(const Options&, const std::string&)>>
      scenarios = {{"bulk", Bulk}, {"small", Small}, {"latency", Latency}, {"backlog", Backlog}};
  int rc = 0;
  for (const auto& [name, fn] : scenarios) {
    if (!o.only.empty() && o.only != name) continue;
    if (g_interrupted) break;
    if (!o.json) std::fprintf(stderr, "running %s...\n", name);
    try {
      res[name] = fn(o, root);
    } catch (const std::exception& e) {
      res["errors"][name] = e.what();
      std::fprintf(stderr, "%s failed: %s\n", name, e.what());
      rc = 1;
    }
  }
  res["machine"]["loadavg_end"] = LoadAvg();
  if (o.json) {
    std::printf("%s\n", res.dump(2).c_str());
  } else {
    PrintText(res);
  }
  if (o.keep) {
    std::fprintf(stderr, "kept %s\n", root.c_str());
  } else {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  return g_interrupted ? 130 : rc;
}
