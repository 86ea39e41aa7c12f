// The resolver with the merge policy (JSON documents merged by path, core/json_merge.h): what
// each edit started from, what is logged, the nested policy on whole values, manual parking.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/policy.h"
#include "core/resolver.h"

namespace duplex {
namespace {

// Endpoints sharing collection "t" (key id, fields v and w), v with policy merge. The fixture
// plays the engine's part: it hands out apply ids and keeps each endpoint's watermark.
class MergePolicyTest : public ::testing::Test {
 protected:
  // The record is created on a with v = `doc` and delivered everywhere.
  void Build(const Value& doc, Policy nested = Policy::kLww,
             std::vector<std::string> endpoints = {"a", "b"}) {
    config_ = CollectionConfig{};
    config_.name = "t";
    config_.key = {"id"};
    FieldPolicy rule;
    rule.policy = Policy::kMerge;
    rule.merge_policy = nested;
    config_.field_policies["v"] = rule;
    CollectionModel m;
    m.config = &config_;
    m.fields = {"v", "w"};
    m.endpoints = endpoints;
    resolver_ = std::make_unique<Resolver>(std::vector<CollectionModel>{m});
    state_ = RecordState{};
    endpoints_ = endpoints;
    watermark_.clear();
    for (const std::string& ep : endpoints) watermark_[ep] = 0;
    next_id_ = 1;
    Change c;
    c.op = Op::kInsert;
    c.collection = "t";
    c.key = {{"id", 1}};
    c.after = {{"id", 1}, {"v", doc}, {"w", 1}};
    c.commit_ms = 100;
    Merge("a", c);
    for (const std::string& ep : endpoints_) watermark_[ep] = next_id_ - 1;
  }

  // An update of v from `before` (null: no before-image) to `after` at `ts`.
  static Change Edit(Value before, Value after, double ts) {
    Change c;
    c.op = Op::kUpdate;
    c.collection = "t";
    c.key = {{"id", 1}};
    if (!before.is_null()) c.before = {{"id", 1}, {"v", std::move(before)}, {"w", 1}};
    c.after = {{"id", 1}, {"v", std::move(after)}, {"w", 1}};
    c.commit_ms = ts;
    return c;
  }

  ResolveOutput Merge(const std::string& ep, const Change& c) {
    PlanContext ctx{{}, {}, watermark_};
    for (const std::string& e : endpoints_) ctx.apply_ids[e] = next_id_++;
    ResolveOutput out;
    resolver_->Merge(c, ep, watermark_[ep], ctx, state_, out);
    return out;
  }

