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

void ProgressLog::Started(std::chrono::steady_clock::time_point now) {
  started_ = now;
  last_ = now;
}

void ProgressLog::Passed(std::chrono::steady_clock::time_point now) {
  if (now - last_ < every_) return;
  last_ = now;
  Log(now, /*final=*/false);
}

void ProgressLog::Stopped() {
  const auto now = std::chrono::steady_clock::now();
  Log(now, /*final=*/true);
  if (engine_.synced_changes() == 0) return;
  spdlog::info("synced {} changes in {:.1f}s", engine_.synced_changes(),
               std::chrono::duration<double>(now - started_).count());
}

void ProgressLog::Log(std::chrono::steady_clock::time_point now, bool final) {
  // Initial loads first: which table, how many rows read so far.
  for (const auto& [where, rows] : engine_.loaded_rows()) {
    int64_t& logged = logged_loaded_[where];
    if (rows == logged) continue;
    logged = rows;
    const auto& [endpoint, collection] = where;
    std::string table = collection;
    for (const CollectionConfig& cc : engine_.config().collections) {
      if (cc.name != collection) continue;
      for (const CollectionEndpoint& ce : cc.endpoints) {
        if (ce.endpoint == endpoint) table = ce.table;
      }
    }
    spdlog::info("endpoint={} collection={} initial load: table {}: {} rows read so far", endpoint,
                 collection, table, rows);
  }
  if (final) return;  // Stopped says the total
  const int64_t synced = engine_.synced_changes();
  const int64_t left = engine_.Backlog();
  // While a backlog is worked off, and once more when it is gone; a steady trickle of live
  // changes (nothing left at each look) is not worth a line every few seconds.
  if (left == 0 && (logged_left_ == 0 || synced == logged_synced_)) return;
  logged_synced_ = synced;
  logged_left_ = left;
  const double secs = std::chrono::duration<double>(now - started_).count();
  spdlog::info("synced {} changes so far ({:.0f}/s), {} left", synced,
               secs > 0 ? static_cast<double>(synced) / secs : 0.0, left);
}

}  // namespace duplex::cli
