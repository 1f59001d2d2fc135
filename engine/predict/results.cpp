// engine/predict/results.cpp: the terminal table and the JSON of a predict run.
#include "engine/predict/results.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string_view>

#include <fmt/format.h>

#include "engine/report/curves.hpp"
#include "engine/report/evaluation.hpp"

namespace octa::predict {
namespace {

constexpr std::size_t kMaxNameWidth = 56;

// Long paths keep their end (the file name), with "..." in front.
std::string fit(const std::string& s, std::size_t width) {
  if (s.size() <= width) return s;
  return "..." + s.substr(s.size() - (width - 3));
}

// A table row without the padding of an empty last column.
std::string row(std::string s) {
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s + "\n";
}

struct Summary {
  std::size_t predicted = 0, positive = 0, labelled = 0, correct = 0;
  std::vector<std::size_t> per_class;  // K classes: how many inputs each was predicted for
};

Summary summarise(const PredictRun& run) {
  Summary s;
  if (run.multiclass()) s.per_class.assign(static_cast<std::size_t>(run.num_classes), 0);
  for (std::size_t i = 0; i < run.inputs.size(); ++i) {
    if (!run.inputs[i].ok()) continue;
    ++s.predicted;
    bool right = false;
    if (run.multiclass()) {
      const int k = run.predicted_class(i);
      ++s.per_class[static_cast<std::size_t>(k)];
      right = run.inputs[i].label && *run.inputs[i].label == k;
    } else {
      const bool yes = run.verdict(i);
      if (yes) ++s.positive;
      right = run.inputs[i].label && yes == (*run.inputs[i].label == run.target_digit);
    }
    if (run.inputs[i].label) {
      ++s.labelled;
      if (right) ++s.correct;
    }
  }
  return s;
}

// "an 8?", "a 3?", "a Bag?", "an Ankle boot?": the article as the name is spoken.
std::string question(const std::string& name) {
  const char c = name.empty() ? ' ' : static_cast<char>(std::tolower(name[0]));
  const bool vowel =
      std::string_view("aeiou8").find(c) != std::string_view::npos || name == "11" || name == "18";
  return fmt::format("{} {}?", vowel ? "an" : "a", name);
}

std::string accuracy_text(const Summary& s) {
  if (s.labelled == 0) return "";
  return fmt::format("; accuracy on the {} labelled: {:.2f}%", s.labelled,
                     100.0 * static_cast<double>(s.correct) / static_cast<double>(s.labelled));
}

std::string label_text(const PredictRun& run, const PredictInput& in, bool any_label) {
  if (!any_label) return "";
  if (!in.label) return "  -";
  const bool named = !run.class_names.empty();
  return "  " + (named && *in.label < static_cast<int>(run.class_names.size())
                     ? run.class_name(*in.label)
                     : std::to_string(*in.label));
}

// K classes: input, the most probable class, its probability, the runner-up, the label.
std::string format_classes(const PredictRun& run, std::size_t w, bool any_label) {
  std::size_t cw = std::string("class").size();
  for (int k = 0; k < run.num_classes; ++k) cw = std::max(cw, run.class_name(k).size());
  std::string t = row(fmt::format("{:<{}}  {:<{}}  {:>7}  {:<{}}  {:>7}{}", "input", w, "class", cw,
                                  "P", "runner-up", cw, "P", any_label ? "  label" : ""));
  for (std::size_t i = 0; i < run.inputs.size(); ++i) {
    const PredictInput& in = run.inputs[i];
    if (!in.ok()) continue;
    const std::vector<double> p = run.class_probabilities(i);
    const int first = run.predicted_class(i);
    int second = first == 0 ? 1 : 0;
    for (int k = 0; k < run.num_classes; ++k) {
      if (k != first && p[static_cast<std::size_t>(k)] > p[static_cast<std::size_t>(second)]) {
        second = k;
      }
    }
    t += row(fmt::format("{:<{}}  {:<{}}  {:>7.4f}  {:<{}}  {:>7.4f}{}", fit(in.name, w), w,
                         run.class_name(first), cw, p[static_cast<std::size_t>(first)],
                         run.class_name(second), cw, p[static_cast<std::size_t>(second)],
                         label_text(run, in, any_label)));
  }
  const Summary s = summarise(run);
  t += fmt::format("{} predicted, {} failed; each the most probable of {} classes; {} on {}{}\n",
                   s.predicted, run.failed(), run.num_classes, run.model, run.device,
                   accuracy_text(s));
  return t;
}

}  // namespace

std::string PredictRun::class_name(int k) const {
  const auto i = static_cast<std::size_t>(k);
  return i < class_names.size() ? class_names[i] : std::to_string(k);
}

int PredictRun::predicted_class(std::size_t i) const {
  const auto K = static_cast<std::size_t>(num_classes);
  const float* z = logits.data() + i * K;
  return static_cast<int>(std::max_element(z, z + K) - z);
}

std::vector<double> PredictRun::class_probabilities(std::size_t i) const {
  const auto K = static_cast<std::size_t>(num_classes);
  const float* z = logits.data() + i * K;
  const double top = *std::max_element(z, z + K);
  std::vector<double> p(K);
  double sum = 0.0;
  for (std::size_t k = 0; k < K; ++k) sum += p[k] = std::exp(static_cast<double>(z[k]) - top);
  for (double& v : p) v /= sum;
  return p;
}

std::size_t PredictRun::failed() const {
  return static_cast<std::size_t>(
      std::count_if(inputs.begin(), inputs.end(), [](const PredictInput& in) { return !in.ok(); }));
}

bool PredictRun::verdict(std::size_t i) const {
  return static_cast<double>(logits[i]) > report::threshold_logit(threshold);
}

double PredictRun::probability(std::size_t i) const {
  return report::sigmoid(logits[i]);
}

std::string format_table(const PredictRun& run) {
  const bool any_label = std::any_of(run.inputs.begin(), run.inputs.end(),
                                     [](const PredictInput& in) { return in.label.has_value(); });
  std::size_t w = std::string("input").size();
  for (const PredictInput& in : run.inputs) {
    if (in.ok()) w = std::max(w, std::min(in.name.size(), kMaxNameWidth));
  }
  if (run.multiclass()) return format_classes(run, w, any_label);
  const std::string name = run.class_name(run.target_digit);
  const std::string p_name = fmt::format("P({})", name), asked = question(name);
  const std::size_t pw = std::max<std::size_t>(9, p_name.size()),
                    qw = std::max<std::size_t>(10, asked.size() + 2);
  std::string t;
  t += row(fmt::format("{:<{}}  {:>{}}  {:<{}}{}", "input", w, p_name, pw, asked, qw,
                       any_label ? "  label" : ""));
  for (std::size_t i = 0; i < run.inputs.size(); ++i) {
    const PredictInput& in = run.inputs[i];
    if (!in.ok()) continue;
    t += row(fmt::format("{:<{}}  {:>{}.4f}  {:<{}}{}", fit(in.name, w), w, run.probability(i), pw,
                         run.verdict(i) ? "yes" : "no", qw, label_text(run, in, any_label)));
  }
  const Summary s = summarise(run);
  t += fmt::format("{} predicted ({} yes, {} no), {} failed; \"yes\" when {} > {}; {} on {}{}\n",
                   s.predicted, s.positive, s.predicted - s.positive, run.failed(), p_name,
                   run.threshold, run.model, run.device, accuracy_text(s));
  return t;
}

nlohmann::json to_json(const PredictRun& run) {
  nlohmann::json j;
  j["task"] = run.multiclass() ? "multiclass" : "binary";
  j["model"] = run.model;
  j["device"] = run.device;
  if (run.multiclass()) {
    j["num_classes"] = run.num_classes;
    j["class_names"] = nlohmann::json::array();
    for (int k = 0; k < run.num_classes; ++k) j["class_names"].push_back(run.class_name(k));
  } else {
    j["threshold"] = run.threshold;
    j["target_digit"] = run.target_digit;
    if (!run.class_names.empty()) j["target_class_name"] = run.class_name(run.target_digit);
  }
  j["preprocessing"] = run.raw ? "raw" : "mnist";
  j["predictions"] = nlohmann::json::array();
  j["errors"] = nlohmann::json::array();
  for (std::size_t i = 0; i < run.inputs.size(); ++i) {
    const PredictInput& in = run.inputs[i];
    if (!in.ok()) {
      j["errors"].push_back({{"input", in.name}, {"error", in.error}});
      continue;
    }
    nlohmann::json p = {{"input", in.name}, {"kind", input_kind_name(in.kind)}};
    if (run.multiclass()) {
      const auto K = static_cast<std::size_t>(run.num_classes);
      const std::vector<double> probabilities = run.class_probabilities(i);
      const int k = run.predicted_class(i);
      p["class"] = k;
      p["class_name"] = run.class_name(k);
      p["probability"] = probabilities[static_cast<std::size_t>(k)];
      p["probabilities"] = probabilities;
      p["logits"] = std::vector<float>(run.logits.begin() + static_cast<std::ptrdiff_t>(i * K),
                                       run.logits.begin() + static_cast<std::ptrdiff_t>(i * K + K));
    } else {
      p["logit"] = run.logits[i];
      p["probability"] = run.probability(i);
      p["is_target"] = run.verdict(i);
    }
    p["inverted"] = in.inverted;
    if (in.label) p["label"] = *in.label;
    if (i < run.saved.size() && !run.saved[i].empty()) p["preprocessed"] = run.saved[i];
    j["predictions"].push_back(p);
  }
  const Summary s = summarise(run);
  j["summary"] = {{"inputs", run.inputs.size()},
                  {"predicted", s.predicted},
                  {"failed", run.failed()},
                  {"labelled", s.labelled}};
  if (run.multiclass()) {
    j["summary"]["per_class"] = s.per_class;
  } else {
    j["summary"]["positive"] = s.positive;
  }
  if (s.labelled > 0) {
    j["summary"]["correct"] = s.correct;
    j["summary"]["accuracy"] = static_cast<double>(s.correct) / static_cast<double>(s.labelled);
  }
  return j;
}

}  // namespace octa::predict
