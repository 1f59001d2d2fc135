// engine/cpu/ops.hpp: the CPU reference operations, forward and backward, NCHW, for T = float and
// T = double (explicitly instantiated in ops.cpp). This is the ground truth every GPU kernel is
// checked against: plain loops, GEMMs through BLAS, no intrinsics.
//
// Conventions (the GPU launchers mirror them, name for name and argument for argument):
//   - arguments: outputs first, then saved statistics, then inputs, then sizes;
//   - backward functions *overwrite* their gradient outputs (they never accumulate);
//   - a null input-gradient pointer means "not needed" (e.g. the first layer's input).
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/cpu/batchnorm_ranks.hpp"

namespace octa::cpu {

// ---------------------------------------------------------------------------------------------
// conv2d, 3x3 kernel, stride 1, padding 1, with bias.
// out: (N, Cout, H, W)   in: (N, Cin, H, W)   weight: (Cout, Cin, 3, 3)   bias: (Cout)
template <class T>
void conv3x3_forward(T* out, const T* in, const T* weight, const T* bias, int N, int Cin, int Cout,
                     int H, int W);
// din: (N, Cin, H, W) or null   dweight: (Cout, Cin, 3, 3)   dbias: (Cout)   dout: (N, Cout, H, W)
template <class T>
void conv3x3_backward(T* din, T* dweight, T* dbias, const T* dout, const T* in, const T* weight,
                      int N, int Cin, int Cout, int H, int W);

// ---------------------------------------------------------------------------------------------
// BatchNorm2d over (N, H, W) per channel. HW = H * W.
// Training: normalise with the batch mean and the *biased* variance; update the running estimates
// with momentum and the *unbiased* variance (PyTorch's rule):
//   running = (1 - momentum) * running + momentum * batch_stat
// save_mean, save_invstd: (C), kept for backward (invstd = 1 / sqrt(var_biased + eps)).
// ranks (--sync-bn, batchnorm_ranks.hpp): the statistics are those of the global batch that the
// ranks share (its sums over the ranks: two reductions, of sum x and count, then of
// sum (x - mean)^2); null: this batch's own.
template <class T>
void batchnorm_forward_train(T* out, T* save_mean, T* save_invstd, T* running_mean, T* running_var,
                             const T* in, const T* gamma, const T* beta, int N, int C, int HW,
                             T eps, T momentum, const BatchNormRanks* ranks = nullptr);
// Evaluation: normalise with the running statistics.
template <class T>
void batchnorm_forward_eval(T* out, const T* in, const T* gamma, const T* beta,
                            const T* running_mean, const T* running_var, int N, int C, int HW,
                            T eps);
// Backward of the training-mode forward. din: (N, C, H, W)   dgamma, dbeta: (C), this batch's own
// sums (the gradient reduction adds the ranks' up). ranks: as the forward's; din then goes through
// the global batch's means of dy and dy * xhat (one reduction of both sums and the count).
template <class T>
void batchnorm_backward(T* din, T* dgamma, T* dbeta, const T* dout, const T* in, const T* save_mean,
                        const T* save_invstd, const T* gamma, int N, int C, int HW,
                        const BatchNormRanks* ranks = nullptr);

// ---------------------------------------------------------------------------------------------
// ReLU, elementwise over n values. In-place (out == in, din == dout) is allowed.
template <class T>
void relu_forward(T* out, const T* in, std::size_t n);
// Gradient flows where the forward *output* was positive (at 0 exactly, none flows, as PyTorch).
template <class T>
void relu_backward(T* din, const T* dout, const T* out, std::size_t n);

// ---------------------------------------------------------------------------------------------
// Max-pool 2x2, stride 2 (H, W even). out: (N, C, H/2, W/2)   in: (N, C, H, W)
template <class T>
void maxpool2x2_forward(T* out, const T* in, int N, int C, int H, int W);
// The gradient goes to the *first* maximum of each window in scan order (row-major), as PyTorch.
// din: (N, C, H, W)   dout: (N, C, H/2, W/2)   in: the forward input
template <class T>
void maxpool2x2_backward(T* din, const T* dout, const T* in, int N, int C, int H, int W);

// ---------------------------------------------------------------------------------------------
// Global average pool. out: (N, C)   in: (N, C, H, W), HW = H * W
template <class T>
void global_avgpool_forward(T* out, const T* in, int N, int C, int HW);
template <class T>
void global_avgpool_backward(T* din, const T* dout, int N, int C, int HW);

// ---------------------------------------------------------------------------------------------
// Linear: out = in * weight^T + bias.
// out: (N, Out)   in: (N, In)   weight: (Out, In)   bias: (Out)
template <class T>
void linear_forward(T* out, const T* in, const T* weight, const T* bias, int N, int In, int Out);
// din: (N, In) or null   dweight: (Out, In)   dbias: (Out)   dout: (N, Out)
template <class T>
void linear_backward(T* din, T* dweight, T* dbias, const T* dout, const T* in, const T* weight,
                     int N, int In, int Out);

// ---------------------------------------------------------------------------------------------
// Inverted dropout with drop probability p (0 <= p < 1), n values.
// Element i is kept iff uniform01(philox_word(seed, stream, i)) >= p; kept values are scaled by
// 1 / (1 - p). mask: (n) bytes, 1 = kept, saved for backward. The GPU kernel draws the same words,
// so its mask is bit-identical. first: the words start at element `first` of the stream (a
// data-parallel rank's share of a batch draws the mask the whole batch would have there).
template <class T>
void dropout_forward(T* out, std::uint8_t* mask, const T* in, std::size_t n, float p,
                     std::uint64_t seed, std::uint64_t stream, std::uint64_t first = 0);
template <class T>
void dropout_backward(T* din, const T* dout, const std::uint8_t* mask, std::size_t n, float p);

// ---------------------------------------------------------------------------------------------
// BCE-with-logits, mean over N, in the stable form, with PyTorch's pos_weight:
//   l_i = (1 - y_i) * z_i + (1 + (pos_weight - 1) * y_i) * (log1p(exp(-|z_i|)) + max(-z_i, 0))
// which for pos_weight = 1 is max(z, 0) - z * y + log1p(exp(-|z|)).
// Returns the mean loss (accumulated in double). dlogits: (N) or null, the gradient of the *mean*.
template <class T>
double bce_with_logits(T* dlogits, const T* logits, const T* targets, int N, T pos_weight);

// ---------------------------------------------------------------------------------------------
// Softmax cross-entropy: PyTorch's CrossEntropyLoss(weight, reduction='mean', label_smoothing)
// with class-index targets, computed from the log-softmax by log-sum-exp (max subtracted first):
//   -log p[n][c] = lse(z[n]) - z[n][c]      (every term non-negative, nothing overflows)
//   nll    = sum_n w[y_n] (-log p[n][y_n])
//   smooth = sum_n sum_c w[c] (-log p[n][c])
//   W      = sum_n w[y_n]                   (N without class weights)
//   loss   = (1 - eps) nll / W + (eps / C) smooth / W
// which is PyTorch's definition: the weighted mean divides by the weights of the batch's targets,
// and the smoothing term is divided by the same W (so without weights it is the mean over the
// batch of the cross-entropy against the target (1 - eps) onehot(y) + eps / C). Its gradient:
//   dz[n][j] = ((1 - eps) w[y_n] (p[n][j] - [j == y_n]) + (eps / C) (sum_c w[c] p[n][j] - w[j])) /
//   W
// logits: (N, C)   targets: (N) class indices 0..C-1 held as T (the batch's target buffer)
// class_weight: (C) finite, >= 0, or null for all ones   label_smoothing: eps in [0, 1]
// Returns the mean loss (accumulated in double, rows in order); dlogits: (N, C) or null, the
// gradient of the mean. As in PyTorch, targets whose weights sum to 0 give NaN (0 / 0), and a
// NaN logit makes its row's loss and gradient NaN. Throws octa::Error for a target that is not an
// integer in [0, C), a bad weight or eps.
template <class T>
double softmax_cross_entropy(T* dlogits, const T* logits, const T* targets, int N, int C,
                             const T* class_weight, T label_smoothing);

}  // namespace octa::cpu
