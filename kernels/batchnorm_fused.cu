// kernels/batchnorm_fused.cu: BatchNorm fused with ReLU and the 2x2 max-pool, training forward and
// backward, and BatchNorm folded into a convolution for evaluation (kernels/batchnorm_fused.hpp).
//
// The forward and both backward kernels share one grid: block (b, c) handles channel c of images
// b * images_per_block ... (b + 1) * images_per_block - 1, window by window (a 2x2 window is read
// and written whole, so the pool and its backward need no second pass). Per-channel sums go
// through a two-level fixed-order sum in shared memory (kThreads values, then kSumGroups), so every
// result is bit-identical from run to run; no atomics.
//
// Arithmetic. The forward's per-channel constants (batch mean, inverse standard deviation, the
// running statistics) are computed in double, as the CPU reference's; each element is then
// normalised in float as ((x - mean_hi) - mean_lo) * (gamma * invstd) + beta, where mean_hi +
// mean_lo is the double mean split in two floats: x - mean_hi is exact when x is near the mean, so
// a large common offset loses nothing. The backward's sums are in double, as the CPU's, from the
// saved (float) mean and inverse standard deviation; its input gradient is evaluated in float.
#include "kernels/batchnorm_fused.hpp"

#include <cmath>

#include "engine/core/error.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/nvtx.hpp"
#include "kernels/batchnorm_grad.cuh"
#include "kernels/batchnorm_stats.cuh"
#include "kernels/launch_checks.hpp"
#include "kernels/maxpool_window.cuh"

