// engine/selfcheck/report.hpp: kernel cases and their results as JSON (octa_selftest --json and
// --list --json) and as the rows of octa_selftest's table.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "engine/selfcheck/kernel_case.hpp"

namespace octa::selfcheck {

// What the case is: name, group, launcher, shape, reference, tolerance, size, runners, ...
nlohmann::json to_json(const KernelCase& c);
// How a run went: passed, worst comparison (max abs and rel error, its tolerance), every
// comparison, error, times.
nlohmann::json to_json(const CaseResult& r);

// An error or ratio in a fixed width: "1.23e-06", "0", "inf".
std::string short_number(double v);

}  // namespace octa::selfcheck
