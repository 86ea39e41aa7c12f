#include "core/resolver.h"

#include <gtest/gtest.h>

#include "core/policy.h"

namespace duplex {
namespace {

// Two endpoints "a" and "b" sharing collection "t" (key id, fields v and w). The fixture plays
// the engine's part: it hands out apply ids and keeps each endpoint's watermark.
class ResolverTest : public ::testing::Test {
 protected:
  void SetUp() override { Build(Policy::kLww); }

  void Build(Policy policy, std::string prefer = "", bool delete_wins = true,
             std::vector<std::string> endpoints = {"a", "b"}) {
    config_ = CollectionConfig{};
    config_.name = "t";
    config_.key = {"id"};
    config_.default_policy = FieldPolicy{policy, prefer, ""};
    config_.delete_wins = delete_wins;
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
  }

  static Change Upsert(Op op, Row before, Row after, double ts) {
    Change c;
    c.op = op;
    c.collection = "t";
    c.key = {{"id", 1}};
    c.before = std::move(before);
    c.after = std::move(after);
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

  // The endpoint has applied and observed every write planned so far.
  void Observe(const std::string& ep) { watermark_[ep] = next_id_ - 1; }

  // Record created on a, delivered to the others, all observed: the agreed row is {v: 1, w: 1}.
  void Converged() {
    Merge("a", Upsert(Op::kInsert, nullptr, {{"id", 1}, {"v", 1}, {"w", 1}}, 100));
    for (const std::string& ep : endpoints_) Observe(ep);
  }

  static Change Delete(double ts) {
    Change c;
    c.op = Op::kDelete;
    c.collection = "t";
    c.key = {{"id", 1}};
    c.commit_ms = ts;
    return c;
  }

  // The agreed row, or null if the record is deleted.
  Row Agreed() const { return state_.exists ? state_.values : Row(); }

  CollectionConfig config_;
  std::unique_ptr<Resolver> resolver_;
  RecordState state_;
  std::vector<std::string> endpoints_ = {"a", "b"};
  std::map<std::string, int64_t> watermark_;
  int64_t next_id_ = 1;
};

TEST_F(ResolverTest, InsertIsPlannedForTheOtherEndpoint) {
  ResolveOutput out = Merge("a", Upsert(Op::kInsert, nullptr, {{"id", 1}, {"v", 1}, {"w", 2}}, 1));
  ASSERT_EQ(out.writes["b"].size(), 1u);
  EXPECT_EQ(out.writes["b"][0].op, WriteOp::kInsert);
  EXPECT_EQ(out.writes["b"][0].values["w"], 2);
  EXPECT_TRUE(out.writes["a"].empty());
  EXPECT_TRUE(out.conflicts.empty());
}

TEST_F(ResolverTest, UpdateIsCompareAndSetOnTheTargetsValue) {
  Converged();
  ResolveOutput out = Merge("a", Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}},
                                        {{"id", 1}, {"v", 5}, {"w", 1}}, 200));
  ASSERT_EQ(out.writes["b"].size(), 1u);
  const RowOp& op = out.writes["b"][0];
  EXPECT_EQ(op.op, WriteOp::kUpdate);
  EXPECT_EQ(op.values, Row({{"v", 5}}));
  EXPECT_EQ(op.expected, Row({{"v", 1}}));
}

TEST_F(ResolverTest, P2SequentialUpdateBeatsNewerClockOfOlderValue) {
  Converged();
  // b's clock is far ahead: its update is stamped later than a's.
  Merge("b", Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}}, {{"id", 1}, {"v", 2}, {"w", 1}},
                    1e12));
  Observe("a");  // a received v=2, then edits it: sequential, a wins whatever the clocks say.
  ResolveOutput out = Merge("a", Upsert(Op::kUpdate, {{"id", 1}, {"v", 2}, {"w", 1}},
                                        {{"id", 1}, {"v", 3}, {"w", 1}}, 500));
  EXPECT_TRUE(out.conflicts.empty());
  EXPECT_EQ(state_.values["v"], 3);
}

TEST_F(ResolverTest, P3ConcurrentUpdatesOfDifferentFieldsBothSurvive) {
  Converged();
  ResolveOutput o1 = Merge("a", Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}},
                                       {{"id", 1}, {"v", 7}, {"w", 1}}, 200));
  ResolveOutput o2 = Merge("b", Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}},
                                       {{"id", 1}, {"v", 1}, {"w", 8}}, 201));
  EXPECT_TRUE(o1.conflicts.empty());
  EXPECT_TRUE(o2.conflicts.empty());
  EXPECT_EQ(state_.values["v"], 7);
  EXPECT_EQ(state_.values["w"], 8);
  ASSERT_EQ(o2.writes["a"].size(), 1u);
  EXPECT_EQ(o2.writes["a"][0].values, Row({{"w", 8}}));
}

// PostgreSQL with the default replica identity sends updates without a before-image: b's
// change of w still carries the v it held before duplex's unobserved write of a's v.
TEST_F(ResolverTest, P3WithoutBeforeImagesTheUnchangedOldValueIsNotAConflict) {
  Converged();
  ResolveOutput o1 = Merge("a", Upsert(Op::kUpdate, nullptr, {{"id", 1}, {"v", 7}, {"w", 1}}, 200));
  ASSERT_EQ(o1.writes["b"].size(), 1u);
  ResolveOutput o2 = Merge("b", Upsert(Op::kUpdate, nullptr, {{"id", 1}, {"v", 1}, {"w", 8}}, 201));
  EXPECT_TRUE(o2.conflicts.empty());
  EXPECT_EQ(state_.values["v"], 7);
  EXPECT_EQ(state_.values["w"], 8);
  // b's write of v was planned without seeing b's change: planned again, with w to a.
  ASSERT_EQ(o2.writes["b"].size(), 1u);
  EXPECT_EQ(o2.writes["b"][0].values, Row({{"v", 7}}));
  ASSERT_EQ(o2.writes["a"].size(), 1u);
  EXPECT_EQ(o2.writes["a"][0].values, Row({{"w", 8}}));
}

