#include "store/state_store.h"

#include <gtest/gtest.h>

#include "support/test_util.h"
#include "util/json_value.h"

namespace duplex {
namespace {

using testing::TempDir;

TEST(StateStoreTest, JournalKeepsBatchesInOrderWithCapturePosition) {
  TempDir dir;
  auto store = StateStore::Open(dir.File("s.db"), true);
  ASSERT_OK(store);
  ChangeBatch b;
  Change c;
  c.op = Op::kUpdate;
  c.collection = "t";
  c.key = {{"id", 1}};
  c.before = {{"id", 1}, {"v", "a"}};
  c.after = {{"id", 1}, {"v", MakeBlob(std::string("\0\xff", 2))}};
  c.commit_ms = 12.5;
  c.position = Position::FromInt(7);
  c.txn = 991;
  b.changes.push_back(c);
  Change m;
  m.op = Op::kMarker;
  m.apply_id = 42;
  m.position = Position::FromInt(8);
  b.changes.push_back(m);
  b.end = Position::FromInt(8);
  auto id = (*store)->AppendJournal("a", b);
  ASSERT_OK(id);
  EXPECT_GT(*id, 0);
  auto p = (*store)->Progress("a");
  ASSERT_OK(p);
  EXPECT_EQ(p->capture, Position::FromInt(8));
  auto heads = (*store)->JournalHeads(10);
  ASSERT_OK(heads);
  ASSERT_EQ(heads->size(), 1u);
  EXPECT_EQ((*heads)[0].first, *id);
  EXPECT_EQ((*heads)[0].second, "a");
  auto batch = (*store)->ReadJournalBatch(*id);
  ASSERT_OK(batch);
  const ChangeBatch& got = *batch;
  ASSERT_EQ(got.changes.size(), 2u);
  EXPECT_EQ(got.changes[0].after, c.after);
  EXPECT_EQ(got.changes[0].commit_ms, 12.5);
  EXPECT_EQ(got.changes[0].txn, 991);  // the unit of apply (P7) survives the journal
  EXPECT_EQ(got.changes[1].op, Op::kMarker);
  EXPECT_EQ(got.changes[1].apply_id, 42);
  EXPECT_EQ(*(*store)->JournalBacklog(), 2);
  ASSERT_OK((*store)->DeleteJournal(*id));
  EXPECT_EQ(*(*store)->JournalBacklog(), 0);
}

TEST(StateStoreTest, LedgerForgetsOnlyTheWritesThatFoundNothingToDo) {
  TempDir dir;
  auto store = StateStore::Open(dir.File("s.db"), true);
  ASSERT_OK(store);
  const Row key = {{"id", 5}};
  RowOp update{WriteOp::kUpdate, "t", key, {{"v", "old"}}, {}, {}};
  RowOp del{WriteOp::kDelete, "t", key, {}, {}, {}};
  RowOp insert{WriteOp::kInsert, "t", key, {{"id", 5}, {"v", "new"}}, {}, {}};
  ASSERT_OK((*store)->RecordLedger("b", 10, {update}, {"[5]"}));
  // One apply deletes the row and makes it again: the insert's row entry replaces the delete's.
  ASSERT_OK((*store)->RecordLedger("b", 11, {del, insert}, {"[5]", "[5]"}));
  auto entries = (*store)->LedgerOf("b", "t", "[5]");
  ASSERT_OK(entries);
  ASSERT_EQ((*entries)[""].size(), 1u);
  EXPECT_EQ((*entries)[""][0].value, Value(true));
  ASSERT_EQ((*entries)["v"].size(), 2u);
  EXPECT_FALSE((*entries).count("id"));  // the key shows anyway

  // The delete found no row: its entry, overwritten by the insert's, is not there to forget.
  ASSERT_OK((*store)->ForgetLedger("b", 11, del, "[5]"));
  EXPECT_EQ((*(*store)->LedgerOf("b", "t", "[5]")).at("").size(), 1u);
  // The update of apply 10 found no row: its entry goes, the insert's of the field stays.
  ASSERT_OK((*store)->ForgetLedger("b", 10, update, "[5]"));
  entries = (*store)->LedgerOf("b", "t", "[5]");
  ASSERT_OK(entries);
  ASSERT_EQ((*entries)["v"].size(), 1u);
  EXPECT_EQ((*entries)["v"][0].apply_id, 11);
  // Capture showing apply 11's write consumes the field's entries up to it.
  ASSERT_OK((*store)->DropLedger("b", "t", "[5]", {{"v", 11}, {"", 11}}));
  EXPECT_TRUE((*(*store)->LedgerOf("b", "t", "[5]")).empty());
  EXPECT_FALSE(*(*store)->AnyLedger("b"));
}

TEST(StateStoreTest, OutboxReadsWholeBatchesUpToTheRowLimit) {
  TempDir dir;
  auto store = StateStore::Open(dir.File("s.db"), true);
  ASSERT_OK(store);
  auto first = (*store)->AllocateApplyIds(3);
  ASSERT_OK(first);
  for (int i = 0; i < 3; ++i) {
    ApplyBatch b{*first + i, {}};
    for (int r = 0; r < 4; ++r) {
      b.ops.push_back(RowOp{WriteOp::kUpdate, "t", {{"id", r}}, {{"v", i}}, {{"v", nullptr}}, {}});
    }
    ASSERT_OK((*store)->AddOutbox("b", b));
  }
  auto batches = (*store)->ReadOutbox("b", 9);
  ASSERT_OK(batches);
  EXPECT_EQ(batches->size(), 2u);  // 8 rows; a third batch would exceed 9
  EXPECT_EQ((*batches)[1].ops[3].values["v"], 1);
  auto one = (*store)->ReadOutbox("b", 1);
  ASSERT_OK(one);
  EXPECT_EQ(one->size(), 1u);  // always at least one batch
  ASSERT_OK((*store)->DeleteOutbox("b", (*batches)[1].id));
  EXPECT_EQ(*(*store)->OutboxRows("b"), 4);
  auto next = (*store)->AllocateApplyIds(1);
  ASSERT_OK(next);
  EXPECT_EQ(*next, *first + 3);
}

TEST(StateStoreTest, OutboxKeepsEachWritesSourceTransaction) {
  TempDir dir;
  auto store = StateStore::Open(dir.File("s.db"), true);
  ASSERT_OK(store);
  RowOp a{WriteOp::kInsert, "t", {{"id", 1}}, {{"v", 1}}, {}, Position::FromInt(3)};
  a.txn = 77;
  RowOp b{WriteOp::kInsert, "t", {{"id", 2}}, {{"v", 2}}, {}, Position::FromInt(3)};
  ASSERT_OK((*store)->AddOutbox("b", ApplyBatch{5, {a, b}}));
  auto read = (*store)->ReadOutbox("b", 100);
  ASSERT_OK(read);
  ASSERT_EQ(read->size(), 1u);
  EXPECT_EQ((*read)[0].ops[0].txn, 77);
  EXPECT_EQ((*read)[0].ops[1].txn, 0);
}

TEST(StateStoreTest, RecordsSurviveReopen) {
  TempDir dir;
  {
    auto store = StateStore::Open(dir.File("s.db"), true);
    ASSERT_OK(store);
    RecordState s;
    s.exists = true;
    s.values = {{"id", 1}, {"v", 2}};
    ASSERT_OK((*store)->SaveRecord("t", "[1]", s));
  }
  auto store = StateStore::Open(dir.File("s.db"), false);
  ASSERT_OK(store);
  std::map<std::string, RecordState> out;
  ASSERT_OK((*store)->LoadRecords("t", {"[1]", "[2]"}, out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out["[1]"].values["v"], 2);
  EXPECT_EQ(*(*store)->CountRecords("t", true), 1);
}

TEST(StateStoreTest, MissingStateFileIsNotFoundWithoutCreate) {
  TempDir dir;
  auto store = StateStore::Open(dir.File("nope.db"), false);
  EXPECT_TRUE(store.status().IsNotFound()) << store.status().ToString();
}

TEST(StateStoreTest, ManualConflictLifecycle) {
  TempDir dir;
  auto store = StateStore::Open(dir.File("s.db"), true);
  ASSERT_OK(store);
  ConflictRecord c;
  c.collection = "customer";
  c.key = {{"id", 3}};
  c.key_text = "[3]";
  c.field = "notes";
  c.policy = "manual";
  c.base = "";
  c.values = {{"crm", {{"value", "x"}, {"ts", 1.0}}}, {"billing", {{"value", "y"}, {"ts", 2.0}}}};
  c.open = true;
  auto id = (*store)->AddConflict(c, 10);
  ASSERT_OK(id);
  ASSERT_OK((*store)->UpdateOpenConflict({"customer", "[3]", "notes", "billing", "z", 3.0}));
  auto row = (*store)->GetConflict(*id);
  ASSERT_OK(row);
  EXPECT_EQ(row->status, "open");
  EXPECT_EQ(row->values["billing"]["value"], "z");
  EXPECT_EQ((*store)->ListConflicts(false)->size(), 1u);
  ASSERT_OK((*store)->ResolveConflict(*id, "resolved:take:billing", "z", 20));
  EXPECT_FALSE((*store)->ResolveConflict(*id, "resolved:value", "q", 21).ok());
  auto pending = (*store)->PendingResolutions();
  ASSERT_OK(pending);
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0].resolution, "z");
  ASSERT_OK((*store)->MarkPropagated(*id));
  EXPECT_TRUE((*store)->PendingResolutions()->empty());
  EXPECT_TRUE((*store)->ListConflicts(false)->empty());
  EXPECT_EQ((*store)->ListConflicts(true)->size(), 1u);
  nlohmann::json j = (*store)->GetConflict(*id)->ToJson();
  for (const char* k : {"id", "collection", "key", "field", "policy", "base", "values", "status"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
}

TEST(StateStoreTest, DeadLettersAreListedRetriedAndDeleted) {
  TempDir dir;
  auto store = StateStore::Open(dir.File("s.db"), true);
  ASSERT_OK(store);
  RowOp op{WriteOp::kInsert,      "t",           {{"id", 1}},
           {{"id", 1}, {"v", 5}}, Row::object(), Position::FromInt(3)};
  op.source = "a";
  op.source_commit_ms = 1000.5;
  ASSERT_OK((*store)->AddDeadLetter("b", ApplyBatch{9, {op}}, "CHECK constraint failed", 42));
  auto all = (*store)->ListDeadLetters(false);
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 1u);
  const DeadLetterRow& d = all->front();
  EXPECT_EQ(d.endpoint, "b");
  EXPECT_EQ(d.batch.id, 9);
  ASSERT_EQ(d.batch.ops.size(), 1u);
  EXPECT_EQ(d.batch.ops[0].values, op.values);
  EXPECT_EQ(d.batch.ops[0].seen, Position::FromInt(3));
  EXPECT_EQ(d.batch.ops[0].source, "a");
  EXPECT_EQ(d.batch.ops[0].source_commit_ms, 1000.5);
  EXPECT_EQ(d.reason, "CHECK constraint failed");
  EXPECT_FALSE(d.retry_requested);
  EXPECT_EQ(d.ToJson()["ops"][0]["op"], "insert");
  EXPECT_EQ((*store)->ListDeadLetters(true)->size(), 0u);

  EXPECT_TRUE((*store)->RequestRetry(d.id + 1).IsNotFound());
  EXPECT_TRUE((*store)->GetDeadLetter(d.id + 1).status().IsNotFound());
  ASSERT_OK((*store)->RequestRetry(d.id));
  auto asked = (*store)->ListDeadLetters(true);
  ASSERT_OK(asked);
  ASSERT_EQ(asked->size(), 1u);
  EXPECT_TRUE(asked->front().retry_requested);
  ASSERT_OK((*store)->DeleteDeadLetter(d.id));
  EXPECT_EQ((*store)->ListDeadLetters(false)->size(), 0u);
  EXPECT_EQ(*(*store)->CountDeadLetters("b"), 0);
}

// One dead letter per parked source transaction: its writes may span collections and keys.
TEST(StateStoreTest, DeadLetterJsonSummarisesCollectionsAndKeysOfItsWrites) {
  TempDir dir;
  auto store = StateStore::Open(dir.File("s.db"), true);
  ASSERT_OK(store);
  RowOp order{WriteOp::kInsert, "order",
              {{"id", 5}},      {{"id", 5}, {"customer", 1}},
              Row::object(),    Position::FromInt(0)};
  RowOp customer{WriteOp::kUpdate,   "customer",    {{"id", 1}},
                 {{"tier", "gold"}}, Row::object(), Position::FromInt(0)};
  RowOp line{WriteOp::kDelete, "order",       {{"id", 6}},
             Row::object(),    Row::object(), Position::FromInt(0)};
  ASSERT_OK((*store)->AddDeadLetter("b", ApplyBatch{4, {order, customer, line}}, "FK", 42));
  ASSERT_OK((*store)->AddDeadLetter("b", ApplyBatch{5, {}}, "whole batch", 43));
  auto all = (*store)->ListDeadLetters(false);
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 2u);
  nlohmann::json j = all->front().ToJson();
  EXPECT_EQ(j["id"], all->front().id);
  EXPECT_EQ(j["endpoint"], "b");
  EXPECT_EQ(j["collection"], "order");
  EXPECT_EQ(j["collections"], nlohmann::json({"order", "customer"}));
  EXPECT_EQ(j["keys"], nlohmann::json::parse(R"([{"id": 5}, {"id": 1}, {"id": 6}])"));
  EXPECT_EQ(j["reason"], "FK");
  EXPECT_EQ(j["created_at"], 42.0);
  EXPECT_EQ(j["ops"].size(), 3u);
  EXPECT_EQ(j["ops"][2]["op"], "delete");
  nlohmann::json empty = all->back().ToJson();
  EXPECT_EQ(empty["collection"], "");
  EXPECT_EQ(empty["collections"], nlohmann::json::array());
  EXPECT_EQ(empty["keys"], nlohmann::json::array());
}

TEST(StateStoreTest, RetryAllAsksForEveryDeadLetter) {
  TempDir dir;
  auto store = StateStore::Open(dir.File("s.db"), true);
  ASSERT_OK(store);
  EXPECT_EQ(*(*store)->RequestRetryAll(), 0);
  for (int i = 1; i <= 3; ++i) {
    ASSERT_OK((*store)->AddDeadLetter(i == 3 ? "c" : "b", ApplyBatch{i, {}}, "x", i));
  }
  ASSERT_OK((*store)->RequestRetry((*store)->ListDeadLetters(false)->front().id));
  auto n = (*store)->RequestRetryAll();
  ASSERT_OK(n);
  EXPECT_EQ(*n, 3);
  EXPECT_EQ((*store)->ListDeadLetters(true)->size(), 3u);
}

TEST(StateStoreTest, SchemaVersion2FileIsUpgradedInPlace) {
  TempDir dir;
  {
    auto store = StateStore::Open(dir.File("s.db"), true);
    ASSERT_OK(store);
    ASSERT_OK((*store)->AddDeadLetter("b", ApplyBatch{1, {}}, "x", 1));
    ASSERT_OK((*store)->AppendJournal("b", ChangeBatch{{}, Position::FromInt(7)}));
    // What version 2 wrote: no retry column (nor version 4's waits_for, nor version 5's
    // index of references, nor version 6's columns of progress).
    ASSERT_OK((*store)->db().Exec(
        "ALTER TABLE dead_letters DROP COLUMN retry; "
        "ALTER TABLE dead_letters DROP COLUMN waits_for; DROP TABLE refs; "
        "ALTER TABLE progress DROP COLUMN acked; ALTER TABLE progress DROP COLUMN captured_ms; "
        "ALTER TABLE progress DROP COLUMN guard_pos; ALTER TABLE progress DROP COLUMN guard_ms; "
        "ALTER TABLE progress DROP COLUMN rescan; "
        "UPDATE meta SET v = 2 WHERE k = 'schema_version'"));
  }
  auto store = StateStore::Open(dir.File("s.db"), false);
  ASSERT_OK(store);
  auto progress = (*store)->Progress("b");
  ASSERT_OK(progress);
  EXPECT_EQ(progress->capture, Position::FromInt(7));
  EXPECT_TRUE(progress->acked.IsStart());
  EXPECT_FALSE(progress->rescan);
  auto all = (*store)->ListDeadLetters(false);
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 1u);
  ASSERT_OK((*store)->RequestRetry(all->front().id));
  EXPECT_EQ((*store)->ListDeadLetters(true)->size(), 1u);
  ASSERT_OK((*store)->AddRef("p\n[1]", "c\n[2]"));
  EXPECT_EQ(*(*store)->ChildrenOf("p\n[1]"), std::vector<std::string>{"c\n[2]"});
}

