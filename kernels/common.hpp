// kernels/common.hpp: what every kernel launcher shares: the epilogue choice and launch helpers.
// Launchers are declared in plain headers (includable from host C++), implemented in .cu files,
// and mirror the CPU reference in engine/cpu/ops.hpp name for name and argument for argument
// (outputs, saved statistics, inputs, sizes), with the CUDA stream last.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace octa::gpu {

// What a fused kernel applies to its result before storing it.
enum class Epilogue { kNone, kRelu };

// Blocks needed to cover n items with `threads` per block.
inline unsigned int blocks_for(std::size_t n, unsigned int threads) {
  return static_cast<unsigned int>((n + threads - 1) / threads);
}

}  // namespace octa::gpu