namespace octa::gpu {

namespace {

using cuda::NvtxRange;

constexpr int kThreads = 256;
constexpr int kSumGroups = 16;  // the block sum's second level
constexpr int kWindowsPerBlock = 1024;
static_assert(kThreads % kSumGroups == 0, "the block sum's groups must tile the block");

// Images per block (so that a block has about kWindowsPerBlock windows) and blocks per channel.
struct PlaneGrid {
  int images_per_block;
  int blocks;
};

PlaneGrid plane_grid(int N, int H, int W) {
  const long long windows = static_cast<long long>(H / 2) * (W / 2);
  long long per = kWindowsPerBlock / windows;
  per = per < 1 ? 1 : (per > N ? N : per);
  return {static_cast<int>(per), static_cast<int>((N + per - 1) / per)};
}

// The sums over the block of each thread's v[k], in a fixed order; every thread gets them.
// smem: K * kThreads doubles, smem2: K * kSumGroups (each kernel calls this once).
template <int K>
__device__ void block_sum(double (&v)[K], double* smem, double* smem2) {
  constexpr int kPer = kThreads / kSumGroups;
  const int t = static_cast<int>(threadIdx.x);
  for (int k = 0; k < K; ++k) smem[k * kThreads + t] = v[k];
  __syncthreads();
  if (t < kSumGroups) {
    for (int k = 0; k < K; ++k) {
      double a = 0.0;
      for (int i = 0; i < kPer; ++i) a += smem[k * kThreads + t * kPer + i];
      smem2[k * kSumGroups + t] = a;
    }
  }
  __syncthreads();
  for (int k = 0; k < K; ++k) {
    double a = 0.0;
    for (int g = 0; g < kSumGroups; ++g) a += smem2[k * kSumGroups + g];
    v[k] = a;
  }
}

// The windows of block (blockIdx.x, c): f(o, top) for each, o the window's flat index in the
// (N, C, H/2, W/2) tensors and top its top-left element's flat index in the (N, C, H, W) ones.
template <class F>
__device__ __forceinline__ void for_each_window(int N, int C, int H, int W, int images_per_block,
                                                F&& f) {
  const int c = static_cast<int>(blockIdx.y);
  const int Wo = W / 2, HWo = (H / 2) * Wo;
  const int n0 = static_cast<int>(blockIdx.x) * images_per_block;
  const int images = N - n0 < images_per_block ? N - n0 : images_per_block;
  const std::size_t HW = static_cast<std::size_t>(H) * static_cast<std::size_t>(W);
  for (int i = static_cast<int>(threadIdx.x); i < images * HWo; i += kThreads) {
    const int w = i % HWo;
    const std::size_t plane = static_cast<std::size_t>(n0 + i / HWo) * static_cast<std::size_t>(C) +
                              static_cast<std::size_t>(c);
    f(plane * static_cast<std::size_t>(HWo) + static_cast<std::size_t>(w),
      plane * HW + static_cast<std::size_t>(2 * (w / Wo) * W + 2 * (w % Wo)));
  }
}

// =============================================================================================
// Forward (training)
// =============================================================================================

__global__ void __launch_bounds__(kThreads) batchnorm_relu_maxpool_forward_train_kernel(
    float* __restrict__ pooled, std::uint8_t* __restrict__ window, float* save_mean,
    float* save_invstd, float* running_mean, float* running_var, const float* __restrict__ conv_out,
    const double* __restrict__ stats, int tiles, const float* __restrict__ gamma,
    const float* __restrict__ beta, int N, int C, int H, int W, int images_per_block, float eps,
    float momentum) {
  __shared__ double red[3 * kThreads];
  __shared__ double red2[3 * kSumGroups];
  const int c = static_cast<int>(blockIdx.y);
  const std::size_t third = static_cast<std::size_t>(C) * static_cast<std::size_t>(tiles);
  const double* count_t = stats + static_cast<std::size_t>(c) * static_cast<std::size_t>(tiles);
  const double* mean_t = count_t + third;
  const double* m2_t = mean_t + third;

  // The tiles' statistics merged as shifted sums about tile 0's mean: count, sum of n * d and
  // sum of (m2 + n * d^2), d = the tile's mean - the shift.
  const double shift = mean_t[0];
  double v[3] = {0.0, 0.0, 0.0};
  for (int t = static_cast<int>(threadIdx.x); t < tiles; t += kThreads) {
    const double n = count_t[t], d = mean_t[t] - shift;
    v[0] += n;
    v[1] += n * d;
    v[2] += m2_t[t] + n * d * d;
  }
  block_sum(v, red, red2);
  const double count = v[0];
  const double mean = shift + v[1] / count;
  const double m2_raw = v[2] - v[1] * v[1] / count;
  const double m2 = m2_raw < 0.0 ? 0.0 : m2_raw;
  const double invstd = 1.0 / sqrt(m2 / count + static_cast<double>(eps));

  if (blockIdx.x == 0 && threadIdx.x == 0) {
    save_batch_statistics(save_mean, save_invstd, running_mean, running_var, c, mean, invstd, m2,
                          count, momentum);
  }

  const auto mean_hi = static_cast<float>(mean);
  const auto mean_lo = static_cast<float>(mean - static_cast<double>(mean_hi));
  const auto scale = static_cast<float>(static_cast<double>(gamma[c]) * invstd);
  const float b = beta[c];
  for_each_window(N, C, H, W, images_per_block, [&](std::size_t o, std::size_t top) {
    const float* x = conv_out + top;
    float r[4] = {x[0], x[1], x[W], x[W + 1]};
    for (int d = 0; d < 4; ++d) {
      const float y = fmaf((r[d] - mean_hi) - mean_lo, scale, b);
      r[d] = y < 0.0f ? 0.0f : y;  // as the CPU's relu_forward: a NaN passes through
    }
    const WindowMax best = window_argmax(r);
    pooled[o] = best.value;
    window[o] = best.value > 0.0f ? static_cast<std::uint8_t>(best.k) : kWindowNoGradient;
  });
}

// =============================================================================================
// Backward (training): the sums, then the input gradient
// =============================================================================================

// workspace: [c * blocks + b] = this block's sum of dy, [(C + c) * blocks + b] its sum of dy * xhat
// (dy: the pool's and ReLU's backward, nonzero only at the windows' positive maxima).
__global__ void __launch_bounds__(kThreads) batchnorm_relu_maxpool_backward_sums_kernel(
    double* __restrict__ workspace, const float* __restrict__ dpool,
    const std::uint8_t* __restrict__ window, const float* __restrict__ conv_out,
    const float* __restrict__ save_mean, const float* __restrict__ save_invstd, int N, int C, int H,
    int W, int images_per_block) {
  __shared__ double red[2 * kThreads];
  __shared__ double red2[2 * kSumGroups];
  const int c = static_cast<int>(blockIdx.y);
  const double mean = static_cast<double>(save_mean[c]);
  const double invstd = static_cast<double>(save_invstd[c]);
  double v[2] = {0.0, 0.0};
  for_each_window(N, C, H, W, images_per_block, [&](std::size_t o, std::size_t top) {
    const int k = window[o];
    if (k == kWindowNoGradient) return;
    const double dy = static_cast<double>(dpool[o]);
    const double x =
        static_cast<double>(conv_out[top + static_cast<std::size_t>((k / 2) * W + k % 2)]);
    v[0] += dy;
    v[1] += dy * (x - mean) * invstd;  // as the CPU's batchnorm_backward
  });
  block_sum(v, red, red2);
  if (threadIdx.x == 0) {
    const std::size_t i =
        static_cast<std::size_t>(c) * gridDim.x + static_cast<std::size_t>(blockIdx.x);
    workspace[i] = v[0];
    workspace[static_cast<std::size_t>(C) * gridDim.x + i] = v[1];
  }
}

__global__ void __launch_bounds__(kThreads) batchnorm_relu_maxpool_backward_data_kernel(
    float* __restrict__ dconv, float* __restrict__ dgamma, float* __restrict__ dbeta,
    const double* __restrict__ workspace, const float* __restrict__ dpool,
    const std::uint8_t* __restrict__ window, const float* __restrict__ conv_out,
    const float* __restrict__ save_mean, const float* __restrict__ save_invstd,
    const float* __restrict__ gamma, int N, int C, int H, int W, int images_per_block) {
  __shared__ BnGradCoeffs coeffs;
  const int c = static_cast<int>(blockIdx.y);
  if (threadIdx.x == 0) {
    // The channel's block sums in block order (every block of the channel adds the same values
    // in the same order, so all get the same bits).
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    coeffs =
        bn_grad_coeffs(workspace, C, static_cast<int>(gridDim.x), c, gamma, save_mean, save_invstd,
                       static_cast<double>(N) * static_cast<double>(H) * static_cast<double>(W),
                       sum_dy, sum_dy_xhat);
    if (blockIdx.x == 0) {
      dbeta[c] = static_cast<float>(sum_dy);
      dgamma[c] = static_cast<float>(sum_dy_xhat);
    }
  }
  __syncthreads();
  const BnGradCoeffs k = coeffs;
  for_each_window(N, C, H, W, images_per_block, [&](std::size_t o, std::size_t top) {
    const int code = window[o];
    const float dp = dpool[o];
    for (int d = 0; d < 4; ++d) {
      const std::size_t i = top + static_cast<std::size_t>((d / 2) * W + d % 2);
      dconv[i] = bn_input_grad(conv_out[i], d == code ? dp : 0.0f, k);
    }
  });
}

// =============================================================================================
// Evaluation: the fold
// =============================================================================================

__global__ void batchnorm_fold_conv3x3_kernel(
    float* __restrict__ folded_weight, float* __restrict__ folded_bias,
    const float* __restrict__ weight, const float* __restrict__ bias,
    const float* __restrict__ gamma, const float* __restrict__ beta,
    const float* __restrict__ running_mean, const float* __restrict__ running_var, int Cin,
    int Cout, float eps) {
  const std::size_t per_channel = static_cast<std::size_t>(Cin) * 9;
  const std::size_t weights = per_channel * static_cast<std::size_t>(Cout);
  const std::size_t total = weights + static_cast<std::size_t>(Cout);
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const auto co = static_cast<int>(i < weights ? i / per_channel : i - weights);
    const double s = static_cast<double>(gamma[co]) /
                     sqrt(static_cast<double>(running_var[co]) + static_cast<double>(eps));
    if (i < weights) {
      folded_weight[i] = static_cast<float>(static_cast<double>(weight[i]) * s);
    } else {
      folded_bias[co] = static_cast<float>(
          (static_cast<double>(bias[co]) - static_cast<double>(running_mean[co])) * s +
          static_cast<double>(beta[co]));
    }
  }
}

void check_pool_sizes(const char* op, int N, int C, int H, int W) {
  require_positive(op, "N", N);
  require_positive(op, "C", C);
  require_positive(op, "H", H);
  require_positive(op, "W", W);
  OCTA_CHECK(H % 2 == 0 && W % 2 == 0,
             "{}: H = {} and W = {} must both be even for the fused 2x2 max-pool (for odd sizes "
             "use the unfused kernels: kernels/batchnorm.hpp, then kernels/pool.hpp)",
             op, H, W);
  OCTA_CHECK(static_cast<long long>(H) * W <= (1LL << 30), "{}: H * W = {} is too large", op,
             static_cast<long long>(H) * W);
  OCTA_CHECK(C <= 65535, "{}: C = {} channels is more than the grid allows (65535)", op, C);
}

// The arguments of the backward's sums kernel, for both launchers that run it (`op` names the one
// called).
void check_sums_args(const char* op, const double* workspace, const float* dpool,
                     const std::uint8_t* window, const float* conv_out, const float* save_mean,
                     const float* save_invstd, int N, int C, int H, int W) {
  check_pool_sizes(op, N, C, H, W);
  require_pointer(op, "dpool", dpool);
  require_pointer(op, "window", window);
  require_pointer(op, "conv_out", conv_out);
  require_pointer(op, "save_mean", save_mean);
  require_pointer(op, "save_invstd", save_invstd);
  require_pointer(op, "workspace (batchnorm_relu_maxpool_backward_workspace doubles)", workspace);
}

// The further arguments of the input gradient's kernel, for both launchers that run it.
void check_data_args(const char* op, const float* dconv, const float* dgamma, const float* dbeta,
                     const float* gamma) {
  require_pointer(op, "dconv", dconv);
  require_pointer(op, "dgamma", dgamma);
  require_pointer(op, "dbeta", dbeta);
  require_pointer(op, "gamma", gamma);
}

void launch_sums(double* workspace, const float* dpool, const std::uint8_t* window,
                 const float* conv_out, const float* save_mean, const float* save_invstd, int N,
                 int C, int H, int W, cudaStream_t stream) {
  const PlaneGrid g = plane_grid(N, H, W);
  const dim3 grid(static_cast<unsigned int>(g.blocks), static_cast<unsigned int>(C));
  batchnorm_relu_maxpool_backward_sums_kernel<<<grid, kThreads, 0, stream>>>(
      workspace, dpool, window, conv_out, save_mean, save_invstd, N, C, H, W, g.images_per_block);
  OCTA_CUDA_CHECK_LAUNCH();
}

void launch_data(float* dconv, float* dgamma, float* dbeta, const double* workspace,
                 const float* dpool, const std::uint8_t* window, const float* conv_out,
                 const float* save_mean, const float* save_invstd, const float* gamma, int N, int C,
                 int H, int W, cudaStream_t stream) {
  const PlaneGrid g = plane_grid(N, H, W);
  const dim3 grid(static_cast<unsigned int>(g.blocks), static_cast<unsigned int>(C));
  batchnorm_relu_maxpool_backward_data_kernel<<<grid, kThreads, 0, stream>>>(
      dconv, dgamma, dbeta, workspace, dpool, window, conv_out, save_mean, save_invstd, gamma, N, C,
      H, W, g.images_per_block);
  OCTA_CUDA_CHECK_LAUNCH();
}

}  // namespace