// The index of references: rebuilt from the live records when the references change (its
// signature), kept as it is otherwise.
TEST(StateStoreTest, ReferenceIndexIsRebuiltWhenTheReferencesChange) {
  TempDir dir;
  auto store = StateStore::Open(dir.File("s.db"), true);
  ASSERT_OK(store);
  RecordState live;
  live.exists = true;
  live.values = {{"id", 7}, {"parent_id", 1}};
  RecordState gone = live;
  gone.exists = false;
  ASSERT_OK((*store)->SaveRecord("child", "[7]", live));
  ASSERT_OK((*store)->SaveRecord("child", "[8]", gone));
  auto parents = [](const std::string&, const RecordState& s) {
    return std::vector<std::string>{"parent\n[" + s.values["parent_id"].dump() + "]"};
  };
  ASSERT_OK((*store)->RebuildRefs("child(parent_id,)->parent;", {"child"}, parents));
  EXPECT_EQ(*(*store)->ChildrenOf("parent\n[1]"), std::vector<std::string>{"child\n[7]"});
  // The same references: left as they are (here, as edited since).
  ASSERT_OK((*store)->RemoveRef("parent\n[1]", "child\n[7]"));
  ASSERT_OK((*store)->RebuildRefs("child(parent_id,)->parent;", {"child"}, parents));
  EXPECT_TRUE((*store)->ChildrenOf("parent\n[1]")->empty());
  ASSERT_OK((*store)->RebuildRefs("", {}, parents));
  ASSERT_OK((*store)->RebuildRefs("child(parent_id,)->parent;", {"child"}, parents));
  EXPECT_EQ((*store)->ChildrenOf("parent\n[1]")->size(), 1u);
}

