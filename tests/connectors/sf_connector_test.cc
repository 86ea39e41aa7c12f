// The "salesforce" connector (src/connectors/salesforce/salesforce_connector.h) against the
// local Salesforce: its capabilities, positions that sort as bytes, the initial load and live
// changes in canonical names with record ids, idempotent writes (upsert by external id, update
// by Id, deletes of records already gone), references translated both ways, refused records
// reported per record, and the org's quota refusal as Unavailable.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <thread>

#include "connectors/registry.h"
#include "connectors/salesforce/salesforce_connector.h"
#include "support/sf_emulator.h"

namespace duplex::sf {
namespace {

SfEndpoint::Options Opts(const testing::SfEmulator& emu) {
  SfEndpoint::Options o;
  o.client = emu.ClientOptions("duplex");
  o.external_id = "External_Id__c";
  o.events = false;
  o.pacing.min_poll_seconds = 0.1;
  o.overlap_seconds = 2;
  return o;
}

CollectionBinding Accounts() {
  CollectionBinding b{"account", "Account", {"id"}, {}, true, {}};
  b.fields = {{"id", "Id"}, {"name", "Name"}, {"rating", "Rating"}};
  return b;
}
CollectionBinding Contacts() {
  CollectionBinding b{"contact", "Contact", {"id"}, {}, true, {}};
  b.fields = {{"id", "Id"}, {"last", "LastName"}, {"account", "AccountId"}};
  b.mapped_refs = {{"account", "account"}};
  return b;
}

RowOp W(WriteOp op, const std::string& collection, Row key, Row values) {
  RowOp w;
  w.op = op;
  w.collection = collection;
  w.key = std::move(key);
  w.values = std::move(values);
  return w;
}

std::unique_ptr<SalesforceConnector> Connect(const testing::SfEmulator& emu) {
  auto c = std::make_unique<SalesforceConnector>("crm", Opts(emu), *Env::Default());
  EXPECT_TRUE(c->Open().ok());
  EXPECT_TRUE(c->Describe("Account").ok());
  EXPECT_TRUE(c->Describe("Contact").ok());
  Status st = c->Bind({Accounts(), Contacts()});
  EXPECT_TRUE(st.ok()) << st.ToString();
  return c;
}

// Captures from *from until `n` changes came (or 15 s); checks positions grow.
std::vector<Change> CaptureN(Connector& c, Position* from, size_t n) {
  std::vector<Change> out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
    Result<bool> news = c.Poll();
    EXPECT_TRUE(news.ok());
    if (news.ok() && *news) {
      Result<ChangeBatch> b = c.Capture(*from, 1000);
      EXPECT_TRUE(b.ok()) << b.status().ToString();
      if (!b.ok()) break;
      for (Change& ch : b->changes) {
        EXPECT_GT(ch.position, *from) << "positions only grow";
        EXPECT_LE(ch.position, b->end);
        out.push_back(std::move(ch));
      }
      EXPECT_GE(b->end, *from);
      *from = std::max(*from, b->end);
    }
    if (out.size() < n) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_GE(out.size(), n) << "capture timed out";
  return out;
}

TEST(SalesforceConnectorTest, DeclaresWhatARestApiCannotDo) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  SfEndpoint::Options o = Opts(emu);
  o.pacing.budget = *ApiBudget::Parse("20000");
  o.pacing.min_poll_seconds = 2;
  SalesforceConnector c("crm", o, *Env::Default());
  Capabilities caps = c.capabilities();
  EXPECT_FALSE(caps.transactional_apply);
  EXPECT_FALSE(caps.markers);
  EXPECT_FALSE(caps.atomic_applied_id);
  EXPECT_FALSE(caps.before_images);
  EXPECT_FALSE(caps.compare_and_set);
  EXPECT_EQ(caps.max_apply_rows, 200u);
  EXPECT_EQ(caps.min_poll_interval, std::chrono::milliseconds(2000));
  EXPECT_EQ(caps.quota_calls, 20000);
  EXPECT_EQ(caps.quota_period, std::chrono::hours(24));
}

TEST(SalesforceConnectorTest, PositionsSortAsBytesInDeliveryOrder) {
  // A longer state after a smaller counter still sorts first: the counter leads.
  Position a = SalesforceConnector::MakePosition(9, "{\"replay\":1000,\"objects\":{}}");
  Position b = SalesforceConnector::MakePosition(10, "{}");
  Position c = SalesforceConnector::MakePosition(256, "{}");
  EXPECT_LT(Position(), a);
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_EQ(SalesforceConnector::CounterOf(c), 256u);
  EXPECT_EQ(SalesforceConnector::StateOf(a), "{\"replay\":1000,\"objects\":{}}");
  testing::SfEmulator emu;
  SalesforceConnector conn("crm", Opts(emu), *Env::Default());
  EXPECT_EQ(conn.DescribePosition(a), "#9 replay 1000");
  EXPECT_EQ(conn.DescribePosition(Position()), "start");
}

// The state behind a position (cursors, the rows delivered lately) grows with the rows a
// capture delivers; a copy of it in every change made a capture cost the square of its size.
TEST(SalesforceConnectorTest, ChangesCarryTheirCounterAndABatchEndsWithTheState) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  for (int i = 0; i < 6; ++i) {
    emu.Api("POST", "/sobjects/Account", {{"Name", "A" + std::to_string(i)}});
  }
  auto c = Connect(emu);
  ASSERT_TRUE(c->Poll().ok());
  Position pos;
  // Cut after two changes: the end resumes from the state before the capture.
  Result<ChangeBatch> first = c->Capture(pos, 2);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_EQ(first->changes.size(), 2u);
  for (const Change& ch : first->changes) EXPECT_EQ(ch.position.bytes().size(), 8u);
  EXPECT_EQ(SalesforceConnector::CounterOf(first->end),
            SalesforceConnector::CounterOf(first->changes.back().position));
  EXPECT_FALSE(SalesforceConnector::StateOf(first->end).empty());
  EXPECT_LT(first->changes.back().position, first->end);
  Result<ChangeBatch> rest = c->Capture(first->end, 1000);
  ASSERT_TRUE(rest.ok()) << rest.status().ToString();
  ASSERT_EQ(rest->changes.size(), 4u);
  for (const Change& ch : rest->changes) {
    EXPECT_EQ(ch.position.bytes().size(), 8u);
    EXPECT_GT(ch.position, first->end);
    EXPECT_LT(ch.position, rest->end);
  }
  // Every change delivered: the end carries the state after the capture.
  EXPECT_NE(SalesforceConnector::StateOf(rest->end), "{}");
  // A restart from the cut end delivers the rest again (and no more): the state before it.
  c = Connect(emu);
  ASSERT_TRUE(c->Poll().ok());
  Result<ChangeBatch> again = c->Capture(first->end, 1000);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_GE(again->changes.size(), 4u);
}

