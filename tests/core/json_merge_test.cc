#include "core/json_merge.h"

#include <gtest/gtest.h>

namespace duplex {
namespace {

// Two endpoints' edits of one document: "a" wrote at 100, "b" at 200 (lww: b's value wins).
const Version kA{100, "a"};
const Version kB{200, "b"};

FieldPolicy Merge(Policy nested = Policy::kLww, const std::string& prefer = "") {
  FieldPolicy rule;
  rule.policy = Policy::kMerge;
  rule.merge_policy = nested;
  rule.prefer_endpoint = prefer;
  return rule;
}

Value J(const char* text) { return Value::parse(text); }

// Merges `a` (current, written by "a") and `b` (incoming, by "b") both ways round, checks that
// both give one document, and returns it.
JsonMerge Both(const Value& base, const Value& a, const Value& b,
               const FieldPolicy& rule = Merge()) {
  std::optional<JsonMerge> ab = MergeJson(base, {a, kA}, {b, kB}, rule);
  std::optional<JsonMerge> ba = MergeJson(base, {b, kB}, {a, kA}, rule);
  EXPECT_TRUE(ab && ba);
  if (!ab || !ba) return {};
  EXPECT_EQ(ab->value, ba->value) << "P4: the argument order changed the merge";
  EXPECT_EQ(ab->manual, ba->manual);
  EXPECT_EQ(ab->conflicts.size(), ba->conflicts.size());
  for (size_t i = 0; i < ab->conflicts.size() && i < ba->conflicts.size(); ++i) {
    EXPECT_EQ(ab->conflicts[i].path, ba->conflicts[i].path);
    EXPECT_EQ(ab->conflicts[i].result, ba->conflicts[i].result);
  }
  return *ab;
}

TEST(JsonMergeTest, DifferentPathsOnTwoSidesAreBothKept) {
  JsonMerge m = Both(J(R"({"name": "Ann", "phone": "1", "city": "Oslo"})"),
                     J(R"({"name": "Ann", "phone": "2", "city": "Oslo"})"),
                     J(R"({"name": "Ann", "phone": "1", "city": "Bergen"})"));
  EXPECT_EQ(m.value, J(R"({"name": "Ann", "phone": "2", "city": "Bergen"})"));
  EXPECT_TRUE(m.conflicts.empty());
  EXPECT_FALSE(m.manual);
}

TEST(JsonMergeTest, SamePathChangedOnBothSidesGoesByLww) {
  JsonMerge m = Both(J(R"({"phone": "1", "city": "Oslo"})"), J(R"({"phone": "2", "city": "Oslo"})"),
                     J(R"({"phone": "3", "city": "Oslo", "zip": "0150"})"));
  EXPECT_EQ(m.value, J(R"({"phone": "3", "city": "Oslo", "zip": "0150"})"));
  ASSERT_EQ(m.conflicts.size(), 1u);
  const PathConflict& c = m.conflicts[0];
  EXPECT_EQ(c.path, "/phone");
  EXPECT_EQ(c.base, Value("1"));
  EXPECT_EQ(c.current, Value("2"));
  EXPECT_EQ(c.incoming, Value("3"));
  EXPECT_EQ(c.result, Value("3"));
  EXPECT_EQ(c.outcome, PathConflict::Outcome::kIncoming);
  // The same edits, "a" the later one: a's value.
  std::optional<JsonMerge> later = MergeJson(J(R"({"phone": "1"})"), {J(R"({"phone": "2"})"), kA},
                                             {J(R"({"phone": "3"})"), Version{50, "b"}}, Merge());
  ASSERT_TRUE(later);
  EXPECT_EQ(later->value, J(R"({"phone": "2"})"));
  EXPECT_EQ(later->conflicts[0].outcome, PathConflict::Outcome::kCurrent);
}

TEST(JsonMergeTest, SameChangeOnBothSidesIsNoConflict) {
  JsonMerge m = Both(J(R"({"x": 1, "y": 1})"), J(R"({"x": 2, "y": 1})"), J(R"({"x": 2, "y": 3})"));
  EXPECT_EQ(m.value, J(R"({"x": 2, "y": 3})"));
  EXPECT_TRUE(m.conflicts.empty());
}

TEST(JsonMergeTest, NestedObjectsMergeByPath) {
  JsonMerge m =
      Both(J(R"({"address": {"street": "Main 1", "city": "Oslo"}, "tags": ["x"]})"),
           J(R"({"address": {"street": "Main 2", "city": "Oslo"}, "tags": ["x"]})"),
           J(R"({"address": {"street": "Main 1", "city": "Oslo", "zip": "0150"}, "tags": ["y"]})"));
  EXPECT_EQ(
      m.value,
      J(R"({"address": {"street": "Main 2", "city": "Oslo", "zip": "0150"}, "tags": ["y"]})"));
  EXPECT_TRUE(m.conflicts.empty());
  // Deeper, with a conflict three levels down: its path names every level, JSON Pointer
  // escaped.
  JsonMerge deep =
      Both(J(R"({"a": {"b/c": {"d~e": 1, "f": 1}}})"), J(R"({"a": {"b/c": {"d~e": 2, "f": 1}}})"),
           J(R"({"a": {"b/c": {"d~e": 3, "f": 4}}})"));
  EXPECT_EQ(deep.value, J(R"({"a": {"b/c": {"d~e": 3, "f": 4}}})"));
  ASSERT_EQ(deep.conflicts.size(), 1u);
  EXPECT_EQ(deep.conflicts[0].path, "/a/b~1c/d~0e");
}

TEST(JsonMergeTest, ArraysAreLeaves) {
  // Both changed the array: one of them, whole (lww), not an element-wise mix.
  JsonMerge m = Both(J(R"({"l": [1, 2]})"), J(R"({"l": [1, 2, 3]})"), J(R"({"l": [0, 1, 2]})"));
  EXPECT_EQ(m.value, J(R"({"l": [0, 1, 2]})"));
  ASSERT_EQ(m.conflicts.size(), 1u);
  EXPECT_EQ(m.conflicts[0].path, "/l");
}

TEST(JsonMergeTest, DeletingAKeyAndEditingASiblingBothStand) {
  JsonMerge m = Both(J(R"({"phone": "1", "fax": "2", "city": "Oslo"})"),
                     J(R"({"phone": "1", "city": "Oslo"})"),
                     J(R"({"phone": "9", "fax": "2", "city": "Oslo"})"));
  EXPECT_EQ(m.value, J(R"({"phone": "9", "city": "Oslo"})"));
  EXPECT_TRUE(m.conflicts.empty());
  // Keys added on both sides, different ones: both.
  JsonMerge added = Both(J("{}"), J(R"({"x": 1})"), J(R"({"y": 2})"));
  EXPECT_EQ(added.value, J(R"({"x": 1, "y": 2})"));
}

TEST(JsonMergeTest, KeyRemovedOnOneSideAndEditedOnTheOtherIsASamePathConflict) {
  // The removal is an edit of the path like any other: the nested policy decides. Under lww
  // the later edit stands: here b's edit (200) over a's removal (100)...
  JsonMerge m = Both(J(R"({"phone": "1", "city": "Oslo"})"), J(R"({"city": "Oslo"})"),
                     J(R"({"phone": "2", "city": "Oslo"})"));
  EXPECT_EQ(m.value, J(R"({"phone": "2", "city": "Oslo"})"));
  ASSERT_EQ(m.conflicts.size(), 1u);
  EXPECT_EQ(m.conflicts[0].path, "/phone");
  EXPECT_FALSE(m.conflicts[0].current.has_value());  // removed
  EXPECT_EQ(m.conflicts[0].incoming, Value("2"));
  // ...and a later removal removes it.
  JsonMerge removed = Both(J(R"({"phone": "1", "city": "Oslo"})"),
                           J(R"({"phone": "2", "city": "Oslo"})"), J(R"({"city": "Oslo"})"));
  EXPECT_EQ(removed.value, J(R"({"city": "Oslo"})"));
  ASSERT_EQ(removed.conflicts.size(), 1u);
  EXPECT_FALSE(removed.conflicts[0].result.has_value());
  // A removed object against an edit inside it: one conflict, at the object.
  JsonMerge parent = Both(J(R"({"address": {"city": "Oslo"}, "n": 1})"), J(R"({"n": 1})"),
                          J(R"({"address": {"city": "Bergen"}, "n": 1})"));
  EXPECT_EQ(parent.value, J(R"({"address": {"city": "Bergen"}, "n": 1})"));
  ASSERT_EQ(parent.conflicts.size(), 1u);
  EXPECT_EQ(parent.conflicts[0].path, "/address");
}

TEST(JsonMergeTest, NestedPoliciesOtherThanLww) {
  const Value base = J(R"({"n": 10, "tags": ["a", "b"], "s": "m"})");
  const Value a = J(R"({"n": 15, "tags": ["a", "b", "c"], "s": "z"})");
  const Value b = J(R"({"n": 7, "tags": ["b"], "s": "k"})");
  // prefer: a's value on every conflicting path, although b wrote later.
  EXPECT_EQ(Both(base, a, b, Merge(Policy::kPrefer, "a")).value, a);
  EXPECT_EQ(Both(base, a, b, Merge(Policy::kMax)).value,
            J(R"({"n": 15, "tags": ["b"], "s": "z"})"));
  EXPECT_EQ(Both(base, a, b, Merge(Policy::kMin)).value,
            J(R"({"n": 7, "tags": ["a", "b", "c"], "s": "k"})"));
  // sum: both deltas (10 + 5 - 3); union: both sets' edits; a string is neither: lww.
  JsonMerge sum = Both(base, a, b, Merge(Policy::kSum));
  EXPECT_EQ(sum.value["n"], 12);
  EXPECT_EQ(sum.value["s"], "k");
  JsonMerge uni = Both(base, a, b, Merge(Policy::kUnion));
  EXPECT_EQ(uni.value["tags"], J(R"(["b", "c"])"));
  EXPECT_EQ(uni.value["s"], "k");
  ASSERT_EQ(uni.conflicts.size(), 3u);
  EXPECT_EQ(uni.conflicts[2].path, "/tags");
  EXPECT_EQ(uni.conflicts[2].outcome, PathConflict::Outcome::kMerged);
  // manual: the caller parks the field.
  JsonMerge manual = Both(base, a, b, Merge(Policy::kManual));
  EXPECT_TRUE(manual.manual);
  EXPECT_EQ(manual.conflicts.size(), 3u);
  // No conflict: merged whatever the nested policy.
  EXPECT_FALSE(Both(J(R"({"x": 1, "y": 1})"), J(R"({"x": 2, "y": 1})"), J(R"({"x": 1, "y": 2})"),
                    Merge(Policy::kManual))
                   .manual);
}

TEST(JsonMergeTest, ValuesThatAreNoDocumentsGoToTheNestedPolicyWhole) {
  // Arrays, numbers, NULL, text that is no JSON object, invalid JSON: leaves, never a crash.
  const std::vector<Value> leaves = {
      J("[1, 2]"), 42,    nullptr,         "plain text", "[1, 2]",
      "{\"a\": 1", "{,}", "{\"a\": \xff}", true,         Value::object({{"$blob", "00ff"}})};
  for (const Value& leaf : leaves) {
    EXPECT_FALSE(MergeJson(J(R"({"a": 1})"), {leaf, kA}, {J(R"({"a": 2})"), kB}, Merge()))
        << leaf.dump(-1, ' ', false, Value::error_handler_t::replace);
    EXPECT_FALSE(MergeJson(J(R"({"a": 1})"), {J(R"({"a": 2})"), kA}, {leaf, kB}, Merge()))
        << leaf.dump(-1, ' ', false, Value::error_handler_t::replace);
  }
  // Whole, the nested policy decides (IncomingWins on a merge rule): lww, prefer.
  EXPECT_TRUE(IncomingWins(Merge(), {"x", kA}, {"y", kB}));
  EXPECT_FALSE(IncomingWins(Merge(Policy::kPrefer, "a"), {"x", kA}, {"y", kB}));
  EXPECT_TRUE(IncomingWins(Merge(Policy::kMax), {1, kB}, {2, kA}));
}

TEST(JsonMergeTest, BaseThatIsNoDocumentCountsAsEmpty) {
  // From NULL (or invalid JSON), both sides' keys: the same key set differently conflicts.
  for (const Value& base : {Value(), Value("not json")}) {
    JsonMerge m = Both(base, J(R"({"x": 1, "k": 1})"), J(R"({"y": 2, "k": 2})"));
    EXPECT_EQ(m.value, J(R"({"x": 1, "y": 2, "k": 2})"));
    ASSERT_EQ(m.conflicts.size(), 1u);
    EXPECT_EQ(m.conflicts[0].path, "/k");
    EXPECT_FALSE(m.conflicts[0].base.has_value());
  }
}

TEST(JsonMergeTest, TextStaysTextInJsonbLayout) {
  // json/jsonb and TEXT columns arrive as text: merged as documents, written back as text the
  // way jsonb prints it (keys by length, then bytes).
  JsonMerge m = Both("{\"name\":\"Ann\",\"phone\":\"1\",\"zz\":{\"b\":1,\"a\":[1,2]}}",
                     "{\"name\":\"Ann\",\"phone\":\"2\",\"zz\":{\"b\":1,\"a\":[1,2]}}",
                     "  {\"name\": \"Bo\", \"phone\": \"1\", \"zz\": {\"b\": 1, \"a\": [1, 2]}}");
  EXPECT_EQ(m.value, Value(R"({"zz": {"a": [1, 2], "b": 1}, "name": "Bo", "phone": "2"})"));
  // Text on one side, a value on the other (two kinds of connector): text.
  JsonMerge mixed = Both(J(R"({"x": 1, "y": 1})"), J(R"({"x": 2, "y": 1})"), R"({"x": 1, "y": 3})");
  EXPECT_EQ(mixed.value, Value(R"({"x": 2, "y": 3})"));
  // Values stay values.
  EXPECT_TRUE(Both(J("{}"), J(R"({"x": 1})"), J(R"({"y": 1})")).value.is_object());
  // Escapes and non-ASCII text as jsonb prints them.
  EXPECT_EQ(JsonbText(J(R"({"k\"": "æ\n", "": null, "l": [true, 1.5, {}]})")),
            R"({"": null, "l": [true, 1.5, {}], "k\"": "æ\n"})");
}

TEST(JsonMergeTest, SameDocumentInTwoForms) {
  EXPECT_TRUE(SameDocument(J(R"({"a": 1})"), R"({ "a" : 1 })"));
  EXPECT_TRUE(SameDocument(R"({"a":1,"b":2})", R"({"b": 2, "a": 1})"));
  EXPECT_TRUE(SameDocument("plain", "plain"));
  EXPECT_FALSE(SameDocument(R"({"a": 1})", R"({"a": 2})"));
  EXPECT_FALSE(SameDocument("[1]", J("[1]")));  // no documents: values compared as they are
  EXPECT_FALSE(SameDocument(R"({"a": 1})", "{bad"));
}

TEST(JsonMergeTest, P4ThreeEndpointsInEveryArrivalOrder) {
  // Three edits of one base, folded pairwise in every order as the resolver merges them
  // (each against the base it started from): one document.
  const Value base = J(R"({"a": 1, "b": 1, "c": 1, "o": {"x": 1}})");
  const std::vector<std::pair<Value, Version>> edits = {
      {J(R"({"a": 2, "b": 1, "c": 1, "o": {"x": 1, "y": 1}})"), Version{100, "e1"}},
      {J(R"({"a": 3, "b": 2, "c": 1, "o": {"x": 2}})"), Version{300, "e2"}},
      {J(R"({"a": 1, "b": 1, "o": {"x": 1}, "d": 4})"), Version{200, "e3"}}};
  std::vector<int> order = {0, 1, 2};
  std::optional<Value> first;
  do {
    Candidate agreed{edits[order[0]].first, edits[order[0]].second};
    for (int k = 1; k < 3; ++k) {
      std::optional<JsonMerge> m =
          MergeJson(base, agreed, {edits[order[k]].first, edits[order[k]].second}, Merge());
      ASSERT_TRUE(m);
      // The merged document carries the later version (what the resolver records).
      Version later = IncomingWins(FieldPolicy{}, agreed, {Value(), edits[order[k]].second})
                          ? edits[order[k]].second
                          : agreed.version;
      agreed = {m->value, later};
    }
    if (!first) first = agreed.value;
    EXPECT_EQ(agreed.value, *first) << order[0] << order[1] << order[2];
  } while (std::next_permutation(order.begin(), order.end()));
  EXPECT_EQ(*first, J(R"({"a": 3, "b": 2, "o": {"x": 2, "y": 1}, "d": 4})"));
}

}  // namespace
}  // namespace duplex