void batchnorm_relu_maxpool_forward_train(float* pooled, std::uint8_t* window, float* save_mean,
                                          float* save_invstd, float* running_mean,
                                          float* running_var, const float* conv_out,
                                          const double* stats, int stats_tiles, const float* gamma,
                                          const float* beta, int N, int C, int H, int W, float eps,
                                          float momentum, cudaStream_t stream) {
  const char* op = "batchnorm_relu_maxpool_forward_train";
  check_pool_sizes(op, N, C, H, W);
  const long long M = static_cast<long long>(N) * H * W;
  OCTA_CHECK(M > 1,
             "{}: N * H * W = {} must exceed 1 per channel in training mode (use a larger batch or "
             "eval mode)",
             op, M);
  require_positive(op, "stats_tiles", stats_tiles);
  OCTA_CHECK(eps >= 0.0f, "{}: eps = {} must be non-negative", op, eps);
  OCTA_CHECK(momentum >= 0.0f && momentum <= 1.0f, "{}: momentum = {} must be in [0, 1]", op,
             momentum);
  require((running_mean == nullptr) == (running_var == nullptr), op,
          "running_mean and running_var must both be given or both be null");
  require_pointer(op, "pooled", pooled);
  require_pointer(op, "window", window);
  require_pointer(op, "save_mean", save_mean);
  require_pointer(op, "save_invstd", save_invstd);
  require_pointer(op, "conv_out", conv_out);
  require_pointer(op, "stats", stats);
  require_pointer(op, "gamma", gamma);
  require_pointer(op, "beta", beta);
  NvtxRange range(op);
  const PlaneGrid g = plane_grid(N, H, W);
  const dim3 grid(static_cast<unsigned int>(g.blocks), static_cast<unsigned int>(C));
  batchnorm_relu_maxpool_forward_train_kernel<<<grid, kThreads, 0, stream>>>(
      pooled, window, save_mean, save_invstd, running_mean, running_var, conv_out, stats,
      stats_tiles, gamma, beta, N, C, H, W, g.images_per_block, eps, momentum);
  OCTA_CUDA_CHECK_LAUNCH();
}

