#include "util/msgpack_writer.h"

#include <cstring>

namespace duplex {

void MsgpackWriter::Be(uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void MsgpackWriter::MapHeader(uint32_t n) {
  if (n < 16) {
    out_.push_back(static_cast<uint8_t>(0x80 | n));
  } else if (n <= 0xffff) {
    out_.push_back(0xde);
    Be(n, 2);
  } else {
    out_.push_back(0xdf);
    Be(n, 4);
  }
}

void MsgpackWriter::ArrayHeader(uint32_t n) {
  if (n < 16) {
    out_.push_back(static_cast<uint8_t>(0x90 | n));
  } else if (n <= 0xffff) {
    out_.push_back(0xdc);
    Be(n, 2);
  } else {
    out_.push_back(0xdd);
    Be(n, 4);
  }
}

void MsgpackWriter::Bin(std::string_view bytes) {
  const size_t n = bytes.size();
  if (n <= 0xff) {
    out_.push_back(0xc4);
    Be(n, 1);
  } else if (n <= 0xffff) {
    out_.push_back(0xc5);
    Be(n, 2);
  } else {
    out_.push_back(0xc6);
    Be(n, 4);
  }
  out_.insert(out_.end(), bytes.begin(), bytes.end());
}

void MsgpackWriter::String(std::string_view s) {
  const size_t n = s.size();
  if (n < 32) {
    out_.push_back(static_cast<uint8_t>(0xa0 | n));
  } else if (n <= 0xff) {
    out_.push_back(0xd9);
    Be(n, 1);
  } else if (n <= 0xffff) {
    out_.push_back(0xda);
    Be(n, 2);
  } else {
    out_.push_back(0xdb);
    Be(n, 4);
  }
  out_.insert(out_.end(), s.begin(), s.end());
}

void MsgpackWriter::Int(int64_t v) {
  if (v >= 0 && v < 128) {
    out_.push_back(static_cast<uint8_t>(v));
  } else {
    out_.push_back(0xd3);
    Be(static_cast<uint64_t>(v), 8);
  }
}

void MsgpackWriter::Double(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  out_.push_back(0xcb);
  Be(bits, 8);
}

}  // namespace duplex
