// tests/test_gpu_conv.cpp: the argument checks of octa's own 3x3 convolution launchers, on the CUDA
// cores (kernels/conv3x3.hpp) and on the tensor cores (kernels/conv3x3_tc.hpp), which run before
// any CUDA call and so are tested without a device too. What the launchers compute, on every
// shape, is checked by the case table's runners (engine/selfcheck/conv_cases.cpp; on a GPU by
// test_gpu_cases.cpp, in CI on the kernel emulator).
#include <catch2/catch.hpp>

#include <string>

#include "engine/core/error.hpp"
#include "engine/selfcheck/kernel_cases.hpp"
#include "kernels/conv3x3.hpp"

namespace gpu = octa::gpu;

namespace {

using ConvKernels = octa::selfcheck::ConvLaunchers;
const ConvKernels& kCudaCore = octa::selfcheck::kCudaCoreConv;
const ConvKernels& kTensorCore = octa::selfcheck::kTensorCoreConv;

// The argument checks both sets share (kernels/conv3x3_plan.hpp's size checks, then the
// pointers): each message names the launcher and the argument.
void check_argument_errors(const ConvKernels& k) {
  using Catch::Contains;
  float dummy[1] = {0.f};
  float* p = dummy;
  const gpu::Epilogue none = gpu::Epilogue::kNone;
  const std::string fwd = k.name("forward"), pool = k.name("relu_maxpool_forward"),
                    data = k.name("backward_data"), filter = k.name("backward_filter");
  INFO(k.prefix);

  CHECK_THROWS_AS(k.forward(p, p, p, p, 0, 1, 1, 4, 4, none, nullptr), octa::Error);
  CHECK_THROWS_WITH(k.forward(p, p, p, p, 0, 1, 1, 4, 4, none, nullptr),
                    Contains(fwd + ": N = 0 must be positive"));
  CHECK_THROWS_WITH(k.forward(p, p, p, p, 1, -2, 1, 4, 4, none, nullptr),
                    Contains(fwd + ": Cin = -2 must be positive"));
  CHECK_THROWS_WITH(k.forward(p, p, p, p, 1, 1, 0, 4, 4, none, nullptr),
                    Contains(fwd + ": Cout = 0 must be positive"));
  CHECK_THROWS_WITH(k.forward(p, p, p, p, 1, 1, 1, 0, 4, none, nullptr),
                    Contains(fwd + ": H = 0 must be positive"));
  CHECK_THROWS_WITH(k.forward(p, p, p, p, 1, 1, 1, 4, -1, none, nullptr),
                    Contains(fwd + ": W = -1 must be positive"));
  CHECK_THROWS_WITH(k.forward(p, p, p, p, 1, 1, 1, 65536, 65536, none, nullptr),
                    Contains(fwd) && Contains("H * W = 4294967296 is too large"));
  CHECK_THROWS_WITH(k.forward(p, nullptr, p, p, 1, 1, 1, 4, 4, none, nullptr),
                    Contains(fwd + ": in must not be null"));
  CHECK_THROWS_WITH(k.forward(p, p, p, nullptr, 1, 1, 1, 4, 4, none, nullptr),
                    Contains(fwd + ": bias must not be null"));
  CHECK_THROWS_WITH(k.forward(p, p, p, p, 1, 1, 1, 4, 4, static_cast<gpu::Epilogue>(7), nullptr),
                    Contains(fwd + ": unknown epilogue 7"));

  CHECK_THROWS_WITH(k.relu_maxpool_forward(p, p, p, p, p, 2, 3, 5, 5, 8, nullptr),
                    Contains(pool + ": H = 5 and W = 8") && Contains("must both be even"));
  CHECK_THROWS_WITH(k.relu_maxpool_forward(p, p, p, p, p, 0, 3, 5, 6, 8, nullptr),
                    Contains(pool + ": N = 0 must be positive"));
  CHECK_THROWS_WITH(k.relu_maxpool_forward(p, p, p, p, p, 2, 3, 0, 6, 8, nullptr),
                    Contains(pool + ": Cout = 0 must be positive"));
  CHECK_THROWS_WITH(k.relu_maxpool_forward(p, nullptr, p, p, p, 2, 3, 5, 6, 8, nullptr),
                    Contains(pool + ": act must not be null"));
  CHECK_THROWS_WITH(k.relu_maxpool_forward(nullptr, p, p, p, p, 2, 3, 5, 6, 8, nullptr),
                    Contains(pool + ": pooled must not be null"));

  CHECK_THROWS_WITH(k.backward_data(p, p, p, 0, 2, 5, 6, 8, nullptr),
                    Contains(data + ": N = 0 must be positive"));
  CHECK_THROWS_WITH(k.backward_data(p, p, p, 3, 0, 5, 6, 8, nullptr),
                    Contains(data + ": Cin = 0 must be positive"));
  CHECK_THROWS_WITH(k.backward_data(nullptr, p, p, 3, 2, 5, 6, 8, nullptr),
                    Contains(data + ": din must not be null"));
  CHECK_THROWS_WITH(k.backward_data(p, p, nullptr, 3, 2, 5, 6, 8, nullptr),
                    Contains(data + ": weight must not be null"));

  CHECK_THROWS_WITH(k.backward_filter(p, p, p, p, 0, 2, 3, 4, 4, p, nullptr),
                    Contains(filter + ": N = 0 must be positive"));
  CHECK_THROWS_WITH(k.backward_filter(p, p, p, p, -1, 2, 3, 4, 4, p, nullptr),
                    Contains(filter + ": N = -1 must be positive"));
  CHECK_THROWS_WITH(k.backward_filter(p, nullptr, p, p, 1, 2, 3, 4, 4, p, nullptr),
                    Contains(filter + ": dbias must not be null"));
  CHECK_THROWS_WITH(k.backward_filter(p, p, p, p, 1, 2, 3, 4, 4, nullptr, nullptr),
                    Contains(filter + ": workspace") && Contains("must not be null"));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Argument checks

// No OCTA_REQUIRE_GPU: every launcher validates its arguments before its first CUDA call, so these
// throw the same octa::Error with or without a device (a launch reaching the device would fail
// differently, with a CudaError that names no size).
TEST_CASE("conv3x3_tc launchers reject bad sizes and null pointers, naming the launcher",
          "[conv][check][tc]") {
  check_argument_errors(kTensorCore);
}

TEST_CASE("conv3x3 launchers reject bad sizes and null pointers, naming the problem",
          "[conv][check]") {
  check_argument_errors(kCudaCore);
  // The checks only the CUDA-core launchers have: their grid limits differ from the tensor
  // cores', and the workspace's size function and the max-pool-fused filter gradient are theirs.
  using Catch::Contains;
  float dummy[1] = {0.f};
  float* p = dummy;
  const gpu::Epilogue none = gpu::Epilogue::kNone;
  CHECK_THROWS_WITH(gpu::conv3x3_forward(p, p, p, p, 1, 1, 70000 * 16, 4, 4, none, nullptr),
                    Contains("conv3x3_forward") && Contains("more than the grid allows"));
  CHECK_THROWS_WITH(
      gpu::conv3x3_backward_filter_workspace(1, 1, 1, 4, 0),
      Contains("conv3x3_backward_filter_workspace") && Contains("W = 0 must be positive"));
  CHECK_THROWS_WITH(
      gpu::conv3x3_backward_filter_from_maxpool(p, p, p, p, p, 1, 2, 3, 5, 4, p, nullptr),
      Contains("conv3x3_backward_filter_from_maxpool") && Contains("must both be even"));
}
