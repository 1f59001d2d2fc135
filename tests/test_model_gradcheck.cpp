// tests/test_model_gradcheck.cpp: whole-model gradient checks in double. For models A and B in
// training mode (BatchNorm batch statistics, a fixed dropout mask), every parameter tensor's
// analytic gradient of the mean BCE-with-logits loss is compared with central differences.
#include <catch2/catch.hpp>

#include <vector>

#include "engine/cpu/ops.hpp"
#include "engine/model/cpu_model.hpp"
#include "engine/model/param_table.hpp"
#include "tests/support/gradcheck.hpp"

using octa::Arch;
using octa::ParamTable;

namespace {

constexpr int kBatch = 3;
constexpr std::uint64_t kDropoutSeed = 21, kDropoutStream = 4;

void check_model(Arch arch, double pos_weight) {
  const ParamTable table = ParamTable::for_arch(arch);
  std::vector<float> init(table.num_total());
  octa::init_parameters(table, init.data(), 17);
  std::vector<double> state(init.begin(), init.end());
  // BatchNorm's affine parameters away from their 1/0 initial values, so their gradients matter.
  for (const auto& e : table.entries()) {
    if (e.kind == octa::ParamKind::kBnWeight || e.kind == octa::ParamKind::kBnBias) {
      const auto r = octa::test::random_vector<double>(e.numel, e.offset, -0.5, 0.5);
      for (std::size_t i = 0; i < e.numel; ++i) {
        state[e.offset + i] = (e.kind == octa::ParamKind::kBnWeight ? 1.0 : 0.0) + r[i];
      }
    }
  }
  const auto x = octa::test::random_vector<double>(kBatch * 28 * 28, 5);
  const std::vector<double> targets = {1.0, 0.0, 1.0};
  octa::CpuModel<double> net(table, kBatch);
  std::vector<double> logits(kBatch), dlogits(kBatch), grads(table.num_trainable());
  const std::vector<double> buffers(
      state.begin() + static_cast<std::ptrdiff_t>(table.num_trainable()), state.end());

  const auto loss = [&]() {
    // Training-mode forward updates the running statistics; restore them so that every call sees
    // the same state (they do not affect the training-mode output, but the check must be pure).
    std::copy(buffers.begin(), buffers.end(),
              state.begin() + static_cast<std::ptrdiff_t>(table.num_trainable()));
    net.forward(state.data(), x.data(), kBatch, true, kDropoutSeed, kDropoutStream, logits.data());
    return octa::cpu::bce_with_logits<double>(nullptr, logits.data(), targets.data(), kBatch,
                                              pos_weight);
  };
  loss();
  octa::cpu::bce_with_logits<double>(dlogits.data(), logits.data(), targets.data(), kBatch,
                                     pos_weight);
  std::fill(grads.begin(), grads.end(), std::nan(""));  // every gradient must be written
  net.backward(state.data(), dlogits.data(), grads.data());

  for (const auto& e : table.entries()) {
    if (!e.trainable()) continue;
    std::vector<std::size_t> idx;
    for (const std::size_t i : octa::test::sample_indices(e.numel, 16, e.offset)) {
      idx.push_back(e.offset + i);
    }
    const auto r = octa::test::gradcheck(loss, state.data(), grads.data(), idx, 1e-6,
                                         octa::test::tol::kModelGradCheck, e.name);
    INFO("model " << octa::arch_name(arch) << " " << e.name);
    OCTA_CHECK_GRADCHECK(r, 0.1);
  }
}

}  // namespace

TEST_CASE("Model A: whole-model gradients match central differences", "[cpu][gradcheck][model]") {
  check_model(Arch::kA, 1.0);
}

TEST_CASE("Model B: whole-model gradients match central differences (BatchNorm, GAP, dropout)",
          "[cpu][gradcheck][model]") {
  check_model(Arch::kB, 1.0);
}

TEST_CASE("Model B with pos_weight: gradients still match", "[cpu][gradcheck][model]") {
  check_model(Arch::kB, 2.5);
}
