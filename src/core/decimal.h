#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "duplex/change.h"

namespace duplex {

// An exact decimal number of any size: sign, digits and scale (the digits after the point).
// The `sum` policy adds and subtracts field values with it, so money kept as PostgreSQL
// numeric (which travels as text, every digit kept) or as integers is never rounded through
// binary floating point.
class Decimal {
 public:
  // How a value was written; the result of arithmetic is written like its widest operand
  // (integer < float < text).
  enum class Form { kInteger, kFloat, kText };

  // Parses a JSON integer, a float (by its shortest round-trip decimal form) or a text holding
  // a decimal number ("-12.50", "3", "1e3"); nullopt for anything else (null, "NaN",
  // "Infinity", "12 apples", booleans).
  static std::optional<Decimal> FromValue(const Value& v);
  static std::optional<Decimal> Parse(std::string_view text);

  Decimal operator+(const Decimal& o) const;
  Decimal operator-(const Decimal& o) const;

  // Back to a value of `form`: an integer (nullopt if it has a fraction or does not fit in 64
  // bits), a float (the nearest double), or text with at least `min_scale` digits after the
  // point ("10.50" stays "10.50", as PostgreSQL's numeric addition keeps the larger scale).
  std::optional<Value> ToValue(Form form, int min_scale = 0) const;
  std::string ToString(int min_scale = 0) const;

  Form form() const { return form_; }
  int scale() const { return scale_; }

 private:
  // Magnitude as decimal digits, most significant first, no leading zeros ("" is zero).
  std::string digits_;
  int scale_ = 0;
  bool negative_ = false;
  Form form_ = Form::kInteger;

  Decimal Rescaled(int scale) const;
  void Normalize();
};

// `current + (incoming - base)` for the `sum` policy: the edit that moved a field from `base`
// to `incoming`, applied as a delta to the agreed value `current`. Exact; written in the widest
// form of the three (text keeps the largest scale). nullopt if any of them is not a number, or
// an integer result does not fit in 64 bits.
std::optional<Value> AddDelta(const Value& current, const Value& base, const Value& incoming);

}  // namespace duplex
