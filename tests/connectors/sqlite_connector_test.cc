#include "connectors/sqlite/sqlite_connector.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "connectors/registry.h"
#include "connectors/sqlite/settings.h"
#include "support/test_util.h"

namespace duplex::sqlite {
namespace {

using ::duplex::testing::SqlExec;
using ::duplex::testing::SqlQuery;
using ::duplex::testing::TempDir;

// The collection "customers" on table crm_customers, with renamed columns and one unsynced
// column (note).
CollectionBinding Customers() {
  CollectionBinding b;
  b.collection = "customers";
  b.table = "crm_customers";
  b.key = {"id"};
  b.fields = {{"id", "cust_id"}, {"name", "full_name"}, {"score", "score"}, {"data", "payload"}};
  return b;
}

// Writes planned after every application change so far (ChangedSince never rejects them);
// the test of RowOp::seen sets it explicitly.
const Position kSeenAll = Position::FromInt(int64_t{1} << 60);

RowOp Insert(Row key, Row values) {
  RowOp op;
  op.op = WriteOp::kInsert;
  op.collection = "customers";
  op.seen = kSeenAll;
  op.key = std::move(key);
  op.values = std::move(values);
  return op;
}

RowOp Update(Row key, Row values, Row expected) {
  RowOp op;
  op.op = WriteOp::kUpdate;
  op.collection = "customers";
  op.seen = kSeenAll;
  op.key = std::move(key);
  op.values = std::move(values);
  op.expected = std::move(expected);
  return op;
}

RowOp Delete(Row key, Row expected) {
  RowOp op;
  op.op = WriteOp::kDelete;
  op.collection = "customers";
  op.seen = kSeenAll;
  op.key = std::move(key);
  op.expected = std::move(expected);
  return op;
}

class SqliteConnectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.File("crm.db");
    SqlExec(path_,
            "CREATE TABLE crm_customers(cust_id INTEGER PRIMARY KEY, full_name TEXT, "
            "score REAL CHECK (score IS NULL OR score >= 0), payload BLOB, note TEXT)");
  }

  // An opened connector bound to `bindings`, optionally installed.
  std::unique_ptr<SqliteConnector> Make(std::vector<CollectionBinding> bindings = {Customers()},
                                        bool install = true) {
    auto c = std::make_unique<SqliteConnector>("crm", path_);
    EXPECT_OK(c->Open());
    EXPECT_OK(c->Bind(std::move(bindings)));
    if (install) EXPECT_OK(c->Install());
    return c;
  }

  // Everything captured after `*pos`, which moves to the end.
  std::vector<Change> CaptureAll(SqliteConnector& c, Position* pos) {
    std::vector<Change> out;
    while (true) {
      Result<ChangeBatch> batch = c.Capture(*pos, 1000);
      EXPECT_OK(batch);
      if (!batch.ok()) return out;
      EXPECT_GE(batch->end, *pos);
      if (batch->changes.empty()) {
        EXPECT_EQ(batch->end, *pos);
        return out;
      }
      *pos = batch->end;
      for (Change& ch : batch->changes) out.push_back(std::move(ch));
    }
  }

  int64_t CountRows(const std::string& table) {
    std::string n = SqlQuery(path_, "SELECT count(*) FROM " + table);
    return std::stoll(n);
  }

  TempDir dir_;
  std::string path_;
};

// A missing file is a wrong path, not an outage: the engine does not wait for it at start.
TEST_F(SqliteConnectorTest, OpenMissingFileIsAnIOErrorNotRetried) {
  SqliteConnector c("crm", dir_.File("nope.db"));
  Status st = c.Open();
  EXPECT_FALSE(st.IsRetriable()) << st.ToString();
  EXPECT_EQ(st.code(), Status::Code::kIOError) << st.ToString();
  EXPECT_NE(st.message().find("endpoint 'crm'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("nope.db' does not exist"), std::string::npos) << st.message();
}

TEST_F(SqliteConnectorTest, DescribeReportsColumnsAndKey) {
  auto c = Make({}, false);
  Result<TableInfo> info = c->Describe("crm_customers");
  ASSERT_OK(info);
  EXPECT_TRUE(info->exists);
  ASSERT_EQ(info->columns.size(), 5u);
  EXPECT_EQ(info->columns[0].name, "cust_id");
  EXPECT_EQ(info->columns[0].type, "INTEGER");
  EXPECT_EQ(info->columns[0].pk, 1);
  EXPECT_EQ(info->columns[2].name, "score");
  EXPECT_EQ(info->columns[2].pk, 0);
  Result<TableInfo> none = c->Describe("missing");
  ASSERT_OK(none);
  EXPECT_FALSE(none->exists);
}

TEST_F(SqliteConnectorTest, DescribeReportsForeignKeysAndGeneratedKeys) {
  SqlExec(path_,
          "CREATE TABLE orders(id integer PRIMARY KEY, cust INTEGER REFERENCES crm_customers, "
          "a TEXT, b TEXT, FOREIGN KEY(a, b) REFERENCES pairs(x, y));"
          "CREATE TABLE pairs(x TEXT, y TEXT, PRIMARY KEY(x, y));"
          "CREATE TABLE desc_key(id INTEGER PRIMARY KEY DESC);"
          "CREATE TABLE no_rowid(id INTEGER PRIMARY KEY) WITHOUT ROWID;"
          "CREATE TABLE text_key(id INT PRIMARY KEY)");
  auto c = Make({}, false);
  Result<TableInfo> orders = c->Describe("orders");
  ASSERT_OK(orders);
  EXPECT_TRUE(orders->columns[0].generated);  // declared type compared case-insensitively
  EXPECT_FALSE(orders->columns[1].generated);
  ASSERT_EQ(orders->foreign_keys.size(), 2u);
  std::vector<ForeignKeyInfo> fks = orders->foreign_keys;
  std::sort(fks.begin(), fks.end(), [](const ForeignKeyInfo& x, const ForeignKeyInfo& y) {
    return x.ref_table < y.ref_table;
  });
  // No parent column named: the parent's primary key.
  EXPECT_EQ(fks[0].ref_table, "crm_customers");
  EXPECT_EQ(fks[0].columns, std::vector<std::string>({"cust"}));
  EXPECT_EQ(fks[0].ref_columns, std::vector<std::string>({"cust_id"}));
  EXPECT_TRUE(fks[0].deferrable);
  EXPECT_EQ(fks[1].ref_table, "pairs");
  EXPECT_EQ(fks[1].columns, std::vector<std::string>({"a", "b"}));
  EXPECT_EQ(fks[1].ref_columns, std::vector<std::string>({"x", "y"}));

  EXPECT_TRUE(c->Describe("crm_customers")->columns[0].generated);
  EXPECT_TRUE(c->Describe("crm_customers")->foreign_keys.empty());
  // Not rowid aliases: a DESC key, a WITHOUT ROWID table, a key declared INT.
  EXPECT_FALSE(c->Describe("desc_key")->columns[0].generated);
  EXPECT_FALSE(c->Describe("no_rowid")->columns[0].generated);
  EXPECT_FALSE(c->Describe("text_key")->columns[0].generated);
  EXPECT_FALSE(c->Describe("pairs")->columns[0].generated);
}

TEST_F(SqliteConnectorTest, InstallSnapshotsExistingRows) {
  SqlExec(
      path_,
      "INSERT INTO crm_customers VALUES (1, 'Ann', 1.5, NULL, 'x'), (2, 'Bob', NULL, NULL, 'y')");
  auto c = Make();
  Position pos;
  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 2u);
  for (const Change& ch : changes) {
    EXPECT_EQ(ch.op, Op::kInsert);
    EXPECT_TRUE(ch.snapshot);
    EXPECT_EQ(ch.collection, "customers");
    EXPECT_TRUE(ch.before.is_null());
    EXPECT_GT(ch.commit_ms, 1.6e12);
  }
  EXPECT_EQ(changes[0].key, Row({{"id", 1}}));
  EXPECT_EQ(changes[0].after, Row({{"id", 1}, {"name", "Ann"}, {"score", 1.5}, {"data", nullptr}}));
  EXPECT_EQ(changes[1].after["name"], "Bob");
  EXPECT_LT(changes[0].position, changes[1].position);

  // Installing again does not snapshot again.
  ASSERT_OK(c->Install());
  EXPECT_TRUE(CaptureAll(*c, &pos).empty());
}

TEST_F(SqliteConnectorTest, CapturesApplicationWritesInOrderWithImages) {
  auto c = Make();
  Position pos;
  EXPECT_TRUE(CaptureAll(*c, &pos).empty());
  SqlExec(path_, "INSERT INTO crm_customers VALUES (7, 'Ann', 2.0, NULL, 'n')");
  SqlExec(path_, "UPDATE crm_customers SET full_name = 'Anne' WHERE cust_id = 7");
  SqlExec(path_, "DELETE FROM crm_customers WHERE cust_id = 7");

  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 3u);
  const Change& ins = changes[0];
  EXPECT_EQ(ins.op, Op::kInsert);
  EXPECT_FALSE(ins.snapshot);
  EXPECT_EQ(ins.key, Row({{"id", 7}}));
  EXPECT_EQ(ins.after, Row({{"id", 7}, {"name", "Ann"}, {"score", 2.0}, {"data", nullptr}}));
  EXPECT_TRUE(ins.after["id"].is_number_integer());
  EXPECT_FALSE(ins.after["id"].is_number_unsigned());
  EXPECT_TRUE(ins.after["score"].is_number_float());

  const Change& upd = changes[1];
  EXPECT_EQ(upd.op, Op::kUpdate);
  EXPECT_EQ(upd.key, Row({{"id", 7}}));
  EXPECT_EQ(upd.before["name"], "Ann");
  EXPECT_EQ(upd.after["name"], "Anne");

  const Change& del = changes[2];
  EXPECT_EQ(del.op, Op::kDelete);
  EXPECT_EQ(del.key, Row({{"id", 7}}));
  EXPECT_EQ(del.before["name"], "Anne");
  EXPECT_TRUE(del.after.is_null());

  EXPECT_LT(changes[0].position, changes[1].position);
  EXPECT_LT(changes[1].position, changes[2].position);
  EXPECT_EQ(pos, changes[2].position);
  EXPECT_LE(changes[0].commit_ms, changes[2].commit_ms);
}

