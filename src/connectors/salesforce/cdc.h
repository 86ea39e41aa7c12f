#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "connectors/salesforce/client.h"
#include "duplex/result.h"

namespace duplex::sf {

// One record's change, from a Change Data Capture event (shared/SALESFORCE.md §2.3). An event
// whose header lists several recordIds (one change made to many records in one transaction)
// becomes one CdcChange per record.
struct CdcChange {
  std::string object;       // entityName
  std::string id;           // the record's 18-character Id
  std::string change_type;  // CREATE, UPDATE, DELETE, UNDELETE
  // UPDATE: the fields that changed (LastModifiedDate included); empty otherwise.
  std::vector<std::string> changed_fields;
  // The field values the event carries: every non-null field of a CREATE or UNDELETE, the
  // changed ones of an UPDATE, none of a DELETE. Never IsDeleted or SystemModstamp.
  nlohmann::json values = nlohmann::json::object();
  std::string change_origin;  // "com/salesforce/api/rest/61.0;client=duplex-crm", or ""
  std::string transaction_key;
  int64_t sequence = 0;   // within the transaction
  int64_t commit_ms = 0;  // commitTimestamp
  int64_t replay_id = 0;

  bool deleted() const { return change_type == "DELETE"; }
  // Whether changeOrigin names `client` (Sforce-Call-Options: client=...). A pre-filter for
  // echoes only: the transaction may hold a Flow's or trigger's changes too (§2.3 caveat b).
  bool FromClient(const std::string& client) const;
};

// Events lost by Salesforce (GAP_CREATE, GAP_UPDATE, ..., GAP_OVERFLOW): the records must be
// read again by query. `ids` empty means every record of `object` (an overflow's wildcard).
struct CdcGap {
  std::string object;
  std::vector<std::string> ids;
  std::string change_type;
  int64_t replay_id = 0;
};

// What one long-poll brought.
struct CdcBatch {
  std::vector<CdcChange> changes;  // in commit order
  std::vector<CdcGap> gaps;
  // The stored replay id had expired (72 h): events between it and the oldest retained one are
  // gone, and the stream resumed from what is retained. Everything since the last poll cursor
  // must be read again by query.
  bool replay_expired = false;
  int64_t last_replay_id = 0;  // the newest replay id in this batch (0: none came)
};

// Adds one CometD event message ({"channel", "data": {"payload": {"ChangeEventHeader", ...},
// "event": {"replayId"}}}) to `batch`. Corruption if it is not a change event.
Status AppendChangeEvent(const nlohmann::json& message, CdcBatch& batch);

// Change events over CometD long-polling (Bayeux 1.0 at /cometd/{version}, the replay
// extension), from a durable replay id. It holds its own Client: a /meta/connect waits up to
// the server's timeout (110 s on Salesforce) for events, so the connection cannot be shared
// with calls that must not wait. The calls of this stream do not count as API requests.
// Not thread-safe.
class CometdStream {
 public:
  // `options.timeout_seconds` must exceed the server's long-poll timeout.
  explicit CometdStream(ClientOptions options, std::string channel = "/data/ChangeEvents");

  // Handshakes and subscribes to the channel after `replay_id` (-1: only new events, -2: all
  // retained). A replay id Salesforce refuses as expired makes the stream subscribe with -2
  // and report replay_expired in the next batch.
  Status Start(int64_t replay_id);

  // One /meta/connect: the events that came, in order (none if the server's timeout passed).
  // When the server has forgotten this client (advice "handshake"), handshakes and subscribes
  // again after the last replay id delivered. Unavailable when the org cannot be reached.
  Result<CdcBatch> Next();

  // Breaks off a Next() waiting in another thread (it returns Unavailable).
  void Interrupt() { client_.Interrupt(); }

  // The replay id of the last event delivered: what to store as the position.
  int64_t replay_id() const { return replay_id_; }
  const std::string& channel() const { return channel_; }

 private:
  Result<nlohmann::json> Post(const nlohmann::json& messages);
  Status Handshake();
  // Subscribes after replay_id_; `expired` set when Salesforce refused the id.
  Status Subscribe(bool& expired);

  Client client_;
  std::string channel_;
  std::string where_;
  std::string cometd_path_;
  std::string client_id_;
  int64_t replay_id_ = -1;
  bool expired_pending_ = false;
  int64_t message_id_ = 0;
};

}  // namespace duplex::sf
