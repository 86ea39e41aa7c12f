#include "core/record_state.h"

#include "util/msgpack_writer.h"

namespace duplex {

// Format (MessagePack): {"e": exists, "v": values, "t": {field: [ts, origin]}, "d": [ts, origin],
// "k": {endpoint: row, or true when the row equals "v"}, "p": {endpoint: {field: id}},
// "x": [diverged fields], "b": {endpoint: {field: value before duplex's unobserved write}},
// "r": {endpoint: row held before duplex's unobserved delete}, "w": {endpoint: {field:
// [[apply id, value], ...]}}} ("r" and "w" only when not empty).
// Written field by field, without building one JSON tree first: this runs for every record a batch
// touches.
std::string RecordState::Encode() const {
  MsgpackWriter w;
  w.MapHeader(8 + (prior_row.empty() ? 0 : 1) + (inflight.empty() ? 0 : 1));
  w.String("e");
  w.Bool(exists);
  w.String("v");
  w.Json(values);
  w.String("t");
  w.MapHeader(static_cast<uint32_t>(versions.size()));
  for (const auto& [f, ver] : versions) {
    w.String(f);
    w.ArrayHeader(2);
    w.Double(ver.ts);
    w.String(ver.origin);
  }
  w.String("d");
  w.ArrayHeader(2);
  w.Double(deleted.ts);
  w.String(deleted.origin);
  w.String("k");
  w.MapHeader(static_cast<uint32_t>(known.size()));
  for (const auto& [ep, row] : known) {
    w.String(ep);
    // Converged records (the common case) hold the agreed row everywhere.
    if (row == values) {
      w.Bool(true);
    } else {
      w.Json(row);
    }
  }
  w.String("p");
  uint32_t pending_endpoints = 0;
  for (const auto& [ep, fields] : pending) pending_endpoints += fields.empty() ? 0 : 1;
  w.MapHeader(pending_endpoints);
  for (const auto& [ep, fields] : pending) {
    if (fields.empty()) continue;
    w.String(ep);
    w.MapHeader(static_cast<uint32_t>(fields.size()));
    for (const auto& [f, id] : fields) {
      w.String(f);
      w.Int(id);
    }
  }
  w.String("x");
  w.ArrayHeader(static_cast<uint32_t>(diverged.size()));
  for (const std::string& f : diverged) w.String(f);
  w.String("b");
  w.MapHeader(static_cast<uint32_t>(prior.size()));
  for (const auto& [ep, row] : prior) {
    w.String(ep);
    w.Json(row);
  }
  if (!prior_row.empty()) {
    w.String("r");
    w.MapHeader(static_cast<uint32_t>(prior_row.size()));
    for (const auto& [ep, row] : prior_row) {
      w.String(ep);
      w.Json(row);
    }
  }
  if (!inflight.empty()) {
    w.String("w");
    w.MapHeader(static_cast<uint32_t>(inflight.size()));
    for (const auto& [ep, fields] : inflight) {
      w.String(ep);
      w.Json(fields);
    }
  }
  return w.Take();
}

Result<RecordState> RecordState::Decode(std::string_view bytes) {
  nlohmann::json j = nlohmann::json::from_msgpack(bytes.begin(), bytes.end(), true, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Corruption("record state cannot be decoded");
  }
  RecordState s;
  s.exists = j.value("e", false);
  if (auto v = j.find("v"); v != j.end()) s.values = std::move(*v);
  for (auto& [f, ver] : j["t"].items()) {
    s.versions[f] = Version{ver.at(0).get<double>(), ver.at(1).get<std::string>()};
  }
  if (j.contains("d") && j["d"].is_array()) {
    s.deleted = Version{j["d"].at(0).get<double>(), j["d"].at(1).get<std::string>()};
  }
  for (auto& [ep, row] : j["k"].items()) {
    if (row.is_boolean()) {
      s.known[ep] = s.values;
    } else {
      s.known[ep] = std::move(row);
    }
  }
  for (const auto& [ep, fields] : j["p"].items()) {
    for (const auto& [f, id] : fields.items()) s.pending[ep][f] = id.get<int64_t>();
  }
  for (const auto& f : j["x"]) s.diverged.insert(f.get<std::string>());
  if (auto b = j.find("b"); b != j.end() && b->is_object()) {
    for (auto& [ep, row] : b->items()) s.prior[ep] = std::move(row);
  }
  if (auto r = j.find("r"); r != j.end() && r->is_object()) {
    for (auto& [ep, row] : r->items()) s.prior_row[ep] = std::move(row);
  }
  if (auto w = j.find("w"); w != j.end() && w->is_object()) {
    for (auto& [ep, fields] : w->items()) s.inflight[ep] = std::move(fields);
  }
  return s;
}

}  // namespace duplex
