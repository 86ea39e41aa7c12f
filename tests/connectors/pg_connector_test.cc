// PostgresConnector driven directly against a throwaway PostgreSQL 15 cluster
// (tests/support/pg_cluster.h): relationships (DESIGN §5): foreign keys in Describe, deferred
// checks, source transactions as units (P7), mapped keys and references. One cluster for the
// binary, a database per test; both capture modes where capture matters.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "connectors/postgres/postgres_connector.h"
#include "support/pg_cluster.h"
#include "support/test_util.h"

namespace duplex::pg {
namespace {

using ::duplex::testing::SharedPgCluster;
using Mode = PostgresConnector::CaptureMode;

// Writes planned after every application change so far.
const Position kSeenAll = Position::FromInt(int64_t{1} << 60);

RowOp Write(WriteOp op, const std::string& collection, Row key, Row values, int64_t txn,
            Row expected = Row::object()) {
  RowOp w;
  w.op = op;
  w.collection = collection;
  w.key = std::move(key);
  w.values = std::move(values);
  w.expected = std::move(expected);
  w.seen = kSeenAll;
  w.txn = txn;
  return w;
}

CollectionBinding Binding(const std::string& table, std::vector<std::string> columns) {
  CollectionBinding b;
  b.collection = table;
  b.table = table;
  b.key = {"id"};
  for (const std::string& c : columns) b.fields.emplace_back(c, c);
  return b;
}

class PgConnectorTest : public SharedPgCluster<::testing::TestWithParam<Mode>> {
 protected:
  // A fresh database holding `schema`.
  std::string NewDb(const std::string& schema) {
    const std::string db = "db" + std::to_string(++databases_);
    NewDatabase(db, schema);
    return db;
  }
  void Exec(const std::string& db, const std::string& sql) { PgExec(db, sql); }
  std::string Query(const std::string& db, const std::string& sql) { return PgQuery(db, sql); }
  std::unique_ptr<PostgresConnector> Open(const std::string& db, const std::string& name,
                                          Mode mode) {
    PostgresConnector::Options o;
    o.name = name;
    o.dsn = cluster_->dsn(db);
    o.capture = mode;
    o.tag = name + "_" + db;
    auto c = std::make_unique<PostgresConnector>(o);
    Status st = c->Open();
    EXPECT_TRUE(st.ok()) << st.ToString();
    return c;
  }
  // Captures from `*from` until at least `n` row changes (not markers) arrived, or 20 s.
  std::vector<Change> CaptureRows(PostgresConnector& c, Position* from, size_t n) {
    std::vector<Change> rows;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (rows.size() < n && std::chrono::steady_clock::now() < deadline) {
      Result<bool> more = c.Poll();
      EXPECT_TRUE(more.ok()) << more.status().ToString();
      Result<ChangeBatch> batch = c.Capture(*from, 1000);
      EXPECT_TRUE(batch.ok()) << batch.status().ToString();
      if (!batch.ok()) break;
      for (Change& ch : batch->changes) {
        if (ch.op == Op::kInsert || ch.op == Op::kUpdate || ch.op == Op::kDelete) {
          rows.push_back(std::move(ch));
        }
      }
      *from = batch->end;
      if (rows.size() < n) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return rows;
  }
};

std::string ModeName(const ::testing::TestParamInfo<Mode>& info) {
  return info.param == Mode::kLogical ? "Logical" : "Trigger";
}

INSTANTIATE_TEST_SUITE_P(Capture, PgConnectorTest,
                         ::testing::Values(Mode::kLogical, Mode::kTrigger), ModeName);

// The planner's inputs: which columns reference which table, in order, whether the endpoint can
// defer the check, and which keys the endpoint generates.
TEST_P(PgConnectorTest, DescribeReportsForeignKeysAndGeneratedKeys) {
  if (GetParam() == Mode::kTrigger) GTEST_SKIP() << "capture plays no part";
  const std::string db = NewDb(
      "CREATE TABLE parent(id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text);"
      "CREATE TABLE serials(id serial PRIMARY KEY, n int DEFAULT 3);"
      "CREATE TABLE pair(x int, y int, PRIMARY KEY (x, y));"
      "CREATE TABLE child(id int PRIMARY KEY, b int, a int, "
      "pid int REFERENCES parent(id) DEFERRABLE, "
      "CONSTRAINT child_pair FOREIGN KEY (a, b) REFERENCES pair(y, x));");
  auto c = Open(db, "a", GetParam());
  Result<TableInfo> child = c->Describe("child");
  ASSERT_OK(child);
  ASSERT_EQ(child->foreign_keys.size(), 2u);
  const ForeignKeyInfo& pair = child->foreign_keys[0];  // by constraint name
  EXPECT_EQ(pair.columns, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(pair.ref_table, "pair");
  EXPECT_EQ(pair.ref_columns, (std::vector<std::string>{"y", "x"}));
  EXPECT_FALSE(pair.deferrable);
  const ForeignKeyInfo& pid = child->foreign_keys[1];
  EXPECT_EQ(pid.columns, (std::vector<std::string>{"pid"}));
  EXPECT_EQ(pid.ref_table, "parent");
  EXPECT_EQ(pid.ref_columns, (std::vector<std::string>{"id"}));
  EXPECT_TRUE(pid.deferrable);
  for (const ColumnInfo& col : child->columns) EXPECT_FALSE(col.generated) << col.name;

  Result<TableInfo> parent = c->Describe("parent");
  ASSERT_OK(parent);
  EXPECT_TRUE(parent->foreign_keys.empty());
  EXPECT_TRUE(parent->columns[0].generated);
  EXPECT_FALSE(parent->columns[1].generated);
  Result<TableInfo> serials = c->Describe("serials");
  ASSERT_OK(serials);
  EXPECT_TRUE(serials->columns[0].generated);
  EXPECT_FALSE(serials->columns[1].generated);  // a default, but not a sequence
  Result<TableInfo> none = c->Describe("nope");
  ASSERT_OK(none);
  EXPECT_FALSE(none->exists);
}

constexpr const char* kFamily =
    "CREATE TABLE parent(id int PRIMARY KEY, name text);"
    "CREATE TABLE child(id int PRIMARY KEY, pid int REFERENCES parent(id));"  // NOT DEFERRABLE
    "CREATE TABLE late(id int PRIMARY KEY, pid int REFERENCES parent(id) DEFERRABLE);";

// P7: isolate_txns finds the source transactions the target refuses, for a foreign key checked
// per statement and for one checked at commit, rolls each back whole, and commits the others.
TEST_P(PgConnectorTest, IsolateParksRefusedTransactionsWholeAndCommitsTheOthers) {
  const std::string db = NewDb(kFamily);
  auto c = Open(db, "a", GetParam());
  ASSERT_OK(c->Bind({Binding("parent", {"id", "name"}), Binding("child", {"id", "pid"}),
                     Binding("late", {"id", "pid"})}));
  ASSERT_OK(c->Install());
  ApplyBatch batch;
  batch.id = 7;
  batch.ops = {
      // txn 1: a parent, then a child whose parent is missing (checked at once).
      Write(WriteOp::kInsert, "parent", {{"id", 1}}, {{"id", 1}, {"name", "one"}}, 1),
      Write(WriteOp::kInsert, "child", {{"id", 1}}, {{"id", 1}, {"pid", 99}}, 1),
      // txn 2: fine.
      Write(WriteOp::kInsert, "parent", {{"id", 2}}, {{"id", 2}, {"name", "two"}}, 2),
      Write(WriteOp::kInsert, "child", {{"id", 2}}, {{"id", 2}, {"pid", 2}}, 2),
      // txn 3: a deferrable reference to a parent that never comes (checked at commit).
      Write(WriteOp::kInsert, "late", {{"id", 3}}, {{"id", 3}, {"pid", 98}}, 3),
      // txn 4: a deferrable reference written before its parent: fine.
      Write(WriteOp::kInsert, "late", {{"id", 4}}, {{"id", 4}, {"pid", 4}}, 4),
      Write(WriteOp::kInsert, "parent", {{"id", 4}}, {{"id", 4}, {"name", "four"}}, 4),
  };
  Result<ApplyResult> all = c->Apply({batch}, false);
  ASSERT_FALSE(all.ok());
  EXPECT_TRUE(all.status().IsRefused()) << all.status().ToString();
  EXPECT_EQ(Query(db, "SELECT count(*) FROM parent"), "0\n");

  Result<ApplyResult> r = c->Apply({batch}, true);
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 4u);
  EXPECT_EQ(r->rejected, 0u);
  ASSERT_EQ(r->failed.size(), 2u);
  EXPECT_EQ(r->failed[0].batch_id, 7);
  EXPECT_EQ(r->failed[0].txn, 1);
  ASSERT_EQ(r->failed[0].ops.size(), 2u);
  EXPECT_EQ(r->failed[0].ops[1].collection, "child");
  EXPECT_NE(r->failed[0].reason.find("child"), std::string::npos) << r->failed[0].reason;
  EXPECT_EQ(r->failed[1].txn, 3);
  ASSERT_EQ(r->failed[1].ops.size(), 1u);
  EXPECT_NE(r->failed[1].reason.find("late"), std::string::npos) << r->failed[1].reason;
  EXPECT_EQ(Query(db, "SELECT id, name FROM parent ORDER BY id"), "2|two\n4|four\n");
  EXPECT_EQ(Query(db, "SELECT id, pid FROM child ORDER BY id"), "2|2\n");
  EXPECT_EQ(Query(db, "SELECT id, pid FROM late ORDER BY id"), "4|4\n");
  Result<int64_t> applied = c->AppliedId();
  ASSERT_OK(applied);
  EXPECT_EQ(*applied, 7);

  // Writes of a source that cannot tell its transactions (txn 0) were captured together: one
  // unit.
  ApplyBatch loose;
  loose.id = 8;
  loose.ops = {Write(WriteOp::kInsert, "parent", {{"id", 5}}, {{"id", 5}, {"name", "five"}}, 0),
               Write(WriteOp::kInsert, "child", {{"id", 5}}, {{"id", 5}, {"pid", 97}}, 0)};
  r = c->Apply({loose}, true);
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 0u);
  ASSERT_EQ(r->failed.size(), 1u);
  ASSERT_EQ(r->failed[0].ops.size(), 2u);
  EXPECT_EQ(Query(db, "SELECT count(*) FROM parent WHERE id = 5"), "0\n");
}

// Deferrable foreign keys are checked at commit, even when declared INITIALLY IMMEDIATE: a
// cycle inserted in one transaction applies, in both apply paths.
TEST_P(PgConnectorTest, DeferrableCycleApplies) {
  const std::string db = NewDb(
      "CREATE TABLE a(id int PRIMARY KEY, bid int);"
      "CREATE TABLE b(id int PRIMARY KEY, aid int REFERENCES a(id) DEFERRABLE);"
      "ALTER TABLE a ADD FOREIGN KEY (bid) REFERENCES b(id) DEFERRABLE INITIALLY IMMEDIATE;");
  auto c = Open(db, "a", GetParam());
  ASSERT_OK(c->Bind({Binding("a", {"id", "bid"}), Binding("b", {"id", "aid"})}));
  ASSERT_OK(c->Install());
  for (int isolate = 0; isolate < 2; ++isolate) {
    const int id = isolate + 1;
    ApplyBatch batch;
    batch.id = id;
    batch.ops = {Write(WriteOp::kInsert, "a", {{"id", id}}, {{"id", id}, {"bid", id}}, 5),
                 Write(WriteOp::kInsert, "b", {{"id", id}}, {{"id", id}, {"aid", id}}, 5)};
    Result<ApplyResult> r = c->Apply({batch}, isolate == 1);
    ASSERT_OK(r);
    EXPECT_EQ(r->applied, 2u);
    EXPECT_TRUE(r->failed.empty());
  }
  EXPECT_EQ(Query(db, "SELECT id, bid FROM a ORDER BY id"), "1|1\n2|2\n");
}

// Change::txn: equal for the changes of one source transaction, different across them; each
// initial-load row is a unit of its own.
TEST_P(PgConnectorTest, ChangesCarryTheirSourceTransaction) {
  const std::string db = NewDb(kFamily);
  Exec(db, "INSERT INTO parent VALUES (10, 'x'), (11, 'y')");
  auto c = Open(db, "a", GetParam());
  ASSERT_OK(c->Bind({Binding("parent", {"id", "name"}), Binding("child", {"id", "pid"})}));
  ASSERT_OK(c->Install());
  Exec(db,
       "BEGIN; INSERT INTO parent VALUES (1, 'one'); INSERT INTO child VALUES (1, 1); "
       "UPDATE parent SET name = 'uno' WHERE id = 1; COMMIT;"
       "INSERT INTO parent VALUES (2, 'two');");
  Position from;
  std::vector<Change> rows = CaptureRows(*c, &from, 6);
  ASSERT_EQ(rows.size(), 6u);
  EXPECT_TRUE(rows[0].snapshot);
  EXPECT_TRUE(rows[1].snapshot);
  EXPECT_NE(rows[0].txn, rows[1].txn);
  EXPECT_NE(rows[0].txn, 0);
  for (int i = 2; i < 6; ++i) EXPECT_FALSE(rows[i].snapshot) << i;
  EXPECT_NE(rows[2].txn, 0);
  EXPECT_EQ(rows[2].txn, rows[3].txn);
  EXPECT_EQ(rows[3].txn, rows[4].txn);
  EXPECT_EQ(rows[3].collection, "child");
  EXPECT_NE(rows[5].txn, rows[4].txn);
  EXPECT_NE(rows[5].txn, 0);
  EXPECT_NE(rows[5].txn, rows[0].txn);
}

// A batch with no row writes (a repeated delete, a no-op there: the engine only needs the
// endpoint to observe its apply id) still commits, and its marker arrives. Logical decoding
// skips an empty transaction, so there the apply sends an empty message with it.
TEST_P(PgConnectorTest, EmptyBatchIsObservedAsAMarker) {
  const std::string db = NewDb(kFamily);
  auto c = Open(db, "a", GetParam());
  ASSERT_OK(c->Bind({Binding("parent", {"id", "name"}), Binding("child", {"id", "pid"})}));
  ASSERT_OK(c->Install());
  Result<ApplyResult> applied = c->Apply({ApplyBatch{7, {}}});
  ASSERT_OK(applied);
  EXPECT_EQ(applied->skipped_batches, 0u);
  Position from;
  int64_t marker = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (marker == 0 && std::chrono::steady_clock::now() < deadline) {
    ASSERT_OK(c->Poll());
    Result<ChangeBatch> batch = c->Capture(from, 1000);
    ASSERT_OK(batch);
    for (const Change& ch : batch->changes) {
      EXPECT_EQ(ch.op, Op::kMarker);
      if (ch.op == Op::kMarker) marker = ch.apply_id;
    }
    from = batch->end;
    if (marker == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(marker, 7);
  // Replayed (after a crash): skipped, like any applied batch.
  applied = c->Apply({ApplyBatch{7, {}}});
  ASSERT_OK(applied);
  EXPECT_EQ(applied->skipped_batches, 1u);
}

constexpr const char* kShop =
    "CREATE TABLE customers(id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text);"
    "CREATE TABLE orders(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    "customer int REFERENCES customers(id) DEFERRABLE, item text);";

std::vector<CollectionBinding> ShopBindings() {
  CollectionBinding customers = Binding("customers", {"id", "name"});
  customers.mapped_key = true;
  CollectionBinding orders = Binding("orders", {"id", "customer", "item"});
  orders.mapped_key = true;
  orders.mapped_refs = {{"customer", "customers"}};
  return {customers, orders};
}

// Applies endpoint a's customer "a:5" (named x) to `c`, bound to the shop, as batch 1.
void ApplyCustomerA5(PostgresConnector& c) {
  ApplyBatch first;
  first.id = 1;
  first.ops = {
      Write(WriteOp::kInsert, "customers", {{"id", "a:5"}}, {{"id", "a:5"}, {"name", "x"}}, 1)};
  Result<ApplyResult> r = c.Apply({first}, false);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

// key_mode = "mapped": the endpoint generates its keys; duplex's records keep their ids through
// the key map, the application's rows get "<endpoint>:<native>", references are translated both
// ways, a replay changes nothing, and a reference to a record the endpoint lacks parks its
// transaction.
TEST_P(PgConnectorTest, MappedKeysAndReferencesTravelAsRecordIds) {
  const std::string db = NewDb(kShop);
  Exec(db, "INSERT INTO customers(name) VALUES ('pre')");  // id 1: the initial load
  auto c = Open(db, "b", GetParam());
  ASSERT_OK(c->Bind(ShopBindings()));
  ASSERT_OK(c->Install());
  Position from;
  std::vector<Change> rows = CaptureRows(*c, &from, 1);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].key, Row({{"id", "b:1"}}));
  EXPECT_EQ(rows[0].after, Row({{"id", "b:1"}, {"name", "pre"}}));

  ApplyBatch first;
  first.id = 10;
  first.ops = {
      // txn 1: a customer from endpoint a and its order (the order's reference resolves to the
      // key generated one statement earlier).
      Write(WriteOp::kInsert, "customers", {{"id", "a:5"}}, {{"id", "a:5"}, {"name", "x"}}, 1),
      Write(WriteOp::kInsert, "orders", {{"id", "a:7"}},
            {{"id", "a:7"}, {"customer", "a:5"}, {"item", "book"}}, 1),
      // txn 2: an order of a customer first seen here, and one without a customer.
      Write(WriteOp::kInsert, "orders", {{"id", "a:8"}},
            {{"id", "a:8"}, {"customer", "b:1"}, {"item", "pen"}}, 2),
      Write(WriteOp::kInsert, "orders", {{"id", "a:9"}},
            {{"id", "a:9"}, {"customer", nullptr}, {"item", "gift"}}, 2),
  };
  Result<ApplyResult> r = c->Apply({first}, false);
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 4u);
  EXPECT_EQ(Query(db, "SELECT id, name FROM customers ORDER BY id"), "1|pre\n2|x\n");
  EXPECT_EQ(Query(db, "SELECT id, customer, item FROM orders ORDER BY id"),
            "1|2|book\n2|1|pen\n3|NULL|gift\n");
  const std::string map =
      "SELECT tbl, record, native FROM _duplex_b_" + db + "_keymap ORDER BY tbl, record";
  const std::string expected_map = "customers|a:5|2\norders|a:7|1\norders|a:8|2\norders|a:9|3\n";
  EXPECT_EQ(Query(db, map), expected_map);

