// The cross-record decision (docs/DESIGN.md §4 "A delete against a new reference"): a parent
// deleted on one endpoint while another endpoint made a row refer to it. Records and the index
// of references live in a map here, as the engine's lookup keeps them in the state store.
#include "core/reference_conflict.h"

#include <gtest/gtest.h>

#include <map>

namespace duplex {
namespace {

// Collections "customer" (key id) and "order" (key id, field customer referring to a
// customer), on endpoints "a" and "b". Record names are "collection\nkey text".
class ReferenceConflictTest : public ::testing::Test, public RecordLookup {
 protected:
  void SetUp() override { Build(/*delete_wins=*/true); }

  void Build(bool delete_wins) {
    customer_config_ = CollectionConfig{};
    customer_config_.name = "customer";
    customer_config_.key = {"id"};
    customer_config_.delete_wins = delete_wins;
    order_config_ = CollectionConfig{};
    order_config_.name = "order";
    order_config_.key = {"id"};
    customer_ = CollectionModel{&customer_config_, {"name", "parent"}, {"a", "b"}};
    order_ = CollectionModel{&order_config_, {"customer"}, {"a", "b"}};
  }

  // A live record with `values`, whose fields got their values from `origin` at `ts`.
  void Live(const std::string& record, Row values, const std::string& origin, double ts) {
    RecordState s;
    s.exists = true;
    for (const auto& [f, v] : values.items()) s.versions[f] = Version{ts, origin};
    s.values = std::move(values);
    records_[record] = std::move(s);
  }
  // A record deleted by `origin` at `ts`, that had `values`.
  void Deleted(const std::string& record, Row values, const std::string& origin, double ts) {
    RecordState s;
    s.exists = false;
    s.values = std::move(values);
    s.deleted = Version{ts, origin};
    records_[record] = std::move(s);
  }

  Result<const RecordState*> Find(const std::string& record) override {
    auto it = records_.find(record);
    const RecordState* found = it == records_.end() ? nullptr : &it->second;
    return found;
  }
  Result<std::vector<std::string>> ReferringTo(const std::string& record) override {
    std::vector<std::string> out;
    for (const auto& [name, s] : records_) {
      for (const std::string& p : ReferredBy(name.substr(0, name.find('\n')), s.values)) {
        if (p == record) out.push_back(name);
      }
    }
    return out;
  }
  // order.customer -> customer; customer.parent -> customer.
  std::vector<std::string> ReferredBy(const std::string& collection, const Row& values) override {
    const char* field = collection == "order" ? "customer" : "parent";
    if (!values.contains(field) || values[field].is_null()) return {};
    return {"customer\n" + values[field].dump()};
  }

  ReferenceConflict Conflict() const {
    return ReferenceConflict{"customer\n1", "order\n10", &customer_,  &order_,
                             "a",           "b",         {"customer"}};
  }

  CollectionConfig customer_config_, order_config_;
  CollectionModel customer_, order_;
  std::map<std::string, RecordState> records_;
};

TEST_F(ReferenceConflictTest, DeleteWinsCascadesToTheChildAndItsReferrers) {
  Deleted("customer\n1", {{"id", 1}, {"name", "x"}}, "a", 100);
  Live("order\n10", {{"id", 10}, {"customer", 1}}, "b", 90);
  Live("order\n11", {{"id", 11}, {"customer", 1}}, "a", 50);  // refers to the parent only
  Result<ReferenceDecision> d = DecideReference(Conflict(), *this);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_TRUE(d->cascade);
  EXPECT_EQ(d->deleted.origin, "a");
  EXPECT_EQ(d->deleted.ts, 100);
  EXPECT_EQ(d->settled, std::vector<std::string>{"order\n10"});
  const ConflictRecord& c = d->conflict;
  EXPECT_EQ(c.policy, "delete");
  EXPECT_EQ(c.collection, "order");
  EXPECT_EQ(c.key, Row({{"id", 10}}));
  EXPECT_EQ(c.key_text, "10");
  EXPECT_EQ(c.winner, "a");
  EXPECT_EQ(c.values["a"]["deleted"], true);
  EXPECT_EQ(c.values["a"]["record"], "customer 1");
  EXPECT_EQ(c.values["b"]["ts"], 90);
  EXPECT_EQ(c.values["b"]["record"], "order 10");
}

TEST_F(ReferenceConflictTest, KeepBringsBackTheParentAndTheDeletedRecordsItRefersTo) {
  Build(/*delete_wins=*/false);
  Deleted("customer\n1", {{"id", 1}, {"parent", 2}}, "a", 100);
  Deleted("customer\n2", {{"id", 2}, {"parent", 3}}, "a", 100);
  Live("customer\n3", {{"id", 3}}, "a", 10);  // live: not brought back, and not walked past
  Live("order\n10", {{"id", 10}, {"customer", 1}}, "b", 90);
  Result<ReferenceDecision> d = DecideReference(Conflict(), *this);
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->cascade);
  EXPECT_EQ(d->settled, (std::vector<std::string>{"customer\n1", "customer\n2"}));
  EXPECT_EQ(d->conflict.policy, "keep");
  EXPECT_EQ(d->conflict.collection, "customer");
  EXPECT_EQ(d->conflict.key_text, "1");
  EXPECT_EQ(d->conflict.winner, "b");
}

TEST_F(ReferenceConflictTest, CascadeReachesEveryDepthOnceAndSkipsDeletedReferrers) {
  // Customer 10 refers to itself, 20 to 10, 40 to 20 (depth 2); 30, deleted, to 10.
  Live("customer\n10", {{"id", 10}, {"parent", 10}}, "b", 80);
  Live("customer\n20", {{"id", 20}, {"parent", 10}}, "b", 80);
  Live("customer\n40", {{"id", 40}, {"parent", 20}}, "b", 80);
  Deleted("customer\n30", {{"id", 30}, {"parent", 10}}, "a", 80);
  Result<std::vector<std::string>> reached = Reach(*this, "customer\n10", /*down=*/true);
  ASSERT_TRUE(reached.ok());
  EXPECT_EQ(*reached, (std::vector<std::string>{"customer\n10", "customer\n20", "customer\n40"}));
}

TEST_F(ReferenceConflictTest, UpwardWalkStopsAtRecordsDeletedByNoEndpoint) {
  Deleted("customer\n1", {{"id", 1}, {"parent", 2}}, "a", 100);
  Deleted("customer\n2", {{"id", 2}}, "", 0);  // never deleted by an endpoint (unknown)
  Result<std::vector<std::string>> reached = Reach(*this, "customer\n1", /*down=*/false);
  ASSERT_TRUE(reached.ok());
  EXPECT_EQ(*reached, std::vector<std::string>{"customer\n1"});
}

TEST_F(ReferenceConflictTest, ReferenceVersionIsTheLatestOfTheFields) {
  RecordState s;
  s.versions["x"] = Version{5, "a"};
  s.versions["y"] = Version{7, "b"};
  s.versions["z"] = Version{9, "c"};
  EXPECT_EQ(ReferenceVersion(s, {"x", "y"}).origin, "b");
  EXPECT_EQ(ReferenceVersion(s, {}).origin, "");
}

}  // namespace
}  // namespace duplex
