// tests/test_multiclass_metrics.cpp: the K-class metrics (engine/train/multiclass_metrics.hpp)
// against a hand-computed 3-class case, an independent brute-force computation on random logits,
// the binary metrics for K = 2, argmax's tie rule, the JSON layout, the report and the errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/cpu/ops.hpp"
#include "engine/train/metrics.hpp"
#include "engine/train/multiclass_metrics.hpp"
#include "tests/support/compare.hpp"
#include "tests/support/gradcheck.hpp"

using Catch::Matchers::Contains;
using octa::compute_multiclass_metrics;
namespace tol = octa::test::tol;

namespace {

// One row of logits per sample, the predicted class (largest) first-maximum aside.
std::vector<float> one_hot_logits(const std::vector<int>& predicted, int K) {
  std::vector<float> z(predicted.size() * static_cast<std::size_t>(K), 0.0f);
  for (std::size_t i = 0; i < predicted.size(); ++i) {
    z[i * static_cast<std::size_t>(K) + static_cast<std::size_t>(predicted[i])] = 2.0f;
  }
  return z;
}

}  // namespace

TEST_CASE("multiclass metrics: a hand-computed 3-class case", "[train][metrics][multiclass]") {
  // actual:    0 0 0 0 1 1 1 2 2 2
  // predicted: 0 0 1 2 1 1 0 2 2 1
  const std::vector<float> targets{0, 0, 0, 0, 1, 1, 1, 2, 2, 2};
  const std::vector<int> predicted{0, 0, 1, 2, 1, 1, 0, 2, 2, 1};
  std::vector<float> z = one_hot_logits(predicted, 3);
  // Second choices for top-2: sample 2 (actual 0) has 0 second, sample 3 (actual 0) has 1 second,
  // sample 6 (actual 1) has 1 second, sample 9 (actual 2) has 0 second.
  z[2 * 3 + 0] = 1.0f;
  z[3 * 3 + 1] = 1.0f;
  z[6 * 3 + 1] = 1.0f;
  z[9 * 3 + 0] = 1.0f;
  const auto m = compute_multiclass_metrics(z, targets, 3, {"cat", "dog", "owl"});
  CHECK(m.count == 10);
  CHECK(m.num_classes == 3);
  const std::vector<std::int64_t> confusion{2, 1, 1, 1, 2, 0, 0, 1, 2};
  CHECK(m.confusion == confusion);
  CHECK(m.at(0, 2) == 1);
  CHECK(m.accuracy == Approx(6.0 / 10.0));
  CHECK(m.top2_accuracy == Approx(8.0 / 10.0));  // samples 2 and 6 recovered; 3 and 9 not
  // Class 0: 2 of 4 predicted as 0 are right (precision 2/3: predicted 0 three times).
  CHECK(m.per_class[0].support == 4);
  CHECK(m.per_class[0].predicted == 3);
  CHECK(m.per_class[0].precision == Approx(2.0 / 3.0));
  CHECK(m.per_class[0].recall == Approx(2.0 / 4.0));
  CHECK(m.per_class[0].f1 == Approx(2.0 * (2.0 / 3.0) * 0.5 / (2.0 / 3.0 + 0.5)));
  CHECK(m.per_class[1].precision == Approx(2.0 / 4.0));
  CHECK(m.per_class[1].recall == Approx(2.0 / 3.0));
  CHECK(m.per_class[2].precision == Approx(2.0 / 3.0));
  CHECK(m.per_class[2].recall == Approx(2.0 / 3.0));
  const double f1_0 = 2.0 * (2.0 / 3.0) * 0.5 / (2.0 / 3.0 + 0.5);
  const double f1_1 = 2.0 * 0.5 * (2.0 / 3.0) / (0.5 + 2.0 / 3.0);
  CHECK(m.macro_f1 == Approx((f1_0 + f1_1 + 2.0 / 3.0) / 3.0));
  CHECK(m.macro_precision == Approx((2.0 / 3.0 + 0.5 + 2.0 / 3.0) / 3.0));
  CHECK(m.macro_recall == Approx((0.5 + 2.0 / 3.0 + 2.0 / 3.0) / 3.0));
  CHECK(m.majority_class == 0);
  CHECK(m.baseline_accuracy == Approx(0.4));
  const double ce = octa::cpu::softmax_cross_entropy<float>(nullptr, z.data(), targets.data(), 10,
                                                            3, nullptr, 0.0f);
  CHECK(m.mean_loss == ce);

  const auto j = octa::to_json(m);
  CHECK(j["num_classes"] == 3);
  CHECK(j["confusion_matrix"]["rows"] == "actual");
  CHECK(j["confusion_matrix"]["counts"][0] == nlohmann::json({2, 1, 1}));
  CHECK(j["confusion_matrix"]["counts"][2] == nlohmann::json({0, 1, 2}));
  CHECK(j["classes"][1]["name"] == "dog");
  CHECK(j["classes"][1]["support"] == 3);
  CHECK(j["classes"][1]["predicted"] == 4);
  CHECK(j["top2_accuracy"].get<double>() == Approx(0.8));

  const std::string r = octa::format_report(m);
  INFO(r);
  CHECK_THAT(r, Contains("10 images, 3 classes"));
  CHECK_THAT(r, Contains("accuracy        0.6000   (majority baseline 0.4000: always \"cat\")"));
  CHECK_THAT(r, Contains("top-2 accuracy  0.8000"));
  CHECK_THAT(r, Contains("  1 dog"));
  CHECK_THAT(r, Contains("confusion matrix (rows: actual class, columns: predicted class):"));
  CHECK_THAT(r, Contains("  0 cat  2  1  1\n"));
}

