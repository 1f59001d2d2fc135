// engine/gpu/cudnn_conv.hpp: the 3x3 / stride 1 / pad 1 convolution through cuDNN 9 (the
// `--conv cudnn` path), float32 NCHW, checked against the same CPU reference as octa's own kernels.
//
// For each batch size it is asked for, it builds descriptors and picks the fastest *deterministic*
// algorithm for the forward, backward-data and backward-filter passes once, with its workspace;
// plan() does that ahead of time (before a CUDA graph is captured: nothing is allocated later).
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include <cudnn.h>

#include "kernels/common.hpp"

namespace octa::gpu {

class CudnnConv3x3 {
 public:
  CudnnConv3x3(cudnnHandle_t handle, int Cin, int Cout, int H, int W);
  ~CudnnConv3x3();
  CudnnConv3x3(const CudnnConv3x3&) = delete;
  CudnnConv3x3& operator=(const CudnnConv3x3&) = delete;

  // Chooses the algorithms and allocates the workspace for batch size N (idempotent).
  void plan(int N);

  // Same contracts as kernels/conv3x3.hpp (outputs overwritten), stream last.
  void forward(float* out, const float* in, const float* weight, const float* bias, int N,
               Epilogue epilogue, cudaStream_t stream);
  // out = relu(conv(in, weight) + bias) in one cuDNN call (cudnnConvolutionBiasActivationForward):
  // the counterpart of octa's folded eval form of conv + BatchNorm + ReLU (bench_kernels). The
  // training path does not use it.
  void forward_bias_relu(float* out, const float* in, const float* weight, const float* bias, int N,
                         cudaStream_t stream);
  void backward_data(float* din, const float* dout, const float* weight, int N,
                     cudaStream_t stream);
  void backward_filter(float* dweight, float* dbias, const float* dout, const float* in, int N,
                       cudaStream_t stream);

  // The algorithms chosen for batch size N, for logs ("fwd 1 (IMPLICIT_PRECOMP_GEMM), ...").
  std::string describe(int N);

 private:
  struct Plan;
  Plan& plan_for(int N);
  cudnnHandle_t handle_;
  int cin_, cout_, h_, w_;
  std::map<int, std::unique_ptr<Plan>> plans_;
};

}  // namespace octa::gpu