TEST_F(SqliteConnectorTest, UpdateOfUnsyncedColumnIsNotCaptured) {
  SqlExec(path_, "INSERT INTO crm_customers VALUES (1, 'Ann', 1.0, NULL, 'x')");
  auto c = Make();
  Position pos;
  ASSERT_EQ(CaptureAll(*c, &pos).size(), 1u);
  SqlExec(path_, "UPDATE crm_customers SET note = 'changed' WHERE cust_id = 1");
  SqlExec(path_, "UPDATE crm_customers SET full_name = full_name WHERE cust_id = 1");
  EXPECT_TRUE(CaptureAll(*c, &pos).empty());
  SqlExec(path_, "UPDATE crm_customers SET note = 'again', score = 3 WHERE cust_id = 1");
  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].after["score"], 3.0);
  EXPECT_FALSE(changes[0].after.contains("note"));
}

TEST_F(SqliteConnectorTest, KeyChangeBecomesDeleteThenInsert) {
  SqlExec(path_, "INSERT INTO crm_customers VALUES (1, 'Ann', 1.0, NULL, 'x')");
  auto c = Make();
  Position pos;
  CaptureAll(*c, &pos);
  SqlExec(path_, "UPDATE crm_customers SET cust_id = 2, full_name = 'Two' WHERE cust_id = 1");
  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].op, Op::kDelete);
  EXPECT_EQ(changes[0].key, Row({{"id", 1}}));
  EXPECT_EQ(changes[0].before["name"], "Ann");
  EXPECT_TRUE(changes[0].after.is_null());
  EXPECT_EQ(changes[1].op, Op::kInsert);
  EXPECT_EQ(changes[1].key, Row({{"id", 2}}));
  EXPECT_EQ(changes[1].after["name"], "Two");
  EXPECT_TRUE(changes[1].before.is_null());
  EXPECT_EQ(changes[0].position, changes[1].position);
}

TEST_F(SqliteConnectorTest, BlobRealAndNullRoundTripThroughCapture) {
  auto c = Make();
  Position pos;
  SqlExec(path_, "INSERT INTO crm_customers VALUES (1, NULL, 0.1 + 0.2, x'00FF10', 'n')");
  SqlExec(path_, "INSERT INTO crm_customers VALUES (2, 'big', 1.2345678901234567e300, x'', NULL)");
  SqlExec(path_, "INSERT INTO crm_customers VALUES (3, 'inf', 9e999, NULL, NULL)");
  // A TEXT column may hold a blob too; the application's writes must keep working.
  SqlExec(path_, "UPDATE crm_customers SET full_name = x'CAFE', payload = x'01' WHERE cust_id = 1");
  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 4u);
  const Row& a = changes[0].after;
  EXPECT_TRUE(a["name"].is_null());
  ASSERT_TRUE(a["score"].is_number_float());
  EXPECT_EQ(a["score"].get<double>(), 0.1 + 0.2);
  EXPECT_EQ(a["data"], Row({{"$blob", "00FF10"}}));
  EXPECT_EQ(changes[1].after["score"].get<double>(), 1.2345678901234567e300);
  EXPECT_EQ(changes[1].after["data"], Row({{"$blob", ""}}));
  EXPECT_EQ(changes[2].after["score"].get<double>(), std::numeric_limits<double>::infinity());
  EXPECT_EQ(changes[3].before["data"], Row({{"$blob", "00FF10"}}));
  EXPECT_EQ(changes[3].after["name"], Row({{"$blob", "CAFE"}}));
  EXPECT_EQ(changes[3].after["data"], Row({{"$blob", "01"}}));
}

TEST_F(SqliteConnectorTest, InvalidUtf8TextDoesNotStopCapture) {
  auto c = Make();
  Position pos;
  SqlExec(path_, "INSERT INTO crm_customers VALUES (1, CAST(x'41FF42' AS TEXT), NULL, NULL, NULL)");
  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].after["name"],
            "A\xEF\xBF\xBD"
            "B");
}

TEST_F(SqliteConnectorTest, ApplyRoundTripsBlobRealAndNull) {
  auto c = Make();
  ApplyBatch b{
      1,
      {Insert(
          {{"id", 1}},
          {{"id", 1}, {"name", nullptr}, {"score", 0.1 + 0.2}, {"data", {{"$blob", "00FF10"}}}})}};
  Result<ApplyResult> r = c->Apply({b});
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 1u);
  EXPECT_EQ(SqlQuery(path_,
                     "SELECT typeof(full_name), score = 0.1 + 0.2, typeof(payload), hex(payload) "
                     "FROM crm_customers"),
            "null|1|blob|00FF10\n");
  // The application can still update that row (its blob goes through the trigger).
  SqlExec(path_, "UPDATE crm_customers SET full_name = 'x' WHERE cust_id = 1");

  // Compare-and-set on a blob and a real value.
  b = {2,
       {Update({{"id", 1}}, {{"data", {{"$blob", "AB"}}}},
               {{"data", {{"$blob", "00FF10"}}}, {"score", 0.1 + 0.2}})}};
  r = c->Apply({b});
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 1u);
  EXPECT_EQ(SqlQuery(path_, "SELECT hex(payload) FROM crm_customers"), "AB\n");
}

TEST_F(SqliteConnectorTest, P5ApplyIsCapturedAsOneMarkerOnly) {
  SqlExec(path_, "INSERT INTO crm_customers VALUES (5, 'Eve', 1.0, NULL, NULL)");
  auto c = Make();
  Position pos;
  CaptureAll(*c, &pos);
  std::vector<ApplyBatch> batches = {
      {7, {Insert({{"id", 1}}, {{"id", 1}, {"name", "A"}, {"score", 1}, {"data", nullptr}})}},
      {8,
       {Update({{"id", 5}}, {{"name", "Eva"}}, {{"name", "Eve"}}),
        Insert({{"id", 2}}, {{"id", 2}, {"name", "B"}, {"score", nullptr}, {"data", nullptr}}),
        Delete({{"id", 1}}, {{"name", "A"}})}}};
  Result<ApplyResult> r = c->Apply(batches);
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 4u);
  EXPECT_EQ(r->rejected, 0u);
  EXPECT_EQ(r->skipped_batches, 0u);
  EXPECT_EQ(SqlQuery(path_, "SELECT cust_id, full_name FROM crm_customers ORDER BY cust_id"),
            "2|B\n5|Eva\n");

  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].op, Op::kMarker);
  EXPECT_EQ(changes[0].apply_id, 8);
  EXPECT_GT(changes[0].commit_ms, 1.6e12);
  EXPECT_EQ(*c->AppliedId(), 8);
  EXPECT_EQ(SqlQuery(path_, "SELECT active FROM _duplex_apply"), "0\n");

  // The application's writes right after are captured again.
  SqlExec(path_, "UPDATE crm_customers SET full_name = 'Bee' WHERE cust_id = 2");
  changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].op, Op::kUpdate);
  EXPECT_EQ(changes[0].before["name"], "B");
}

