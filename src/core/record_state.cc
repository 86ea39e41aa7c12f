#include "core/record_state.h"

namespace duplex {

// Format (MessagePack of this JSON): {"e": exists, "v": values, "t": {field: [ts, origin]},
// "d": [ts, origin], "k": {endpoint: row}, "p": {endpoint: {field: id}}, "x": [fields]}.
std::string RecordState::Encode() const {
  nlohmann::json j;
  j["e"] = exists;
  j["v"] = values;
  nlohmann::json t = nlohmann::json::object();
  for (const auto& [f, ver] : versions) t[f] = {ver.ts, ver.origin};
  j["t"] = std::move(t);
  j["d"] = {deleted.ts, deleted.origin};
  nlohmann::json k = nlohmann::json::object();
  for (const auto& [ep, row] : known) k[ep] = row;
  j["k"] = std::move(k);
  nlohmann::json p = nlohmann::json::object();
  for (const auto& [ep, fields] : pending) {
    if (fields.empty()) continue;
    nlohmann::json pf = nlohmann::json::object();
    for (const auto& [f, id] : fields) pf[f] = id;
    p[ep] = std::move(pf);
  }
  j["p"] = std::move(p);
  j["x"] = diverged;
  std::vector<uint8_t> bytes = nlohmann::json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

Result<RecordState> RecordState::Decode(std::string_view bytes) {
  nlohmann::json j = nlohmann::json::from_msgpack(bytes.begin(), bytes.end(), true, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Corruption("record state cannot be decoded");
  }
  RecordState s;
  s.exists = j.value("e", false);
  s.values = j.value("v", Row::object());
  for (const auto& [f, ver] : j["t"].items()) {
    s.versions[f] = Version{ver.at(0).get<double>(), ver.at(1).get<std::string>()};
  }
  if (j.contains("d") && j["d"].is_array()) {
    s.deleted = Version{j["d"].at(0).get<double>(), j["d"].at(1).get<std::string>()};
  }
  for (const auto& [ep, row] : j["k"].items()) s.known[ep] = row;
  for (const auto& [ep, fields] : j["p"].items()) {
    for (const auto& [f, id] : fields.items()) s.pending[ep][f] = id.get<int64_t>();
  }
  for (const auto& f : j["x"]) s.diverged.insert(f.get<std::string>());
  return s;
}

}  // namespace duplex
