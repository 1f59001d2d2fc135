// kernels/loss.hpp: BCE-with-logits fused with its mean reduction and its gradient, one launch.
#pragma once

#include "kernels/common.hpp"

namespace octa::gpu {

// dlogits: (N) = d(mean loss)/d(logit) (null: not needed). batch_loss: one float, the batch's mean
// loss. loss_sum: one double accumulated in place with mean * N (the epoch's running sum; the host
// reads and resets it). Stable form with pos_weight, as engine/cpu/ops.hpp; reduced in double in a
// fixed order (deterministic). N up to any size.
void bce_with_logits(float* dlogits, float* batch_loss, double* loss_sum, const float* logits,
                     const float* targets, int N, float pos_weight, cudaStream_t stream);

}  // namespace octa::gpu