  // A replay of the batch (after a crash) changes nothing: P6.
  r = c->Apply({first}, false);
  ASSERT_OK(r);
  EXPECT_EQ(r->skipped_batches, 1u);
  EXPECT_EQ(Query(db, map), expected_map);
  EXPECT_EQ(Query(db, "SELECT count(*) FROM orders"), "3\n");

  // The application edits duplex's customer and adds an order of it: captured as records.
  Exec(db,
       "BEGIN; UPDATE customers SET name = 'y' WHERE id = 2;"
       "INSERT INTO orders(customer, item) VALUES (2, 'app'); COMMIT;");
  rows = CaptureRows(*c, &from, 2);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].op, Op::kUpdate);
  EXPECT_EQ(rows[0].key, Row({{"id", "a:5"}}));
  EXPECT_EQ(rows[0].after["id"], "a:5");
  EXPECT_EQ(rows[1].op, Op::kInsert);
  EXPECT_EQ(rows[1].key, Row({{"id", "b:4"}}));
  EXPECT_EQ(rows[1].after, Row({{"id", "b:4"}, {"customer", "a:5"}, {"item", "app"}}));
  EXPECT_EQ(rows[0].txn, rows[1].txn);

  // Updates and deletes find rows by record id: duplex's (key map) and the application's own.
  ApplyBatch second;
  second.id = 11;
  second.ops = {
      Write(WriteOp::kUpdate, "customers", {{"id", "a:5"}}, {{"name", "z"}}, 3, {{"name", "y"}}),
      Write(WriteOp::kUpdate, "orders", {{"id", "b:4"}}, {{"customer", "b:1"}}, 3,
            {{"customer", "a:5"}}),
      Write(WriteOp::kDelete, "orders", {{"id", "a:9"}}, Row::object(), 4),
  };
  r = c->Apply({second}, false);
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 3u);
  EXPECT_EQ(r->rejected, 0u);
  EXPECT_EQ(Query(db, "SELECT id, name FROM customers ORDER BY id"), "1|pre\n2|z\n");
  EXPECT_EQ(Query(db, "SELECT id, customer, item FROM orders ORDER BY id"),
            "1|2|book\n2|1|pen\n4|1|app\n");

  // A reference to a record this endpoint lacks: refused, its transaction parked; a record
  // with no row here is absent (rejected), and so is a second insert of a record.
  ApplyBatch third;
  third.id = 12;
  third.ops = {
      Write(WriteOp::kInsert, "orders", {{"id", "a:20"}},
            {{"id", "a:20"}, {"customer", "a:404"}, {"item", "lost"}}, 5),
      Write(WriteOp::kInsert, "orders", {{"id", "a:21"}},
            {{"id", "a:21"}, {"customer", "a:5"}, {"item", "kept"}}, 6),
      Write(WriteOp::kUpdate, "customers", {{"id", "c:1"}}, {{"name", "nobody"}}, 7),
      Write(WriteOp::kInsert, "customers", {{"id", "a:5"}}, {{"id", "a:5"}, {"name", "again"}}, 8),
  };
  r = c->Apply({third}, false);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsRefused()) << r.status().ToString();
  for (const char* part : {"customer", "orders", "a:404", "customers", "'b'"}) {
    EXPECT_NE(r.status().message().find(part), std::string::npos)
        << part << ": " << r.status().ToString();
  }
  r = c->Apply({third}, true);
  ASSERT_OK(r);
  ASSERT_EQ(r->failed.size(), 1u);
  EXPECT_EQ(r->failed[0].txn, 5);
  EXPECT_NE(r->failed[0].reason.find("a:404"), std::string::npos) << r->failed[0].reason;
  EXPECT_EQ(r->applied, 1u);
  EXPECT_EQ(r->rejected, 2u);
  // (The refused attempt used up identity values: sequences are not transactional.)
  EXPECT_EQ(Query(db, "SELECT customer FROM orders WHERE id > 4 ORDER BY id"), "2\n");
  const std::string kept = Query(db, "SELECT id FROM orders WHERE item = 'kept'");
  EXPECT_EQ(Query(db, "SELECT count(*) FROM customers"), "2\n");

  // The application's change to a duplex-inserted order, then its delete: the record ids of
  // endpoint a come back, the reference too.
  Exec(db, "UPDATE orders SET item = 'book2' WHERE id = 1; DELETE FROM orders WHERE id = " + kept);
  rows = CaptureRows(*c, &from, 2);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].key, Row({{"id", "a:7"}}));
  EXPECT_EQ(rows[0].after, Row({{"id", "a:7"}, {"customer", "a:5"}, {"item", "book2"}}));
  EXPECT_EQ(rows[1].op, Op::kDelete);
  EXPECT_EQ(rows[1].key, Row({{"id", "a:21"}}));
}

