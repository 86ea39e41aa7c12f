// The Salesforce writes (src/connectors/salesforce/writes.h) against the local Salesforce:
// Collections upsert by external id and delete, Composite parent-and-children, per-record
// outcomes, retries after lock timeouts, 503 and lost replies without duplicates (P6).
#include <gtest/gtest.h>

#include <string>

#include "connectors/salesforce/writes.h"
#include "support/sf_emulator.h"

namespace duplex::sf {
namespace {

using testing::SfEmulator;

ClientOptions Options(const SfEmulator& emu) { return emu.ClientOptions(); }

nlohmann::json Account(const std::string& key, const std::string& name) {
  return {{"External_Id__c", key}, {"Name", name}};
}

// The live Accounts by name (query, not queryAll).
std::vector<std::string> Names(Client& c, const std::string& object = "Account",
                               const std::string& field = "Name") {
  std::vector<std::string> out;
  Status st = c.Query("SELECT " + field + " FROM " + object + " ORDER BY " + field, false,
                      [&](nlohmann::json& page) {
                        for (const nlohmann::json& r : page) out.push_back(r[field]);
                        return Status::Ok();
                      });
  EXPECT_TRUE(st.ok()) << st.ToString();
  return out;
}

class SfWritesTest : public ::testing::Test {
 protected:
  SfEmulator emu_;
  Client client_{Options(emu_)};
  Writer writer_{client_, *Env::Default(), 4, std::chrono::milliseconds(10)};
};

TEST_F(SfWritesTest, UpsertCreatesThenUpdatesAndRefusesPerRecord) {
  ASSERT_TRUE(emu_.running());
  Result<std::vector<RecordResult>> r =
      writer_.Upsert("Account", "External_Id__c", {Account("A-1", "One"), Account("A-2", "Two")});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].outcome, WriteOutcome::kCreated);
  EXPECT_EQ((*r)[0].id.size(), 18u);
  EXPECT_EQ(writer_.last_calls(), 1);

  // One call: an update, a refused picklist value, a missing required field, a new record.
  nlohmann::json bad_rating = Account("A-3", "Three");
  bad_rating["Rating"] = "Tepid";
  nlohmann::json no_name = {{"External_Id__c", "A-4"}, {"Industry", "x"}};
  r = writer_.Upsert("Account", "External_Id__c",
                     {Account("a-1", "Uno"), bad_rating, no_name, Account("A-5", "Five")});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ((*r)[0].outcome, WriteOutcome::kUpdated);  // external ids match case-insensitively
  EXPECT_EQ((*r)[1].outcome, WriteOutcome::kRefused);
  EXPECT_EQ((*r)[1].code, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
  EXPECT_EQ((*r)[1].fields, "Rating");
  EXPECT_NE((*r)[1].message.find("object 'Account', record 'A-3', field 'Rating'"),
            std::string::npos)
      << (*r)[1].message;
  EXPECT_NE((*r)[1].message.find("Tepid"), std::string::npos) << (*r)[1].message;
  EXPECT_EQ((*r)[2].outcome, WriteOutcome::kRefused);
  EXPECT_EQ((*r)[2].code, "REQUIRED_FIELD_MISSING");
  EXPECT_EQ((*r)[2].fields, "Name");
  EXPECT_EQ((*r)[3].outcome, WriteOutcome::kCreated);  // the rest flows
  EXPECT_EQ(Names(client_), (std::vector<std::string>{"Five", "Two", "Uno"}));

  // A value too long for the field.
  r = writer_.Upsert("Account", "External_Id__c", {Account("A-6", std::string(256, 'x'))});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].code, "STRING_TOO_LONG");
  EXPECT_EQ((*r)[0].outcome, WriteOutcome::kRefused);
}

TEST_F(SfWritesTest, MoreThan200RecordsTakeSeveralCalls) {
  ASSERT_TRUE(emu_.running());
  std::vector<nlohmann::json> records;
  for (int i = 0; i < 450; ++i) records.push_back(Account("K-" + std::to_string(i), "n"));
  Result<std::vector<RecordResult>> r = writer_.Upsert("Account", "External_Id__c", records);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 450u);
  for (const RecordResult& x : *r) EXPECT_EQ(x.outcome, WriteOutcome::kCreated) << x.message;
  EXPECT_EQ(writer_.last_calls(), 3);
  EXPECT_EQ(Names(client_).size(), 450u);
}

