// kernels/batchnorm.cu: BatchNorm2d forward (train, eval) and backward (kernels/batchnorm.hpp).
// Training statistics: one block per channel reduces its N*HW values in double, each thread over a
// fixed strided subset and then a fixed shared-memory tree, so the result is bit-identical from
// run to run (no atomics). Arithmetic follows engine/cpu/ops.cpp: two-pass variance, normalisation
// in double, running statistics with the unbiased variance.
#include <algorithm>
#include <cmath>

#include "engine/core/error.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/nvtx.hpp"
#include "kernels/batchnorm.hpp"
#include "kernels/batchnorm_stats.cuh"
#include "kernels/launch_checks.hpp"

namespace octa::gpu {

namespace {

using cuda::NvtxRange;

// Threads per channel block of the reductions: the tree below needs a power of two. One block per
// channel keeps the launchers workspace-free; the price is that only C blocks run.
constexpr int kChannelThreads = 1024;
constexpr unsigned int kThreads = 256;

void check_sizes(const char* op, int N, int C, int HW) {
  require_positive(op, "N", N);
  require_positive(op, "C", C);
  require_positive(op, "HW", HW);
}

void check_eps(const char* op, float eps) {
  OCTA_CHECK(eps >= 0.0f, "{}: eps = {} must be non-negative", op, eps);
}

// x < 0 -> 0 rather than x > 0 ? x : 0, so that a NaN propagates (as cpu::relu_forward).
__device__ __forceinline__ float apply_epilogue(float x, Epilogue epilogue) {
  return (epilogue == Epilogue::kRelu && x < 0.0f) ? 0.0f : x;
}

// Calls f(i) for this thread's elements of channel c, i the flat NCHW index, in a fixed order: the
// thread's flat positions j = threadIdx.x + k * blockDim.x over the channel's (n, p) pairs, with
// (n, p) advanced incrementally instead of divided out each time.
template <class F>
__device__ __forceinline__ void for_each_in_channel(int N, int C, int HW, int c, F&& f) {
  const int T = static_cast<int>(blockDim.x);
  const int dn = T / HW, dp = T % HW;
  // n in 64 bits: it steps past N by up to dn + 1, which would overflow an int for N near INT_MAX.
  long long n = static_cast<int>(threadIdx.x) / HW;
  int p = static_cast<int>(threadIdx.x) % HW;
  while (n < N) {
    f((static_cast<std::size_t>(n) * static_cast<std::size_t>(C) + static_cast<std::size_t>(c)) *
          static_cast<std::size_t>(HW) +
      static_cast<std::size_t>(p));
    n += dn;
    p += dp;
    if (p >= HW) {
      p -= HW;
      ++n;
    }
  }
}

// Sum of v over the block (kChannelThreads threads) in a fixed tree order; every thread gets the
// result. smem: kChannelThreads doubles, free again on return.
__device__ double block_sum(double v, double* smem) {
  const int t = static_cast<int>(threadIdx.x);
  smem[t] = v;
  __syncthreads();
  for (int s = kChannelThreads / 2; s > 0; s >>= 1) {
    if (t < s) smem[t] += smem[t + s];
    __syncthreads();
  }
  const double total = smem[0];
  __syncthreads();
  return total;
}

// One block per channel (blockIdx.x = c). Three passes over the channel's values: the sum, the
// squared deviations from the mean (two passes, as the CPU: no cancellation when |mean| >> std),
// and the normalisation. With only C blocks the large-batch case (bn1 at batch 1024: 800k values
// per channel, 32 channels) uses a fraction of the GPU; a multi-block split would need a workspace.
__global__ void __launch_bounds__(kChannelThreads)
    batchnorm_forward_train_kernel(float* out, float* save_mean, float* save_invstd,
                                   float* running_mean, float* running_var, const float* in,
                                   const float* gamma, const float* beta, int N, int C, int HW,
                                   float eps, float momentum, Epilogue epilogue) {
  __shared__ double smem[kChannelThreads];
  const int c = static_cast<int>(blockIdx.x);
  const double count = static_cast<double>(N) * static_cast<double>(HW);

  double sum = 0.0;
  for_each_in_channel(N, C, HW, c, [&](std::size_t i) { sum += static_cast<double>(in[i]); });
  const double mean = block_sum(sum, smem) / count;

  double sq = 0.0;
  for_each_in_channel(N, C, HW, c, [&](std::size_t i) {
    const double d = static_cast<double>(in[i]) - mean;
    sq += d * d;
  });
  sq = block_sum(sq, smem);
  const double var_biased = sq / count;
  const double invstd = 1.0 / sqrt(var_biased + static_cast<double>(eps));

  const double g = static_cast<double>(gamma[c]), bt = static_cast<double>(beta[c]);
  for_each_in_channel(N, C, HW, c, [&](std::size_t i) {
    const double xhat = (static_cast<double>(in[i]) - mean) * invstd;
    out[i] = apply_epilogue(static_cast<float>(xhat * g + bt), epilogue);
  });

  if (threadIdx.x == 0) {
    save_batch_statistics(save_mean, save_invstd, running_mean, running_var, c, mean, invstd, sq,
                          count, momentum);
  }
}

// One thread per element; the channel's constants in double, as the CPU reference.
__global__ void batchnorm_forward_eval_kernel(float* out, const float* in, const float* gamma,
                                              const float* beta, const float* running_mean,
                                              const float* running_var, std::size_t total, int C,
                                              int HW, float eps, Epilogue epilogue) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const auto c =
        static_cast<int>((i / static_cast<std::size_t>(HW)) % static_cast<std::size_t>(C));
    const double mean = static_cast<double>(running_mean[c]);
    const double invstd =
        1.0 / sqrt(static_cast<double>(running_var[c]) + static_cast<double>(eps));
    const double xhat = (static_cast<double>(in[i]) - mean) * invstd;
    const double y = xhat * static_cast<double>(gamma[c]) + static_cast<double>(beta[c]);
    out[i] = apply_epilogue(static_cast<float>(y), epilogue);
  }
}