TEST_F(SqliteConnectorTest, P6ApplyTwiceSkipsAlreadyAppliedBatches) {
  auto c = Make();
  EXPECT_EQ(*c->AppliedId(), 0);
  std::vector<ApplyBatch> batches = {
      {3, {Insert({{"id", 1}}, {{"id", 1}, {"name", "A"}, {"score", 1}, {"data", nullptr}})}},
      {4, {Update({{"id", 1}}, {{"score", 2}}, {{"score", 1}})}}};
  ASSERT_OK(c->Apply(batches));
  EXPECT_EQ(*c->AppliedId(), 4);
  Result<ApplyResult> again = c->Apply(batches);
  ASSERT_OK(again);
  EXPECT_EQ(again->skipped_batches, 2u);
  EXPECT_EQ(again->applied, 0u);
  EXPECT_EQ(again->rejected, 0u);
  EXPECT_EQ(*c->AppliedId(), 4);
  EXPECT_EQ(SqlQuery(path_, "SELECT count(*) FROM _duplex_changelog WHERE op = 'M'"), "1\n");

  // A new batch after old ones: only the new one is written.
  batches.push_back({5, {Update({{"id", 1}}, {{"name", "Z"}}, {})}});
  Result<ApplyResult> third = c->Apply(batches);
  ASSERT_OK(third);
  EXPECT_EQ(third->skipped_batches, 2u);
  EXPECT_EQ(third->applied, 1u);
  EXPECT_EQ(SqlQuery(path_, "SELECT full_name, score FROM crm_customers"), "Z|2.0\n");
  EXPECT_EQ(*c->AppliedId(), 5);
}

TEST_F(SqliteConnectorTest, CompareAndSetRejectsStaleWrites) {
  SqlExec(path_, "INSERT INTO crm_customers VALUES (1, 'Ann', 1.0, NULL, NULL)");
  auto c = Make();
  Result<ApplyResult> r =
      c->Apply({{1,
                 {Update({{"id", 1}}, {{"name", "X"}}, {{"name", "Bob"}}),
                  Delete({{"id", 1}}, {{"score", 9}}), Update({{"id", 99}}, {{"name", "X"}}, {}),
                  Insert({{"id", 1}},
                         {{"id", 1}, {"name", "dup"}, {"score", nullptr}, {"data", nullptr}})}}});
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 0u);
  EXPECT_EQ(r->rejected, 4u);
  EXPECT_EQ(SqlQuery(path_, "SELECT * FROM crm_customers"), "1|Ann|1.0|NULL|NULL\n");

  // The expected value matches: applied. An integer expectation matches a REAL column's 1.0.
  r = c->Apply({{2, {Update({{"id", 1}}, {{"name", "X"}}, {{"name", "Ann"}, {"score", 1}})}}});
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 1u);
  EXPECT_EQ(SqlQuery(path_, "SELECT full_name FROM crm_customers"), "X\n");
  // A NULL expectation matches NULL.
  r = c->Apply({{3, {Delete({{"id", 1}}, {{"data", nullptr}})}}});
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 1u);
  EXPECT_EQ(CountRows("crm_customers"), 0);
}

TEST_F(SqliteConnectorTest, ConstraintViolationRollsBackTheWholeApply) {
  auto c = Make();
  Position pos;
  CaptureAll(*c, &pos);
  Result<ApplyResult> r = c->Apply(
      {{1, {Insert({{"id", 1}}, {{"id", 1}, {"name", "ok"}, {"score", 1}, {"data", nullptr}})}},
       {2, {Insert({{"id", 2}}, {{"id", 2}, {"name", "bad"}, {"score", -5}, {"data", nullptr}})}}});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsRefused()) << r.status().ToString();
  const std::string& msg = r.status().message();
  EXPECT_NE(msg.find("endpoint 'crm'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("table 'crm_customers'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("{\"id\":2}"), std::string::npos) << msg;
  EXPECT_NE(msg.find("CHECK constraint failed"), std::string::npos) << msg;

  EXPECT_EQ(CountRows("crm_customers"), 0);
  EXPECT_EQ(*c->AppliedId(), 0);
  EXPECT_EQ(SqlQuery(path_, "SELECT active FROM _duplex_apply"), "0\n");
  EXPECT_TRUE(CaptureAll(*c, &pos).empty());

  // The connection is still usable, and the application's writes are captured.
  ASSERT_OK(c->Apply({{1, {Insert({{"id", 1}}, {{"id", 1}, {"score", 1}})}}}));
  SqlExec(path_, "INSERT INTO crm_customers(cust_id) VALUES (10)");
  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].op, Op::kMarker);
  EXPECT_EQ(changes[1].key, Row({{"id", 10}}));
}

