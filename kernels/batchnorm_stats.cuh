// kernels/batchnorm_stats.cuh: the per-tile BatchNorm statistics that the convolutions' epilogues
// emit (conv3x3_forward_bn_stats, conv3x3_tc_forward_bn_stats) and batchnorm_fused.cu merges,
// device side: the workspace layout (documented for callers in kernels/batchnorm_fused.hpp) and the
// arithmetic both ends share. Included by .cu files only.
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

}  // namespace octa::gpu