// One block per channel: the two sums (dbeta = sum dy, dgamma = sum dy * xhat), then din.
__global__ void __launch_bounds__(kChannelThreads)
    batchnorm_backward_kernel(float* din, float* dgamma, float* dbeta, const float* dout,
                              const float* relu_out, const float* in, const float* save_mean,
                              const float* save_invstd, const float* gamma, int N, int C, int HW) {
  __shared__ double smem[kChannelThreads];
  const int c = static_cast<int>(blockIdx.x);
  const double count = static_cast<double>(N) * static_cast<double>(HW);
  const double mean = static_cast<double>(save_mean[c]);
  const double invstd = static_cast<double>(save_invstd[c]);
  // The fused ReLU backward: no gradient where the forward's (ReLU) output was not positive.
  auto dy_at = [&](std::size_t i) {
    return (relu_out == nullptr || relu_out[i] > 0.0f) ? static_cast<double>(dout[i]) : 0.0;
  };

  double sum_dy = 0.0, sum_dy_xhat = 0.0;
  for_each_in_channel(N, C, HW, c, [&](std::size_t i) {
    const double dy = dy_at(i);
    sum_dy += dy;
    sum_dy_xhat += dy * (static_cast<double>(in[i]) - mean) * invstd;
  });
  sum_dy = block_sum(sum_dy, smem);
  sum_dy_xhat = block_sum(sum_dy_xhat, smem);
  if (threadIdx.x == 0) {
    dbeta[c] = static_cast<float>(sum_dy);
    dgamma[c] = static_cast<float>(sum_dy_xhat);
  }
  if (din == nullptr) return;

  // d/dx of gamma * xhat + beta through the batch mean and variance.
  const double scale = static_cast<double>(gamma[c]) * invstd;
  const double mean_dy = sum_dy / count, mean_dy_xhat = sum_dy_xhat / count;
  for_each_in_channel(N, C, HW, c, [&](std::size_t i) {
    const double xhat = (static_cast<double>(in[i]) - mean) * invstd;
    din[i] = static_cast<float>(scale * (dy_at(i) - mean_dy - xhat * mean_dy_xhat));
  });
}

}  // namespace

