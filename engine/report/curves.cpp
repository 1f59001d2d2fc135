// engine/report/curves.cpp: one sort of the scores, then sweeps over the distinct scores from high
// to low: ROC, precision-recall, average precision, the best-F1 cut. Thresholds compared as logits.
#include "engine/report/curves.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/core/error.hpp"

namespace octa::report {
namespace {

double ratio(std::int64_t num, std::int64_t den) {
  return den == 0 ? 0.0 : static_cast<double>(num) / static_cast<double>(den);
}

void fill_rates(ThresholdRow& r) {
  r.precision = ratio(r.tp, r.tp + r.fp);
  r.recall = ratio(r.tp, r.tp + r.fn);
  r.f1 = ratio(2 * r.tp, 2 * r.tp + r.fp + r.fn);
  r.accuracy = ratio(r.tp + r.tn, r.tp + r.tn + r.fp + r.fn);
}

// The scores as groups of equal logits, highest first, with each group's positives and size.
struct Group {
  double logit = 0;
  std::int64_t positives = 0, count = 0;
};
struct Sweep {
  std::vector<Group> groups;
  std::int64_t positives = 0, negatives = 0;
};

Sweep sweep(std::span<const float> logits, std::span<const float> targets, bool need_both) {
  OCTA_CHECK(logits.size() == targets.size(), "curves: {} logits but {} targets", logits.size(),
             targets.size());
  OCTA_CHECK(!logits.empty(), "curves: no samples");
  Sweep s;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    OCTA_CHECK(targets[i] == 0.0f || targets[i] == 1.0f, "curves: target {} is {}, not 0 or 1", i,
               targets[i]);
    OCTA_CHECK(!std::isnan(logits[i]), "curves: logit {} is NaN", i);
    (targets[i] == 1.0f ? s.positives : s.negatives) += 1;
  }
  OCTA_CHECK(!need_both || (s.positives > 0 && s.negatives > 0),
             "curves: need both classes ({} positives, {} negatives)", s.positives, s.negatives);
  std::vector<std::size_t> order(logits.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return logits[a] > logits[b]; });
  for (const std::size_t i : order) {
    if (s.groups.empty() || static_cast<double>(logits[i]) != s.groups.back().logit) {
      s.groups.push_back({static_cast<double>(logits[i]), 0, 0});
    }
    s.groups.back().count += 1;
    if (targets[i] == 1.0f) s.groups.back().positives += 1;
  }
  return s;
}

}  // namespace

RocCurve roc_curve(std::span<const float> logits, std::span<const float> targets) {
  const Sweep s = sweep(logits, targets, true);
  RocCurve c;
  c.points.push_back({0.0, 0.0});
  std::int64_t tp = 0, fp = 0;
  for (const Group& g : s.groups) {
    tp += g.positives;
    fp += g.count - g.positives;
    const CurvePoint p{ratio(fp, s.negatives), ratio(tp, s.positives)};
    const CurvePoint& q = c.points.back();
    c.auc += (p.x - q.x) * (p.y + q.y) / 2.0;
    c.points.push_back(p);
  }
  return c;
}

PrCurve pr_curve(std::span<const float> logits, std::span<const float> targets) {
  const Sweep s = sweep(logits, targets, true);
  PrCurve c;
  c.prevalence = ratio(s.positives, s.positives + s.negatives);
  std::int64_t tp = 0, called = 0;
  double last_recall = 0.0;
  for (const Group& g : s.groups) {
    tp += g.positives;
    called += g.count;
    const CurvePoint p{ratio(tp, s.positives), ratio(tp, called)};
    c.average_precision += (p.x - last_recall) * p.y;
    last_recall = p.x;
    c.points.push_back(p);
  }
  return c;
}

double threshold_logit(double t) {
  OCTA_CHECK(t > 0.0 && t < 1.0, "threshold {} is not a probability strictly between 0 and 1", t);
  return std::log(t) - std::log1p(-t);
}

ThresholdRow at_threshold(std::span<const float> logits, std::span<const float> targets,
                          double threshold) {
  OCTA_CHECK(logits.size() == targets.size(), "at_threshold: {} logits but {} targets",
             logits.size(), targets.size());
  const double cut = threshold_logit(threshold);
  ThresholdRow r;
  r.threshold = threshold;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    const bool predicted = static_cast<double>(logits[i]) > cut;
    const bool actual = targets[i] == 1.0f;
    if (predicted && actual) ++r.tp;
    if (predicted && !actual) ++r.fp;
    if (!predicted && !actual) ++r.tn;
    if (!predicted && actual) ++r.fn;
  }
  fill_rates(r);
  return r;
}

std::vector<ThresholdRow> threshold_table(std::span<const float> logits,
                                          std::span<const float> targets,
                                          std::span<const double> thresholds) {
  std::vector<ThresholdRow> rows;
  for (const double t : thresholds) rows.push_back(at_threshold(logits, targets, t));
  return rows;
}

std::vector<double> default_thresholds() {
  std::vector<double> t{0.01};
  for (int k = 1; k <= 19; ++k) t.push_back(k / 20.0);
  t.push_back(0.99);
  return t;
}

ThresholdRow best_f1_threshold(std::span<const float> logits, std::span<const float> targets) {
  const Sweep s = sweep(logits, targets, false);
  ThresholdRow best;
  best.f1 = -1.0;
  std::int64_t tp = 0, fp = 0;
  for (std::size_t k = 0; k < s.groups.size(); ++k) {
    tp += s.groups[k].positives;
    fp += s.groups[k].count - s.groups[k].positives;
    ThresholdRow r;
    r.tp = tp;
    r.fp = fp;
    r.fn = s.positives - tp;
    r.tn = s.negatives - fp;
    fill_rates(r);
    if (r.f1 > best.f1) {
      const double below =
          k + 1 < s.groups.size() ? s.groups[k + 1].logit : s.groups[k].logit - 2.0;
      const double cut = (s.groups[k].logit + below) / 2.0;
      // Kept strictly inside (0, 1), where a probability threshold is meaningful, even for
      // scores so extreme that sigmoid rounds to 0 or 1 in double.
      r.threshold = std::clamp(1.0 / (1.0 + std::exp(-cut)), 1e-15, 1.0 - 1e-15);
      best = r;
    }
  }
  return best;
}

std::vector<CurvePoint> thin_curve(const std::vector<CurvePoint>& points, double step) {
  if (points.size() <= 2) return points;
  std::vector<CurvePoint> out{points.front()};
  for (std::size_t i = 1; i + 1 < points.size(); ++i) {
    const CurvePoint& last = out.back();
    if (std::abs(points[i].x - last.x) >= step || std::abs(points[i].y - last.y) >= step) {
      out.push_back(points[i]);
    }
  }
  out.push_back(points.back());
  return out;
}

}  // namespace octa::report
