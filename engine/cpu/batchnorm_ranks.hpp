// engine/cpu/batchnorm_ranks.hpp: what a CPU BatchNorm needs to normalise with the statistics of a
// global batch that data-parallel ranks share (--sync-bn, PyTorch's SyncBatchNorm; the ranks and
// their communicator: engine/dist/). Both CPU models take one (CpuModel, cpu_fast::FastModel) and
// hand it to their BatchNorm layers; null (the default) is plain per-batch BatchNorm.
//
// Training forward: the per-channel sums of x (and the element count) are summed over the ranks,
// then those of (x - mean)^2 about the global mean (the reference, two passes) or of x^2 (the fast
// backend, one pass), so every rank normalises with the global mean and biased variance and
// updates the running estimates with the global unbiased variance. Backward: the per-channel sums
// of dy and dy * xhat, each rank's weighted by its share's weight in the global mean loss, are
// summed over the ranks, so the input gradient is the one the whole batch gives in one process.
#pragma once

#include <cstddef>
#include <functional>

namespace octa::cpu {

struct BatchNormRanks {
  // Element-wise sum over every rank of `count` doubles, in place, the same bits on every rank
  // (Communicator::allreduce_sum: rank order). Collective: every rank calls it the same times.
  std::function<void(double* values, std::size_t count)> allreduce_sum;
  // This rank's share of the global batch as a weight in the global mean loss, n_r / n (the scale
  // the gradient reduction applies; GradientReducer::share_weight). The backward's dy is the
  // gradient of the mean loss over the share, i.e. 1 / weight times the global loss's.
  double weight = 1.0;
};

}  // namespace octa::cpu
