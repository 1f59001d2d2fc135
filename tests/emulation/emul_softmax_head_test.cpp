// tests/emulation/emul_softmax_head_test.cpp: the fused multi-class training head
// (gpu::softmax_head_train, kernels/logit_head.cu) run by the kernel emulator against the CPU
// reference's fc2 + softmax_cross_entropy + fc2/dropout/ReLU backward, on the shared cases of
// tests/support/softmax_head_case.hpp; a rerun gives the same bits; hand cases at +-1000 logits, a
// target that is no class, zero total weight; the launcher's argument checks. Part of
// emul_kernels_test (tests/CMakeLists.txt), beside emul_kernels_test.cpp.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/logit_head.hpp"
#include "tests/emulation/emul.hpp"
#include "tests/support/compare.hpp"
#include "tests/support/softmax_head_case.hpp"

namespace gpu = octa::gpu;
namespace tol = octa::test::tol;
using Catch::Contains;
using octa::test::SoftmaxHeadCase;
using octa::test::SoftmaxHeadResult;

namespace {

// "Device" memory for the emulated kernels: host vectors, created poisoned (0xFF bytes: NaN in
// every float) where asked.
struct HostMemory {
  template <class T>
  std::vector<T> upload(const std::vector<T>& v) const {
    return v;
  }
  template <class T>
  std::vector<T> poisoned(std::size_t n) const {
    std::vector<T> v(n);
    std::memset(v.data(), 0xFF, n * sizeof(T));
    return v;
  }
  template <class T>
  std::vector<T> download(const std::vector<T>& v) const {
    return v;
  }
  cudaStream_t stream() const { return nullptr; }
};

// Every launch of the case was followed by cudaGetLastError() (OCTA_CUDA_CHECK_LAUNCH).
void check_launches_checked() {
  std::string unchecked;
  for (const std::string& u : emul::unchecked_launches()) unchecked += u + "\n";
  INFO(unchecked);
  CHECK(unchecked.empty());
  CHECK(!emul::launches().empty());
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("emulated multi-class training head matches fc2, softmax CE and the backward on the CPU",
          "[emul][loss][multiclass]") {
  emul::reset();
  HostMemory mem;
  for (const SoftmaxHeadCase& c : octa::test::softmax_head_cases()) {
    INFO(c.str());
    const SoftmaxHeadResult got = octa::test::run_softmax_head(mem, c);
    c.check(got, tol::kGpuVsCpu);
    // The loss and dlogits are the CPU's softmax_cross_entropy of the kernel's own logits.
    std::vector<float> dlogits(c.logit_size());
    const double mean =
        octa::cpu::softmax_cross_entropy(dlogits.data(), got.logits.data(), c.targets.data(), c.N,
                                         c.C, c.weights_or_null(), c.label_smoothing);
    const auto batch = static_cast<float>(mean);
    OCTA_CHECK_CLOSE("head dlogits vs softmax_cross_entropy of its logits", got.dlogits.data(),
                     dlogits.data(), dlogits.size(), tol::kGpuVsCpu);
    OCTA_CHECK_CLOSE("head loss vs softmax_cross_entropy of its logits", &got.batch_loss, &batch, 1,
                     tol::kGpuVsCpu);
    if (c.N == 300) {
      // Deterministic: a second run (the threads scheduled differently) gives the same bits.
      const SoftmaxHeadResult again = octa::test::run_softmax_head(mem, c);
      CHECK(same_bits(again.logits, got.logits));
      CHECK(same_bits(again.dlogits, got.dlogits));
      CHECK(same_bits(again.dweight, got.dweight));
      CHECK(same_bits(again.dhidden, got.dhidden));
      CHECK(std::memcmp(&again.loss_sum, &got.loss_sum, sizeof(double)) == 0);
    }
  }
  check_launches_checked();
}

TEST_CASE("emulated multi-class head: logits of +-1000, a target that is no class, zero weight",
          "[emul][loss][multiclass]") {
  emul::reset();
  HostMemory mem;
  // K = 1, x = 1: the logits are fc2's weights, (1000, -1000, -1000) for every row.
  SoftmaxHeadCase c(4, 1, 3, false, false, 0.0f, 850);
  c.relu_out = c.x = {1.0f, 1.0f, 1.0f, 1.0f};
  c.weight = {1000.0f, -1000.0f, -1000.0f};
  c.bias = {0.0f, 0.0f, 0.0f};
  c.targets = {0.0f, 0.0f, 1.0f, 0.0f};  // three certain and right, one certain and wrong
  c.reference();
  const SoftmaxHeadResult r = octa::test::run_softmax_head(mem, c);
  c.check(r, tol::kGpuVsCpu);
  const float quarter_of_2000 = 500.0f;
  CHECK(r.batch_loss == quarter_of_2000);
  // Row 2: +1/4 on the winner, -1/4 on the target; the certain rows' gradients are 0.
  const std::vector<float> row2{0.25f, -0.25f, 0.0f};
  OCTA_CHECK_CLOSE("dlogits of the wrong row", r.dlogits.data() + 6, row2.data(), 3,
                   tol::kGpuVsCpu);

  // A target that is no class index: NaN everywhere it reaches, nothing thrown.
  SoftmaxHeadCase bad(3, 4, 3, false, false, 0.1f, 860);
  bad.targets[1] = 1.5f;
  const SoftmaxHeadResult nan = octa::test::run_softmax_head(mem, bad);
  CHECK(std::isnan(nan.batch_loss));
  CHECK(std::isnan(nan.loss_sum));
  CHECK(std::isnan(nan.dlogits[0]));
  CHECK(std::isnan(nan.dweight[0]));

  // Every target in a class of weight 0: 0 / 0 (PyTorch's NaN), as the CPU reference.
  SoftmaxHeadCase zero(3, 4, 3, false, true, 0.0f, 870);
  zero.targets = {1.0f, 1.0f, 1.0f};
  zero.class_weight = {1.0f, 0.0f, 1.0f};
  const SoftmaxHeadResult z = octa::test::run_softmax_head(mem, zero);
  CHECK(std::isnan(z.batch_loss));
  CHECK(std::isnan(octa::cpu::softmax_cross_entropy<float>(
      nullptr, z.logits.data(), zero.targets.data(), 3, 3, zero.class_weight.data(), 0.0f)));
  check_launches_checked();
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
