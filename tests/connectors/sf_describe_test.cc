// Describe (src/connectors/salesforce/describe.h): describe types to duplex's column kinds, the
// local Salesforce's describe read into fields, and what the org lacks named with its fix.
#include <gtest/gtest.h>

#include "connectors/salesforce/describe.h"
#include "support/sf_emulator.h"

namespace duplex::sf {
namespace {

std::string KindName(std::string_view type) {
  std::optional<SfColumnKind> k = ColumnKindOf(type);
  return k ? SfColumnKindName(*k) : "none";
}

TEST(SfDescribeTest, DescribeTypesMapToColumnKinds) {
  EXPECT_EQ(KindName("int"), "integer");
  EXPECT_EQ(KindName("double"), "real");
  EXPECT_EQ(KindName("currency"), "decimal");
  EXPECT_EQ(KindName("percent"), "decimal");
  for (const char* t : {"string", "textarea", "picklist", "multipicklist", "email", "phone", "url",
                        "id", "reference", "combobox"}) {
    EXPECT_EQ(KindName(t), "text") << t;
  }
  EXPECT_EQ(KindName("boolean"), "boolean");
  EXPECT_EQ(KindName("date"), "time");
  EXPECT_EQ(KindName("datetime"), "time");
  EXPECT_EQ(KindName("time"), "time");
  EXPECT_EQ(KindName("base64"), "binary");
  EXPECT_EQ(KindName("address"), "none");
  EXPECT_EQ(KindName("location"), "none");
  EXPECT_EQ(KindName("DateTime"), "time");  // names are case-insensitive
}

TEST(SfDescribeTest, TheEmulatorsAccountAndContact) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  ClientOptions o = emu.ClientOptions();
  Client c(o);
  Result<ObjectInfo> account = Describe(c, "Account");
  ASSERT_TRUE(account.ok()) << account.status().ToString();
  EXPECT_EQ(account->name, "Account");
  EXPECT_EQ(account->key_prefix, "001");
  EXPECT_TRUE(account->replicateable);
  const FieldInfo* name = account->Field("name");
  ASSERT_NE(name, nullptr);
  EXPECT_EQ(name->type, "string");
  EXPECT_EQ(name->length, 255);
  EXPECT_FALSE(name->nillable);
  const FieldInfo* rating = account->Field("Rating");
  ASSERT_NE(rating, nullptr);
  EXPECT_EQ(rating->picklist_values, (std::vector<std::string>{"Hot", "Warm", "Cold"}));
  EXPECT_EQ(rating->kind(), SfColumnKind::kText);
  EXPECT_EQ(account->Field("AnnualRevenue")->kind(), SfColumnKind::kDecimal);
  EXPECT_EQ(account->Field("NumberOfEmployees")->kind(), SfColumnKind::kInteger);
  EXPECT_EQ(account->Field("SystemModstamp")->kind(), SfColumnKind::kTime);
  EXPECT_FALSE(account->Field("SystemModstamp")->updateable);
  const FieldInfo* ext = account->Field("External_Id__c");
  ASSERT_NE(ext, nullptr);
  EXPECT_TRUE(ext->external_id);
  EXPECT_TRUE(ext->unique);
  EXPECT_TRUE(CheckObject(*account, "External_Id__c", {"Name", "Industry", "Rating"}).empty());

  Result<ObjectInfo> contact = Describe(c, "Contact");
  ASSERT_TRUE(contact.ok());
  const FieldInfo* parent = contact->Field("AccountId");
  ASSERT_NE(parent, nullptr);
  EXPECT_EQ(parent->reference_to, (std::vector<std::string>{"Account"}));
  EXPECT_EQ(parent->relationship_name, "Account");

  // What the org lacks, with the fix.
  std::vector<std::string> problems =
      CheckObject(*account, "Name", {"Nope__c", "SystemModstamp", "Industry"});
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_NE(problems[0].find("field 'Name' is not an External ID: mark it External ID"),
            std::string::npos)
      << problems[0];
  EXPECT_NE(problems[1].find("has no field 'Nope__c'"), std::string::npos) << problems[1];
  EXPECT_NE(problems[2].find("'SystemModstamp' is read-only"), std::string::npos) << problems[2];
  problems = CheckObject(*account, "duplex_key__c", {});
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("marked External ID and Unique"), std::string::npos) << problems[0];

  Result<ObjectInfo> none = Describe(c, "Nope__c");
  ASSERT_FALSE(none.ok());
  EXPECT_TRUE(none.status().IsNotFound()) << none.status().ToString();
  EXPECT_NE(none.status().message().find("object 'Nope__c'"), std::string::npos);
  EXPECT_FALSE(ParseDescribe(nlohmann::json::array()).ok());
}

}  // namespace
}  // namespace duplex::sf
