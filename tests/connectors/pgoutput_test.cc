// The pgoutput decoder of ReplicationStream (src/connectors/postgres/pgoutput.h), fed hand-built
// CopyData messages through its test hook: what each pgoutput message (proto_version 1) decodes
// to, and that truncated or malformed input is an error, never a crash. No server needed.
// Message formats: PostgreSQL docs, "Logical Replication Message Formats".

#include "connectors/postgres/pgoutput.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "support/test_util.h"

namespace duplex::pg {
namespace {

// Big-endian message builder.
class Msg {
 public:
  explicit Msg(char tag) { s_ += tag; }
  Msg& U8(uint8_t v) {
    s_ += static_cast<char>(v);
    return *this;
  }
  Msg& U16(uint16_t v) { return Uint(v, 2); }
  Msg& U32(uint32_t v) { return Uint(v, 4); }
  Msg& U64(uint64_t v) { return Uint(v, 8); }
  Msg& Str(const std::string& v) {  // NUL-terminated
    s_ += v;
    s_ += '\0';
    return *this;
  }
  Msg& Raw(const std::string& v) {
    s_ += v;
    return *this;
  }
  // TupleData: one column per entry; "\x01n" null, "\x01u" unchanged TOAST, else text.
  Msg& Tuple(const std::vector<std::string>& cols) {
    U16(static_cast<uint16_t>(cols.size()));
    for (const std::string& c : cols) {
      if (c == kNull || c == kUnchanged) {
        U8(static_cast<uint8_t>(c[1]));
      } else {
        U8('t').U32(static_cast<uint32_t>(c.size())).Raw(c);
      }
    }
    return *this;
  }
  const std::string& str() const { return s_; }

  static inline const std::string kNull = "\x01n";
  static inline const std::string kUnchanged = "\x01u";

