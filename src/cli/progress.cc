#include "cli/progress.h"

#include <cstdio>
#include <string>

#include "util/log.h"

namespace duplex::cli {

void ProgressPrinter::Started(std::chrono::steady_clock::time_point now) {
  started_ = now;
  last_ = now;
}

void ProgressPrinter::Passed(std::chrono::steady_clock::time_point now) {
  if (now - last_ <= std::chrono::seconds(1)) return;
  last_ = now;
  Print(std::chrono::duration<double>(now - started_).count());
}

void ProgressPrinter::GaveUp() { std::fprintf(stderr, "\n"); }

void ProgressPrinter::Stopped() {
  std::fprintf(stderr, "\rsynced %lld changes%30s\n",
               static_cast<long long>(engine_.synced_changes()), "");
}

// One progress line, redrawn in place.
void ProgressPrinter::Print(double secs) {
  const int64_t left = engine_.Backlog();
  const int64_t synced = engine_.synced_changes();
  const double rate = secs > 0 ? static_cast<double>(synced) / secs : 0;
  std::string eta = "-";
  if (left == 0) {
    eta = "0s";
  } else if (rate >= 1) {
    const int64_t t = static_cast<int64_t>(static_cast<double>(left) / rate + 0.5);
    eta = t >= 3600 ? fmt::format("{}h{:02}m", t / 3600, t / 60 % 60)
          : t >= 60 ? fmt::format("{}m{:02}s", t / 60, t % 60)
                    : fmt::format("{}s", t);
  }
  std::fprintf(stderr, "\rsynced %lld changes (%.0f/s), %lld left, ETA %s      ",
               static_cast<long long>(synced), rate, static_cast<long long>(left), eta.c_str());
}

}  // namespace duplex::cli
