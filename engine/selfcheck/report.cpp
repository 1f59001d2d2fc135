// engine/selfcheck/report.cpp: kernel cases and results as JSON (report.hpp).
#include "engine/selfcheck/report.hpp"

#include <cmath>

#include <fmt/format.h>

namespace octa::selfcheck {

namespace {

// JSON has no infinity: a comparison with nothing allowed, or a NaN, reports null.
nlohmann::json number(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

nlohmann::json tolerance_json(const Tolerance& t) {
  return {{"name", t.name}, {"atol", t.atol}, {"rtol", t.rtol}};
}

}  // namespace

std::string short_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return "inf";
  if (v == 0.0) return "0";
  return fmt::format("{:.2e}", v);
}

nlohmann::json to_json(const KernelCase& c) {
  return {{"name", c.name},
          {"group", c.group},
          {"launcher", c.launcher},
          {"shape", c.shape},
          {"reference", c.reference},
          {"tolerance", tolerance_json(c.tolerance)},
          {"size", case_size_name(c.size)},
          {"model_a", (c.models & kModelA) != 0},
          {"model_b", (c.models & kModelB) != 0},
          {"conv", conv_impl_name(c.conv)},
          {"emulated", c.emulated()},
          {"runners", c.runners()}};
}

nlohmann::json to_json(const CaseResult& r) {
  nlohmann::json checks = nlohmann::json::array();
  for (const CheckResult& c : r.checks) {
    nlohmann::json j = {{"what", c.what},
                        {"tolerance", tolerance_json(c.tolerance)},
                        {"passed", c.cmp.ok},
                        {"failures", c.cmp.failures},
                        {"max_abs_err", number(c.cmp.max_abs_err)},
                        {"max_rel_err", number(c.cmp.max_rel_err)},
                        {"worst_over_allowed", number(c.cmp.worst_ratio)}};
    if (!c.cmp.ok) j["report"] = c.cmp.report;
    checks.push_back(std::move(j));
  }
  nlohmann::json j = {{"passed", r.passed()},
                      {"kernel_ms", r.kernel_ms},
                      {"wall_ms", r.wall_ms},
                      {"checks", checks}};
  if (const CheckResult* w = r.worst()) {
    j["worst"] = {{"what", w->what},
                  {"tolerance", tolerance_json(w->tolerance)},
                  {"max_abs_err", number(w->cmp.max_abs_err)},
                  {"max_rel_err", number(w->cmp.max_rel_err)},
                  {"worst_over_allowed", number(w->cmp.worst_ratio)}};
  }
  if (!r.error.empty()) j["error"] = r.error;
  if (!r.passed()) j["failure"] = r.failure();
  return j;
}

}  // namespace octa::selfcheck
