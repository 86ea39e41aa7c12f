// `duplex reconcile`: compares every synced field of every record across a collection's
// endpoints and repairs what differs (docs/DESIGN.md §6 "Reconcile").

#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "pipeline/engine.h"
#include "util/json_value.h"
#include "util/log.h"

namespace duplex::cli {

namespace {

// One line per difference: a row some endpoints hold and others not, or a field whose values
// differ among the endpoints that hold the row. What --json prints.
nlohmann::json DifferencesJson(const ReconcileReport& report) {
  nlohmann::json out = nlohmann::json::array();
  for (const CollectionReconcile& c : report.collections) {
    for (const RecordDiff& d : c.diffs) {
      auto entry = [&](const std::string& field) {
        nlohmann::json e = {{"collection", d.collection}, {"key", d.key}};
        e["field"] = field.empty() ? nlohmann::json() : nlohmann::json(field);
        nlohmann::json values = nlohmann::json::object();
        for (const auto& [ep, row] : d.rows) {
          if (field.empty()) {
            values[ep] = row;  // the row, or null: no row there
          } else if (row.is_object()) {
            values[ep] = row.contains(field) ? row[field] : nlohmann::json();
          }
        }
        e["values"] = std::move(values);
        if (d.agreed.is_null()) {
          e["agreed"] = "unknown";  // a record duplex never saw
        } else if (d.deleted) {
          e["agreed"] = "deleted";
        } else {
          e["agreed"] = field.empty() ? d.agreed : d.agreed.value(field, nlohmann::json());
        }
        return e;
      };
      if (d.missing) out.push_back(entry(""));
      for (const std::string& f : d.fields) out.push_back(entry(f));
    }
  }
  return out;
}

nlohmann::json StatsJson(const ReconcileReport& report) {
  nlohmann::json out = nlohmann::json::array();
  for (const CollectionReconcile& c : report.collections) {
    out.push_back({{"collection", c.collection},
                   {"endpoints", c.endpoints},
                   {"rows_compared", c.rows_compared},
                   {"ranges_compared", c.ranges},
                   {"ranges_differing", c.ranges_differing},
                   {"rows_read", c.rows_read},
                   {"bytes", c.bytes},
                   {"records_differing", c.diffs.size()}});
  }
  return out;
}

void PrintReport(const ReconcileReport& report) {
  for (const CollectionReconcile& c : report.collections) {
    std::printf(
        "collection %s: %lld rows compared on %s (%lld range digests, %lld rows read, ~%lld "
        "bytes): %zu record%s differ%s\n",
        c.collection.c_str(), static_cast<long long>(c.rows_compared),
        fmt::format("{}", fmt::join(c.endpoints, ", ")).c_str(), static_cast<long long>(c.ranges),
        static_cast<long long>(c.rows_read), static_cast<long long>(c.bytes), c.diffs.size(),
        c.diffs.size() == 1 ? "" : "s", c.diffs.size() == 1 ? "s" : "");
    for (const RecordDiff& d : c.diffs) {
      const std::string agreed = d.agreed.is_null() ? " (a record duplex never saw)"
                                 : d.deleted        ? " (duplex saw it deleted)"
                                                    : "";
      if (d.missing) {
        std::string holds, lacks;
        for (const auto& [ep, row] : d.rows) {
          std::string& list = row.is_object() ? holds : lacks;
          list += (list.empty() ? "" : ", ") + ep;
        }
        std::printf("  key %s: a row on %s, none on %s%s\n", d.key_text.c_str(), holds.c_str(),
                    lacks.c_str(), agreed.c_str());
      }
      for (const std::string& f : d.fields) {
        std::string values;
        for (const auto& [ep, row] : d.rows) {
          if (!row.is_object()) continue;
          values += (values.empty() ? "" : ", ") + ep + "=" +
                    ValueToDisplay(row.value(f, nlohmann::json()));
        }
        if (!d.agreed.is_null() && !d.deleted) {
          values += ", agreed=" + ValueToDisplay(d.agreed.value(f, nlohmann::json()));
        }
        std::printf("  key %s field %s: %s%s\n", d.key_text.c_str(), f.c_str(), values.c_str(),
                    agreed.c_str());
      }
    }
  }
}

}  // namespace

int Reconcile(const Options& o) {
  int rc = kExitOk;
  std::unique_ptr<Engine> engine = OpenEngine(o, /*create_state=*/true, &rc);
  if (!engine) return rc;
  StateLock lock;
  duplex::Status st = lock.Take(engine->config().engine.state_path, "reconcile");
  if (!st.ok()) return Fail(st);
  ReconcileOptions ro;
  ro.collection = o.collection;
  ro.take = o.take;
  st = engine->Install();
  if (!st.ok()) return Fail(st);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  // What the change streams hold is synced first: only what they never reported differs then.
  st = engine->Run(g_stop, /*until_idle=*/true);
  if (!st.ok()) return Fail(st);
  if (g_stop.load()) return kExitRuntime;
  Result<ReconcileReport> report = engine->CompareEndpoints(ro);
  if (!report.ok()) return Fail(report.status());
  const size_t differing = report->Differences();
  if (!o.dry_run || differing == 0) {
    st = engine->RecordReconcile(*report, 0);
    if (!st.ok()) return Fail(st);
  }
  nlohmann::json json = {{"dry_run", o.dry_run},
                         {"collections", StatsJson(*report)},
                         {"differences", DifferencesJson(*report)}};
  if (!o.json) PrintReport(*report);
  if (o.dry_run || differing == 0) {
    if (o.json) {
      std::printf("%s\n", json.dump(2).c_str());
    } else {
      std::printf("%s\n", differing == 0 ? "reconcile: every endpoint agrees"
                                         : "reconcile: dry run, nothing changed");
    }
    return differing == 0 ? kExitOk : kExitRuntime;
  }
  Result<int64_t> fed = engine->FeedRepairs(*report, ro);
  if (!fed.ok()) return Fail(fed.status());
  st = engine->RecordReconcile(*report, *fed);
  if (!st.ok()) return Fail(st);
  st = engine->Run(g_stop, /*until_idle=*/true);
  if (!st.ok()) return Fail(st);
  // The repaired ranges checked again: a write a target refused (a dead letter), or a change
  // made meanwhile, shows here.
  Result<ReconcileReport> after = engine->CompareEndpoints(ro);
  if (!after.ok()) return Fail(after.status());
  const size_t left = after->Differences();
  if (left > 0) {
    spdlog::warn(
        "reconcile: {} record{} still differ after the repair (changed meanwhile, or a write "
        "parked as a dead letter: see `duplex status`)",
        left, left == 1 ? "" : "s");
  }
  Result<int64_t> dead = engine->DeadLetterCount();
  if (o.json) {
    json["repaired"] = *fed;
    json["still_differing"] = DifferencesJson(*after);
    std::printf("%s\n", json.dump(2).c_str());
  } else {
    std::printf("reconcile: %lld record%s repaired%s\n", static_cast<long long>(*fed),
                *fed == 1 ? "" : "s",
                left ? fmt::format(", {} still differ (listed in the log)", left).c_str() : "");
  }
  if (dead.ok() && *dead > 0) return kExitParked;
  return kExitRuntime;
}

}  // namespace duplex::cli
