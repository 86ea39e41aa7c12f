#include "connectors/salesforce/endpoint.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <ctime>

namespace duplex::sf {

namespace {

QuotaPacer::Options Pacing(const SfEndpoint::Options& o) {
  QuotaPacer::Options p = o.pacing;
  // Every object's poll in one Composite call of up to five queries (Client::QueryMany).
  const size_t per = Client::kQueriesPerComposite;
  p.calls_per_poll = std::max<double>(1, static_cast<double>((o.objects.size() + per - 1) / per));
  return p;
}

}  // namespace

SfEndpoint::SfEndpoint(Options options, Env& env)
    : opt_(std::move(options)),
      env_(env),
      client_(opt_.client),
      pacer_(Pacing(opt_)),
      writer_(client_, env_) {}

SfEndpoint::~SfEndpoint() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  room_.notify_all();
  // Interrupt until the thread is out: an interrupt that comes between two long-polls finds
  // no connection to break, and the next long-poll would hold the join for up to 110 s.
  while (events_.joinable() && !events_done_.load()) {
    stream_->Interrupt();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (events_.joinable()) events_.join();
}

double SfEndpoint::Now() const {
  return std::chrono::duration<double>(env_.Now().time_since_epoch()).count();
}

Result<SfEndpoint::Position> SfEndpoint::ParsePosition(const std::string& text) {
  Position p;
  if (text.empty()) return p;
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) {
    return Status::Corruption("Salesforce position is not JSON: " + text.substr(0, 80));
  }
  if (j.contains("replay") && j["replay"].is_number_integer())
    p.replay = j["replay"].get<int64_t>();
  if (j.contains("objects") && j["objects"].is_object()) {
    for (const auto& [name, o] : j["objects"].items()) {
      DUPLEX_ASSIGN_OR_RETURN(p.objects[name], ObjectPosition::FromJson(o));
    }
  }
  return p;
}

std::string SfEndpoint::SerializePosition(const Position& p) {
  nlohmann::json objects = nlohmann::json::object();
  for (const auto& [name, o] : p.objects) objects[name] = o.ToJson();
  return nlohmann::json{{"replay", p.replay}, {"objects", objects}}.dump();
}

Status SfEndpoint::Open(const std::string& position) {
  DUPLEX_ASSIGN_OR_RETURN(Position pos, ParsePosition(position));
  DUPLEX_RETURN_IF_ERROR(client_.Login());
  std::string problems;
  for (const ObjectSpec& spec : opt_.objects) {
    Result<ObjectInfo> info = sf::Describe(client_, spec.object);
    pacer_.Observe(client_, Now());
    if (!info.ok()) {
      if (!info.status().IsNotFound()) return info.status();
      problems += (problems.empty() ? "" : "; ") + info.status().message() +
                  ": check the object's name and the integration user's access to it";
      continue;
    }
    for (const std::string& p : CheckObject(*info, opt_.external_id, spec.fields)) {
      problems += (problems.empty() ? "" : "; ") + p;
    }
    std::vector<std::string> fields = spec.fields;
    if (std::none_of(fields.begin(), fields.end(),
                     [&](const std::string& f) { return SameName(f, opt_.external_id); })) {
      fields.push_back(opt_.external_id);  // the record's key travels with every row
    }
    captures_.push_back(
        std::make_unique<ObjectCapture>(client_, info->name, fields, opt_.overlap_seconds,
                                        opt_.late_window_seconds, opt_.remember_seconds));
    described_[info->name] = std::move(*info);
  }
  if (!problems.empty()) {
    return Status::InvalidArgument(opt_.client.where +
                                   ": the org lacks what duplex needs: " + problems);
  }
  if (!opt_.events) return Status::Ok();
  ClientOptions stream_options = opt_.client;
  // A /meta/connect waits up to 110 s on Salesforce for events.
  stream_options.timeout_seconds = std::max(stream_options.timeout_seconds, 130);
  stream_ = std::make_unique<CometdStream>(stream_options);
  DUPLEX_RETURN_IF_ERROR(stream_->Start(pos.replay));
  events_ = std::thread([this] { EventLoop(); });
  return Status::Ok();
}

