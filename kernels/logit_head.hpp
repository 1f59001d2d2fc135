// kernels/logit_head.hpp: the models' output layer and loss for a training step, in one launch:
// fc2 (K -> 1 logit), BCE with logits (mean over the batch, pos_weight), and the gradient back
// through fc2, model B's dropout and fc1's ReLU; and the same for C classes (softmax_head_train:
// fc2 K -> C logits, softmax cross-entropy). Unfused that is seven launches for model A (fc2's
// GEMM and bias, the loss, fc2's two backward GEMMs and bias gradient, the ReLU's backward) and
// eight for B (and the dropout's backward), each a few microseconds of launch and tail for a few
// thousand multiply-adds; here one block does all of it.
//
// Deterministic: every sum has a fixed order. The loss and dlogits are computed exactly as
// bce_with_logits (kernels/loss.hpp) computes them from the same logits, bit for bit.
#pragma once

#include <cstdint>

#include "kernels/common.hpp"

namespace octa::gpu {

struct LogitHeadOutputs {
  float* logits;      // (N)
  float* dlogits;     // (N): d(mean loss) / d(logit)
  float* batch_loss;  // one float: the batch's mean loss
  double* loss_sum;   // one double, accumulated in place with mean * N (as bce_with_logits)
  float* dweight;     // (K): fc2's weight gradient, overwritten
  float* dbias;       // (1): fc2's bias gradient, overwritten
  float* dhidden;     // (N, K): the gradient w.r.t. fc1's output before its ReLU, overwritten
};

struct LogitHeadInputs {
  const float* x;            // (N, K): fc2's input (A: fc1's ReLU output; B: the dropout's)
  const float* relu_out;     // (N, K): fc1's ReLU output (model A: x itself)
  const std::uint8_t* mask;  // (N, K): the dropout's mask (1 = kept), or null: no dropout
  float dropout_p;           // the drop probability, when there is a mask
  const float* weight;       // (K): fc2's weight, shape (1, K)
  const float* bias;         // (1): fc2's bias
  const float* targets;      // (N)
};

// Equivalent to, on the CPU reference: linear_forward (fc2), bce_with_logits, linear_backward
// (fc2), dropout_backward (with a mask), relu_backward. N up to INT_MAX / K rows.
void logit_head_train(const LogitHeadOutputs& out, const LogitHeadInputs& in, int N, int K,
                      float pos_weight, cudaStream_t stream);

// ---------------------------------------------------------------------------------------------
// The multi-class head: fc2 (K -> C logits, weight (C, K)), softmax cross-entropy with PyTorch's
// class weights and label smoothing (cpu::softmax_cross_entropy), and the same backward. One
// block of 1024 threads, for the small C of a classifier's head (at most kMaxHeadClasses): the
// logits a thread per (row, class), the loss a thread per row (double, fixed-tree reductions),
// fc2's gradients a thread per weight, the hidden gradient a thread per element; every sum in a
// fixed order, so the results are bit-identical from run to run.

inline constexpr int kMaxHeadClasses = 256;  // IDX labels are bytes

struct SoftmaxHeadOutputs {
  float* logits;      // (N, C)
  float* dlogits;     // (N, C): d(mean loss) / d(logits)
  float* batch_loss;  // one float: the batch's loss
  double* loss_sum;   // one double, accumulated in place with loss * N
  float* dweight;     // (C, K): fc2's weight gradient, overwritten
  float* dbias;       // (C): fc2's bias gradient, overwritten
  float* dhidden;     // (N, K): the gradient w.r.t. fc1's output before its ReLU, overwritten
};

struct SoftmaxHeadInputs {
  const float* x;             // (N, K): fc2's input (A: fc1's ReLU output; B: the dropout's)
  const float* relu_out;      // (N, K): fc1's ReLU output (model A: x itself)
  const std::uint8_t* mask;   // (N, K): the dropout's mask (1 = kept), or null: no dropout
  float dropout_p;            // the drop probability, when there is a mask
  const float* weight;        // (C, K): fc2's weight
  const float* bias;          // (C): fc2's bias
  const float* targets;       // (N): class indices 0..C-1 held as floats
  const float* class_weight;  // (C): finite and >= 0, or null for all ones (not checked here:
                              // device memory; the caller validates them once)
  float label_smoothing;      // in [0, 1]
};

// Equivalent to, on the CPU reference: linear_forward (fc2), softmax_cross_entropy,
// linear_backward (fc2), dropout_backward (with a mask), relu_backward. A target that is no class
// index, or targets whose weights sum to 0, make the loss and every gradient NaN (the kernel cannot
// throw; the training loop's guard stops on it). 2 <= C <= kMaxHeadClasses; N * K and N * C up to
// INT_MAX.
void softmax_head_train(const SoftmaxHeadOutputs& out, const SoftmaxHeadInputs& in, int N, int K,
                        int C, cudaStream_t stream);

}  // namespace octa::gpu
