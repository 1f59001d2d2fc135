// tests/support/report_numbers.hpp: checking the figures a report page shows against the metrics
// JSON they claim to come from. Every figure on the page carries data-key="<JSON pointer>"; the
// shown text ("98.71%", "0.9974", "10,000", "AUC 0.9974") is parsed on its own, independently of
// the renderer's formatting, and must equal the JSON's value to the digits shown. For a K-class
// page also where its confusion matrix and per-class rows put each figure.
#pragma once

#include <algorithm>
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

// The figures a K-class run's report must show: the headline, every class's row and every cell
// of the KxK confusion matrix.
inline std::vector<std::string> required_class_report_keys(int num_classes, bool with_validation) {
  std::vector<std::string> k = {"/test/accuracy",          "/test/top2_accuracy",
                                "/test/macro_f1",          "/test/macro_precision",
                                "/test/macro_recall",      "/test/mean_loss",
                                "/test/baseline_accuracy", "/epochs/0/mean_loss",
                                "/epochs/0/seconds",       "/device",
                                "/config/train_images",    "/config/test_images"};
  for (int c = 0; c < num_classes; ++c) {
    for (const char* f : {"index", "name", "support", "predicted", "precision", "recall", "f1"}) {
      k.push_back(fmt::format("/test/classes/{}/{}", c, f));
    }
    for (int p = 0; p < num_classes; ++p) {
      k.push_back(fmt::format("/test/confusion_matrix/counts/{}/{}", c, p));
    }
  }
  if (with_validation) {
    k.insert(k.end(),
             {"/validation/accuracy", "/validation/top2_accuracy", "/validation/macro_f1"});
  }
  return k;
}

// The keyed figures of each row (<tr>, header rows included) of the first table after the card
// titled `title` (<h3>title</h3>), in the order the page shows them; empty when there is none.
inline std::vector<std::vector<ShownFigure>> keyed_rows_of_table(const std::string& html,
                                                                 const std::string& title) {
  std::vector<std::vector<ShownFigure>> rows;
  const std::size_t at = html.find("<h3>" + title + "</h3>");
  if (at == std::string::npos) return rows;
  const std::size_t begin = html.find("<table", at), end = html.find("</table>", at);
  if (begin == std::string::npos || end == std::string::npos || end < begin) return rows;
  const std::string table = html.substr(begin, end - begin);
  for (std::size_t tr = table.find("<tr"); tr != std::string::npos;) {
    const std::size_t next = table.find("<tr", tr + 3);
    rows.push_back(
        keyed_figures_in_html(table.substr(tr, next == std::string::npos ? next : next - tr)));
    tr = next;
  }
  return rows;
}

// Empty when the page's KxK confusion matrix (the card titled "K x K confusion matrix") has the
// class names of the metrics JSON along its top and down its side, in class order, and in row a,
// column p the count at /test/confusion_matrix/counts/a/p, and nothing else; else what is wrong.
inline std::vector<std::string> check_confusion_grid(const std::string& html,
                                                     const nlohmann::json& metrics) {
  std::vector<std::string> bad;
  const int k = metrics.at(nlohmann::json::json_pointer("/test/num_classes")).get<int>();
  const auto rows = keyed_rows_of_table(html, fmt::format("{} x {} confusion matrix", k, k));
  if (rows.size() != static_cast<std::size_t>(k) + 1) {
    bad.push_back(fmt::format("the confusion matrix has {} rows, not 1 + {}", rows.size(), k));
    return bad;
  }
  const auto expect = [&](const ShownFigure& f, const std::string& key) {
    if (f.first != key) bad.push_back(fmt::format("'{}' where {} belongs", f.first, key));
  };
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const std::size_t want = r == 0 ? static_cast<std::size_t>(k) : static_cast<std::size_t>(k) + 1;
    if (rows[r].size() != want) {
      bad.push_back(
          fmt::format("row {} of the matrix holds {} figures, not {}", r, rows[r].size(), want));
      continue;
    }
    if (r == 0) {
      for (int c = 0; c < k; ++c)
        expect(rows[0][static_cast<std::size_t>(c)], fmt::format("/test/classes/{}/name", c));
      continue;
    }
    const int a = static_cast<int>(r) - 1;
    expect(rows[r][0], fmt::format("/test/classes/{}/name", a));
    for (int c = 0; c < k; ++c) {
      expect(rows[r][static_cast<std::size_t>(c) + 1],
             fmt::format("/test/confusion_matrix/counts/{}/{}", a, c));
    }
    for (std::string e : check_figures(metrics, rows[r])) bad.push_back(std::move(e));
  }
  for (std::string e : check_figures(metrics, rows[0])) bad.push_back(std::move(e));
  return bad;
}

