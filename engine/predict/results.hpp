// engine/predict/results.hpp: predict's answers, as a table for the terminal and as JSON: for each
// input, the probability that it is the target digit (sigmoid of the logit) and the verdict at the
// threshold (probability > threshold); each failed input with its error; a summary (with the
// accuracy where labels are known).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/predict/inputs.hpp"

namespace octa::predict {

struct PredictRun {
  std::vector<PredictInput> inputs;
  std::vector<float> logits;       // one per input; unused for failed inputs
  std::vector<std::string> saved;  // per input: where --save-preprocessed wrote it, or empty
  double threshold = 0.5;
  int target_digit = 8;
  bool raw = false;
  std::string model;   // e.g. "model A from runs/model_a.safetensors"
  std::string device;  // the backend's description

  std::size_t failed() const;
  bool verdict(std::size_t i) const;        // probability > threshold (compared as logits)
  double probability(std::size_t i) const;  // sigmoid(logit)
};

// Rows: input, probability, verdict, label (when any input has one), then a summary line that
// counts the failed inputs (their errors are the caller's to print, e.g. on stderr).
std::string format_table(const PredictRun& run);

// {"model", "device", "threshold", "target_digit", "preprocessing": "mnist"|"raw",
//  "predictions": [{"input", "kind", "logit", "probability", "is_target", "label"?, "inverted",
//                   "preprocessed"?}],
//  "errors": [{"input", "error"}],
//  "summary": {"inputs", "predicted", "failed", "positive", "labelled", "correct"?, "accuracy"?}}
nlohmann::json to_json(const PredictRun& run);

}  // namespace octa::predict
