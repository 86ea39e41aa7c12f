#include "config/config.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

#include "config/parser.h"

namespace duplex {

namespace fs = std::filesystem;

const EndpointConfig* Config::FindEndpoint(const std::string& name) const {
  for (const EndpointConfig& e : endpoints) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

std::optional<int64_t> ParseDurationMs(std::string_view text) {
  size_t i = 0;
  int64_t n = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    if (n > 1000000000) return std::nullopt;
    n = n * 10 + (text[i++] - '0');
  }
  if (i == 0) return std::nullopt;
  const std::string_view unit = text.substr(i);
  if (unit == "ms") return n;
  if (unit == "s") return n * 1000;
  if (unit == "m") return n * 60 * 1000;
  if (unit == "h") return n * 3600 * 1000;
  return std::nullopt;
}

Result<Config> LoadConfig(const std::string& path) {
  std::error_code ec;
  std::ifstream in;
  errno = 0;
  if (!fs::is_directory(path, ec)) in.open(path, std::ios::binary);
  if (!in.is_open()) {
    return Status::InvalidArgument(
        fmt::format("cannot read config file '{}' ({}); check the path, or write an example "
                    "config with `duplex init`",
                    path, errno ? std::strerror(errno) : "not a regular file"));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), path);
}

Result<Config> ParseConfig(const std::string& text, const std::string& path) {
  Config config;
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  config.path = (ec ? fs::path(path) : abs).lexically_normal().string();
  config.shown_path = path;
  toml::table root;
  try {
    root = toml::parse(std::string_view(text), std::string_view(path));
  } catch (const toml::parse_error& e) {
    return Status::InvalidArgument(fmt::format("{}:{}: {}; fix the TOML syntax there", path,
                                               e.source().begin.line, e.description()));
  }
  DUPLEX_RETURN_IF_ERROR(ParseConfigDocument(root, path, &config));
  return config;
}

}  // namespace duplex