TEST_F(SfWritesTest, LockTimeouts503AndLostRepliesAreRetriedWithoutDuplicates) {
  ASSERT_TRUE(emu_.running());
  // The reply of a committed upsert is lost: sent again, it updates what it created.
  emu_.Hook("faults", {{"kind", "DROP_RESPONSE_AFTER_COMMIT"}, {"count", 1}});
  Result<std::vector<RecordResult>> r =
      writer_.Upsert("Account", "External_Id__c", {Account("L-1", "Lost"), Account("L-2", "Too")});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].outcome, WriteOutcome::kUpdated);
  EXPECT_EQ((*r)[1].outcome, WriteOutcome::kUpdated);
  EXPECT_EQ(writer_.last_calls(), 2);
  EXPECT_EQ(Names(client_), (std::vector<std::string>{"Lost", "Too"}));

  // One record's row lock times out: only it is sent again.
  emu_.Hook("faults", {{"kind", "UNABLE_TO_LOCK_ROW"}, {"count", 1}});
  r = writer_.Upsert("Account", "External_Id__c", {Account("L-1", "Lost 2"), Account("L-3", "3")});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].outcome, WriteOutcome::kUpdated);
  EXPECT_EQ((*r)[1].outcome, WriteOutcome::kCreated);
  EXPECT_EQ(writer_.last_calls(), 2);

  // 503 on the call.
  emu_.Hook("faults", {{"kind", "HTTP_503"}, {"count", 2}});
  r = writer_.Upsert("Account", "External_Id__c", {Account("L-4", "Four")});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].outcome, WriteOutcome::kCreated);
  EXPECT_EQ(writer_.last_calls(), 3);

  // A fault that outlasts the attempts stays retriable for the engine.
  emu_.Hook("faults", {{"kind", "UNABLE_TO_LOCK_ROW"}, {"count", 4}});
  r = writer_.Upsert("Account", "External_Id__c", {Account("L-5", "Five")});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].outcome, WriteOutcome::kRetriable);
  EXPECT_EQ((*r)[0].code, "UNABLE_TO_LOCK_ROW");
  EXPECT_EQ(Names(client_), (std::vector<std::string>{"3", "Four", "Lost 2", "Too"}));
}

TEST_F(SfWritesTest, TheDailyQuotaIsItsOwnOutcome) {
  ASSERT_TRUE(emu_.running());
  emu_.Hook("faults", {{"kind", "REQUEST_LIMIT_EXCEEDED"}, {"count", 1}});
  std::vector<nlohmann::json> records;
  for (int i = 0; i < 250; ++i) records.push_back(Account("Q-" + std::to_string(i), "q"));
  Result<std::vector<RecordResult>> r = writer_.Upsert("Account", "External_Id__c", records);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  for (const RecordResult& x : *r) EXPECT_EQ(x.outcome, WriteOutcome::kQuotaExceeded);
  EXPECT_EQ(writer_.last_calls(), 1);  // no second batch into a closed quota
  EXPECT_TRUE(client_.quota_exhausted());
  EXPECT_TRUE(Names(client_).empty());
}

TEST_F(SfWritesTest, AnExpiredSessionIsRenewedOnce) {
  ASSERT_TRUE(emu_.running());
  ASSERT_TRUE(writer_.Upsert("Account", "External_Id__c", {Account("S-1", "s")}).ok());
  emu_.Hook("expire-sessions", nlohmann::json::object());
  Result<std::vector<RecordResult>> r =
      writer_.Upsert("Account", "External_Id__c", {Account("S-1", "renewed")});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].outcome, WriteOutcome::kUpdated);
}

TEST_F(SfWritesTest, UpdatesByIdForRecordsWithoutAnExternalId) {
  ASSERT_TRUE(emu_.running());
  const std::string id = emu_.Api("POST", "/sobjects/Account", {{"Name", "A user's"}})["id"];
  const std::string gone = emu_.Api("POST", "/sobjects/Account", {{"Name", "Gone"}})["id"];
  emu_.Api("DELETE", "/sobjects/Account/" + gone);
  emu_.Hook("faults", {{"kind", "DROP_RESPONSE_AFTER_COMMIT"}, {"count", 1}});
  Result<std::vector<RecordResult>> r =
      writer_.Update("Account", {{{"Id", id}, {"Industry", "Energy"}},
                                 {{"Id", gone}, {"Industry", "x"}},
                                 {{"Id", id.substr(0, 15)}, {"Rating", "Tepid"}}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].outcome, WriteOutcome::kUpdated);
  EXPECT_EQ((*r)[1].outcome, WriteOutcome::kRefused);
  EXPECT_EQ((*r)[1].code, "ENTITY_IS_DELETED");
  EXPECT_EQ((*r)[2].outcome, WriteOutcome::kRefused);
  EXPECT_NE((*r)[2].message.find("field 'Rating'"), std::string::npos) << (*r)[2].message;
  EXPECT_EQ(writer_.last_calls(), 2);  // the lost reply: sent again
  EXPECT_EQ(emu_.Api("GET", "/sobjects/Account/" + id)["Industry"], "Energy");
}

