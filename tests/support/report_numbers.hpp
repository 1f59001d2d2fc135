// tests/support/report_numbers.hpp: checking the figures a report page shows against the metrics
// JSON they claim to come from. Every figure on the page carries data-key="<JSON pointer>"; the
// shown text ("98.71%", "0.9974", "10,000", "AUC 0.9974") is parsed on its own, independently of
// the renderer's formatting, and must equal the JSON's value to the digits shown.
#pragma once

#include <cmath>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace octa::test {

using ShownFigure = std::pair<std::string, std::string>;  // (data-key, text content)

// The (data-key, text) pairs of a page, read from its HTML (each keyed element holds plain text).
inline std::vector<ShownFigure> keyed_figures_in_html(const std::string& html) {
  std::vector<ShownFigure> out;
  const std::regex re(R"re(data-key="([^"]+)"[^>]*>([^<]*)<)re");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), re); it != std::sregex_iterator();
       ++it) {
    out.emplace_back((*it)[1].str(), (*it)[2].str());
  }
  return out;
}

// Empty when the shown text equals the JSON value at `key` (numbers to the shown precision,
// percentages divided by 100, thousands separators ignored; strings exactly); else what is wrong.
inline std::string check_figure(const nlohmann::json& metrics, const ShownFigure& f) {
  const auto& [key, text] = f;
  const nlohmann::json::json_pointer p(key);
  if (!metrics.contains(p))
    return fmt::format("{}: shown as '{}', not in the metrics JSON", key, text);
  const nlohmann::json& v = metrics.at(p);
  if (v.is_string()) {
    return v.get<std::string>() == text
               ? ""
               : fmt::format("{}: shown '{}', JSON '{}'", key, text, v.get<std::string>());
  }
  if (!v.is_number()) return fmt::format("{}: JSON value {} is not a number", key, v.dump());
  std::smatch m;
  const std::regex number(R"(-?[0-9][0-9,]*(\.([0-9]+))?(%?))");
  if (!std::regex_search(text, m, number)) return fmt::format("{}: no number in '{}'", key, text);
  std::string digits = m[0].str();
  const bool percent = m[3].str() == "%";
  std::erase(digits, ',');
  std::erase(digits, '%');
  const double shown = std::stod(digits) / (percent ? 100.0 : 1.0);
  const int decimals = static_cast<int>(m[2].str().size()) + (percent ? 2 : 0);
  const double half_unit = 0.5 * std::pow(10.0, -decimals) * (1 + 1e-9) + 1e-12;
  const double want = v.get<double>();
  if (std::abs(shown - want) > half_unit) {
    return fmt::format("{}: shown '{}' ({}), JSON {}", key, text, shown, want);
  }
  return "";
}

// Every mismatch among the figures.
inline std::vector<std::string> check_figures(const nlohmann::json& metrics,
                                              const std::vector<ShownFigure>& figures) {
  std::vector<std::string> bad;
  for (const ShownFigure& f : figures) {
    if (std::string e = check_figure(metrics, f); !e.empty()) bad.push_back(e);
  }
  return bad;
}

// The figures every run report must show (pointers into the metrics JSON).
inline std::vector<std::string> required_report_keys(bool with_validation) {
  std::vector<std::string> k = {"/test/accuracy",
                                "/test/precision",
                                "/test/recall",
                                "/test/f1",
                                "/test/roc_auc",
                                "/test/average_precision",
                                "/test/baseline_accuracy",
                                "/test/confusion_matrix/tp",
                                "/test/confusion_matrix/fp",
                                "/test/confusion_matrix/tn",
                                "/test/confusion_matrix/fn",
                                "/thresholds/best_f1/threshold",
                                "/thresholds/best_f1/f1",
                                "/thresholds/rows/0/precision",
                                "/thresholds/rows/10/recall",
                                "/thresholds/rows/20/f1",
                                "/test_at_best_f1_threshold/f1",
                                "/epochs/0/mean_loss",
                                "/epochs/0/seconds",
                                "/device",
                                "/config/train_images",
                                "/config/test_images"};
  if (with_validation) {
    k.insert(k.end(), {"/validation/roc_auc", "/validation/average_precision"});
  }
  return k;
}

}  // namespace octa::test
