// engine/report/evaluation.cpp: a split's metrics and curves from its logits; the threshold choice;
// the JSON blocks of the metrics file.
#include "engine/report/evaluation.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/core/error.hpp"
#include "engine/data/transform.hpp"

namespace octa::report {

double sigmoid(double logit) {
  return 1.0 / (1.0 + std::exp(-logit));
}

SplitEvaluation evaluate_split(std::string name, std::vector<float> logits,
                               const data::Split& split, int target_digit) {
  OCTA_CHECK(logits.size() == static_cast<std::size_t>(split.count) &&
                 split.labels.size() == logits.size(),
             "evaluate_split({}): {} logits for {} images", name, logits.size(), split.count);
  SplitEvaluation e;
  e.split = std::move(name);
  e.logits = std::move(logits);
  e.labels = split.labels;
  e.targets.reserve(e.labels.size());
  for (const std::uint8_t l : e.labels) e.targets.push_back(data::binary_target(l, target_digit));
  e.metrics = compute_binary_metrics(e.logits, e.targets);
  const std::int64_t positives = e.metrics.tp + e.metrics.fn;
  if (positives > 0 && positives < e.metrics.count) {
    e.roc = roc_curve(e.logits, e.targets);
    e.pr = pr_curve(e.logits, e.targets);
  } else {
    e.roc.auc = std::numeric_limits<double>::quiet_NaN();
    e.pr.average_precision = std::numeric_limits<double>::quiet_NaN();
  }
  return e;
}

ThresholdChoice choose_threshold(const SplitEvaluation& on) {
  ThresholdChoice c;
  c.split = on.split;
  const std::vector<double> thresholds = default_thresholds();
  c.rows = threshold_table(on.logits, on.targets, thresholds);
  c.best_f1 = best_f1_threshold(on.logits, on.targets);
  return c;
}

std::vector<Misclassified> misclassified(const SplitEvaluation& e, std::size_t limit) {
  std::vector<Misclassified> out;
  for (std::size_t i = 0; i < e.logits.size(); ++i) {
    const bool predicted = e.logits[i] > 0.0f;
    const bool actual = e.targets[i] == 1.0f;
    if (predicted == actual) continue;
    out.push_back({i, e.labels[i], sigmoid(e.logits[i]), predicted});
  }
  std::stable_sort(out.begin(), out.end(), [&](const Misclassified& a, const Misclassified& b) {
    return std::abs(e.logits[a.index]) > std::abs(e.logits[b.index]);
  });
  if (out.size() > limit) out.resize(limit);
  return out;
}

nlohmann::json to_json(const ThresholdRow& r) {
  return {{"threshold", r.threshold},
          {"precision", r.precision},
          {"recall", r.recall},
          {"f1", r.f1},
          {"accuracy", r.accuracy},
          {"tp", r.tp},
          {"fp", r.fp},
          {"tn", r.tn},
          {"fn", r.fn}};
}

namespace {

nlohmann::json nan_as_null(double v) {
  return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v);
}

nlohmann::json split_json(const SplitEvaluation& e) {
  nlohmann::json j = to_json(e.metrics);
  j["split"] = e.split;
  j["positives"] = e.metrics.tp + e.metrics.fn;
  j["prevalence"] =
      static_cast<double>(e.metrics.tp + e.metrics.fn) / static_cast<double>(e.metrics.count);
  j["average_precision"] = nan_as_null(e.pr.average_precision);
  return j;
}

}  // namespace

nlohmann::json evaluation_json(const SplitEvaluation& test, const SplitEvaluation* validation) {
  nlohmann::json j;
  j["test"] = split_json(test);
  if (validation) j["validation"] = split_json(*validation);
  const ThresholdChoice choice = choose_threshold(validation ? *validation : test);
  nlohmann::json t;
  t["split"] = choice.split;
  t["note"] = validation
                  ? "images held out of training; the test split played no part in the choice"
                  : "no validation split was held out (train_gpu --val-size N), so the threshold "
                    "was chosen on the test split itself and its test figures are optimistic";
  t["rows"] = nlohmann::json::array();
  for (const ThresholdRow& r : choice.rows) t["rows"].push_back(to_json(r));
  t["best_f1"] = to_json(choice.best_f1);
  j["thresholds"] = t;
  nlohmann::json at = to_json(at_threshold(test.logits, test.targets, choice.best_f1.threshold));
  at["split"] = test.split;
  at["threshold_from"] = choice.split;
  j["test_at_best_f1_threshold"] = at;
  return j;
}

}  // namespace octa::report
