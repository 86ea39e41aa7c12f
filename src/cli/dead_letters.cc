// `duplex dead-letters list|show|retry|drop`.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "cli/common.h"
#include "pipeline/operator.h"
#include "store/state_store.h"
#include "util/json_value.h"
#include "util/log.h"

namespace duplex::cli {

namespace {

double NowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// How long ago `ms` was, in one unit: "40s", "12m", "5h", "3d".
std::string Age(double ms, double now_ms) {
  if (ms <= 0) return "-";
  const long long secs = std::max(0LL, static_cast<long long>((now_ms - ms) / 1000));
  if (secs < 120) return std::to_string(secs) + "s";
  if (secs < 120 * 60) return std::to_string(secs / 60) + "m";
  if (secs < 48 * 3600) return std::to_string(secs / 3600) + "h";
  return std::to_string(secs / 86400) + "d";
}

// `text` on one line, at most `max` characters; sets *cut if it cut. The cut ("...") is in the
// middle: a target's message names the thing at fault first and the cause last.
std::string OneLine(const std::string& text, size_t max, bool* cut) {
  std::string line = text;
  std::replace_if(
      line.begin(), line.end(), [](char ch) { return ch == '\n' || ch == '\r' || ch == '\t'; },
      ' ');
  if (line.size() <= max) return line;
  *cut = true;
  const size_t head = max / 3;
  return line.substr(0, head) + "..." + line.substr(line.size() - (max - head - 3));
}

const char* OpName(WriteOp op) {
  switch (op) {
    case WriteOp::kInsert:
      return "insert";
    case WriteOp::kUpdate:
      return "update";
    case WriteOp::kDelete:
      return "delete";
  }
  return "?";
}

// The distinct collections of the dead letter's writes, in order, comma-separated.
std::string Collections(const DeadLetterRow& d) {
  std::vector<std::string> seen;
  for (const RowOp& op : d.batch.ops) {
    if (std::find(seen.begin(), seen.end(), op.collection) == seen.end()) {
      seen.push_back(op.collection);
    }
  }
  return seen.empty() ? "-" : fmt::format("{}", fmt::join(seen, ","));
}

void PrintDeadLetter(const DeadLetterRow& d) {
  const size_t n = d.batch.ops.size();
  std::printf(
      "dead letter %lld\n  endpoint:   %s (the target that refused it)\n"
      "  parked:     %s (%s ago)\n  retry:      %s\n  reason:     %s\n"
      "  writes:     %zu, none applied on %s (one source transaction, batch %lld)\n",
      static_cast<long long>(d.id), d.endpoint.c_str(), FormatTime(d.created_at).c_str(),
      Age(d.created_at, NowMs()).c_str(),
      d.retry_requested ? "requested; `duplex run` plans its records again" : "not requested",
      d.reason.c_str(), n, d.endpoint.c_str(), static_cast<long long>(d.batch.id));
  for (size_t i = 0; i < n; ++i) {
    const RowOp& op = d.batch.ops[i];
    std::printf("  %zu. %s %s %s\n", i + 1, OpName(op.op), op.collection.c_str(),
                op.key.dump().c_str());
    size_t width = 0;
    for (const auto& [field, v] : op.values.items()) width = std::max(width, field.size());
    for (const auto& [field, v] : op.values.items()) {
      std::printf("       %-*s  %s\n", static_cast<int>(width), field.c_str(),
                  ValueToDisplay(v).c_str());
    }
  }
}

// Parses `o.dead_letter_id`; prints the error and returns false if it is not an id.
bool DeadLetterId(const Options& o, int64_t* id) {
  if (ParseId(o.dead_letter_id, id)) return true;
  std::fprintf(stderr, "error: dead letter id must be a positive number, got '%s'\n",
               o.dead_letter_id.c_str());
  return false;
}

}  // namespace

int DeadLettersList(const Options& o) {
  int rc = kExitOk;
  std::unique_ptr<StateStore> store = OpenStore(o, &rc);
  if (!store) return rc;
  Result<std::vector<DeadLetterRow>> rows = store->ListDeadLetters(false);
  if (!rows.ok()) return Fail(rows.status());
  if (o.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const DeadLetterRow& d : *rows) arr.push_back(d.ToJson());
    std::printf("%s\n", arr.dump(2).c_str());
    return kExitOk;
  }
  if (rows->empty()) {
    std::printf("no dead letters\n");
    return kExitOk;
  }
  const double now = NowMs();
  bool cut = false;
  std::printf("%-5s %-10s %-14s %6s %-16s %5s %-6s %s\n", "ID", "ENDPOINT", "COLLECTION", "WRITES",
              "FIRST KEY", "AGE", "RETRY", "REASON");
  for (const DeadLetterRow& d : *rows) {
    const std::string key = d.batch.ops.empty() ? "-" : d.batch.ops.front().key.dump();
    std::printf("%-5lld %-10s %-14s %6zu %-16s %5s %-6s %s\n", static_cast<long long>(d.id),
                d.endpoint.c_str(), Collections(d).c_str(), d.batch.ops.size(), key.c_str(),
                Age(d.created_at, now).c_str(), d.retry_requested ? "asked" : "-",
                OneLine(d.reason, 100, &cut).c_str());
  }
  if (cut) std::printf("(reasons shortened: `duplex dead-letters show ID` prints one in full)\n");
  return kExitOk;
}

