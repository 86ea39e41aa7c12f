#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/record_state.h"
#include "duplex/change.h"

namespace duplex {

// A collection as the resolver sees it: its config and the fields synced on every endpoint.
struct CollectionModel {
  const CollectionConfig* config = nullptr;
  std::vector<std::string> fields;     // synced non-key fields, canonical names
  std::vector<std::string> endpoints;  // the collection's endpoints, config order
};

// The key fields of `values` (a record's agreed values, or a row), as a key row.
Row KeyOf(const CollectionModel& model, const Row& values);

// A same-field (or delete-vs-update) conflict, as written to the conflict log (P4).
struct ConflictRecord {
  std::string collection;
  Row key;
  std::string key_text;
  std::string field;  // "" for a delete-vs-update conflict on the whole row
  // merge: the JSON Pointer of a path both sides changed ("/address/city"), logged under
  // FIELD + path; "" for the whole field.
  std::string path;
  std::string policy;  // lww, prefer, max, min, sum, union, merge, manual; "delete" / "keep"
                       // for row conflicts
  Value base;          // the value both sides started from (null if unknown)
  // endpoint -> {"value": v, "ts": commit ms}; a row conflict's deleted side has "deleted": true
  nlohmann::json values = nlohmann::json::object();
  std::string winner;  // the endpoint whose value won; "" while a manual conflict is open or
                       // when the values were merged
  bool open = false;   // manual: parked until an operator resolves it
  // sum, union, merge: both edits kept, nobody won: the merged value (base + each side's
  // delta, the base with what each side added and without what it removed, the document with
  // each side's paths). Logged with
  // status "merged", not as a conflict one side lost.
  bool merged = false;
  Value result;
};

// A later change to a field whose manual conflict is still open: the conflict's entry for
// that endpoint is updated, nothing propagates.
struct ConflictValueUpdate {
  std::string collection;
  std::string key_text;
  std::string field;
  std::string endpoint;
  Value value;
  double ts = 0;
};

// What planned writes carry, per endpoint: the apply id of the batch they go into, and the
// position in the endpoint's stream up to which its changes have been merged (RowOp::seen).
struct PlanContext {
  std::map<std::string, int64_t> apply_ids;
  std::map<std::string, Position> seen;
  // Per endpoint, the highest apply id its stream has shown a marker for (DESIGN §4): its
  // writes up to there are observed.
  std::map<std::string, int64_t> watermarks;
};

// What resolving some changes produced.
struct ResolveOutput {
  std::map<std::string, std::vector<RowOp>> writes;  // target endpoint -> row writes, in order
  // target endpoint -> indexes into writes[target] of writes taken back later in the same step
  // (RetractWrites): dropped when the step is stored. (Writes are only ever appended.)
  std::map<std::string, std::set<size_t>> taken_back;
  // Endpoints that must observe this step's apply id even with no row writes for them (an
  // empty batch: its marker), for a write that is a no-op there (a repeated delete).
  std::set<std::string> observe;
  std::vector<ConflictRecord> conflicts;
  std::vector<ConflictValueUpdate> conflict_updates;
  size_t changes = 0;  // row changes merged (markers excluded)
};

// Merges captured changes into record states and plans the writes that bring every endpoint
// to the agreed values (DESIGN §4). Pure and deterministic: no I/O, no clock.
//
// Causality, not clocks, decides what conflicts: a change from endpoint E to field f is
// concurrent only if duplex has a write of f (or of the row) to E that E had not observed
// when it made the change: its apply id is above E's watermark, the highest apply id whose
// marker precedes the change in E's stream. Everything else is a sequential edit and wins
// (P2). Concurrent different-field edits both survive (P3); same-field ones go to the field's
// policy, symmetric in its arguments (P4). Writes to endpoints are compare-and-set on the
// values duplex believes they hold, so a write never overwrites a local change it has not
// seen; that change then arrives in the stream and is resolved here.
class Resolver {
 public:
  explicit Resolver(std::vector<CollectionModel> collections);

  // The model of `collection`, or nullptr.
  const CollectionModel* Find(const std::string& collection) const;

  // Merges `change` (a row change, not a marker) captured from `endpoint`, whose watermark is
  // `watermark`, into `state`, and appends to `out` the writes every endpoint needs.
  // `ctx` says what the planned writes carry.
  void Merge(const Change& change, const std::string& endpoint, int64_t watermark,
             const PlanContext& ctx, RecordState& state, ResolveOutput& out) const;

