#include "support/sf_emulator.h"

#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

extern char** environ;

namespace duplex::testing {

namespace {

std::string SourceDir() {
  const char* d = std::getenv("DUPLEX_SOURCE_DIR");
  return d ? d : DUPLEX_TEST_SOURCE_DIR;
}

}  // namespace

SfEmulator::SfEmulator(std::vector<std::string> args) {
  int out[2];
  if (pipe(out) != 0) return;
  std::vector<std::string> argv = {SourceDir() + "/scripts/sf-emulator.sh",
                                   "--port",
                                   "0",
                                   "--data",
                                   tmp_.File("org"),
                                   "--cometd-timeout",
                                   "2"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  if (posix_spawn(&pid_, cargv[0], &fa, nullptr, cargv.data(), environ) != 0) pid_ = -1;
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  FILE* f = fdopen(out[0], "r");
  char line[256] = {0};
  if (pid_ > 0 && f && std::fgets(line, sizeof(line), f)) {
    std::string s(line);
    const std::string prefix = "listening on ";
    if (s.rfind(prefix, 0) == 0) {
      url_ = s.substr(prefix.size());
      while (!url_.empty() && (url_.back() == '\n' || url_.back() == '\r')) url_.pop_back();
    }
  }
  if (f) fclose(f);
}

SfEmulator::~SfEmulator() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
}

nlohmann::json SfEmulator::Hook(const std::string& name, const nlohmann::json& body) {
  httplib::Client c(url_);
  httplib::Result r = body.is_null()
                          ? c.Get("/__emulator/" + name)
                          : c.Post("/__emulator/" + name, body.dump(), "application/json");
  if (!r) return nullptr;
  return nlohmann::json::parse(r->body, nullptr, false);
}

nlohmann::json SfEmulator::Api(const std::string& method, const std::string& path,
                               const nlohmann::json& body) {
  httplib::Client c(url_);
  if (token_.empty()) {
    httplib::Result r =
        c.Post("/services/oauth2/token", httplib::Params{{"grant_type", "client_credentials"},
                                                         {"client_id", "duplex"},
                                                         {"client_secret", "secret"}});
    if (!r) return nullptr;
    token_ = nlohmann::json::parse(r->body).value("access_token", "");
  }
  httplib::Headers h{{"Authorization", "Bearer " + token_}};
  const std::string full = "/services/data/v61.0" + path;
  auto send = [&]() -> httplib::Result {
    if (method == "GET") return c.Get(full, h);
    if (method == "POST") return c.Post(full, h, body.dump(), "application/json");
    if (method == "PATCH") return c.Patch(full, h, body.dump(), "application/json");
    return c.Delete(full, h);
  };
  httplib::Result r = send();
  if (!r || r->body.empty()) return nullptr;
  return nlohmann::json::parse(r->body, nullptr, false);
}

}  // namespace duplex::testing