 private:
  Msg& Uint(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) s_ += static_cast<char>((v >> (8 * i)) & 0xff);
    return *this;
  }
  std::string s_;
};

// An XLogData CopyData message carrying `body`.
std::string XLog(const Msg& body, uint64_t wal_end = 0x100) {
  return Msg('w').U64(0x10).U64(wal_end).U64(0).Raw(body.str()).str();
}

constexpr uint32_t kRelid = 16384;

Msg Begin(uint32_t xid = 777) { return Msg('B').U64(0x2000).U64(123456789).U32(xid); }
Msg Commit(uint64_t end_lsn = 0x2010) {
  return Msg('C').U8(0).U64(0x2000).U64(end_lsn).U64(987654321);
}
// public.items (id int4, name text, body text)
Msg Items() {
  return Msg('R')
      .U32(kRelid)
      .Str("public")
      .Str("items")
      .U8('d')
      .U16(3)
      .U8(1)
      .Str("id")
      .U32(23)
      .U32(0xFFFFFFFF)
      .U8(0)
      .Str("name")
      .U32(25)
      .U32(0xFFFFFFFF)
      .U8(0)
      .Str("body")
      .U32(25)
      .U32(0xFFFFFFFF);
}

TEST(PgoutputTest, TransactionWithEveryKindOfRowChange) {
  ReplicationStream s;
  ASSERT_OK(s.TestReceive(XLog(Begin(777))));
  EXPECT_TRUE(s.in_txn());
  ASSERT_OK(s.TestReceive(XLog(Items())));
  ASSERT_OK(s.TestReceive(XLog(Msg('I').U32(kRelid).U8('N').Tuple({"1", "a", Msg::kNull}))));
  // Update of the key: the old key ('K'), then the new row.
  ASSERT_OK(s.TestReceive(XLog(Msg('U')
                                   .U32(kRelid)
                                   .U8('K')
                                   .Tuple({"1", Msg::kNull, Msg::kNull})
                                   .U8('N')
                                   .Tuple({"2", "b", "x"}))));
  // Update under REPLICA IDENTITY FULL ('O'), the TOASTed body unchanged.
  ASSERT_OK(s.TestReceive(XLog(Msg('U')
                                   .U32(kRelid)
                                   .U8('O')
                                   .Tuple({"2", "b", "x"})
                                   .U8('N')
                                   .Tuple({"2", "c", Msg::kUnchanged}))));
  // Update without an old image.
  ASSERT_OK(s.TestReceive(XLog(Msg('U').U32(kRelid).U8('N').Tuple({"2", "d", "y"}))));
  ASSERT_OK(s.TestReceive(XLog(Msg('D').U32(kRelid).U8('K').Tuple({"2", Msg::kNull, Msg::kNull}))));
  ASSERT_OK(
      s.TestReceive(XLog(Msg('M').U8(1).U64(0x2008).Str("duplex_t").U32(7).Raw("{\"a\":1}"))));
  EXPECT_TRUE(s.ready().empty());  // nothing before the commit
  ASSERT_OK(s.TestReceive(XLog(Commit(0x2010), 0x2010)));
  EXPECT_FALSE(s.in_txn());
  EXPECT_EQ(s.received_lsn(), 0x2010u);

  const Relation* rel = s.relation(kRelid);
  ASSERT_NE(rel, nullptr);
  EXPECT_EQ(rel->schema, "public");
  EXPECT_EQ(rel->table, "items");
  EXPECT_EQ(rel->columns, (std::vector<std::string>{"id", "name", "body"}));
  EXPECT_EQ(rel->types, (std::vector<Oid>{23, 25, 25}));
  EXPECT_EQ(s.relation(kRelid + 1), nullptr);

  ASSERT_EQ(s.ready().size(), 1u);
  const StreamTxn& txn = s.ready().front();
  EXPECT_EQ(txn.xid, 777u);
  EXPECT_EQ(txn.final_lsn, 0x2000u);
  EXPECT_EQ(txn.end_lsn, 0x2010u);
  EXPECT_EQ(txn.commit_us, 987654321);  // the Commit's time
  EXPECT_EQ(txn.origin, "");
  ASSERT_EQ(txn.events.size(), 6u);

  const StreamEvent& ins = txn.events[0];
  EXPECT_EQ(ins.kind, 'I');
  EXPECT_EQ(ins.relid, kRelid);
  EXPECT_TRUE(ins.old_tuple.empty());
  ASSERT_EQ(ins.new_tuple.size(), 3u);
  EXPECT_EQ(ins.new_tuple[0].kind, TupleValue::Kind::kText);
  EXPECT_EQ(ins.new_tuple[0].text, "1");
  EXPECT_EQ(ins.new_tuple[1].text, "a");
  EXPECT_EQ(ins.new_tuple[2].kind, TupleValue::Kind::kNull);

  const StreamEvent& moved = txn.events[1];
  EXPECT_EQ(moved.kind, 'U');
  EXPECT_TRUE(moved.old_is_key);
  ASSERT_EQ(moved.old_tuple.size(), 3u);
  EXPECT_EQ(moved.old_tuple[0].text, "1");
  EXPECT_EQ(moved.new_tuple[0].text, "2");

  const StreamEvent& full = txn.events[2];
  EXPECT_FALSE(full.old_is_key);
  EXPECT_EQ(full.old_tuple[2].text, "x");
  EXPECT_EQ(full.new_tuple[1].text, "c");
  EXPECT_EQ(full.new_tuple[2].kind, TupleValue::Kind::kUnchanged);

  const StreamEvent& plain = txn.events[3];
  EXPECT_TRUE(plain.old_tuple.empty());
  EXPECT_EQ(plain.new_tuple[1].text, "d");

  const StreamEvent& del = txn.events[4];
  EXPECT_EQ(del.kind, 'D');
  EXPECT_TRUE(del.old_is_key);
  EXPECT_EQ(del.old_tuple[0].text, "2");
  EXPECT_TRUE(del.new_tuple.empty());

  const StreamEvent& msg = txn.events[5];
  EXPECT_EQ(msg.kind, 'M');
  EXPECT_EQ(msg.prefix, "duplex_t");
  EXPECT_EQ(msg.content, "{\"a\":1}");
}

TEST(PgoutputTest, OriginNamesTheReplicationOriginAndItsPosition) {
  ReplicationStream s;
  ASSERT_OK(s.TestReceive(XLog(Begin(5))));
  ASSERT_OK(s.TestReceive(XLog(Msg('O').U64(42).Str("duplex_x_a"))));
  ASSERT_OK(s.TestReceive(XLog(Commit())));
  ASSERT_EQ(s.ready().size(), 1u);
  EXPECT_EQ(s.ready().front().origin, "duplex_x_a");
  EXPECT_EQ(s.ready().front().origin_lsn, 42u);
  EXPECT_TRUE(s.ready().front().events.empty());
}

TEST(PgoutputTest, TransactionsQueueInCommitOrder) {
  ReplicationStream s;
  for (uint32_t xid : {10u, 11u}) {
    ASSERT_OK(s.TestReceive(XLog(Begin(xid))));
    ASSERT_OK(s.TestReceive(XLog(Commit(0x3000 + xid))));
  }
  ASSERT_EQ(s.ready().size(), 2u);
  EXPECT_EQ(s.ready()[0].xid, 10u);
  EXPECT_EQ(s.ready()[1].end_lsn, 0x3000u + 11);
}

TEST(PgoutputTest, NonTransactionalMessagesTypesAndUnknownTagsAreSkipped) {
  ReplicationStream s;
  ASSERT_OK(s.TestReceive(XLog(Msg('M').U8(0).U64(1).Str("other").U32(2).Raw("hi"))));
  ASSERT_OK(s.TestReceive(XLog(Begin())));
  ASSERT_OK(s.TestReceive(XLog(Msg('M').U8(0).U64(1).Str("other").U32(2).Raw("hi"))));
  ASSERT_OK(s.TestReceive(XLog(Msg('Y').U32(1).Str("public").Str("t"))));
  ASSERT_OK(s.TestReceive(XLog(Msg('Z').U32(1))));
  ASSERT_OK(s.TestReceive(XLog(Commit())));
  ASSERT_EQ(s.ready().size(), 1u);
  EXPECT_TRUE(s.ready().front().events.empty());
  // CopyData other than XLogData and keepalives: ignored.
  EXPECT_OK(s.TestReceive(Msg('x').U64(1).str()));
}

// TRUNCATE (of two tables, with RESTART IDENTITY) is one event listing the tables it emptied.
TEST(PgoutputTest, TruncateListsTheTablesItEmptied) {
  ReplicationStream s;
  ASSERT_OK(s.TestReceive(XLog(Begin(9))));
  ASSERT_OK(s.TestReceive(XLog(Items())));
  ASSERT_OK(s.TestReceive(XLog(Msg('T').U32(2).U8(2).U32(kRelid).U32(kRelid + 1))));
  ASSERT_OK(s.TestReceive(XLog(Commit(0x2020))));
  ASSERT_EQ(s.ready().size(), 1u);
  const StreamTxn& t = s.ready().front();
  EXPECT_EQ(t.xid, 9u);
  ASSERT_EQ(t.events.size(), 1u);
  EXPECT_EQ(t.events[0].kind, 'T');
  EXPECT_EQ(t.events[0].relids, (std::vector<uint32_t>{kRelid, kRelid + 1}));
}

TEST(PgoutputTest, KeepaliveMovesTheReceivedPosition) {
  ReplicationStream s;
  ASSERT_OK(s.TestReceive(Msg('k').U64(0x5000).U64(0).U8(0).str()));
  EXPECT_EQ(s.received_lsn(), 0x5000u);
  // An older one does not move it back.
  ASSERT_OK(s.TestReceive(Msg('k').U64(0x4000).U64(0).U8(0).str()));
  EXPECT_EQ(s.received_lsn(), 0x5000u);
  // A reply requested without a connection: the status cannot be sent.
  Status st = s.TestReceive(Msg('k').U64(0x6000).U64(0).U8(1).str());
  EXPECT_TRUE(st.IsRetriable()) << st.ToString();
}

TEST(PgoutputTest, EveryTruncatedMessageIsAnError) {
  const std::vector<Msg> messages = {
      Begin(),
      Msg('O').U64(42).Str("duplex_x_a"),
      Items(),
      Msg('I').U32(kRelid).U8('N').Tuple({"1", "a", Msg::kNull}),
      Msg('U')
          .U32(kRelid)
          .U8('O')
          .Tuple({"1", "a", "b"})
          .U8('N')
          .Tuple({"1", Msg::kUnchanged, "c"}),
      Msg('D').U32(kRelid).U8('K').Tuple({"1", Msg::kNull, Msg::kNull}),
      Msg('M').U8(1).U64(1).Str("p").U32(3).Raw("abc"),
      Msg('T').U32(2).U8(0).U32(kRelid).U32(kRelid + 1),
      Commit(),
  };
  for (const Msg& m : messages) {
    const std::string& body = m.str();
    for (size_t n = 1; n < body.size(); ++n) {
      ReplicationStream s;
      ASSERT_OK(s.TestReceive(XLog(Begin())));
      Msg cut(body[0]);
      cut.Raw(body.substr(1, n - 1));
      Status st = s.TestReceive(XLog(cut));
      EXPECT_FALSE(st.ok()) << "'" << body[0] << "' cut to " << n << " of " << body.size();
      EXPECT_FALSE(s.running());
    }
  }
}

TEST(PgoutputTest, TruncatedXLogHeaderIsAnError) {
  const std::string full = XLog(Begin());
  for (size_t n = 1; n < 25; ++n) {
    ReplicationStream s;
    EXPECT_FALSE(s.TestReceive(full.substr(0, n)).ok()) << n;
  }
}

TEST(PgoutputTest, LengthsBeyondTheMessageAreErrors) {
  ReplicationStream s;
  ASSERT_OK(s.TestReceive(XLog(Begin())));
  // A text column claiming 4 GiB.
  EXPECT_FALSE(
      s.TestReceive(XLog(Msg('I').U32(kRelid).U8('N').U16(1).U8('t').U32(0xFFFFFFFF).Raw("ab")))
          .ok());
  // 65535 columns announced, none sent.
  EXPECT_FALSE(s.TestReceive(XLog(Msg('I').U32(kRelid).U8('N').U16(0xFFFF))).ok());
  EXPECT_FALSE(
      s.TestReceive(XLog(Msg('R').U32(kRelid).Str("public").Str("t").U8('d').U16(0xFFFF))).ok());
  // A string without its terminating NUL.
  EXPECT_FALSE(s.TestReceive(XLog(Msg('O').U64(1).Raw("no-nul"))).ok());
  // A logical message longer than what follows.
  EXPECT_FALSE(s.TestReceive(XLog(Msg('M').U8(1).U64(1).Str("p").U32(100).Raw("short"))).ok());
}

TEST(PgoutputTest, AStreamWithoutConnectionIsUnavailable) {
  ReplicationStream s;
  EXPECT_FALSE(s.running());
  Status st = s.Pump(0);
  EXPECT_TRUE(st.IsRetriable()) << st.ToString();
}

}  // namespace
}  // namespace duplex::pg
