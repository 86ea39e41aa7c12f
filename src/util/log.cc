#include "util/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <cctype>
#include <nlohmann/json.hpp>
#include <string_view>

namespace duplex {

namespace {

// `%*` in a pattern: `"msg": <the message as a JSON string>`, then every `key=value` of the
// message as a field of its own (`"endpoint": "crm"`), so that JSON logs can be filtered by
// endpoint, collection or key without parsing the text. A value runs to the next space, or is
// a double-quoted string.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string_view text(msg.payload.data(), msg.payload.size());
    std::string out = "\"msg\":";
    out += Dump(nlohmann::json(std::string(text)));
    nlohmann::json fields = MessageFields(text);
    for (const auto& [k, v] : fields.items()) out += "," + Dump(nlohmann::json(k)) + ":" + Dump(v);
    dest.append(out.data(), out.data() + out.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return spdlog::details::make_unique<JsonMessageFlag>();
  }

 private:
  static std::string Dump(const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
};

}  // namespace

nlohmann::json MessageFields(std::string_view text) {
  nlohmann::json fields = nlohmann::json::object();
  size_t i = 0;
  while (i < text.size()) {
    // A key starts a word: letters, digits and '_', then '='.
    size_t k = i;
    while (k < text.size() &&
           (std::isalnum(static_cast<unsigned char>(text[k])) || text[k] == '_')) {
      ++k;
    }
    if (k > i && k < text.size() && text[k] == '=' && (i == 0 || text[i - 1] == ' ')) {
      std::string key(text.substr(i, k - i));
      size_t v = k + 1, end = v;
      std::string value;
      if (v < text.size() && text[v] == '"') {
        end = text.find('"', v + 1);
        if (end == std::string_view::npos) end = text.size();
        value = std::string(text.substr(v + 1, end - v - 1));
        if (end < text.size()) ++end;
      } else {
        while (end < text.size() && text[end] != ' ') ++end;
        value = std::string(text.substr(v, end - v));
        // "key=value:" or "key=value," ends a clause, not the value.
        while (!value.empty() && (value.back() == ':' || value.back() == ',')) value.pop_back();
      }
      if (key != "time" && key != "level" && key != "msg" && !fields.contains(key)) {
        fields[key] = value;
      }
      i = end;
      continue;
    }
    i = k > i ? k : i + 1;
  }
  return fields;
}

bool SetupLogging(const std::string& level, const std::string& format) {
  spdlog::level::level_enum lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") return false;
  if (format != "json" && format != "text") return false;
  auto logger = spdlog::get("duplex");
  if (!logger) logger = spdlog::stderr_color_mt("duplex");
  if (format == "json") {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<JsonMessageFlag>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l",%*})");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  }
  logger->set_level(lvl);
  spdlog::set_default_logger(logger);
  return true;
}

}  // namespace duplex
