// kernels/elementwise.cu: bias + epilogue, the bias gradient, ReLU backward and Philox dropout
// (kernels/elementwise.hpp). The bias gradient reduces in a fixed order (no atomics); dropout draws
// exactly the CPU reference's Philox words, so its mask is bit-identical to cpu::dropout_forward's.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "engine/core/error.hpp"
#include "engine/core/philox.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/nvtx.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/launch_checks.hpp"

namespace octa::gpu {

namespace {

using cuda::NvtxRange;

constexpr unsigned int kThreads = 256;

// bias_backward's block: 32 columns (a warp reads 32 consecutive floats of a row) by kRowGroups
// row groups, each summing every kRowGroups-th row; the groups are then added in a fixed order.
constexpr int kColsPerBlock = 32;
constexpr int kRowGroups = 16;

void require_count(const char* op, std::size_t n) {
  require(n > 0, op, "n = 0: nothing to do (the caller passed an empty tensor)");
}

void check_dropout_p(const char* op, float p) {
  OCTA_CHECK(p >= 0.0f && p < 1.0f, "{}: drop probability p = {} must be in [0, 1)", op, p);
}

// The kept values' scale exactly as cpu::dropout_forward computes it (float arithmetic).
float dropout_scale(float p) {
  return 1.0f / (1.0f - p);
}

// x < 0 -> 0 rather than x > 0 ? x : 0, so that a NaN propagates (as cpu::relu_forward).
__device__ __forceinline__ float apply_epilogue(float x, Epilogue epilogue) {
  return (epilogue == Epilogue::kRelu && x < 0.0f) ? 0.0f : x;
}

__global__ void bias_forward_kernel(float* x, const float* bias, std::size_t total, int C,
                                    Epilogue epilogue) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const auto c = static_cast<int>(i % static_cast<std::size_t>(C));
    x[i] = apply_epilogue(x[i] + bias[c], epilogue);
  }
}

// Block (kColsPerBlock, kRowGroups): thread (tx, ty) sums rows ty, ty + kRowGroups, ... of column
// blockIdx.x * kColsPerBlock + tx in double; thread (tx, 0) then adds the groups 0, 1, 2, ... in
// order. Fixed order throughout, so the result does not vary from run to run.
__global__ void bias_backward_kernel(float* dbias, const float* dout, int N, int C) {
  __shared__ double partial[kRowGroups][kColsPerBlock];
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int c = static_cast<int>(blockIdx.x) * kColsPerBlock + tx;
  double acc = 0.0;
  if (c < C) {
    // A 64-bit row index, so n += kRowGroups cannot overflow for N near INT_MAX.
    for (std::size_t n = static_cast<std::size_t>(ty); n < static_cast<std::size_t>(N);
         n += kRowGroups) {
      acc +=
          static_cast<double>(dout[n * static_cast<std::size_t>(C) + static_cast<std::size_t>(c)]);
    }
  }
  partial[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && c < C) {
    double total = 0.0;
    for (int g = 0; g < kRowGroups; ++g) total += partial[g][tx];
    dbias[c] = static_cast<float>(total);
  }
}

__global__ void relu_backward_kernel(float* din, const float* dout, const float* out,
                                     std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    din[i] = out[i] > 0.0f ? dout[i] : 0.0f;
  }
}

// Element i draws Philox word first + i, laid out exactly as octa::philox_word(seed, stream, j)
// reads word j (block j >> 2 in counter words 0-1, the stream in words 2-3, lane j & 3), so each
// element sees the CPU reference's word. One thread per Philox block of the words first ..
// first + n - 1 (first not a multiple of 4: the first and last blocks are partly used).
__global__ void dropout_forward_kernel(float* out, std::uint8_t* mask, const float* in,
                                       std::size_t n, float p, float scale, std::uint64_t seed,
                                       std::uint64_t rng_stream_base, const std::int64_t* step,
                                       std::uint64_t first) {
  // *step is read here, on the device, so a replayed CUDA graph sees the current step.
  const std::uint64_t stream = rng_stream_base + static_cast<std::uint64_t>(*step);
  const std::uint64_t block0 = first >> 2;
  const std::size_t blocks = static_cast<std::size_t>(((first + n - 1) >> 2) - block0 + 1);
  for (std::size_t b = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; b < blocks;
       b += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::uint64_t block = block0 + static_cast<std::uint64_t>(b);
    const Philox4x32 r =
        philox4x32(seed, static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                   static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32));
    for (int lane = 0; lane < 4; ++lane) {
      const std::uint64_t word = 4 * block + static_cast<std::uint64_t>(lane);
      if (word < first) continue;
      const auto i = static_cast<std::size_t>(word - first);
      if (i >= n) break;
      const bool keep = uniform01(r.v[lane]) >= p;
      mask[i] = keep ? std::uint8_t{1} : std::uint8_t{0};
      out[i] = keep ? in[i] * scale : 0.0f;
    }
  }
}

