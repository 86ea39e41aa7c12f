#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace duplex {

// Configures the process-wide logger: text lines (default) or one JSON object per line, to
// stderr, at `level` ("trace".."error", "off"). Returns false for an unknown level or format.
bool SetupLogging(const std::string& level, const std::string& format);

}  // namespace duplex
