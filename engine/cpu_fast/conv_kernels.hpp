// engine/cpu_fast/conv_kernels.hpp: the fast CPU backend's per-image loops around its GEMMs:
// im2col/col2im for a 3x3, padding-1 convolution, the fused bias (or BatchNorm affine) + ReLU +
// 2x2 max-pool epilogue that keeps only the pooled values and a byte per window for backward,
// and that backward. One image at a time, so every buffer stays in the core's L2 cache.
//
// Each mirrors the reference (engine/cpu/ops.hpp) value for value: the same ReLU (x < 0 -> 0, a
// NaN propagates), the same window argmax (the first maximum in row-major order, a NaN wins), the
// same order of the nine additions in col2im. Only the GEMMs around them round differently.
#pragma once

#include <cstdint>

namespace octa::cpu_fast {

// The largest plane side these loops take (MNIST's 28).
inline constexpr int kMaxSide = 28;

// "Pool order": the order of a convolution block's output pixels in these loops. Pixel (y, x) of
// an H x W plane is column
//   (y % 2 * 2 + x % 2) * Q + (y / 2) * (W / 2) + x / 2,      Q = (H / 2) * (W / 2)
// i.e. four quarter-planes, one per position in the 2x2 pooling window (row-major within the
// window), each row-major over the windows. The GEMM writes its output in whatever column order
// im2col gives it, so choosing this one makes the pooling and its backward plain element-wise
// loops over four contiguous arrays. Sums over all pixels (bias gradients, BatchNorm) do not
// depend on the order.

// col: (C*9, H*W) with columns in pool order; row c*9 + ky*3 + kx holds plane c shifted by
// (ky - 1, kx - 1), zero outside. in: (C, H, W) in the natural (row-major) order. H, W even and
// <= kMaxSide.
void im2col3x3_pooled(float* col, const float* in, int C, int H, int W);

// The adjoint of im2col3x3_pooled: din (C, H, W), natural order, = the sum of each pixel's nine
// column entries, added in (ky, kx) order.
void col2im3x3_pooled(float* din, const float* dcol, int C, int H, int W);

// out (C, H/2, W/2) = maxpool2x2(relu((in - center[c]) * scale[c] + shift[c])), in (C, H*W) in
// pool order; argmax (C, H/2, W/2): the window position (0..3, row-major) of the maximum. A null
// center or shift is 0, a null scale 1: a convolution's bias is the shift alone (exactly in +
// bias), BatchNorm's the batch mean, gamma * invstd and beta.
void affine_relu_maxpool(float* out, std::uint8_t* argmax, const float* in, const float* center,
                         const float* scale, const float* shift, int C, int H, int W);

// The backward of relu then maxpool: din (C, H*W) in pool order = dout at each window's argmax
// where the pooled output `out` is positive (the ReLU let it through), zero everywhere else.
void maxpool_relu_backward(float* din, const float* dout, const float* out,
                           const std::uint8_t* argmax, int C, int H, int W);

// y (C, HW) += bias[c].
void add_bias(float* y, const float* bias, int C, int HW);

// acc[c] += sum over HW of y[c], accumulated in double (eight interleaved partial sums combined
// in a fixed order).
void add_row_sums(double* acc, const float* y, int C, int HW);

// sum[c] += the sum over HW of y[c], sum_sq[c] += that of y[c]^2, both in double (interleaved as
// add_row_sums): BatchNorm's batch statistics in one pass over outputs still in cache.
void add_row_sums_and_squares(double* sum, double* sum_sq, const float* y, int C, int HW);

// BatchNorm's backward sums for one image, from the pooled gradient: per channel, sum_dy +=
// the sum of dy and sum_dy_xhat += the sum of dy * (x - mean) * invstd, where dy is the gradient
// the ReLU and the pool pass back (dout at each window's argmax where out > 0, zero elsewhere) and
// x (C, H*W, pool order) the BatchNorm input. dout, out, argmax: (C, H/2, W/2).
void pooled_batchnorm_sums(double* sum_dy, double* sum_dy_xhat, const float* dout, const float* out,
                           const std::uint8_t* argmax, const float* x, const float* mean,
                           const float* invstd, int C, int H, int W);

// BatchNorm's input gradient, in place: dy (C, HW) becomes
//   k[c] * (dy - mean_dy[c] - xhat * mean_dy_xhat[c]),  xhat = (x - mean[c]) * invstd[c],
// k = gamma * invstd (cpu::batchnorm_backward's formula, in float).
void batchnorm_input_grad(float* dy, const float* x, const float* mean, const float* invstd,
                          const float* k, const float* mean_dy, const float* mean_dy_xhat, int C,
                          int HW);

}  // namespace octa::cpu_fast
