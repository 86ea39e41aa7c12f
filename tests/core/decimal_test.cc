#include "core/decimal.h"

#include <gtest/gtest.h>

namespace duplex {
namespace {

std::string Text(std::string_view s) {
  std::optional<Decimal> d = Decimal::Parse(s);
  return d ? d->ToString() : "(not a number)";
}

TEST(DecimalTest, ParsesDecimalTextAndNothingElse) {
  EXPECT_EQ(Text("12.50"), "12.50");
  EXPECT_EQ(Text("-0.001"), "-0.001");
  EXPECT_EQ(Text("+7"), "7");
  EXPECT_EQ(Text("007.10"), "7.10");
  EXPECT_EQ(Text("1e3"), "1000");
  EXPECT_EQ(Text("1.5E-2"), "0.015");
  EXPECT_EQ(Text(".5"), "0.5");
  EXPECT_EQ(Text("-0.00"), "0.00");
  for (const char* bad : {"", "-", ".", "NaN", "Infinity", "1.2.3", "12 apples", "1e", "0x10"}) {
    EXPECT_FALSE(Decimal::Parse(bad)) << bad;
  }
  EXPECT_FALSE(Decimal::FromValue(nullptr));
  EXPECT_FALSE(Decimal::FromValue(true));
  EXPECT_FALSE(Decimal::FromValue(Value::array({1})));
}

TEST(DecimalTest, AddDeltaIsExactForEveryForm) {
  // Integers stay integers.
  EXPECT_EQ(AddDelta(105, 100, 110), Value(115));
  EXPECT_EQ(AddDelta(-5, 0, -3), Value(-8));
  // Text (PostgreSQL numeric) keeps every digit and the largest scale.
  EXPECT_EQ(AddDelta("0.1", "0", "0.2"), Value("0.3"));
  EXPECT_EQ(AddDelta("10.50", "3", "3"), Value("10.50"));
  EXPECT_EQ(AddDelta("99999999999999999999.99", "0.00", "0.01"), Value("100000000000000000000.00"));
  EXPECT_EQ(AddDelta("1.00", "5.25", "2.25"), Value("-2.00"));
  // An integer mixed with text is text.
  EXPECT_EQ(AddDelta(10, "1.5", "2.5"), Value("11.0"));
  // Floats by their shortest decimal form: 0.1 + 0.2 is 0.3, not 0.30000000000000004.
  EXPECT_EQ(AddDelta(0.1, 0.0, 0.2), Value(0.3));
  EXPECT_EQ(AddDelta(100, 0, 0.5), Value(100.5));
}

TEST(DecimalTest, AddDeltaRefusesWhatIsNotANumberOrDoesNotFit) {
  EXPECT_FALSE(AddDelta(1, nullptr, 2));
  EXPECT_FALSE(AddDelta("abc", 1, 2));
  EXPECT_FALSE(AddDelta(1, 2, "NaN"));
  EXPECT_FALSE(AddDelta(INT64_MAX, 0, 1));  // the integer column could not hold it either
  EXPECT_EQ(AddDelta(INT64_MAX, 1, 0), Value(INT64_MAX - 1));
  EXPECT_EQ(AddDelta(INT64_MIN, 0, 0), Value(INT64_MIN));
}

}  // namespace
}  // namespace duplex
