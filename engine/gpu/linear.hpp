// engine/gpu/linear.hpp: linear layers on the GPU through cuBLAS (FP32, default math mode: no
// TF32), with octa's bias/activation and bias-gradient kernels. Mirrors cpu::linear_*.
#pragma once

#include <cublas_v2.h>

#include "kernels/common.hpp"

namespace octa::gpu {

// out: (N, Out) = epilogue(in (N, In) * weight^T + bias)   weight: (Out, In)   bias: (Out)
void linear_forward(float* out, const float* in, const float* weight, const float* bias, int N,
                    int In, int Out, Epilogue epilogue, cublasHandle_t blas, cudaStream_t stream);

// din: (N, In) or null   dweight: (Out, In)   dbias: (Out), all overwritten.
void linear_backward(float* din, float* dweight, float* dbias, const float* dout, const float* in,
                     const float* weight, int N, int In, int Out, cublasHandle_t blas,
                     cudaStream_t stream);

}  // namespace octa::gpu
