// tests/test_metrics.cpp: binary metrics checked against hand-computed confusion matrices and
// ROC-AUCs (ties included), the 90.26% "always not 8" baseline, and the tutorial's sigmoid bug.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/train/metrics.hpp"
#include "tests/support/compare.hpp"

using Catch::Matchers::Contains;
using octa::compute_binary_metrics;

namespace {

double sigmoid(double z) {
  return 1.0 / (1.0 + std::exp(-z));
}

// O(n^2) pair count: the definition the rank formula must agree with.
double brute_force_auc(const std::vector<float>& logits, const std::vector<float>& targets) {
  double wins = 0.0, pairs = 0.0;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    if (targets[i] != 1.0f) continue;
    for (std::size_t j = 0; j < logits.size(); ++j) {
      if (targets[j] != 0.0f) continue;
      pairs += 1.0;
      if (logits[i] > logits[j]) wins += 1.0;
      if (logits[i] == logits[j]) wins += 0.5;
    }
  }
  return wins / pairs;
}

// The MNIST test split's class balance: 974 eights among 10,000 images.
std::vector<float> mnist_test_targets() {
  std::vector<float> t(10000, 0.0f);
  for (std::size_t i = 0; i < 974; ++i) t[i * 10] = 1.0f;  // spread out, not sorted by class
  return t;
}

}  // namespace

TEST_CASE("metrics: hand-computed confusion matrix, precision, recall, F1, AUC",
          "[train][metrics]") {
  // Positives (8s): logits 2.0, 1.5, -1.0, 0.0, 1.0; negatives: 0.5, -0.3, -2.0, -0.7, -1.2, -3.0.
  // Predicted positive = logit > 0, so the positive at exactly 0.0 is a false negative.
  const std::vector<float> logits{2.0f, 1.5f, -1.0f, 0.5f,  -0.3f, -2.0f,
                                  0.0f, 1.0f, -0.7f, -1.2f, -3.0f};
  const std::vector<float> targets{1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 0};
  const auto m = compute_binary_metrics(logits, targets);
  CHECK(m.count == 11);
  CHECK(m.tp == 3);  // 2.0, 1.5, 1.0
  CHECK(m.fn == 2);  // -1.0, 0.0
  CHECK(m.fp == 1);  // 0.5
  CHECK(m.tn == 5);
  CHECK(m.accuracy == Approx(8.0 / 11.0));
  CHECK(m.precision == Approx(3.0 / 4.0));
  CHECK(m.recall == Approx(3.0 / 5.0));
  CHECK(m.f1 == Approx(2.0 / 3.0));  // 2 * 0.75 * 0.6 / 1.35
  CHECK(m.baseline_accuracy == Approx(6.0 / 11.0));
  // Pairs (positive beats negative): 2.0, 1.5, 1.0 beat all 6; 0.0 beats 5; -1.0 beats 3 -> 26/30.
  CHECK(m.roc_auc == Approx(26.0 / 30.0));
}

TEST_CASE("metrics: ROC-AUC with ties, perfect and reversed separation", "[train][metrics]") {
  SECTION("ties across classes count half") {
    // (1 vs 1) tie 0.5, (1 vs 0) win 1, (0 vs 1) loss 0, (0 vs 0) tie 0.5 -> 2/4.
    CHECK(compute_binary_metrics(std::vector<float>{1, 1, 0, 0}, std::vector<float>{1, 0, 1, 0})
              .roc_auc == Approx(0.5));
    // Positives {0.3, 2}, negatives {0.3, 0.3, -1}: 0.3 -> 0.5 + 0.5 + 1; 2 -> 3; total 5/6.
    CHECK(compute_binary_metrics(std::vector<float>{0.3f, 0.3f, 0.3f, -1.0f, 2.0f},
                                 std::vector<float>{1, 0, 0, 0, 1})
              .roc_auc == Approx(5.0 / 6.0));
    // All logits equal: every pair is a tie.
    CHECK(compute_binary_metrics(std::vector<float>(7, 0.25f),
                                 std::vector<float>{1, 0, 1, 0, 0, 0, 1})
              .roc_auc == Approx(0.5));
  }
  SECTION("perfect separation is 1, reversed is 0, whatever the threshold") {
    const std::vector<float> targets{0, 1, 0, 1, 1, 0};
    const std::vector<float> good{-3.0f, 5.0f, 1.0f, 2.0f, 1.5f, 0.5f};  // fp at 1.0 and 0.5
    std::vector<float> reversed;
    for (const float z : good) reversed.push_back(-z);
    const auto m = compute_binary_metrics(good, targets);
    CHECK(m.roc_auc == 1.0);
    CHECK(m.accuracy < 1.0);  // AUC is about ranking, not the 0 threshold
    CHECK(compute_binary_metrics(reversed, targets).roc_auc == 0.0);
  }
  SECTION("the rank formula agrees with pair counting on a large set full of ties") {
    std::mt19937 rng(12345);
    std::normal_distribution<float> noise(0.0f, 1.0f);
    std::bernoulli_distribution is_eight(0.1);
    std::vector<float> logits, targets;
    for (int i = 0; i < 3000; ++i) {
      const bool y = is_eight(rng);
      // Quantised to 0.25 so that many logits tie within and across the classes.
      logits.push_back(std::round((noise(rng) + (y ? 1.5f : 0.0f)) * 4.0f) / 4.0f);
      targets.push_back(y ? 1.0f : 0.0f);
    }
    const double want = brute_force_auc(logits, targets);
    const double got = compute_binary_metrics(logits, targets).roc_auc;
    OCTA_CHECK_CLOSE("roc_auc", &got, &want, 1, octa::test::tol::kFloatVsDouble);
    CHECK(got > 0.75);
    CHECK(got < 0.95);
  }
}

