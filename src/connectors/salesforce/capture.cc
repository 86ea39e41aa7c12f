#include "connectors/salesforce/capture.h"

#include <httplib.h>

#include <algorithm>
#include <cmath>
#include <ctime>

namespace duplex::sf {

namespace {

constexpr size_t kIdsPerQuery = 200;  // keeps the SOQL (in the URL) well under 16k characters

double StampOf(const nlohmann::json& row) {
  if (!row.contains("SystemModstamp") || !row["SystemModstamp"].is_string()) return 0;
  return ParseDateTime(row["SystemModstamp"].get<std::string>()).value_or(0);
}

// "2024-01-02T03:04:00Z" floored to the minute: replication resources ignore seconds.
std::string MinuteParam(double seconds) {
  const int64_t s = static_cast<int64_t>(std::floor(seconds / 60)) * 60;
  return httplib::detail::encode_query_param(SoqlDateTime(s));
}

}  // namespace

nlohmann::json ObjectPosition::ToJson() const {
  return {{"poll", poll.ToJson()}, {"sweep_from", sweep_from}};
}

Result<ObjectPosition> ObjectPosition::FromJson(const nlohmann::json& j) {
  ObjectPosition p;
  if (!j.is_object() || !j.contains("poll")) {
    return Status::Corruption("Salesforce object position without a poll cursor: " +
                              j.dump().substr(0, 80));
  }
  DUPLEX_ASSIGN_OR_RETURN(p.poll, PollCursor::FromJson(j["poll"]));
  if (j.contains("sweep_from") && j["sweep_from"].is_number()) {
    p.sweep_from = j["sweep_from"].get<double>();
  }
  return p;
}

ObjectCapture::ObjectCapture(Client& client, std::string object, std::vector<std::string> fields,
                             double overlap_seconds, double late_window_seconds,
                             double remember_seconds)
    : client_(client),
      poller_(std::move(object), std::move(fields), overlap_seconds, remember_seconds),
      late_window_(late_window_seconds) {}

std::vector<SfChange> ObjectCapture::ChangesOf(const std::string& object,
                                               std::vector<nlohmann::json> rows,
                                               SfChange::Source src) {
  std::vector<SfChange> out;
  for (nlohmann::json& row : rows) {
    SfChange c;
    c.object = object;
    c.id = row.value("Id", "");
    c.deleted = row.value("IsDeleted", false);
    c.stamp = StampOf(row);
    row.erase("attributes");
    c.values = std::move(row);
    c.source = src;
    out.push_back(std::move(c));
  }
  return out;
}

Result<std::vector<SfChange>> ObjectCapture::Poll(ObjectPosition& pos) {
  std::vector<nlohmann::json> rows;
  DUPLEX_RETURN_IF_ERROR(client_.Query(poller_.Query(pos.poll), true, [&](nlohmann::json& page) {
    for (nlohmann::json& r : page) rows.push_back(std::move(r));
    return Status::Ok();
  }));
  return TakePoll(pos, std::move(rows));
}

std::vector<SfChange> ObjectCapture::TakePoll(ObjectPosition& pos,
                                              std::vector<nlohmann::json> rows) const {
  if (pos.sweep_from == 0) {
    // The first poll reads everything; the first sweep goes back over the longest transaction
    // that may still commit with an older stamp.
    pos.sweep_from = static_cast<double>(std::time(nullptr)) - late_window_;
  }
  return ChangesOf(poller_.object(), poller_.Take(pos.poll, std::move(rows)),
                   SfChange::Source::kPoll);
}

Result<std::vector<nlohmann::json>> ObjectCapture::QueryIds(const std::vector<std::string>& ids) {
  std::vector<nlohmann::json> rows;
  for (size_t start = 0; start < ids.size(); start += kIdsPerQuery) {
    std::string list;
    for (size_t i = start; i < std::min(ids.size(), start + kIdsPerQuery); ++i) {
      std::optional<std::string> id = NormalizeId(ids[i]);
      if (!id) {
        return Status::Corruption("object '" + poller_.object() + "': '" + ids[i] +
                                  "' is not a Salesforce id");
      }
      list += (list.empty() ? "'" : ", '") + *id + "'";
    }
    DUPLEX_RETURN_IF_ERROR(client_.Query("SELECT " + poller_.FieldList() + " FROM " +
                                             poller_.object() + " WHERE Id IN (" + list +
                                             ") ORDER BY SystemModstamp, Id",
                                         true, [&](nlohmann::json& page) {
                                           for (nlohmann::json& r : page) {
                                             rows.push_back(std::move(r));
                                           }
                                           return Status::Ok();
                                         }));
  }
  std::stable_sort(rows.begin(), rows.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
    return StampOf(a) < StampOf(b);
  });
  return rows;
}

