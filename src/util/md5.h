#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace duplex {

// MD5 (RFC 1321) of `data`: the 16-byte digest. Used where a hash must match what a database
// computes with its own md5() (reconcile's key-range digests, docs/DESIGN.md §6); not for
// anything that needs a secure hash.
std::array<uint8_t, 16> Md5(std::string_view data);

// The first 8 bytes of Md5(data) as a big-endian integer: what PostgreSQL's
// ('x' || substr(md5(data), 1, 16))::bit(64)::bigint gives, as unsigned.
uint64_t Md5Prefix64(std::string_view data);

}  // namespace duplex