// Runs a same-field conflict (a writes v=a_value at a_ts, b writes v=b_value at b_ts,
// concurrently) in the given order and returns the agreed value.
struct Outcome {
  Value value;
  std::vector<ConflictRecord> conflicts;
};

class PolicyOrderTest : public ResolverTest,
                        public ::testing::WithParamInterface<std::tuple<Policy, bool>> {};

TEST_P(PolicyOrderTest, P4SameFieldConflictOutcomeIndependentOfArrivalOrder) {
  auto [policy, a_first] = GetParam();
  auto run = [&](bool a_goes_first) {
    Build(policy, "b");
    Converged();
    Change ca =
        Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}}, {{"id", 1}, {"v", 50}, {"w", 1}}, 300);
    Change cb =
        Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}}, {{"id", 1}, {"v", 20}, {"w", 1}}, 400);
    std::vector<ConflictRecord> conflicts;
    if (a_goes_first) {
      Merge("a", ca);
      conflicts = Merge("b", cb).conflicts;
    } else {
      Merge("b", cb);
      conflicts = Merge("a", ca).conflicts;
    }
    return Outcome{state_.values["v"], conflicts};
  };
  Outcome first = run(a_first);
  Outcome second = run(!a_first);
  EXPECT_EQ(first.value, second.value);
  ASSERT_EQ(first.conflicts.size(), 1u);
  EXPECT_EQ(first.conflicts[0].winner, second.conflicts[0].winner);
  EXPECT_EQ(first.conflicts[0].field, "v");
  Value expected = policy == Policy::kLww      ? Value(20)  // b is later
                   : policy == Policy::kPrefer ? Value(20)  // b preferred
                   : policy == Policy::kMax    ? Value(50)
                                               : Value(20);  // min
  EXPECT_EQ(first.value, expected);
}

INSTANTIATE_TEST_SUITE_P(Policies, PolicyOrderTest,
                         ::testing::Combine(::testing::Values(Policy::kLww, Policy::kPrefer,
                                                              Policy::kMax, Policy::kMin),
                                            ::testing::Bool()));

TEST_F(ResolverTest, P2EndpointsOwnLaterEditIsSequentialEvenUnderMax) {
  Build(Policy::kMax);
  Converged();
  // a raises v to 50; b, not having seen it, sets 60 (concurrent: max keeps 60, b's), then
  // lowers its own value to 10. That edit follows b's own 60 in b's stream: b's intent wins.
  Merge("a", Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}}, {{"id", 1}, {"v", 50}, {"w", 1}},
                    300));
  ResolveOutput o1 = Merge("b", Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}},
                                       {{"id", 1}, {"v", 60}, {"w", 1}}, 310));
  ASSERT_EQ(o1.conflicts.size(), 1u);
  EXPECT_EQ(state_.values["v"], 60);
  ResolveOutput o2 = Merge("b", Upsert(Op::kUpdate, {{"id", 1}, {"v", 60}, {"w", 1}},
                                       {{"id", 1}, {"v", 10}, {"w", 1}}, 320));
  EXPECT_TRUE(o2.conflicts.empty());
  EXPECT_EQ(state_.values["v"], 10);
}

TEST_F(ResolverTest, WritesCarryTheTargetsSeenPosition) {
  Converged();
  PlanContext ctx{
      {{"a", 50}, {"b", 51}}, {{"a", Position::FromInt(7)}, {"b", Position::FromInt(9)}}, {}};
  Change c =
      Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}}, {{"id", 1}, {"v", 2}, {"w", 1}}, 400);
  ResolveOutput out;
  resolver_->Merge(c, "a", watermark_["a"], ctx, state_, out);
  ASSERT_EQ(out.writes["b"].size(), 1u);
  EXPECT_EQ(out.writes["b"][0].seen,
            Position::FromInt(9));  // b's stream merged up to 9 when this was planned
  EXPECT_EQ(state_.pending["b"]["v"], 51);
}

TEST_F(ResolverTest, RejectedWriteCorrectsWhatTheEndpointHoldsAndPlansAgain) {
  Converged();
  Merge("a",
        Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}}, {{"id", 1}, {"v", 2}, {"w", 1}}, 400));
  Change rejected;
  rejected.op = Op::kRejected;
  rejected.collection = "t";
  rejected.key = {{"id", 1}};
  rejected.after = {{"id", 1}, {"v", 1}, {"w", 9}};  // b really holds w = 9
  ResolveOutput out;
  resolver_->Correct(rejected, "b", PlanContext{{{"a", 60}, {"b", 61}}, {}, {}}, state_, out);
  ASSERT_EQ(out.writes["b"].size(), 1u);
  EXPECT_EQ(out.writes["b"][0].values, Row({{"v", 2}, {"w", 1}}));
  EXPECT_EQ(out.writes["b"][0].expected, Row({{"v", 1}, {"w", 9}}));
}

TEST_F(ResolverTest, LwwTieGoesToTheSmallerEndpointName) {
  FieldPolicy lww{Policy::kLww, "", ""};
  Candidate a{1, Version{10, "a"}}, b{2, Version{10, "b"}};
  EXPECT_TRUE(IncomingWins(lww, b, a));
  EXPECT_FALSE(IncomingWins(lww, a, b));
}

TEST_F(ResolverTest, ManualConflictParksAndWritesNothingForTheField) {
  Build(Policy::kManual);
  Converged();
  Merge("a",
        Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}}, {{"id", 1}, {"v", 5}, {"w", 1}}, 300));
  ResolveOutput out = Merge("b", Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}},
                                        {{"id", 1}, {"v", 6}, {"w", 1}}, 400));
  ASSERT_EQ(out.conflicts.size(), 1u);
  EXPECT_TRUE(out.conflicts[0].open);
  EXPECT_TRUE(state_.diverged.count("v"));
  for (const auto& [ep, ops] : out.writes) {
    for (const RowOp& op : ops) EXPECT_FALSE(op.values.contains("v")) << ep;
  }
  // The operator takes b's value: a gets it, compare-and-set on a's own value.
  Observe("a");
  Observe("b");
  ResolveOutput res;
  resolver_->ResolveManual("t", "v", 6, 500, PlanContext{{{"a", 90}, {"b", 91}}, {}, {}}, state_,
                           res);
  ASSERT_EQ(res.writes["a"].size(), 1u);
  EXPECT_EQ(res.writes["a"][0].values, Row({{"v", 6}}));
  EXPECT_EQ(res.writes["a"][0].expected, Row({{"v", 5}}));
  EXPECT_TRUE(res.writes["b"].empty());
}