// Writes taken back before they land (a delete against a new reference): an outbox batch is
// rewritten, or removed once empty; a dead letter keeps what is left of it.
TEST(StateStoreTest, OutboxBatchesAndDeadLettersAreRewritten) {
  TempDir dir;
  auto store = StateStore::Open(dir.File("s.db"), true);
  ASSERT_OK(store);
  RowOp a{WriteOp::kInsert, "t", {{"id", 1}}, {{"id", 1}}, {}, Position::FromInt(0)};
  RowOp b{WriteOp::kInsert, "t", {{"id", 2}}, {{"id", 2}}, {}, Position::FromInt(0)};
  ASSERT_OK((*store)->AddOutbox("e", ApplyBatch{5, {a, b}}));
  auto batch = (*store)->ReadOutboxBatch("e", 5);
  ASSERT_OK(batch);
  ASSERT_TRUE(batch->has_value());
  EXPECT_EQ((*batch)->ops.size(), 2u);
  EXPECT_FALSE((*(*store)->ReadOutboxBatch("e", 6)).has_value());
  EXPECT_FALSE((*(*store)->ReadOutboxBatch("other", 5)).has_value());
  ASSERT_OK((*store)->ReplaceOutbox("e", ApplyBatch{5, {b}}));
  EXPECT_EQ(*(*store)->OutboxRows("e"), 1);
  ASSERT_OK((*store)->ReplaceOutbox("e", ApplyBatch{5, {}}));
  EXPECT_EQ(*(*store)->OutboxRows("e"), 0);
  auto id = (*store)->AddDeadLetter("e", ApplyBatch{3, {a, b}}, "refused", 1);
  ASSERT_OK(id);
  ASSERT_OK((*store)->ReplaceDeadLetterOps(*id, ApplyBatch{3, {a}}));
  auto d = (*store)->GetDeadLetter(*id);
  ASSERT_OK(d);
  ASSERT_EQ(d->batch.ops.size(), 1u);
  EXPECT_EQ(d->batch.ops[0].key, a.key);
  EXPECT_EQ(d->reason, "refused");
}

