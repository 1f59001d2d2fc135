// engine/train/metrics.cpp: confusion matrix, precision/recall/F1, rank-based ROC-AUC, majority
// baseline and mean BCE-with-logits, all from raw logits (prediction = logit > 0).
#include "engine/train/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include <fmt/format.h>

#include "engine/core/error.hpp"

namespace octa {
namespace {

// ROC-AUC as the Mann-Whitney U statistic: the probability that a random positive outscores a
// random negative, ties counting half. Average ranks make the ties exact; sorting keeps it
// O(n log n) for the 10,000-image test set.
double roc_auc(std::span<const float> logits, std::span<const float> targets, std::int64_t pos,
               std::int64_t neg) {
  if (pos == 0 || neg == 0) return std::numeric_limits<double>::quiet_NaN();
  std::vector<std::size_t> order(logits.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return logits[a] < logits[b]; });
  double positive_rank_sum = 0.0;
  std::size_t i = 0;
  while (i < order.size()) {
    std::size_t j = i;
    std::int64_t positives_in_group = 0;
    while (j < order.size() && logits[order[j]] == logits[order[i]]) {
      if (targets[order[j]] == 1.0f) ++positives_in_group;
      ++j;
    }
    // Ranks i+1 .. j (1-based) share their mean.
    const double mean_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    positive_rank_sum += mean_rank * static_cast<double>(positives_in_group);
    i = j;
  }
  const double p = static_cast<double>(pos), n = static_cast<double>(neg);
  return (positive_rank_sum - p * (p + 1.0) / 2.0) / (p * n);
}

double ratio(std::int64_t num, std::int64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

}  // namespace

BinaryMetrics compute_binary_metrics(std::span<const float> logits,
                                     std::span<const float> targets) {
  OCTA_CHECK(logits.size() == targets.size(), "compute_binary_metrics: {} logits but {} targets",
             logits.size(), targets.size());
  OCTA_CHECK(!logits.empty(), "compute_binary_metrics: no samples");
  BinaryMetrics m;
  m.count = static_cast<std::int64_t>(logits.size());
  double loss_sum = 0.0;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    const float y = targets[i];
    OCTA_CHECK(y == 0.0f || y == 1.0f, "compute_binary_metrics: target {} is {}, not 0 or 1", i, y);
    // A NaN logit would break the sort's ordering and silently count as "not 8"; a diverged model
    // must be reported, not scored.
    OCTA_CHECK(!std::isnan(logits[i]), "compute_binary_metrics: logit {} is NaN", i);
    const bool predicted = logits[i] > 0.0f;
    const bool actual = y == 1.0f;
    if (predicted && actual) ++m.tp;
    if (predicted && !actual) ++m.fp;
    if (!predicted && !actual) ++m.tn;
    if (!predicted && actual) ++m.fn;
    const double z = logits[i];
    const double yd = y;
    loss_sum += std::max(z, 0.0) - z * yd + std::log1p(std::exp(-std::abs(z)));
  }
  const std::int64_t pos = m.tp + m.fn, neg = m.tn + m.fp;
  m.accuracy = ratio(m.tp + m.tn, m.count);
  m.precision = ratio(m.tp, m.tp + m.fp);
  m.recall = ratio(m.tp, pos);
  m.f1 = (m.precision + m.recall) == 0.0 ? 0.0
                                         : 2.0 * m.precision * m.recall / (m.precision + m.recall);
  m.roc_auc = roc_auc(logits, targets, pos, neg);
  m.baseline_accuracy = ratio(std::max(pos, neg), m.count);
  m.mean_loss = loss_sum / static_cast<double>(m.count);
  return m;
}

nlohmann::json to_json(const BinaryMetrics& m) {
  nlohmann::json j;
  j["count"] = m.count;
  j["accuracy"] = m.accuracy;
  j["precision"] = m.precision;
  j["recall"] = m.recall;
  j["f1"] = m.f1;
  j["roc_auc"] = std::isnan(m.roc_auc) ? nlohmann::json(nullptr) : nlohmann::json(m.roc_auc);
  j["baseline_accuracy"] = m.baseline_accuracy;
  j["mean_loss"] = m.mean_loss;
  j["confusion_matrix"] = {{"tp", m.tp}, {"fp", m.fp}, {"tn", m.tn}, {"fn", m.fn}};
  return j;
}

std::string format_report(const BinaryMetrics& m, std::string_view positive) {
  const std::string pos(positive);
  const std::string neg = fmt::format("not-{}", positive);
  const std::string auc = std::isnan(m.roc_auc) ? std::string("n/a (only one class present)")
                                                : fmt::format("{:.4f}", m.roc_auc);
  std::string r;
  r += fmt::format("{} images, mean BCE loss {:.4f}\n", m.count, m.mean_loss);
  const bool negatives_majority = m.tn + m.fp >= m.tp + m.fn;
  r += fmt::format("accuracy   {:.4f}   (majority baseline {:.4f}: always \"{}\")\n", m.accuracy,
                   m.baseline_accuracy, negatives_majority ? neg : pos);
  r += fmt::format("precision  {:.4f}\n", m.precision);
  r += fmt::format("recall     {:.4f}\n", m.recall);
  r += fmt::format("F1         {:.4f}\n", m.f1);
  r += fmt::format("ROC-AUC    {}\n", auc);
  const std::string c1 = "predicted " + pos, c2 = "predicted " + neg;
  const std::string r1 = "actual " + pos, r2 = "actual " + neg;
  const std::size_t w0 = std::max(r1.size(), r2.size());
  const std::size_t w1 = c1.size(), w2 = c2.size();
  r += "confusion matrix:\n";
  r += fmt::format("  {:<{}}  {:>{}}  {:>{}}\n", "", w0, c1, w1, c2, w2);
  r += fmt::format("  {:<{}}  {:>{}}  {:>{}}\n", r1, w0, m.tp, w1, m.fn, w2);
  r += fmt::format("  {:<{}}  {:>{}}  {:>{}}\n", r2, w0, m.fp, w1, m.tn, w2);
  return r;
}

}  // namespace octa