TEST_F(ResolverTest, DeleteConcurrentWithUpdateDeleteWinsAndIsLogged) {
  Converged();
  Merge("a",
        Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}}, {{"id", 1}, {"v", 9}, {"w", 1}}, 300));
  Change del;
  del.op = Op::kDelete;
  del.collection = "t";
  del.key = {{"id", 1}};
  del.before = {{"id", 1}, {"v", 1}, {"w", 1}};
  del.commit_ms = 310;
  ResolveOutput out = Merge("b", del);
  ASSERT_EQ(out.conflicts.size(), 1u);
  EXPECT_EQ(out.conflicts[0].policy, "delete");
  EXPECT_FALSE(state_.exists);
  ASSERT_EQ(out.writes["a"].size(), 1u);
  EXPECT_EQ(out.writes["a"][0].op, WriteOp::kDelete);
}

TEST_F(ResolverTest, DeleteConcurrentWithUpdateKeepRestoresTheRecord) {
  Build(Policy::kLww, "", /*delete_wins=*/false);
  Converged();
  Merge("a",
        Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}}, {{"id", 1}, {"v", 9}, {"w", 1}}, 300));
  Change del;
  del.op = Op::kDelete;
  del.collection = "t";
  del.key = {{"id", 1}};
  del.commit_ms = 310;
  ResolveOutput out = Merge("b", del);
  ASSERT_EQ(out.conflicts.size(), 1u);
  EXPECT_EQ(out.conflicts[0].policy, "keep");
  EXPECT_TRUE(state_.exists);
  ASSERT_EQ(out.writes["b"].size(), 1u);
  EXPECT_EQ(out.writes["b"][0].op, WriteOp::kInsert);
  EXPECT_EQ(out.writes["b"][0].values["v"], 9);
}

TEST_F(ResolverTest, SequentialDeleteLeavesTombstoneAndLateInsertAfterItIsNew) {
  Converged();
  Change del;
  del.op = Op::kDelete;
  del.collection = "t";
  del.key = {{"id", 1}};
  ResolveOutput out = Merge("a", del);
  EXPECT_TRUE(out.conflicts.empty());
  EXPECT_FALSE(state_.exists);
  ASSERT_EQ(out.writes["b"].size(), 1u);
  EXPECT_EQ(out.writes["b"][0].expected, Row({{"v", 1}, {"w", 1}}));
  // b, before observing the delete, updates the row: a conflict, delete wins, b deletes again.
  ResolveOutput late = Merge("b", Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}},
                                         {{"id", 1}, {"v", 4}, {"w", 1}}, 999));
  ASSERT_EQ(late.conflicts.size(), 1u);
  EXPECT_FALSE(state_.exists);
  ASSERT_EQ(late.writes["b"].size(), 1u);
  EXPECT_EQ(late.writes["b"][0].op, WriteOp::kDelete);
}

TEST_F(ResolverTest, ConcurrentInsertsOfOneKeyMergeFieldByField) {
  Merge("a", Upsert(Op::kInsert, nullptr, {{"id", 1}, {"v", 1}, {"w", 1}}, 100));
  ResolveOutput out =
      Merge("b", Upsert(Op::kInsert, nullptr, {{"id", 1}, {"v", 1}, {"w", 2}}, 200));
  ASSERT_EQ(out.conflicts.size(), 1u);
  EXPECT_EQ(out.conflicts[0].field, "w");
  EXPECT_EQ(state_.values["w"], 2);  // lww: b later
  ASSERT_EQ(out.writes["a"].size(), 1u);
  EXPECT_EQ(out.writes["a"][0].values, Row({{"w", 2}}));
}

// on_delete_conflict = "keep": c deletes the row while a updates v and b updates w, all
// concurrently. Whatever the arrival order, both updates survive (P3) and the record stays:
// the update that brings the record back is one field change, not a new record every field
// of which is its endpoint's (sim seed 1126, --keep 1).
TEST_F(ResolverTest, KeepDeleteConflictKeepsConcurrentUpdatesOfOtherFields) {
  const Change del = Delete(300);
  const Change ua = Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}},
                           {{"id", 1}, {"v", 7}, {"w", 1}}, 500);  // a's clock is later
  const Change ub =
      Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}}, {{"id", 1}, {"v", 1}, {"w", 8}}, 200);
  const std::vector<std::vector<int>> orders = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                                {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
  for (const std::vector<int>& order : orders) {
    Build(Policy::kLww, "", /*delete_wins=*/false, {"a", "b", "c"});
    Converged();
    size_t field_conflicts = 0;
    for (int i : order) {
      ResolveOutput out = i == 0 ? Merge("c", del) : i == 1 ? Merge("a", ua) : Merge("b", ub);
      for (const ConflictRecord& c : out.conflicts) field_conflicts += c.field.empty() ? 0 : 1;
    }
    const std::string name =
        std::to_string(order[0]) + std::to_string(order[1]) + std::to_string(order[2]);
    EXPECT_EQ(Agreed(), Row({{"id", 1}, {"v", 7}, {"w", 8}})) << name;
    EXPECT_EQ(field_conflicts, 0u) << name;
  }
}