__global__ void dropout_backward_kernel(float* din, const float* dout, const std::uint8_t* mask,
                                        std::size_t n, float scale) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    din[i] = mask[i] != 0 ? dout[i] * scale : 0.0f;
  }
}

}  // namespace

void bias_forward(float* x, const float* bias, int N, int C, Epilogue epilogue,
                  cudaStream_t stream) {
  const char* op = "bias_forward";
  NvtxRange range(op);
  require_positive(op, "N", N);
  require_positive(op, "C", C);
  require_pointer(op, "x", x);
  require_pointer(op, "bias", bias);
  const std::size_t total = static_cast<std::size_t>(N) * static_cast<std::size_t>(C);
  bias_forward_kernel<<<grid_stride_blocks(total, kThreads), kThreads, 0, stream>>>(x, bias, total,
                                                                                    C, epilogue);
  OCTA_CUDA_CHECK_LAUNCH();
}

void bias_backward(float* dbias, const float* dout, int N, int C, cudaStream_t stream) {
  const char* op = "bias_backward";
  NvtxRange range(op);
  require_positive(op, "N", N);
  require_positive(op, "C", C);
  require_pointer(op, "dbias", dbias);
  require_pointer(op, "dout", dout);
  const dim3 block(kColsPerBlock, kRowGroups);
  const unsigned int grid = blocks_for(static_cast<std::size_t>(C), kColsPerBlock);
  bias_backward_kernel<<<grid, block, 0, stream>>>(dbias, dout, N, C);
  OCTA_CUDA_CHECK_LAUNCH();
}

void relu_backward(float* din, const float* dout, const float* out, std::size_t n,
                   cudaStream_t stream) {
  const char* op = "relu_backward";
  NvtxRange range(op);
  require_count(op, n);
  require_pointer(op, "din", din);
  require_pointer(op, "dout", dout);
  require_pointer(op, "out", out);
  relu_backward_kernel<<<grid_stride_blocks(n, kThreads), kThreads, 0, stream>>>(din, dout, out, n);
  OCTA_CUDA_CHECK_LAUNCH();
}

void dropout_forward(float* out, std::uint8_t* mask, const float* in, std::size_t n, float p,
                     std::uint64_t seed, std::uint64_t rng_stream_base, const std::int64_t* step,
                     cudaStream_t stream, std::uint64_t first) {
  const char* op = "dropout_forward";
  NvtxRange range(op);
  require_count(op, n);
  check_dropout_p(op, p);
  require_pointer(op, "out", out);
  require_pointer(op, "mask", mask);
  require_pointer(op, "in", in);
  require_pointer(op, "step (the device step counter)", step);
  OCTA_CHECK(first <= std::numeric_limits<std::uint64_t>::max() - n,
             "{}: first = {} + n = {} overflows the Philox counter", op, first, n);
  const std::size_t blocks = static_cast<std::size_t>(((first + n - 1) >> 2) - (first >> 2) + 1);
  dropout_forward_kernel<<<grid_stride_blocks(blocks, kThreads), kThreads, 0, stream>>>(
      out, mask, in, n, p, dropout_scale(p), seed, rng_stream_base, step, first);
  OCTA_CUDA_CHECK_LAUNCH();
}

void dropout_backward(float* din, const float* dout, const std::uint8_t* mask, std::size_t n,
                      float p, cudaStream_t stream) {
  const char* op = "dropout_backward";
  NvtxRange range(op);
  require_count(op, n);
  check_dropout_p(op, p);
  require_pointer(op, "din", din);
  require_pointer(op, "dout", dout);
  require_pointer(op, "mask", mask);
  dropout_backward_kernel<<<grid_stride_blocks(n, kThreads), kThreads, 0, stream>>>(
      din, dout, mask, n, dropout_scale(p));
  OCTA_CUDA_CHECK_LAUNCH();
}

}  // namespace octa::gpu