TEST(StateStoreTest, RetryOfADeadLetterRetriesTheOnesWaitingForIt) {
  TempDir dir;
  auto store = StateStore::Open(dir.File("s.db"), true);
  ASSERT_OK(store);
  auto first = (*store)->AddDeadLetter("b", ApplyBatch{1, {}}, "CHECK failed", 1);
  ASSERT_OK(first);
  auto second = (*store)->AddDeadLetter("b", ApplyBatch{2, {}}, "waits", 2, *first);
  ASSERT_OK(second);
  auto third = (*store)->AddDeadLetter("b", ApplyBatch{3, {}}, "waits", 3, *second);
  ASSERT_OK(third);
  auto other = (*store)->AddDeadLetter("b", ApplyBatch{4, {}}, "unrelated", 4);
  ASSERT_OK(other);
  EXPECT_EQ((*store)->GetDeadLetter(*third)->waits_for, *second);
  ASSERT_OK((*store)->RequestRetry(*first));
  auto asked = (*store)->ListDeadLetters(true);
  ASSERT_OK(asked);
  ASSERT_EQ(asked->size(), 3u);
  EXPECT_EQ((*asked)[0].id, *first);
  EXPECT_EQ((*asked)[2].id, *third);
  auto version = (*store)->DeadLetterVersion("b");
  ASSERT_OK(version);
  EXPECT_EQ(*version, (std::pair<int64_t, int64_t>{4, *other}));
}

