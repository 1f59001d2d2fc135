// kernels/optimizer.hpp: one fused Adam (or SGD) update over the whole flat parameter buffer.
// The step counter lives in device memory so that a captured CUDA graph can be replayed: each
// update increments it on the device and derives the bias corrections from it there. The learning
// rate may live there too (device_lr), so that a replayed graph follows a schedule.
#pragma once

#include "kernels/common.hpp"

namespace octa::gpu {

// device_lr: when set, each launch (or graph replay) reads the lr from this device scalar instead
// of `lr`, which is then only checked on the host; whoever writes the scalar keeps it positive.
struct AdamParams {
  double lr, beta1, beta2, eps, weight_decay;
  const double* device_lr = nullptr;
};

struct SgdParams {
  double lr, momentum, dampening, weight_decay;
  bool nesterov;
  const double* device_lr = nullptr;
};

// Increments *step, then updates params (n) from grads with PyTorch's Adam (as
// octa::adam_update: float32 arithmetic, bias corrections in double).
void adam_update(float* params, const float* grads, float* m, float* v, std::size_t n,
                 const AdamParams& hp, std::int64_t* step, cudaStream_t stream);

// Increments *step, then PyTorch's SGD (the momentum buffer is g at the first update).
void sgd_update(float* params, const float* grads, float* momentum_buf, std::size_t n,
                const SgdParams& hp, std::int64_t* step, cudaStream_t stream);

}  // namespace octa::gpu
