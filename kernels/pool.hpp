// kernels/pool.hpp: max-pool 2x2/2 and global average pool, forward and backward, float32 NCHW.
#pragma once

#include "kernels/common.hpp"

namespace octa::gpu {

// out: (N, C, H/2, W/2)   in: (N, C, H, W), H and W even.
void maxpool2x2_forward(float* out, const float* in, int N, int C, int H, int W,
                        cudaStream_t stream);

// din: (N, C, H, W), overwritten (zeros off the maxima). The gradient goes to the first maximum of
// each window in scan order, as PyTorch. relu_before = true fuses the backward of a ReLU that
// produced `in`: no gradient flows where in <= 0 (the window's maximum is then 0).
void maxpool2x2_backward(float* din, const float* dout, const float* in, int N, int C, int H, int W,
                         bool relu_before, cudaStream_t stream);

// out: (N, C)   in: (N, C, HW)
void global_avgpool_forward(float* out, const float* in, int N, int C, int HW, cudaStream_t stream);
// din: (N, C, HW) = dout / HW broadcast
void global_avgpool_backward(float* din, const float* dout, int N, int C, int HW,
                             cudaStream_t stream);

}  // namespace octa::gpu