Result<std::vector<SfChange>> ObjectCapture::Sweep(ObjectPosition& pos, double now) {
  const std::string& object = poller_.object();
  if (pos.sweep_from == 0) pos.sweep_from = now - late_window_;
  // The end is the next whole minute: the current one is covered again by the next sweep,
  // because latestDateCovered never passes the present (or an open transaction's start).
  const std::string range =
      "/?start=" + MinuteParam(pos.sweep_from) + "&end=" + MinuteParam(now + 60);
  DUPLEX_ASSIGN_OR_RETURN(nlohmann::json updated,
                          client_.Get("/sobjects/" + object + "/updated" + range));
  DUPLEX_ASSIGN_OR_RETURN(nlohmann::json deleted,
                          client_.Get("/sobjects/" + object + "/deleted" + range));
  std::vector<std::string> ids;
  if (updated.contains("ids") && updated["ids"].is_array()) {
    for (const nlohmann::json& id : updated["ids"]) {
      if (id.is_string()) ids.push_back(id.get<std::string>());
    }
  }
  std::vector<nlohmann::json> rows;
  if (ids.size() <= kIdsPerQuery) {
    DUPLEX_ASSIGN_OR_RETURN(rows, QueryIds(ids));
  } else {
    // Many changed: one queryAll over the window costs a call per 2,000 rows, where asking by
    // id costs one per 200. The window holds the same rows (those ids are stamped in it).
    const auto from = static_cast<int64_t>(std::floor(pos.sweep_from / 60)) * 60;
    DUPLEX_RETURN_IF_ERROR(client_.Query("SELECT " + poller_.FieldList() + " FROM " + object +
                                             " WHERE SystemModstamp >= " + SoqlDateTime(from) +
                                             " ORDER BY SystemModstamp, Id",
                                         true, [&](nlohmann::json& page) {
                                           for (nlohmann::json& r : page)
                                             rows.push_back(std::move(r));
                                           return Status::Ok();
                                         }));
  }
  // Take keeps the cursor where it is for rows older than it, and drops what was delivered.
  std::vector<SfChange> out =
      ChangesOf(object, poller_.Take(pos.poll, std::move(rows)), SfChange::Source::kSweep);
  if (deleted.contains("deletedRecords") && deleted["deletedRecords"].is_array()) {
    for (const nlohmann::json& d : deleted["deletedRecords"]) {
      const std::optional<std::string> id = d.contains("id") && d["id"].is_string()
                                                ? NormalizeId(d["id"].get<std::string>())
                                                : std::nullopt;
      const double when = d.contains("deletedDate") && d["deletedDate"].is_string()
                              ? ParseDateTime(d["deletedDate"].get<std::string>()).value_or(0)
                              : 0;
      if (!id) continue;
      auto seen = pos.poll.recent.find(*id);
      // Delivered already: by a poll or event at this stamp, or something newer. A write and
      // the delete in one second share the stamp: the digest tells them apart.
      if (seen != pos.poll.recent.end() &&
          (seen->second.first > when ||
           (seen->second.first == when &&
            (seen->second.second == kDeletedDigest || seen->second.second == kDeliveredByEvent)))) {
        continue;
      }
      pos.poll.recent[*id] = {when, kDeletedDigest};
      SfChange c;
      c.object = object;
      c.id = *id;
      c.deleted = true;
      c.stamp = when;
      c.values = {{"Id", *id}, {"IsDeleted", true}};
      c.source = SfChange::Source::kSweep;
      out.push_back(std::move(c));
    }
  }
  // Salesforce: "for safety, use this value for the startDate of your next call". The older
  // of the two, so that neither resource skips a stretch.
  std::optional<double> next;
  for (const nlohmann::json* body : {&updated, &deleted}) {
    if (body->contains("latestDateCovered") && (*body)["latestDateCovered"].is_string()) {
      const std::optional<double> t =
          ParseDateTime((*body)["latestDateCovered"].get<std::string>());
      if (t) next = next ? std::min(*next, *t) : *t;
    }
  }
  if (next) pos.sweep_from = std::max(pos.sweep_from, *next);
  return out;
}

Result<std::vector<SfChange>> ObjectCapture::Reread(ObjectPosition& pos,
                                                    const std::vector<std::string>& ids) {
  for (const std::string& id : ids) {
    if (std::optional<std::string> full = NormalizeId(id)) pos.poll.recent.erase(*full);
  }
  DUPLEX_ASSIGN_OR_RETURN(std::vector<nlohmann::json> rows, QueryIds(ids));
  return ChangesOf(poller_.object(), poller_.Take(pos.poll, std::move(rows)),
                   SfChange::Source::kReread);
}

SfChange ObjectCapture::NoteEvent(ObjectPosition& pos, const CdcChange& e) const {
  SfChange c;
  c.object = e.object;
  c.id = e.id;
  c.deleted = e.deleted();
  c.values = e.values;
  c.values["Id"] = e.id;
  if (e.change_type == "UPDATE") c.changed_fields = e.changed_fields;
  c.change_origin = e.change_origin;
  c.transaction_key = e.transaction_key;
  // Events carry LastModifiedDate (the write's start, like SystemModstamp) but never
  // SystemModstamp itself; a delete carries neither: its commit time is no earlier.
  std::optional<double> stamp;
  if (e.values.contains("LastModifiedDate") && e.values["LastModifiedDate"].is_string()) {
    stamp = ParseDateTime(e.values["LastModifiedDate"].get<std::string>());
  }
  c.stamp = stamp ? *stamp : std::floor(static_cast<double>(e.commit_ms) / 1000);
  c.source = SfChange::Source::kEvent;
  auto seen = pos.poll.recent.find(e.id);
  if (seen == pos.poll.recent.end() || seen->second.first <= c.stamp) {
    pos.poll.recent[e.id] = {c.stamp, kDeliveredByEvent};
  }
  return c;
}

}  // namespace duplex::sf
