#include "config/toml_reader.h"

#include <cctype>

namespace duplex::config_detail {

// A table's entries in file order (toml++ tables are sorted maps).
std::vector<Entry> InFileOrder(const toml::table& t) {
  std::vector<std::pair<toml::source_position, Entry>> v;
  for (auto&& [k, node] : t) {
    v.push_back({k.source().begin, Entry{std::string(k.str()), &node, LineOf(k.source())}});
  }
  std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.first.line != b.first.line ? a.first.line < b.first.line
                                        : a.first.column < b.first.column;
  });
  std::vector<Entry> out;
  for (auto& e : v) out.push_back(std::move(e.second));
  return out;
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

bool ValidName(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

}  // namespace duplex::config_detail