std::size_t batchnorm_relu_maxpool_backward_workspace(int N, int C, int H, int W) {
  check_pool_sizes("batchnorm_relu_maxpool_backward_workspace", N, C, H, W);
  return 2 * static_cast<std::size_t>(C) * static_cast<std::size_t>(plane_grid(N, H, W).blocks);
}

int batchnorm_relu_maxpool_backward_blocks(int N, int H, int W) {
  check_pool_sizes("batchnorm_relu_maxpool_backward_blocks", N, 1, H, W);
  return plane_grid(N, H, W).blocks;
}

void batchnorm_relu_maxpool_backward_sums(double* workspace, const float* dpool,
                                          const std::uint8_t* window, const float* conv_out,
                                          const float* save_mean, const float* save_invstd, int N,
                                          int C, int H, int W, cudaStream_t stream) {
  const char* op = "batchnorm_relu_maxpool_backward_sums";
  check_sums_args(op, workspace, dpool, window, conv_out, save_mean, save_invstd, N, C, H, W);
  NvtxRange range(op);
  launch_sums(workspace, dpool, window, conv_out, save_mean, save_invstd, N, C, H, W, stream);
}

void batchnorm_relu_maxpool_backward(float* dconv, float* dgamma, float* dbeta, const float* dpool,
                                     const std::uint8_t* window, const float* conv_out,
                                     const float* save_mean, const float* save_invstd,
                                     const float* gamma, int N, int C, int H, int W,
                                     double* workspace, cudaStream_t stream) {
  const char* op = "batchnorm_relu_maxpool_backward";
  check_sums_args(op, workspace, dpool, window, conv_out, save_mean, save_invstd, N, C, H, W);
  check_data_args(op, dconv, dgamma, dbeta, gamma);
  NvtxRange range(op);
  launch_sums(workspace, dpool, window, conv_out, save_mean, save_invstd, N, C, H, W, stream);
  launch_data(dconv, dgamma, dbeta, workspace, dpool, window, conv_out, save_mean, save_invstd,
              gamma, N, C, H, W, stream);
}

