#include "core/set_merge.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

namespace duplex {
namespace {

struct Case {
  const char* name;
  Value base;
  std::vector<Value> sides;
  std::string separator;
  Value want;
};

// Folds the sides one pair at a time in the order `perm`, as the resolver merges each
// endpoint's change into the agreed value as it arrives: the first is taken as it is (a
// sequential edit), every later one merged with what was agreed so far, against the base.
std::optional<Value> Fold(const Case& c, const std::vector<size_t>& perm) {
  Value agreed = c.sides[perm[0]];
  for (size_t i = 1; i < perm.size(); ++i) {
    std::optional<Value> m = UnionMerge(c.base, {agreed, c.sides[perm[i]]}, c.separator);
    if (!m) return std::nullopt;
    agreed = *m;
  }
  return agreed;
}

TEST(SetMergeTest, P4EveryCaseGivesOneResultInEveryArrivalOrder) {
  const std::vector<Case> cases = {
      // Delimited text (a multipicklist).
      {"add and remove on two sides", "a;b;c", {"a;b;c;d", "a;c"}, ";", "a;c;d"},
      {"both add, additions sorted", "a", {"a;z", "a;m"}, ";", "a;m;z"},
      {"both remove the same", "a;b", {"a", "a"}, ";", "a"},
      {"one removes, the other keeps", "a;b", {"b", "a;b"}, ";", "b"},
      {"same addition once", "x", {"x;y", "y;x"}, ";", "x;y"},
      {"duplicates collapse", "a;a;b", {"a;b;b", "a;a;b;c"}, ";", "a;b;c"},
      {"empty pieces are no elements", ";a;;b;", {"a;b", "a;b;c"}, ";", "a;b;c"},
      {"from NULL", nullptr, {"b", "a"}, ";", "a;b"},
      {"to nothing", "a;b", {"b", "a"}, ";", ""},
      {"multi-character separator", "a, b", {"a, b, c", "b"}, ", ", "b, c"},
      {"three endpoints", "a;b;c", {"b;c;x", "a;b;y", "a;c;w"}, ";", "w;x;y"},
      {"four endpoints", "p;q", {"p;q;d", "q;c", "p;q;b", "p;a"}, ";", "a;b;c;d"},
      {"base order kept", "c;a;b", {"c;a;b;d", "c;b"}, ";", "c;b;d"},
      // PostgreSQL arrays as the connector hands them over (text[], int[]).
      {"text[]", "{a,b}", {"{a,b,c}", "{b}"}, "", "{b,c}"},
      {"int[]", "{1,2,3}", {"{1,2,3,10}", "{2,3}"}, "", "{2,3,10}"},
      {"quoted elements", "{\"x y\",b}", {"{\"x y\",b,\"c,d\"}", "{b}"}, "", "{b,\"c,d\"}"},
      {"NULL element and the text NULL", "{}", {"{NULL}", "{\"NULL\"}"}, "", "{NULL,\"NULL\"}"},
      {"escapes", "{}", {"{\"a\\\"b\"}", "{\"c\\\\d\"}"}, "", "{\"a\\\"b\",\"c\\\\d\"}"},
      {"array from NULL", nullptr, {"{a}", "{b}"}, "", "{a,b}"},
      {"array emptied", "{a,b}", {"{a}", "{b}"}, "", "{}"},
      {"three arrays", "{a}", {"{a,b}", "{}", "{a,c}"}, "", "{b,c}"},
      // JSON arrays: values, and text holding one (json, jsonb, TEXT).
      {"json value", Value::array({1, "a"}),
       std::vector<Value>{Value::array({1, "a", 2}), Value::array({"a"})}, "",
       Value::array({"a", 2})},
      {"json 1 and \"1\" differ", Value::array(),
       std::vector<Value>{Value::array({1}), Value::array({"1"})}, "", Value::array({"1", 1})},
      {"json objects as elements", Value::array(),
       std::vector<Value>{Value::array({Value{{"id", 1}}}), Value::array({Value{{"id", 2}}})}, "",
       Value::array({Value{{"id", 1}}, Value{{"id", 2}}})},
      {"json text", "[\"a\", \"b\"]", {"[\"a\",\"b\",\"c\"]", "[\"b\"]"}, "", "[\"b\", \"c\"]"},
      {"json text three sides", "[1, 2]", {"[1, 2, 3]", "[2]", "[1,2,4]"}, "", "[2, 3, 4]"},
  };
  for (const Case& c : cases) {
    std::optional<Value> all = UnionMerge(c.base, c.sides, c.separator);
    ASSERT_TRUE(all) << c.name;
    EXPECT_EQ(*all, c.want) << c.name << ": got " << all->dump();
    std::vector<size_t> perm(c.sides.size());
    std::iota(perm.begin(), perm.end(), 0);
    do {
      std::optional<Value> folded = Fold(c, perm);
      ASSERT_TRUE(folded) << c.name;
      EXPECT_EQ(*folded, c.want) << c.name << ": pairwise in another order gave " << folded->dump();
    } while (std::next_permutation(perm.begin(), perm.end()));
  }
}

TEST(SetMergeTest, WhatIsNotOneKindOfSetIsNotMerged) {
  // Text without a separator that is neither a JSON array nor an array literal.
  EXPECT_FALSE(UnionMerge("a;b", {"a", "b"}, ""));
  EXPECT_FALSE(IsSetValue("plain text", ""));
  EXPECT_TRUE(IsSetValue("plain text", ";"));  // one element
  // Numbers, objects, JSON text that is not an array.
  EXPECT_FALSE(UnionMerge(1, {2, 3}, ""));
  EXPECT_FALSE(UnionMerge("{a}", {"{a,b}", Value{{"k", 1}}}, ""));
  EXPECT_FALSE(UnionMerge("[1]", {"[1,2]", "{\"k\": 1}"}, ""));
  EXPECT_FALSE(UnionMerge("[1]", {"[1,2]", "[1,"}, ""));
  // A separator needs text.
  EXPECT_FALSE(UnionMerge("a", {Value::array({"a"}), "a;b"}, ";"));
  // Forms do not mix: a JSON array is not an array literal.
  EXPECT_FALSE(UnionMerge("{a}", {"{a,b}", "[\"a\"]"}, ""));
  EXPECT_FALSE(UnionMerge(Value::array(), {Value::array({1}), "[2]"}, ""));
  // Arrays of more dimensions, explicit bounds, malformed literals.
  for (const char* bad : {"{{1,2},{3,4}}", "[1:2]={a,b}", "{a,b", "{a,,b}", "{\"a}", "{a}x"}) {
    EXPECT_FALSE(IsSetValue(bad, "")) << bad;
  }
  // NULL everywhere stays NULL.
  EXPECT_EQ(UnionMerge(nullptr, {nullptr, nullptr}, ""), Value());
}

TEST(SetMergeTest, KeepReAddedPutsBackARemovalOfWhatOthersAddedBack) {
  // Held a;x, removed x; meanwhile duplex wrote "a" (x removed elsewhere), then "a;x" (added
  // back): x stays.
  EXPECT_EQ(KeepReAdded("a;x", "a", "a;x", {"a", "a;x"}, ";"), Value("a;x"));
  // No unseen write lacked x: the removal stands.
  EXPECT_EQ(KeepReAdded("a;x", "a", "a;x", {"a;x"}, ";"), Value("a"));
  EXPECT_EQ(KeepReAdded("a;x", "a", "a;x", {}, ";"), Value("a"));
  // x is not held now: nothing to keep.
  EXPECT_EQ(KeepReAdded("a;x", "a", "a", {"a"}, ";"), Value("a"));
  // The edit's own additions are untouched; the other forms alike.
  EXPECT_EQ(KeepReAdded("{x,k}", "{k,n}", "{x,k}", {"{k}", "{x,k}"}, ""), Value("{k,n,x}"));
  EXPECT_EQ(KeepReAdded("[1]", "[]", "[1]", {"[]"}, ""), Value("[1]"));
  EXPECT_FALSE(KeepReAdded("{x}", "{}", "{x}", {"not a set"}, ""));
}

}  // namespace
}  // namespace duplex