int DeadLettersShow(const Options& o) {
  int64_t id = 0;
  if (!DeadLetterId(o, &id)) return kExitUsage;
  int rc = kExitOk;
  std::unique_ptr<StateStore> store = OpenStore(o, &rc);
  if (!store) return rc;
  Result<DeadLetterRow> d = store->GetDeadLetter(id);
  if (!d.ok()) return Fail(d.status());
  if (o.json) {
    std::printf("%s\n", d->ToJson().dump(2).c_str());
  } else {
    PrintDeadLetter(*d);
  }
  return kExitOk;
}

int DeadLettersRetry(const Options& o) {
  int64_t id = 0;
  if (!o.all && !DeadLetterId(o, &id)) return kExitUsage;
  int rc = kExitOk;
  std::unique_ptr<StateStore> store = OpenStore(o, &rc);
  if (!store) return rc;
  if (o.all) {
    Result<int64_t> n = RetryAllDeadLetters(*store);
    if (!n.ok()) return Fail(n.status());
    if (o.json) {
      std::printf("%s\n", nlohmann::json({{"retry_requested", *n}}).dump(2).c_str());
    } else {
      std::printf(
          "retry requested for %lld dead letters; the engine plans their records again from "
          "their current state on the next run\n",
          static_cast<long long>(*n));
    }
    return kExitOk;
  }
  Result<DeadLetterRow> d = RetryDeadLetter(*store, id);
  if (!d.ok()) return Fail(d.status());
  if (o.json) {
    std::printf("%s\n", d->ToJson().dump(2).c_str());
  } else {
    std::printf(
        "dead letter %lld: retry requested; the engine plans its records again from their current "
        "state on the next run\n",
        static_cast<long long>(id));
  }
  return kExitOk;
}

int DeadLettersDrop(const Options& o) {
  int64_t id = 0;
  if (!DeadLetterId(o, &id)) return kExitUsage;
  int rc = kExitOk;
  std::unique_ptr<StateStore> store = OpenStore(o, &rc);
  if (!store) return rc;
  Result<DeadLetterRow> d = DropDeadLetter(*store, id);
  if (!d.ok()) return Fail(d.status());
  const RowOp* first = d->batch.ops.empty() ? nullptr : &d->batch.ops.front();
  spdlog::warn(
      "endpoint={} collection={} key={} dead letter id={} writes={} dropped by the operator; "
      "they will not be applied",
      d->endpoint, first ? first->collection : "", first ? first->key.dump() : "", id,
      d->batch.ops.size());
  if (o.json) {
    std::printf("%s\n", d->ToJson().dump(2).c_str());
  } else {
    std::printf(
        "dead letter %lld dropped: its %zu write%s (%s) will not be applied on %s; those "
        "records may differ there from the other endpoints until they are changed again\n",
        static_cast<long long>(id), d->batch.ops.size(), d->batch.ops.size() == 1 ? "" : "s",
        Collections(*d).c_str(), d->endpoint.c_str());
  }
  return kExitOk;
}

}  // namespace duplex::cli
