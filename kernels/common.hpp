// kernels/common.hpp: what every kernel launcher shares: the epilogue choice and launch helpers.
// Launchers are declared in plain headers (includable from host C++), implemented in .cu files,
// and mirror the CPU reference in engine/cpu/ops.hpp name for name and argument for argument
// (outputs, saved statistics, inputs, sizes), with the CUDA stream last.
#pragma once

#include <algorithm>
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

// Blocks for a grid-stride loop over n items: enough to cover n, at least one, at most
// max_blocks (beyond that, more blocks only add scheduling overhead; the loop covers the rest).
inline unsigned int grid_stride_blocks(std::size_t n, unsigned int threads,
                                       unsigned int max_blocks = 1u << 16) {
  return std::max(1u, std::min(blocks_for(n, threads), max_blocks));
}

}  // namespace octa::gpu