TEST_CASE("multiclass metrics: random logits against a brute-force computation",
          "[train][metrics][multiclass]") {
  const int N = 500, K = 10;
  const auto zd =
      octa::test::random_vector<double>(static_cast<std::size_t>(N) * K, 4000, -3.0, 3.0);
  std::vector<float> z(zd.begin(), zd.end());
  const auto td = octa::test::random_vector<double>(static_cast<std::size_t>(N), 4001, 0.0, 1.0);
  std::vector<float> y(static_cast<std::size_t>(N));
  for (int i = 0; i < N; ++i)
    y[static_cast<std::size_t>(i)] =
        static_cast<float>(std::floor(td[static_cast<std::size_t>(i)] * K));
  const auto m = compute_multiclass_metrics(z, y, K);
  // Brute force: rank of the target's logit by sorting each row.
  std::int64_t top1 = 0, top2 = 0;
  std::vector<std::int64_t> tp(K), pred(K), sup(K);
  for (int i = 0; i < N; ++i) {
    std::vector<std::pair<float, int>> row;
    for (int k = 0; k < K; ++k) row.push_back({-z[static_cast<std::size_t>(i * K + k)], k});
    std::sort(row.begin(), row.end());
    const int t = static_cast<int>(y[static_cast<std::size_t>(i)]);
    top1 += row[0].second == t;
    top2 += row[0].second == t || row[1].second == t;
    ++pred[static_cast<std::size_t>(row[0].second)];
    ++sup[static_cast<std::size_t>(t)];
    tp[static_cast<std::size_t>(t)] += row[0].second == t;
  }
  CHECK(m.accuracy == Approx(static_cast<double>(top1) / N));
  CHECK(m.top2_accuracy == Approx(static_cast<double>(top2) / N));
  CHECK(m.top2_accuracy > m.accuracy);
  double macro = 0.0;
  std::int64_t total = 0;
  for (int k = 0; k < K; ++k) {
    const auto& c = m.per_class[static_cast<std::size_t>(k)];
    CHECK(c.support == sup[static_cast<std::size_t>(k)]);
    CHECK(c.predicted == pred[static_cast<std::size_t>(k)]);
    CHECK(m.at(k, k) == tp[static_cast<std::size_t>(k)]);
    const double p = static_cast<double>(tp[k]) / static_cast<double>(pred[k]);
    const double r = static_cast<double>(tp[k]) / static_cast<double>(sup[k]);
    macro += p + r > 0 ? 2 * p * r / (p + r) : 0.0;
    for (int j = 0; j < K; ++j) total += m.at(k, j);
  }
  CHECK(total == N);
  CHECK(m.macro_f1 == Approx(macro / K));
}