// Empty when the page's per-class table has one row per class in class order, each holding that
// class's index, name, support, predicted count, precision, recall and F1 as the metrics JSON has
// them (then the macro averages); else what is wrong.
inline std::vector<std::string> check_class_rows(const std::string& html,
                                                 const nlohmann::json& metrics) {
  std::vector<std::string> bad;
  const int k = metrics.at(nlohmann::json::json_pointer("/test/num_classes")).get<int>();
  const auto rows = keyed_rows_of_table(html, "Precision, recall and F1 of each class");
  // The header row (no figures), K classes, the macro averages.
  if (rows.size() != static_cast<std::size_t>(k) + 2) {
    bad.push_back(fmt::format("the per-class table has {} rows, not {} + 2", rows.size(), k));
    return bad;
  }
  const char* fields[] = {"index", "name", "support", "predicted", "precision", "recall", "f1"};
  for (int c = 0; c < k; ++c) {
    const auto& row = rows[static_cast<std::size_t>(c) + 1];
    if (row.size() != 7) {
      bad.push_back(fmt::format("class {}'s row holds {} figures, not 7", c, row.size()));
      continue;
    }
    for (std::size_t f = 0; f < 7; ++f) {
      const std::string key = fmt::format("/test/classes/{}/{}", c, fields[f]);
      if (row[f].first != key)
        bad.push_back(fmt::format("'{}' where {} belongs", row[f].first, key));
    }
    for (std::string e : check_figures(metrics, row)) bad.push_back(std::move(e));
  }
  const std::vector<std::string> macro = {"/test/count", "/test/macro_precision",
                                          "/test/macro_recall", "/test/macro_f1"};
  const auto& last = rows.back();
  if (last.size() != macro.size()) {
    bad.push_back(fmt::format("the macro row holds {} figures", last.size()));
  } else {
    for (std::size_t i = 0; i < macro.size(); ++i) {
      if (last[i].first != macro[i])
        bad.push_back(fmt::format("'{}' where {} belongs", last[i].first, macro[i]));
    }
    for (std::string e : check_figures(metrics, last)) bad.push_back(std::move(e));
  }
  return bad;
}

// Everything wrong with a K-class page: figures unequal to the metrics JSON, required ones
// missing, and (when the page's HTML is given, not only its figures) the confusion matrix or the
// per-class table out of place.
inline std::vector<std::string> check_class_page(const nlohmann::json& metrics,
                                                 const std::string& html,
                                                 const std::vector<ShownFigure>& figures,
                                                 bool with_validation) {
  std::vector<std::string> bad = check_figures(metrics, figures);
  const int k = metrics.at(nlohmann::json::json_pointer("/test/num_classes")).get<int>();
  for (const std::string& key : required_class_report_keys(k, with_validation)) {
    const bool shown = std::any_of(figures.begin(), figures.end(),
                                   [&](const ShownFigure& f) { return f.first == key; });
    if (!shown) bad.push_back("not on the page: " + key);
  }
  if (!html.empty()) {
    for (std::string e : check_confusion_grid(html, metrics)) bad.push_back(std::move(e));
    for (std::string e : check_class_rows(html, metrics)) bad.push_back(std::move(e));
  }
  return bad;
}

}  // namespace octa::test