TEST_F(SfWritesTest, DeletesAreIdempotent) {
  ASSERT_TRUE(emu_.running());
  Result<std::vector<RecordResult>> r =
      writer_.Upsert("Account", "External_Id__c", {Account("D-1", "d1"), Account("D-2", "d2")});
  ASSERT_TRUE(r.ok());
  const std::string id1 = (*r)[0].id, id2 = (*r)[1].id;
  emu_.Hook("faults", {{"kind", "DROP_RESPONSE_AFTER_COMMIT"}, {"count", 1}});
  r = writer_.Delete("Account", {id1});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].outcome, WriteOutcome::kDeleted);  // found deleted on the retry
  EXPECT_EQ(writer_.last_calls(), 2);
  r = writer_.Delete("Account", {id1, id2, "001000000000zzzAAA"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].outcome, WriteOutcome::kDeleted);
  EXPECT_EQ((*r)[1].outcome, WriteOutcome::kDeleted);
  EXPECT_EQ((*r)[2].outcome, WriteOutcome::kRefused) << (*r)[2].message;
  EXPECT_TRUE(Names(client_).empty());
}

TEST_F(SfWritesTest, AParentAndItsChildrenInOneCompositeCall) {
  ASSERT_TRUE(emu_.running());
  Writer::Tree t;
  t.parent_object = "Account";
  t.parent_external_id_field = "External_Id__c";
  t.parent = Account("P-1", "Parent");
  t.child_object = "Contact";
  t.child_external_id_field = "External_Id__c";
  t.reference_field = "AccountId";
  t.children = {{{"External_Id__c", "C-1"}, {"LastName", "Kid one"}},
                {{"External_Id__c", "C/2 #x"}, {"LastName", "Kid two"}}};
  // Lost after commit: sent again, nothing doubles.
  emu_.Hook("faults", {{"kind", "DROP_RESPONSE_AFTER_COMMIT"}, {"count", 1}});
  Result<std::vector<RecordResult>> r = writer_.UpsertTree(t);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 3u);
  for (const RecordResult& x : *r) EXPECT_EQ(x.outcome, WriteOutcome::kUpdated) << x.message;
  EXPECT_EQ(writer_.last_calls(), 2);
  EXPECT_EQ(Names(client_, "Contact", "LastName"),
            (std::vector<std::string>{"Kid one", "Kid two"}));
  nlohmann::json kid = emu_.Api("GET", "/sobjects/Contact/" + (*r)[1].id);
  EXPECT_EQ(kid["AccountId"], (*r)[0].id);

  // All or none: one refused child rolls back the parent's change and its sibling.
  t.parent["Name"] = "Parent renamed";
  t.children = {{{"External_Id__c", "C-3"}, {"LastName", "Kid three"}},
                {{"External_Id__c", "C-4"}, {"FirstName", "no last name"}}};
  r = writer_.UpsertTree(t);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].outcome, WriteOutcome::kRolledBack);
  EXPECT_EQ((*r)[1].outcome, WriteOutcome::kRolledBack);
  EXPECT_EQ((*r)[2].outcome, WriteOutcome::kRefused);
  EXPECT_NE((*r)[2].message.find("object 'Contact', record 'C-4', field 'LastName'"),
            std::string::npos)
      << (*r)[2].message;
  EXPECT_EQ(Names(client_), (std::vector<std::string>{"Parent"}));
  EXPECT_EQ(Names(client_, "Contact", "LastName").size(), 2u);

  // 25 subrequests at most.
  t.children.assign(25, {{"External_Id__c", "x"}, {"LastName", "x"}});
  EXPECT_TRUE(writer_.UpsertTree(t).status().IsInvalidArgument());
}

