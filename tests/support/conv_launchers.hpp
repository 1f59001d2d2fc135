// tests/support/conv_launchers.hpp: octa's two implementations of the four 3x3-convolution
// launchers, as a table the tests iterate over: the CUDA-core kernels (kernels/conv3x3.hpp) and
// the tensor-core ones (kernels/conv3x3_tc.hpp), which take the same arguments and must give the
// same results within the same tolerance. Used by the GPU tests (test_gpu_conv.cpp) and the
// emulated ones (tests/emulation/), which link the real or the emulated launchers respectively.
#pragma once

#include <string>

#include "kernels/conv3x3.hpp"
#include "kernels/conv3x3_tc.hpp"

namespace octa::test {

struct ConvLaunchers {
  const char* prefix;  // the launchers are <prefix>_forward, <prefix>_relu_maxpool_forward, ...
  decltype(&gpu::conv3x3_forward) forward;
  decltype(&gpu::conv3x3_relu_maxpool_forward) relu_maxpool_forward;
  decltype(&gpu::conv3x3_backward_data) backward_data;
  decltype(&gpu::conv3x3_backward_filter) backward_filter;

  std::string name(const char* pass) const { return std::string(prefix) + "_" + pass; }
};

inline const ConvLaunchers kCudaCoreConv{
    "conv3x3", &gpu::conv3x3_forward, &gpu::conv3x3_relu_maxpool_forward,
    &gpu::conv3x3_backward_data, &gpu::conv3x3_backward_filter};
inline const ConvLaunchers kTensorCoreConv{
    "conv3x3_tc", &gpu::conv3x3_tc_forward, &gpu::conv3x3_tc_relu_maxpool_forward,
    &gpu::conv3x3_tc_backward_data, &gpu::conv3x3_tc_backward_filter};

}  // namespace octa::test
