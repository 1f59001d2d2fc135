// engine/predict/results.hpp: predict's answers, as a table for the terminal and as JSON. A binary
// model (one logit): for each input the probability that it is the target class (sigmoid of the
// logit) and the verdict at the threshold (probability > threshold). A model of K classes: the
// most probable class (argmax of the logits), its probability and the runner-up (softmax). Each
// failed input with its error; a summary (with the accuracy where labels are known).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/predict/inputs.hpp"

namespace octa::predict {

struct PredictRun {
  std::vector<PredictInput> inputs;
  std::vector<float> logits;       // num_classes per input, input by input; unused for failed ones
  std::vector<std::string> saved;  // per input: where --save-preprocessed wrote it, or empty
  int num_classes = 1;             // 1: the binary task (one logit); K: one logit per class
  std::vector<std::string> class_names;  // the dataset's; empty: numbered (MNIST's digits)
  double threshold = 0.5;                // binary only
  int target_digit = 8;                  // binary only: the class recognised
  bool raw = false;
  std::string model;   // e.g. "model A from runs/model_a.safetensors"
  std::string device;  // the backend's description

  bool multiclass() const { return num_classes > 1; }
  std::string class_name(int k) const;  // its name, or its number where the classes have none
  std::size_t failed() const;
  // Binary.
  bool verdict(std::size_t i) const;        // probability > threshold (compared as logits)
  double probability(std::size_t i) const;  // sigmoid(logit)
  // K classes.
  int predicted_class(std::size_t i) const;                      // argmax (the first of ties)
  std::vector<double> class_probabilities(std::size_t i) const;  // softmax of the K logits
};

// Rows: input, probability, verdict, label (when any input has one), then a summary line that
// counts the failed inputs (their errors are the caller's to print, e.g. on stderr).
std::string format_table(const PredictRun& run);

// Binary: {"task": "binary", "model", "device", "threshold", "target_digit",
//  "target_class_name"? (where the classes have names), "preprocessing": "mnist"|"raw",
//  "predictions": [{"input", "kind", "logit", "probability", "is_target", "label"?, "inverted",
//                   "preprocessed"?}],
//  "errors": [{"input", "error"}],
//  "summary": {"inputs", "predicted", "failed", "positive", "labelled", "correct"?, "accuracy"?}}
// K classes: {"task": "multiclass", "num_classes", "class_names" (K, numbers where unnamed),
//  "model", "device", "preprocessing",
//  "predictions": [{"input", "kind", "class", "class_name", "probability", "probabilities" [K],
//                   "logits" [K], "label"?, "inverted", "preprocessed"?}],
//  "errors": [...], "summary": {"inputs", "predicted", "failed", "per_class" [K counts],
//  "labelled", "correct"?, "accuracy"?}}
nlohmann::json to_json(const PredictRun& run);

}  // namespace octa::predict
