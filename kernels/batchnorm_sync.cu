// kernels/batchnorm_sync.cu: the device side of synchronised BatchNorm around the all-gathers
// (kernels/batchnorm_sync.hpp): one thread per channel (or per element), every sum in a fixed
// order, no atomics. A few hundred values per layer: these kernels are latency, not bandwidth.
#include "kernels/batchnorm_sync.hpp"

#include <cstddef>

#include "engine/core/error.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/nvtx.hpp"
#include "kernels/launch_checks.hpp"

namespace octa::gpu {

namespace {

using cuda::NvtxRange;

// A warp per block: a few hundred values, and more than one block for a layer's channels.
constexpr unsigned int kThreads = 32;

std::size_t sz(int v) {
  return static_cast<std::size_t>(v);
}

// Channel c's tiles merged as the forward kernel merges them (shifted sums about tile 0's mean):
// the count, mean and sum of squared deviations, into out[c], out[C + c], out[2C + c].
__global__ void batchnorm_sync_pack_stats_kernel(double* __restrict__ out,
                                                 const double* __restrict__ stats, int C,
                                                 int tiles) {
  const std::size_t third = static_cast<std::size_t>(C) * static_cast<std::size_t>(tiles);
  for (int c = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); c < C;
       c += static_cast<int>(gridDim.x * blockDim.x)) {
    const double* count_t = stats + static_cast<std::size_t>(c) * static_cast<std::size_t>(tiles);
    const double* mean_t = count_t + third;
    const double* m2_t = mean_t + third;
    const double shift = mean_t[0];
    double n = 0.0, s1 = 0.0, s2 = 0.0;
    for (int t = 0; t < tiles; ++t) {
      const double nt = count_t[t], d = mean_t[t] - shift;
      n += nt;
      s1 += nt * d;
      s2 += m2_t[t] + nt * d * d;
    }
    const double m2 = s2 - s1 * s1 / n;
    out[c] = n;
    out[C + c] = shift + s1 / n;
    out[2 * C + c] = m2 < 0.0 ? 0.0 : m2;
  }
}

// stats[(k * C + c) * ranks + r] = gathered[r * 3C + k * C + c], k = 0, 1, 2.
__global__ void batchnorm_sync_unpack_stats_kernel(double* __restrict__ stats,
                                                   const double* __restrict__ gathered, int C,
                                                   int ranks) {
  const std::size_t per_rank = 3 * static_cast<std::size_t>(C);
  const std::size_t total = per_rank * static_cast<std::size_t>(ranks);
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t r = i / per_rank, kc = i % per_rank;
    stats[kc * static_cast<std::size_t>(ranks) + r] = gathered[i];
  }
}

// out[c] = weight * sum_b workspace[c * blocks + b], out[C + c] the same of the second half.
__global__ void batchnorm_sync_pack_sums_kernel(double* __restrict__ out,
                                                const double* __restrict__ workspace, int C,
                                                int blocks, double weight) {
  for (int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); i < 2 * C;
       i += static_cast<int>(gridDim.x * blockDim.x)) {
    const double* s = workspace + static_cast<std::size_t>(i) * static_cast<std::size_t>(blocks);
    double a = 0.0;
    for (int b = 0; b < blocks; ++b) a += s[b];
    out[i] = weight * a;
  }
}

// workspace[i * blocks] = sum_r gathered[r * 2C + i] in rank order, workspace[i * blocks + b] = 0
// for b > 0, i over the 2C sums.
__global__ void batchnorm_sync_unpack_sums_kernel(double* __restrict__ workspace,
                                                  const double* __restrict__ gathered, int C,
                                                  int blocks, int ranks) {
  const std::size_t total = 2 * static_cast<std::size_t>(C) * static_cast<std::size_t>(blocks);
  for (std::size_t j = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; j < total;
       j += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t i = j / static_cast<std::size_t>(blocks);
    double a = 0.0;
    if (j % static_cast<std::size_t>(blocks) == 0) {
      for (int r = 0; r < ranks; ++r) {
        a += gathered[static_cast<std::size_t>(r) * 2 * static_cast<std::size_t>(C) + i];
      }
    }
    workspace[j] = a;
  }
}

void check_channels(const char* op, int C, const char* count_name, int count) {
  require_positive(op, "C", C);
  require_positive(op, count_name, count);
}

}  // namespace

void batchnorm_sync_pack_stats(double* out, const double* stats, int C, int tiles,
                               cudaStream_t stream) {
  const char* op = "batchnorm_sync_pack_stats";
  check_channels(op, C, "tiles", tiles);
  require_pointer(op, "out", out);
  require_pointer(op, "stats", stats);
  NvtxRange range(op);
  batchnorm_sync_pack_stats_kernel<<<grid_stride_blocks(sz(C), kThreads), kThreads, 0, stream>>>(
      out, stats, C, tiles);
  OCTA_CUDA_CHECK_LAUNCH();
}

void batchnorm_sync_unpack_stats(double* stats, const double* gathered, int C, int ranks,
                                 cudaStream_t stream) {
  const char* op = "batchnorm_sync_unpack_stats";
  check_channels(op, C, "ranks", ranks);
  require_pointer(op, "stats", stats);
  require_pointer(op, "gathered", gathered);
  require(stats != gathered, op, "stats must not overwrite the gathered slots");
  NvtxRange range(op);
  const std::size_t total = 3 * sz(C) * sz(ranks);
  batchnorm_sync_unpack_stats_kernel<<<grid_stride_blocks(total, kThreads), kThreads, 0, stream>>>(
      stats, gathered, C, ranks);
  OCTA_CUDA_CHECK_LAUNCH();
}

void batchnorm_sync_pack_sums(double* out, const double* workspace, int C, int blocks,
                              double weight, cudaStream_t stream) {
  const char* op = "batchnorm_sync_pack_sums";
  check_channels(op, C, "blocks", blocks);
  require_pointer(op, "out", out);
  require_pointer(op, "workspace", workspace);
  OCTA_CHECK(weight > 0.0 && weight <= 1.0, "{}: weight = {} must be in (0, 1]", op, weight);
  NvtxRange range(op);
  batchnorm_sync_pack_sums_kernel<<<grid_stride_blocks(2 * sz(C), kThreads), kThreads, 0, stream>>>(
      out, workspace, C, blocks, weight);
  OCTA_CUDA_CHECK_LAUNCH();
}

void batchnorm_sync_unpack_sums(double* workspace, const double* gathered, int C, int blocks,
                                int ranks, cudaStream_t stream) {
  const char* op = "batchnorm_sync_unpack_sums";
  check_channels(op, C, "blocks", blocks);
  require_positive(op, "ranks", ranks);
  require_pointer(op, "workspace", workspace);
  require_pointer(op, "gathered", gathered);
  require(workspace != gathered, op, "the workspace must not overwrite the gathered slots");
  NvtxRange range(op);
  const std::size_t total = 2 * sz(C) * sz(blocks);
  batchnorm_sync_unpack_sums_kernel<<<grid_stride_blocks(total, kThreads), kThreads, 0, stream>>>(
      workspace, gathered, C, blocks, ranks);
  OCTA_CUDA_CHECK_LAUNCH();
}

}  // namespace octa::gpu
