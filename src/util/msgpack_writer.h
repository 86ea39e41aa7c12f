#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace duplex {

// Writes MessagePack directly into a byte buffer, so that large structures made of JSON values
// are encoded without first being copied into one JSON tree. Decode with
// nlohmann::json::from_msgpack.
class MsgpackWriter {
 public:
  void MapHeader(uint32_t n);
  void ArrayHeader(uint32_t n);
  void String(std::string_view s);
  void Bin(std::string_view bytes);  // msgpack bin 8/16/32
  void Int(int64_t v);
  void Double(double v);
  void Bool(bool v) { out_.push_back(v ? 0xc3 : 0xc2); }
  void Nil() { out_.push_back(0xc0); }
  void Json(const nlohmann::json& j) { nlohmann::json::to_msgpack(j, out_); }

  std::string Take() { return std::string(out_.begin(), out_.end()); }

 private:
  void Be(uint64_t v, int bytes);

  std::vector<uint8_t> out_;
};

}  // namespace duplex