void SfEndpoint::EventLoop() {
  struct Done {
    std::atomic<bool>& flag;
    ~Done() { flag = true; }
  } done{events_done_};
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Backpressure (P9): stop reading events while Capture has not taken enough of them.
      room_.wait(lock, [&] { return stop_ || queued_changes_ < opt_.max_queued_events; });
      if (stop_) return;
    }
    Result<CdcBatch> b = stream_->Next();
    std::unique_lock<std::mutex> lock(mu_);
    if (stop_) return;
    if (!b.ok()) {
      stream_status_ = b.status();
      // The polls go on meanwhile; try the stream again in a second.
      room_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_; });
      continue;
    }
    stream_status_ = Status::Ok();
    if (b->changes.empty() && b->gaps.empty() && !b->replay_expired) continue;
    queued_changes_ += b->changes.size();
    queue_.push_back(std::move(*b));
  }
}

Result<std::vector<SfChange>> SfEndpoint::Capture(std::string& position) {
  DUPLEX_ASSIGN_OR_RETURN(Position pos, ParsePosition(position));
  std::vector<SfChange> out;
  std::deque<CdcBatch> batches;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batches.swap(queue_);
    queued_changes_ = 0;
  }
  room_.notify_all();
  auto capture_of = [&](const std::string& object) -> ObjectCapture* {
    for (auto& c : captures_) {
      if (SameName(c->poller().object(), object)) return c.get();
    }
    return nullptr;
  };
  bool poll_now = false;
  Status failed;
  for (CdcBatch& b : batches) {
    if (b.replay_expired) {
      // Events were lost for good: every object's poll window is read again, all of it.
      for (auto& c : captures_) c->ForgetDelivered(pos.objects[c->poller().object()]);
      poll_now = true;
    }
    for (const CdcChange& e : b.changes) {
      ObjectCapture* cap = capture_of(e.object);
      if (cap) out.push_back(cap->NoteEvent(pos.objects[cap->poller().object()], e));
    }
    for (const CdcGap& g : b.gaps) {
      ObjectCapture* cap = capture_of(g.object);
      if (!cap) continue;
      ObjectPosition& op = pos.objects[cap->poller().object()];
      if (g.ids.empty()) {
        cap->ForgetDelivered(op);
        poll_now = true;
        continue;
      }
      Result<std::vector<SfChange>> again = cap->Reread(op, g.ids);
      pacer_.Observe(client_, Now());
      if (!again.ok()) {
        // Not read: forget what was delivered so the next poll reads the window again.
        cap->ForgetDelivered(op);
        poll_now = true;
        if (!again.status().IsRetriable()) failed = again.status();
        continue;
      }
      for (SfChange& c : *again) out.push_back(std::move(c));
    }
    if (b.last_replay_id > 0) pos.replay = b.last_replay_id;
  }
  const double now = Now();
  // Refused for the quota and the pause over: a poll is the probe that finds it freed (writes
  // make no call while the quota is spent).
  if (pacer_.quota_exhausted() && !pacer_.Paused(now)) poll_now = true;
  bool polled = false;
  if (stash_) {
    // A poll made with duplex's writes (Write): its rows, if read from where this capture
    // stands.
    bool same = stash_->cursors.size() == captures_.size();
    for (size_t i = 0; same && i < captures_.size(); ++i) {
      same = stash_->cursors[i] == pos.objects[captures_[i]->poller().object()].poll.Serialize();
    }
    if (same && !poll_now) {
      for (size_t i = 0; i < captures_.size(); ++i) {
        ObjectCapture& cap = *captures_[i];
        for (SfChange& c :
             cap.TakePoll(pos.objects[cap.poller().object()], std::move(stash_->rows[i]))) {
          out.push_back(std::move(c));
        }
      }
      polled = true;
    } else {
      poll_now = true;  // read from elsewhere: poll now instead
    }
    stash_.reset();
  }
  if (!polled && !pacer_.Paused(now) && (poll_now || now >= next_poll_)) {
    // Every object's poll in one call (a Composite of up to five queries): what an idle org
    // costs is a call per poll, however many objects are synced.
    std::vector<std::string> soqls;
    for (auto& cap : captures_)
      soqls.push_back(cap->PollQuery(pos.objects[cap->poller().object()]));
    std::vector<std::vector<nlohmann::json>> rows(captures_.size());
    Status st = client_.QueryMany(soqls, true, [&](size_t i, nlohmann::json& page) {
      for (nlohmann::json& r : page) rows[i].push_back(std::move(r));
      return Status::Ok();
    });
    pacer_.Observe(client_, Now());
    if (!st.ok()) {
      if (!st.IsRetriable()) failed = st;
    } else {
      for (size_t i = 0; i < captures_.size(); ++i) {
        ObjectCapture& cap = *captures_[i];
        for (SfChange& c : cap.TakePoll(pos.objects[cap.poller().object()], std::move(rows[i]))) {
          out.push_back(std::move(c));
        }
      }
    }
    // From when the poll began, not ended: the engine asks again poll_interval after it asked
    // (PollInterval), and a next poll due a call's length later would wait a whole interval
    // more there.
    next_poll_ =
        now + std::max(pacer_.NextPollIn(Now()), opt_.events ? opt_.cross_check_seconds : 0.0);
  }
  if (!pacer_.Paused(Now()) && Now() >= next_sweep_) {
    for (auto& cap : captures_) {
      Result<std::vector<SfChange>> got =
          cap->Sweep(pos.objects[cap->poller().object()], static_cast<double>(std::time(nullptr)));
      pacer_.Observe(client_, Now());
      if (!got.ok()) {
        if (!got.status().IsRetriable()) failed = got.status();
        break;
      }
      for (SfChange& c : *got) out.push_back(std::move(c));
    }
    next_sweep_ = Now() + opt_.sweep_seconds;
  }
  // A failure the engine must see is returned only when nothing would be lost with it: the
  // events taken from the queue, and what a gap changed in the position, live only in `out`
  // and `pos`.
  if (!failed.ok() && out.empty() && batches.empty()) return failed;
  position = SerializePosition(pos);
  last_state_ = position;
  return out;
}

