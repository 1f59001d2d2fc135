// kernels/conv3x3.hpp: octa's own 3x3 / stride 1 / pad 1 convolution kernels (the `--conv fused`
// path), float32, NCHW. Deterministic: no floating-point atomics; every reduction has a fixed
// order.
#pragma once

#include "kernels/common.hpp"

namespace octa::gpu {

// out: (N, Cout, H, W) = epilogue(conv3x3(in, weight) + bias)
// in: (N, Cin, H, W)   weight: (Cout, Cin, 3, 3)   bias: (Cout)
void conv3x3_forward(float* out, const float* in, const float* weight, const float* bias, int N,
                     int Cin, int Cout, int H, int W, Epilogue epilogue, cudaStream_t stream);

// Model A's stages fused: act = relu(conv3x3(in) + bias) (N, Cout, H, W), kept for backward, and
// pooled = maxpool2x2(act) (N, Cout, H/2, W/2), in one pass over the output.
void conv3x3_relu_maxpool_forward(float* pooled, float* act, const float* in, const float* weight,
                                  const float* bias, int N, int Cin, int Cout, int H, int W,
                                  cudaStream_t stream);

// Model B's training forward, first half (the second: batchnorm_relu_maxpool_forward_train in
// kernels/batchnorm_fused.hpp): out = conv3x3(in, weight) + bias (N, Cout, H, W), as
// conv3x3_forward with kNone, and BatchNorm's statistics of out from the kernel's epilogue: for
// each of conv3x3_bn_stats_tiles(N, H, W) tiles of output pixels and each channel, the tile's
// pixel count, mean and sum of squared deviations, in `stats` (3 * Cout * tiles doubles, laid out
// as batchnorm_fused.hpp says; every value written, no clearing needed). Deterministic.
int conv3x3_bn_stats_tiles(int N, int H, int W);
void conv3x3_forward_bn_stats(float* out, double* stats, const float* in, const float* weight,
                              const float* bias, int N, int Cin, int Cout, int H, int W,
                              cudaStream_t stream);

// din: (N, Cin, H, W) = gradient w.r.t. the input, given dout: (N, Cout, H, W).
void conv3x3_backward_data(float* din, const float* dout, const float* weight, int N, int Cin,
                           int Cout, int H, int W, cudaStream_t stream);

// dweight: (Cout, Cin, 3, 3), dbias: (Cout), overwritten. Reduces over N*H*W in two fixed-order
// stages through `workspace` (conv3x3_backward_filter_workspace(...) floats), so the result is
// bit-identical from run to run.
std::size_t conv3x3_backward_filter_workspace(int N, int Cin, int Cout, int H, int W);
void conv3x3_backward_filter(float* dweight, float* dbias, const float* dout, const float* in,
                             int N, int Cin, int Cout, int H, int W, float* workspace,
                             cudaStream_t stream);

// Model A's first stage backward in one pass: conv3x3_backward_filter of the gradient that
// maxpool2x2_backward(relu_before = true) would produce from dpool (N, Cout, H/2, W/2) and the
// saved ReLU output act (N, Cout, H, W), rebuilt while the kernel stages it instead of written to
// memory and read back. Same workspace, same reduction order: bit-identical to the two passes.
// H and W even.
void conv3x3_backward_filter_from_maxpool(float* dweight, float* dbias, const float* dpool,
                                          const float* act, const float* in, int N, int Cin,
                                          int Cout, int H, int W, float* workspace,
                                          cudaStream_t stream);

// Model B's first stage backward with the fused BatchNorm (kernels/batchnorm_fused.hpp): from the
// pool's gradient dpool (N, Cout, H/2, W/2), the window codes, BatchNorm's input conv_out
// (N, Cout, H, W), its saved statistics and gamma, both BatchNorm's gradients dgamma, dbeta (Cout)
// and the convolution's dweight, dbias, with BatchNorm's input gradient rebuilt while the filter
// gradient stages it (never written): batchnorm_relu_maxpool_backward_sums into bn_workspace
// (batchnorm_relu_maxpool_backward_workspace doubles), then the filter gradient through
// `workspace` as conv3x3_backward_filter. Bit-identical to batchnorm_relu_maxpool_backward
// followed by conv3x3_backward_filter. H and W even.
void conv3x3_backward_filter_from_bn_maxpool(float* dweight, float* dbias, float* dgamma,
                                             float* dbeta, const float* dpool,
                                             const std::uint8_t* window, const float* conv_out,
                                             const float* save_mean, const float* save_invstd,
                                             const float* gamma, const float* in, int N, int Cin,
                                             int Cout, int H, int W, double* bn_workspace,
                                             float* workspace, cudaStream_t stream);

}  // namespace octa::gpu