// A deleted record of another endpoint comes back (an update won over the delete): a new row,
// its key map entry moved to the new key.
TEST_P(PgConnectorTest, MappedRecordInsertedAgainAfterItsRowWasDeleted) {
  const std::string db = NewDb(kShop);
  auto c = Open(db, "b", GetParam());
  ASSERT_OK(c->Bind(ShopBindings()));
  ASSERT_OK(c->Install());
  ASSERT_NO_FATAL_FAILURE(ApplyCustomerA5(*c));
  Exec(db, "DELETE FROM customers");
  Position from;
  std::vector<Change> rows = CaptureRows(*c, &from, 1);  // seen: else the insert is stale
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].op, Op::kDelete);
  EXPECT_EQ(rows[0].key, Row({{"id", "a:5"}}));
  ApplyBatch again;
  again.id = 2;
  again.ops = {
      Write(WriteOp::kInsert, "customers", {{"id", "a:5"}}, {{"id", "a:5"}, {"name", "y"}}, 1)};
  Result<ApplyResult> r = c->Apply({again}, false);
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 1u);
  EXPECT_EQ(Query(db, "SELECT id, name FROM customers"), "2|y\n");
  EXPECT_EQ(Query(db, "SELECT record, native FROM _duplex_b_" + db + "_keymap"), "a:5|2\n");
}

