// What every command shares: exit codes for errors, opening the engine or the state store.

#include "cli/common.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include "config/config.h"
#include "pipeline/engine.h"
#include "store/state_store.h"

namespace duplex::cli {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

int ExitFor(const duplex::Status& st) {
  return st.IsInvalidArgument() || st.IsNotFound() || st.code() == duplex::Status::Code::kConflict
             ? kExitUsage
             : kExitRuntime;
}

int Fail(const duplex::Status& st) {
  std::fprintf(stderr, "error: %s\n", st.message().c_str());
  return ExitFor(st);
}

std::string FormatTime(double ms) {
  if (ms <= 0) return "-";
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", std::localtime(&secs));
  return buf;
}

std::unique_ptr<Engine> OpenEngine(const Options& o, bool create_state, int* rc) {
  Result<Config> config = LoadConfig(o.config);
  if (!config.ok()) {
    *rc = Fail(config.status());
    return nullptr;
  }
  Result<std::unique_ptr<Engine>> engine = Engine::Open(*config, create_state);
  if (!engine.ok()) {
    *rc = Fail(engine.status());
    return nullptr;
  }
  return std::move(engine).value();
}

StateLock::~StateLock() {
  if (fd_ >= 0) ::close(fd_);
}

duplex::Status StateLock::Take(const std::string& state_path, const std::string& command) {
  const std::string path = state_path + ".lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) return duplex::Status::IOError("cannot open " + path + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    const ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
    const std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "?";
    ::close(fd_);
    fd_ = -1;
    std::string hint = command == "reconcile"
                           ? "; a running `duplex run` reconciles by itself with [engine] "
                             "reconcile_every, or stop it and reconcile again"
                           : "; stop it first";
    return duplex::Status::Unavailable(fmt::format(
        "the state file {} is in use by another duplex process (pid {}, `run` or `reconcile`){}",
        state_path, pid.substr(0, pid.find('\n')), hint));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
  return duplex::Status::Ok();
}

std::unique_ptr<StateStore> OpenStore(const Options& o, int* rc) {
  Result<Config> config = LoadConfig(o.config);
  if (!config.ok()) {
    *rc = Fail(config.status());
    return nullptr;
  }
  Result<std::unique_ptr<StateStore>> store =
      StateStore::Open(config->engine.state_path, /*create=*/false);
  if (!store.ok()) {
    *rc = Fail(store.status());
    return nullptr;
  }
  return std::move(store).value();
}

}  // namespace duplex::cli