// An endpoint that went back in time: its positions start again, what was captured becomes
// the guard, its planned batches go, and the keys a rescan read are told from those it did not.
TEST(StateStoreTest, RestoredEndpointIsResetAndItsRescanFindsTheRecordsItLacks) {
  TempDir dir;
  auto store = StateStore::Open(dir.File("s.db"), true);
  ASSERT_OK(store);
  StateStore& s = **store;
  Change c;
  c.collection = "item";
  c.commit_ms = 1000;
  c.position = Position::FromInt(40);
  ASSERT_OK(s.AppendJournal("b", ChangeBatch{{c}, Position::FromInt(40)}));
  ASSERT_OK(s.SetResolved("b", 9, Position::FromInt(40)));
  ASSERT_OK(s.SetAcked("b", Position::FromInt(40)));
  ASSERT_OK(s.AddOutbox("b", ApplyBatch{12, {RowOp{}}}));
  ASSERT_OK(s.AddOutbox("a", ApplyBatch{13, {RowOp{}}}));

  ASSERT_OK(s.ResetRestored("b", Position::FromInt(25), 4));
  auto p = s.Progress("b");
  ASSERT_OK(p);
  EXPECT_EQ(p->capture, Position::FromInt(25));
  EXPECT_EQ(p->resolved, Position::FromInt(25));
  EXPECT_EQ(p->acked, Position::FromInt(25));
  EXPECT_EQ(p->watermark, 4);
  EXPECT_EQ(p->guard_pos, Position::FromInt(40));
  EXPECT_EQ(p->guard_ms, 1000);
  EXPECT_TRUE(p->rescan);
  EXPECT_EQ(*s.OutboxRows("b"), 0);
  EXPECT_EQ(*s.OutboxRows("a"), 1);
  ASSERT_OK(s.SetRescanned("b"));
  EXPECT_FALSE(s.Progress("b")->rescan);

  RecordState live;
  live.exists = true;
  for (const char* key : {"[1]", "[2]", "[3]"}) ASSERT_OK(s.SaveRecord("item", key, live));
  ASSERT_OK(s.SaveRecord("other", "[9]", live));
  ASSERT_OK(s.ClearScanned());
  ASSERT_OK(s.AddScanned("item", {"[2]"}));
  EXPECT_EQ(*s.Unscanned("item", "", 10), (std::vector<std::string>{"[1]", "[3]"}));
  EXPECT_EQ(*s.Unscanned("item", "[1]", 10), std::vector<std::string>{"[3]"});
  ASSERT_OK(s.ClearScanned());
  EXPECT_EQ(s.Unscanned("item", "", 10)->size(), 3u);
}

