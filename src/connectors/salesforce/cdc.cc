#include "connectors/salesforce/cdc.h"

namespace duplex::sf {

namespace {

std::string Str(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t Int(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<int64_t>() : 0;
}

}  // namespace

bool CdcChange::FromClient(const std::string& client) const {
  const std::string tag = ";client=" + client;
  return !client.empty() && change_origin.size() >= tag.size() &&
         change_origin.compare(change_origin.size() - tag.size(), tag.size(), tag) == 0;
}

Status AppendChangeEvent(const nlohmann::json& message, CdcBatch& batch) {
  const nlohmann::json* data = message.contains("data") ? &message["data"] : nullptr;
  if (!data || !data->is_object() || !data->contains("payload") ||
      !(*data)["payload"].is_object() || !(*data)["payload"].contains("ChangeEventHeader")) {
    return Status::Corruption("CometD message is not a change event: " +
                              message.dump().substr(0, 200));
  }
  const nlohmann::json& payload = (*data)["payload"];
  const nlohmann::json& header = payload["ChangeEventHeader"];
  const int64_t replay_id =
      data->contains("event") ? Int((*data)["event"], "replayId") : static_cast<int64_t>(0);
  const std::string type = Str(header, "changeType");
  const std::string object = Str(header, "entityName");
  std::vector<std::string> ids;
  bool wildcard = false;
  if (header.contains("recordIds") && header["recordIds"].is_array()) {
    for (const nlohmann::json& id : header["recordIds"]) {
      if (!id.is_string()) continue;
      const std::string s = id.get<std::string>();
      if (s.find('*') != std::string::npos) {
        wildcard = true;  // "001*": every record of the object
        continue;
      }
      std::optional<std::string> full = NormalizeId(s);
      if (!full)
        return Status::Corruption("change event for '" + object + "' names id '" + s +
                                  "', which is not a Salesforce id");
      ids.push_back(*full);
    }
  }
  if (replay_id > 0) batch.last_replay_id = replay_id;
  if (type.rfind("GAP_", 0) == 0 || wildcard) {
    CdcGap gap;
    gap.object = object;
    if (!wildcard) gap.ids = std::move(ids);
    gap.change_type = type;
    gap.replay_id = replay_id;
    batch.gaps.push_back(std::move(gap));
    return Status::Ok();
  }
  if (type != "CREATE" && type != "UPDATE" && type != "DELETE" && type != "UNDELETE") {
    return Status::Corruption("change event for '" + object + "' has changeType '" + type + "'");
  }
  CdcChange base;
  base.object = object;
  base.change_type = type;
  if (header.contains("changedFields") && header["changedFields"].is_array()) {
    for (const nlohmann::json& f : header["changedFields"]) {
      if (f.is_string()) base.changed_fields.push_back(f.get<std::string>());
    }
  }
  for (const auto& [k, v] : payload.items()) {
    if (k != "ChangeEventHeader") base.values[k] = v;
  }
  base.change_origin = Str(header, "changeOrigin");
  base.transaction_key = Str(header, "transactionKey");
  base.sequence = Int(header, "sequenceNumber");
  base.commit_ms = Int(header, "commitTimestamp");
  base.replay_id = replay_id;
  for (std::string& id : ids) {
    CdcChange c = base;
    c.id = std::move(id);
    batch.changes.push_back(std::move(c));
  }
  return Status::Ok();
}

CometdStream::CometdStream(ClientOptions options, std::string channel)
    : client_(options),
      channel_(std::move(channel)),
      where_(options.where),
      cometd_path_("/cometd/" + options.api_version) {}

Result<nlohmann::json> CometdStream::Post(const nlohmann::json& messages) {
  Result<nlohmann::json> r = client_.SendPath("POST", cometd_path_, messages);
  if (!r.ok()) return r.status();
  if (!r->is_array()) {
    return Status::Corruption(where_ +
                              ": CometD answer is not a message list: " + r->dump().substr(0, 200));
  }
  return r;
}

Status CometdStream::Handshake() {
  DUPLEX_ASSIGN_OR_RETURN(
      nlohmann::json reply,
      Post(nlohmann::json::array({{{"channel", "/meta/handshake"},
                                   {"id", std::to_string(++message_id_)},
                                   {"version", "1.0"},
                                   {"minimumVersion", "1.0"},
                                   {"supportedConnectionTypes", {"long-polling"}},
                                   {"ext", {{"replay", true}}}}})));
  for (const nlohmann::json& m : reply) {
    if (Str(m, "channel") != "/meta/handshake") continue;
    if (!m.value("successful", false)) {
      return Status::Unavailable(where_ + ": CometD handshake refused: " + Str(m, "error"));
    }
    client_id_ = Str(m, "clientId");
    return Status::Ok();
  }
  return Status::Corruption(where_ + ": CometD handshake without an answer");
}

Status CometdStream::Subscribe(bool& expired) {
  expired = false;
  for (int attempt = 0; attempt < 2; ++attempt) {
    DUPLEX_ASSIGN_OR_RETURN(
        nlohmann::json reply,
        Post(nlohmann::json::array({{{"channel", "/meta/subscribe"},
                                     {"id", std::to_string(++message_id_)},
                                     {"clientId", client_id_},
                                     {"subscription", channel_},
                                     {"ext", {{"replay", {{channel_, replay_id_}}}}}}})));
    for (const nlohmann::json& m : reply) {
      if (Str(m, "channel") != "/meta/subscribe") continue;
      if (m.value("successful", false)) return Status::Ok();
      const std::string error = Str(m, "error");
      // Salesforce keeps events 72 h: an older replay id is refused. Resume from everything
      // retained (-2) and let the caller re-read the stretch the events no longer cover.
      if (error.find("replayId") != std::string::npos && replay_id_ != -2) {
        expired = true;
        replay_id_ = -2;
        break;
      }
      return Status::InvalidArgument(where_ + ": CometD subscription to '" + channel_ +
                                     "' refused: " + error);
    }
    if (!expired) return Status::Corruption(where_ + ": CometD subscribe without an answer");
  }
  return Status::Ok();
}

Status CometdStream::Start(int64_t replay_id) {
  replay_id_ = replay_id;
  DUPLEX_RETURN_IF_ERROR(Handshake());
  bool expired = false;
  DUPLEX_RETURN_IF_ERROR(Subscribe(expired));
  if (expired) expired_pending_ = true;
  return Status::Ok();
}

Result<CdcBatch> CometdStream::Next() {
  if (client_id_.empty()) DUPLEX_RETURN_IF_ERROR(Start(replay_id_));
  CdcBatch batch;
  batch.replay_expired = expired_pending_;
  expired_pending_ = false;
  DUPLEX_ASSIGN_OR_RETURN(nlohmann::json reply,
                          Post(nlohmann::json::array({{{"channel", "/meta/connect"},
                                                       {"id", std::to_string(++message_id_)},
                                                       {"clientId", client_id_},
                                                       {"connectionType", "long-polling"}}})));
  bool rehandshake = false;
  for (const nlohmann::json& m : reply) {
    const std::string channel = Str(m, "channel");
    if (channel == "/meta/connect") {
      if (!m.value("successful", false)) {
        const nlohmann::json advice = m.value("advice", nlohmann::json::object());
        if (Str(advice, "reconnect") == "handshake") {
          rehandshake = true;
        } else {
          return Status::Unavailable(where_ + ": CometD connect failed: " + Str(m, "error"));
        }
      }
      continue;
    }
    if (channel.rfind("/meta/", 0) == 0) continue;
    DUPLEX_RETURN_IF_ERROR(AppendChangeEvent(m, batch).WithContext(where_));
  }
  if (batch.last_replay_id > 0) replay_id_ = batch.last_replay_id;
  if (rehandshake) {
    // The server forgot this client (restart, idle too long): subscribe again after the last
    // event delivered, so nothing is skipped.
    client_id_.clear();
    DUPLEX_RETURN_IF_ERROR(Start(replay_id_));
    batch.replay_expired = batch.replay_expired || expired_pending_;
    expired_pending_ = false;
  }
  return batch;
}

}  // namespace duplex::sf
