// engine/train/multiclass_metrics.cpp: the confusion matrix and everything derived from it, top-2
// accuracy, and the mean cross-entropy (through the CPU reference's softmax_cross_entropy).
#include "engine/train/multiclass_metrics.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "engine/core/error.hpp"
#include "engine/cpu/ops.hpp"

namespace octa {
namespace {

double ratio(std::int64_t num, std::int64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

double harmonic(double p, double r) {
  return p + r == 0.0 ? 0.0 : 2.0 * p * r / (p + r);
}

// The first maximum of row[0..K) except `skip` (-1: none).
int first_max(const float* row, int K, int skip) {
  int best = -1;
  for (int k = 0; k < K; ++k) {
    if (k == skip) continue;
    if (best < 0 || row[k] > row[best]) best = k;
  }
  return best;
}

}  // namespace

MulticlassMetrics compute_multiclass_metrics(std::span<const float> logits,
                                             std::span<const float> targets, int num_classes,
                                             std::vector<std::string> class_names) {
  const char* op = "compute_multiclass_metrics";
  OCTA_CHECK(num_classes >= 2, "{}: {} classes; at least 2 are needed", op, num_classes);
  const auto K = static_cast<std::size_t>(num_classes);
  OCTA_CHECK(!targets.empty(), "{}: no samples", op);
  OCTA_CHECK(logits.size() == targets.size() * K, "{}: {} logits for {} targets of {} classes", op,
             logits.size(), targets.size(), num_classes);
  OCTA_CHECK(class_names.empty() || class_names.size() == K, "{}: {} class names for {} classes",
             op, class_names.size(), num_classes);
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const float y = targets[i];
    OCTA_CHECK(y >= 0.0f && y < static_cast<float>(num_classes) && y == std::floor(y),
               "{}: target {} is {}, not a class index 0..{}", op, i, y, num_classes - 1);
  }
  for (std::size_t i = 0; i < logits.size(); ++i) {
    OCTA_CHECK(!std::isnan(logits[i]), "{}: logit {} of sample {} is NaN", op, i % K, i / K);
  }

  MulticlassMetrics m;
  m.count = static_cast<std::int64_t>(targets.size());
  m.num_classes = num_classes;
  if (class_names.empty()) {
    for (int k = 0; k < num_classes; ++k) class_names.push_back(std::to_string(k));
  }
  m.class_names = std::move(class_names);
  m.mean_loss = cpu::softmax_cross_entropy<float>(nullptr, logits.data(), targets.data(),
                                                  static_cast<int>(targets.size()), num_classes,
                                                  nullptr, 0.0f);
  m.confusion.assign(K * K, 0);
  std::int64_t correct = 0, top2 = 0;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const float* row = logits.data() + i * K;
    const int y = static_cast<int>(targets[i]);
    const int first = first_max(row, num_classes, -1);
    const int second = first_max(row, num_classes, first);
    ++m.confusion[static_cast<std::size_t>(y) * K + static_cast<std::size_t>(first)];
    correct += first == y ? 1 : 0;
    top2 += first == y || second == y ? 1 : 0;
  }
  m.accuracy = ratio(correct, m.count);
  m.top2_accuracy = ratio(top2, m.count);

  m.per_class.resize(K);
  int present = 0;
  std::int64_t most = -1;
  for (int k = 0; k < num_classes; ++k) {
    ClassMetrics& c = m.per_class[static_cast<std::size_t>(k)];
    for (int j = 0; j < num_classes; ++j) {
      c.support += m.at(k, j);
      c.predicted += m.at(j, k);
    }
    c.precision = ratio(m.at(k, k), c.predicted);
    c.recall = ratio(m.at(k, k), c.support);
    c.f1 = harmonic(c.precision, c.recall);
    if (c.support > most) {
      most = c.support;
      m.majority_class = k;
    }
    if (c.support == 0 && c.predicted == 0) continue;
    ++present;
    m.macro_precision += c.precision;
    m.macro_recall += c.recall;
    m.macro_f1 += c.f1;
  }
  m.macro_precision /= present;
  m.macro_recall /= present;
  m.macro_f1 /= present;
  m.baseline_accuracy = ratio(most, m.count);
  return m;
}