TEST_F(SqliteConnectorTest, ApplyErrorsNameTheFault) {
  auto c = Make();
  RowOp unknown = Insert({{"id", 1}}, {{"id", 1}, {"nope", 1}});
  Result<ApplyResult> r = c->Apply({{1, {unknown}}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("field 'nope'"), std::string::npos) << r.status().message();
  RowOp other = Insert({{"id", 1}}, {{"id", 1}});
  other.collection = "orders";
  r = c->Apply({{1, {other}}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("collection 'orders'"), std::string::npos);
  EXPECT_EQ(CountRows("crm_customers"), 0);
}

TEST_F(SqliteConnectorTest, AckPrunesTheChangelog) {
  auto c = Make();
  for (int i = 1; i <= 5; ++i) {
    SqlExec(path_, "INSERT INTO crm_customers(cust_id, full_name) VALUES (" + std::to_string(i) +
                       ", 'n')");
  }
  Result<ChangeBatch> batch = c->Capture(Position(), 3);
  ASSERT_OK(batch);
  ASSERT_EQ(batch->changes.size(), 3u);
  EXPECT_EQ(*c->Backlog(Position()), 5);
  EXPECT_EQ(*c->Backlog(batch->end), 2);
  ASSERT_OK(c->Ack(batch->end));
  EXPECT_EQ(CountRows("_duplex_changelog"), 2);
  EXPECT_EQ(*c->Backlog(Position()), 2);
  Result<ChangeBatch> rest = c->Capture(batch->end, 100);
  ASSERT_OK(rest);
  ASSERT_EQ(rest->changes.size(), 2u);
  EXPECT_EQ(rest->changes[0].key, Row({{"id", 4}}));
  ASSERT_OK(c->Ack(rest->end));
  EXPECT_EQ(CountRows("_duplex_changelog"), 0);
  // Positions keep growing after everything was pruned (AUTOINCREMENT).
  SqlExec(path_, "INSERT INTO crm_customers(cust_id) VALUES (6)");
  Result<ChangeBatch> next = c->Capture(rest->end, 100);
  ASSERT_OK(next);
  ASSERT_EQ(next->changes.size(), 1u);
  EXPECT_GT(next->changes[0].position, rest->end);
}

TEST_F(SqliteConnectorTest, CaptureRespectsTheLimitAndSkipsUnboundTables) {
  SqlExec(path_, "CREATE TABLE other(id INTEGER PRIMARY KEY, v TEXT)");
  CollectionBinding other{"others", "other", {"id"}, {{"id", "id"}, {"v", "v"}}, false, {}};
  auto c = Make({Customers(), other});
  SqlExec(path_, "INSERT INTO other VALUES (1, 'a')");
  SqlExec(path_, "INSERT INTO crm_customers(cust_id) VALUES (1)");
  // Unbinding "other" and installing again removes its triggers; its logged row is skipped.
  ASSERT_OK(c->Bind({Customers()}));
  ASSERT_OK(c->Install());
  SqlExec(path_, "INSERT INTO other VALUES (2, 'b')");
  EXPECT_EQ(SqlQuery(path_, "SELECT count(*) FROM sqlite_master WHERE name LIKE '_duplex_other%'"),
            "0\n");
  Result<ChangeBatch> b = c->Capture(Position(), 1);
  ASSERT_OK(b);
  ASSERT_EQ(b->changes.size(), 0u);  // only the skipped row was read
  EXPECT_GT(b->end, Position());
  Result<ChangeBatch> b2 = c->Capture(b->end, 1);
  ASSERT_OK(b2);
  ASSERT_EQ(b2->changes.size(), 1u);
  EXPECT_EQ(b2->changes[0].collection, "customers");
  EXPECT_EQ(b2->end, b2->changes[0].position);
  Result<ChangeBatch> b3 = c->Capture(b2->end, 10);
  ASSERT_OK(b3);
  EXPECT_TRUE(b3->changes.empty());
  EXPECT_EQ(b3->end, b2->end);
}

TEST_F(SqliteConnectorTest, KeyChangeIsNotSplitAcrossTheLimit) {
  SqlExec(path_, "INSERT INTO crm_customers(cust_id) VALUES (1), (5)");
  auto c = Make();
  Position pos;
  CaptureAll(*c, &pos);
  SqlExec(path_, "UPDATE crm_customers SET full_name = 'x' WHERE cust_id = 5");
  SqlExec(path_, "UPDATE crm_customers SET cust_id = 2 WHERE cust_id = 1");
  Result<ChangeBatch> b = c->Capture(pos, 2);
  ASSERT_OK(b);
  ASSERT_EQ(b->changes.size(), 1u);  // the key change (2 changes) would exceed the limit
  Result<ChangeBatch> b2 = c->Capture(b->end, 2);
  ASSERT_OK(b2);
  ASSERT_EQ(b2->changes.size(), 2u);
  EXPECT_EQ(b2->changes[0].op, Op::kDelete);
  EXPECT_EQ(b2->changes[1].op, Op::kInsert);
  // A limit of 1 still makes progress.
  SqlExec(path_, "UPDATE crm_customers SET cust_id = 3 WHERE cust_id = 2");
  Result<ChangeBatch> b3 = c->Capture(b2->end, 1);
  ASSERT_OK(b3);
  EXPECT_EQ(b3->changes.size(), 2u);
}

TEST_F(SqliteConnectorTest, PollSeesOtherConnectionsAndOwnCommits) {
  auto c = Make();
  EXPECT_TRUE(*c->Poll());
  EXPECT_FALSE(*c->Poll());
  EXPECT_FALSE(*c->Poll());
  SqlExec(path_, "INSERT INTO crm_customers(cust_id) VALUES (1)");
  EXPECT_TRUE(*c->Poll());
  EXPECT_FALSE(*c->Poll());
  ASSERT_OK(c->Apply({{1, {Insert({{"id", 2}}, {{"id", 2}})}}}));
  EXPECT_TRUE(*c->Poll());
  EXPECT_FALSE(*c->Poll());
  ASSERT_OK(c->Ack(Position::FromInt(1000)));
  EXPECT_TRUE(*c->Poll());
  ASSERT_OK(c->Ack(Position::FromInt(1000)));  // nothing left to prune
  EXPECT_FALSE(*c->Poll());
}

TEST_F(SqliteConnectorTest, IsInstalledAndUninstall) {
  auto c = Make({Customers()}, /*install=*/false);
  EXPECT_FALSE(*c->IsInstalled());
  EXPECT_EQ(*c->AppliedId(), 0);
  EXPECT_EQ(*c->Backlog(Position()), 0);
  ASSERT_OK(c->Uninstall());  // nothing installed: fine
  ASSERT_OK(c->Install());
  EXPECT_TRUE(*c->IsInstalled());
  ASSERT_OK(c->Apply({{1, {Insert({{"id", 1}}, {{"id", 1}})}}}));

  // Binding more columns: no longer installed as bound, until installed again.
  CollectionBinding wider = Customers();
  wider.fields.emplace_back("note", "note");
  ASSERT_OK(c->Bind({wider}));
  EXPECT_FALSE(*c->IsInstalled());
  ASSERT_OK(c->Install());
  EXPECT_TRUE(*c->IsInstalled());
  SqlExec(path_, "DROP TRIGGER \"_duplex_crm_customers_upd\"");
  EXPECT_FALSE(*c->IsInstalled());
  ASSERT_OK(c->Install());
  EXPECT_TRUE(*c->IsInstalled());

  ASSERT_OK(c->Uninstall());
  EXPECT_FALSE(*c->IsInstalled());
  EXPECT_EQ(SqlQuery(path_, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%duplex%'"),
            "0\n");
  SqlExec(path_,
          "INSERT INTO crm_customers VALUES (2, 'a', 1.0, x'00', 'n'); UPDATE crm_customers SET "
          "full_name = 'b'; DELETE FROM crm_customers WHERE cust_id = 1");
  EXPECT_EQ(SqlQuery(path_, "SELECT cust_id, full_name FROM crm_customers"), "2|b\n");
  ASSERT_OK(c->Uninstall());
  EXPECT_EQ(*c->AppliedId(), 0);
  Result<ApplyResult> r = c->Apply({{2, {Insert({{"id", 3}}, {{"id", 3}})}}});
  EXPECT_FALSE(r.ok());

  // Installing again starts over with a snapshot.
  ASSERT_OK(c->Install());
  Position pos;
  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_TRUE(changes[0].snapshot);
  EXPECT_EQ(changes[0].after["note"], "n");
}

TEST_F(SqliteConnectorTest, InstallChecksTablesColumnsAndKey) {
  CollectionBinding missing_table = Customers();
  missing_table.table = "nope";
  auto c = Make({missing_table}, false);
  Status st = c->Install();
  EXPECT_TRUE(st.IsInvalidArgument());
  EXPECT_NE(st.message().find("table 'nope'"), std::string::npos) << st.message();

  CollectionBinding missing_column = Customers();
  missing_column.fields.emplace_back("email", "email");
  ASSERT_OK(c->Bind({missing_column}));
  st = c->Install();
  EXPECT_NE(st.message().find("column 'email'"), std::string::npos) << st.message();

  CollectionBinding bad_key = Customers();
  bad_key.key = {"name"};
  ASSERT_OK(c->Bind({bad_key}));
  st = c->Install();
  EXPECT_TRUE(st.IsInvalidArgument());
  EXPECT_NE(st.message().find("unique"), std::string::npos) << st.message();
  EXPECT_FALSE(*c->IsInstalled());

  CollectionBinding not_a_field = Customers();
  not_a_field.key = {"email"};
  EXPECT_TRUE(c->Bind({not_a_field}).IsInvalidArgument());
}

TEST_F(SqliteConnectorTest, QuotedTableAndColumnNames) {
  SqlExec(path_,
          "CREATE TABLE \"my \"\"odd\"\" table\"(\"the id\" TEXT PRIMARY KEY, "
          "\"va'l \"\"x\"\"\" REAL)");
  CollectionBinding b{
      "odd", "my \"odd\" table", {"id"}, {{"id", "the id"}, {"v", "va'l \"x\""}}, false, {}};
  SqlExec(path_, "INSERT INTO \"my \"\"odd\"\" table\" VALUES ('k0', 0.5)");
  auto c = Make({b});
  EXPECT_TRUE(*c->IsInstalled());
  SqlExec(path_, "INSERT INTO \"my \"\"odd\"\" table\" VALUES ('k1', 1.5)");
  Position pos;
  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[1].after, Row({{"id", "k1"}, {"v", 1.5}}));

  RowOp ins;
  ins.op = WriteOp::kInsert;
  ins.collection = "odd";
  ins.key = {{"id", "k2"}};
  ins.values = {{"id", "k2"}, {"v", 2.5}};
  ins.seen = pos;
  RowOp upd = ins;
  upd.op = WriteOp::kUpdate;
  upd.key = {{"id", "k1"}};
  upd.values = {{"v", 3.5}};
  upd.expected = {{"v", 1.5}};
  Result<ApplyResult> r = c->Apply({{1, {ins, upd}}});
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 2u);
  EXPECT_EQ(SqlQuery(path_, "SELECT * FROM \"my \"\"odd\"\" table\" ORDER BY 1"),
            "k0|0.5\nk1|3.5\nk2|2.5\n");
  changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].op, Op::kMarker);
  ASSERT_OK(c->Uninstall());
  EXPECT_EQ(SqlQuery(path_, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"), "0\n");
}

TEST_F(SqliteConnectorTest, WideTableBeyondTheFunctionArgumentLimit) {
  // json_object() takes at most 127 arguments: 63 columns.
  std::string create = "CREATE TABLE wide(id INTEGER PRIMARY KEY";
  std::string insert_cols = "id", insert_vals = "1";
  CollectionBinding b{"wide", "wide", {"id"}, {{"id", "id"}}, false, {}};
  for (int i = 0; i < 150; ++i) {
    std::string col = i % 50 == 0 ? "c\"" + std::to_string(i) : "c." + std::to_string(i);
    create += ", " + QuoteIdent(col);
    insert_cols += ", " + QuoteIdent(col);
    insert_vals += ", " + std::to_string(i);
    b.fields.emplace_back("f" + std::to_string(i), col);
  }
  SqlExec(path_, create + ")");
  auto c = Make({b});
  SqlExec(path_, "INSERT INTO wide(" + insert_cols + ") VALUES(" + insert_vals + ")");
  SqlExec(path_, "UPDATE wide SET \"c.149\" = 0.25");
  Position pos;
  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 2u);
  ASSERT_EQ(changes[0].after.size(), 151u);
  for (int i = 0; i < 150; ++i) {
    EXPECT_EQ(changes[0].after["f" + std::to_string(i)], i) << i;
  }
  EXPECT_EQ(changes[1].before["f149"], 149);
  EXPECT_EQ(changes[1].after["f149"], 0.25);
}

