// Schema binding (src/pipeline/schema_binding.h) over tables described by hand: the type clash
// is decided by the columns' kinds (ColumnKind), whatever their declared type names.
#include "pipeline/schema_binding.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>

#include "support/test_util.h"

namespace duplex {
namespace {

// Field `f` of collection `c`, keyed by `id`, on endpoints a and b; the endpoints' tables are
// described by `tables_`.
class SchemaBindingTest : public ::testing::Test {
 protected:
  // Table `c` of endpoint `endpoint`: id INTEGER PRIMARY KEY and column f of `type`/`kind`.
  void Column(const std::string& endpoint, const std::string& type, ColumnKind kind) {
    TableInfo t;
    t.name = "c";
    t.exists = true;
    ColumnInfo id{"id", "INTEGER", false, false, 1, false, ColumnKind::kInteger};
    ColumnInfo f{"f", type, false, false, 0, false, kind};
    t.columns = {id, f};
    tables_[endpoint] = std::move(t);
  }

  // `more`: further lines of collection c (fields.f = {...}).
  Result<SyncModel> Bind(const std::string& more = "") {
    Result<Config> config = ParseConfig(
        "[endpoints.a]\ntype = \"sqlite\"\npath = \"a.db\"\n"
        "[endpoints.b]\ntype = \"sqlite\"\npath = \"b.db\"\n"
        "[collections.c]\nkey = [\"id\"]\n"
        "endpoints.a = { table = \"c\" }\nendpoints.b = { table = \"c\" }\n" +
            more,
        "/tmp/duplex.toml");
    if (!config.ok()) return config.status();
    config_ = std::move(config).value();
    return BindSchema(config_, [&](const std::string& endpoint, const std::string&) {
      return Result<TableInfo>(tables_.at(endpoint));
    });
  }

  // Whether a has `ka` and b `kb` (with any type names) bind, or clash.
  bool Clash(ColumnKind ka, ColumnKind kb) {
    Column("a", "ta", ka);
    Column("b", "tb", kb);
    Result<SyncModel> model = Bind();
    if (model.ok()) return false;
    EXPECT_TRUE(model.status().IsInvalidArgument()) << model.status().ToString();
    EXPECT_NE(model.status().message().find("type clash on field 'f'"), std::string::npos)
        << model.status().ToString();
    return true;
  }