  // A write of duplex's that `endpoint` rejected (compare-and-set): `change.after` is the row
  // it really held then. Corrects what duplex believes the endpoint holds and plans again.
  void Correct(const Change& change, const std::string& endpoint, const PlanContext& ctx,
               RecordState& state, ResolveOutput& out) const;

  // What `endpoint` holds of the record now, read back by a scan (Op::kPresent; `present.after`
  // null: no row), not an edit: what duplex believes the endpoint holds becomes it, the writes
  // to it duplex had not seen land are forgotten, and the writes that bring it to the agreed
  // values are planned for it alone. The agreed values do not change. For a record duplex has
  // seen (not Unknown).
  void Observe(const Change& present, const std::string& endpoint, const PlanContext& ctx,
               RecordState& state, ResolveOutput& out) const;
  // Values duplex wrote to `endpoint`, an endpoint without markers, showing there now
  // (Op::kEcho, made from the ledger; `echo.after` null: its delete, the row gone): those
  // writes up to `echo.apply_id` are observed, and what duplex believes the endpoint holds
  // becomes them. Nothing is edited; if the endpoint now holds other values than agreed (an
  // edit of its own was merged meanwhile), the writes that bring it back are planned for it.
  void Echo(const Change& echo, const std::string& endpoint, const PlanContext& ctx,
            RecordState& state, ResolveOutput& out) const;
  // Whether `state` is a record duplex has never seen (no values, no tombstone, no endpoint).
  static bool Unknown(const RecordState& state) {
    return !state.exists && state.deleted.origin.empty() && state.known.empty() &&
           state.versions.empty();
  }

  // An operator's resolution of a manual conflict on `field`: `value` becomes the agreed
  // value and is written to every endpoint that holds another.
  void ResolveManual(const std::string& collection, const std::string& field, const Value& value,
                     double now_ms, const PlanContext& ctx, RecordState& state,
                     ResolveOutput& out) const;

  // A delete against a new reference (DESIGN §4): a parent deleted on one endpoint while
  // another made a row refer to it, neither having seen the other's write. The engine finds
  // these (they span records); the parent's `on_delete_conflict` decides, and these carry it
  // out.

  // Whether `endpoint` has not yet observed duplex's latest write of the record itself (an
  // insert, a delete) or of one of `fields`: its changes since were made without seeing it.
  static bool Unobserved(const RecordState& state, const std::string& endpoint,
                         const std::vector<std::string>& fields, int64_t watermark);
  // Delete wins: the record (a child of the deleted parent, or a row referring to such a
  // child) is deleted with it, as of the parent's delete (`deleted`).
  void Cascade(const std::string& collection, const Version& deleted, const PlanContext& ctx,
               RecordState& state, ResolveOutput& out) const;
  // Keep: the deleted record (the parent, or a deleted record it refers to) comes back as its
  // tombstone kept it.
  void Revive(const std::string& collection, const PlanContext& ctx, RecordState& state,
              ResolveOutput& out) const;
  // Writes of duplex's to `endpoint` taken back before they landed (with the apply id each
  // was planned with, oldest first): the endpoint holds what it held before them.
  static void Retracted(const std::string& endpoint,
                        const std::vector<std::pair<int64_t, RowOp>>& writes, RecordState& state);
  // Plans the writes that bring every endpoint to the agreed values (after Retracted).
  void Replan(const std::string& collection, const PlanContext& ctx, RecordState& state,
              ResolveOutput& out) const;

 private:
  // Appends the writes that make every endpoint's known row equal the agreed one.
  // Only for endpoint `only` if given.
  void Plan(const CollectionModel& model, const PlanContext& ctx, RecordState& state,
            ResolveOutput& out, const std::string* only = nullptr) const;
  void MergeDelete(const CollectionModel& model, const Change& change, const std::string& endpoint,
                   int64_t watermark, RecordState& state, ResolveOutput& out) const;
  void MergeUpsert(const CollectionModel& model, const Change& change, const std::string& endpoint,
                   int64_t watermark, RecordState& state, ResolveOutput& out) const;

  std::map<std::string, CollectionModel> collections_;
};

}  // namespace duplex
