// kernels/batchnorm_grad.cuh: BatchNorm's input gradient after the fused ReLU and 2x2 max-pool
// (kernels/batchnorm_fused.hpp), device side, in the one form both of its users compute it:
// batchnorm_relu_maxpool_backward's second kernel (batchnorm_fused.cu), which writes it, and the
// filter gradient that rebuilds it while staging (conv3x3_backward_filter_from_bn_maxpool,
// conv3x3.cu), so the two give the same bits. Included by .cu files only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/batchnorm_fused.hpp"

namespace octa::gpu {

// din = k_dy * dy - k_0 - xhat * k_x with xhat = (x - mean) * invstd: scale * (dy - mean(dy) -
// xhat * mean(dy * xhat)), scale = gamma * invstd, the two means from the channel's sums.
struct BnGradCoeffs {
  float k_dy, k_0, k_x, mean, invstd;
};

// Channel c's coefficients from the sums kernel's workspace (`blocks` block sums of dy, then of
// dy * xhat, per channel), added in block order; the two sums are returned too (dbeta, dgamma).
__device__ __forceinline__ BnGradCoeffs bn_grad_coeffs(const double* workspace, int C, int blocks,
                                                       int c, const float* gamma,
                                                       const float* save_mean,
                                                       const float* save_invstd, double count,
                                                       double& sum_dy, double& sum_dy_xhat) {
  const double* s = workspace + static_cast<std::size_t>(c) * static_cast<std::size_t>(blocks);
  const double* sx = s + static_cast<std::size_t>(C) * static_cast<std::size_t>(blocks);
  sum_dy = 0.0;
  sum_dy_xhat = 0.0;
  for (int b = 0; b < blocks; ++b) {
    sum_dy += s[b];
    sum_dy_xhat += sx[b];
  }
  const double scale = static_cast<double>(gamma[c]) * static_cast<double>(save_invstd[c]);
  return {static_cast<float>(scale), static_cast<float>(scale * (sum_dy / count)),
          static_cast<float>(scale * (sum_dy_xhat / count)), save_mean[c], save_invstd[c]};
}

// The input gradient at one element: x its conv output, dy its gradient after the pool's and the
// ReLU's backward.
__device__ __forceinline__ float bn_input_grad(float x, float dy, const BnGradCoeffs& k) {
  const float xhat = (x - k.mean) * k.invstd;
  return fmaf(-xhat, k.k_x, fmaf(k.k_dy, dy, -k.k_0));
}

// The same at (y, x) of one plane, dy rebuilt from the window codes: dpool's value of the window
// where its code names (y, x), else 0. conv_out: the plane's H x W values (W even); window, dpool:
// its (H/2) x (W/2) codes and pooled gradient.
__device__ __forceinline__ float bn_relu_maxpool_grad_at(const float* conv_out,
                                                         const std::uint8_t* window,
                                                         const float* dpool, int y, int x, int W,
                                                         const BnGradCoeffs& k) {
  const int w = (y / 2) * (W / 2) + x / 2;
  const float dy = window[w] == (y % 2) * 2 + x % 2 ? dpool[w] : 0.0f;
  return bn_input_grad(conv_out[y * W + x], dy, k);
}

}  // namespace octa::gpu