// A write planned before the application's change to a mapped row is rejected (the stale check
// compares native keys), and the rejection comes back with the record id and the row as it is.
TEST_P(PgConnectorTest, StaleWriteToAMappedRowIsRejectedWithItsRecordId) {
  const std::string db = NewDb(kShop);
  auto c = Open(db, "b", GetParam());
  ASSERT_OK(c->Bind(ShopBindings()));
  ASSERT_OK(c->Install());
  ASSERT_NO_FATAL_FAILURE(ApplyCustomerA5(*c));
  Position from;
  Exec(db, "UPDATE customers SET name = 'app' WHERE name = 'x'");
  std::vector<Change> rows = CaptureRows(*c, &from, 1);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].key, Row({{"id", "a:5"}}));
  ApplyBatch stale;
  stale.id = 2;
  RowOp w = Write(WriteOp::kUpdate, "customers", {{"id", "a:5"}}, {{"name", "duplex"}}, 2,
                  {{"name", "app"}});
  w.seen = Position::FromInt(
      1);  // planned before the application's update (whose value it expects by chance)
  stale.ops = {w};
  Result<ApplyResult> r = c->Apply({stale}, false);
  ASSERT_OK(r);
  EXPECT_EQ(r->applied, 0u);
  EXPECT_EQ(r->rejected, 1u);
  EXPECT_EQ(Query(db, "SELECT name FROM customers"), "app\n");
  Change rejected;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (rejected.op != Op::kRejected && std::chrono::steady_clock::now() < deadline) {
    ASSERT_OK(c->Poll());
    Result<ChangeBatch> batch = c->Capture(from, 1000);
    ASSERT_OK(batch);
    for (const Change& ch : batch->changes) {
      if (ch.op == Op::kRejected) rejected = ch;
    }
    from = batch->end;
  }
  ASSERT_EQ(rejected.op, Op::kRejected);
  EXPECT_EQ(rejected.apply_id, 2);
  EXPECT_EQ(rejected.key, Row({{"id", "a:5"}}));
  EXPECT_EQ(rejected.after, Row({{"id", "a:5"}, {"name", "app"}}));
}

