// tests/support/logit_head_case.hpp: one configuration of the fused training head
// (kernels/logit_head.hpp): random inputs, the CPU reference's chain of separate ops it replaces
// (fc2 forward, BCE, fc2 backward, dropout backward, ReLU backward), and the comparison of a run's
// outputs with it. Shared by the GPU test (test_gpu_kernels.cpp) and the emulated one
// (tests/emulation/), which differ only in where the kernel runs.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/cpu/ops.hpp"
#include "tests/support/compare.hpp"
#include "tests/support/gradcheck.hpp"

namespace octa::test {

struct LogitHeadResult {
  std::vector<float> logits, dlogits, dweight, dhidden;
  float batch_loss = 0.0f, dbias = 0.0f;
  double loss_sum = 0.0;
};

struct LogitHeadCase {
  static constexpr double kLossSumBefore = 2.5;  // the running sum the kernel adds to
  static constexpr float kDropoutP = 0.5f;

  int N, K;
  bool dropout;
  float pos_weight;
  std::vector<float> relu_out, x, weight, bias, targets;
  std::vector<std::uint8_t> mask;  // empty without dropout
  LogitHeadResult ref;

  LogitHeadCase(int n, int k, bool with_dropout, float pw, std::uint64_t seed)
      : N(n), K(k), dropout(with_dropout), pos_weight(pw) {
    const std::size_t count = size();
    // fc1's ReLU output: about half zeros (no gradient through them).
    relu_out = random_vector<float>(count, seed, -1.0, 1.0);
    for (float& v : relu_out) v = std::max(v, 0.0f);
    weight = random_vector<float>(static_cast<std::size_t>(K), seed + 1, -0.1, 0.1);
    bias = random_vector<float>(1, seed + 2, -0.1, 0.1);
    targets = random_vector<float>(static_cast<std::size_t>(N), seed + 3, 0.0, 1.0);
    for (float& y : targets) y = y < 0.3f ? 1.0f : 0.0f;
    x = relu_out;
    if (dropout) {
      const std::vector<float> draw = random_vector<float>(count, seed + 4, 0.0, 1.0);
      mask.resize(count);
      for (std::size_t i = 0; i < count; ++i) mask[i] = draw[i] >= kDropoutP ? 1 : 0;
      cpu::dropout_backward(x.data(), relu_out.data(), mask.data(), count, kDropoutP);
    }
    reference();
  }

  std::size_t size() const { return static_cast<std::size_t>(N) * static_cast<std::size_t>(K); }
  std::string str() const {
    return "N " + std::to_string(N) + " K " + std::to_string(K) + (dropout ? " with dropout" : "") +
           " pos_weight " + std::to_string(pos_weight);
  }

  // What the kernel must reproduce, op by op on the CPU.
  void reference() {
    const auto n = static_cast<std::size_t>(N);
    ref.logits.resize(n);
    ref.dlogits.resize(n);
    ref.dweight.resize(static_cast<std::size_t>(K));
    ref.dhidden.resize(size());
    cpu::linear_forward(ref.logits.data(), x.data(), weight.data(), bias.data(), N, K, 1);
    const double mean =
        cpu::bce_with_logits(ref.dlogits.data(), ref.logits.data(), targets.data(), N, pos_weight);
    ref.batch_loss = static_cast<float>(mean);
    ref.loss_sum = kLossSumBefore + mean * N;
    std::vector<float> dx(size());
    cpu::linear_backward(dx.data(), ref.dweight.data(), &ref.dbias, ref.dlogits.data(), x.data(),
                         weight.data(), N, K, 1);
    if (dropout) cpu::dropout_backward(dx.data(), dx.data(), mask.data(), size(), kDropoutP);
    cpu::relu_backward(ref.dhidden.data(), dx.data(), relu_out.data(), size());
  }

  // Every output of a run against the reference, within `t`.
  void check(const LogitHeadResult& got, Tolerance t) const {
    INFO(str());
    OCTA_CHECK_CLOSE("logit head logits", got.logits.data(), ref.logits.data(), ref.logits.size(),
                     t);
    OCTA_CHECK_CLOSE("logit head dlogits", got.dlogits.data(), ref.dlogits.data(),
                     ref.dlogits.size(), t);
    OCTA_CHECK_CLOSE("logit head batch_loss", &got.batch_loss, &ref.batch_loss, 1, t);
    OCTA_CHECK_CLOSE("logit head loss_sum", &got.loss_sum, &ref.loss_sum, 1, t);
    OCTA_CHECK_CLOSE("logit head dweight", got.dweight.data(), ref.dweight.data(),
                     ref.dweight.size(), t);
    OCTA_CHECK_CLOSE("logit head dbias", &got.dbias, &ref.dbias, 1, t);
    OCTA_CHECK_CLOSE("logit head dhidden", got.dhidden.data(), ref.dhidden.data(),
                     ref.dhidden.size(), t);
  }
};

// The configurations both tests run: model A's (K = 128, no dropout) and B's (with dropout) at
// batch 64 and at sizes that are not multiples of the kernel's passes (128 logits, 128 weights and
// 1024 loss terms per pass), a single row, and a K below the 8 segments of a dot product.
inline std::vector<LogitHeadCase> logit_head_cases() {
  std::vector<LogitHeadCase> cases;
  cases.emplace_back(64, 128, false, 1.0f, 700);
  cases.emplace_back(37, 128, true, 1.0f, 710);
  cases.emplace_back(1, 5, false, 3.5f, 720);
  cases.emplace_back(300, 200, true, 3.5f, 730);
  cases.emplace_back(1100, 3, true, 1.0f, 740);
  return cases;
}

}  // namespace octa::test
