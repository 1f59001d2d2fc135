// kernels/conv3x3_tc.hpp: octa's 3x3 / stride 1 / pad 1 convolutions on the tensor cores, float32
// in and out, NCHW, the same arguments and results as kernels/conv3x3.hpp's CUDA-core kernels.
//
// Each pass is an implicit GEMM (the im2col matrix is built tile by tile in shared memory, never
// in device memory) run with WMMA TF32 fragments in "3xTF32": every float operand x is split into
// hi = tf32(x) and lo = tf32(x - hi), and a*b is accumulated as a_lo*b_hi + a_hi*b_lo + a_hi*b_hi
// in float. That keeps float32's accuracy (relative error per product about 2^-21, against plain
// TF32's 2^-11), so the results pass the same tolerance against the CPU reference as the CUDA-core
// kernels, at three tensor-core products per multiply-add. Worth it where the reduction is long:
// model A/B's conv2 (K = 32 * 9 = 288 forward, 576 backward data, N*H*W backward filter); conv1
// (one input channel, K = 9) stays on the CUDA cores.
//
// Deterministic: every reduction has a fixed order (the backward filter reduces through the same
// two-stage workspace as conv3x3_backward_filter), so a result is bit-identical run to run.
#pragma once

#include "kernels/common.hpp"

namespace octa::gpu {

// Where these kernels pay (--conv fused runs them for stages with at least this many input
// channels: conv2): below it (conv1, Cin = 1, a 9-term reduction) 3xTF32's three products per
// multiply-add do not, and the CUDA-core kernels run.
inline constexpr int kTensorCoreMinCin = 8;

// out: (N, Cout, H, W) = epilogue(conv3x3(in, weight) + bias), as conv3x3_forward.
void conv3x3_tc_forward(float* out, const float* in, const float* weight, const float* bias, int N,
                        int Cin, int Cout, int H, int W, Epilogue epilogue, cudaStream_t stream);

// act = relu(conv3x3(in) + bias), pooled = maxpool2x2(act), as conv3x3_relu_maxpool_forward.
// H and W even.
void conv3x3_tc_relu_maxpool_forward(float* pooled, float* act, const float* in,
                                     const float* weight, const float* bias, int N, int Cin,
                                     int Cout, int H, int W, cudaStream_t stream);

// out = conv3x3(in, weight) + bias and BatchNorm's per-tile statistics of out, as
// conv3x3_forward_bn_stats, with this kernel's tiles: conv3x3_tc_bn_stats_tiles(N, H, W) blocks of
// 64 output pixels (row-major over the batch, so a tile may straddle two images).
int conv3x3_tc_bn_stats_tiles(int N, int H, int W);
void conv3x3_tc_forward_bn_stats(float* out, double* stats, const float* in, const float* weight,
                                 const float* bias, int N, int Cin, int Cout, int H, int W,
                                 cudaStream_t stream);

// din: (N, Cin, H, W) from dout: (N, Cout, H, W), as conv3x3_backward_data.
void conv3x3_tc_backward_data(float* din, const float* dout, const float* weight, int N, int Cin,
                              int Cout, int H, int W, cudaStream_t stream);

// dweight: (Cout, Cin, 3, 3), dbias: (Cout), overwritten, as conv3x3_backward_filter, through a
// workspace of conv3x3_backward_filter_workspace(N, Cin, Cout, H, W) floats (the same size).
void conv3x3_tc_backward_filter(float* dweight, float* dbias, const float* dout, const float* in,
                                int N, int Cin, int Cout, int H, int W, float* workspace,
                                cudaStream_t stream);

}  // namespace octa::gpu