TEST(SalesforceConnectorTest, DescribeGivesKindsAndTheGeneratedKey) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  SalesforceConnector c("crm", Opts(emu), *Env::Default());
  ASSERT_TRUE(c.Open().ok());
  Result<TableInfo> t = c.Describe("Contact");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_TRUE(t->exists);
  std::map<std::string, ColumnInfo> cols;
  for (const ColumnInfo& col : t->columns) cols[col.name] = col;
  ASSERT_TRUE(cols.count("Id") && cols.count("LastName") && cols.count("AccountId"));
  EXPECT_EQ(cols["Id"].pk, 1);
  EXPECT_TRUE(cols["Id"].generated);
  EXPECT_EQ(cols["Id"].kind, ColumnKind::kAny) << "ids travel as record ids";
  EXPECT_EQ(cols["LastName"].kind, ColumnKind::kText);
  EXPECT_TRUE(cols["LastName"].not_null);
  // AccountId, and the system lookups (OwnerId, CreatedById, ... to User).
  const ForeignKeyInfo* account = nullptr;
  for (const ForeignKeyInfo& fk : t->foreign_keys) {
    if (fk.columns == std::vector<std::string>{"AccountId"}) account = &fk;
  }
  ASSERT_NE(account, nullptr);
  EXPECT_EQ(account->ref_table, "Account");
  EXPECT_EQ(account->ref_columns, std::vector<std::string>{"Id"});
  EXPECT_FALSE(account->deferrable);
  Result<TableInfo> none = c.Describe("NoSuchObject");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_FALSE(none->exists);
}

TEST(SalesforceConnectorTest, BindRefusesAKeyTheOrgCannotHold) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  SalesforceConnector c("crm", Opts(emu), *Env::Default());
  ASSERT_TRUE(c.Open().ok());
  CollectionBinding b{"account", "Account", {"name"}, {{"name", "Name"}}, false, {}};
  Status st = c.Bind({b});
  EXPECT_TRUE(st.IsInvalidArgument());
  EXPECT_NE(st.message().find("key_mode = \"mapped\""), std::string::npos) << st.message();
}

