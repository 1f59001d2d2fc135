// engine/report/json_cells.hpp: figures read from a run's metrics JSON and formatted for a page,
// each keyed to the JSON pointer it came from (page.hpp's Cell::key), so a test or a reader can
// check it against the file. Shared by the binary run's page and the K-class one.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "engine/report/page.hpp"

namespace octa::report {

// The value at a JSON pointer, or NaN when it is absent or not a number.
double number_at(const nlohmann::json& j, const std::string& pointer);
// The string at a JSON pointer (another value: its JSON text), or `fallback` when absent or null.
std::string text_at(const nlohmann::json& j, const std::string& pointer,
                    const std::string& fallback = "");

// "98.71%", "0.9871", "10,000", the text itself; "n/a" (unkeyed) where the value is absent.
Cell pct(const nlohmann::json& j, const std::string& ptr, int decimals = 2);
Cell fix(const nlohmann::json& j, const std::string& ptr, int decimals = 4);
Cell count(const nlohmann::json& j, const std::string& ptr);
Cell plain(const nlohmann::json& j, const std::string& ptr, const std::string& fallback = "n/a");
// Text that is not from the metrics file.
Cell text(std::string s);

}  // namespace octa::report
