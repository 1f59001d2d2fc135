// engine/report/curves.hpp: what a binary classifier's scores say beyond one threshold: the ROC and
// precision-recall curves with their areas (ROC-AUC, average precision), the confusion counts at
// any probability threshold, a table of thresholds, and the threshold of best F1.
//
// Scores are logits; a probability is sigmoid(logit). "Positive at threshold t" means probability
// > t, compared in logit space (logit > log(t / (1 - t))), so t = 0.5 is exactly `logit > 0`, the
// rule of engine/train/metrics.hpp, with no rounding of sigmoid in between.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace octa::report {

struct CurvePoint {
  double x = 0, y = 0;
};

// One point per distinct score, from the highest score down (ties move together).
struct RocCurve {
  std::vector<CurvePoint> points;  // (false positive rate, true positive rate), from (0,0) to (1,1)
  double auc = 0;                  // trapezoidal area: equals the rank (Mann-Whitney) AUC
};
struct PrCurve {
  std::vector<CurvePoint> points;  // (recall, precision) at each distinct score, high to low
  double average_precision = 0;    // sum over the points of (R_k - R_{k-1}) * P_k (as sklearn)
  double prevalence = 0;           // positives / count: a random scorer's precision
};

// Both throw octa::Error unless the spans have one length, targets are 0/1, no logit is NaN, and
// both classes are present.
RocCurve roc_curve(std::span<const float> logits, std::span<const float> targets);
PrCurve pr_curve(std::span<const float> logits, std::span<const float> targets);

struct ThresholdRow {
  double threshold = 0.5;  // probability
  std::int64_t tp = 0, fp = 0, tn = 0, fn = 0;
  double precision = 0, recall = 0, f1 = 0, accuracy = 0;  // 0 where undefined (as metrics.hpp)
};

// The probability threshold t as a logit: log(t / (1 - t)); t in (0, 1).
double threshold_logit(double t);

ThresholdRow at_threshold(std::span<const float> logits, std::span<const float> targets,
                          double threshold);
std::vector<ThresholdRow> threshold_table(std::span<const float> logits,
                                          std::span<const float> targets,
                                          std::span<const double> thresholds);
// 0.01, 0.05, 0.10, ..., 0.95, 0.99.
std::vector<double> default_thresholds();

// The cut with the highest F1 over every distinct score (ties: the higher threshold). Its
// threshold lies halfway, in logit space, between the lowest score called positive and the next
// lower score, so a small change of the model's scores does not flip the row.
ThresholdRow best_f1_threshold(std::span<const float> logits, std::span<const float> targets);

// Fewer points that draw the same line: keeps the first and last points and every point that is at
// least `step` away (in x or y) from the last one kept. For plotting only; areas use every point.
std::vector<CurvePoint> thin_curve(const std::vector<CurvePoint>& points, double step = 0.002);

}  // namespace octa::report