void batchnorm_relu_maxpool_backward_data(float* dconv, float* dgamma, float* dbeta,
                                          const double* workspace, const float* dpool,
                                          const std::uint8_t* window, const float* conv_out,
                                          const float* save_mean, const float* save_invstd,
                                          const float* gamma, int N, int C, int H, int W,
                                          cudaStream_t stream) {
  const char* op = "batchnorm_relu_maxpool_backward_data";
  check_sums_args(op, workspace, dpool, window, conv_out, save_mean, save_invstd, N, C, H, W);
  check_data_args(op, dconv, dgamma, dbeta, gamma);
  NvtxRange range(op);
  launch_data(dconv, dgamma, dbeta, workspace, dpool, window, conv_out, save_mean, save_invstd,
              gamma, N, C, H, W, stream);
}

void batchnorm_fold_conv3x3(float* folded_weight, float* folded_bias, const float* weight,
                            const float* bias, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, int Cin, int Cout,
                            float eps, cudaStream_t stream) {
  const char* op = "batchnorm_fold_conv3x3";
  require_positive(op, "Cin", Cin);
  require_positive(op, "Cout", Cout);
  OCTA_CHECK(eps >= 0.0f, "{}: eps = {} must be non-negative", op, eps);
  require_pointer(op, "folded_weight", folded_weight);
  require_pointer(op, "folded_bias", folded_bias);
  require_pointer(op, "weight", weight);
  require_pointer(op, "bias", bias);
  require_pointer(op, "gamma", gamma);
  require_pointer(op, "beta", beta);
  require_pointer(op, "running_mean", running_mean);
  require_pointer(op, "running_var", running_var);
  require(folded_weight != weight && folded_bias != bias, op,
          "the folded parameters must not overwrite the unfolded ones (checkpoints keep those)");
  NvtxRange range(op);
  const std::size_t total =
      static_cast<std::size_t>(Cout) * (static_cast<std::size_t>(Cin) * 9 + 1);
  batchnorm_fold_conv3x3_kernel<<<grid_stride_blocks(total, kThreads), kThreads, 0, stream>>>(
      folded_weight, folded_bias, weight, bias, gamma, beta, running_mean, running_var, Cin, Cout,
      eps);
  OCTA_CUDA_CHECK_LAUNCH();
}

}  // namespace octa::gpu