  std::map<std::string, TableInfo> tables_;
  Config config_;
};

TEST_F(SchemaBindingTest, EnumOrPicklistTextBindsWithText) {
  // Names the old type-name rules read as numbers: the connector says they hold text.
  for (const char* type : {"tier_t", "picklist", "enum('gold','silver')"}) {
    Column("a", type, ColumnKind::kText);
    Column("b", "TEXT", ColumnKind::kText);
    Result<SyncModel> model = Bind();
    ASSERT_OK(model);
    ASSERT_EQ(model->models.size(), 1u);
    EXPECT_EQ(model->models[0].fields, std::vector<std::string>{"f"}) << type;
  }
}

TEST_F(SchemaBindingTest, TypeNamesAreNeverCompared) {
  // A type name that reads as a number, declared by a connector as text: no clash with text.
  Column("a", "INTEGER", ColumnKind::kText);
  Column("b", "TEXT", ColumnKind::kText);
  ASSERT_OK(Bind());
  // And the other way round: names that read alike, kinds that clash.
  Column("a", "TEXT", ColumnKind::kInteger);
  Column("b", "TEXT", ColumnKind::kText);
  EXPECT_FALSE(Bind().ok());
}

TEST_F(SchemaBindingTest, NumbersAgainstTextClash) {
  for (ColumnKind number : {ColumnKind::kInteger, ColumnKind::kReal, ColumnKind::kBoolean}) {
    for (ColumnKind text : {ColumnKind::kText, ColumnKind::kJson}) {
      EXPECT_TRUE(Clash(number, text)) << ColumnKindName(number) << " vs " << ColumnKindName(text);
      EXPECT_TRUE(Clash(text, number)) << ColumnKindName(text) << " vs " << ColumnKindName(number);
    }
  }
}

TEST_F(SchemaBindingTest, KindsOfOneGroupBind) {
  const ColumnKind numbers[] = {ColumnKind::kInteger, ColumnKind::kReal, ColumnKind::kBoolean};
  for (ColumnKind x : numbers) {
    for (ColumnKind y : numbers)
      EXPECT_FALSE(Clash(x, y)) << ColumnKindName(x) << ColumnKindName(y);
  }
  EXPECT_FALSE(Clash(ColumnKind::kText, ColumnKind::kJson));
  EXPECT_FALSE(Clash(ColumnKind::kJson, ColumnKind::kText));
}

TEST_F(SchemaBindingTest, DecimalTimeBinaryAndAnyBindWithEveryKind) {
  const ColumnKind all[] = {ColumnKind::kInteger, ColumnKind::kReal,   ColumnKind::kDecimal,
                            ColumnKind::kText,    ColumnKind::kBinary, ColumnKind::kBoolean,
                            ColumnKind::kTime,    ColumnKind::kJson,   ColumnKind::kAny};
  for (ColumnKind either :
       {ColumnKind::kDecimal, ColumnKind::kTime, ColumnKind::kBinary, ColumnKind::kAny}) {
    for (ColumnKind other : all) {
      EXPECT_FALSE(Clash(either, other))
          << ColumnKindName(either) << " vs " << ColumnKindName(other);
    }
  }
}

TEST_F(SchemaBindingTest, ClashNamesTheDeclaredTypesAndKinds) {
  Column("a", "bigint", ColumnKind::kInteger);
  Column("b", "tier_t", ColumnKind::kText);
  Result<SyncModel> model = Bind();
  ASSERT_FALSE(model.ok());
  for (const char* part : {"field 'f'", "a has 'bigint' (integer)", "b has 'tier_t' (text)"}) {
    EXPECT_NE(model.status().message().find(part), std::string::npos)
        << part << " in " << model.status().message();
  }
}

// union reads values as sets: arrays (PostgreSQL's are kAny), JSON and text hold them; a
// column of any other kind is a config error naming the collection, field and column.
TEST_F(SchemaBindingTest, UnionNeedsAnArrayJsonOrTextColumn) {
  const std::string union_f = "fields.f = { policy = \"union\" }\n";
  for (ColumnKind ok : {ColumnKind::kText, ColumnKind::kJson, ColumnKind::kAny}) {
    Column("a", "ta", ok);
    Column("b", "tb", ColumnKind::kText);
    Result<SyncModel> model = Bind(union_f);
    EXPECT_TRUE(model.ok()) << ColumnKindName(ok) << ": " << model.status().ToString();
  }
  for (ColumnKind bad : {ColumnKind::kInteger, ColumnKind::kReal, ColumnKind::kDecimal,
                         ColumnKind::kBinary, ColumnKind::kBoolean, ColumnKind::kTime}) {
    Column("a", "text[]", ColumnKind::kAny);
    Column("b", "tb", bad);
    Result<SyncModel> model = Bind(union_f);
    ASSERT_FALSE(model.ok()) << ColumnKindName(bad);
    EXPECT_TRUE(model.status().IsInvalidArgument());
    for (const std::string& part :
         {std::string("collection 'c'"), std::string("field 'f' has policy \"union\""),
          std::string("b has column 'f' of type 'tb' (") + ColumnKindName(bad) + ")"}) {
      EXPECT_NE(model.status().message().find(part), std::string::npos)
          << part << " in " << model.status().message();
    }
  }
}

// merge reads values as JSON documents: json/jsonb and text hold them (and kAny, as for union);
// a number, time or binary column is a config error naming the collection, field and column.
TEST_F(SchemaBindingTest, MergeNeedsAJsonOrTextColumn) {
  const std::string merge_f = "fields.f = { policy = \"merge\" }\n";
  for (ColumnKind ok : {ColumnKind::kText, ColumnKind::kJson, ColumnKind::kAny}) {
    Column("a", "jsonb", ok);
    Column("b", "TEXT", ColumnKind::kText);
    Result<SyncModel> model = Bind(merge_f);
    EXPECT_TRUE(model.ok()) << ColumnKindName(ok) << ": " << model.status().ToString();
  }
  Column("a", "anything", ColumnKind::kAny);  // goes with any kind: no type clash first
  Column("b", "INTEGER", ColumnKind::kInteger);
  Result<SyncModel> model = Bind(merge_f);
  ASSERT_FALSE(model.ok());
  for (const std::string& part :
       {std::string("collection 'c'"), std::string("field 'f' has policy \"merge\""),
        std::string("b has column 'f' of type 'INTEGER'"), std::string("JSON document")}) {
    EXPECT_NE(model.status().message().find(part), std::string::npos)
        << part << " in " << model.status().message();
  }
}

}  // namespace
}  // namespace duplex
