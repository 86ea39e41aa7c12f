#include "admin/assets.h"

namespace duplex {

namespace {

// Generated from src/admin/web/ at build time: `constexpr Asset kAssets[] = {...};`.
#include "admin/web_assets.inc"

}  // namespace

std::span<const Asset> Assets() { return kAssets; }

const Asset* FindAsset(std::string_view path) {
  for (const Asset& a : kAssets) {
    if (a.path == path) return &a;
  }
  return nullptr;
}

}  // namespace duplex
