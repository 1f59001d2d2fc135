// tests/support/softmax_head_case.hpp: one configuration of the fused multi-class training head
// (gpu::softmax_head_train, kernels/logit_head.hpp): random inputs, the CPU reference's chain of
// separate ops it replaces (fc2 forward, softmax cross-entropy, fc2 backward, dropout backward,
// ReLU backward), a run of the kernel through any memory (the emulator's host memory or the GPU's)
// and the comparison of its outputs with the reference. Shared by the GPU test
// (test_gpu_softmax_head.cpp) and the emulated one (tests/emulation/emul_softmax_head_test.cpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/cpu/ops.hpp"
#include "kernels/logit_head.hpp"
#include "tests/support/compare.hpp"
#include "tests/support/gradcheck.hpp"

namespace octa::test {

struct SoftmaxHeadResult {
  std::vector<float> logits, dlogits, dweight, dbias, dhidden;
  float batch_loss = 0.0f;
  double loss_sum = 0.0;
};

struct SoftmaxHeadCase {
  static constexpr double kLossSumBefore = 2.5;  // the running sum the kernel adds to
  static constexpr float kDropoutP = 0.5f;

  int N, K, C;
  bool dropout;
  float label_smoothing;
  std::vector<float> relu_out, x, weight, bias, targets;
  std::vector<float> class_weight;  // empty: no class weights
  std::vector<std::uint8_t> mask;   // empty without dropout
  SoftmaxHeadResult ref;

  SoftmaxHeadCase(int n, int k, int c, bool with_dropout, bool weighted, float eps,
                  std::uint64_t seed)
      : N(n), K(k), C(c), dropout(with_dropout), label_smoothing(eps) {
    const std::size_t count = hidden_size();
    // fc1's ReLU output: about half zeros (no gradient through them).
    relu_out = random_vector<float>(count, seed, -1.0, 1.0);
    for (float& v : relu_out) v = std::max(v, 0.0f);
    // fc2 at PyTorch's initial scale, times 4 so that some rows are confident.
    const double bound = 4.0 / std::sqrt(static_cast<double>(K));
    weight = random_vector<float>(static_cast<std::size_t>(C) * static_cast<std::size_t>(K),
                                  seed + 1, -bound, bound);
    bias = random_vector<float>(static_cast<std::size_t>(C), seed + 2, -0.1, 0.1);
    targets = random_vector<float>(static_cast<std::size_t>(N), seed + 3, 0.0, 1.0, 0.0);
    for (float& y : targets) {
      y = std::min(static_cast<float>(C - 1), std::floor(y * static_cast<float>(C)));
    }
    if (weighted) {
      class_weight = random_vector<float>(static_cast<std::size_t>(C), seed + 4, 0.25, 3.0);
    }
    x = relu_out;
    if (dropout) {
      const std::vector<float> draw = random_vector<float>(count, seed + 5, 0.0, 1.0);
      mask.resize(count);
      for (std::size_t i = 0; i < count; ++i) mask[i] = draw[i] >= kDropoutP ? 1 : 0;
      cpu::dropout_backward(x.data(), relu_out.data(), mask.data(), count, kDropoutP);
    }
    reference();
  }

  std::size_t hidden_size() const {
    return static_cast<std::size_t>(N) * static_cast<std::size_t>(K);
  }
  std::size_t logit_size() const {
    return static_cast<std::size_t>(N) * static_cast<std::size_t>(C);
  }
  const float* weights_or_null() const {
    return class_weight.empty() ? nullptr : class_weight.data();
  }
  std::string str() const {
    return "N " + std::to_string(N) + " K " + std::to_string(K) + " C " + std::to_string(C) +
           (dropout ? " with dropout" : "") + (class_weight.empty() ? "" : " class weights") +
           " label_smoothing " + std::to_string(label_smoothing);
  }

  // What the kernel must reproduce, op by op on the CPU.
  void reference() {
    ref.logits.resize(logit_size());
    ref.dlogits.resize(logit_size());
    ref.dweight.resize(static_cast<std::size_t>(C) * static_cast<std::size_t>(K));
    ref.dbias.resize(static_cast<std::size_t>(C));
    ref.dhidden.resize(hidden_size());
    cpu::linear_forward(ref.logits.data(), x.data(), weight.data(), bias.data(), N, K, C);
    const double mean =
        cpu::softmax_cross_entropy(ref.dlogits.data(), ref.logits.data(), targets.data(), N, C,
                                   weights_or_null(), label_smoothing);
    ref.batch_loss = static_cast<float>(mean);
    ref.loss_sum = kLossSumBefore + mean * N;
    std::vector<float> dx(hidden_size());
    cpu::linear_backward(dx.data(), ref.dweight.data(), ref.dbias.data(), ref.dlogits.data(),
                         x.data(), weight.data(), N, K, C);
    if (dropout) cpu::dropout_backward(dx.data(), dx.data(), mask.data(), hidden_size(), kDropoutP);
    cpu::relu_backward(ref.dhidden.data(), dx.data(), relu_out.data(), hidden_size());
  }