// The journal behind its own interface (DESIGN §2): entries in append order, each read back
// whole, deleted once resolved; a batch without changes only moves the capture position.
TEST(StateStoreTest, JournalInterfaceKeepsEntriesInAppendOrder) {
  TempDir dir;
  auto store = StateStore::Open(dir.File("s.db"), true);
  ASSERT_OK(store);
  Journal& journal = (*store)->journal();
  Change c;
  c.op = Op::kInsert;
  c.collection = "t";
  c.key = {{"id", 1}};
  c.after = {{"id", 1}};
  auto first = journal.Append("b", ChangeBatch{{c, c}, Position::FromInt(3)});
  ASSERT_OK(first);
  auto second = journal.Append("a", ChangeBatch{{c}, Position::FromInt(9)});
  ASSERT_OK(second);
  EXPECT_GT(*second, *first);
  auto heads = journal.Heads(1);
  ASSERT_OK(heads);
  EXPECT_EQ(*heads, (std::vector<std::pair<int64_t, std::string>>{{*first, "b"}}));
  EXPECT_EQ(*journal.Backlog(), 3);
  EXPECT_EQ(journal.Read(*second)->end, Position::FromInt(9));
  ASSERT_OK(journal.Delete(*first));
  ASSERT_OK(journal.Delete(*first));  // already gone: nothing changes
  EXPECT_EQ(journal.Read(*first).status().code(), Status::Code::kNotFound);
  EXPECT_EQ(*journal.Backlog(), 1);
  // The journal alone does not move positions; AppendJournal moves them with the entry.
  EXPECT_FALSE((*store)->Progress("a")->exists);
  auto none = (*store)->AppendJournal("a", ChangeBatch{{}, Position::FromInt(11)});
  ASSERT_OK(none);
  EXPECT_EQ(*none, 0);
  EXPECT_EQ((*store)->Progress("a")->capture, Position::FromInt(11));
  EXPECT_EQ(*journal.Backlog(), 1);
}

