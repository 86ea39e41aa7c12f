// PostgreSQL text form <-> duplex Value (src/connectors/postgres/pg_types.h), per type family,
// and pg_lsn text <-> number. No server needed.

#include "connectors/postgres/pg_types.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "util/json_value.h"

namespace duplex::pg {
namespace {

constexpr Oid kTextOid = 25;
constexpr Oid kDateOid = 1082;

TEST(PgTypesTest, BooleansFromTAndF) {
  EXPECT_EQ(FromText(kBoolOid, "t"), Value(true));
  EXPECT_EQ(FromText(kBoolOid, "true"), Value(true));
  EXPECT_EQ(FromText(kBoolOid, "f"), Value(false));
  EXPECT_EQ(ToText(Value(true)), "true");
  EXPECT_EQ(ToText(Value(false)), "false");
}

TEST(PgTypesTest, IntegersOfEveryWidthAreNumbers) {
  EXPECT_EQ(FromText(kInt2Oid, "-32768"), Value(int64_t{-32768}));
  EXPECT_EQ(FromText(kInt4Oid, "42"), Value(int64_t{42}));
  EXPECT_EQ(FromText(kInt8Oid, "9223372036854775807"), Value(std::numeric_limits<int64_t>::max()));
  EXPECT_EQ(FromText(kOidOid, "16384"), Value(int64_t{16384}));
  EXPECT_TRUE(FromText(kInt8Oid, "7").is_number_integer());
}

TEST(PgTypesTest, IntegerTextThatDoesNotParseStaysText) {
  EXPECT_EQ(FromText(kInt8Oid, "99999999999999999999"), Value("99999999999999999999"));
  EXPECT_EQ(FromText(kInt4Oid, "12abc"), Value("12abc"));
  EXPECT_EQ(FromText(kInt4Oid, ""), Value(""));
}

TEST(PgTypesTest, IntegersToText) {
  EXPECT_EQ(ToText(Value(int64_t{-5})), "-5");
  EXPECT_EQ(ToText(Value(uint64_t{18446744073709551615u})), "18446744073709551615");
}

TEST(PgTypesTest, FloatsKeepEveryDigitAndTheSpecialValues) {
  EXPECT_EQ(FromText(kFloat8Oid, "0.1"), Value(0.1));
  EXPECT_EQ(FromText(kFloat4Oid, "1.5"), Value(1.5));
  EXPECT_EQ(FromText(kFloat8Oid, "NaN"), Value("NaN"));
  EXPECT_EQ(FromText(kFloat8Oid, "Infinity").get<double>(),
            std::numeric_limits<double>::infinity());
  EXPECT_EQ(FromText(kFloat8Oid, "-Infinity").get<double>(),
            -std::numeric_limits<double>::infinity());
  EXPECT_EQ(FromText(kFloat8Oid, "1.5x"), Value("1.5x"));

  EXPECT_EQ(ToText(Value(0.1)), "0.10000000000000001");
  EXPECT_EQ(ToText(Value(std::nan(""))), "NaN");
  EXPECT_EQ(ToText(Value(std::numeric_limits<double>::infinity())), "Infinity");
  EXPECT_EQ(ToText(Value(-std::numeric_limits<double>::infinity())), "-Infinity");
  // What ToText prints reads back as the same double.
  const double third = 1.0 / 3.0;
  EXPECT_EQ(FromText(kFloat8Oid, *ToText(Value(third))).get<double>(), third);
}

TEST(PgTypesTest, ByteaHexBecomesABlobAndBack) {
  const Value blob = FromText(kByteaOid, "\\x00ff41");
  ASSERT_TRUE(IsBlob(blob));
  EXPECT_EQ(blob, MakeBlob(std::string("\x00\xff\x41", 3)));
  EXPECT_EQ(ToText(blob), "\\x00FF41");  // MakeBlob keeps upper-case hex; bytea reads either
  EXPECT_EQ(FromText(kByteaOid, "\\x"), MakeBlob(""));
  // Not hex output: kept as text.
  EXPECT_EQ(FromText(kByteaOid, "abc"), Value("abc"));
  EXPECT_EQ(FromText(kByteaOid, "\\xzz"), Value("\\xzz"));
}

TEST(PgTypesTest, TimestampsInIsoForm) {
  EXPECT_EQ(FromText(kTimestamptzOid, "2026-11-26 15:14:06.123+00"),
            Value("2026-11-26T15:14:06.123Z"));
  EXPECT_EQ(FromText(kTimestamptzOid, "2026-11-26 15:14:06+05:30"),
            Value("2026-11-26T15:14:06+05:30"));
  EXPECT_EQ(FromText(kTimestamptzOid, "infinity"), Value("infinity"));
  EXPECT_EQ(FromText(kTimestampOid, "2026-11-26 15:14:06.5"), Value("2026-11-26T15:14:06.5"));
  EXPECT_EQ(FromText(kTimestampOid, "-infinity"), Value("-infinity"));
}

TEST(PgTypesTest, OtherTypesAreTheirText) {
  EXPECT_EQ(FromText(kNumericOid, "12345678901234567890.0100"), Value("12345678901234567890.0100"));
  EXPECT_EQ(FromText(kTextOid, "héllo"), Value("héllo"));
  EXPECT_EQ(FromText(kUuidOid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            Value("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
  EXPECT_EQ(FromText(kJsonbOid, "{\"a\": 1}"), Value("{\"a\": 1}"));
  EXPECT_EQ(FromText(kDateOid, "2026-11-26"), Value("2026-11-26"));
  EXPECT_EQ(FromText(0, "{1,2}"), Value("{1,2}"));
}

TEST(PgTypesTest, StringsNullAndJsonToText) {
  EXPECT_EQ(ToText(Value("x y")), "x y");
  EXPECT_FALSE(ToText(Value()).has_value());
  EXPECT_EQ(ToText(Value::object({{"a", 1}})), "{\"a\":1}");
  EXPECT_EQ(ToText(Value::array({1, 2})), "[1,2]");
}

TEST(PgTypesTest, ColumnKindByCategoryAndOid) {
  constexpr Oid kEnumOid = 16390, kRegclassOid = 2205, kIntArrayOid = 1007;
  EXPECT_EQ(ColumnKindOf('B', kBoolOid), ColumnKind::kBoolean);
  EXPECT_EQ(ColumnKindOf('N', kInt2Oid), ColumnKind::kInteger);
  EXPECT_EQ(ColumnKindOf('N', kInt8Oid), ColumnKind::kInteger);
  EXPECT_EQ(ColumnKindOf('N', kFloat4Oid), ColumnKind::kReal);
  EXPECT_EQ(ColumnKindOf('N', kNumericOid), ColumnKind::kDecimal);
  EXPECT_EQ(ColumnKindOf('N', kMoneyOid), ColumnKind::kDecimal);
  EXPECT_EQ(ColumnKindOf('N', kRegclassOid), ColumnKind::kAny);
  EXPECT_EQ(ColumnKindOf('S', kTextOid), ColumnKind::kText);
  EXPECT_EQ(ColumnKindOf('E', kEnumOid), ColumnKind::kText);  // an enum: its labels
  EXPECT_EQ(ColumnKindOf('U', kUuidOid), ColumnKind::kText);
  EXPECT_EQ(ColumnKindOf('U', kByteaOid), ColumnKind::kBinary);
  EXPECT_EQ(ColumnKindOf('U', kJsonOid), ColumnKind::kJson);
  EXPECT_EQ(ColumnKindOf('U', kJsonbOid), ColumnKind::kJson);
  EXPECT_EQ(ColumnKindOf('U', 16400), ColumnKind::kAny);  // a type from an extension
  EXPECT_EQ(ColumnKindOf('D', kDateOid), ColumnKind::kTime);
  EXPECT_EQ(ColumnKindOf('D', kTimestamptzOid), ColumnKind::kTime);
  EXPECT_EQ(ColumnKindOf('T', 1186), ColumnKind::kTime);  // interval
  EXPECT_EQ(ColumnKindOf('A', kIntArrayOid), ColumnKind::kAny);
  EXPECT_EQ(ColumnKindOf('R', 3904), ColumnKind::kAny);  // int4range
}

TEST(PgTypesTest, LsnParsesAndFormats) {
  EXPECT_EQ(ParseLsn("0/0"), 0u);
  EXPECT_EQ(ParseLsn("16/B374D848"), (uint64_t{0x16} << 32) | 0xB374D848u);
  EXPECT_EQ(ParseLsn("0/1a"), 0x1Au);
  EXPECT_EQ(FormatLsn((uint64_t{0x16} << 32) | 0xB374D848u), "16/B374D848");
  EXPECT_EQ(FormatLsn(0), "0/0");
  for (uint64_t lsn : {uint64_t{1}, uint64_t{0xFFFFFFFF}, uint64_t{1} << 32,
                       std::numeric_limits<uint64_t>::max()}) {
    EXPECT_EQ(ParseLsn(FormatLsn(lsn)), lsn) << lsn;
  }
}

TEST(PgTypesTest, MalformedLsnIsZero) {
  EXPECT_EQ(ParseLsn(""), 0u);
  EXPECT_EQ(ParseLsn("12345"), 0u);
}

}  // namespace
}  // namespace duplex::pg
