#include "core/decimal.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>

namespace duplex {

namespace {

// Compares two magnitudes of equal scale (digit strings without leading zeros).
int CompareMagnitude(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  return a.compare(b) < 0 ? -1 : a.compare(b) > 0 ? 1 : 0;
}

std::string AddMagnitude(const std::string& a, const std::string& b) {
  std::string out;
  int carry = 0;
  for (size_t i = 0; i < std::max(a.size(), b.size()) || carry; ++i) {
    int d = carry;
    if (i < a.size()) d += a[a.size() - 1 - i] - '0';
    if (i < b.size()) d += b[b.size() - 1 - i] - '0';
    out.push_back(static_cast<char>('0' + d % 10));
    carry = d / 10;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

// a - b for a >= b.
std::string SubMagnitude(const std::string& a, const std::string& b) {
  std::string out;
  int borrow = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    int d = a[a.size() - 1 - i] - '0' - borrow;
    if (i < b.size()) d -= b[b.size() - 1 - i] - '0';
    borrow = d < 0 ? 1 : 0;
    out.push_back(static_cast<char>('0' + (d + 10) % 10));
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace

std::optional<Decimal> Decimal::Parse(std::string_view text) {
  Decimal d;
  d.form_ = Form::kText;
  size_t i = 0;
  if (i < text.size() && (text[i] == '-' || text[i] == '+')) d.negative_ = text[i++] == '-';
  bool any_digit = false;
  bool point = false;
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (c >= '0' && c <= '9') {
      d.digits_.push_back(c);
      if (point) ++d.scale_;
      any_digit = true;
    } else if (c == '.' && !point) {
      point = true;
    } else {
      break;
    }
  }
  if (!any_digit) return std::nullopt;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    bool exp_negative = false;
    if (i < text.size() && (text[i] == '-' || text[i] == '+')) exp_negative = text[i++] == '-';
    int exp = 0;
    size_t start = i;
    for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
      if (exp > 100000) return std::nullopt;  // Not a value any database holds.
      exp = exp * 10 + (text[i] - '0');
    }
    if (i == start) return std::nullopt;
    d.scale_ += exp_negative ? exp : -exp;
  }
  if (i != text.size()) return std::nullopt;
  if (d.scale_ < 0) {
    d.digits_.append(static_cast<size_t>(-d.scale_), '0');
    d.scale_ = 0;
  }
  d.Normalize();
  return d;
}

std::optional<Decimal> Decimal::FromValue(const Value& v) {
  if (v.is_number_integer()) {
    std::optional<Decimal> d = Parse(v.dump());
    if (d) d->form_ = Form::kInteger;
    return d;
  }
  if (v.is_number_float()) {
    double x = v.get<double>();
    if (!std::isfinite(x)) return std::nullopt;
    // The shortest text that reads back as the same double: what the user wrote (0.1 is
    // "0.1", not 0.1000000000000000055511151231257827).
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);
    if (ec != std::errc()) return std::nullopt;
    std::optional<Decimal> d = Parse(std::string_view(buf, static_cast<size_t>(end - buf)));
    if (d) d->form_ = Form::kFloat;
    return d;
  }
  if (v.is_string()) return Parse(v.get<std::string>());
  return std::nullopt;
}

void Decimal::Normalize() {
  size_t nz = digits_.find_first_not_of('0');
  digits_.erase(0, nz == std::string::npos ? digits_.size() : nz);
  if (digits_.empty()) negative_ = false;
}

Decimal Decimal::Rescaled(int scale) const {
  Decimal d = *this;
  if (scale > d.scale_ && !d.digits_.empty()) {
    d.digits_.append(static_cast<size_t>(scale - d.scale_), '0');
  }
  d.scale_ = std::max(scale, d.scale_);
  return d;
}

Decimal Decimal::operator+(const Decimal& o) const {
  const int scale = std::max(scale_, o.scale_);
  Decimal a = Rescaled(scale);
  Decimal b = o.Rescaled(scale);
  Decimal r;
  r.scale_ = scale;
  r.form_ = std::max(form_, o.form_);
  if (a.negative_ == b.negative_) {
    r.digits_ = AddMagnitude(a.digits_, b.digits_);
    r.negative_ = a.negative_;
  } else if (CompareMagnitude(a.digits_, b.digits_) >= 0) {
    r.digits_ = SubMagnitude(a.digits_, b.digits_);
    r.negative_ = a.negative_;
  } else {
    r.digits_ = SubMagnitude(b.digits_, a.digits_);
    r.negative_ = b.negative_;
  }
  r.Normalize();
  return r;
}

Decimal Decimal::operator-(const Decimal& o) const {
  Decimal neg = o;
  neg.negative_ = !o.negative_ && !o.digits_.empty();
  return *this + neg;
}

std::string Decimal::ToString(int min_scale) const {
  const int scale = std::max(scale_, min_scale);
  std::string digits = Rescaled(scale).digits_;
  if (digits.size() <= static_cast<size_t>(scale)) {
    digits.insert(0, static_cast<size_t>(scale) + 1 - digits.size(), '0');
  }
  std::string out = negative_ ? "-" : "";
  out += digits.substr(0, digits.size() - static_cast<size_t>(scale));
  if (scale > 0) out += "." + digits.substr(digits.size() - static_cast<size_t>(scale));
  return out;
}

std::optional<Value> Decimal::ToValue(Form form, int min_scale) const {
  switch (form) {
    case Form::kInteger: {
      std::string text = ToString();
      if (text.find('.') != std::string::npos) {
        // Only a fraction of zeros ("5.00") is an integer.
        if (text.find_first_not_of('0', text.find('.') + 1) != std::string::npos) {
          return std::nullopt;
        }
        text.erase(text.find('.'));
      }
      int64_t n = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
      return Value(n);
    }
    case Form::kFloat: {
      std::string text = ToString();
      double x = std::strtod(text.c_str(), nullptr);
      if (!std::isfinite(x)) return std::nullopt;
      return Value(x);
    }
    case Form::kText:
      return Value(ToString(min_scale));
  }
  return std::nullopt;
}

std::optional<Value> AddDelta(const Value& current, const Value& base, const Value& incoming) {
  std::optional<Decimal> c = Decimal::FromValue(current);
  std::optional<Decimal> b = Decimal::FromValue(base);
  std::optional<Decimal> i = Decimal::FromValue(incoming);
  if (!c || !b || !i) return std::nullopt;
  Decimal r = *c + (*i - *b);
  // Text keeps the scale its operands were written with: 10.50 + (3.25 - 3.00) is "10.75",
  // and "10.50" + ("3" - "3") stays "10.50", as a numeric(12,2) column would print it.
  const int scale = std::max({c->scale(), b->scale(), i->scale()});
  return r.ToValue(r.form(), r.form() == Decimal::Form::kText ? scale : 0);
}

}  // namespace duplex