// Writes of several objects and kinds go in one Composite call of Collections subrequests, in
// order, each record with its own outcome; a lock timeout is sent again alone.
TEST_F(SfWritesTest, SeveralObjectsAndKindsInOneCall) {
  ASSERT_TRUE(emu_.running());
  Result<std::vector<RecordResult>> first =
      writer_.Upsert("Account", "External_Id__c", {Account("W-1", "One"), Account("W-2", "Two")});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const int64_t before = emu_.Hook("stats")["api_calls"].get<int64_t>();

  Writer::Request accounts;
  accounts.object = "Account";
  accounts.external_id_field = "External_Id__c";
  nlohmann::json bad = Account("W-4", "Four");
  bad["Rating"] = "Tepid";
  accounts.records = {Account("W-1", "Uno"), Account("W-3", "Three"), bad};
  Writer::Request contacts;
  contacts.object = "Contact";
  contacts.external_id_field = "External_Id__c";
  contacts.records = {{{"External_Id__c", "C-1"}, {"LastName", "Doe"}}};
  Writer::Request deletes;
  deletes.kind = Writer::Request::Kind::kDelete;
  deletes.object = "Account";
  deletes.ids = {(*first)[1].id};
  Result<std::vector<std::vector<RecordResult>>> r = writer_.Write({accounts, contacts, deletes});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(writer_.last_calls(), 1);
  EXPECT_EQ(emu_.Hook("stats")["api_calls"].get<int64_t>() - before, 1);
  ASSERT_EQ(r->size(), 3u);
  ASSERT_EQ((*r)[0].size(), 3u);
  EXPECT_EQ((*r)[0][0].outcome, WriteOutcome::kUpdated);
  EXPECT_EQ((*r)[0][1].outcome, WriteOutcome::kCreated);
  EXPECT_EQ((*r)[0][2].outcome, WriteOutcome::kRefused);
  EXPECT_NE((*r)[0][2].message.find("record 'W-4', field 'Rating'"), std::string::npos)
      << (*r)[0][2].message;
  ASSERT_EQ((*r)[1].size(), 1u);
  EXPECT_EQ((*r)[1][0].outcome, WriteOutcome::kCreated);
  ASSERT_EQ((*r)[2].size(), 1u);
  EXPECT_EQ((*r)[2][0].outcome, WriteOutcome::kDeleted);
  EXPECT_EQ(Names(client_), (std::vector<std::string>{"Three", "Uno"}));
  EXPECT_EQ(Names(client_, "Contact", "LastName"), (std::vector<std::string>{"Doe"}));

  // One record's lock times out: only it goes again, and the reply of a committed call that is
  // lost makes the whole call go again without a duplicate (P6).
  emu_.Hook("faults", {{"kind", "UNABLE_TO_LOCK_ROW"}, {"count", 1}});
  accounts.records = {Account("W-1", "Eins"), Account("W-5", "Five")};
  contacts.records = {{{"External_Id__c", "C-1"}, {"LastName", "Roe"}}};
  r = writer_.Write({accounts, contacts});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(writer_.last_calls(), 2);
  EXPECT_EQ((*r)[0][0].outcome, WriteOutcome::kUpdated);
  EXPECT_TRUE((*r)[0][0].resent);
  EXPECT_EQ((*r)[0][1].outcome, WriteOutcome::kCreated);
  EXPECT_EQ((*r)[1][0].outcome, WriteOutcome::kUpdated);

  emu_.Hook("faults", {{"kind", "DROP_RESPONSE_AFTER_COMMIT"}, {"count", 1}});
  accounts.records = {Account("W-6", "Six")};
  contacts.records = {{{"External_Id__c", "C-2"}, {"LastName", "Poe"}}};
  r = writer_.Write({accounts, contacts});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(writer_.last_calls(), 2);
  EXPECT_EQ((*r)[0][0].outcome, WriteOutcome::kUpdated);
  EXPECT_EQ((*r)[1][0].outcome, WriteOutcome::kUpdated);
  EXPECT_EQ(Names(client_), (std::vector<std::string>{"Eins", "Five", "Six", "Three"}));
  EXPECT_EQ(Names(client_, "Contact", "LastName"), (std::vector<std::string>{"Poe", "Roe"}));
}

// More than five Collections requests take a Composite call per five.
TEST_F(SfWritesTest, OverFiveCollectionsRequestsTakeMoreCalls) {
  ASSERT_TRUE(emu_.running());
  std::vector<Writer::Request> requests;
  for (int i = 0; i < 7; ++i) {
    Writer::Request r;
    r.object = i % 2 ? "Contact" : "Account";
    r.external_id_field = "External_Id__c";
    const std::string key = "K-" + std::to_string(i);
    r.records = {i % 2 ? nlohmann::json{{"External_Id__c", key}, {"LastName", key}}
                       : Account(key, key)};
    requests.push_back(std::move(r));
  }
  Result<std::vector<std::vector<RecordResult>>> r = writer_.Write(requests);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(writer_.last_calls(), 2);
  for (const auto& per : *r) {
    ASSERT_EQ(per.size(), 1u);
    EXPECT_EQ(per[0].outcome, WriteOutcome::kCreated);
  }
  EXPECT_EQ(Names(client_).size(), 4u);
}

}  // namespace
}  // namespace duplex::sf
