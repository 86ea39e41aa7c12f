#pragma once

#include <span>
#include <string_view>

namespace duplex {

// A file of the dashboard (src/admin/web/), embedded into the binary at build time
// (cmake/embed_assets.cmake), so that nothing is read from disk or built at run time.
struct Asset {
  std::string_view path;  // URL path: "/" for index.html, "/app.js", ...
  const char* type;       // Content-Type
  std::string_view body;
};

std::span<const Asset> Assets();
// The asset served at `path`, or nullptr.
const Asset* FindAsset(std::string_view path);

}  // namespace duplex
