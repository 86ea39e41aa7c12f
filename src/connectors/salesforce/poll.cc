#include "connectors/salesforce/poll.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "connectors/salesforce/client.h"

namespace duplex::sf {

namespace {

// FNV-1a, 64 bits, in hex: digests are stored in positions, so they must not change between
// builds or standard libraries (std::hash may).
std::string Digest(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

nlohmann::json PollCursor::ToJson() const {
  nlohmann::json r = nlohmann::json::object();
  for (const auto& [rid, s] : recent) r[rid] = {s.first, s.second};
  return nlohmann::json{{"stamp", stamp}, {"id", id}, {"recent", r}};
}

std::string PollCursor::Serialize() const { return ToJson().dump(); }

Result<PollCursor> PollCursor::FromJson(const nlohmann::json& j) {
  PollCursor c;
  if (!j.is_object() || !j.contains("stamp") || !j["stamp"].is_number()) {
    return Status::Corruption("Salesforce poll position is not a cursor: " +
                              j.dump().substr(0, 80));
  }
  c.stamp = j["stamp"].get<double>();
  c.id = j.value("id", "");
  if (j.contains("recent") && j["recent"].is_object()) {
    for (const auto& [rid, s] : j["recent"].items()) {
      if (s.is_array() && s.size() == 2 && s[0].is_number() && s[1].is_string()) {
        c.recent[rid] = {s[0].get<double>(), s[1].get<std::string>()};
      }
    }
  }
  return c;
}

Result<PollCursor> PollCursor::Parse(const std::string& text) {
  if (text.empty()) return PollCursor();
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    return Status::Corruption("Salesforce poll position is not a cursor: " + text.substr(0, 80));
  }
  return FromJson(j);
}

Poller::Poller(std::string object, std::vector<std::string> fields, double overlap_seconds,
               double keep_seconds)
    : object_(std::move(object)),
      fields_(std::move(fields)),
      overlap_(overlap_seconds),
      keep_(std::max(overlap_seconds, keep_seconds)) {}

std::string Poller::FieldList() const {
  std::string list = "Id, SystemModstamp, IsDeleted";
  for (const std::string& f : fields_) {
    if (f != "Id" && f != "SystemModstamp" && f != "IsDeleted") list += ", " + f;
  }
  return list;
}

std::string Poller::Query(const PollCursor& cursor) const {
  std::string soql = "SELECT " + FieldList() + " FROM " + object_;
  if (cursor.stamp > 0) {
    // Whole seconds: SOQL datetimes have no fractions, and stamps are whole seconds anyway.
    const auto from = static_cast<int64_t>(std::floor(cursor.stamp - overlap_));
    soql += " WHERE SystemModstamp >= " + SoqlDateTime(from);
  }
  return soql + " ORDER BY SystemModstamp, Id";
}

std::vector<nlohmann::json> Poller::Take(PollCursor& cursor,
                                         std::vector<nlohmann::json> rows) const {
  std::vector<nlohmann::json> out;
  for (nlohmann::json& row : rows) {
    if (!row.is_object() || !row.contains("Id") || !row["Id"].is_string()) continue;
    const std::string rid = row["Id"].get<std::string>();
    const std::optional<double> stamp =
        row.contains("SystemModstamp") && row["SystemModstamp"].is_string()
            ? ParseDateTime(row["SystemModstamp"].get<std::string>())
            : std::nullopt;
    if (!stamp) continue;
    nlohmann::json values = row;
    values.erase("attributes");
    // A deleted record's values no longer matter: one digest for every deletion, so the
    // sweep's deleted list (which has no values) recognises it.
    const std::string digest =
        row.value("IsDeleted", false) ? std::string(kDeletedDigest) : Digest(values.dump());
    // The cursor moves past every row read, delivered now or before: a row a change event
    // delivered is read by the polls too, and a cursor held back by it made every later poll
    // read again all the rows changed since (an API call per 2,000), and `recent` (the
    // position) grow with each of them, never forgotten.
    if (*stamp > cursor.stamp || (*stamp == cursor.stamp && rid > cursor.id)) {
      cursor.stamp = *stamp;
      cursor.id = rid;
    }
    auto seen = cursor.recent.find(rid);
    if (seen != cursor.recent.end() &&
        (seen->second.first > *stamp ||
         (seen->second.first == *stamp &&
          (seen->second.second == digest || seen->second.second == kDeliveredByEvent)))) {
      continue;  // delivered before (or older than what was)
    }
    cursor.recent[rid] = {*stamp, digest};
    out.push_back(std::move(row));
  }
  // What fell out of the window cannot come again: forget it (bounded memory, P9).
  std::erase_if(cursor.recent,
                [&](const auto& e) { return e.second.first < cursor.stamp - keep_; });
  return out;
}

}  // namespace duplex::sf
