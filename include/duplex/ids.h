#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

// The identifiers that travel between the engine and the connectors, each with one name and
// one meaning (docs/GLOSSARY.md).

namespace duplex {

// A place in one endpoint's change stream: a SQLite changelog seq, a PostgreSQL LSN, a
// Salesforce (SystemModstamp, Id) cursor, a MariaDB GTID. Opaque to the engine: the connector
// makes it, reads it back, and chooses its bytes so that comparing them bytewise (unsigned,
// shorter first when one is a prefix of the other) is the stream's order. The engine only
// stores positions, hands them back and compares them. The empty position is the start of the
// stream, before every change.
class Position {
 public:
  Position() = default;  // the start

  // A connector's own encoding; ordered bytewise.
  static Position FromBytes(std::string bytes) {
    Position p;
    p.bytes_ = std::move(bytes);
    return p;
  }
  // For a stream whose positions are non-negative integers (a seq, an LSN): eight bytes, most
  // significant first, so that the byte order is the numbers' order. 0 is the start.
  static Position FromInt(int64_t n) {
    Position p;
    if (n <= 0) return p;
    p.bytes_.resize(8);
    for (int i = 7; i >= 0; --i, n >>= 8) p.bytes_[i] = static_cast<char>(n & 0xff);
    return p;
  }
  // The number FromInt made (0 for the start). For a position of another encoding the result
  // means nothing.
  int64_t ToInt() const {
    int64_t n = 0;
    for (char c : bytes_) n = (n << 8) | static_cast<unsigned char>(c);
    return n;
  }

  const std::string& bytes() const { return bytes_; }
  bool IsStart() const { return bytes_.empty(); }

  // std::string compares chars as unsigned char: bytewise.
  friend bool operator==(const Position&, const Position&) = default;
  friend std::strong_ordering operator<=>(const Position& a, const Position& b) {
    return a.bytes_.compare(b.bytes_) <=> 0;
  }

 private:
  std::string bytes_;
};

// A position as people read it: its number for a FromInt position, its text if it is
// printable, else its bytes in hex (x'00ff'). Connector::DescribePosition may say more.
inline std::string PositionText(const Position& p) {
  const std::string& b = p.bytes();
  if (b.size() == 8 || b.empty()) return std::to_string(p.ToInt());
  bool printable = true;
  for (char c : b) printable = printable && c >= 0x20 && c < 0x7f;
  if (printable) return b;
  static const char* kHex = "0123456789abcdef";
  std::string out = "x'";
  for (char c : b) {
    out += kHex[static_cast<unsigned char>(c) >> 4];
    out += kHex[static_cast<unsigned char>(c) & 15];
  }
  return out + "'";
}

// The id of one planned batch of writes to one endpoint (the outbox id). Ids grow, are unique
// across all endpoints, and the target records the last one it applied (Sink::AppliedId), so a
// batch is never applied twice (P6). A marker carries the id of the apply it stands for; an
// endpoint's watermark is the highest id its stream has shown a marker for. 0: none.
using ApplyId = int64_t;

// A source transaction inside one batch (Change::txn, RowOp::txn): changes and writes with the
// same id were committed together and apply together (P7).
using TxnId = int64_t;
// The source cannot tell transactions apart: the whole batch is one transaction.
constexpr TxnId kUnknownTxn = 0;
// An apply batch parked whole (FailedOp::txn), not one of its transactions.
constexpr TxnId kWholeBatch = -1;
// Ids a connector or the engine makes up when it splits changes into units of its own (one
// unit per change of a rescan, say): kFirstMadeUpTxn, kFirstMadeUpTxn - 1, ... They never
// collide with kUnknownTxn, kWholeBatch, or the source's own positive ids.
constexpr TxnId kFirstMadeUpTxn = -2;
inline TxnId MadeUpTxn(size_t i) { return kFirstMadeUpTxn - static_cast<TxnId>(i); }

// One record of one collection, as the engine names it in its indexes and caches:
// "collection\n" + the key's canonical text (KeyText: the key values in the collection's
// key-field order, as a JSON array). The one spelling; ToString and Parse are each other's
// inverse.
struct RecordKey {
  std::string collection;
  std::string key_text;

  std::string ToString() const { return collection + '\n' + key_text; }
  static RecordKey Parse(std::string_view s) {
    size_t nl = s.find('\n');
    if (nl == std::string_view::npos) return RecordKey{std::string(s), ""};
    return RecordKey{std::string(s.substr(0, nl)), std::string(s.substr(nl + 1))};
  }
  friend auto operator<=>(const RecordKey&, const RecordKey&) = default;
};

}  // namespace duplex
