// tests/test_gpu_predict.cpp: predict on the CUDA engine: the same logits as the CPU reference
// (within the training-step tolerance) for both models, binary and of ten classes, in several
// batches including a short last one; and the time of 10,000 images, printed for the record. [gpu]:
// skipped without a GPU.
#include <catch2/catch.hpp>

#include <chrono>

#include "engine/core/device_probe.hpp"
#include "engine/model/param_table.hpp"
#include "engine/predict/inference.hpp"
#include "tests/support/compare.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/synthetic.hpp"

namespace {

void gpu_matches_cpu(octa::Arch arch, int num_classes = 1) {
  OCTA_REQUIRE_GPU();
  const auto table = octa::ParamTable::for_arch(arch, num_classes);
  octa::ModelState state;
  state.values.resize(table.num_total());
  octa::init_parameters(table, state.values.data(), 17);
  const auto images = octa::test::synthetic_split(2500, 3);
  auto cpu = octa::predict::make_inference_backend("cpu", arch, 1000, num_classes);
  auto gpu = octa::predict::make_inference_backend("cuda", arch, 1000, num_classes);
  cpu->load(state, nullptr);
  gpu->load(state, nullptr);
  const auto z_cpu = octa::predict::predict_logits(*cpu, images.pixels, images.count, 1000);
  const auto z_gpu = octa::predict::predict_logits(*gpu, images.pixels, images.count, 1000);
  REQUIRE(z_gpu.size() == 2500u * static_cast<unsigned>(num_classes));
  OCTA_CHECK_CLOSE("predict logits", z_gpu.data(), z_cpu.data(), z_cpu.size(),
                   octa::test::tol::kGpuStepVsCpu);
}

}  // namespace

TEST_CASE("GPU predict matches the CPU reference: model A", "[gpu][predict]") {
  gpu_matches_cpu(octa::Arch::kA);
}

TEST_CASE("GPU predict matches the CPU reference: model B", "[gpu][predict]") {
  gpu_matches_cpu(octa::Arch::kB);
}

TEST_CASE("GPU predict matches the CPU reference: ten classes", "[gpu][predict][multiclass]") {
  gpu_matches_cpu(octa::Arch::kA, 10);
  gpu_matches_cpu(octa::Arch::kB, 10);
}

TEST_CASE("GPU predict: the time of 10,000 images, for the record", "[gpu][predict]") {
  OCTA_REQUIRE_GPU();
  const auto table = octa::ParamTable::for_arch(octa::Arch::kA);
  octa::ModelState state;
  state.values.resize(table.num_total());
  octa::init_parameters(table, state.values.data(), 1);
  const auto images = octa::test::synthetic_split(10000, 4);
  auto gpu = octa::predict::make_inference_backend("cuda", octa::Arch::kA, 1000);
  gpu->load(state, nullptr);
  octa::predict::predict_logits(*gpu, images.pixels, 1000, 1000);  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  const auto z = octa::predict::predict_logits(*gpu, images.pixels, images.count, 1000);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  WARN(
      "GPU predict, model A, 10,000 images in batches of 1000 (normalisation on the host "
      "included): "
      << ms << " ms on " << gpu->description());
  CHECK(z.size() == 10000);
}