// The state store behind its own interface: what a transaction wrote is gone unless it
// committed (DESIGN §6, each arrow one transaction).
TEST(StateStoreTest, StoreTransactionRollsBackUnlessCommitted) {
  TempDir dir;
  auto opened = StateStore::Open(dir.File("s.db"), true);
  ASSERT_OK(opened);
  Store& store = **opened;
  {
    auto txn = store.Transaction();
    ASSERT_OK(txn);
    ASSERT_OK(store.AddOutbox("e", ApplyBatch{5, {RowOp{}}}));
    ASSERT_OK(store.SetCaptured("e", Position::FromInt(7), 100));
  }
  EXPECT_EQ(*store.OutboxRows("e"), 0);
  EXPECT_FALSE(store.Progress("e")->exists);
  {
    auto txn = store.Transaction();
    ASSERT_OK(txn);
    ASSERT_OK(store.AddOutbox("e", ApplyBatch{5, {RowOp{}}}));
    ASSERT_OK(store.SetCaptured("e", Position::FromInt(7), 100));
    ASSERT_OK((*txn)->Commit());
  }
  EXPECT_EQ(*store.OutboxRows("e"), 1);
  EXPECT_EQ(store.Progress("e")->capture, Position::FromInt(7));
  EXPECT_EQ(store.Progress("e")->captured_ms, 100);
}

TEST(StateStoreTest, CodecRoundTripsApplyBatchesAndRefusesOtherBytes) {
  RowOp op{WriteOp::kUpdate, "t", {{"id", 1}}, {{"v", "x"}}, {{"v", "w"}}, Position::FromInt(17)};
  op.txn = 4;
  op.source = "a";
  op.source_commit_ms = 2.5;
  auto got = DecodeApplyBatch(EncodeApplyBatch(ApplyBatch{9, {op, RowOp{}}}));
  ASSERT_OK(got);
  EXPECT_EQ(got->id, 9);
  ASSERT_EQ(got->ops.size(), 2u);
  EXPECT_EQ(got->ops[0].op, WriteOp::kUpdate);
  EXPECT_EQ(got->ops[0].values, op.values);
  EXPECT_EQ(got->ops[0].expected, op.expected);
  EXPECT_EQ(got->ops[0].seen, Position::FromInt(17));
  EXPECT_EQ(got->ops[0].txn, 4);
  EXPECT_EQ(got->ops[0].source, "a");
  EXPECT_EQ(got->ops[0].source_commit_ms, 2.5);
  EXPECT_EQ(got->ops[1].source_commit_ms, 0);
  EXPECT_EQ(DecodeApplyBatch("not msgpack").status().code(), Status::Code::kCorruption);
  EXPECT_EQ(DecodeChangeBatch("\x01").status().code(), Status::Code::kCorruption);
}

TEST(StateStoreTest, StateFileOfAnUnknownVersionIsRefused) {
  TempDir dir;
  {
    auto store = StateStore::Open(dir.File("s.db"), true);
    ASSERT_OK(store);
    ASSERT_OK((*store)->db().Exec("UPDATE meta SET v = 99 WHERE k = 'schema_version'"));
  }
  auto store = StateStore::Open(dir.File("s.db"), false);
  EXPECT_EQ(store.status().code(), Status::Code::kCorruption);
}
}  // namespace
}  // namespace duplex