// The same without before-images (PostgreSQL's default replica identity): b's update carries
// the v it held, which the delete and the re-insert planned for b have not replaced yet.
TEST_F(ResolverTest, KeepDeleteConflictWithoutBeforeImagesKeepsBothUpdates) {
  Build(Policy::kLww, "", /*delete_wins=*/false, {"a", "b", "c"});
  Converged();
  Merge("c", Delete(300));
  Merge("a", Upsert(Op::kUpdate, nullptr, {{"id", 1}, {"v", 7}, {"w", 1}}, 500));
  Merge("b", Upsert(Op::kUpdate, nullptr, {{"id", 1}, {"v", 1}, {"w", 8}}, 200));
  EXPECT_EQ(Agreed(), Row({{"id", 1}, {"v", 7}, {"w", 8}}));
}

// Without a before-image, what an endpoint started from while a delete it has not observed is
// on its way is the row it held when that delete was planned, including duplex's writes it
// had observed by then (sim seed 201, --keep 1): b got a's w = 5, then c deleted, a set w = 9
// (bringing the record back) and b, having seen neither, set w = 7: concurrent with a's 9.
TEST_F(ResolverTest, KeepWithoutBeforeImageStartsFromTheRowHeldWhenTheDeleteWasPlanned) {
  Build(Policy::kLww, "", /*delete_wins=*/false, {"a", "b", "c"});
  Converged();
  Merge("a",
        Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}}, {{"id", 1}, {"v", 1}, {"w", 5}}, 100));
  Observe("b");
  Merge("c", Delete(300));
  Merge("a",
        Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 5}}, {{"id", 1}, {"v", 1}, {"w", 9}}, 200));
  ResolveOutput out = Merge("b", Upsert(Op::kUpdate, nullptr, {{"id", 1}, {"v", 1}, {"w", 7}}, 50));
  ASSERT_EQ(out.conflicts.size(), 1u);
  EXPECT_EQ(out.conflicts[0].field, "w");
  EXPECT_EQ(Agreed(), Row({{"id", 1}, {"v", 1}, {"w", 9}}));  // lww: a's 200 beats b's 50
}

// b deletes the row while a, not having seen that delete, deletes it too and inserts it
// again: the re-insert is concurrent with b's delete, so the delete wins (the default) or,
// with "keep", the re-insert does, whatever the arrival order (P4; sim seeds 19, 115, 264).
TEST_F(ResolverTest, DeleteConcurrentWithReinsertDoesNotDependOnArrivalOrder) {
  for (bool delete_wins : {true, false}) {
    for (bool b_first : {true, false}) {
      Build(Policy::kLww, "", delete_wins);
      Converged();
      const Change reinsert = Upsert(Op::kInsert, nullptr, {{"id", 1}, {"v", 5}, {"w", 6}}, 400);
      size_t row_conflicts = 0;
      auto count = [&](const ResolveOutput& out) {
        for (const ConflictRecord& c : out.conflicts) row_conflicts += c.field.empty() ? 1 : 0;
      };
      if (b_first) count(Merge("b", Delete(500)));
      count(Merge("a", Delete(300)));
      count(Merge("a", reinsert));
      if (!b_first) count(Merge("b", Delete(500)));
      const std::string name = std::string(delete_wins ? "delete" : "keep") +
                               (b_first ? ", b's delete first" : ", a's changes first");
      EXPECT_EQ(Agreed(), delete_wins ? Row() : Row({{"id", 1}, {"v", 5}, {"w", 6}})) << name;
      EXPECT_EQ(row_conflicts, 1u) << name;
    }
  }
}

// The same for a field: b sets v = 5; a, not having seen it, makes the same edit and then sets
// v = 6. That second edit is concurrent with b's (lww: b's later clock wins), whether b's edit
// is merged first or last.
TEST_F(ResolverTest, EditAfterTheSameConcurrentEditIsStillConcurrent) {
  for (bool b_first : {true, false}) {
    Build(Policy::kLww);
    Converged();
    const Row base = {{"id", 1}, {"v", 1}, {"w", 1}};
    const Change b5 = Upsert(Op::kUpdate, base, {{"id", 1}, {"v", 5}, {"w", 1}}, 900);
    if (b_first) Merge("b", b5);
    Merge("a", Upsert(Op::kUpdate, base, {{"id", 1}, {"v", 5}, {"w", 1}}, 100));
    Merge("a", Upsert(Op::kUpdate, {{"id", 1}, {"v", 5}, {"w", 1}}, {{"id", 1}, {"v", 6}, {"w", 1}},
                      200));
    if (!b_first) Merge("b", b5);
    EXPECT_EQ(Agreed(), Row({{"id", 1}, {"v", 5}, {"w", 1}})) << b_first;
  }
}

// c deletes the row; b, not having seen that, deletes it too; a, having seen c's delete but
// not b's, inserts the row again: the re-insert is concurrent with b's delete, which wins,
// whether b's delete is merged before a's insert or after it (sim seed 115).
TEST_F(ResolverTest, ReinsertAfterOneDeleteIsConcurrentWithAnUnseenSecondDelete) {
  for (bool b_first : {true, false}) {
    Build(Policy::kLww, "", /*delete_wins=*/true, {"a", "b", "c"});
    Converged();
    Merge("c", Delete(300));
    Observe("a");  // a's row is deleted by duplex, and a has seen it
    const Change reinsert = Upsert(Op::kInsert, nullptr, {{"id", 1}, {"v", 5}, {"w", 6}}, 400);
    size_t row_conflicts = 0;
    auto count = [&](const ResolveOutput& out) { row_conflicts += out.conflicts.size(); };
    if (b_first) count(Merge("b", Delete(350)));
    count(Merge("a", reinsert));
    if (!b_first) count(Merge("b", Delete(350)));
    EXPECT_EQ(Agreed(), Row()) << (b_first ? "b's delete first" : "a's insert first");
    EXPECT_EQ(row_conflicts, 1u) << (b_first ? "b's delete first" : "a's insert first");
  }
}

