// The config file's parser (parser.cc), over checked TOML reads (toml_reader.h). Internal to
// src/config/: callers use LoadConfig / ParseConfig (config.h).
#pragma once

#include <toml++/toml.h>

#include <string>

#include "config/config.h"
#include "duplex/status.h"

namespace duplex {

// Fills *config (its path already set) from the parsed document `root` of `file`.
Status ParseConfigDocument(const toml::table& root, const std::string& file, Config* config);

}  // namespace duplex
