// kernels/batchnorm.hpp: BatchNorm2d, float32 NCHW, with PyTorch's rules (batch mean and biased
// variance to normalise; running statistics updated with momentum and the unbiased variance).
// Statistics are reduced in a fixed order (no atomics), accumulated in double per channel.
#pragma once

#include "kernels/common.hpp"

namespace octa::gpu {

// out = epilogue(gamma * (in - mean) * invstd + beta); save_mean, save_invstd: (C) for backward.
void batchnorm_forward_train(float* out, float* save_mean, float* save_invstd, float* running_mean,
                             float* running_var, const float* in, const float* gamma,
                             const float* beta, int N, int C, int HW, float eps, float momentum,
                             Epilogue epilogue, cudaStream_t stream);

void batchnorm_forward_eval(float* out, const float* in, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var, int N, int C,
                            int HW, float eps, Epilogue epilogue, cudaStream_t stream);

// Backward of the training forward. relu_out, when not null, is the forward's output after a ReLU
// epilogue: dout is taken as zero where relu_out <= 0 (the fused ReLU backward).
// din: (N, C, HW)   dgamma, dbeta: (C), overwritten.
void batchnorm_backward(float* din, float* dgamma, float* dbeta, const float* dout,
                        const float* relu_out, const float* in, const float* save_mean,
                        const float* save_invstd, const float* gamma, int N, int C, int HW,
                        cudaStream_t stream);

}  // namespace octa::gpu