// b deletes the row (its own tombstone); a, not having seen that, deletes it too; b's insert,
// made without having seen a's delete, loses to it; b deletes its refused row and inserts
// again, still without having seen a's delete: concurrent again, the delete wins again
// (sim seed 180, --steps 250 --keys 8).
TEST_F(ResolverTest, ReinsertAfterDeletingARefusedInsertIsStillConcurrent) {
  Converged();
  Merge("b", Delete(100));
  Merge("a", Delete(200));
  ResolveOutput refused =
      Merge("b", Upsert(Op::kInsert, nullptr, {{"id", 1}, {"v", 2}, {"w", 2}}, 300));
  ASSERT_EQ(refused.conflicts.size(), 1u);
  Merge("b", Delete(310));
  ResolveOutput again =
      Merge("b", Upsert(Op::kInsert, nullptr, {{"id", 1}, {"v", 3}, {"w", 3}}, 320));
  EXPECT_EQ(again.conflicts.size(), 1u);
  EXPECT_EQ(Agreed(), Row());
}

// a deletes the row and, later, having seen nothing else, inserts it again: sequential, the
// new row stands (the pending entry kept for a's own delete must not make it a conflict).
TEST_F(ResolverTest, ReinsertAfterOwnDeleteIsSequential) {
  Converged();
  Merge("a", Delete(300));
  ResolveOutput out =
      Merge("a", Upsert(Op::kInsert, nullptr, {{"id", 1}, {"v", 5}, {"w", 6}}, 400));
  EXPECT_TRUE(out.conflicts.empty());
  EXPECT_EQ(Agreed(), Row({{"id", 1}, {"v", 5}, {"w", 6}}));
}

// b deletes; a observes the delete, then inserts the row again: sequential, it stands.
TEST_F(ResolverTest, ReinsertAfterObservedDeleteIsSequential) {
  Converged();
  Merge("b", Delete(500));
  Observe("a");
  ResolveOutput out =
      Merge("a", Upsert(Op::kInsert, nullptr, {{"id", 1}, {"v", 5}, {"w", 6}}, 400));
  EXPECT_TRUE(out.conflicts.empty());
  EXPECT_EQ(Agreed(), Row({{"id", 1}, {"v", 5}, {"w", 6}}));
}

// b and a delete the row concurrently (a's repeats b's, and reaches no one: the rows are gone).
// Every endpoint but a counts as not having seen a's delete until it observes this step's apply
// id, so the step plans an empty batch for each of them (out.observe): once b has observed it,
// b's re-insert, long after, is sequential and stands (sim P2 phase, seeds 2154, 2848, 4501
// with --parent-deletes --keys 4 --steps 150); before, it would lose to a's delete for as long
// as nothing else was written to b.
TEST_F(ResolverTest, RepeatedDeleteIsObservedThroughAnEmptyBatch) {
  Converged();
  Merge("b", Delete(100));
  ResolveOutput repeated = Merge("a", Delete(110));
  EXPECT_TRUE(repeated.writes.empty());
  EXPECT_EQ(repeated.observe, std::set<std::string>{"b"});
  const Change reinsert = Upsert(Op::kInsert, nullptr, {{"id", 1}, {"v", 5}, {"w", 6}}, 900);
  {
    RecordState before = state_;
    ResolveOutput unseen = Merge("b", reinsert);  // made before b observed it: concurrent
    EXPECT_EQ(unseen.conflicts.size(), 1u);
    EXPECT_EQ(Agreed(), Row());
    state_ = before;
  }
  Observe("b");
  ResolveOutput out = Merge("b", reinsert);
  EXPECT_TRUE(out.conflicts.empty());
  EXPECT_EQ(Agreed(), Row({{"id", 1}, {"v", 5}, {"w", 6}}));
}

// Writes taken back before they landed (src/pipeline/references.cc): what the endpoint holds is
// what it held before them, newest undone first, and planning again writes them anew.
TEST_F(ResolverTest, RetractedWritesAreUndoneAndPlannedAgain) {
  ResolveOutput created =
      Merge("a", Upsert(Op::kInsert, nullptr, {{"id", 1}, {"v", 1}, {"w", 1}}, 100));
  ASSERT_EQ(created.writes["b"].size(), 1u);
  const RowOp insert = created.writes["b"][0];
  const int64_t insert_id = state_.pending.at("b").at("");
  ResolveOutput edited = Merge("a", Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}},
                                           {{"id", 1}, {"v", 2}, {"w", 1}}, 200));
  ASSERT_EQ(edited.writes["b"].size(), 1u);
  const RowOp update = edited.writes["b"][0];
  const int64_t update_id = state_.pending.at("b").at("v");
  EXPECT_TRUE(Resolver::Unobserved(state_, "b", {}, 0));
  // The update alone: b holds the row as inserted.
  RecordState s = state_;
  Resolver::Retracted("b", {{update_id, update}}, s);
  EXPECT_EQ(s.known.at("b")["v"], 1);
  // Both: b holds nothing; planning again inserts the agreed row.
  Resolver::Retracted("b", {{insert_id, insert}, {update_id, update}}, state_);
  EXPECT_FALSE(state_.known.count("b"));
  EXPECT_FALSE(Resolver::Unobserved(state_, "b", {"v"}, 0));
  PlanContext ctx{{{"a", 10}, {"b", 11}}, {}, watermark_};
  ResolveOutput again;
  resolver_->Replan("t", ctx, state_, again);
  ASSERT_EQ(again.writes["b"].size(), 1u);
  EXPECT_EQ(again.writes["b"][0].op, WriteOp::kInsert);
  EXPECT_EQ(again.writes["b"][0].values["v"], 2);
  EXPECT_TRUE(Resolver::Unobserved(state_, "b", {}, 0));
}

