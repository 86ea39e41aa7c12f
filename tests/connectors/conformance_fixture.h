// The connector conformance suite's fixture and helpers (conformance_test.cc,
// conformance_apply_test.cc). The endpoint's tables items and parts are bound under other names
// (collections goods and pieces, fields title/count/cost/payload/good), so that every change and
// write is checked to travel in canonical names, never the endpoint's.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "connectors/conformance_harness.h"
#include "support/pg_cluster.h"
#include "support/test_util.h"
#include "util/json_value.h"

namespace duplex::conformance {

// Writes planned after every application change captured so far: RowOp::seen rejects them only
// for a change not captured yet (the tests capture before they plan writes to existing rows).
inline const Position kSeenAll = Position::FromInt(int64_t{1} << 60);
inline const std::vector<std::pair<std::string, std::string>> kGoodsFields = {
    {"id", "id"}, {"title", "name"}, {"count", "qty"}, {"cost", "price"}, {"payload", "data"}};

// The same row in the endpoint's columns (items).
inline Row Item(const Row& good) {
  Row out = Row::object();
  for (const auto& [field, column] : kGoodsFields) out[column] = good.at(field);
  return out;
}

inline RowOp Write(WriteOp op, Row key, Row values, Row expected = Row::object(), int64_t txn = 0,
                   std::string collection = "goods") {
  RowOp w;
  w.op = op;
  w.collection = std::move(collection);
  w.key = std::move(key);
  w.values = std::move(values);
  w.expected = std::move(expected);
  w.seen = kSeenAll;
  w.txn = txn;
  return w;
}

inline bool IsRow(const Change& c) {
  return c.op == Op::kInsert || c.op == Op::kUpdate || c.op == Op::kDelete;
}
inline std::vector<int64_t> MarkersOf(const std::vector<Change>& changes) {
  std::vector<int64_t> out;
  for (const Change& c : changes) {
    if (c.op == Op::kMarker) out.push_back(c.apply_id);
  }
  return out;
}

// The kind a value travels as: what a round trip must keep.
inline std::string KindOf(const Value& v) {
  if (v.is_null()) return "null";
  if (v.is_number_integer()) return "integer";
  if (v.is_number_float()) return "real";
  if (v.is_string()) return "text";
  if (IsBlob(v)) return "blob";
  return "other: " + v.dump();
}
// Every field of `want` equal in `got` (as a database compares) and of the same kind.
inline void ExpectSameRow(const Row& want, const Row& got, const std::string& what) {
  ASSERT_TRUE(got.is_object()) << what << ": " << got.dump();
  EXPECT_EQ(got.size(), want.size()) << what << ": " << got.dump();
  for (const auto& item : want.items()) {
    Value have = got.contains(item.key()) ? got.at(item.key()) : Value("<missing>");
    EXPECT_TRUE(ValuesEqual(item.value(), have)) << what << ", field " << item.key() << ": want "
                                                 << item.value().dump() << ", got " << have.dump();
    EXPECT_EQ(KindOf(item.value()), KindOf(have)) << what << ", field " << item.key();
  }
}

class ConformanceTest
    : public ::duplex::testing::SharedPgCluster<::testing::TestWithParam<HarnessKind>> {
 protected:
  void SetUp() override {
    h_ = GetParam().make(cluster_);
    ASSERT_NO_FATAL_FAILURE(h_->Create());
    // A connector object only to read what it declares.
    caps_ = h_->Connect()->capabilities();
  }

  // The key value of record n (Harness::Id).
  Value Id(int64_t n) const { return h_->Id(n); }
  Row Key(int64_t n) const { return Row{{"id", Id(n)}}; }
  // A record of goods in field names.
  Row Good(int64_t n, Value title, Value count = nullptr, Value cost = nullptr,
           Value payload = nullptr) const {
    return Row{
        {"id", Id(n)}, {"title", title}, {"count", count}, {"cost", cost}, {"payload", payload}};
  }
  CollectionBinding Goods() const {
    CollectionBinding b{"goods", h_->Table("items"), {"id"}, {}, h_->MappedKeys(), {}};
    for (const auto& [field, column] : kGoodsFields)
      b.fields.emplace_back(field, h_->Column(column));
    return b;
  }
  CollectionBinding Pieces() const {
    CollectionBinding b{"pieces", h_->Table("parts"), {"id"}, {}, h_->MappedKeys(), {}};
    b.fields = {{"id", h_->Column("id")}, {"good", h_->Column("item_id")}};
    if (h_->MappedKeys()) b.mapped_refs = {{"good", "goods"}};
    return b;
  }

  // The records Settle writes on a sink without markers: never one a case writes.
  static constexpr int64_t kSettleBase = 900000;
  bool IsSettleRow(const Change& c) const {
    return c.key.is_object() && c.key.contains("id") &&
           CompareValues(c.key.at("id"), Id(kSettleBase)) >= 0;
  }
  // The row changes (not markers, rejections or Settle's records).
  std::vector<Change> RowsOf(const std::vector<Change>& changes) const {
    std::vector<Change> out;
    for (const Change& c : changes) {
      if (IsRow(c) && !IsSettleRow(c)) out.push_back(c);
    }
    return out;
  }

  // A new connector on the endpoint (a restarted process): opened, bound to goods and pieces,
  // and installed unless `install` is false.
  std::unique_ptr<Connector> Open(bool install = true) {
    std::unique_ptr<Connector> c = h_->Connect();
    EXPECT_OK(c->Open());
    EXPECT_OK(c->Bind({Goods(), Pieces()}));
    if (install) EXPECT_OK(c->Install());
    return c;
  }

  // Polls and captures after *from (which moves to each batch's end) until `done` holds for
  // what arrived, or 20 s. Changes at or before the position asked for are dropped, as the engine
  // drops them (README: redelivery after a reconnect is safe). Checks the stream's order rules.
  std::vector<Change> CaptureUntil(Connector& c, Position* from,
                                   const std::function<bool(const std::vector<Change>&)>& done) {
    std::vector<Change> out;
    Position last = *from;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!done(out) && std::chrono::steady_clock::now() < deadline) {
      EXPECT_OK(c.Poll());
      Result<ChangeBatch> batch = c.Capture(*from, 1000);
      EXPECT_OK(batch);
      if (!batch.ok()) break;
      for (Change& ch : batch->changes) {
        if (ch.position <= *from) continue;
        EXPECT_GE(ch.position, last) << "positions only grow";
        EXPECT_LE(ch.position, batch->end) << "a batch ends at or after its last change";
        last = ch.position;
        out.push_back(std::move(ch));
      }
      EXPECT_GE(batch->end, *from);
      *from = std::max(*from, batch->end);
      if (!done(out)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(done(out)) << "capture timed out after " << out.size() << " changes";
    return out;
  }
  // Captures until `n` row changes (not markers) arrived; returns every change.
  std::vector<Change> CaptureRows(Connector& c, Position* from, size_t n) {
    return CaptureUntil(
        c, from, [this, n](const std::vector<Change>& got) { return RowsOf(got).size() >= n; });
  }
  // Captures until the marker of apply `id` arrived; returns every change.
  std::vector<Change> CaptureToMarker(Connector& c, Position* from, int64_t id) {
    return CaptureUntil(c, from, [id](const std::vector<Change>& got) {
      for (const Change& ch : got) {
        if (ch.op == Op::kMarker && ch.apply_id >= id) return true;
      }
      return false;
    });
  }
  // Afterwards, everything committed before has arrived; returns the changes before that
  // point. With markers: applies the empty batch `id` and captures up to its marker. Without
  // (Capabilities::markers false: duplex's own writes come back as row changes): writes a
  // record of its own (key kSettleBase + id) and captures until it came back.
  std::vector<Change> Settle(Connector& c, Position* from, int64_t id) {
    if (!caps_.markers) {
      const Row key = Key(kSettleBase + id);
      Result<ApplyResult> r = c.Apply(
          {ApplyBatch{id, {Write(WriteOp::kInsert, key, Good(kSettleBase + id, "settle"))}}});
      EXPECT_OK(r);
      std::vector<Change> got = CaptureUntil(c, from, [&key](const std::vector<Change>& sofar) {
        for (const Change& ch : sofar) {
          if (ch.key == key) return true;
        }
        return false;
      });
      auto it =
          std::find_if(got.begin(), got.end(), [&key](const Change& ch) { return ch.key == key; });
      got.erase(it, got.end());
      return got;
    }
    Result<ApplyResult> r = c.Apply({ApplyBatch{id, {}}});
    EXPECT_OK(r);
    std::vector<Change> got = CaptureToMarker(c, from, id);
    if (!got.empty() && got.back().op == Op::kMarker) got.pop_back();
    return got;
  }

  std::unique_ptr<Harness> h_;
  Capabilities caps_;
};

}  // namespace duplex::conformance
