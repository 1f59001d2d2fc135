// kernels/batchnorm_fused.hpp: model B's BatchNorm fused with the convolution before it and the
// ReLU and 2x2 max-pool after it, float32 NCHW, PyTorch's rules (batch mean and biased variance to
// normalise; running statistics with momentum and the unbiased variance; eval: running
// statistics), against the same CPU reference as the unfused kernels (kernels/batchnorm.hpp).
//
// Training forward, two launches instead of three (conv, BatchNorm, pool) and one pass over the
// convolution's output instead of four (BatchNorm's three and the pool's):
//   1. conv3x3_forward_bn_stats or conv3x3_tc_forward_bn_stats (kernels/conv3x3*.hpp): the
//      convolution, whose epilogue leaves per-tile statistics of its output in `stats`;
//   2. batchnorm_relu_maxpool_forward_train: merges them (each block, in one fixed order: no
//      atomics), updates the running statistics, and normalises, applies gamma and beta, the ReLU
//      and the pool. What the backward needs: the pool's window codes below, and the saved mean and
//      inverse standard deviation; the normalised activation itself is never written.
// Training backward, two launches instead of two (pool backward, BatchNorm backward) and about a
// quarter of the traffic: batchnorm_relu_maxpool_backward computes the pool's and the ReLU's
// backward from the window codes, BatchNorm's two sums from it in its first kernel, and BatchNorm's
// input gradient in its second (which needs both sums complete: a dependency across the grid).
// Evaluation: batchnorm_fold_conv3x3 folds BatchNorm into the convolution's weights and bias, so
// that conv3x3[_tc]_relu_maxpool_forward over the folded ones is conv + BatchNorm + ReLU + pool
// in one kernel.
//
// The statistics workspace (conv3x3*_forward_bn_stats's `stats`, tiles = conv3x3*_bn_stats_tiles):
// 3 * C * tiles doubles; for channel c and tile t, the tile's pixel count at [c * tiles + t], its
// mean at [(C + c) * tiles + t] and its sum of squared deviations from that mean at
// [(2 * C + c) * tiles + t]. Each tile sums about one of its own values and the merge about tile
// 0's mean (kernels/batchnorm_stats.cuh), so a common offset of the data far larger than its spread
// costs no accuracy (the CPU reference's two-pass variance is matched within kGpuVsCpu).
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/common.hpp"

namespace octa::gpu {

// Window codes: (N, C, H/2, W/2) bytes, one per 2x2 window: the index (0..3, row-major) of the
// window's first maximum when that maximum (a ReLU output) is positive, so that the gradient flows
// there, else kWindowNoGradient (the maximum is 0: no gradient through the window's ReLUs).
inline constexpr std::uint8_t kWindowNoGradient = 4;

// pooled: (N, C, H/2, W/2) = maxpool2x2(relu(gamma * (conv_out - mean) * invstd + beta)), with the
// batch mean and biased variance of conv_out (N, C, H, W) merged from `stats` (stats_tiles tiles,
// as the convolution launcher that wrote it says). window: (N, C, H/2, W/2) codes for backward.
// save_mean, save_invstd: (C), as batchnorm_forward_train's. running_mean, running_var: (C),
// updated with momentum and the unbiased variance (both null: not kept). H and W even.
void batchnorm_relu_maxpool_forward_train(float* pooled, std::uint8_t* window, float* save_mean,
                                          float* save_invstd, float* running_mean,
                                          float* running_var, const float* conv_out,
                                          const double* stats, int stats_tiles, const float* gamma,
                                          const float* beta, int N, int C, int H, int W, float eps,
                                          float momentum, cudaStream_t stream);

// The backward of the forward above: from dpool (N, C, H/2, W/2), the window codes, the forward's
// input conv_out and saved statistics, dconv (N, C, H, W) = BatchNorm's input gradient of the
// pool's and ReLU's backward, and dgamma, dbeta (C), overwritten. Two launches through
// `workspace` (batchnorm_relu_maxpool_backward_workspace doubles): the first sums dy and dy * xhat
// per block in a fixed order, the second adds each channel's block sums in order and applies
// d/dx of BatchNorm. Deterministic. H and W even.
std::size_t batchnorm_relu_maxpool_backward_workspace(int N, int C, int H, int W);
void batchnorm_relu_maxpool_backward(float* dconv, float* dgamma, float* dbeta, const float* dpool,
                                     const std::uint8_t* window, const float* conv_out,
                                     const float* save_mean, const float* save_invstd,
                                     const float* gamma, int N, int C, int H, int W,
                                     double* workspace, cudaStream_t stream);

// The first of those two launches alone, for a consumer that applies the input gradient itself
// (conv3x3_backward_filter_from_bn_maxpool, kernels/batchnorm_grad.cuh): each block's sums of dy
// and dy * xhat into `workspace`, `blocks` = batchnorm_relu_maxpool_backward_blocks(N, H, W) per
// channel: [c * blocks + b], then [(C + c) * blocks + b].
int batchnorm_relu_maxpool_backward_blocks(int N, int H, int W);
void batchnorm_relu_maxpool_backward_sums(double* workspace, const float* dpool,
                                          const std::uint8_t* window, const float* conv_out,
                                          const float* save_mean, const float* save_invstd, int N,
                                          int C, int H, int W, cudaStream_t stream);
// The second launch alone, over a workspace of those sums that the caller has filled (the sums
// kernel's own, or another one of the same layout: --sync-bn's, kernels/batchnorm_sync.hpp):
// dconv, dgamma and dbeta as batchnorm_relu_maxpool_backward's.
void batchnorm_relu_maxpool_backward_data(float* dconv, float* dgamma, float* dbeta,
                                          const double* workspace, const float* dpool,
                                          const std::uint8_t* window, const float* conv_out,
                                          const float* save_mean, const float* save_invstd,
                                          const float* gamma, int N, int C, int H, int W,
                                          cudaStream_t stream);

// Eval-mode BatchNorm folded into the 3x3 convolution before it: with s = gamma / sqrt(var + eps)
// per output channel, folded_weight = weight * s (Cout, Cin, 3, 3) and
// folded_bias = (bias - running_mean) * s + beta (Cout), in double, rounded once. The folded
// convolution equals BatchNorm (eval) of the original one's output.
void batchnorm_fold_conv3x3(float* folded_weight, float* folded_bias, const float* weight,
                            const float* bias, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, int Cin, int Cout,
                            float eps, cudaStream_t stream);

}  // namespace octa::gpu