  // Every output of a run against the reference, within `t`.
  void check(const SoftmaxHeadResult& got, Tolerance t) const {
    INFO(str());
    OCTA_CHECK_CLOSE("softmax head logits", got.logits.data(), ref.logits.data(), ref.logits.size(),
                     t);
    OCTA_CHECK_CLOSE("softmax head dlogits", got.dlogits.data(), ref.dlogits.data(),
                     ref.dlogits.size(), t);
    OCTA_CHECK_CLOSE("softmax head batch_loss", &got.batch_loss, &ref.batch_loss, 1, t);
    OCTA_CHECK_CLOSE("softmax head loss_sum", &got.loss_sum, &ref.loss_sum, 1, t);
    OCTA_CHECK_CLOSE("softmax head dweight", got.dweight.data(), ref.dweight.data(),
                     ref.dweight.size(), t);
    OCTA_CHECK_CLOSE("softmax head dbias", got.dbias.data(), ref.dbias.data(), ref.dbias.size(), t);
    OCTA_CHECK_CLOSE("softmax head dhidden", got.dhidden.data(), ref.dhidden.data(),
                     ref.dhidden.size(), t);
  }
};

// Runs the kernel on case c through `dev`, which provides upload(std::vector<T>) -> a buffer with
// data(), poisoned<T>(n) -> a buffer whose every byte is 0xFF, download(buffer) -> std::vector<T>
// and stream(). A hand case changes a case's inputs and calls reference() again before running.
template <class Dev>
SoftmaxHeadResult run_softmax_head(Dev& dev, const SoftmaxHeadCase& c) {
  auto x = dev.upload(c.x), relu_out = dev.upload(c.relu_out), weight = dev.upload(c.weight),
       bias = dev.upload(c.bias), targets = dev.upload(c.targets);
  auto mask = dev.upload(c.dropout ? c.mask : std::vector<std::uint8_t>(1));
  auto class_weight = dev.upload(c.class_weight.empty() ? std::vector<float>(1) : c.class_weight);
  auto logits = dev.template poisoned<float>(c.logit_size());
  auto dlogits = dev.template poisoned<float>(c.logit_size());
  auto batch_loss = dev.template poisoned<float>(1);
  auto dweight =
      dev.template poisoned<float>(static_cast<std::size_t>(c.C) * static_cast<std::size_t>(c.K));
  auto dbias = dev.template poisoned<float>(static_cast<std::size_t>(c.C));
  auto dhidden = dev.template poisoned<float>(c.hidden_size());
  auto loss_sum = dev.upload(std::vector<double>{SoftmaxHeadCase::kLossSumBefore});
  gpu::softmax_head_train(
      {logits.data(), dlogits.data(), batch_loss.data(), loss_sum.data(), dweight.data(),
       dbias.data(), dhidden.data()},
      {x.data(), relu_out.data(), c.dropout ? mask.data() : nullptr, SoftmaxHeadCase::kDropoutP,
       weight.data(), bias.data(), targets.data(),
       c.class_weight.empty() ? nullptr : class_weight.data(), c.label_smoothing},
      c.N, c.K, c.C, dev.stream());
  SoftmaxHeadResult r;
  r.logits = dev.download(logits);
  r.dlogits = dev.download(dlogits);
  r.dweight = dev.download(dweight);
  r.dbias = dev.download(dbias);
  r.dhidden = dev.download(dhidden);
  r.batch_loss = dev.download(batch_loss)[0];
  r.loss_sum = dev.download(loss_sum)[0];
  return r;
}

// The configurations both tests run: model A's head for 10 classes at batch 64 (K = 128, no
// dropout), B's with dropout, class weights and smoothing, and sizes that are not multiples of the
// kernel's 1024 threads: logits, weight gradients and rows beyond one pass, a single row, C = 2,
// and smoothing 1 (no one-hot term at all).
inline std::vector<SoftmaxHeadCase> softmax_head_cases() {
  std::vector<SoftmaxHeadCase> cases;
  cases.emplace_back(64, 128, 10, false, false, 0.0f, 800);
  cases.emplace_back(37, 128, 10, true, true, 0.1f, 810);
  cases.emplace_back(1, 5, 3, false, true, 1.0f, 820);
  cases.emplace_back(300, 200, 7, true, false, 0.2f, 830);
  cases.emplace_back(1100, 3, 2, true, true, 0.0f, 840);
  return cases;
}

}  // namespace octa::test
