#include "util/json_value.h"

#include <cmath>

namespace duplex {

namespace {

constexpr char kHex[] = "0123456789ABCDEF";

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return 0;
}

int Rank(const Value& v) {
  if (v.is_null()) return 0;
  if (v.is_boolean() || v.is_number()) return 1;
  if (v.is_string()) return 2;
  if (IsBlob(v)) return 3;
  return 4;
}

double AsDouble(const Value& v) {
  if (v.is_boolean()) return v.get<bool>() ? 1.0 : 0.0;
  return v.get<double>();
}

}  // namespace

bool IsBlob(const Value& v) {
  return v.is_object() && v.size() == 1 && v.contains("$blob") && v["$blob"].is_string();
}

Value MakeBlob(std::string_view bytes) {
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    hex += kHex[c >> 4];
    hex += kHex[c & 0xf];
  }
  return Value{{"$blob", hex}};
}

std::string BlobBytes(const Value& v) {
  if (!IsBlob(v)) return {};
  const std::string& hex = v["$blob"].get_ref<const std::string&>();
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out += static_cast<char>(HexDigit(hex[i]) * 16 + HexDigit(hex[i + 1]));
  }
  return out;
}

bool ValuesEqual(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_number_float() || b.is_number_float()) return AsDouble(a) == AsDouble(b);
    return CompareValues(a, b) == 0;
  }
  if (IsBlob(a) && IsBlob(b)) return BlobBytes(a) == BlobBytes(b);
  return a == b;
}

int CompareValues(const Value& a, const Value& b) {
  int ra = Rank(a), rb = Rank(b);
  if (ra != rb) return ra < rb ? -1 : 1;
  switch (ra) {
    case 0:
      return 0;
    case 1: {
      if (a.is_number_integer() && b.is_number_integer()) {
        // Unsigned values above INT64_MAX only come from JSON input; order by sign first.
        const bool an = a.is_number_unsigned() ? false : a.get<int64_t>() < 0;
        const bool bn = b.is_number_unsigned() ? false : b.get<int64_t>() < 0;
        if (an != bn) return an ? -1 : 1;
        if (an) {
          int64_t x = a.get<int64_t>(), y = b.get<int64_t>();
          return x < y ? -1 : (x > y ? 1 : 0);
        }
        uint64_t x = a.get<uint64_t>(), y = b.get<uint64_t>();
        return x < y ? -1 : (x > y ? 1 : 0);
      }
      double x = AsDouble(a), y = AsDouble(b);
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    case 2: {
      int c = a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>());
      return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    case 3: {
      int c = BlobBytes(a).compare(BlobBytes(b));
      return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    default: {
      int c = a.dump().compare(b.dump());
      return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
  }
}

std::string ValueToDisplay(const Value& v) {
  if (v.is_null()) return "NULL";
  if (v.is_string()) return "'" + v.get<std::string>() + "'";
  if (IsBlob(v)) return "x'" + v["$blob"].get<std::string>() + "'";
  return v.dump();
}

std::string KeyText(const Row& key_row, const std::vector<std::string>& key_fields) {
  Value arr = Value::array();
  for (const std::string& f : key_fields) {
    auto it = key_row.find(f);
    arr.push_back(it == key_row.end() ? Value(nullptr) : *it);
  }
  return arr.dump();
}

RecordKey RecordKeyOf(const std::string& collection, const Row& key_row,
                      const std::vector<std::string>& key_fields) {
  return RecordKey{collection, KeyText(key_row, key_fields)};
}

}  // namespace duplex
