#include "store/codec.h"

#include "util/msgpack_writer.h"

namespace duplex {

namespace {

// A position as encoded (msgpack bin), or as state files before version 7 held it (an
// integer: Position::FromInt's number).
Position DecodePosition(const nlohmann::json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) return Position();
  if (it->is_binary()) {
    const auto& b = it->get_binary();
    return Position::FromBytes(std::string(b.begin(), b.end()));
  }
  if (it->is_number_integer()) return Position::FromInt(it->get<int64_t>());
  return Position();
}

}  // namespace

std::string EncodeChangeBatch(const ChangeBatch& batch) {
  MsgpackWriter w;
  w.MapHeader(2);
  w.String("e");
  w.Bin(batch.end.bytes());
  w.String("c");
  w.ArrayHeader(static_cast<uint32_t>(batch.changes.size()));
  for (const Change& c : batch.changes) {
    const char op[2] = {static_cast<char>(c.op), 0};
    if (c.op == Op::kMarker) {
      w.MapHeader(3);
      w.String("o");
      w.String(op);
      w.String("p");
      w.Bin(c.position.bytes());
      w.String("a");
      w.Int(c.apply_id);
      continue;
    }
    w.MapHeader(7 + (c.snapshot ? 1 : 0) + (c.txn != kUnknownTxn ? 1 : 0) +
                (c.apply_id != 0 ? 1 : 0));
    w.String("o");
    w.String(op);
    w.String("p");
    w.Bin(c.position.bytes());
    w.String("c");
    w.String(c.collection);
    w.String("k");
    w.Json(c.key);
    w.String("b");
    w.Json(c.before);
    w.String("n");
    w.Json(c.after);
    w.String("t");
    w.Double(c.commit_ms);
    if (c.snapshot) {
      w.String("s");
      w.Bool(true);
    }
    if (c.txn != kUnknownTxn) {
      w.String("x");
      w.Int(c.txn);
    }
    if (c.apply_id != 0) {  // kRejected, kEcho
      w.String("a");
      w.Int(c.apply_id);
    }
  }
  return w.Take();
}

Result<ChangeBatch> DecodeChangeBatch(std::string_view bytes) {
  nlohmann::json j = nlohmann::json::from_msgpack(bytes.begin(), bytes.end(), true, false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("journal entry undecodable");
  ChangeBatch batch;
  batch.end = DecodePosition(j, "e");
  nlohmann::json& changes = j["c"];
  batch.changes.reserve(changes.size());
  for (nlohmann::json& cj : changes) {
    Change c;
    c.op = static_cast<Op>(cj["o"].get_ref<const std::string&>()[0]);
    c.position = DecodePosition(cj, "p");
    if (c.op == Op::kMarker) {
      c.apply_id = cj.value("a", int64_t{0});
    } else {
      c.collection = cj["c"].get<std::string>();
      c.key = std::move(cj["k"]);
      c.before = std::move(cj["b"]);
      c.after = std::move(cj["n"]);
      c.commit_ms = cj.value("t", 0.0);
      c.snapshot = cj.value("s", false);
      c.txn = cj.value("x", int64_t{0});
      c.apply_id = cj.value("a", int64_t{0});
    }
    batch.changes.push_back(std::move(c));
  }
  return batch;
}

std::string EncodeApplyBatch(const ApplyBatch& batch) {
  MsgpackWriter w;
  w.MapHeader(2);
  w.String("i");
  w.Int(batch.id);
  w.String("ops");
  w.ArrayHeader(static_cast<uint32_t>(batch.ops.size()));
  for (const RowOp& op : batch.ops) {
    const char code[2] = {static_cast<char>(op.op), 0};
    const bool traced = op.source_commit_ms > 0;
    w.MapHeader((traced ? 8 : 6) + (op.txn != kUnknownTxn ? 1 : 0));
    w.String("o");
    w.String(code);
    w.String("s");
    w.Bin(op.seen.bytes());
    w.String("c");
    w.String(op.collection);
    w.String("k");
    w.Json(op.key);
    w.String("v");
    w.Json(op.values);
    w.String("x");
    w.Json(op.expected);
    if (traced) {
      w.String("f");
      w.String(op.source);
      w.String("t");
      w.Double(op.source_commit_ms);
    }
    if (op.txn != kUnknownTxn) {
      w.String("n");
      w.Int(op.txn);
    }
  }
  return w.Take();
}

Result<ApplyBatch> DecodeApplyBatch(std::string_view bytes) {
  nlohmann::json j = nlohmann::json::from_msgpack(bytes.begin(), bytes.end(), true, false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("outbox entry undecodable");
  ApplyBatch batch;
  batch.id = j.value("i", int64_t{0});
  for (nlohmann::json& oj : j["ops"]) {
    RowOp op;
    op.op = static_cast<WriteOp>(oj["o"].get_ref<const std::string&>()[0]);
    op.collection = oj["c"].get<std::string>();
    op.key = std::move(oj["k"]);
    op.values = std::move(oj["v"]);
    op.expected = std::move(oj["x"]);
    op.seen = DecodePosition(oj, "s");
    op.txn = oj.value("n", int64_t{0});
    if (oj.contains("t")) {
      op.source = oj.value("f", std::string());
      op.source_commit_ms = oj.value("t", 0.0);
    }
    batch.ops.push_back(std::move(op));
  }
  return batch;
}

}  // namespace duplex