TEST(SalesforceConnectorTest, PreflightNamesWhatTheOrgLacks) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  SfEndpoint::Options o = Opts(emu);
  o.external_id = "Duplex_Key__c";
  SalesforceConnector c("crm", o, *Env::Default());
  ASSERT_TRUE(c.Open().ok());
  ASSERT_TRUE(c.Bind({Accounts()}).ok());
  Result<std::vector<std::string>> p = c.Preflight();
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ(p->size(), 1u);
  EXPECT_NE((*p)[0].find("object 'Account' has no field 'Duplex_Key__c'"), std::string::npos)
      << (*p)[0];
}

TEST(SalesforceConnectorTest, InitialLoadThenLiveChangesInCanonicalNames) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  const std::string acme = emu.Api("POST", "/sobjects/Account", {{"Name", "Acme"}})["id"];
  const std::string ours =
      emu.Api("POST", "/sobjects/Account", {{"Name", "Ours"}, {"External_Id__c", "ops:7"}})["id"];
  emu.Api("POST", "/sobjects/Contact", {{"LastName", "Kid"}, {"AccountId", acme}});
  auto c = Connect(emu);
  Position pos;
  std::vector<Change> load = CaptureN(*c, &pos, 3);
  ASSERT_EQ(load.size(), 3u);
  const std::string acme_record = RecordId("crm", Value(acme));
  int accounts = 0;
  for (const Change& ch : load) {
    EXPECT_TRUE(ch.snapshot);
    EXPECT_EQ(ch.op, Op::kInsert);
    EXPECT_GT(ch.commit_ms, 1.6e12);
    if (ch.collection == "account") {
      ++accounts;
      const std::string key = ch.key["id"];
      EXPECT_TRUE(key == acme_record || key == "ops:7") << key;
      EXPECT_EQ(ch.after["id"], ch.key["id"]);
      EXPECT_TRUE(ch.after.contains("rating"));
    } else {
      EXPECT_EQ(ch.collection, "contact");
      EXPECT_EQ(ch.after["last"], "Kid");
      EXPECT_EQ(ch.after["account"], acme_record) << "AccountId as the account's record id";
    }
  }
  EXPECT_EQ(accounts, 2);

  // A user's edit and delete, after the load.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  emu.Api("PATCH", "/sobjects/Account/" + acme, {{"Rating", "Hot"}});
  std::vector<Change> live = CaptureN(*c, &pos, 1);
  ASSERT_EQ(live.size(), 1u);
  EXPECT_FALSE(live[0].snapshot);
  EXPECT_EQ(live[0].op, Op::kUpdate);
  EXPECT_EQ(live[0].key["id"], acme_record);
  EXPECT_EQ(live[0].after["rating"], "Hot");
  EXPECT_EQ(live[0].after["name"], "Acme");

  // A restart resumes from the position: nothing delivered again, the next edit comes.
  c = Connect(emu);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  emu.Api("DELETE", "/sobjects/Account/" + ours);
  std::vector<Change> after = CaptureN(*c, &pos, 1);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].op, Op::kDelete);
  EXPECT_EQ(after[0].key["id"], "ops:7");
  EXPECT_NE(c->DescribePosition(pos).find("#"), std::string::npos);
}

