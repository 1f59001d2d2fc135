// engine/selfcheck/case_table.hpp: the whole case table, as the GPU runners (octa_selftest, the
// [gpu] tests, train_gpu's --conv auto check) run it: the cases of octa's own kernels
// (kernel_cases.hpp, which the kernel emulator runs too), then the cases of the library paths that
// only a GPU runs: cuDNN's convolutions (the --conv cudnn path, engine/gpu/cudnn_conv.hpp) and the
// cuBLAS linear layers (engine/gpu/linear.hpp) every path uses.
#pragma once

#include <vector>

#include "engine/selfcheck/kernel_cases.hpp"

namespace octa::selfcheck {

// The cuDNN and cuBLAS cases (gpu_library: run on a CudaCaseDevice only).
std::vector<KernelCase> library_cases();

// kernel_cases(options), then library_cases().
std::vector<KernelCase> all_cases(const CaseOptions& options = {});

}  // namespace octa::selfcheck
