// Helpers shared by the Salesforce connector's files (salesforce_connector.cc and the files
// that split it by responsibility).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace duplex::sf {

// The value of `column` in a row keyed by API names (the API matches names case-insensitively).
const nlohmann::json* FieldOf(const nlohmann::json& row, const std::string& column);

// A SOQL string literal: quote and backslash escaped.
std::string Quoted(const std::string& v);

}  // namespace duplex::sf