TEST_CASE("metrics: one class absent gives NaN AUC and JSON null", "[train][metrics]") {
  const std::vector<float> logits{-1.0f, 2.0f, -0.5f};
  const auto m = compute_binary_metrics(logits, std::vector<float>{0, 0, 0});
  CHECK(std::isnan(m.roc_auc));
  CHECK(m.tp == 0);
  CHECK(m.fp == 1);
  CHECK(m.tn == 2);
  CHECK(m.recall == 0.0);     // no positives at all
  CHECK(m.precision == 0.0);  // the one positive prediction is wrong
  CHECK(m.f1 == 0.0);
  CHECK(m.baseline_accuracy == 1.0);
  const auto j = octa::to_json(m);
  CHECK(j["roc_auc"].is_null());
  CHECK(j.dump().find("NaN") == std::string::npos);
  CHECK(octa::format_report(m, "8").find("n/a") != std::string::npos);

  const auto only_positives = compute_binary_metrics(logits, std::vector<float>{1, 1, 1});
  CHECK(std::isnan(only_positives.roc_auc));
  CHECK(octa::to_json(only_positives)["roc_auc"].is_null());
}

TEST_CASE("metrics: always answering 'not 8' scores exactly the 90.26% baseline",
          "[train][metrics]") {
  const auto targets = mnist_test_targets();
  const std::vector<float> logits(targets.size(), -5.0f);
  const auto m = compute_binary_metrics(logits, targets);
  CHECK(m.count == 10000);
  CHECK(m.tn == 9026);
  CHECK(m.fn == 974);
  CHECK(m.tp == 0);
  CHECK(m.fp == 0);
  CHECK(m.accuracy == Approx(0.9026));
  CHECK(m.baseline_accuracy == Approx(0.9026));
  CHECK(m.accuracy == m.baseline_accuracy);
  CHECK(m.precision == 0.0);  // nothing predicted positive: 0 by convention, not NaN
  CHECK(m.recall == 0.0);
  CHECK(m.f1 == 0.0);
  CHECK(m.roc_auc == Approx(0.5));  // a constant score ranks nothing

  const auto j = octa::to_json(m);
  CHECK(j["count"] == 10000);
  CHECK(j["accuracy"].get<double>() == Approx(0.9026));
  CHECK(j["baseline_accuracy"].get<double>() == Approx(0.9026));
  CHECK(j["precision"] == 0.0);
  CHECK(j["recall"] == 0.0);
  CHECK(j["f1"] == 0.0);
  CHECK(j["roc_auc"].get<double>() == Approx(0.5));
  CHECK(j["mean_loss"].get<double>() == Approx(m.mean_loss));
  CHECK(j["confusion_matrix"] == nlohmann::json({{"tp", 0}, {"fp", 0}, {"tn", 9026}, {"fn", 974}}));

  const std::string report = octa::format_report(m, "8");
  INFO(report);
  CHECK(report.find("0.9026") != std::string::npos);
  CHECK(report.find("baseline") != std::string::npos);
  for (const char* label : {"actual 8", "actual not-8", "predicted 8", "predicted not-8", "9026",
                            "974", "precision", "recall", "F1", "ROC-AUC"}) {
    INFO("label " << label);
    CHECK(report.find(label) != std::string::npos);
  }
  // Named classes (Fashion-MNIST's "Bag" against the rest) are named as such, never as digits.
  const std::string named = octa::format_report(m, "Bag");
  INFO(named);
  CHECK(named.find("predicted not-Bag") != std::string::npos);
  CHECK(named.find("always \"not-Bag\"") != std::string::npos);
  CHECK(named.find("not-8") == std::string::npos);
}

