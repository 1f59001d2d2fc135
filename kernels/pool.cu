// kernels/pool.cu: max-pool 2x2/2 and global average pool, forward and backward (kernels/pool.hpp).
// Every output is written by exactly one thread and every sum has a fixed order, so results are
// bit-identical from run to run; the global average pool sums in the CPU reference's own order.
#include <algorithm>

#include "engine/core/error.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/nvtx.hpp"
#include "kernels/launch_checks.hpp"
#include "kernels/maxpool_window.cuh"
#include "kernels/pool.hpp"

namespace octa::gpu {

namespace {

using cuda::NvtxRange;

constexpr unsigned int kThreads = 256;

void check_pool(const char* op, int N, int C, int H, int W) {
  require_positive(op, "N", N);
  require_positive(op, "C", C);
  require_positive(op, "H", H);
  require_positive(op, "W", W);
  OCTA_CHECK(H % 2 == 0 && W % 2 == 0,
             "{}: H = {} and W = {} must both be even for a 2x2 pool (pad or crop the input)", op,
             H, W);
}

std::size_t sz(int v) {
  return static_cast<std::size_t>(v);
}

// One thread per output element; `plane` = n * C + c.
__global__ void maxpool2x2_forward_kernel(float* out, const float* in, std::size_t total, int H,
                                          int W) {
  const int Ho = H / 2, Wo = W / 2;
  const std::size_t plane_out = static_cast<std::size_t>(Ho) * static_cast<std::size_t>(Wo);
  for (std::size_t o = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; o < total;
       o += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t plane = o / plane_out;
    const int r = static_cast<int>(o - plane * plane_out);
    const int oy = r / Wo, ox = r - oy * Wo;
    const float* top = in + plane * static_cast<std::size_t>(H) * static_cast<std::size_t>(W) +
                       static_cast<std::size_t>(2 * oy) * static_cast<std::size_t>(W) +
                       static_cast<std::size_t>(2 * ox);
    const float v[4] = {top[0], top[1], top[W], top[W + 1]};
    out[o] = window_argmax(v).value;
  }
}

// One thread per window: it writes all four din elements (zeros off the argmax), so din needs no
// clearing beforehand and no two threads ever touch one element.
__global__ void maxpool2x2_backward_kernel(float* din, const float* dout, const float* in,
                                           std::size_t total, int H, int W, bool relu_before) {
  const int Ho = H / 2, Wo = W / 2;
  const std::size_t plane_out = static_cast<std::size_t>(Ho) * static_cast<std::size_t>(Wo);
  for (std::size_t o = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; o < total;
       o += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t plane = o / plane_out;
    const int r = static_cast<int>(o - plane * plane_out);
    const int oy = r / Wo, ox = r - oy * Wo;
    const std::size_t off = plane * static_cast<std::size_t>(H) * static_cast<std::size_t>(W) +
                            static_cast<std::size_t>(2 * oy) * static_cast<std::size_t>(W) +
                            static_cast<std::size_t>(2 * ox);
    const float* top = in + off;
    const float v[4] = {top[0], top[1], top[W], top[W + 1]};
    const WindowMax best = window_argmax(v);
    const int k = best.k;
    // The fused ReLU backward: `in` is the ReLU's output, and gradient flows only where it was
    // positive (as cpu::relu_backward applied after the pool's backward).
    const float g = (!relu_before || best.value > 0.0f) ? dout[o] : 0.0f;
    float* dtop = din + off;
    dtop[0] = k == 0 ? g : 0.0f;
    dtop[1] = k == 1 ? g : 0.0f;
    dtop[W] = k == 2 ? g : 0.0f;
    dtop[W + 1] = k == 3 ? g : 0.0f;
  }
}

// sum(x[0..n)) in double in the CPU reference's order (engine/cpu/ops.cpp, sum_double): eight
// interleaved partial sums combined pairwise, then the tail. Same order => the same double.
__device__ double sum_double_cpu_order(const float* x, std::size_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t i = 0;  // 64-bit as in the CPU's: i + 8 would overflow an int for n near INT_MAX
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += static_cast<double>(x[i + k]);
  }
  double tail = 0.0;
  for (; i < n; ++i) tail += static_cast<double>(x[i]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

// One thread per (n, c) plane.
__global__ void global_avgpool_forward_kernel(float* out, const float* in, std::size_t planes,
                                              int HW) {
  for (std::size_t pl = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
       pl < planes; pl += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const float* x = in + pl * static_cast<std::size_t>(HW);
    out[pl] = static_cast<float>(sum_double_cpu_order(x, static_cast<std::size_t>(HW)) /
                                 static_cast<double>(HW));
  }
}

// One thread per din element.
__global__ void global_avgpool_backward_kernel(float* din, const float* dout, std::size_t total,
                                               int HW) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t pl = i / static_cast<std::size_t>(HW);
    din[i] = static_cast<float>(static_cast<double>(dout[pl]) / static_cast<double>(HW));
  }
}

}  // namespace

void maxpool2x2_forward(float* out, const float* in, int N, int C, int H, int W,
                        cudaStream_t stream) {
  const char* op = "maxpool2x2_forward";
  NvtxRange range(op);
  check_pool(op, N, C, H, W);
  require_pointer(op, "out", out);
  require_pointer(op, "in", in);
  const std::size_t total = sz(N) * sz(C) * sz(H / 2) * sz(W / 2);
  maxpool2x2_forward_kernel<<<grid_stride_blocks(total, kThreads), kThreads, 0, stream>>>(
      out, in, total, H, W);
  OCTA_CUDA_CHECK_LAUNCH();
}

void maxpool2x2_backward(float* din, const float* dout, const float* in, int N, int C, int H, int W,
                         bool relu_before, cudaStream_t stream) {
  const char* op = "maxpool2x2_backward";
  NvtxRange range(op);
  check_pool(op, N, C, H, W);
  require_pointer(op, "din", din);
  require_pointer(op, "dout", dout);
  require_pointer(op, "in", in);
  const std::size_t total = sz(N) * sz(C) * sz(H / 2) * sz(W / 2);
  maxpool2x2_backward_kernel<<<grid_stride_blocks(total, kThreads), kThreads, 0, stream>>>(
      din, dout, in, total, H, W, relu_before);
  OCTA_CUDA_CHECK_LAUNCH();
}

void global_avgpool_forward(float* out, const float* in, int N, int C, int HW,
                            cudaStream_t stream) {
  const char* op = "global_avgpool_forward";
  NvtxRange range(op);
  require_positive(op, "N", N);
  require_positive(op, "C", C);
  require_positive(op, "HW", HW);
  require_pointer(op, "out", out);
  require_pointer(op, "in", in);
  const std::size_t planes = sz(N) * sz(C);
  global_avgpool_forward_kernel<<<grid_stride_blocks(planes, kThreads), kThreads, 0, stream>>>(
      out, in, planes, HW);
  OCTA_CUDA_CHECK_LAUNCH();
}

void global_avgpool_backward(float* din, const float* dout, int N, int C, int HW,
                             cudaStream_t stream) {
  const char* op = "global_avgpool_backward";
  NvtxRange range(op);
  require_positive(op, "N", N);
  require_positive(op, "C", C);
  require_positive(op, "HW", HW);
  require_pointer(op, "din", din);
  require_pointer(op, "dout", dout);
  const std::size_t total = sz(N) * sz(C) * sz(HW);
  global_avgpool_backward_kernel<<<grid_stride_blocks(total, kThreads), kThreads, 0, stream>>>(
      din, dout, total, HW);
  OCTA_CUDA_CHECK_LAUNCH();
}

}  // namespace octa::gpu
