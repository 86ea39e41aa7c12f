// The Salesforce connector's cache of record Ids and external ids
// (src/connectors/salesforce/id_cache.h): what it answers, what it forgets.
#include <gtest/gtest.h>

#include "connectors/salesforce/id_cache.h"

namespace duplex::sf {
namespace {

TEST(SfIdCacheTest, AnswersBothWaysPerObject) {
  IdCache c;
  EXPECT_EQ(c.ExtOf("Account", "001A"), nullptr);
  c.Note("Account", "001A", "rec-1");
  c.Note("Account", "001B", "");  // created by the org's users: no external id
  ASSERT_NE(c.ExtOf("Account", "001A"), nullptr);
  EXPECT_EQ(*c.ExtOf("Account", "001A"), "rec-1");
  ASSERT_NE(c.ExtOf("Account", "001B"), nullptr);
  EXPECT_EQ(*c.ExtOf("Account", "001B"), "");
  ASSERT_NE(c.IdOf("Account", "REC-1"), nullptr);  // external ids match case-insensitively
  EXPECT_EQ(*c.IdOf("Account", "REC-1"), "001A");
  EXPECT_EQ(c.IdOf("Account", ""), nullptr);
  EXPECT_EQ(c.IdOf("Contact", "rec-1"), nullptr);
  EXPECT_EQ(c.ExtOf("Contact", "001A"), nullptr);
}

TEST(SfIdCacheTest, ADeletedRecordOrAChangedExternalIdNoLongerAnswersTheOldKey) {
  IdCache c;
  c.Note("Account", "001A", "rec-1");
  c.Forget("Account", "001A");
  EXPECT_EQ(c.IdOf("Account", "rec-1"), nullptr);
  ASSERT_NE(c.ExtOf("Account", "001A"), nullptr);  // a deleted record's key is still its own
  EXPECT_EQ(*c.ExtOf("Account", "001A"), "rec-1");

  c.Note("Account", "001B", "k-1");
  c.Note("Account", "001B", "k-2");  // a user changed the external id
  EXPECT_EQ(c.IdOf("Account", "k-1"), nullptr);
  ASSERT_NE(c.IdOf("Account", "k-2"), nullptr);
  EXPECT_EQ(*c.IdOf("Account", "k-2"), "001B");
  EXPECT_EQ(*c.ExtOf("Account", "001B"), "k-2");
}

TEST(SfIdCacheTest, BoundedInSize) {
  IdCache c;
  for (size_t i = 0; i <= IdCache::kMaxEntries; ++i) {
    c.Note("Account", "id" + std::to_string(i), "k" + std::to_string(i));
  }
  EXPECT_EQ(c.ExtOf("Account", "id0"), nullptr);  // emptied when full
  ASSERT_NE(c.ExtOf("Account", "id" + std::to_string(IdCache::kMaxEntries)), nullptr);
}

}  // namespace
}  // namespace duplex::sf