TEST(SalesforceConnectorTest, WritesAreIdempotentAndReferencesTranslated) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  const std::string users = emu.Api("POST", "/sobjects/Account", {{"Name", "Users"}})["id"];
  auto c = Connect(emu);
  const std::string users_record = RecordId("crm", Value(users));
  RowOp parent = W(WriteOp::kInsert, "account", Row{{"id", "ops:1"}},
                   Row{{"id", "ops:1"}, {"name", "From ops"}, {"rating", nullptr}});
  RowOp child = W(WriteOp::kInsert, "contact", Row{{"id", "ops:2"}},
                  Row{{"id", "ops:2"}, {"last", "Child"}, {"account", "ops:1"}});
  RowOp own = W(WriteOp::kUpdate, "account", Row{{"id", users_record}}, Row{{"rating", "Warm"}});
  ApplyBatch batch{5, {parent, child, own}};
  Result<ApplyResult> r = c->Apply({batch});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->applied, 3u);
  EXPECT_TRUE(r->failed.empty());
  // Again, as after a lost reply: no duplicate.
  r = c->Apply({batch});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->applied, 3u);
  nlohmann::json q = emu.Api("GET", "/query?q=SELECT%20Id,AccountId%20FROM%20Contact");
  ASSERT_TRUE(q.is_object()) << q.dump();
  ASSERT_EQ(q["records"].size(), 1u) << q.dump();
  nlohmann::json parent_row = emu.Api(
      "GET", "/query?q=SELECT%20Id%20FROM%20Account%20WHERE%20External_Id__c%20=%20'ops:1'");
  ASSERT_TRUE(parent_row.is_object()) << parent_row.dump();
  ASSERT_EQ(parent_row["records"].size(), 1u);
  EXPECT_EQ(q["records"][0]["AccountId"], parent_row["records"][0]["Id"]);
  EXPECT_EQ(emu.Api("GET", "/sobjects/Account/" + users)["Rating"], "Warm");
  EXPECT_EQ(emu.Api("GET", "/query?q=SELECT%20Id%20FROM%20Account")["records"].size(), 2u);

  // Deletes: of duplex's record (by its external id), of the org's (by Id), and again.
  RowOp del_child = W(WriteOp::kDelete, "contact", Row{{"id", "ops:2"}}, Row::object());
  RowOp del_users = W(WriteOp::kDelete, "account", Row{{"id", users_record}}, Row::object());
  for (int i = 0; i < 2; ++i) {
    r = c->Apply({ApplyBatch{6, {del_child, del_users}}});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->applied, 2u);
    EXPECT_TRUE(r->failed.empty());
  }
  EXPECT_EQ(emu.Api("GET", "/query?q=SELECT%20Id%20FROM%20Contact")["records"].size(), 0u);
  EXPECT_EQ(emu.Api("GET", "/query?q=SELECT%20Id%20FROM%20Account")["records"].size(), 1u);
}

TEST(SalesforceConnectorTest, RefusedRecordsAreReportedAndTheRestFlows) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  auto c = Connect(emu);
  RowOp bad = W(WriteOp::kInsert, "account", Row{{"id", "ops:1"}},
                Row{{"id", "ops:1"}, {"name", "Bad"}, {"rating", "Lukewarm"}});
  bad.txn = 3;
  RowOp good = W(WriteOp::kInsert, "account", Row{{"id", "ops:2"}},
                 Row{{"id", "ops:2"}, {"name", "Good"}, {"rating", "Cold"}});
  good.txn = 4;
  RowOp orphan = W(WriteOp::kInsert, "contact", Row{{"id", "ops:3"}},
                   Row{{"id", "ops:3"}, {"last", "Orphan"}, {"account", "ops:99"}});
  orphan.txn = 5;
  Result<ApplyResult> r = c->Apply({ApplyBatch{7, {bad, good, orphan}}});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->applied, 1u);
  ASSERT_EQ(r->failed.size(), 2u);
  EXPECT_EQ(r->failed[0].batch_id, 7);
  EXPECT_EQ(r->failed[0].txn, 3);
  EXPECT_NE(r->failed[0].reason.find("object 'Account', record 'ops:1', field 'Rating'"),
            std::string::npos)
      << r->failed[0].reason;
  EXPECT_EQ(r->failed[1].txn, 5);
  EXPECT_NE(r->failed[1].reason.find("field 'AccountId': refers to account record 'ops:99'"),
            std::string::npos)
      << r->failed[1].reason;
}

TEST(SalesforceConnectorTest, TheOrgsQuotaRefusalIsUnavailable) {
  testing::SfEmulator emu;
  ASSERT_TRUE(emu.running());
  auto c = Connect(emu);
  RowOp w = W(WriteOp::kInsert, "account", Row{{"id", "ops:1"}},
              Row{{"id", "ops:1"}, {"name", "N"}, {"rating", nullptr}});
  ASSERT_TRUE(c->Apply({ApplyBatch{1, {w}}}).ok());
  emu.Hook("faults", {{"kind", "REQUEST_LIMIT_EXCEEDED"}, {"count", 50}});
  w.values["name"] = "M";
  Result<ApplyResult> r = c->Apply({ApplyBatch{2, {w}}});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsRetriable()) << r.status().ToString();
  Result<std::vector<std::string>> warn = c->Warnings();
  ASSERT_TRUE(warn.ok());
  ASSERT_FALSE(warn->empty()) << emu.Hook("stats").dump();
  EXPECT_NE((*warn)[0].find("paused"), std::string::npos) << (*warn)[0];
}

TEST(SalesforceConnectorTest, RegisteredAsAConfigType) {
  const ConnectorType* t = FindConnectorType("salesforce");
  ASSERT_NE(t, nullptr);
  EXPECT_NE(KnownTypes().find("salesforce"), std::string::npos);
}

}  // namespace
}  // namespace duplex::sf