  CollectionConfig config_;
  std::unique_ptr<Resolver> resolver_;
  RecordState state_;
  std::vector<std::string> endpoints_;
  std::map<std::string, int64_t> watermark_;
  int64_t next_id_ = 1;
};

class MergeOrderTest : public MergePolicyTest, public ::testing::WithParamInterface<bool> {};

TEST_P(MergeOrderTest, P4EditsAtDifferentPathsAllStandInEveryArrivalOrder) {
  const bool before_images = GetParam();
  // jsonb as the PostgreSQL connector hands it over: text.
  const Value base = R"({"name": "Ann", "phone": "1", "address": {"city": "Oslo"}})";
  Value before = before_images ? base : Value();
  std::vector<std::pair<std::string, Change>> edits = {
      {"a", Edit(before, R"({"name": "Ann", "phone": "2", "address": {"city": "Oslo"}})", 100)},
      {"b", Edit(before, R"({"name": "Ann", "phone": "1", "address": {"city": "Bergen"}})", 300)},
      {"c", Edit(before, R"({"name": "Bo", "phone": "1", "address": {"city": "Oslo"}})", 200)}};
  std::vector<int> order = {0, 1, 2};
  do {
    Build(base, Policy::kLww, {"a", "b", "c"});
    size_t merged = 0;
    for (int i : order) {
      ResolveOutput out = Merge(edits[i].first, edits[i].second);
      for (const ConflictRecord& c : out.conflicts) {
        EXPECT_TRUE(c.merged);
        EXPECT_EQ(c.policy, "merge");
        EXPECT_EQ(c.path, "");
        EXPECT_EQ(c.winner, "");
        EXPECT_EQ(c.base, base);
        EXPECT_EQ(c.result, state_.values["v"]);
        ++merged;
      }
    }
    const Value want = R"({"name": "Bo", "phone": "2", "address": {"city": "Bergen"}})";
    EXPECT_EQ(state_.values["v"], want) << order[0] << order[1] << order[2];
    EXPECT_EQ(merged, 2u);  // the first edit to arrive is sequential: nothing to merge
    for (const char* ep : {"a", "b", "c"}) EXPECT_EQ(state_.known[ep]["v"], want) << ep;
  } while (std::next_permutation(order.begin(), order.end()));
}

INSTANTIATE_TEST_SUITE_P(BeforeImages, MergeOrderTest, ::testing::Bool());

TEST_F(MergePolicyTest, ASequentialEditIsTakenAsWritten) {
  Build(R"({"a": 1})");
  ResolveOutput out = Merge("b", Edit(Value(), "{\"a\":2,  \"b\":3}", 200));
  EXPECT_TRUE(out.conflicts.empty());
  EXPECT_EQ(state_.values["v"], "{\"a\":2,  \"b\":3}");
}

TEST_F(MergePolicyTest, AnEditOfTheAgreedDocumentInAnotherFormIsSequential) {
  // SQLite hands a document over as a JSON value when a JSON function just wrote it, as text
  // otherwise: the edit started from the agreed document, nothing to merge or log.
  Build(Value::parse(R"({"a": 1, "b": 1})"));
  ResolveOutput out = Merge("b", Edit(R"({"b":1,"a":1})", R"({"a":1,"b":2})", 200));
  EXPECT_TRUE(out.conflicts.empty());
  EXPECT_EQ(state_.values["v"], R"({"a":1,"b":2})");
}

TEST_F(MergePolicyTest, SamePathConflictIsLoggedWithItsPath) {
  Build(R"({"phone": "1", "city": "Oslo", "zip": "0150"})");
  Merge("a", Edit(Value(), R"({"phone": "2", "city": "Oslo", "zip": "0150"})", 300));
  ResolveOutput out =
      Merge("b", Edit(Value(), R"({"phone": "3", "city": "Bergen", "zip": "0150"})", 200));
  // a's phone (later) and b's city.
  EXPECT_EQ(state_.values["v"], R"({"zip": "0150", "city": "Bergen", "phone": "2"})");
  ASSERT_EQ(out.conflicts.size(), 2u);
  const ConflictRecord& path = out.conflicts[0];
  EXPECT_EQ(path.field, "v");
  EXPECT_EQ(path.path, "/phone");
  EXPECT_EQ(path.policy, "merge");
  EXPECT_FALSE(path.merged);
  EXPECT_EQ(path.winner, "a");
  EXPECT_EQ(path.base, "1");
  EXPECT_EQ(path.values["a"]["value"], "2");
  EXPECT_EQ(path.values["b"]["value"], "3");
  const ConflictRecord& doc = out.conflicts[1];
  EXPECT_EQ(doc.path, "");
  EXPECT_TRUE(doc.merged);
  EXPECT_EQ(doc.result, state_.values["v"]);
  // The merged document counts as written when its later edit was (a's, 300), whatever
  // order the two arrived in.
  EXPECT_EQ(state_.versions["v"].ts, 300);
}

TEST_F(MergePolicyTest, WholeValuesThatAreNoDocumentsGoToTheNestedPolicy) {
  Build(R"({"a": 1})", Policy::kPrefer);
  config_.field_policies["v"].prefer_endpoint = "b";
  Merge("a", Edit(Value(), "[1, 2]", 300));
  ResolveOutput out = Merge("b", Edit(Value(), R"({"a": 2})", 200));
  ASSERT_EQ(out.conflicts.size(), 1u);
  EXPECT_FALSE(out.conflicts[0].merged);
  EXPECT_EQ(out.conflicts[0].policy, "merge");
  EXPECT_EQ(out.conflicts[0].winner, "b");  // preferred, although earlier
  EXPECT_EQ(state_.values["v"], R"({"a": 2})");
}

TEST_F(MergePolicyTest, ManualNestedPolicyParksTheField) {
  Build(R"({"x": 1, "y": 1})", Policy::kManual);
  // Different paths: merged, nothing parked.
  Merge("a", Edit(Value(), R"({"x": 2, "y": 1})", 300));
  ResolveOutput merged = Merge("b", Edit(Value(), R"({"x": 1, "y": 2})", 200));
  ASSERT_EQ(merged.conflicts.size(), 1u);
  EXPECT_TRUE(merged.conflicts[0].merged);
  EXPECT_TRUE(state_.diverged.empty());
  // The same path: parked until an operator decides.
  Build(R"({"x": 1, "y": 1})", Policy::kManual);
  Merge("a", Edit(Value(), R"({"x": 2, "y": 1})", 300));
  ResolveOutput parked = Merge("b", Edit(Value(), R"({"x": 3, "y": 1})", 200));
  ASSERT_EQ(parked.conflicts.size(), 1u);
  EXPECT_TRUE(parked.conflicts[0].open);
  EXPECT_EQ(parked.conflicts[0].field, "v");
  EXPECT_TRUE(state_.diverged.count("v"));
}

}  // namespace
}  // namespace duplex
