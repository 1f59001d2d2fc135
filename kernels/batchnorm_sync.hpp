// kernels/batchnorm_sync.hpp: what the CUDA engine's synchronised BatchNorm (--sync-bn, PyTorch's
// SyncBatchNorm over NCCL: engine/gpu/cuda_backend.cpp) does on the device around its two
// all-gathers per layer and step, so that every rank normalises with the global batch's statistics
// and takes its input gradient through the global batch's sums, the same bits on every rank.
//
// Forward: batchnorm_sync_pack_stats merges this rank's tiles of statistics (the fused
// convolution's workspace, kernels/batchnorm_fused.hpp) into one tile per channel, written at this
// rank's place in the all-gather's buffer (3 * C doubles per rank: counts, means, sums of squared
// deviations); after the all-gather, batchnorm_sync_unpack_stats lays the ranks' tiles out as a
// workspace of `ranks` tiles, rank r's as tile r, which batchnorm_relu_maxpool_forward_train
// merges in tile order: rank order, whatever the timing, with the global count (so the running
// variance is unbiased with it).
//
// Backward: batchnorm_sync_pack_sums adds up this rank's block sums of dy and dy * xhat
// (batchnorm_relu_maxpool_backward_sums's workspace) in block order and weights them by the rank's
// share n_r / n of the global mean loss, into its place in the all-gather's buffer (2 * C doubles
// per rank); after the all-gather, batchnorm_sync_unpack_sums writes the ranks' sums added in rank
// order into block 0 of the workspace and zeros into the other blocks, so that
// batchnorm_relu_maxpool_backward_data (which adds the blocks and divides by this rank's count
// n_r H W) uses S / (n_r H W) = (S / (n H W)) / (n_r / n): the global means of the global loss's
// dy, in the units of this rank's dy, as the CPU path (cpu::batchnorm_backward with ranks). dbeta
// and dgamma come out as the global sums S on every rank (the gradient all-reduce, weighting each
// rank's by n_r / n, gives S again).
#pragma once

#include "kernels/common.hpp"

namespace octa::gpu {

// out: 3 * C doubles (a rank's slot in the all-gather's buffer), from stats (3 * C * tiles, the
// fused convolution's layout), each channel's tiles merged in tile order.
void batchnorm_sync_pack_stats(double* out, const double* stats, int C, int tiles,
                               cudaStream_t stream);
// stats: 3 * C * ranks doubles, the fused layout with `ranks` tiles, from gathered (ranks slots of
// 3 * C, in rank order).
void batchnorm_sync_unpack_stats(double* stats, const double* gathered, int C, int ranks,
                                 cudaStream_t stream);
// out: 2 * C doubles (a rank's slot), weight times the sums of the `blocks` block sums of
// workspace (2 * C * blocks: batchnorm_relu_maxpool_backward_sums's), in block order.
void batchnorm_sync_pack_sums(double* out, const double* workspace, int C, int blocks,
                              double weight, cudaStream_t stream);
// workspace (2 * C * blocks): block 0 of each channel's sum of dy and of dy * xhat the sum of the
// gathered slots (ranks of 2 * C) in rank order, every other block 0.
void batchnorm_sync_unpack_sums(double* workspace, const double* gathered, int C, int blocks,
                                int ranks, cudaStream_t stream);

}  // namespace octa::gpu