TEST(RegistryTest, MakesSqliteAndRejectsUnknownTypes) {
  EndpointConfig cfg;
  cfg.name = "crm";
  cfg.type = "sqlite";
  auto settings = std::make_shared<sqlite::SqliteSettings>();
  settings->path = "/tmp/does-not-matter.db";
  cfg.settings = settings;
  Result<std::unique_ptr<Connector>> c = MakeConnector(cfg);
  ASSERT_OK(c);
  EXPECT_EQ((*c)->name(), "crm");
  EXPECT_NE(dynamic_cast<SqliteConnector*>(c->get()), nullptr);

  cfg.type = "oracle";
  cfg.line = 12;
  Result<std::unique_ptr<Connector>> bad = MakeConnector(cfg);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().IsInvalidArgument());
  EXPECT_NE(bad.status().message().find("endpoint 'crm'"), std::string::npos);
  EXPECT_NE(bad.status().message().find("oracle"), std::string::npos);
}

TEST_F(SqliteConnectorTest, WriteIsRejectedWhenTheRowChangedAfterWhatTheResolverSaw) {
  SqlExec(path_, "INSERT INTO crm_customers VALUES (5, 'Eve', 1.0, NULL, NULL)");
  auto c = Make();
  Position pos;
  CaptureAll(*c, &pos);
  // The application edits the row and changes it back: no value comparison can tell.
  SqlExec(path_, "UPDATE crm_customers SET full_name = 'Tmp' WHERE cust_id = 5");
  SqlExec(path_, "UPDATE crm_customers SET full_name = 'Eve' WHERE cust_id = 5");
  RowOp stale = Update({{"id", 5}}, {{"name", "Eva"}}, {{"name", "Eve"}});
  stale.seen = pos;  // planned before the two edits were captured
  Result<ApplyResult> r = c->Apply({{1, {stale}}});
  ASSERT_OK(r);
  EXPECT_EQ(r->rejected, 1u);
  EXPECT_EQ(SqlQuery(path_, "SELECT full_name FROM crm_customers"), "Eve\n");
  // The rejection is reported with the row as it is, before the batch's marker.
  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 4u);
  EXPECT_EQ(changes[2].op, Op::kRejected);
  EXPECT_EQ(changes[2].key, Row({{"id", 5}}));
  EXPECT_EQ(changes[2].after["name"], "Eve");
  EXPECT_EQ(changes[3].op, Op::kMarker);
  // Planned after those edits were seen, the same write applies.
  RowOp fresh = stale;
  fresh.seen = pos;
  r = c->Apply({{2, {fresh}}});
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 1u);
  EXPECT_EQ(SqlQuery(path_, "SELECT full_name FROM crm_customers"), "Eva\n");
}

// Foreign keys: orders reference customers; people reference each other.
class SqliteForeignKeyTest : public SqliteConnectorTest {
 protected:
  void SetUp() override {
    SqliteConnectorTest::SetUp();
    SqlExec(path_,
            "CREATE TABLE orders(order_id INTEGER PRIMARY KEY, cust INTEGER REFERENCES "
            "crm_customers(cust_id), item TEXT);"
            "CREATE TABLE people(id INTEGER PRIMARY KEY, partner INTEGER REFERENCES people)");
  }

  static CollectionBinding Orders() {
    CollectionBinding b;
    b.collection = "orders";
    b.table = "orders";
    b.key = {"id"};
    b.fields = {{"id", "order_id"}, {"customer", "cust"}, {"item", "item"}};
    return b;
  }

  static CollectionBinding People() {
    CollectionBinding b;
    b.collection = "people";
    b.table = "people";
    b.key = {"id"};
    b.fields = {{"id", "id"}, {"partner", "partner"}};
    return b;
  }

  static RowOp InTxn(RowOp op, std::string collection, int64_t txn) {
    op.collection = std::move(collection);
    op.txn = txn;
    return op;
  }
};

TEST_F(SqliteForeignKeyTest, P7OrphanIsRefusedAndIsolatedToItsTransaction) {
  SqlExec(path_, "INSERT INTO crm_customers(cust_id, full_name) VALUES (1, 'Ann')");
  SqlExec(path_, "INSERT INTO orders VALUES (5, 1, 'old')");
  auto c = Make({Customers(), Orders()});
  Position pos;
  CaptureAll(*c, &pos);
  // Child before parent inside one transaction: fine, checked at its end.
  RowOp order10 =
      InTxn(Insert({{"id", 10}}, {{"id", 10}, {"customer", 2}, {"item", "x"}}), "orders", 1);
  RowOp cust2 = InTxn(Insert({{"id", 2}}, {{"id", 2}, {"name", "Bob"}}), "customers", 1);
  RowOp orphan =
      InTxn(Insert({{"id", 11}}, {{"id", 11}, {"customer", 99}, {"item", "y"}}), "orders", 2);
  RowOp item = InTxn(Update({{"id", 11}}, {{"item", "z"}}, {}), "orders", 2);
  // Deleting a parent that still has children orphans them.
  RowOp drop1 = InTxn(Delete({{"id", 1}}, {}), "customers", 3);
  RowOp rename = InTxn(Update({{"id", 1}}, {{"name", "Anne"}}, {}), "customers", 4);
  std::vector<ApplyBatch> batches = {{7, {order10, cust2, orphan, item, drop1}}, {8, {rename}}};

  Result<ApplyResult> r = c->Apply(batches);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsRefused()) << r.status().ToString();
  const std::string& msg = r.status().message();
  EXPECT_NE(msg.find("endpoint 'crm'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("FOREIGN KEY constraint failed"), std::string::npos) << msg;
  EXPECT_NE(msg.find("table 'orders' key [11] references a missing row of table "
                     "'crm_customers'"),
            std::string::npos)
      << msg;
  EXPECT_EQ(CountRows("orders"), 1);
  EXPECT_EQ(*c->AppliedId(), 0);

  r = c->Apply(batches, /*isolate_txns=*/true);
  ASSERT_OK(r);
  ASSERT_EQ(r->failed.size(), 2u);
  EXPECT_EQ(r->failed[0].batch_id, 7);
  EXPECT_EQ(r->failed[0].txn, 2);
  ASSERT_EQ(r->failed[0].ops.size(), 2u);
  EXPECT_EQ(r->failed[0].ops[0].key, Row({{"id", 11}}));
  EXPECT_EQ(r->failed[0].ops[1].op, WriteOp::kUpdate);
  EXPECT_NE(r->failed[0].reason.find("table 'orders' key [11]"), std::string::npos)
      << r->failed[0].reason;
  EXPECT_EQ(r->failed[1].txn, 3);
  EXPECT_NE(r->failed[1].reason.find("table 'orders' key [5] references a missing row of "
                                     "table 'crm_customers'"),
            std::string::npos)
      << r->failed[1].reason;
  EXPECT_EQ(r->applied, 3u);
  EXPECT_EQ(r->rejected, 0u);
  EXPECT_EQ(SqlQuery(path_, "SELECT order_id, cust, item FROM orders ORDER BY order_id"),
            "5|1|old\n10|2|x\n");
  EXPECT_EQ(SqlQuery(path_, "SELECT cust_id, full_name FROM crm_customers ORDER BY cust_id"),
            "1|Anne\n2|Bob\n");
  EXPECT_EQ(*c->AppliedId(), 8);
  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].op, Op::kMarker);
}

