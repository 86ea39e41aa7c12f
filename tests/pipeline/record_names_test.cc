// The planner, the dead letters, the reference code and the state store's index of references
// name a record the same way (RecordKey, "collection\n" + the key values in key-field order as
// a JSON array): a dead letter parked for a record is found by the name the reference code and
// the planner give it. The parent's key is composite and its key-field order is not the fields'
// alphabetical order, where the key as a JSON object ({"num":7,"region":"eu"}) and the key
// text (["eu",7]) part most.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pipeline/dead_letters.h"
#include "pipeline/engine_state.h"
#include "pipeline/references.h"
#include "support/test_util.h"
#include "util/json_value.h"

namespace duplex {
namespace {

using testing::TempDir;

// "order" (key region, num) <- "line" (line.order_region, line.order_num), on endpoints a, b.
class RecordNamesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Config config;
    CollectionConfig order;
    order.name = "order";
    order.key = {"region", "num"};
    CollectionConfig line;
    line.name = "line";
    line.key = {"id"};
    config.collections = {order, line};
    auto store = StateStore::Open(dir_.File("state.db"), true);
    ASSERT_OK(store);
    es_ = std::make_unique<EngineState>(config, std::move(store).value(), nullptr);
    std::map<std::string, std::vector<std::string>> key_fields;
    for (const CollectionConfig& cc : es_->config.collections) {
      es_->models.push_back(CollectionModel{&cc, {}, {"a", "b"}});
      key_fields[cc.name] = cc.key;  // as the engine builds its planner (BindModel)
    }
    Reference r{"line", {"order_region", "order_num"}, "order", {"region", "num"}, {}};
    es_->planner = std::make_unique<Planner>(std::vector<Reference>{r}, key_fields);
    es_->endpoints.resize(1);
    es_->endpoints[0].name = "b";
  }

  static RowOp Op(WriteOp what, const std::string& collection, Row key, Row values) {
    RowOp op;
    op.op = what;
    op.collection = collection;
    op.key = std::move(key);
    op.values = std::move(values);
    return op;
  }

  TempDir dir_;
  std::unique_ptr<EngineState> es_;
};

TEST_F(RecordNamesTest, ADeadLetterIsFoundByTheNameTheReferenceCodeAndThePlannerGiveTheRecord) {
  const Row order_key = {{"region", "eu"}, {"num", 7}};
  const Row line = {{"id", 1}, {"order_region", "eu"}, {"order_num", 7}};
  const std::string order = "order\n[\"eu\",7]";

  // The reference code's name for the parent of a line (the index of references, CheckReferences).
  EXPECT_EQ(ParentRecords(*es_, "line", line), std::vector<std::string>{order});
  // The planner's names: for the record an op writes, and for the parent a line's op refers to.
  const RowOp insert_line = Op(WriteOp::kInsert, "line", Row{{"id", 1}}, line);
  const RowOp delete_order = Op(WriteOp::kDelete, "order", order_key, Row::object());
  EXPECT_EQ(es_->planner->RecordOf(delete_order), order);
  EXPECT_EQ(es_->planner->ParentsOf(insert_line, /*after=*/true), std::vector<std::string>{order});
  EXPECT_EQ(es_->planner->RecordOf(insert_line), "line\n[1]");
  EXPECT_EQ(RecordKeyOf("order", order_key, {"region", "num"}).ToString(), order);

  // b refused the order's delete: parked.
  auto id = es_->store->AddDeadLetter("b", ApplyBatch{5, {delete_order}}, "refused", 0, 0);
  ASSERT_OK(id);
  EndpointState& b = es_->endpoints[0];
  ASSERT_OK(LoadParked(*es_, b));
  EXPECT_EQ(b.parked, (std::map<std::string, int64_t>{{order, *id}}));
  // Found by the reference code's name for it (CheckReferences, ReplanWaiting, RetractWrites),
  auto parked = ParkedWrite(*es_, b, ParentRecords(*es_, "line", line)[0],
                            [](const RowOp& op) { return op.op == WriteOp::kDelete; });
  ASSERT_OK(parked);
  EXPECT_TRUE(*parked);
  auto other = ParkedWrite(*es_, b, "order\n[\"eu\",8]", [](const RowOp&) { return true; });
  ASSERT_OK(other);
  EXPECT_FALSE(*other);
  // and a line referring to the order waits for it (HoldDependents).
  const std::vector<RowOp> ops = {insert_line};
  EXPECT_EQ(ParkedDependency(*es_->planner, b.parked, ops), *id);
}

// The state store's index of references, rebuilt from the record states, names the line and
// its parent as the planner does; a record loaded by that name is the one saved under its key
// text.
TEST_F(RecordNamesTest, TheIndexOfReferencesAndRecordLoadingUseThePlannersNames) {
  const Row line = {{"id", 1}, {"order_region", "eu"}, {"order_num", 7}};
  RecordState state;
  state.exists = true;
  state.values = line;
  ASSERT_OK(es_->store->SaveRecord("line", KeyText(Row{{"id", 1}}, {"id"}), state));
  RecordState order_state;
  order_state.exists = true;
  order_state.values = {{"region", "eu"}, {"num", 7}};
  ASSERT_OK(es_->store->SaveRecord("order", "[\"eu\",7]", order_state));
  ASSERT_OK(es_->store->RebuildRefs("line(order_region,order_num,)->order;", {"line"},
                                    [&](const std::string& collection, const RecordState& s) {
                                      return ParentRecords(*es_, collection, s.values);
                                    }));
  const RowOp insert_line = Op(WriteOp::kInsert, "line", Row{{"id", 1}}, line);
  const std::string parent = es_->planner->ParentsOf(insert_line, /*after=*/true).at(0);
  auto children = es_->store->ChildrenOf(parent);
  ASSERT_OK(children);
  EXPECT_EQ(*children, std::vector<std::string>{es_->planner->RecordOf(insert_line)});

  RecordStates states;
  auto found = LoadRecord(*es_, states, parent);
  ASSERT_OK(found);
  ASSERT_NE(*found, nullptr);
  EXPECT_EQ((*found)->values, order_state.values);
  auto child = LoadRecord(*es_, states, children->at(0));
  ASSERT_OK(child);
  ASSERT_NE(*child, nullptr);
  EXPECT_EQ((*child)->values, line);
}

}  // namespace
}  // namespace duplex
