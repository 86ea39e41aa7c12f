// RecordKey (include/duplex/ids.h) and RecordKeyOf (src/util/json_value.h): the one name of a
// record, "collection\n" + the key values in key-field order as a JSON array.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "duplex/ids.h"
#include "util/json_value.h"

namespace duplex {
namespace {

TEST(RecordKeyTest, SpellsTheCollectionANewlineAndTheKeyValuesAsAnArray) {
  const RecordKey k = RecordKeyOf("customer", Row{{"id", 1}}, {"id"});
  EXPECT_EQ(k.collection, "customer");
  EXPECT_EQ(k.key_text, "[1]");
  EXPECT_EQ(k.ToString(), "customer\n[1]");
  EXPECT_EQ(RecordKeyOf("account", Row{{"id", "crm:17"}}, {"id"}).ToString(),
            "account\n[\"crm:17\"]");
}

TEST(RecordKeyTest, ParseIsTheInverseOfToString) {
  const std::vector<RecordKey> keys = {
      RecordKeyOf("customer", Row{{"id", 1}}, {"id"}),
      RecordKeyOf("t", Row{{"id", -42}}, {"id"}),
      RecordKeyOf("t", Row{{"id", 2.5}}, {"id"}),
      RecordKeyOf("t", Row{{"id", nullptr}}, {"id"}),
      RecordKeyOf("t", Row{{"a", 1}, {"b", "x"}}, {"b", "a"}),
      RecordKeyOf("order_lines", Row{{"order", "A-1"}, {"line", 3}}, {"order", "line"}),
      RecordKey{"t", "[]"},
  };
  for (const RecordKey& k : keys) {
    const RecordKey back = RecordKey::Parse(k.ToString());
    EXPECT_EQ(back, k) << k.ToString();
    EXPECT_EQ(back.ToString(), k.ToString());
  }
}

// Text keys may hold what looks like the separator: JSON escapes a newline, so the first
// newline of the name is always the one after the collection.
TEST(RecordKeyTest, TextWithNewlinesQuotesAndUnicodeRoundTrips) {
  const std::vector<std::string> texts = {"two\nlines",
                                          "\n",
                                          "say \"hi\"",
                                          "back\\slash",
                                          "tab\there",
                                          "\xC3\xA9t\xC3\xA9",
                                          "\xE6\x97\xA5\xE6\x9C\xAC",
                                          "\xF0\x9F\x98\x80 emoji",
                                          "customer\n[1]",
                                          "",
                                          "[1]",
                                          "a\r\nb"};
  for (const std::string& text : texts) {
    const RecordKey k = RecordKeyOf("note", Row{{"id", text}}, {"id"});
    const std::string name = k.ToString();
    EXPECT_EQ(name.find('\n'), std::string("note").size()) << name;
    EXPECT_EQ(k.key_text.find('\n'), std::string::npos) << k.key_text;
    const RecordKey back = RecordKey::Parse(name);
    EXPECT_EQ(back, k);
    // The key text is the values as JSON: they come back whole.
    EXPECT_EQ(Value::parse(back.key_text), Value::array({text})) << name;
  }
  // Unicode stays as it is (UTF-8), not \u-escaped: one spelling for one value.
  EXPECT_EQ(RecordKeyOf("note", Row{{"id", "\xC3\xA9"}}, {"id"}).key_text, "[\"\xC3\xA9\"]");
}

// A composite key is spelled in the collection's key-field order (the config's), not the
// order of the key's fields by name: the same values in another order name another record.
TEST(RecordKeyTest, CompositeKeysFollowTheKeyFieldOrder) {
  const Row key = {{"region", "eu"}, {"num", 7}};
  EXPECT_EQ(RecordKeyOf("order", key, {"region", "num"}).ToString(), "order\n[\"eu\",7]");
  EXPECT_EQ(RecordKeyOf("order", key, {"num", "region"}).ToString(), "order\n[7,\"eu\"]");
  EXPECT_NE(RecordKeyOf("order", key, {"region", "num"}),
            RecordKeyOf("order", key, {"num", "region"}));
  // Independent of how the key row was built.
  Row other = Row::object();
  other["num"] = 7;
  other["region"] = "eu";
  EXPECT_EQ(RecordKeyOf("order", other, {"region", "num"}),
            RecordKeyOf("order", key, {"region", "num"}));
  // A missing key field is null.
  EXPECT_EQ(RecordKeyOf("order", Row{{"num", 7}}, {"region", "num"}).key_text, "[null,7]");
}

TEST(RecordKeyTest, DifferentCollectionsAndValueTypesNameDifferentRecords) {
  EXPECT_NE(RecordKeyOf("a", Row{{"id", 1}}, {"id"}), RecordKeyOf("b", Row{{"id", 1}}, {"id"}));
  EXPECT_NE(RecordKeyOf("a", Row{{"id", 1}}, {"id"}), RecordKeyOf("a", Row{{"id", "1"}}, {"id"}));
  // Ordered by collection, then key text.
  EXPECT_LT(RecordKeyOf("a", Row{{"id", 9}}, {"id"}), RecordKeyOf("b", Row{{"id", 1}}, {"id"}));
  EXPECT_LT(RecordKeyOf("a", Row{{"id", 1}}, {"id"}), RecordKeyOf("a", Row{{"id", 2}}, {"id"}));
}

TEST(RecordKeyTest, ParseOfANameWithoutKeyIsTheCollectionAlone) {
  EXPECT_EQ(RecordKey::Parse("customer"), (RecordKey{"customer", ""}));
  EXPECT_EQ(RecordKey::Parse("customer\n"), (RecordKey{"customer", ""}));
}

}  // namespace
}  // namespace duplex
