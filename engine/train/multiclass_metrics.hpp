// engine/train/multiclass_metrics.hpp: metrics for K classes, from logits: accuracy (prediction =
// argmax, the first maximum on ties, as torch.argmax), top-2 accuracy, per-class precision, recall
// and F1, their macro averages, the KxK confusion matrix, the majority baseline and the mean
// softmax cross-entropy; as JSON and as a terminal report.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace octa {

struct ClassMetrics {
  std::int64_t support = 0;    // test images of this class
  std::int64_t predicted = 0;  // images predicted as this class
  double precision = 0;        // correct / predicted; 0 when nothing is predicted as it
  double recall = 0;           // correct / support; 0 when the class has no images
  double f1 = 0;               // harmonic mean of the two; 0 when both are 0
};

struct MulticlassMetrics {
  std::int64_t count = 0;
  int num_classes = 0;
  std::vector<std::string> class_names;  // num_classes entries
  // confusion[actual * num_classes + predicted]: rows are the true class, columns the prediction.
  std::vector<std::int64_t> confusion;
  std::vector<ClassMetrics> per_class;
  double accuracy = 0;
  double top2_accuracy = 0;  // the target among the two largest logits (argmax, then the argmax
                             // of the others, first maximum on ties)
  // Means over the classes that occur among the targets or the predictions (scikit-learn's
  // default set of labels): a class with neither is left out rather than counted as 0.
  double macro_precision = 0, macro_recall = 0, macro_f1 = 0;
  double baseline_accuracy = 0;  // always predicting the most frequent class
  int majority_class = 0;        // that class (the lowest index among equals)
  double mean_loss = 0;          // mean softmax cross-entropy (no weights, no smoothing)

  std::int64_t at(int actual, int predicted) const {
    return confusion[static_cast<std::size_t>(actual) * static_cast<std::size_t>(num_classes) +
                     static_cast<std::size_t>(predicted)];
  }
};

// logits: (N, K) row-major; targets: (N) class indices 0..K-1 held as floats (the batch
// pipeline's targets). class_names: K names, or empty for "0".."K-1". Throws octa::Error for a
// size mismatch, no samples, K < 2, a target that is no class index, or a NaN logit (a diverged
// model must be reported, not scored).
MulticlassMetrics compute_multiclass_metrics(std::span<const float> logits,
                                             std::span<const float> targets, int num_classes,
                                             std::vector<std::string> class_names = {});

// {"count", "num_classes", "accuracy", "top2_accuracy", "macro_precision", "macro_recall",
//  "macro_f1", "baseline_accuracy", "majority_class", "mean_loss",
//  "classes": [{"index", "name", "support", "predicted", "precision", "recall", "f1"}, ...],
//  "confusion_matrix": {"rows": "actual", "columns": "predicted", "counts": [[...], ...]}}
nlohmann::json to_json(const MulticlassMetrics& m);

// A multi-line report: accuracy beside the baseline, top-2, macro averages, a table per class and
// the confusion matrix.
std::string format_report(const MulticlassMetrics& m);

}  // namespace octa
