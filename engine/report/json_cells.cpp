// engine/report/json_cells.cpp: JSON pointer look-ups and the keyed, formatted cells.
#include "engine/report/json_cells.hpp"

#include <cmath>
#include <cstdint>
#include <limits>

#include <fmt/format.h>

#include "engine/report/html.hpp"

namespace octa::report {
using nlohmann::json;

double number_at(const json& j, const std::string& pointer) {
  const json::json_pointer p(pointer);
  if (!j.contains(p) || !j.at(p).is_number()) return std::numeric_limits<double>::quiet_NaN();
  return j.at(p).get<double>();
}

std::string text_at(const json& j, const std::string& pointer, const std::string& fallback) {
  const json::json_pointer p(pointer);
  if (!j.contains(p)) return fallback;
  const json& v = j.at(p);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return fallback;
  return v.dump();
}

Cell pct(const json& j, const std::string& ptr, int decimals) {
  const double v = number_at(j, ptr);
  if (std::isnan(v)) return {"n/a", "", true};
  return {fmt::format("{:.{}f}%", v * 100.0, decimals), ptr, true};
}

Cell fix(const json& j, const std::string& ptr, int decimals) {
  const double v = number_at(j, ptr);
  if (std::isnan(v)) return {"n/a", "", true};
  return {fmt::format("{:.{}f}", v, decimals), ptr, true};
}

Cell count(const json& j, const std::string& ptr) {
  const double v = number_at(j, ptr);
  if (std::isnan(v)) return {"n/a", "", true};
  return {with_commas(static_cast<std::int64_t>(std::llround(v))), ptr, true};
}

Cell plain(const json& j, const std::string& ptr, const std::string& fallback) {
  const std::string s = text_at(j, ptr);
  return {s.empty() ? fallback : s, s.empty() ? "" : ptr, false};
}

Cell text(std::string s) {
  return {std::move(s), "", false};
}

}  // namespace octa::report