nlohmann::json to_json(const MulticlassMetrics& m) {
  nlohmann::json classes = nlohmann::json::array();
  for (int k = 0; k < m.num_classes; ++k) {
    const ClassMetrics& c = m.per_class[static_cast<std::size_t>(k)];
    classes.push_back({{"index", k},
                       {"name", m.class_names[static_cast<std::size_t>(k)]},
                       {"support", c.support},
                       {"predicted", c.predicted},
                       {"precision", c.precision},
                       {"recall", c.recall},
                       {"f1", c.f1}});
  }
  nlohmann::json counts = nlohmann::json::array();
  for (int a = 0; a < m.num_classes; ++a) {
    nlohmann::json row = nlohmann::json::array();
    for (int p = 0; p < m.num_classes; ++p) row.push_back(m.at(a, p));
    counts.push_back(std::move(row));
  }
  return {{"count", m.count},
          {"num_classes", m.num_classes},
          {"accuracy", m.accuracy},
          {"top2_accuracy", m.top2_accuracy},
          {"macro_precision", m.macro_precision},
          {"macro_recall", m.macro_recall},
          {"macro_f1", m.macro_f1},
          {"baseline_accuracy", m.baseline_accuracy},
          {"majority_class", m.majority_class},
          {"mean_loss", m.mean_loss},
          {"classes", std::move(classes)},
          {"confusion_matrix",
           {{"rows", "actual"}, {"columns", "predicted"}, {"counts", std::move(counts)}}}};
}

std::string format_report(const MulticlassMetrics& m) {
  std::string r;
  r += fmt::format("{} images, {} classes, mean cross-entropy {:.4f}\n", m.count, m.num_classes,
                   m.mean_loss);
  r += fmt::format("accuracy        {:.4f}   (majority baseline {:.4f}: always \"{}\")\n",
                   m.accuracy, m.baseline_accuracy,
                   m.class_names[static_cast<std::size_t>(m.majority_class)]);
  r += fmt::format("top-2 accuracy  {:.4f}\n", m.top2_accuracy);
  r += fmt::format("macro-F1        {:.4f}   (macro precision {:.4f}, macro recall {:.4f})\n",
                   m.macro_f1, m.macro_precision, m.macro_recall);

  // Row labels "k name", as wide as the widest.
  std::vector<std::string> labels;
  std::size_t w0 = std::string("class").size();
  for (int k = 0; k < m.num_classes; ++k) {
    const std::string& name = m.class_names[static_cast<std::size_t>(k)];
    labels.push_back(name == std::to_string(k) ? name : fmt::format("{} {}", k, name));
    w0 = std::max(w0, labels.back().size());
  }
  r += "per class:\n";
  r += fmt::format("  {:<{}}  {:>7}  {:>9}  {:>6}  {:>6}\n", "class", w0, "support", "precision",
                   "recall", "F1");
  for (int k = 0; k < m.num_classes; ++k) {
    const ClassMetrics& c = m.per_class[static_cast<std::size_t>(k)];
    r += fmt::format("  {:<{}}  {:>7}  {:>9.4f}  {:>6.4f}  {:>6.4f}\n",
                     labels[static_cast<std::size_t>(k)], w0, c.support, c.precision, c.recall,
                     c.f1);
  }

  // Columns by index, each as wide as its largest count (and its index).
  std::vector<std::size_t> widths;
  for (int p = 0; p < m.num_classes; ++p) {
    std::size_t w = std::to_string(p).size();
    for (int a = 0; a < m.num_classes; ++a) w = std::max(w, std::to_string(m.at(a, p)).size());
    widths.push_back(w);
  }
  r += "confusion matrix (rows: actual class, columns: predicted class):\n";
  r += fmt::format("  {:<{}}", "", w0);
  for (int p = 0; p < m.num_classes; ++p) {
    r += fmt::format("  {:>{}}", p, widths[static_cast<std::size_t>(p)]);
  }
  r += "\n";
  for (int a = 0; a < m.num_classes; ++a) {
    r += fmt::format("  {:<{}}", labels[static_cast<std::size_t>(a)], w0);
    for (int p = 0; p < m.num_classes; ++p) {
      r += fmt::format("  {:>{}}", m.at(a, p), widths[static_cast<std::size_t>(p)]);
    }
    r += "\n";
  }
  return r;
}

}  // namespace octa
