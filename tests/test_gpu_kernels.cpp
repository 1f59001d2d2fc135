// tests/test_gpu_kernels.cpp: the argument checks of every non-convolution CUDA launcher
// (kernels/pool, batchnorm, elementwise, loss, optimizer), which run before the launcher touches
// the device and so are tested without one. What the kernels compute, at the models' shapes and at
// odd ones, is checked by the case table's runners (engine/selfcheck/layer_cases.cpp; on a GPU by
// test_gpu_cases.cpp, which also runs every case twice for bit-identical results; in CI on the
// kernel emulator).
#include <catch2/catch.hpp>

#include <limits>

#include "engine/core/error.hpp"
#include "kernels/batchnorm.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/loss.hpp"
#include "kernels/optimizer.hpp"
#include "kernels/pool.hpp"

namespace gpu = octa::gpu;
using octa::gpu::Epilogue;

TEST_CASE("GPU launchers reject bad arguments with a message, before touching the device",
          "[gpu][kernels][args]") {
  CHECK_THROWS_WITH(gpu::maxpool2x2_forward(nullptr, nullptr, 1, 1, 3, 4, nullptr),
                    Catch::Contains("maxpool2x2_forward") && Catch::Contains("must both be even"));
  CHECK_THROWS_WITH(gpu::maxpool2x2_backward(nullptr, nullptr, nullptr, 0, 1, 2, 2, false, nullptr),
                    Catch::Contains("N = 0 must be positive"));
  CHECK_THROWS_WITH(gpu::global_avgpool_forward(nullptr, nullptr, 1, 1, 0, nullptr),
                    Catch::Contains("HW = 0 must be positive"));
  // PyTorch's rule: one value per channel has no unbiased variance.
  CHECK_THROWS_WITH(
      gpu::batchnorm_forward_train(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                   nullptr, 1, 4, 1, 1e-5f, 0.1f, Epilogue::kNone, nullptr),
      Catch::Contains("batchnorm_forward_train") && Catch::Contains("must exceed 1"));
  CHECK_THROWS_WITH(
      gpu::batchnorm_forward_train(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                   nullptr, 2, 4, 1, 1e-5f, 1.5f, Epilogue::kNone, nullptr),
      Catch::Contains("momentum"));
  CHECK_THROWS_WITH(gpu::batchnorm_forward_eval(nullptr, nullptr, nullptr, nullptr, nullptr,
                                                nullptr, 1, 4, 4, -1.0f, Epilogue::kNone, nullptr),
                    Catch::Contains("eps"));
  CHECK_THROWS_WITH(gpu::bias_backward(nullptr, nullptr, 4, 0, nullptr),
                    Catch::Contains("C = 0 must be positive"));
  CHECK_THROWS_WITH(
      gpu::dropout_forward(nullptr, nullptr, nullptr, 10, 1.0f, 1, 2, nullptr, nullptr),
      Catch::Contains("dropout_forward") && Catch::Contains("[0, 1)"));
  CHECK_THROWS_WITH(gpu::bce_with_logits(nullptr, nullptr, nullptr, nullptr, nullptr, 4,
                                         std::numeric_limits<float>::infinity(), nullptr),
                    Catch::Contains("pos_weight"));
  CHECK_THROWS_WITH(
      gpu::bce_with_logits(nullptr, nullptr, nullptr, nullptr, nullptr, 0, 1.0f, nullptr),
      Catch::Contains("N = 0 must be positive"));
  const gpu::AdamParams bad_adam{0.0, 0.9, 0.999, 1e-8, 0.0};
  CHECK_THROWS_WITH(
      gpu::adam_update(nullptr, nullptr, nullptr, nullptr, 16, bad_adam, nullptr, nullptr),
      Catch::Contains("adam_update") && Catch::Contains("lr"));
  const gpu::AdamParams bad_beta{1e-3, 1.0, 0.999, 1e-8, 0.0};
  CHECK_THROWS_WITH(
      gpu::adam_update(nullptr, nullptr, nullptr, nullptr, 16, bad_beta, nullptr, nullptr),
      Catch::Contains("beta1"));
  const gpu::SgdParams bad_sgd{0.1, 0.0, 0.0, 0.0, true};
  CHECK_THROWS_WITH(gpu::sgd_update(nullptr, nullptr, nullptr, 16, bad_sgd, nullptr, nullptr),
                    Catch::Contains("nesterov"));
  // Valid sizes with a missing buffer: named, not a crash on the device.
  const gpu::AdamParams ok_adam{1e-3, 0.9, 0.999, 1e-8, 0.0};
  CHECK_THROWS_WITH(
      gpu::adam_update(nullptr, nullptr, nullptr, nullptr, 16, ok_adam, nullptr, nullptr),
      Catch::Contains("params must not be null"));
}
