// tests/emulation/emul_softmax_head_test.cpp: what is specific to the emulator for the fused
// multi-class training head (gpu::softmax_head_train, kernels/logit_head.cu): a target that is no
// class and a zero total weight give NaN (as the CPU reference and PyTorch) and throw nothing, and
// the launcher's argument checks refuse bad calls before any launch. Its comparisons with the CPU
// reference (random cases, logits of +-1000, smoothing 1) are cases of the table
// (engine/selfcheck/layer_cases.cpp), run here by emul_kernels_test.cpp, on the GPU by
// test_gpu_cases and by octa_selftest. Part of emul_kernels_test (tests/CMakeLists.txt).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/cpu/ops.hpp"
#include "kernels/logit_head.hpp"
#include "tests/emulation/emul.hpp"

namespace gpu = octa::gpu;
using Catch::Contains;

namespace {

struct HeadRun {
  std::vector<float> logits, dlogits, dweight, dhidden;
  float batch_loss = 0.0f;
  double loss_sum = 0.0;
};

// The head on N rows of K inputs (x = relu_out = 1), fc2's weights w[C*K], zero bias, targets t.
HeadRun run_head(int N, int K, int C, const std::vector<float>& w, const std::vector<float>& t,
                 const std::vector<float>* class_weight, float smoothing) {
  const auto rows = static_cast<std::size_t>(N), classes = static_cast<std::size_t>(C);
  std::vector<float> x(rows * static_cast<std::size_t>(K), 1.0f), bias(classes, 0.0f);
  HeadRun r;
  r.logits.resize(rows * classes);
  r.dlogits.resize(rows * classes);
  r.dweight.resize(w.size());
  r.dhidden.resize(x.size());
  std::vector<float> dbias(classes);
  gpu::softmax_head_train({r.logits.data(), r.dlogits.data(), &r.batch_loss, &r.loss_sum,
                           r.dweight.data(), dbias.data(), r.dhidden.data()},
                          {x.data(), x.data(), nullptr, 0.5f, w.data(), bias.data(), t.data(),
                           class_weight ? class_weight->data() : nullptr, smoothing},
                          N, K, C, nullptr);
  return r;
}

}  // namespace

TEST_CASE("emulated multi-class head: a target that is no class, zero weight: NaN, no throw",
          "[emul][loss][multiclass]") {
  emul::reset();
  const std::vector<float> w{0.5f, -0.25f, 0.125f, 1.0f, 0.75f, -0.5f};  // C = 3, K = 2
  // A target that is no class index: NaN everywhere it reaches, nothing thrown.
  const HeadRun nan = run_head(3, 2, 3, w, {0.0f, 1.5f, 2.0f}, nullptr, 0.1f);
  CHECK(std::isnan(nan.batch_loss));
  CHECK(std::isnan(nan.loss_sum));
  CHECK(std::isnan(nan.dlogits[0]));
  CHECK(std::isnan(nan.dweight[0]));
  CHECK(std::isfinite(nan.logits[3]));  // the forward is untouched

  // Every target in a class of weight 0: 0 / 0 (PyTorch's NaN), as the CPU reference.
  const std::vector<float> targets{1.0f, 1.0f, 1.0f}, zero_for_1{1.0f, 0.0f, 1.0f};
  const HeadRun z = run_head(3, 2, 3, w, targets, &zero_for_1, 0.0f);
  CHECK(std::isnan(z.batch_loss));
  CHECK(std::isnan(octa::cpu::softmax_cross_entropy<float>(nullptr, z.logits.data(), targets.data(),
                                                           3, 3, zero_for_1.data(), 0.0f)));
  CHECK(emul::unchecked_launches().empty());
  CHECK(!emul::launches().empty());
}

TEST_CASE("emulated multi-class head: bad arguments are refused before any launch",
          "[emul][loss][multiclass]") {
  emul::reset();
  std::vector<float> f(16);
  std::vector<double> d(1);
  const gpu::SoftmaxHeadOutputs out{f.data(), f.data(), f.data(), d.data(),
                                    f.data(), f.data(), f.data()};
  const gpu::SoftmaxHeadInputs in{f.data(), f.data(), nullptr, 0.5f, f.data(),
                                  f.data(), f.data(), nullptr, 0.0f};
  CHECK_THROWS_WITH(gpu::softmax_head_train(out, in, 2, 2, 1, nullptr),
                    Contains("softmax_head_train: C = 1 classes; the fused head takes 2 to 256"));
  CHECK_THROWS_WITH(gpu::softmax_head_train(out, in, 2, 2, 257, nullptr),
                    Contains("C = 257 classes"));
  CHECK_THROWS_WITH(gpu::softmax_head_train(out, in, 0, 2, 3, nullptr),
                    Contains("softmax_head_train: N = 0 must be positive"));
  gpu::SoftmaxHeadInputs smooth = in;
  smooth.label_smoothing = 1.5f;
  CHECK_THROWS_WITH(gpu::softmax_head_train(out, smooth, 2, 2, 3, nullptr),
                    Contains("label_smoothing = 1.5 must be in [0, 1]"));
  gpu::SoftmaxHeadInputs no_targets = in;
  no_targets.targets = nullptr;
  CHECK_THROWS_WITH(gpu::softmax_head_train(out, no_targets, 2, 2, 3, nullptr),
                    Contains("softmax_head_train: targets must not be null"));
  std::vector<std::uint8_t> m(4);
  gpu::SoftmaxHeadInputs bad_p = in;
  bad_p.mask = m.data();
  bad_p.dropout_p = 1.0f;
  CHECK_THROWS_WITH(gpu::softmax_head_train(out, bad_p, 2, 2, 3, nullptr),
                    Contains("drop probability p = 1 must be in [0, 1)"));
  CHECK(emul::launches().empty());
}