void batchnorm_forward_train(float* out, float* save_mean, float* save_invstd, float* running_mean,
                             float* running_var, const float* in, const float* gamma,
                             const float* beta, int N, int C, int HW, float eps, float momentum,
                             Epilogue epilogue, cudaStream_t stream) {
  const char* op = "batchnorm_forward_train";
  NvtxRange range(op);
  check_sizes(op, N, C, HW);
  const std::size_t M = static_cast<std::size_t>(N) * static_cast<std::size_t>(HW);
  // PyTorch refuses this too: the unbiased variance of one value is undefined.
  OCTA_CHECK(M > 1,
             "{}: N * H * W = {} must exceed 1 per channel in training mode (use a larger batch or "
             "eval mode)",
             op, M);
  check_eps(op, eps);
  OCTA_CHECK(momentum >= 0.0f && momentum <= 1.0f, "{}: momentum = {} must be in [0, 1]", op,
             momentum);
  require_pointer(op, "out", out);
  require_pointer(op, "save_mean", save_mean);
  require_pointer(op, "save_invstd", save_invstd);
  require_pointer(op, "in", in);
  require_pointer(op, "gamma", gamma);
  require_pointer(op, "beta", beta);
  batchnorm_forward_train_kernel<<<static_cast<unsigned int>(C), kChannelThreads, 0, stream>>>(
      out, save_mean, save_invstd, running_mean, running_var, in, gamma, beta, N, C, HW, eps,
      momentum, epilogue);
  OCTA_CUDA_CHECK_LAUNCH();
}

void batchnorm_forward_eval(float* out, const float* in, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, int N, int C,
                            int HW, float eps, Epilogue epilogue, cudaStream_t stream) {
  const char* op = "batchnorm_forward_eval";
  NvtxRange range(op);
  check_sizes(op, N, C, HW);
  check_eps(op, eps);
  require_pointer(op, "out", out);
  require_pointer(op, "in", in);
  require_pointer(op, "gamma", gamma);
  require_pointer(op, "beta", beta);
  require_pointer(op, "running_mean", running_mean);
  require_pointer(op, "running_var", running_var);
  const std::size_t total =
      static_cast<std::size_t>(N) * static_cast<std::size_t>(C) * static_cast<std::size_t>(HW);
  batchnorm_forward_eval_kernel<<<grid_stride_blocks(total, kThreads), kThreads, 0, stream>>>(
      out, in, gamma, beta, running_mean, running_var, total, C, HW, eps, epilogue);
  OCTA_CUDA_CHECK_LAUNCH();
}

void batchnorm_backward(float* din, float* dgamma, float* dbeta, const float* dout,
                        const float* relu_out, const float* in, const float* save_mean,
                        const float* save_invstd, const float* gamma, int N, int C, int HW,
                        cudaStream_t stream) {
  const char* op = "batchnorm_backward";
  NvtxRange range(op);
  check_sizes(op, N, C, HW);
  // din may be null ("not needed"), as in the CPU reference; relu_out is optional.
  require_pointer(op, "dgamma", dgamma);
  require_pointer(op, "dbeta", dbeta);
  require_pointer(op, "dout", dout);
  require_pointer(op, "in", in);
  require_pointer(op, "save_mean", save_mean);
  require_pointer(op, "save_invstd", save_invstd);
  require_pointer(op, "gamma", gamma);
  batchnorm_backward_kernel<<<static_cast<unsigned int>(C), kChannelThreads, 0, stream>>>(
      din, dgamma, dbeta, dout, relu_out, in, save_mean, save_invstd, gamma, N, C, HW);
  OCTA_CUDA_CHECK_LAUNCH();
}

}  // namespace octa::gpu
