// tests/test_model_gradcheck.cpp: whole-model gradient checks in double. For models A and B in
// training mode (BatchNorm batch statistics, a fixed dropout mask), every parameter tensor's
// analytic gradient of the mean BCE-with-logits loss (one output) or of the softmax cross-entropy
// (K outputs, fc2.weight [K, 128]; with class weights and label smoothing) is compared with
// central differences.
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

// num_classes 1: BCE with pos_weight; K > 1: softmax cross-entropy, weighted when class_weight.
void check_model(Arch arch, double pos_weight, int num_classes = 1, bool class_weight = false,
                 double label_smoothing = 0.0) {
  const ParamTable table = ParamTable::for_arch(arch, num_classes);
  const auto K = static_cast<std::size_t>(num_classes);
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
  const std::vector<double> targets =
      num_classes == 1
          ? std::vector<double>{1.0, 0.0, 1.0}
          : std::vector<double>{3.0 * (num_classes > 3), 1.0, static_cast<double>(K - 1)};
  std::vector<double> weights;
  if (class_weight) weights = octa::test::random_vector<double>(K, 99, 0.2, 2.0);
  octa::CpuModel<double> net(table, kBatch);
  std::vector<double> logits(kBatch * K), dlogits(kBatch * K), grads(table.num_trainable());
  // The loss of the logits (and its gradient into d, when not null).
  const auto criterion = [&](double* d) {
    if (num_classes == 1) {
      return octa::cpu::bce_with_logits<double>(d, logits.data(), targets.data(), kBatch,
                                                pos_weight);
    }
    return octa::cpu::softmax_cross_entropy<double>(
        d, logits.data(), targets.data(), kBatch, num_classes,
        weights.empty() ? nullptr : weights.data(), label_smoothing);
  };
  const std::vector<double> buffers(
      state.begin() + static_cast<std::ptrdiff_t>(table.num_trainable()), state.end());

  const auto loss = [&]() {
    // Training-mode forward updates the running statistics; restore them so that every call sees
    // the same state (they do not affect the training-mode output, but the check must be pure).
    std::copy(buffers.begin(), buffers.end(),
              state.begin() + static_cast<std::ptrdiff_t>(table.num_trainable()));
    net.forward(state.data(), x.data(), kBatch, true, kDropoutSeed, kDropoutStream, logits.data());
    return criterion(nullptr);
  };
  loss();
  criterion(dlogits.data());
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
    INFO("model " << octa::arch_name(arch) << ", " << num_classes << " outputs, " << e.name);
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

TEST_CASE("Model A with ten classes: softmax cross-entropy gradients match central differences",
          "[cpu][gradcheck][model][multiclass]") {
  check_model(Arch::kA, 1.0, 10);
}

TEST_CASE("Model B with ten classes: gradients match (BatchNorm, GAP, dropout, K outputs)",
          "[cpu][gradcheck][model][multiclass]") {
  check_model(Arch::kB, 1.0, 10);
}

TEST_CASE("Model B with ten classes, class weights and label smoothing: gradients match",
          "[cpu][gradcheck][model][multiclass]") {
  check_model(Arch::kB, 1.0, 10, /*class_weight=*/true, /*label_smoothing=*/0.1);
}

TEST_CASE("The parameter table: fc2 has one output per class, PyTorch's shapes",
          "[cpu][model][multiclass]") {
  const ParamTable binary = ParamTable::for_arch(Arch::kA);
  const ParamTable ten = ParamTable::for_arch(Arch::kA, 10);
  CHECK(binary.num_classes() == 1);
  CHECK_FALSE(binary.multiclass());
  CHECK(ten.multiclass());
  CHECK(binary.num_trainable() == 420481);
  CHECK(ten.num_trainable() == 420481 + 9 * 128 + 9);
  CHECK(ten.at("fc2.weight").shape == std::vector<std::int64_t>{10, 128});
  CHECK(ten.at("fc2.bias").shape == std::vector<std::int64_t>{10});
  CHECK(ParamTable::for_arch(Arch::kB, 3).at("fc2.weight").shape ==
        std::vector<std::int64_t>{3, 128});
  CHECK_THROWS_WITH(ParamTable::for_arch(Arch::kA, 0), Catch::Contains("0 classes"));
  CHECK_THROWS_WITH(ParamTable::for_arch(Arch::kA, 257), Catch::Contains("2..256"));
}
