// engine/predict/results.cpp: the terminal table and the JSON of a predict run.
#include "engine/predict/results.hpp"

#include <algorithm>

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
};

Summary summarise(const PredictRun& run) {
  Summary s;
  for (std::size_t i = 0; i < run.inputs.size(); ++i) {
    if (!run.inputs[i].ok()) continue;
    ++s.predicted;
    const bool yes = run.verdict(i);
    if (yes) ++s.positive;
    if (run.inputs[i].label) {
      ++s.labelled;
      if (yes == (*run.inputs[i].label == run.target_digit)) ++s.correct;
    }
  }
  return s;
}

}  // namespace

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
  const std::string digit = std::to_string(run.target_digit);
  const std::string question = fmt::format("a{} {}?", run.target_digit == 8 ? "n" : "", digit);
  std::string t;
  t += row(fmt::format("{:<{}}  {:>9}  {:<10}{}", "input", w, fmt::format("P({})", digit), question,
                       any_label ? "  label" : ""));
  for (std::size_t i = 0; i < run.inputs.size(); ++i) {
    const PredictInput& in = run.inputs[i];
    if (!in.ok()) continue;
    std::string label;
    if (any_label) label = in.label ? fmt::format("  {}", *in.label) : "  -";
    t += row(fmt::format("{:<{}}  {:>9.4f}  {:<10}{}", fit(in.name, w), w, run.probability(i),
                         run.verdict(i) ? "yes" : "no", label));
  }
  const Summary s = summarise(run);
  t += fmt::format("{} predicted ({} yes, {} no), {} failed; \"yes\" when P({}) > {}; {} on {}",
                   s.predicted, s.positive, s.predicted - s.positive, run.failed(), digit,
                   run.threshold, run.model, run.device);
  if (s.labelled > 0) {
    t += fmt::format("; accuracy on the {} labelled: {:.2f}%", s.labelled,
                     100.0 * static_cast<double>(s.correct) / static_cast<double>(s.labelled));
  }
  t += "\n";
  return t;
}

nlohmann::json to_json(const PredictRun& run) {
  nlohmann::json j;
  j["model"] = run.model;
  j["device"] = run.device;
  j["threshold"] = run.threshold;
  j["target_digit"] = run.target_digit;
  j["preprocessing"] = run.raw ? "raw" : "mnist";
  j["predictions"] = nlohmann::json::array();
  j["errors"] = nlohmann::json::array();
  for (std::size_t i = 0; i < run.inputs.size(); ++i) {
    const PredictInput& in = run.inputs[i];
    if (!in.ok()) {
      j["errors"].push_back({{"input", in.name}, {"error", in.error}});
      continue;
    }
    nlohmann::json p = {{"input", in.name},
                        {"kind", input_kind_name(in.kind)},
                        {"logit", run.logits[i]},
                        {"probability", run.probability(i)},
                        {"is_target", run.verdict(i)},
                        {"inverted", in.inverted}};
    if (in.label) p["label"] = *in.label;
    if (i < run.saved.size() && !run.saved[i].empty()) p["preprocessed"] = run.saved[i];
    j["predictions"].push_back(p);
  }
  const Summary s = summarise(run);
  j["summary"] = {{"inputs", run.inputs.size()},
                  {"predicted", s.predicted},
                  {"failed", run.failed()},
                  {"positive", s.positive},
                  {"labelled", s.labelled}};
  if (s.labelled > 0) {
    j["summary"]["correct"] = s.correct;
    j["summary"]["accuracy"] = static_cast<double>(s.correct) / static_cast<double>(s.labelled);
  }
  return j;
}

}  // namespace octa::predict