// A delete against a new reference settled either way: Cascade deletes the record as of the
// parent's delete, Revive brings it back as its tombstone kept it.
TEST_F(ResolverTest, CascadeDeletesEverywhereAndReviveWritesTheRowBack) {
  Converged();
  PlanContext ctx{{{"a", 20}, {"b", 21}}, {}, watermark_};
  ResolveOutput gone;
  resolver_->Cascade("t", Version{500, "b"}, ctx, state_, gone);
  EXPECT_EQ(Agreed(), Row());
  EXPECT_EQ(state_.deleted.origin, "b");
  ASSERT_EQ(gone.writes["a"].size(), 1u);
  EXPECT_EQ(gone.writes["a"][0].op, WriteOp::kDelete);
  ASSERT_EQ(gone.writes["b"].size(), 1u);
  ResolveOutput back;
  resolver_->Revive("t", ctx, state_, back);
  EXPECT_EQ(Agreed(), Row({{"id", 1}, {"v", 1}, {"w", 1}}));
  ASSERT_EQ(back.writes["a"].size(), 1u);
  EXPECT_EQ(back.writes["a"][0].op, WriteOp::kInsert);
}

// A row read back from an endpoint (a restored one): the truth about what it holds, not an
// edit. The agreed values stay; only that endpoint gets the writes that bring it back.
TEST_F(ResolverTest, PresentRowIsWhatTheEndpointHoldsAndOnlyItIsBroughtBack) {
  Converged();
  Merge("a",
        Upsert(Op::kUpdate, {{"id", 1}, {"v", 1}, {"w", 1}}, {{"id", 1}, {"v", 2}, {"w", 1}}, 200));
  Observe("b");
  PlanContext ctx{{{"a", 50}, {"b", 51}},
                  {{"a", Position::FromInt(7)}, {"b", Position::FromInt(8)}},
                  watermark_};
  Change present;
  present.op = Op::kPresent;
  present.collection = "t";
  present.key = {{"id", 1}};
  present.after = {{"id", 1}, {"v", 0}, {"w", 1}};  // as it was long before
  ResolveOutput out;
  resolver_->Observe(present, "b", ctx, state_, out);
  EXPECT_EQ(Agreed(), (Row{{"id", 1}, {"v", 2}, {"w", 1}}));
  ASSERT_EQ(out.writes.size(), 1u);
  ASSERT_EQ(out.writes["b"].size(), 1u);
  const RowOp& op = out.writes["b"][0];
  EXPECT_EQ(op.op, WriteOp::kUpdate);
  EXPECT_EQ(op.values, (Row{{"v", 2}}));
  EXPECT_EQ(op.expected, (Row{{"v", 0}}));
  EXPECT_EQ(op.seen, Position::FromInt(8));
  EXPECT_EQ(state_.pending["b"]["v"], 51);

  // No row there: the record is inserted again; a deleted record's row is deleted there.
  present.after = Row();
  out = ResolveOutput{};
  resolver_->Observe(present, "b", ctx, state_, out);
  ASSERT_EQ(out.writes["b"].size(), 1u);
  EXPECT_EQ(out.writes["b"][0].op, WriteOp::kInsert);
  Merge("a", Delete(300));
  Observe("a");
  Observe("b");
  present.after = {{"id", 1}, {"v", 2}, {"w", 1}};
  out = ResolveOutput{};
  resolver_->Observe(present, "b", ctx, state_, out);
  EXPECT_EQ(Agreed(), Row());
  ASSERT_EQ(out.writes["b"].size(), 1u);
  EXPECT_EQ(out.writes["b"][0].op, WriteOp::kDelete);
  EXPECT_FALSE(Resolver::Unknown(state_));
  EXPECT_TRUE(Resolver::Unknown(RecordState{}));
}

// sum: a counter or balance. Converged() leaves v = 1 everywhere.
Change Balance(Value before, Value after, double ts) {
  Row b = before.is_null() ? Row() : Row{{"id", 1}, {"v", before}, {"w", 1}};
  Change c;
  c.op = Op::kUpdate;
  c.collection = "t";
  c.key = {{"id", 1}};
  c.before = std::move(b);
  c.after = {{"id", 1}, {"v", std::move(after)}, {"w", 1}};
  c.commit_ms = ts;
  return c;
}

class SumOrderTest : public ResolverTest, public ::testing::WithParamInterface<bool> {};

TEST_P(SumOrderTest, P4ConcurrentDeltasAddUpInEveryArrivalOrder) {
  const bool before_images = GetParam();
  // a deposits 10, b withdraws 5, c deposits 3, none having seen the others: 1 + 10 - 5 + 3.
  std::vector<std::pair<std::string, Change>> edits = {
      {"a", Balance(before_images ? Value(1) : Value(), 11, 300)},
      {"b", Balance(before_images ? Value(1) : Value(), -4, 200)},
      {"c", Balance(before_images ? Value(1) : Value(), 4, 100)}};
  std::vector<int> order = {0, 1, 2};
  do {
    Build(Policy::kSum, "", true, {"a", "b", "c"});
    Converged();
    size_t merged = 0;
    for (int i : order) {
      ResolveOutput out = Merge(edits[i].first, edits[i].second);
      for (const ConflictRecord& c : out.conflicts) {
        EXPECT_TRUE(c.merged);
        EXPECT_EQ(c.policy, "sum");
        EXPECT_EQ(c.winner, "");
        EXPECT_EQ(c.base, 1);
        EXPECT_EQ(c.result, state_.values["v"]);
        ++merged;
      }
    }
    EXPECT_EQ(state_.values["v"], 9) << order[0] << order[1] << order[2];
    EXPECT_EQ(merged, 2u);  // the first edit to arrive is sequential: nothing to merge
    // Every endpoint is brought to the sum.
    for (const char* ep : {"a", "b", "c"}) EXPECT_EQ(state_.known[ep]["v"], 9) << ep;
  } while (std::next_permutation(order.begin(), order.end()));
}

INSTANTIATE_TEST_SUITE_P(BeforeImages, SumOrderTest, ::testing::Bool());

TEST_F(ResolverTest, P2SumSequentialEditSetsTheValue) {
  Build(Policy::kSum);
  Converged();
  Merge("a", Balance(Value(), 11, 300));
  Observe("b");
  // b has seen 11: setting 20 is an edit of 11, not a delta of 19 against the old 1.
  ResolveOutput out = Merge("b", Balance(Value(), 20, 200));
  EXPECT_TRUE(out.conflicts.empty());
  EXPECT_EQ(state_.values["v"], 20);
  ASSERT_EQ(out.writes["a"].size(), 1u);
  EXPECT_EQ(out.writes["a"][0].values["v"], 20);
}

