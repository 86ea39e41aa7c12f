#include "connectors/postgres/pg_types.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "util/json_value.h"

namespace duplex::pg {

namespace {

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "2026-11-26 15:14:06.123+00" -> "2026-11-26T15:14:06.123Z"; other offsets keep their
// "+HH[:MM]" suffix; "infinity" stays as it is.
std::string IsoTimestamp(std::string_view text, bool with_zone) {
  std::string out(text);
  if (out.size() >= 19 && out[10] == ' ') out[10] = 'T';
  if (with_zone && out.size() > 3 && out.compare(out.size() - 3, 3, "+00") == 0) {
    out.replace(out.size() - 3, 3, "Z");
  }
  return out;
}

}  // namespace

Value FromText(Oid type, std::string_view text) {
  switch (type) {
    case kBoolOid:
      return text == "t" || text == "true";
    case kInt2Oid:
    case kInt4Oid:
    case kInt8Oid:
    case kOidOid: {
      std::string s(text);
      char* end = nullptr;
      errno = 0;
      long long v = std::strtoll(s.c_str(), &end, 10);
      if (errno != 0 || end == s.c_str() || *end != '\0') return Value(s);
      return Value(static_cast<int64_t>(v));
    }
    case kFloat4Oid:
    case kFloat8Oid: {
      if (text == "NaN") return Value("NaN");
      if (text == "Infinity") return Value(std::numeric_limits<double>::infinity());
      if (text == "-Infinity") return Value(-std::numeric_limits<double>::infinity());
      std::string s(text);
      char* end = nullptr;
      double v = std::strtod(s.c_str(), &end);
      if (end == s.c_str() || *end != '\0') return Value(s);
      return Value(v);
    }
    case kByteaOid: {
      if (text.size() < 2 || text[0] != '\\' || text[1] != 'x') return Value(std::string(text));
      std::string bytes;
      bytes.reserve((text.size() - 2) / 2);
      for (size_t i = 2; i + 1 < text.size(); i += 2) {
        int hi = Hex(text[i]), lo = Hex(text[i + 1]);
        if (hi < 0 || lo < 0) return Value(std::string(text));
        bytes += static_cast<char>(hi * 16 + lo);
      }
      return MakeBlob(bytes);
    }
    case kTimestampOid:
      return Value(IsoTimestamp(text, false));
    case kTimestamptzOid:
      return Value(IsoTimestamp(text, true));
    default:
      return Value(std::string(text));
  }
}

std::optional<std::string> ToText(const Value& v) {
  switch (v.type()) {
    case Value::value_t::null:
    case Value::value_t::discarded:
      return std::nullopt;
    case Value::value_t::boolean:
      return std::string(v.get<bool>() ? "true" : "false");
    case Value::value_t::number_integer:
      return std::to_string(v.get<int64_t>());
    case Value::value_t::number_unsigned:
      return std::to_string(v.get<uint64_t>());
    case Value::value_t::number_float: {
      double d = v.get<double>();
      if (std::isnan(d)) return std::string("NaN");
      if (std::isinf(d)) return std::string(d > 0 ? "Infinity" : "-Infinity");
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.17g", d);
      return std::string(buf);
    }
    case Value::value_t::string:
      return v.get<std::string>();
    case Value::value_t::object:
      if (IsBlob(v)) return "\\x" + v["$blob"].get<std::string>();
      return v.dump();
    default:
      return v.dump();
  }
}

uint64_t ParseLsn(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) return 0;
  std::string hi(text.substr(0, slash)), lo(text.substr(slash + 1));
  return (std::strtoull(hi.c_str(), nullptr, 16) << 32) | std::strtoull(lo.c_str(), nullptr, 16);
}

std::string FormatLsn(uint64_t lsn) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(lsn >> 32),
                static_cast<unsigned>(lsn & 0xffffffffu));
  return buf;
}

ColumnKind ColumnKindOf(char category, Oid type) {
  switch (category) {
    case 'B':
      return ColumnKind::kBoolean;
    case 'N':
      if (type == kInt2Oid || type == kInt4Oid || type == kInt8Oid || type == kOidOid) {
        return ColumnKind::kInteger;
      }
      if (type == kFloat4Oid || type == kFloat8Oid) return ColumnKind::kReal;
      if (type == kNumericOid || type == kMoneyOid) return ColumnKind::kDecimal;
      return ColumnKind::kAny;  // regclass and the other reg* types travel as names
    case 'S':                   // text, varchar, char, name
    case 'E':                   // enums: their labels
    case 'I':                   // inet, cidr
      return ColumnKind::kText;
    case 'D':  // date, time, timestamp, timestamptz
    case 'T':  // interval
      return ColumnKind::kTime;
    case 'U':  // user types: the built-in ones of this category duplex knows
      if (type == kByteaOid) return ColumnKind::kBinary;
      if (type == kJsonOid || type == kJsonbOid) return ColumnKind::kJson;
      if (type == kUuidOid || type == kXmlOid) return ColumnKind::kText;
      return ColumnKind::kAny;
    default:  // arrays, ranges, composites, geometry, bit strings, pseudo-types
      return ColumnKind::kAny;
  }
}

}  // namespace duplex::pg