TEST_CASE("metrics: the tutorial's sigmoid-of-sigmoid bug collapses to the share of 8s",
          "[train][metrics]") {
  // A decent model's logits: 900 of 974 eights and 8950 of 9026 others on the right side of 0.
  const auto targets = mnist_test_targets();
  std::vector<float> logits(targets.size());
  std::int64_t pos_seen = 0, neg_seen = 0;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (targets[i] == 1.0f) {
      logits[i] = pos_seen++ < 900 ? 4.0f : -1.0f;
    } else {
      logits[i] = neg_seen++ < 8950 ? -4.0f : 1.0f;
    }
  }
  const auto right = compute_binary_metrics(logits, targets);
  CHECK(right.accuracy == Approx((900.0 + 8950.0) / 10000.0));
  CHECK(right.accuracy > right.baseline_accuracy + 0.05);  // beats 90.26% by a wide margin

  // The tutorial: forward() returns sigmoid(z), and the test applies sigmoid(...) > 0.5 again.
  // sigmoid(p) > 0.5 for every p > 0, so every image is called an 8.
  std::int64_t correct = 0;
  std::vector<float> probabilities(logits.size());
  for (std::size_t i = 0; i < logits.size(); ++i) {
    const double p = sigmoid(logits[i]);
    probabilities[i] = static_cast<float>(p);
    const bool predicted = sigmoid(p) > 0.5;
    if (predicted == (targets[i] == 1.0f)) ++correct;
  }
  CHECK(static_cast<double>(correct) / 10000.0 == Approx(0.0974));

  // Feeding those probabilities where logits belong reproduces the collapse, loudly: accuracy is
  // the share of 8s, far below the majority baseline, and every image is predicted positive.
  const auto wrong = compute_binary_metrics(probabilities, targets);
  CHECK(wrong.accuracy == Approx(0.0974));
  CHECK(wrong.accuracy < wrong.baseline_accuracy);
  CHECK(wrong.tp + wrong.fp == 10000);
  CHECK(wrong.recall == 1.0);
  CHECK(wrong.precision == Approx(0.0974));
  // The ranking survives a monotone squashing, which is why AUC alone would not catch this bug.
  CHECK(wrong.roc_auc == Approx(right.roc_auc));
}

TEST_CASE("metrics: mean BCE-with-logits matches a direct computation and stays finite",
          "[train][metrics]") {
  std::vector<float> logits, targets;
  for (int i = 0; i < 41; ++i) {
    logits.push_back(static_cast<float>(i - 20) * 0.4f);  // -8 .. 8
    targets.push_back(i % 3 == 0 ? 1.0f : 0.0f);
  }
  // Textbook form: -[y log p + (1 - y) log(1 - p)], safe at these moderate logits.
  double direct = 0.0;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    const double p = sigmoid(logits[i]);
    direct += -(targets[i] * std::log(p) + (1.0 - targets[i]) * std::log(1.0 - p));
  }
  direct /= static_cast<double>(logits.size());
  const double got = compute_binary_metrics(logits, targets).mean_loss;
  OCTA_CHECK_CLOSE("mean_loss", &got, &direct, 1, octa::test::tol::kFloatVsDouble);

  // At +-100 the textbook form overflows to inf (log(0)); the stable form gives 0 or 100.
  const auto extreme = compute_binary_metrics(std::vector<float>{100.0f, -100.0f, 100.0f, -100.0f},
                                              std::vector<float>{1, 0, 0, 1});
  CHECK(std::isfinite(extreme.mean_loss));
  const double want = (0.0 + 0.0 + 100.0 + 100.0) / 4.0;
  OCTA_CHECK_CLOSE("mean_loss at +-100", &extreme.mean_loss, &want, 1,
                   octa::test::tol::kFloatVsDouble);
}

TEST_CASE("metrics: invalid input is an octa::Error", "[train][metrics]") {
  const std::vector<float> two{1.0f, -1.0f};
  REQUIRE_THROWS_AS(compute_binary_metrics(two, std::vector<float>{1.0f}), octa::Error);
  REQUIRE_THROWS_WITH(compute_binary_metrics(two, std::vector<float>{1.0f}),
                      Contains("2 logits but 1 targets"));
  REQUIRE_THROWS_WITH(compute_binary_metrics(two, std::vector<float>{1.0f, 0.5f}),
                      Contains("target 1 is 0.5, not 0 or 1"));
  REQUIRE_THROWS_WITH(compute_binary_metrics(two, std::vector<float>{2.0f, 0.0f}),
                      Contains("not 0 or 1"));
  REQUIRE_THROWS_WITH(compute_binary_metrics(std::vector<float>{}, std::vector<float>{}),
                      Contains("no samples"));
  REQUIRE_THROWS_WITH(compute_binary_metrics(std::vector<float>{1.0f, std::nanf("")},
                                             std::vector<float>{1.0f, 0.0f}),
                      Contains("logit 1 is NaN"));
}
