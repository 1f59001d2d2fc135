// engine/train/metrics.hpp: binary-classification metrics for "is it an 8?", from logits.
// A prediction is `logit > 0` (never sigmoid-of-sigmoid, the tutorial's bug); the positive class
// is the target digit. Also the majority baseline: the accuracy of always answering "not 8".
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace octa {

struct BinaryMetrics {
  std::int64_t count = 0;
  std::int64_t tp = 0, fp = 0, tn = 0, fn = 0;  // confusion matrix
  double accuracy = 0;
  double precision = 0;  // tp / (tp + fp); 0 when nothing is predicted positive
  double recall = 0;     // tp / (tp + fn); 0 when there are no positives
  double f1 = 0;         // harmonic mean of precision and recall; 0 when both are 0
  double roc_auc = 0;    // area under the ROC curve of the logits (ties count half); NaN when
                         // only one class is present
  double baseline_accuracy = 0;  // always predicting the majority class ("not 8")
  double mean_loss = 0;          // mean BCE-with-logits over the set (pos_weight 1)
};

// logits and targets (0 or 1) of the same length.
BinaryMetrics compute_binary_metrics(std::span<const float> logits, std::span<const float> targets);

// {"count", "accuracy", "precision", "recall", "f1", "roc_auc" (null when NaN),
//  "baseline_accuracy", "mean_loss", "confusion_matrix": {"tp","fp","tn","fn"}}
nlohmann::json to_json(const BinaryMetrics& m);

// A human-readable multi-line report with the confusion matrix and the baseline beside accuracy,
// the classes named `positive` and "not-`positive`" (MNIST's "8" and "not-8", Fashion-MNIST's
// "Bag" and "not-Bag").
std::string format_report(const BinaryMetrics& m, std::string_view positive);

}  // namespace octa
