// `duplex conflicts list|show|resolve`.

#include <chrono>
#include <cstdio>
#include <optional>

#include "cli/common.h"
#include "pipeline/operator.h"
#include "store/state_store.h"
#include "util/json_value.h"

namespace duplex::cli {

namespace {

std::string SideText(const nlohmann::json& side) {
  if (side.value("deleted", false)) return "(deleted)";
  return ValueToDisplay(side.value("value", nlohmann::json()));
}

void PrintConflict(const ConflictRow& c, bool detailed) {
  std::string key = c.key.dump();
  std::string field = c.field.empty() ? "(row)" : c.field;
  if (!detailed) {
    std::string values;
    for (const auto& [ep, side] : c.values.items()) {
      values += (values.empty() ? "" : ", ") + ep + "=" + SideText(side);
    }
    std::printf("%-5lld %-12s %-10s %-10s %-8s %-22s %-9s %s\n", static_cast<long long>(c.id),
                c.collection.c_str(), key.c_str(), field.c_str(), c.policy.c_str(),
                c.status.c_str(), c.winner.empty() ? "-" : c.winner.c_str(), values.c_str());
    return;
  }
  std::printf(
      "conflict %lld\n  collection: %s\n  key:        %s\n  field:      %s\n"
      "  policy:     %s\n  status:     %s%s\n  base:       %s\n",
      static_cast<long long>(c.id), c.collection.c_str(), key.c_str(), field.c_str(),
      c.policy.c_str(), c.status.c_str(), c.pending ? " (propagating)" : "",
      ValueToDisplay(c.base).c_str());
  for (const auto& [ep, side] : c.values.items()) {
    std::printf("  %-10s  %s  (written %s)\n", (ep + ":").c_str(), SideText(side).c_str(),
                FormatTime(side.value("ts", 0.0)).c_str());
  }
  if (!c.winner.empty()) std::printf("  winner:     %s\n", c.winner.c_str());
  if (!c.resolution.is_null()) {
    std::printf("  resolution: %s\n", ValueToDisplay(c.resolution).c_str());
  }
  std::printf("  logged:     %s\n", FormatTime(c.created_at).c_str());
}

}  // namespace

int ConflictsList(const Options& o) {
  int rc = kExitOk;
  std::unique_ptr<StateStore> store = OpenStore(o, &rc);
  if (!store) return rc;
  Result<std::vector<ConflictRow>> rows = store->ListConflicts(o.all);
  if (!rows.ok()) return Fail(rows.status());
  if (o.json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const ConflictRow& c : *rows) arr.push_back(c.ToJson());
    std::printf("%s\n", arr.dump(2).c_str());
    return kExitOk;
  }
  if (rows->empty()) {
    std::printf(o.all ? "no conflicts logged\n" : "no open conflicts (--all lists the log)\n");
    return kExitOk;
  }
  std::printf("%-5s %-12s %-10s %-10s %-8s %-22s %-9s %s\n", "ID", "COLLECTION", "KEY", "FIELD",
              "POLICY", "STATUS", "WINNER", "VALUES");
  for (const ConflictRow& c : *rows) PrintConflict(c, false);
  return kExitOk;
}

namespace {

// Opens the state store and reads the conflict named by `o.conflict_id`. On failure prints the
// error, sets *rc and returns nullopt.
std::optional<ConflictRow> LoadConflict(const Options& o, std::unique_ptr<StateStore>* store,
                                        int* rc) {
  int64_t id = 0;
  if (!ParseId(o.conflict_id, &id)) {
    std::fprintf(stderr, "error: conflict id must be a positive number, got '%s'\n",
                 o.conflict_id.c_str());
    *rc = kExitUsage;
    return std::nullopt;
  }
  *store = OpenStore(o, rc);
  if (!*store) return std::nullopt;
  Result<ConflictRow> c = (*store)->GetConflict(id);
  if (!c.ok()) {
    *rc = Fail(c.status());
    return std::nullopt;
  }
  return std::move(c).value();
}

}  // namespace

int ConflictsShow(const Options& o) {
  int rc = kExitOk;
  std::unique_ptr<StateStore> store;
  std::optional<ConflictRow> c = LoadConflict(o, &store, &rc);
  if (!c) return rc;
  if (o.json) {
    std::printf("%s\n", c->ToJson().dump(2).c_str());
  } else {
    PrintConflict(*c, true);
  }
  return kExitOk;
}

int ConflictsResolve(const Options& o) {
  int rc = kExitOk;
  std::unique_ptr<StateStore> store;
  std::optional<ConflictRow> c = LoadConflict(o, &store, &rc);
  if (!c) return rc;
  Resolution r;
  r.take = o.take;
  if (o.take.empty()) {
    r.value = nlohmann::json::parse(o.value, nullptr, false);
    if (r.value.is_discarded()) {
      return Fail(duplex::Status::InvalidArgument(
          "--value must be JSON: a string needs quotes, e.g. --value '\"Gold\"'; got " + o.value));
    }
    r.has_value = true;
  }
  double now =
      std::chrono::duration<double, std::milli>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  Result<ConflictRow> done = ResolveConflict(*store, c->id, r, now);
  if (!done.ok()) return Fail(done.status());
  if (o.json) {
    std::printf("%s\n", done->ToJson().dump(2).c_str());
  } else {
    std::printf("conflict %lld resolved: %s = %s; it reaches every endpoint on the next run\n",
                static_cast<long long>(done->id), done->field.c_str(),
                ValueToDisplay(done->resolution).c_str());
  }
  return kExitOk;
}

}  // namespace duplex::cli
