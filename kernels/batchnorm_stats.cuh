// kernels/batchnorm_stats.cuh: BatchNorm's batch statistics, device side: the per-tile statistics
// that the convolutions' epilogues emit (conv3x3_forward_bn_stats, conv3x3_tc_forward_bn_stats)
// and batchnorm_fused.cu merges (the workspace layout, documented for callers in
// kernels/batchnorm_fused.hpp), and the saving of a channel's statistics with PyTorch's running
// update that both BatchNorm training kernels (batchnorm.cu, batchnorm_fused.cu) end with.
// Included by .cu files only.
//
// Numerics. A tile's values v (float, as stored) are summed in double about a shift k taken from
// the tile itself (its first pixel's value): s1 = sum (v - k), s2 = sum (v - k)^2, which gives the
// tile's mean k + s1/n and its sum of squared deviations m2 = s2 - s1^2/n. Because k is one of the
// tile's values, |k - mean| is a few standard deviations at most, so s2 - s1^2/n cancels by a small
// factor whatever the common offset of the data (a one-pass sum of v^2 would cancel by
// mean^2/variance, which for a mean 3000 standard deviations from zero is 10^7: float would keep no
// digit of the variance). The merge is the same shifted form one level up (shift: tile 0's mean).
#pragma once

#include <cstddef>

namespace octa::gpu {

// Stores tile t's statistics for channel c from its shifted sums (n values about the shift k) in a
// workspace of 3 * C * tiles doubles: the count at [c * tiles + t], the mean C * tiles further on,
// the sum of squared deviations 2 * C * tiles further on.
__device__ __forceinline__ void store_tile_stats(double* stats, int C, int tiles, int c, int t,
                                                 double n, double k, double s1, double s2) {
  const std::size_t plane = static_cast<std::size_t>(C) * static_cast<std::size_t>(tiles);
  const std::size_t i =
      static_cast<std::size_t>(c) * static_cast<std::size_t>(tiles) + static_cast<std::size_t>(t);
  const double m2 = s2 - s1 * s1 / n;
  stats[i] = n;
  stats[plane + i] = k + s1 / n;
  stats[2 * plane + i] = m2 < 0.0 ? 0.0 : m2;  // rounding can leave a hair below zero
}

// Saves channel c's batch mean and inverse standard deviation for the backward, and updates its
// running statistics as PyTorch does: momentum, and the unbiased variance m2 / (count - 1), m2 the
// sum of squared deviations. A module built without running statistics passes null for both.
__device__ __forceinline__ void save_batch_statistics(float* save_mean, float* save_invstd,
                                                      float* running_mean, float* running_var,
                                                      int c, double mean, double invstd, double m2,
                                                      double count, float momentum) {
  save_mean[c] = static_cast<float>(mean);
  save_invstd[c] = static_cast<float>(invstd);
  const double m = static_cast<double>(momentum);
  if (running_mean != nullptr) {
    running_mean[c] =
        static_cast<float>((1.0 - m) * static_cast<double>(running_mean[c]) + m * mean);
  }
  if (running_var != nullptr) {
    running_var[c] = static_cast<float>((1.0 - m) * static_cast<double>(running_var[c]) +
                                        m * (m2 / (count - 1.0)));
  }
}

}  // namespace octa::gpu