// An endpoint installed by an older duplex (no key map; trigger mode: no txn in the log) is not
// installed; Install upgrades it in place.
TEST_P(PgConnectorTest, InstallUpgradesAnOlderInstallation) {
  const std::string db = NewDb(kShop);
  auto c = Open(db, "b", GetParam());
  ASSERT_OK(c->Bind(ShopBindings()));
  ASSERT_OK(c->Install());
  Result<bool> installed = c->IsInstalled();
  ASSERT_OK(installed);
  EXPECT_TRUE(*installed);
  const std::string prefix = "_duplex_b_" + db;
  Exec(db, "DROP TABLE " + prefix + "_keymap; DROP FUNCTION " + prefix + "_native");
  if (GetParam() == Mode::kTrigger) Exec(db, "ALTER TABLE " + prefix + "_log DROP COLUMN txn");
  installed = c->IsInstalled();
  ASSERT_OK(installed);
  EXPECT_FALSE(*installed);
  ASSERT_OK(c->Install());
  installed = c->IsInstalled();
  ASSERT_OK(installed);
  EXPECT_TRUE(*installed);
  Exec(db, "INSERT INTO customers(name) VALUES ('new')");
  Position from;
  std::vector<Change> rows = CaptureRows(*c, &from, 1);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].key, Row({{"id", "b:1"}}));
  EXPECT_NE(rows[0].txn, 0);
  ASSERT_OK(c->Uninstall());
  EXPECT_EQ(Query(db, "SELECT to_regclass('" + prefix + "_keymap') IS NULL"), "t\n");
}

}  // namespace
}  // namespace duplex::pg
