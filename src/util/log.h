#pragma once

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace duplex {

// Configures the process-wide logger: text lines (default) or one JSON object per line, to
// stderr, at `level` ("trace".."error", "off"). Returns false for an unknown level or format.
// In JSON, every `key=value` of a message is a field of its own besides "msg" (see
// MessageFields).
bool SetupLogging(const std::string& level, const std::string& format);

// The `key=value` pairs of a log message ("endpoint=crm key={"id":1} error="x y"") as a JSON
// object of strings; the first of a repeated key wins; "time", "level" and "msg" are left out.
nlohmann::json MessageFields(std::string_view text);

}  // namespace duplex