TEST_F(SqliteForeignKeyTest, OpsOfTxnZeroAreOneUnit) {
  // A source that cannot tell its transactions (SQLite's own captures: txn 0): what was captured
  // together applies together.
  auto c = Make({Customers(), Orders()});
  RowOp parent = InTxn(Insert({{"id", 5}}, {{"id", 5}, {"name", "five"}}), "customers", 0);
  RowOp child =
      InTxn(Insert({{"id", 6}}, {{"id", 6}, {"customer", 97}, {"item", "x"}}), "orders", 0);
  Result<ApplyResult> r = c->Apply({{1, {parent, child}}}, /*isolate_txns=*/true);
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 0u);
  ASSERT_EQ(r->failed.size(), 1u);
  EXPECT_EQ(r->failed[0].txn, 0);
  EXPECT_EQ(r->failed[0].ops.size(), 2u);
  EXPECT_EQ(CountRows("crm_customers"), 0);
  EXPECT_EQ(*c->AppliedId(), 1);  // the batch is done: its refused unit is the caller's
}

TEST_F(SqliteForeignKeyTest, P7CycleInOneTransactionApplies) {
  auto c = Make({People()});
  RowOp a = InTxn(Insert({{"id", 1}}, {{"id", 1}, {"partner", 2}}), "people", 9);
  RowOp b = InTxn(Insert({{"id", 2}}, {{"id", 2}, {"partner", 1}}), "people", 9);
  Result<ApplyResult> r = c->Apply({{1, {a, b}}}, /*isolate_txns=*/true);
  ASSERT_OK(r);
  EXPECT_TRUE(r->failed.empty());
  EXPECT_EQ(r->applied, 2u);
  EXPECT_EQ(SqlQuery(path_, "SELECT id, partner FROM people ORDER BY id"), "1|2\n2|1\n");
  // Without isolation too.
  RowOp d1 = InTxn(Delete({{"id", 1}}, {}), "people", 0);
  RowOp d2 = InTxn(Delete({{"id", 2}}, {}), "people", 0);
  ASSERT_OK(c->Apply({{2, {d1, d2}}}));
  EXPECT_EQ(CountRows("people"), 0);
}

TEST_F(SqliteForeignKeyTest, ApplicationWritesAreNotCheckedByDuplex) {
  // foreign_keys is per connection: the applications keep their own setting (off by default).
  auto c = Make({Customers(), Orders()});
  SqlExec(path_, "INSERT INTO orders VALUES (1, 42, 'orphan')");
  EXPECT_EQ(CountRows("orders"), 1);
  // A later duplex transaction is not blamed for the application's orphan.
  Result<ApplyResult> r = c->Apply(
      {{1, {InTxn(Insert({{"id", 3}}, {{"id", 3}, {"name", "C"}}), "customers", 1)}}}, true);
  ASSERT_OK(r);
  EXPECT_TRUE(r->failed.empty());
  EXPECT_EQ(r->applied, 1u);
}

// key_mode = "mapped": customers and orders get their keys from SQLite (rowids); records travel
// as record ids ("crm:1" for rows first seen here, others' ids like "b:7" via the key map).
class SqliteMappedKeyTest : public SqliteForeignKeyTest {
 protected:
  static CollectionBinding MappedCustomers() {
    CollectionBinding b = Customers();
    b.mapped_key = true;
    return b;
  }
  static CollectionBinding MappedOrders() {
    CollectionBinding b = Orders();
    b.mapped_key = true;
    b.mapped_refs = {{"customer", "customers"}};
    return b;
  }
  std::unique_ptr<SqliteConnector> MakeMapped() {
    return Make({MappedCustomers(), MappedOrders()});
  }
  static RowOp Customer(WriteOp op, const std::string& record, Row values, Row expected = {}) {
    RowOp r;
    r.op = op;
    r.collection = "customers";
    r.seen = kSeenAll;
    r.key = {{"id", record}};
    r.values = std::move(values);
    r.expected = std::move(expected);
    return r;
  }
  static RowOp Order(WriteOp op, const std::string& record, Row values, int64_t txn = 0) {
    RowOp r = Customer(op, record, std::move(values));
    r.collection = "orders";
    r.txn = txn;
    return r;
  }
  std::string KeyMap() {
    return SqlQuery(path_,
                    "SELECT tbl, record, ifnull(native, '-') FROM _duplex_keymap ORDER BY tbl, "
                    "record");
  }
};

TEST_F(SqliteMappedKeyTest, InsertLetsSqliteGenerateTheKeyAndRecordsItInTheKeyMap) {
  SqlExec(path_, "INSERT INTO crm_customers(cust_id, full_name) VALUES (4, 'Old')");
  auto c = MakeMapped();
  Position pos;
  CaptureAll(*c, &pos);
  std::vector<ApplyBatch> batches = {
      {1,
       {Customer(WriteOp::kInsert, "b:7", {{"id", "b:7"}, {"name", "Ann"}}),
        Order(WriteOp::kInsert, "b:3", {{"id", "b:3"}, {"customer", "b:7"}, {"item", "pen"}}),
        // A reference to a record first seen here: its own key.
        Order(WriteOp::kInsert, "b:4", {{"id", "b:4"}, {"customer", "crm:4"}, {"item", "ink"}})}}};
  Result<ApplyResult> r = c->Apply(batches);
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 3u);
  EXPECT_EQ(SqlQuery(path_, "SELECT cust_id, full_name FROM crm_customers ORDER BY cust_id"),
            "4|Old\n5|Ann\n");
  EXPECT_EQ(SqlQuery(path_, "SELECT order_id, cust, item FROM orders ORDER BY order_id"),
            "1|5|pen\n2|4|ink\n");
  EXPECT_EQ(KeyMap(), "crm_customers|b:7|5\norders|b:3|1\norders|b:4|2\n");
  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].op, Op::kMarker);

  // Replayed: nothing changes (P6).
  r = c->Apply(batches);
  ASSERT_OK(r);
  EXPECT_EQ(r->skipped_batches, 1u);
  EXPECT_EQ(CountRows("crm_customers"), 2);
  // The same record inserted by a later batch already has its row here: rejected like a key
  // conflict, reported with the row as it is.
  r = c->Apply({{2, {Customer(WriteOp::kInsert, "b:7", {{"id", "b:7"}, {"name", "Dup"}})}}});
  ASSERT_OK(r);
  EXPECT_EQ(r->rejected, 1u);
  EXPECT_EQ(CountRows("crm_customers"), 2);
  changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].op, Op::kRejected);
  EXPECT_EQ(changes[0].key, Row({{"id", "b:7"}}));
  EXPECT_EQ(changes[0].after["id"], "b:7");
  EXPECT_EQ(changes[0].after["name"], "Ann");

  // The application's writes to those rows are captured with the record ids.
  SqlExec(path_, "UPDATE crm_customers SET full_name = 'Anne' WHERE cust_id = 5");
  SqlExec(path_, "INSERT INTO orders(cust, item) VALUES (5, 'cup')");
  SqlExec(path_, "UPDATE orders SET cust = 4 WHERE order_id = 1");
  changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0].op, Op::kUpdate);
  EXPECT_EQ(changes[0].key, Row({{"id", "b:7"}}));
  EXPECT_EQ(changes[0].after["name"], "Anne");
  EXPECT_EQ(changes[1].op, Op::kInsert);
  EXPECT_EQ(changes[1].key, Row({{"id", "crm:3"}}));
  EXPECT_EQ(changes[1].after, Row({{"id", "crm:3"}, {"customer", "b:7"}, {"item", "cup"}}));
  EXPECT_EQ(changes[2].key, Row({{"id", "b:3"}}));
  EXPECT_EQ(changes[2].before["customer"], "b:7");
  EXPECT_EQ(changes[2].after["customer"], "crm:4");
}

