#include "duplex/env.h"

#include <thread>

namespace duplex {

namespace {

class RealEnv final : public Env {
 public:
  std::chrono::steady_clock::time_point Now() override { return std::chrono::steady_clock::now(); }
  double WallMs() override {
    return std::chrono::duration<double, std::milli>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  void Sleep(std::chrono::milliseconds d) override { std::this_thread::sleep_for(d); }
};

}  // namespace

Env* Env::Default() {
  static RealEnv* env = new RealEnv;  // never destroyed: usable until the process ends
  return env;
}

}  // namespace duplex
