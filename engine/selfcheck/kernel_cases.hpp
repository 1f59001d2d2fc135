// engine/selfcheck/kernel_cases.hpp: the cases of octa's own CUDA kernels (kernels/*.cu), the part
// of the case table that compiles both into the octa library (real launchers) and into the kernel
// emulator's test (the same launchers rewritten into host C++). The cuDNN and cuBLAS cases, which
// only a GPU runs, are added by case_table.hpp.
//
// The convolution cases call their launchers through ConvLaunchers, so that a test can hand the
// table a deliberately broken copy of one (CaseOptions) and prove that the runners reject it; the
// defaults are octa's real launchers, and nothing but a test passes others.
#pragma once

#include <string>
#include <vector>

#include "engine/selfcheck/kernel_case.hpp"
#include "kernels/conv3x3.hpp"
#include "kernels/conv3x3_tc.hpp"

namespace octa::selfcheck {

// One implementation of the 3x3-convolution launchers, which take the same arguments.
struct ConvLaunchers {
  const char* prefix;  // the launchers are <prefix>_forward, <prefix>_relu_maxpool_forward, ...
  decltype(&gpu::conv3x3_forward) forward;
  decltype(&gpu::conv3x3_relu_maxpool_forward) relu_maxpool_forward;
  decltype(&gpu::conv3x3_backward_data) backward_data;
  decltype(&gpu::conv3x3_backward_filter) backward_filter;
  // Model B's fused BatchNorm (fused_bn_cases.cpp): the forward with BatchNorm's statistics from
  // its epilogue, and how many tiles of statistics it writes.
  decltype(&gpu::conv3x3_forward_bn_stats) forward_bn_stats;
  decltype(&gpu::conv3x3_bn_stats_tiles) bn_stats_tiles;

  std::string name(const char* pass) const { return std::string(prefix) + "_" + pass; }
};

inline const ConvLaunchers kCudaCoreConv{"conv3x3",
                                         &gpu::conv3x3_forward,
                                         &gpu::conv3x3_relu_maxpool_forward,
                                         &gpu::conv3x3_backward_data,
                                         &gpu::conv3x3_backward_filter,
                                         &gpu::conv3x3_forward_bn_stats,
                                         &gpu::conv3x3_bn_stats_tiles};
inline const ConvLaunchers kTensorCoreConv{"conv3x3_tc",
                                           &gpu::conv3x3_tc_forward,
                                           &gpu::conv3x3_tc_relu_maxpool_forward,
                                           &gpu::conv3x3_tc_backward_data,
                                           &gpu::conv3x3_tc_backward_filter,
                                           &gpu::conv3x3_tc_forward_bn_stats,
                                           &gpu::conv3x3_tc_bn_stats_tiles};

struct CaseOptions {
  ConvLaunchers cuda_core = kCudaCoreConv;
  ConvLaunchers tensor_core = kTensorCoreConv;
};

// The convolution cases: every shape on both implementations (forward with each epilogue, the
// fused ReLU + max-pool forward, backward data, backward filter), and the CUDA cores' filter
// gradient straight from the max-pool's gradient.
std::vector<KernelCase> conv_cases(const CaseOptions& options);
// Pooling, BatchNorm, bias/ReLU/dropout, BCE, the fused training head, Adam and SGD.
std::vector<KernelCase> layer_cases();
// Model B's fused conv + BatchNorm + ReLU + pool: the training forward on both implementations
// (at ordinary inputs and at a large common offset), its backward, the folded eval form.
std::vector<KernelCase> fused_bn_cases(const CaseOptions& options);
// Model B's two stages with the fused BatchNorm, as the CUDA backend runs them, over a few Adam
// steps against the CPU's unfused chain (fused_bn_step_case.cpp).
std::vector<KernelCase> fused_bn_step_cases(const CaseOptions& options);
// All four, in that order.
std::vector<KernelCase> kernel_cases(const CaseOptions& options = {});

}  // namespace octa::selfcheck