bool SfEndpoint::HasNews() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!queue_.empty()) return true;
  }
  if (stash_) return true;
  const double now = Now();
  if (pacer_.Paused(now)) return false;
  return now >= next_poll_ || now >= next_sweep_ || pacer_.quota_exhausted();
}

Status SfEndpoint::WritesAllowed(const std::string& object) {
  const double now = Now();
  if (!pacer_.WritesPaused(now)) return Status::Ok();
  const ApiUsage& u = pacer_.org_usage();
  return Status::Unavailable(
      opt_.client.where + ": writes to " + object + " paused: " +
      (pacer_.quota_exhausted() ? "the org refused a call with REQUEST_LIMIT_EXCEEDED"
                                : "the API budget is spent down to capture's reserve") +
      " (org api-usage " + std::to_string(u.used) + "/" + std::to_string(u.max) +
      ", duplex's calls in 24 h " + std::to_string(pacer_.OwnCalls(now)) + ", budget " +
      opt_.pacing.budget.ToString() + ")");
}

Result<std::vector<RecordResult>> SfEndpoint::Upsert(const std::string& object,
                                                     const std::vector<nlohmann::json>& records) {
  DUPLEX_RETURN_IF_ERROR(WritesAllowed(object));
  Result<std::vector<RecordResult>> r = writer_.Upsert(object, opt_.external_id, records);
  pacer_.Observe(client_, Now());
  return r;
}

Result<std::vector<std::vector<RecordResult>>> SfEndpoint::Write(
    const std::vector<Writer::Request>& requests) {
  for (const Writer::Request& r : requests) DUPLEX_RETURN_IF_ERROR(WritesAllowed(r.object));
  // A poll due now rides with the writes: the poll of a poll interval and its writes cost one
  // call.
  std::vector<std::string> queries, cursors;
  const double now = Now();
  if (!stash_ && now >= next_poll_ && !captures_.empty() && !last_state_.empty()) {
    if (Result<Position> pos = ParsePosition(last_state_); pos.ok()) {
      for (auto& cap : captures_) {
        const ObjectPosition& op = pos->objects[cap->poller().object()];
        queries.push_back(client_.QueryPath(cap->PollQuery(op), true));
        cursors.push_back(op.poll.Serialize());
      }
    }
  }
  std::vector<nlohmann::json> answers;
  Result<std::vector<std::vector<RecordResult>>> r = writer_.Write(requests, queries, &answers);
  if (r.ok() && !queries.empty() && answers.size() == queries.size()) {
    Stash stash{std::move(cursors), std::vector<std::vector<nlohmann::json>>(answers.size())};
    bool whole = true;
    for (size_t i = 0; i < answers.size() && whole; ++i) {
      // A page that cannot be read: the next Capture polls as usual.
      whole = client_
                  .Pages(std::move(answers[i]),
                         [&](nlohmann::json& records) {
                           if (!records.is_array()) return Status::Corruption("records");
                           for (nlohmann::json& row : records) {
                             stash.rows[i].push_back(std::move(row));
                           }
                           return Status::Ok();
                         })
                  .ok();
    }
    if (whole) {
      stash_ = std::move(stash);
      next_poll_ =
          now + std::max(pacer_.NextPollIn(Now()), opt_.events ? opt_.cross_check_seconds : 0.0);
    }
  }
  pacer_.Observe(client_, Now());
  return r;
}

