// kernels/bce.cuh: BCE with logits for one sample, device side, in double: the stable formulas of
// cpu::bce_with_logits (engine/cpu/ops.cpp), shared by the loss kernel (loss.cu) and the fused
// training head (logit_head.cu), so both compute the same loss and gradient bits. Included by .cu
// files only.
#pragma once

namespace octa::gpu {

// sigmoid(z), without overflow for any finite z.
__device__ __forceinline__ double bce_sigmoid(double z) {
  if (z >= 0.0) return 1.0 / (1.0 + exp(-z));
  const double e = exp(z);
  return e / (1.0 + e);
}

// log(1 + exp(z)), without overflow for any finite z; std::max's comparison, so a NaN propagates.
__device__ __forceinline__ double bce_softplus(double z) {
  return (z < 0.0 ? 0.0 : z) + log1p(exp(-fabs(z)));
}

// The loss of logit z against target y with pos_weight pw: (1-y) softplus(z) + pw y softplus(-z),
// a sum of non-negative terms (for 0 <= y <= 1), so nothing cancels at large |z|.
__device__ __forceinline__ double bce_loss(double z, double y, double pw) {
  return (1.0 - y) * bce_softplus(z) + pw * y * bce_softplus(-z);
}

// d(loss)/dz = (1-y) sigmoid(z) - pw y sigmoid(-z); the mean's gradient divides it by N.
__device__ __forceinline__ double bce_grad(double z, double y, double pw) {
  return (1.0 - y) * bce_sigmoid(z) - pw * y * bce_sigmoid(-z);
}

}  // namespace octa::gpu
