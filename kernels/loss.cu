// kernels/loss.cu: BCE-with-logits with pos_weight, its mean and its gradient in one launch
// (kernels/loss.hpp). A single block loops over the batch and reduces in double through a fixed
// shared-memory tree, so the loss is bit-identical from run to run; the formulas are
// engine/cpu/ops.cpp's stable ones, in double (kernels/bce.cuh).
#include <cmath>

#include "engine/core/error.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/nvtx.hpp"
#include "kernels/bce.cuh"
#include "kernels/launch_checks.hpp"
#include "kernels/loss.hpp"

namespace octa::gpu {

namespace {

using cuda::NvtxRange;

// One block does the whole batch: batches are at most a few thousand logits, and one block needs
// no second reduction stage (nor a workspace). A power of two, for the tree.
constexpr int kLossThreads = 1024;

__global__ void __launch_bounds__(kLossThreads)
    bce_with_logits_kernel(float* dlogits, float* batch_loss, double* loss_sum, const float* logits,
                           const float* targets, int N, float pos_weight) {
  __shared__ double smem[kLossThreads];
  const int t = static_cast<int>(threadIdx.x);
  const double pw = static_cast<double>(pos_weight), count = static_cast<double>(N);
  double sum = 0.0;
  // A 64-bit index: with an int, i += kLossThreads overflows (UB, then a negative index) for N
  // within kLossThreads of INT_MAX.
  for (std::size_t i = static_cast<std::size_t>(t); i < static_cast<std::size_t>(N);
       i += kLossThreads) {
    const double z = static_cast<double>(logits[i]), y = static_cast<double>(targets[i]);
    sum += bce_loss(z, y, pw);
    if (dlogits != nullptr) dlogits[i] = static_cast<float>(bce_grad(z, y, pw) / count);
  }
  smem[t] = sum;
  __syncthreads();
  for (int s = kLossThreads / 2; s > 0; s >>= 1) {
    if (t < s) smem[t] += smem[t + s];
    __syncthreads();
  }
  if (t == 0) {
    const double mean = smem[0] / count;
    *batch_loss = static_cast<float>(mean);
    *loss_sum += mean * count;  // as the CPU backend: loss * n
  }
}

}  // namespace

void bce_with_logits(float* dlogits, float* batch_loss, double* loss_sum, const float* logits,
                     const float* targets, int N, float pos_weight, cudaStream_t stream) {
  const char* op = "bce_with_logits";
  NvtxRange range(op);
  OCTA_CHECK(N > 0, "{}: N = {} must be positive", op, N);
  OCTA_CHECK(std::isfinite(pos_weight), "{}: pos_weight = {} must be finite", op, pos_weight);
  // dlogits may be null (gradient not needed, e.g. evaluation).
  require_pointer(op, "batch_loss", batch_loss);
  require_pointer(op, "loss_sum", loss_sum);
  require_pointer(op, "logits", logits);
  require_pointer(op, "targets", targets);
  bce_with_logits_kernel<<<1, kLossThreads, 0, stream>>>(dlogits, batch_loss, loss_sum, logits,
                                                         targets, N, pos_weight);
  OCTA_CUDA_CHECK_LAUNCH();
}

}  // namespace octa::gpu