TEST_F(SqliteMappedKeyTest, SnapshotAndCaptureGiveRecordIds) {
  SqlExec(path_,
          "INSERT INTO crm_customers(cust_id, full_name) VALUES (1, 'Ann'), (2, 'Bob');"
          "INSERT INTO orders VALUES (10, 2, 'pen'), (11, NULL, 'ink')");
  auto c = MakeMapped();
  Position pos;
  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 4u);
  EXPECT_TRUE(changes[0].snapshot);
  EXPECT_EQ(changes[0].key, Row({{"id", "crm:1"}}));
  EXPECT_EQ(changes[1].after,
            Row({{"id", "crm:2"}, {"name", "Bob"}, {"score", nullptr}, {"data", nullptr}}));
  EXPECT_EQ(changes[2].after, Row({{"id", "crm:10"}, {"customer", "crm:2"}, {"item", "pen"}}));
  EXPECT_EQ(changes[3].after["customer"], nullptr);  // NULL stays null
  // RecordId (C++) spells them the same way.
  EXPECT_EQ(changes[2].key["id"], RecordId("crm", Value(10)));
  EXPECT_EQ(*c->IsInstalled(), true);
  // A binding without the mapping needs the triggers installed again.
  auto plain = Make({Customers(), Orders()}, /*install=*/false);
  EXPECT_EQ(*plain->IsInstalled(), false);
}

TEST_F(SqliteMappedKeyTest, TextKeysSpellTheirRecordIdsLikeRecordId) {
  SqlExec(path_,
          "CREATE TABLE tags(name TEXT PRIMARY KEY DEFAULT (hex(randomblob(4))), note TEXT)");
  CollectionBinding tags;
  tags.collection = "tags";
  tags.table = "tags";
  tags.key = {"name"};
  tags.fields = {{"name", "name"}, {"note", "note"}};
  tags.mapped_key = true;
  auto c = Make({tags});
  Position pos;
  const std::string odd = "a\"b\\c\n\x01 é";
  SqlExec(path_, "INSERT INTO tags VALUES (" + QuoteString(odd) + ", 'x')");
  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].key["name"], RecordId("crm", Value(odd)));
  // Found again by OwnNativeKey.
  RowOp up = Customer(WriteOp::kUpdate, RecordId("crm", Value(odd)), {{"note", "y"}});
  up.collection = "tags";
  up.key = {{"name", RecordId("crm", Value(odd))}};
  Result<ApplyResult> r = c->Apply({{1, {up}}});
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 1u);
  EXPECT_EQ(SqlQuery(path_, "SELECT note FROM tags"), "y\n");
  // A generated text key (DEFAULT) goes into the key map.
  RowOp ins = up;
  ins.op = WriteOp::kInsert;
  ins.key = {{"name", "b:1"}};
  ins.values = {{"name", "b:1"}, {"note", "z"}};
  r = c->Apply({{2, {ins}}});
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 1u);
  EXPECT_EQ(SqlQuery(path_,
                     "SELECT count(*) FROM _duplex_keymap WHERE record = 'b:1' AND "
                     "native = json_quote((SELECT name FROM tags WHERE note = 'z'))"),
            "1\n");
}

TEST_F(SqliteMappedKeyTest, UpdateAndDeleteFindTheRowThroughTheKeyMap) {
  SqlExec(path_, "INSERT INTO crm_customers(cust_id, full_name) VALUES (1, 'Ann')");
  auto c = MakeMapped();
  Position pos;
  CaptureAll(*c, &pos);
  ASSERT_OK(c->Apply({{1,
                       {Customer(WriteOp::kInsert, "b:7", {{"id", "b:7"}, {"name", "Bea"}}),
                        Order(WriteOp::kInsert, "b:3", {{"id", "b:3"}, {"customer", "b:7"}})}}}));
  CaptureAll(*c, &pos);
  Result<ApplyResult> r =
      c->Apply({{2,
                 {Customer(WriteOp::kUpdate, "b:7", {{"name", "Beatrix"}}, {{"name", "Bea"}}),
                  Customer(WriteOp::kUpdate, "crm:1", {{"name", "Anne"}}, {{"name", "Ann"}}),
                  // The order moves to customer crm:1; expected values are translated too.
                  Order(WriteOp::kUpdate, "b:3", {{"customer", "crm:1"}}),
                  Customer(WriteOp::kUpdate, "x:9", {{"name", "nobody"}})}}});
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 3u);
  EXPECT_EQ(r->rejected, 1u);  // x:9: no row here
  EXPECT_EQ(SqlQuery(path_, "SELECT cust_id, full_name FROM crm_customers ORDER BY cust_id"),
            "1|Anne\n2|Beatrix\n");
  EXPECT_EQ(SqlQuery(path_, "SELECT cust FROM orders"), "1\n");
  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].op, Op::kRejected);
  EXPECT_EQ(changes[0].key, Row({{"id", "x:9"}}));
  EXPECT_TRUE(changes[0].after.is_null());

  RowOp cas = Order(WriteOp::kDelete, "b:3", {});
  cas.expected = {{"customer", "b:7"}};  // stale: it references crm:1 now
  r = c->Apply({{3, {cas}}});
  ASSERT_OK(r);
  EXPECT_EQ(r->rejected, 1u);
  cas.expected = {{"customer", "crm:1"}};
  r = c->Apply({{4, {cas, Customer(WriteOp::kDelete, "b:7", {})}}});
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 2u);
  EXPECT_EQ(CountRows("orders"), 0);
  EXPECT_EQ(SqlQuery(path_, "SELECT cust_id FROM crm_customers"), "1\n");
  // Deleted rows keep their record ids in the key map without a key.
  EXPECT_EQ(KeyMap(), "crm_customers|b:7|-\norders|b:3|-\n");
  r = c->Apply({{5, {Customer(WriteOp::kUpdate, "b:7", {{"name", "again"}})}}});
  ASSERT_OK(r);
  EXPECT_EQ(r->rejected, 1u);
  // An insert brings the record back with a new key.
  r = c->Apply({{6, {Customer(WriteOp::kInsert, "b:7", {{"id", "b:7"}, {"name", "Back"}})}}});
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 1u);
  EXPECT_EQ(KeyMap(), "crm_customers|b:7|2\norders|b:3|-\n");
}

TEST_F(SqliteMappedKeyTest, ReusedRowidIsANewRecord) {
  auto c = MakeMapped();
  Position pos;
  SqlExec(path_, "INSERT INTO crm_customers(full_name) VALUES ('one'), ('two')");
  SqlExec(path_, "INSERT INTO orders(cust, item) VALUES (2, 'pen')");
  SqlExec(path_, "DELETE FROM orders; DELETE FROM crm_customers WHERE cust_id = 2");
  // SQLite hands out rowid 2 again.
  SqlExec(path_, "INSERT INTO crm_customers(full_name) VALUES ('three')");
  SqlExec(path_, "INSERT INTO orders(cust, item) VALUES (2, 'ink')");
  EXPECT_EQ(SqlQuery(path_, "SELECT cust_id FROM crm_customers WHERE full_name = 'three'"), "2\n");
  SqlExec(path_, "UPDATE crm_customers SET full_name = 'drei' WHERE cust_id = 2");
  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 8u);
  EXPECT_EQ(changes[1].key, Row({{"id", "crm:2"}}));
  EXPECT_EQ(changes[4].op, Op::kDelete);
  EXPECT_EQ(changes[4].key, Row({{"id", "crm:2"}}));
  EXPECT_EQ(changes[5].op, Op::kInsert);
  const Value fresh = changes[5].key["id"];
  EXPECT_NE(fresh, "crm:2");
  EXPECT_EQ(fresh.get<std::string>().rfind("crm:2#", 0), 0u) << fresh;
  EXPECT_FALSE(OwnNativeKey("crm", fresh.get<std::string>()).has_value());
  // The order rowid 1 was reused too; its reference names the new customer.
  EXPECT_NE(changes[6].key["id"], "crm:1");
  EXPECT_EQ(changes[6].after["customer"], fresh);
  EXPECT_EQ(changes[7].key["id"], fresh);
  EXPECT_EQ(changes[7].after["name"], "drei");

  // Writes for the deleted record do not touch the new row; writes for the new one do.
  Result<ApplyResult> r =
      c->Apply({{1,
                 {Customer(WriteOp::kUpdate, "crm:2", {{"name", "old"}}),
                  Customer(WriteOp::kUpdate, fresh.get<std::string>(), {{"name", "new"}})}}});
  ASSERT_OK(r);
  EXPECT_EQ(r->rejected, 1u);
  EXPECT_EQ(r->applied, 1u);
  EXPECT_EQ(SqlQuery(path_, "SELECT full_name FROM crm_customers WHERE cust_id = 2"), "new\n");
}