TEST_F(ResolverTest, SumDeltaStartsFromTheLastWriteThatLandedBeforeTheEdit) {
  Build(Policy::kSum);
  Converged();                            // ids 1, 2; watermarks 2
  Merge("a", Balance(Value(), 11, 300));  // write of 11 to b: id 4
  Merge("a", Balance(Value(), 21, 310));  // write of 21 to b: id 6
  ASSERT_EQ(state_.pending["b"]["v"], 6);
  // b's stream shows the marker of 4 (11 landed), then b's application adds 1 to what it
  // holds (no before-image), before 21 lands: +1, not +11 from the value before both writes.
  watermark_["b"] = 4;
  ResolveOutput out = Merge("b", Balance(Value(), 12, 320));
  EXPECT_EQ(state_.values["v"], 22);
  ASSERT_EQ(out.conflicts.size(), 1u);
  EXPECT_EQ(out.conflicts[0].base, 11);
}

TEST_F(ResolverTest, SumTwoEqualDepositsAreTwoDeposits) {
  Build(Policy::kSum);
  Converged();
  Merge("a", Balance(1, 11, 300));
  Merge("b", Balance(1, 11, 300));  // the same +10, made independently: both count
  EXPECT_EQ(state_.values["v"], 21);
}

TEST_F(ResolverTest, SumOfDecimalTextIsExactAndKeepsTheScale) {
  Build(Policy::kSum);
  Merge("a", Upsert(Op::kInsert, nullptr, {{"id", 1}, {"v", "100.10"}, {"w", 1}}, 100));
  Observe("a");
  Observe("b");
  Merge("a", Balance("100.10", "100.30", 300));  // +0.20
  Merge("b", Balance("100.10", "99.99", 310));   // -0.11
  EXPECT_EQ(state_.values["v"], "100.19");
  // Beyond 64 bits and binary floating point alike.
  Build(Policy::kSum);
  Merge("a", Upsert(Op::kInsert, nullptr,
                    {{"id", 1}, {"v", "12345678901234567890.000000001"}, {"w", 1}}, 100));
  Observe("a");
  Observe("b");
  Merge("a", Balance("12345678901234567890.000000001", "12345678901234567891.000000001", 300));
  Merge("b", Balance("12345678901234567890.000000001", "12345678901234567890.000000002", 310));
  EXPECT_EQ(state_.values["v"], "12345678901234567891.000000002");
}

TEST_F(ResolverTest, SumOfValuesThatAreNotNumbersFallsBackToLww) {
  Build(Policy::kSum);
  Converged();
  Merge("a", Balance(1, "ten", 300));
  ResolveOutput out = Merge("b", Balance(1, 5, 400));
  ASSERT_EQ(out.conflicts.size(), 1u);
  EXPECT_FALSE(out.conflicts[0].merged);
  EXPECT_EQ(out.conflicts[0].winner, "b");  // later
  EXPECT_EQ(state_.values["v"], 5);
}

TEST_F(ResolverTest, SumConcurrentInsertsHaveNoBaseAndGoByLww) {
  Build(Policy::kSum);
  Merge("a", Upsert(Op::kInsert, nullptr, {{"id", 1}, {"v", 10}, {"w", 1}}, 100));
  ResolveOutput out =
      Merge("b", Upsert(Op::kInsert, nullptr, {{"id", 1}, {"v", 7}, {"w", 1}}, 200));
  ASSERT_EQ(out.conflicts.size(), 1u);
  EXPECT_FALSE(out.conflicts[0].merged);
  EXPECT_EQ(state_.values["v"], 7);
}

// union: a set. The record is created on a with v = `tags` and delivered everywhere.
class UnionTest : public ResolverTest {
 protected:
  void BuildUnion(const std::string& separator, const Value& tags,
                  std::vector<std::string> endpoints = {"a", "b"}) {
    Build(Policy::kUnion, "", true, std::move(endpoints));
    config_.default_policy.separator = separator;
    Merge("a", Upsert(Op::kInsert, nullptr, {{"id", 1}, {"v", tags}, {"w", 1}}, 100));
    for (const std::string& ep : endpoints_) Observe(ep);
  }
};

class UnionOrderTest : public UnionTest, public ::testing::WithParamInterface<bool> {};

TEST_P(UnionOrderTest, P4ConcurrentAddsAndRemovesAllStandInEveryArrivalOrder) {
  const bool before_images = GetParam();
  const Value base = "a;b;c";
  Value before = before_images ? base : Value();
  // a adds x, b removes a, c removes c and adds y, none having seen the others.
  std::vector<std::pair<std::string, Change>> edits = {{"a", Balance(before, "a;b;c;x", 100)},
                                                       {"b", Balance(before, "b;c", 300)},
                                                       {"c", Balance(before, "a;b;y", 200)}};
  std::vector<int> order = {0, 1, 2};
  do {
    BuildUnion(";", base, {"a", "b", "c"});
    size_t merged = 0;
    for (int i : order) {
      ResolveOutput out = Merge(edits[i].first, edits[i].second);
      for (const ConflictRecord& c : out.conflicts) {
        EXPECT_TRUE(c.merged);
        EXPECT_EQ(c.policy, "union");
        EXPECT_EQ(c.winner, "");
        EXPECT_EQ(c.base, base);
        EXPECT_EQ(c.result, state_.values["v"]);
        ++merged;
      }
    }
    EXPECT_EQ(state_.values["v"], "b;x;y") << order[0] << order[1] << order[2];
    EXPECT_EQ(merged, 2u);  // the first edit to arrive is sequential: nothing to merge
    for (const char* ep : {"a", "b", "c"}) EXPECT_EQ(state_.known[ep]["v"], "b;x;y") << ep;
  } while (std::next_permutation(order.begin(), order.end()));
}

INSTANTIATE_TEST_SUITE_P(BeforeImages, UnionOrderTest, ::testing::Bool());

