// engine/report/class_report.hpp: the report of a K-class training run (--task multiclass, "which
// digit is it?"): accuracy, top-2 accuracy and the macro averages, a table per class (support,
// precision, recall, F1), the KxK confusion matrix with class names on both axes and each cell
// shaded by its share of the row, the pairs of classes most often confused, the training curves,
// the most confident mistakes with their true and predicted class, configuration and timings.
// Every figure comes from the run's metrics JSON (its "test" block is to_json(MulticlassMetrics))
// and is keyed to it (page.hpp); the images and their probabilities from the test logits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/data/mnist.hpp"
#include "engine/report/page.hpp"

namespace octa::report {

struct ClassReportInputs {
  // The metrics JSON as train_gpu writes it for --task multiclass: "config" (num_classes,
  // class_names, ...), "epochs", "test" and, with --val-size, "validation" (to_json of
  // MulticlassMetrics), "device", "model", "timings" where known.
  const nlohmann::json* metrics = nullptr;
  std::span<const float> test_logits;        // (N, K), the test split's, in its order
  const data::Split* test_images = nullptr;  // the test split itself, for the gallery
  std::string made_by;                       // footer: e.g. "train_gpu" or "octa_report"
  std::vector<std::string> warnings;         // shown at the top, e.g. figures that differ
  std::size_t max_misclassified = 120;       // tiles in the gallery at most
};

Page build_class_page(const ClassReportInputs& in);

struct ClassError {
  std::size_t index = 0;   // in the split
  int actual = 0;          // the true class
  int predicted = 0;       // the argmax (the first maximum, as the metrics)
  double probability = 0;  // softmax probability of the predicted class
};
// The images whose argmax is not their class, the most confident first (highest probability of
// the wrong class; equal ones in split order), at most `limit`. logits: (N, K). Throws octa::Error
// on a size mismatch or a label that is no class.
std::vector<ClassError> most_confident_errors(std::span<const float> logits,
                                              std::span<const std::uint8_t> labels, int num_classes,
                                              std::size_t limit);

}  // namespace octa::report