TEST_F(SqliteMappedKeyTest, KeyChangedByTheApplicationEndsTheOldRecord) {
  auto c = MakeMapped();
  ASSERT_OK(c->Apply({{1, {Customer(WriteOp::kInsert, "b:7", {{"id", "b:7"}, {"name", "A"}})}}}));
  SqlExec(path_, "INSERT INTO crm_customers(cust_id, full_name) VALUES (2, 'B')");
  Position pos;
  CaptureAll(*c, &pos);
  SqlExec(path_, "UPDATE crm_customers SET cust_id = 50 WHERE cust_id = 1");
  // crm:2 moves away; its old key then goes to another row, which must not be crm:2 again.
  SqlExec(path_, "UPDATE crm_customers SET cust_id = 60 WHERE cust_id = 2");
  SqlExec(path_, "UPDATE crm_customers SET cust_id = 2 WHERE cust_id = 50");
  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 6u);
  EXPECT_EQ(changes[0].op, Op::kDelete);
  EXPECT_EQ(changes[0].key, Row({{"id", "b:7"}}));
  EXPECT_EQ(changes[1].op, Op::kInsert);
  EXPECT_EQ(changes[1].key, Row({{"id", "crm:50"}}));
  EXPECT_EQ(changes[2].key, Row({{"id", "crm:2"}}));
  EXPECT_EQ(changes[3].key, Row({{"id", "crm:60"}}));
  EXPECT_EQ(changes[4].key, Row({{"id", "crm:50"}}));
  EXPECT_EQ(changes[5].op, Op::kInsert);
  EXPECT_NE(changes[5].key["id"], "crm:2");
  EXPECT_EQ(changes[5].key["id"].get<std::string>().rfind("crm:2#", 0), 0u);
  // The record b:7 has no row here any more.
  Result<ApplyResult> r = c->Apply({{2, {Customer(WriteOp::kUpdate, "b:7", {{"name", "x"}})}}});
  ASSERT_OK(r);
  EXPECT_EQ(r->rejected, 1u);
}

TEST_F(SqliteMappedKeyTest, RowsLoggedAfterTheirParentWasDeletedStillNameItsRecord) {
  auto c = MakeMapped();
  ASSERT_OK(c->Apply({{1,
                       {Customer(WriteOp::kInsert, "b:7", {{"id", "b:7"}, {"name", "A"}}),
                        Order(WriteOp::kInsert, "b:3", {{"id", "b:3"}, {"customer", "b:7"}})}}}));
  Position pos;
  CaptureAll(*c, &pos);
  // Parent first (the application checks foreign keys at commit, or not at all).
  SqlExec(path_, "DELETE FROM crm_customers; DELETE FROM orders");
  // The freed key goes to a new row, which is a new record, not b:7.
  SqlExec(path_, "INSERT INTO crm_customers(full_name) VALUES ('new')");
  std::vector<Change> changes = CaptureAll(*c, &pos);
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0].key, Row({{"id", "b:7"}}));
  EXPECT_EQ(changes[1].key, Row({{"id", "b:3"}}));
  EXPECT_EQ(changes[1].before["customer"], "b:7");
  EXPECT_EQ(changes[2].op, Op::kInsert);
  EXPECT_EQ(changes[2].key, Row({{"id", "crm:1"}}));
  EXPECT_EQ(SqlQuery(path_, "SELECT cust_id FROM crm_customers"), "1\n");
  Result<ApplyResult> r = c->Apply({{2,
                                     {Customer(WriteOp::kUpdate, "b:7", {{"name", "x"}}),
                                      Customer(WriteOp::kUpdate, "crm:1", {{"name", "y"}})}}});
  ASSERT_OK(r);
  EXPECT_EQ(r->rejected, 1u);
  EXPECT_EQ(r->applied, 1u);
  EXPECT_EQ(SqlQuery(path_, "SELECT full_name FROM crm_customers"), "y\n");
}

TEST_F(SqliteMappedKeyTest, WriteIsRejectedWhenTheApplicationChangedTheRecordSinceSeen) {
  auto c = MakeMapped();
  ASSERT_OK(c->Apply({{1, {Customer(WriteOp::kInsert, "b:7", {{"id", "b:7"}, {"name", "A"}})}}}));
  Position pos;
  CaptureAll(*c, &pos);
  SqlExec(path_, "UPDATE crm_customers SET full_name = 'app'");
  RowOp stale = Customer(WriteOp::kUpdate, "b:7", {{"name", "duplex"}});
  stale.seen = pos;
  Result<ApplyResult> r = c->Apply({{2, {stale}}});
  ASSERT_OK(r);
  EXPECT_EQ(r->rejected, 1u);
  EXPECT_EQ(SqlQuery(path_, "SELECT full_name FROM crm_customers"), "app\n");
}

TEST_F(SqliteMappedKeyTest, ReferenceToARecordNotHeldParksItsTransaction) {
  auto c = MakeMapped();
  std::vector<ApplyBatch> batches = {
      {1,
       {Order(WriteOp::kInsert, "b:3", {{"id", "b:3"}, {"customer", "b:99"}, {"item", "x"}}, 1),
        Order(WriteOp::kInsert, "b:4", {{"id", "b:4"}, {"customer", nullptr}, {"item", "y"}}, 2)}}};
  Result<ApplyResult> r = c->Apply(batches);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsRefused());
  r = c->Apply(batches, /*isolate_txns=*/true);
  ASSERT_OK(r);
  ASSERT_EQ(r->failed.size(), 1u);
  EXPECT_EQ(r->failed[0].txn, 1);
  EXPECT_NE(r->failed[0].reason.find("field 'customer' references customers record 'b:99', "
                                     "which endpoint 'crm' does not hold"),
            std::string::npos)
      << r->failed[0].reason;
  EXPECT_EQ(r->applied, 1u);
  EXPECT_EQ(SqlQuery(path_, "SELECT item, cust IS NULL FROM orders"), "y|1\n");
  EXPECT_EQ(KeyMap(), "orders|b:4|1\n");
}

TEST_F(SqliteMappedKeyTest, InstallationWithoutKeyMapIsUpgradedByInstall) {
  auto c = Make();
  ASSERT_OK(c->Apply({{4, {Insert({{"id", 1}}, {{"id", 1}, {"name", "A"}})}}}));
  SqlExec(path_, "DROP TABLE _duplex_keymap");  // as installed by an earlier version
  auto again = Make({Customers()}, /*install=*/false);
  EXPECT_EQ(*again->AppliedId(), 4);
  EXPECT_EQ(*again->IsInstalled(), false);
  ASSERT_OK(again->Install());
  EXPECT_EQ(*again->IsInstalled(), true);
  EXPECT_EQ(SqlQuery(path_, "SELECT count(*) FROM _duplex_keymap"), "0\n");
}

TEST_F(SqliteMappedKeyTest, BindAndInstallCheckTheMapping) {
  SqlExec(path_, "CREATE TABLE plain(code TEXT PRIMARY KEY, v TEXT)");
  auto c = std::make_unique<SqliteConnector>("crm", path_);
  ASSERT_OK(c->Open());
  Status st = c->Bind({Customers(), MappedOrders()});
  EXPECT_TRUE(st.IsInvalidArgument());
  EXPECT_NE(st.message().find("references collection 'customers', which is not bound to this "
                              "endpoint with a mapped key"),
            std::string::npos)
      << st.message();
  CollectionBinding plain;
  plain.collection = "plain";
  plain.table = "plain";
  plain.key = {"code"};
  plain.fields = {{"code", "code"}, {"v", "v"}};
  plain.mapped_key = true;
  ASSERT_OK(c->Bind({plain}));
  st = c->Install();
  EXPECT_TRUE(st.IsInvalidArgument());
  EXPECT_NE(st.message().find("key column 'code' to be generated"), std::string::npos)
      << st.message();
}

}  // namespace
}  // namespace duplex::sqlite
