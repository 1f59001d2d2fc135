// kernels/conv3x3_plan.hpp: what the CUDA-core (conv3x3.cu) and tensor-core (conv3x3_tc.cu)
// convolutions share on the host: the size and argument checks, the backward filter's slice plan,
// and stage 2 of its deterministic reduction (the sum of the slices' partials, implemented in
// conv3x3.cu). Internal to kernels/; the public launchers are in conv3x3.hpp and conv3x3_tc.hpp.
#pragma once

#include <cstddef>

#include "kernels/common.hpp"

namespace octa::gpu::conv_detail {

// Sizes every convolution launcher needs; the kernels index one (H, W) plane with int.
void check_conv_sizes(const char* op, int N, int Cin, int Cout, int H, int W);

// The launchers' argument checks, the same for the CUDA-core and the tensor-core launchers: `op`
// names the launcher in every message. The grid checks, which depend on each kernel's tiles, stay
// with the launchers. All of them run before any CUDA call.
void check_forward_args(const char* op, const float* out, const float* in, const float* weight,
                        const float* bias, int N, int Cin, int Cout, int H, int W,
                        Epilogue epilogue);
// forward_op: the plain forward launcher that the message for odd sizes points to.
void check_relu_maxpool_forward_args(const char* op, const char* forward_op, const float* pooled,
                                     const float* act, const float* in, const float* weight,
                                     const float* bias, int N, int Cin, int Cout, int H, int W);
void check_backward_data_args(const char* op, const float* din, const float* dout,
                              const float* weight, int N, int Cin, int Cout, int H, int W);
// dout_name: what the gradient argument is called (dout, or dpool for the from-max-pool variant).
void check_backward_filter_args(const char* op, const float* dweight, const float* dbias,
                                const char* dout_name, const float* dout, const float* in, int N,
                                int Cin, int Cout, int H, int W, const float* workspace);

// blocks <= limit, else an error naming the launcher and what to change.
void check_grid(const char* op, const char* what, long long blocks, long long limit);

constexpr long long ceil_div(long long a, long long b) {
  return (a + b - 1) / b;
}

// The backward filter pass: dweight[co][ci][ky][kx] = sum over (n, y, x) of dout * in_pad is a GEMM
// (Cout) x (Cin*9) with the N*H*W pixels as its reduction dimension. The flattened rows (n, y) are
// cut into `slices` fixed ranges, a function of the shape only (never of the device, so results are
// bit-identical on any GPU). Each slice's partial sums (Cout*Cin*9 weights, then Cout biases: a
// stride of `stride` floats) go to a workspace of slices * stride floats; stage 2 adds the slices
// in order.
struct WgradPlan {
  long long rows_total;      // N * H
  long long rows_per_slice;  // the last slice may hold fewer
  int slices;
  std::size_t weights;  // Cout * Cin * 9
  std::size_t stride;   // floats per slice's partial: weights + Cout
};

WgradPlan plan_wgrad(int N, int Cin, int Cout, int H, int W);

// Stage 2: dweight and dbias = the sum of the plan's partials in slice order (in double, rounded
// once). Launches one kernel on `stream`.
void launch_wgrad_finalize(float* dweight, float* dbias, const float* partial,
                           const WgradPlan& plan, cudaStream_t stream);

}  // namespace octa::gpu::conv_detail
