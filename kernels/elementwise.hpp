// kernels/elementwise.hpp: bias + activation for linear layers, their backward, ReLU, dropout.
#pragma once

#include "kernels/common.hpp"

namespace octa::gpu {

// x: (N, C), in place: x = epilogue(x + bias)   bias: (C)
void bias_forward(float* x, const float* bias, int N, int C, Epilogue epilogue,
                  cudaStream_t stream);
// dbias: (C) = sum over N of dout (N, C), fixed order, overwritten.
void bias_backward(float* dbias, const float* dout, int N, int C, cudaStream_t stream);

// din = dout where out > 0, else 0 (in place allowed).
void relu_backward(float* din, const float* dout, const float* out, std::size_t n,
                   cudaStream_t stream);

// Inverted dropout, the same draw as the CPU reference: element i is kept iff
// uniform01(philox_word(seed, rng_stream_base + *step, first + i)) >= p, where *step (device
// memory) is the number of optimiser updates so far, so a captured CUDA graph draws a fresh mask
// each replay, and `first` is where these n elements start in a larger tensor whose masks they
// draw (a data-parallel rank's share: its first image's index in the global batch times the
// features per image, as cpu::dropout_forward's `first`). mask: (n) bytes, 1 = kept.
void dropout_forward(float* out, std::uint8_t* mask, const float* in, std::size_t n, float p,
                     std::uint64_t seed, std::uint64_t rng_stream_base, const std::int64_t* step,
                     cudaStream_t stream, std::uint64_t first = 0);
void dropout_backward(float* din, const float* dout, const std::uint8_t* mask, std::size_t n,
                      float p, cudaStream_t stream);

}  // namespace octa::gpu