Result<std::vector<RecordResult>> SfEndpoint::Delete(const std::string& object,
                                                     const std::vector<std::string>& ids) {
  DUPLEX_RETURN_IF_ERROR(WritesAllowed(object));
  Result<std::vector<RecordResult>> r = writer_.Delete(object, ids);
  pacer_.Observe(client_, Now());
  return r;
}

Result<std::vector<RecordResult>> SfEndpoint::Update(const std::string& object,
                                                     const std::vector<nlohmann::json>& records) {
  DUPLEX_RETURN_IF_ERROR(WritesAllowed(object));
  Result<std::vector<RecordResult>> r = writer_.Update(object, records);
  pacer_.Observe(client_, Now());
  return r;
}

Result<std::vector<std::pair<std::string, std::string>>> SfEndpoint::Lookup(
    const std::string& object, const std::string& field, const std::vector<std::string>& values,
    bool include_deleted) {
  std::vector<std::pair<std::string, std::string>> out;
  constexpr size_t kPerQuery = 200;
  for (size_t start = 0; start < values.size(); start += kPerQuery) {
    std::string list;
    for (size_t i = start; i < std::min(values.size(), start + kPerQuery); ++i) {
      // SOQL string literals: quote and backslash escaped.
      std::string v;
      for (char c : values[i]) {
        if (c == '\\' || c == '\'') v += '\\';
        v += c;
      }
      list += (list.empty() ? "'" : ", '") + v + "'";
    }
    Status st = client_.Query(
        "SELECT Id, " + opt_.external_id + " FROM " + object + " WHERE " + field + " IN (" + list +
            ")",
        include_deleted, [&](nlohmann::json& page) {
          for (const nlohmann::json& r : page) {
            const nlohmann::json& ext =
                r.contains(opt_.external_id) ? r[opt_.external_id] : nlohmann::json();
            out.emplace_back(r.value("Id", ""), ext.is_string() ? ext.get<std::string>() : "");
          }
          return Status::Ok();
        });
    pacer_.Observe(client_, Now());
    DUPLEX_RETURN_IF_ERROR(st);
  }
  return out;
}

Result<std::map<std::string, std::string>> SfEndpoint::IdsByExternalId(
    const std::string& object, const std::vector<std::string>& keys) {
  DUPLEX_ASSIGN_OR_RETURN(auto rows, Lookup(object, opt_.external_id, keys));
  std::map<std::string, std::string> out;
  // External ids match case-insensitively: key the answer by the caller's spelling.
  for (const std::string& k : keys) {
    for (const auto& [id, ext] : rows) {
      if (SameName(ext, k)) out[k] = id;
    }
  }
  return out;
}

Result<std::map<std::string, std::string>> SfEndpoint::ExternalIdsById(
    const std::string& object, const std::vector<std::string>& ids, bool include_deleted) {
  std::vector<std::string> full;
  for (const std::string& id : ids) {
    std::optional<std::string> n = NormalizeId(id);
    if (!n) {
      return Status::InvalidArgument(opt_.client.where + ": '" + id + "' is not a " + object +
                                     " id");
    }
    full.push_back(*n);
  }
  DUPLEX_ASSIGN_OR_RETURN(auto rows, Lookup(object, "Id", full, include_deleted));
  std::map<std::string, std::string> out;
  for (auto& [id, ext] : rows) out[id] = ext;
  return out;
}

const ObjectInfo* SfEndpoint::Describe(const std::string& object) const {
  for (const auto& [name, info] : described_) {
    if (SameName(name, object)) return &info;
  }
  return nullptr;
}

}  // namespace duplex::sf
