// engine/report/evaluation.hpp: everything a run's evaluation says about one split (metrics at the
// default threshold, ROC and precision-recall curves, the misclassified images), the honest choice
// of a threshold (on the validation split when there is one, never silently on the test split),
// and all of it as JSON blocks for the metrics file. Every block names its split.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/data/mnist.hpp"
#include "engine/report/curves.hpp"
#include "engine/train/metrics.hpp"

namespace octa::report {

inline constexpr const char* kTestSplit = "test";
inline constexpr const char* kValidationSplit = "validation";

struct SplitEvaluation {
  std::string split;                 // kTestSplit or kValidationSplit
  std::vector<float> logits;         // one per image, in the split's order
  std::vector<float> targets;        // 1 for the target digit, else 0
  std::vector<std::uint8_t> labels;  // the digits 0..9
  BinaryMetrics metrics;             // at threshold 0.5 (logit > 0)
  RocCurve roc;                      // empty (auc NaN) when the split holds one class only
  PrCurve pr;
};

// logits: the model's, one per image of `split` in its order. Throws octa::Error on a length
// mismatch.
SplitEvaluation evaluate_split(std::string name, std::vector<float> logits,
                               const data::Split& split, int target_digit);

// The threshold table and the best-F1 threshold, with the split they were computed on.
struct ThresholdChoice {
  std::string split;
  std::vector<ThresholdRow> rows;  // default_thresholds()
  ThresholdRow best_f1;
};
ThresholdChoice choose_threshold(const SplitEvaluation& on);

struct Misclassified {
  std::size_t index = 0;  // in the split
  int label = 0;
  double probability = 0;       // sigmoid(logit)
  bool false_positive = false;  // called the target digit, but it is not
};
// The split's errors at threshold 0.5, the most confident first (largest |logit|), at most `limit`.
std::vector<Misclassified> misclassified(const SplitEvaluation& e, std::size_t limit);

double sigmoid(double logit);

// The metrics JSON blocks of an evaluation (keys the report points at):
//   "test", "validation" (when given): to_json(BinaryMetrics) plus "split", "average_precision",
//                                      "positives", "prevalence";
//   "thresholds": {"split", "note", "rows": [{threshold, precision, recall, f1, accuracy, tp, fp,
//                 tn, fn}...], "best_f1": {...}};
//   "test_at_best_f1_threshold": the test split's row at that threshold (with its "split").
// `validation` may be null: the thresholds are then chosen on the test split, and say so.
nlohmann::json evaluation_json(const SplitEvaluation& test, const SplitEvaluation* validation);

nlohmann::json to_json(const ThresholdRow& r);

}  // namespace octa::report