TEST_CASE("multiclass metrics: K = 2 with logits (0, z) agree with the binary metrics",
          "[train][metrics][multiclass]") {
  // argmax of (0, z) is class 1 exactly when z > 0 (a tie goes to class 0, the first maximum),
  // which is the binary rule logit > 0.
  const std::vector<float> z1{2.0f, -1.0f, 0.0f, 0.5f, -0.3f, 1.5f, -2.0f, 0.0f};
  const std::vector<float> y{1, 1, 1, 0, 0, 1, 0, 0};
  std::vector<float> z;
  for (float v : z1) {
    z.push_back(0.0f);
    z.push_back(v);
  }
  const auto mc = compute_multiclass_metrics(z, y, 2);
  const auto b = octa::compute_binary_metrics(z1, y);
  CHECK(mc.accuracy == b.accuracy);
  CHECK(mc.per_class[1].precision == b.precision);
  CHECK(mc.per_class[1].recall == b.recall);
  CHECK(mc.per_class[1].f1 == b.f1);
  CHECK(mc.at(1, 1) == b.tp);
  CHECK(mc.at(0, 1) == b.fp);
  CHECK(mc.top2_accuracy == 1.0);
  OCTA_CHECK_CLOSE("two-class mean loss vs BCE", &mc.mean_loss, &b.mean_loss, 1,
                   tol::kFloatVsDouble);
}

TEST_CASE("multiclass metrics: ties, absent classes, errors", "[train][metrics][multiclass]") {
  // Equal logits: argmax is the first class, top-2 the first two.
  const std::vector<float> z{1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  const std::vector<float> y{0, 1, 2};
  const auto m = compute_multiclass_metrics(z, y, 3);
  CHECK(m.at(0, 0) == 1);
  CHECK(m.at(1, 0) == 1);
  CHECK(m.at(2, 0) == 1);
  CHECK(m.top2_accuracy == Approx(2.0 / 3.0));
  CHECK(m.class_names == std::vector<std::string>{"0", "1", "2"});

  // Class 3 of 4 has neither targets nor predictions: left out of the macro averages; class 2
  // has targets but no predictions: in them, with precision 0.
  const std::vector<float> t{0, 1, 2};
  const auto a = compute_multiclass_metrics(one_hot_logits({0, 1, 1}, 4), t, 4);
  CHECK(a.per_class[3].support == 0);
  CHECK(a.per_class[2].precision == 0.0);
  CHECK(a.macro_recall == Approx((1.0 + 1.0 + 0.0) / 3.0));
  CHECK(a.macro_precision == Approx((1.0 + 0.5 + 0.0) / 3.0));
  CHECK_THAT(octa::format_report(a), Contains("\n  3      0  0  0  0\n"));

  const std::vector<float> two{0.1f, 0.2f};
  const std::vector<float> one{0};
  CHECK_THROWS_WITH(compute_multiclass_metrics(two, one, 3),
                    Contains("2 logits for 1 targets of 3 classes"));
  CHECK_THROWS_WITH(compute_multiclass_metrics(two, {}, 2), Contains("no samples"));
  CHECK_THROWS_WITH(compute_multiclass_metrics(two, one, 1), Contains("1 classes; at least 2"));
  const std::vector<float> bad{2};
  CHECK_THROWS_WITH(compute_multiclass_metrics(two, bad, 2),
                    Contains("target 0 is 2, not a class index 0..1"));
  const std::vector<float> nan{0.1f, std::numeric_limits<float>::quiet_NaN()};
  CHECK_THROWS_WITH(compute_multiclass_metrics(nan, one, 2),
                    Contains("logit 1 of sample 0 is NaN"));
  CHECK_THROWS_WITH(compute_multiclass_metrics(two, one, 2, {"a"}),
                    Contains("1 class names for 2 classes"));
}