TEST_F(UnionTest, P2SequentialRemovalOfAnAddedElementStands) {
  BuildUnion(";", "a");
  Merge("a", Balance(Value(), "a;x", 300));
  Observe("b");
  // b has seen x and removes it: an edit of "a;x", not a concurrent edit of "a" that kept x.
  ResolveOutput out = Merge("b", Balance(Value(), "a", 200));
  EXPECT_TRUE(out.conflicts.empty());
  EXPECT_EQ(state_.values["v"], "a");
  ASSERT_EQ(out.writes["a"].size(), 1u);
  EXPECT_EQ(out.writes["a"][0].values["v"], "a");
}

TEST_F(UnionTest, ASequentialEditKeepsItsOrder) {
  BuildUnion(";", "a;b");
  Merge("a", Balance(Value(), "z;b;a", 300));  // reordered and added to: taken as written
  EXPECT_EQ(state_.values["v"], "z;b;a");
}

TEST_F(UnionTest, EditStartsFromTheLastWriteThatLandedBeforeIt) {
  BuildUnion(";", "a");                        // ids 1, 2; watermarks 2
  Merge("a", Balance(Value(), "a;x", 300));    // write of "a;x" to b: id 4
  Merge("a", Balance(Value(), "a;x;y", 310));  // write of "a;x;y" to b: id 6
  // b's stream shows the marker of 4 ("a;x" landed), then b's application removes x (no
  // before-image) before "a;x;y" lands: x goes, y stays.
  watermark_["b"] = 4;
  ResolveOutput out = Merge("b", Balance(Value(), "a", 320));
  EXPECT_EQ(state_.values["v"], "a;y");
  ASSERT_EQ(out.conflicts.size(), 1u);
  EXPECT_EQ(out.conflicts[0].base, "a;x");
}

TEST_F(UnionTest, PostgresArraysAndJsonArraysMerge) {
  BuildUnion("", "{red,green}");
  Merge("a", Balance("{red,green}", "{red,green,\"dark blue\"}", 300));
  Merge("b", Balance("{red,green}", "{green}", 310));
  EXPECT_EQ(state_.values["v"], "{green,\"dark blue\"}");

  BuildUnion("", "[1, 2]");  // json/jsonb as the connector hands it over: text
  Merge("a", Balance(Value(), "[1, 2, 3]", 300));
  Merge("b", Balance(Value(), "[2]", 310));
  EXPECT_EQ(state_.values["v"], "[2, 3]");

  BuildUnion("", Value::array({"p"}));
  Merge("a", Balance(Value(), Value::array({"p", "q"}), 300));
  Merge("b", Balance(Value(), Value::array(), 310));
  EXPECT_EQ(state_.values["v"], Value::array({"q"}));
}

class UnionReAddTest : public UnionTest, public ::testing::WithParamInterface<bool> {};

// a removes x and adds it back; b removes x, having seen neither: a's re-add is concurrent
// with b's removal, and an addition stands (removed and not added back is what goes).
TEST_P(UnionReAddTest, P4AReAddConcurrentWithARemovalStandsInEveryArrivalOrder) {
  const bool before_images = GetParam();
  auto before = [&](const char* v) { return before_images ? Value(v) : Value(); };
  std::vector<std::pair<std::string, Change>> edits = {{"a", Balance(before("x;k"), "k", 100)},
                                                       {"a", Balance(before("k"), "x;k", 110)},
                                                       {"b", Balance(before("x;k"), "k", 105)}};
  // a's two edits arrive in a's stream order; b's anywhere among them.
  for (const std::vector<int>& order :
       std::vector<std::vector<int>>{{0, 1, 2}, {0, 2, 1}, {2, 0, 1}}) {
    BuildUnion(";", "x;k");
    for (int i : order) Merge(edits[i].first, edits[i].second);
    EXPECT_EQ(state_.values["v"], "x;k") << order[0] << order[1] << order[2];
    for (const char* ep : {"a", "b"}) EXPECT_EQ(state_.known[ep]["v"], "x;k") << ep;
  }
}

INSTANTIATE_TEST_SUITE_P(BeforeImages, UnionReAddTest, ::testing::Bool());

TEST_F(UnionTest, ValuesThatAreNotSetsFallBackToLww) {
  BuildUnion("", "{a}");
  Merge("a", Balance(Value(), "not a set", 300));
  ResolveOutput out = Merge("b", Balance(Value(), "{a,b}", 200));
  ASSERT_EQ(out.conflicts.size(), 1u);
  EXPECT_FALSE(out.conflicts[0].merged);
  EXPECT_EQ(out.conflicts[0].policy, "union");
  EXPECT_EQ(out.conflicts[0].winner, "a");  // later
  EXPECT_EQ(state_.values["v"], "not a set");
}

TEST(RecordStateTest, EncodeDecodeRoundTrip) {
  RecordState s;
  s.exists = true;
  s.values = {{"id", 1}, {"v", "x"}};
  s.versions["v"] = Version{12.5, "a"};
  s.known["b"] = {{"id", 1}, {"v", "y"}};
  s.pending["b"]["v"] = 7;
  s.prior["b"] = {{"v", "w"}};
  s.prior_row["a"] = {{"id", 1}, {"v", "z"}};
  s.diverged.insert("v");
  s.inflight["b"] = {{"v", {{7, "y"}, {9, "u"}}}};
  Result<RecordState> d = RecordState::Decode(s.Encode());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->values, s.values);
  EXPECT_EQ(d->versions["v"].origin, "a");
  EXPECT_EQ(d->known["b"], s.known["b"]);
  EXPECT_EQ(d->pending["b"]["v"], 7);
  EXPECT_EQ(d->prior["b"], s.prior["b"]);
  EXPECT_EQ(d->prior_row["a"], s.prior_row["a"]);
  EXPECT_TRUE(d->diverged.count("v"));
  EXPECT_EQ(d->inflight["b"], s.inflight["b"]);
}

}  // namespace
}  // namespace duplex
