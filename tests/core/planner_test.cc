#include "core/planner.h"

#include <gtest/gtest.h>

namespace duplex {
namespace {

// customer <- order (order.customer_id), employee <- employee (employee.manager_id). Target
// "pg" checks both per statement; "lite" defers them to the commit.
Planner Make() {
  Reference orders{"order", {"customer_id"}, "customer", {"id"}, {"pg"}};
  Reference managers{"employee", {"manager_id"}, "employee", {"id"}, {"pg"}};
  return Planner({orders, managers},
                 {{"customer", {"id"}}, {"order", {"id"}}, {"employee", {"id"}}});
}

RowOp Insert(const std::string& collection, int id, Row values = Row::object(), int64_t txn = 0) {
  RowOp op;
  op.op = WriteOp::kInsert;
  op.collection = collection;
  op.key = {{"id", id}};
  op.values = std::move(values);
  op.txn = txn;
  return op;
}

RowOp Delete(const std::string& collection, int id, Row expected = Row::object()) {
  RowOp op;
  op.op = WriteOp::kDelete;
  op.collection = collection;
  op.key = {{"id", id}};
  op.expected = std::move(expected);
  return op;
}

RowOp Update(const std::string& collection, int id, Row values, Row expected) {
  RowOp op;
  op.op = WriteOp::kUpdate;
  op.collection = collection;
  op.key = {{"id", id}};
  op.values = std::move(values);
  op.expected = std::move(expected);
  return op;
}

// "I order 1", "D customer 2", "U employee 3 {manager_id: 4}"...
std::vector<std::string> Describe(const std::vector<RowOp>& ops) {
  std::vector<std::string> out;
  for (const RowOp& op : ops) {
    std::string s =
        std::string(1, static_cast<char>(op.op)) + " " + op.collection + " " + op.key["id"].dump();
    if (op.op != WriteOp::kDelete && op.values.is_object()) {
      for (const auto& [f, v] : op.values.items()) {
        if (f.find("_id") != std::string::npos) s += " " + f + "=" + v.dump();
      }
    }
    out.push_back(s);
  }
  return out;
}

TEST(PlannerTest, ParentInsertedBeforeItsChildren) {
  Planner p = Make();
  std::vector<RowOp> ops = {Insert("order", 10, {{"customer_id", 1}}),
                            Insert("order", 11, {{"customer_id", 2}}), Insert("customer", 1),
                            Insert("customer", 2)};
  p.Order("pg", ops);
  EXPECT_EQ(Describe(ops), (std::vector<std::string>{"I customer 1", "I order 10 customer_id=1",
                                                     "I customer 2", "I order 11 customer_id=2"}));
}

TEST(PlannerTest, ChildrenDeletedBeforeTheirParent) {
  Planner p = Make();
  std::vector<RowOp> ops = {Delete("customer", 1), Delete("order", 10, {{"customer_id", 1}}),
                            Delete("order", 11, {{"customer_id", 1}})};
  p.Order("pg", ops);
  EXPECT_EQ(Describe(ops), (std::vector<std::string>{"D order 10", "D order 11", "D customer 1"}));
}

TEST(PlannerTest, ChildMovedAwayBeforeItsOldParentIsDeleted) {
  Planner p = Make();
  std::vector<RowOp> ops = {Delete("customer", 1),
                            Update("order", 10, {{"customer_id", 2}}, {{"customer_id", 1}})};
  p.Order("pg", ops);
  EXPECT_EQ(Describe(ops), (std::vector<std::string>{"U order 10 customer_id=2", "D customer 1"}));
}

TEST(PlannerTest, WritesToOneRecordKeepTheirOrder) {
  Planner p = Make();
  // The customer is deleted and created again; the order refers to the new one.
  std::vector<RowOp> ops = {Insert("order", 10, {{"customer_id", 1}}), Delete("customer", 1),
                            Insert("customer", 1)};
  p.Order("pg", ops);
  EXPECT_EQ(Describe(ops),
            (std::vector<std::string>{"D customer 1", "I customer 1", "I order 10 customer_id=1"}));
}

TEST(PlannerTest, SourceTransactionsStayWholeAndInOrder) {
  Planner p = Make();
  std::vector<RowOp> ops = {
      Insert("order", 10, {{"customer_id", 1}}, 7), Insert("customer", 1, Row::object(), 7),
      Insert("order", 11, {{"customer_id", 2}}, 8), Insert("customer", 2, Row::object(), 8)};
  p.Order("pg", ops);
  ASSERT_EQ(ops.size(), 4u);
  EXPECT_EQ(ops[0].txn, 7);
  EXPECT_EQ(ops[1].txn, 7);
  EXPECT_EQ(ops[2].txn, 8);
  EXPECT_EQ(Describe(ops)[0], "I customer 1");
  EXPECT_EQ(Describe(ops)[2], "I customer 2");
}

TEST(PlannerTest, SelfReferenceOrdersManagersFirst) {
  Planner p = Make();
  std::vector<RowOp> ops = {Insert("employee", 3, {{"manager_id", 2}}),
                            Insert("employee", 2, {{"manager_id", 1}}),
                            Insert("employee", 1, {{"manager_id", nullptr}})};
  p.Order("pg", ops);
  EXPECT_EQ(Describe(ops),
            (std::vector<std::string>{"I employee 1 manager_id=null", "I employee 2 manager_id=1",
                                      "I employee 3 manager_id=2"}));
}

TEST(PlannerTest, CycleOnAnImmediateConstraintIsBrokenByALaterUpdate) {
  Planner p = Make();
  std::vector<RowOp> ops = {Insert("employee", 1, {{"manager_id", 2}}),
                            Insert("employee", 2, {{"manager_id", 1}})};
  p.Order("pg", ops);
  EXPECT_EQ(Describe(ops),
            (std::vector<std::string>{"I employee 1 manager_id=null", "I employee 2 manager_id=1",
                                      "U employee 1 manager_id=2"}));
  EXPECT_EQ(ops[2].expected, (Row{{"manager_id", nullptr}}));
}

TEST(PlannerTest, CycleOnADeferredConstraintKeepsTheSourceOrder) {
  Planner p = Make();
  std::vector<RowOp> ops = {Insert("employee", 1, {{"manager_id", 2}}),
                            Insert("employee", 2, {{"manager_id", 1}})};
  p.Order("lite", ops);
  EXPECT_EQ(Describe(ops),
            (std::vector<std::string>{"I employee 1 manager_id=2", "I employee 2 manager_id=1"}));
}

// Issue 15: neither row of a deleted cycle can go first where the target checks each
// statement; one row's reference is cleared first, in the same transaction.
TEST(PlannerTest, DeletedCycleOnAnImmediateConstraintIsClearedFirst) {
  Planner p = Make();
  std::vector<RowOp> ops = {Delete("employee", 1, {{"name", "x"}, {"manager_id", 2}}),
                            Delete("employee", 2, {{"name", "y"}, {"manager_id", 1}})};
  ops[0].seen = Position::FromInt(41);
  ops[0].txn = ops[1].txn = 9;
  p.Order("pg", ops);
  EXPECT_EQ(Describe(ops), (std::vector<std::string>{"U employee 1 manager_id=null", "D employee 2",
                                                     "D employee 1"}));
  // Compare-and-set: the update expects the reference as it was, the delete what the update
  // left, the other delete the row untouched.
  EXPECT_EQ(ops[0].values, (Row{{"manager_id", nullptr}}));
  EXPECT_EQ(ops[0].expected, (Row{{"manager_id", 2}}));
  EXPECT_EQ(ops[0].seen, Position::FromInt(41));
  EXPECT_EQ(ops[0].txn, 9);
  EXPECT_EQ(ops[1].expected, (Row{{"name", "y"}, {"manager_id", 1}}));
  EXPECT_EQ(ops[2].expected, (Row{{"name", "x"}, {"manager_id", nullptr}}));
  EXPECT_EQ(ops[2].seen, Position::FromInt(41));
}

TEST(PlannerTest, DeletedCycleOfThreeNeedsOneUpdate) {
  Planner p = Make();
  std::vector<RowOp> ops = {Delete("employee", 1, {{"manager_id", 2}}),
                            Delete("employee", 2, {{"manager_id", 3}}),
                            Delete("employee", 3, {{"manager_id", 1}})};
  p.Order("pg", ops);
  EXPECT_EQ(Describe(ops), (std::vector<std::string>{"U employee 1 manager_id=null", "D employee 2",
                                                     "D employee 3", "D employee 1"}));
  EXPECT_EQ(ops[1].expected, (Row{{"manager_id", 3}}));
  EXPECT_EQ(ops[3].expected, (Row{{"manager_id", nullptr}}));
}

TEST(PlannerTest, DeletedCycleClearsOnlyARowInTheCycle) {
  Planner p = Make();
  // 3 reports to 1, outside the cycle 1 <-> 2: deleted first, without an update.
  std::vector<RowOp> ops = {Delete("employee", 3, {{"manager_id", 1}}),
                            Delete("employee", 1, {{"manager_id", 2}}),
                            Delete("employee", 2, {{"manager_id", 1}})};
  p.Order("pg", ops);
  EXPECT_EQ(Describe(ops), (std::vector<std::string>{"D employee 3", "U employee 1 manager_id=null",
                                                     "D employee 2", "D employee 1"}));
}

TEST(PlannerTest, DeletedSelfReferenceNeedsNoUpdate) {
  Planner p = Make();
  // A row referring to itself goes in one statement; 2 reports to it and goes first.
  std::vector<RowOp> ops = {Delete("employee", 1, {{"manager_id", 1}}),
                            Delete("employee", 2, {{"manager_id", 1}})};
  p.Order("pg", ops);
  EXPECT_EQ(Describe(ops), (std::vector<std::string>{"D employee 2", "D employee 1"}));
  EXPECT_EQ(ops[1].expected, (Row{{"manager_id", 1}}));
}

TEST(PlannerTest, DeletedCycleOnADeferredConstraintKeepsTheSourceOrder) {
  Planner p = Make();
  std::vector<RowOp> ops = {Delete("employee", 1, {{"manager_id", 2}}),
                            Delete("employee", 2, {{"manager_id", 1}})};
  p.Order("lite", ops);
  EXPECT_EQ(Describe(ops), (std::vector<std::string>{"D employee 1", "D employee 2"}));
  EXPECT_EQ(ops[0].expected, (Row{{"manager_id", 2}}));
}

TEST(PlannerTest, UnrelatedCollectionsAreLeftAlone) {
  Planner p = Make();
  std::vector<RowOp> ops = {Insert("note", 2), Delete("note", 1), Insert("note", 1)};
  p.Order("pg", ops);
  EXPECT_EQ(Describe(ops), (std::vector<std::string>{"I note 2", "D note 1", "I note 1"}));
}

TEST(PlannerTest, DependencyOrderPutsParentsFirst) {
  Planner p = Make();
  EXPECT_EQ(p.DependencyOrder({"order", "employee", "customer", "note"}),
            (std::vector<std::string>{"employee", "customer", "order", "note"}));
}

}  // namespace
}  // namespace duplex
