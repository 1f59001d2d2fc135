// engine/cpu_fast/fast_model.hpp: models A and B on the fast CPU backend, float32: the same
// contract as CpuModel<float> (engine/model/cpu_model.hpp) and the same values up to rounding
// (tests/test_cpu_fast.cpp holds it to the reference).
//
// How it differs from the reference: each image goes through both convolution blocks on one core
// (im2col, a single-threaded GEMM, then bias or BatchNorm + ReLU + max-pool fused, all in L2);
// only the pooled activations and one byte per pooling window are kept for backward; the weight
// gradients are summed per fixed slot of images and the slots added in order afterwards
// (cpu_fast/parallel.hpp), so the result does not depend on the thread count.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/cpu/batchnorm_ranks.hpp"
#include "engine/model/param_table.hpp"

namespace octa::cpu_fast {

class FastModel {
 public:
  // Activations for batches of up to `capacity` images.
  FastModel(const ParamTable& table, int capacity);

  // x: (N, 1, 28, 28)   logits: (N, K)   state: table.num_total() values. As CpuModel::forward.
  void forward(float* state, const float* x, int N, bool train, std::uint64_t dropout_seed,
               std::uint64_t dropout_stream, float* logits);

  // After a training-mode forward of the same batch: grads (table.num_trainable()), overwritten.
  void backward(const float* state, const float* dlogits, float* grads);

  const ParamTable& table() const { return table_; }
  int capacity() const { return capacity_; }
  // The batch's first image is image `first` of a larger one whose dropout masks it draws (a
  // data-parallel rank's share: engine/dist/); 0 by default.
  void set_dropout_first_image(std::uint64_t first) { dropout_first_ = first; }
  // --sync-bn: as CpuModel::set_batchnorm_ranks (one reduction per BatchNorm forward, of the sums
  // of x and x^2 and the count, and one per backward).
  void set_batchnorm_ranks(const cpu::BatchNormRanks* ranks) { bn_ranks_ = ranks; }
  // Bytes held for activations, gradients and per-slot partial sums (not the per-thread scratch).
  std::size_t activation_bytes() const;

  // Per-phase times of every forward and backward since timing was switched on (for
  // bench_cpu_epoch): phase names in the order they run, total wall milliseconds, total CPU
  // milliseconds of the calling thread (with one thread, the phase's cost whatever else runs on
  // the machine), calls.
  struct Phase {
    std::string name;
    double ms = 0.0, cpu_ms = 0.0;
    int calls = 0;
  };
  void set_timing(bool on);
  const std::vector<Phase>& phases() const { return phases_; }

 private:
  struct Offsets {
    std::size_t c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b;
    std::size_t bn1w, bn1b, bn1m, bn1v, bn2w, bn2b, bn2m, bn2v;  // model B
  };
  // Per-channel BatchNorm of one block: the affine its forward applied, what backward needs.
  struct BnBlock {
    std::vector<float> center, scale, shift;  // (C): (x - center) * scale + shift
    std::vector<float> save_mean, save_invstd;
    std::vector<float> mean_dy, mean_dy_xhat;  // backward: batch means of dy and dy * xhat
  };

  void forward_a(const float* state, int N);
  void forward_b(float* state, int N, bool train);
  void backward_a(const float* state, float* grads, int N);
  void backward_b(const float* state, float* grads, int N);
  // BatchNorm's per-slot partial sums (kSlots, C) each: of x and x^2 in the forward, of dy and
  // dy * xhat in the backward. The passes that produce their inputs fill them.
  // which 0: sums of x (forward) or dy (backward); 1: of x^2 or dy * xhat. Slot s, C channels.
  double* bn_sums(int which, int s, int C);
  // From the forward's sums: the batch statistics, the running estimates' update, the affine.
  void batchnorm_train(BnBlock& bn, float* state, std::size_t w, std::size_t b, std::size_t rm,
                       std::size_t rv, int N, int C, int HW);
  void batchnorm_eval(BnBlock& bn, const float* state, std::size_t w, std::size_t b, std::size_t rm,
                      std::size_t rv, int C);
  // From the backward's sums: dgamma, dbeta and the means the input gradient needs.
  void batchnorm_backward_finish(BnBlock& bn, float* dgamma, float* dbeta, int N, int C, int HW);
  // grads[w], grads[b] = the sum over slots (in order) of the per-slot partial sums.
  void reduce_slots(float* grads, std::size_t w, std::size_t b, const std::vector<float>& part_w,
                    const std::vector<double>& part_b, std::size_t wn, int C, int N) const;

  // Ends the current phase (timing on): its time since the previous mark goes to `name`.
  void mark(const char* name);

  ParamTable table_;
  int capacity_;
  bool timing_ = false;
  std::chrono::steady_clock::time_point last_mark_;
  double last_cpu_ms_ = 0.0;
  std::vector<Phase> phases_;
  Offsets o_{};
  int n_ = 0;                                      // batch size of the last forward
  std::uint64_t dropout_first_ = 0;                // set_dropout_first_image
  const cpu::BatchNormRanks* bn_ranks_ = nullptr;  // set_batchnorm_ranks
  bool last_train_ = false;

  // Saved per image: x (input), p1/am1 (pooled block-1 output and window argmax), p2/am2 (the
  // same for block 2); model B also c1/c2 (convolution outputs, BatchNorm's input).
  std::vector<float> x_, p1_, p2_, c1_, c2_;
  std::vector<std::uint8_t> am1_, am2_;
  // Head: g (global average pool, B), h (fc1 + ReLU), d (dropout, B) and the mask.
  std::vector<float> g_, h_, d_;
  std::vector<std::uint8_t> mask_;
  // Gradient buffers: dh, dd, dg (head), dp2 (w.r.t. p2), dp1 (w.r.t. p1, model B).
  std::vector<float> dh_, dd_, dg_, dp2_, dp1_;
  BnBlock bn1_, bn2_;
  // Per-slot partial weight (float) and bias (double) gradients of conv1 and conv2.
  std::vector<float> part_w1_, part_w2_;
  std::vector<double> part_b1_, part_b2_;
  std::vector<double> bn_part_;   // BatchNorm's per-slot sums: (2, kSlots, 64)
  std::vector<double> bn_total_;  // their totals and the count: (2 * 64 + 1), reduced over ranks
};

}  // namespace octa::cpu_fast
