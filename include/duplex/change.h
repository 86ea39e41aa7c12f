#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "duplex/ids.h"

namespace duplex {

// A field value as it travels through duplex: JSON null, integer, float, string, or
// {"$blob": "<HEX>"} for binary data (SQLite BLOB, later PostgreSQL bytea).
using Value = nlohmann::json;
// A row image: a JSON object from canonical field name (the collection's name for the field,
// not the endpoint's column name) to Value. Null when there is no image.
using Row = nlohmann::json;

enum class Op : char {
  kInsert = 'I',
  kUpdate = 'U',
  kDelete = 'D',
  // A transaction written by duplex itself: its apply id tells the resolver which of duplex's
  // writes this endpoint has now observed (the causal marker of DESIGN §4). Carries no row.
  kMarker = 'M',
  // One of duplex's writes that this endpoint's compare-and-set rejected (a local change it had
  // not seen got there first). `after` is the row as it really was at that moment (null: no
  // row), `key` its key, `apply_id` the batch. Comes before that batch's marker. The resolver
  // corrects what it believes the endpoint holds and plans the write again.
  kRejected = 'R',
  // What the endpoint holds now, read by a scan (Connector::Scan), not an edit: `after` is the
  // row (null: the endpoint holds none). The resolver takes it as the truth about that
  // endpoint's row and plans the writes that bring it to the agreed values; the agreed values
  // do not change. Used to bring back an endpoint restored from a backup (docs/DESIGN.md §6).
  kPresent = 'P',
  // Made by the engine, never by a connector: an endpoint without markers
  // (Capabilities::markers) showed values duplex wrote there, as its ledger recorded them
  // (docs/DESIGN.md §3.4). `after` holds those fields (and the key), or is null when the
  // write was a delete and the row is gone; `apply_id` is the latest apply they come from.
  // The endpoint has observed those writes; it is no edit.
  kEcho = 'E',
  // Every row of `collection` removed from the endpoint at once (PostgreSQL's TRUNCATE): no
  // key, no images. The engine resolves it as a delete of every record the endpoint holds, at
  // this change's position and in its transaction (docs/DESIGN.md §4, "Truncate").
  kTruncate = 'T',
};

// One committed row change captured from an endpoint, in canonical names.
struct Change {
  Op op = Op::kInsert;
  std::string collection;  // canonical collection name; empty for markers
  Row key;                 // object: key field -> value
  Row before;              // before image where the source has one (else null)
  Row after;               // after image (null for deletes)
  double commit_ms = 0;    // source commit time, ms since the Unix epoch; 0 when unknown
  bool snapshot = false;   // read by the initial load, not by a trigger
  Position position;       // this change's position in the source stream
  ApplyId apply_id = 0;    // kMarker, kRejected: id of duplex's apply batch
  // The source transaction: changes of one batch with the same `txn` were committed together
  // (PostgreSQL: the xid). kUnknownTxn when the source cannot tell: the whole batch is then
  // treated as one transaction.
  TxnId txn = kUnknownTxn;
};

// Changes in commit order. Whole source transactions, except that a transaction larger than
// the capture limit (or a backlog whose boundaries the source cannot tell) is cut at the limit.
struct ChangeBatch {
  std::vector<Change> changes;
  Position end;  // resume position after this batch (the last change's position)
};

// What a RowOp writes.
enum class WriteOp : char {
  kInsert = 'I',  // the row must be absent
  kUpdate = 'U',  // set `values`; the row must hold `expected`
  kDelete = 'D',  // the row must hold `expected`
};

// One conditional row write (compare-and-set). It applies only if the target row is as duplex
// believes it is; otherwise it is rejected, changes nothing, and the endpoint's own concurrent
// change, which must then be in its stream, is resolved when it arrives.
struct RowOp {
  WriteOp op = WriteOp::kUpdate;
  std::string collection;  // canonical collection name
  Row key;                 // key field -> value
  Row values;              // kInsert: every synced field; kUpdate: the fields to set
  Row expected;            // field -> value the target must hold now (may be empty)
  // The target's stream position up to which the resolver had merged the target's own changes
  // when it planned this write. If the application changed the row after it, the write was
  // planned without seeing that change and is rejected (no value comparison can tell an edit
  // that was changed back).
  Position seen;
  // For the sync latency metric only: the endpoint whose change caused this write and that
  // change's commit time (empty and 0 for the initial load and operator decisions).
  std::string source{};
  double source_commit_ms = 0;
  // The unit of atomicity inside a batch (P7): the ops of one ApplyBatch with the same `txn`
  // come from one source transaction and apply together or not at all (Change::txn).
  TxnId txn = kUnknownTxn;
};

// The writes of one planned batch for one endpoint. `id` is the outbox id: it grows, is unique
// across all endpoints, and is recorded in the target's own transaction.
struct ApplyBatch {
  ApplyId id = 0;
  std::vector<RowOp> ops;
};

// The end of the unit that starts at ops[begin]: the ops after it with the same RowOp::txn
// (one source transaction's ops are contiguous in a batch).
inline size_t TxnEnd(const std::vector<RowOp>& ops, size_t begin) {
  size_t end = begin + 1;
  while (end < ops.size() && ops[end].txn == ops[begin].txn) ++end;
  return end;
}

// A source transaction the target refused (constraint, type), applied with isolate_txns: every
// op of batch `batch_id` with RowOp::txn == `txn` (kWholeBatch: the whole batch), none of which
// was written.
struct FailedOp {
  ApplyId batch_id = 0;
  TxnId txn = kUnknownTxn;
  std::vector<RowOp> ops;
  std::string reason;  // the target's message, naming the table and key at fault
};

// A write that found nothing to do: an update or a delete of a row that is not there (deleted
// on the endpoint meanwhile, or by an earlier attempt of the same batch). Nothing of it shows
// in the endpoint's capture.
struct NoEffect {
  ApplyId batch_id = 0;
  RowOp op;
};

struct ApplyResult {
  size_t applied = 0;   // row writes that took effect
  size_t rejected = 0;  // row writes whose compare-and-set failed (a concurrent local change)
  size_t skipped_batches = 0;    // batches already applied before (replay after a crash)
  std::vector<FailedOp> failed;  // isolate_txns only: refused transactions, rolled back
  // Sinks without markers report their writes that found nothing to do, so that the engine's
  // ledger does not wait for an echo that never comes: another writer's delete of the row
  // would pass for duplex's (docs/DESIGN.md §3.4).
  std::vector<NoEffect> no_effect;
};

}  // namespace duplex
