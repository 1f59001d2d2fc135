// engine/cpu_fast/fast_model.cpp: forward and backward of models A and B on the fast CPU backend.
//
//   per image (one task each, on one core):
//     conv1 (im2col, GEMM 32x784x9) -> bias [or BatchNorm] -> ReLU -> maxpool -> p1, am1
//     conv2 (im2col, GEMM 64x196x288) -> bias [or BatchNorm] -> ReLU -> maxpool -> p2, am2
//   (model B: each BatchNorm needs the whole batch's statistics first, so its blocks run in three
//   passes over the images: convolution, statistics, normalise + ReLU + pool)
//   head A: fc1 (3136->128, fixed blocks of output features) + ReLU -> fc2
//   head B: global average pool -> fc1 (64->128) -> ReLU -> dropout -> fc2 (reference ops: tiny)
//
//   backward, per slot of images (parallel.hpp): the pooled gradient routed through the argmax
//   bytes and the ReLU, conv2's filter gradient (GEMM, accumulated over the slot), its input
//   gradient (GEMM + col2im), the same again for conv1's filter gradient; then the slots' partial
//   sums added in order.
#include "engine/cpu_fast/fast_model.hpp"

#include <algorithm>
#include <cmath>
#include <ctime>

#include "engine/core/error.hpp"
#include "engine/cpu/blas.hpp"
#include "engine/cpu/ops.hpp"
#include "engine/cpu_fast/conv_kernels.hpp"
#include "engine/cpu_fast/parallel.hpp"
#include "engine/model/cpu_model.hpp"  // kDropoutP

namespace octa::cpu_fast {

namespace {

constexpr int kC1 = 32, kC2 = 64, kHidden = 128;
constexpr int kS1 = kImageSize, kS2 = kImageSize / 2, kS3 = kImageSize / 4;  // 28, 14, 7
constexpr int kHW1 = kS1 * kS1, kHW2 = kS2 * kS2, kHW3 = kS3 * kS3;          // 784, 196, 49
constexpr int kK1 = 9, kK2 = kC1 * 9;                                        // im2col rows
constexpr int kFlat = kC2 * kHW3;                                            // 3136
constexpr int kP1 = kC1 * kHW2;     // floats of p1 per image (32 x 14 x 14)
constexpr int kFc1OutBlock = 32;    // fc1 forward: output features per task
constexpr int kFc1InBlock = 448;    // fc1 backward: input features per task (3136 = 7 x 448)
constexpr int kReduceBlock = 4096;  // weights per task when adding the slots
constexpr double kBnEps = 1e-5, kBnMomentum = 0.1;
constexpr int kSlots = Slots::kSlots;

std::size_t sz(int v) {
  return static_cast<std::size_t>(v);
}

// One thread's working set for one image (about 0.7 MB, the size of its L2), allocated once.
struct Scratch {
  std::vector<float> col = std::vector<float>(sz(std::max(kK1 * kHW1, kK2* kHW2)));
  std::vector<float> y = std::vector<float>(sz(std::max(kC1 * kHW1, kC2* kHW2)));
  std::vector<float> dcol = std::vector<float>(sz(kK2 * kHW2));
  std::vector<float> dy2 = std::vector<float>(sz(kC2 * kHW2));
  std::vector<float> dp1 = std::vector<float>(sz(kP1));
  std::vector<float> dy1 = std::vector<float>(sz(kC1 * kHW1));
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// The GEMMs, row-major (cpu::gemm with no transposes unless named).
void gemm_nn(int M, int N, int K, const float* A, const float* B, float beta, float* C) {
  cpu::gemm<float>(false, false, M, N, K, 1.0f, A, K, B, N, beta, C, N);
}
// C (M x N) (+)= A (M x K) * B^T, B: (N x K)
void gemm_nt(int M, int N, int K, const float* A, const float* B, float beta, float* C) {
  cpu::gemm<float>(false, true, M, N, K, 1.0f, A, K, B, K, beta, C, N);
}
// C (M x N) = A^T * B, A: (K x M)
void gemm_tn(int M, int N, int K, const float* A, const float* B, float* C) {
  cpu::gemm<float>(true, false, M, N, K, 1.0f, A, M, B, N, 0.0f, C, N);
}

// One image's share of a convolution's filter and bias gradients: pw (Cout, Cin*9) = (beta 0) or
// += (beta 1) dy (Cout, S*S, pool order) * im2col(in)^T, and pb (Cout) += the row sums of dy.
// col: scratch for the columns.
void add_filter_gradient(float* pw, double* pb, const float* dy, const float* in, int Cin, int Cout,
                         int S, float beta, float* col) {
  im2col3x3_pooled(col, in, Cin, S, S);
  gemm_nt(Cout, Cin * 9, S * S, dy, col, beta, pw);
  add_row_sums(pb, dy, Cout, S * S);
}

}  // namespace

FastModel::FastModel(const ParamTable& table, int capacity) : table_(table), capacity_(capacity) {
  OCTA_CHECK(capacity > 0, "FastModel: batch capacity must be positive, got {}", capacity);
  const auto off = [&](const char* name) { return table_.at(name).offset; };
  o_.c1w = off("conv1.weight");
  o_.c1b = off("conv1.bias");
  o_.c2w = off("conv2.weight");
  o_.c2b = off("conv2.bias");
  o_.f1w = off("fc1.weight");
  o_.f1b = off("fc1.bias");
  o_.f2w = off("fc2.weight");
  o_.f2b = off("fc2.bias");
  const std::size_t n = sz(capacity);
  x_.assign(n * kHW1, 0.0f);
  p1_.assign(n * kP1, 0.0f);
  am1_.assign(n * kP1, 0);
  p2_.assign(n * kFlat, 0.0f);
  am2_.assign(n * kFlat, 0);
  h_.assign(n * kHidden, 0.0f);
  dh_.assign(n * kHidden, 0.0f);
  dp2_.assign(n * kFlat, 0.0f);
  part_w1_.assign(sz(kSlots) * kC1 * kK1, 0.0f);
  part_b1_.assign(sz(kSlots) * kC1, 0.0);
  part_w2_.assign(sz(kSlots) * kC2 * kK2, 0.0f);
  part_b2_.assign(sz(kSlots) * kC2, 0.0);
  if (table_.arch() == Arch::kB) {
    o_.bn1w = off("bn1.weight");
    o_.bn1b = off("bn1.bias");
    o_.bn1m = off("bn1.running_mean");
    o_.bn1v = off("bn1.running_var");
    o_.bn2w = off("bn2.weight");
    o_.bn2b = off("bn2.bias");
    o_.bn2m = off("bn2.running_mean");
    o_.bn2v = off("bn2.running_var");
    c1_.assign(n * kC1 * kHW1, 0.0f);
    c2_.assign(n * kC2 * kHW2, 0.0f);
    dp1_.assign(n * kP1, 0.0f);
    g_.assign(n * kC2, 0.0f);
    dg_.assign(n * kC2, 0.0f);
    d_.assign(n * kHidden, 0.0f);
    dd_.assign(n * kHidden, 0.0f);
    mask_.assign(n * kHidden, 0);
    for (BnBlock* bn : {&bn1_, &bn2_}) {
      const std::size_t C = bn == &bn1_ ? kC1 : kC2;
      for (auto* v : {&bn->center, &bn->scale, &bn->shift, &bn->save_mean, &bn->save_invstd,
                      &bn->mean_dy, &bn->mean_dy_xhat}) {
        v->assign(C, 0.0f);
      }
    }
    bn_part_.assign(2 * sz(kSlots) * kC2, 0.0);
    bn_total_.assign(2 * sz(kC2) + 1, 0.0);
  }
}

std::size_t FastModel::activation_bytes() const {
  std::size_t floats = 0, bytes = 0, doubles = 0;
  for (const auto* v : {&x_, &p1_, &p2_, &c1_, &c2_, &g_, &h_, &d_, &dh_, &dd_, &dg_, &dp2_, &dp1_,
                        &part_w1_, &part_w2_}) {
    floats += v->size();
  }
  for (const auto* v : {&am1_, &am2_, &mask_}) bytes += v->size();
  for (const auto* v : {&part_b1_, &part_b2_, &bn_part_, &bn_total_}) doubles += v->size();
  return floats * sizeof(float) + bytes + doubles * sizeof(double);
}

void FastModel::set_timing(bool on) {
  timing_ = on;
  phases_.clear();
}

void FastModel::mark(const char* name) {
  if (!timing_) return;
  const auto now = std::chrono::steady_clock::now();
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  const double cpu_ms =
      1e3 * static_cast<double>(ts.tv_sec) + 1e-6 * static_cast<double>(ts.tv_nsec);
  if (name != nullptr) {
    auto it = std::find_if(phases_.begin(), phases_.end(),
                           [&](const Phase& p) { return p.name == name; });
    if (it == phases_.end()) it = phases_.insert(phases_.end(), Phase{name, 0.0, 0.0, 0});
    it->ms += std::chrono::duration<double, std::milli>(now - last_mark_).count();
    it->cpu_ms += cpu_ms - last_cpu_ms_;
    ++it->calls;
  }
  last_mark_ = now;
  last_cpu_ms_ = cpu_ms;
}

// =============================================================================================
// Forward
// =============================================================================================

void FastModel::forward(float* state, const float* x, int N, bool train, std::uint64_t dropout_seed,
                        std::uint64_t dropout_stream, float* logits) {
  OCTA_CHECK(N > 0 && N <= capacity_, "FastModel::forward: batch of {} (allowed 1..{})", N,
             capacity_);
  n_ = N;
  last_train_ = train;
  mark(nullptr);
  std::copy(x, x + sz(N) * kHW1, x_.begin());
  const float* fc2_in = h_.data();
  if (table_.arch() == Arch::kA) {
    forward_a(state, N);
  } else {
    forward_b(state, N, train);
    cpu::global_avgpool_forward(g_.data(), p2_.data(), N, kC2, kHW3);
    cpu::linear_forward(h_.data(), g_.data(), state + o_.f1w, state + o_.f1b, N, kC2, kHidden);
    cpu::relu_forward(h_.data(), h_.data(), sz(N) * kHidden);
    if (train) {
      cpu::dropout_forward(d_.data(), mask_.data(), h_.data(), sz(N) * kHidden, kDropoutP,
                           dropout_seed, dropout_stream, dropout_first_ * kHidden);
      fc2_in = d_.data();
    }
  }
  cpu::linear_forward(logits, fc2_in, state + o_.f2w, state + o_.f2b, N, kHidden,
                      table_.num_classes());
  mark(table_.arch() == Arch::kA ? "fc2" : "gap+fc1+relu+dropout+fc2");
}

void FastModel::forward_a(const float* state, int N) {
  const float *w1 = state + o_.c1w, *b1 = state + o_.c1b;
  const float *w2 = state + o_.c2w, *b2 = state + o_.c2b;
  parallel_for(N, [&](int i) {
    Scratch& s = scratch();
    float* p1 = p1_.data() + sz(i) * kP1;
    float* p2 = p2_.data() + sz(i) * kFlat;
    im2col3x3_pooled(s.col.data(), x_.data() + sz(i) * kHW1, 1, kS1, kS1);
    gemm_nn(kC1, kHW1, kK1, w1, s.col.data(), 0.0f, s.y.data());
    affine_relu_maxpool(p1, am1_.data() + sz(i) * kP1, s.y.data(), nullptr, nullptr, b1, kC1, kS1,
                        kS1);
    im2col3x3_pooled(s.col.data(), p1, kC1, kS2, kS2);
    gemm_nn(kC2, kHW2, kK2, w2, s.col.data(), 0.0f, s.y.data());
    affine_relu_maxpool(p2, am2_.data() + sz(i) * kFlat, s.y.data(), nullptr, nullptr, b2, kC2, kS2,
                        kS2);
  });
  mark("conv1+relu+pool1+conv2+relu+pool2");
  // fc1 + ReLU: h (N, 128) = relu(p2 (N, 3136) * W^T + b), in fixed blocks of output features.
  const float *wf = state + o_.f1w, *bf = state + o_.f1b;
  parallel_for(kHidden / kFc1OutBlock, [&](int blk) {
    const int o0 = blk * kFc1OutBlock;
    cpu::gemm<float>(false, true, N, kFc1OutBlock, kFlat, 1.0f, p2_.data(), kFlat,
                     wf + sz(o0) * kFlat, kFlat, 0.0f, h_.data() + o0, kHidden);
    for (int n = 0; n < N; ++n) {
      float* row = h_.data() + sz(n) * kHidden + sz(o0);
      for (int j = 0; j < kFc1OutBlock; ++j) {
        const float v = row[j] + bf[o0 + j];
        row[j] = v < 0.0f ? 0.0f : v;
      }
    }
  });
  mark("fc1+relu");
}

void FastModel::forward_b(float* state, int N, bool train) {
  const float *w1 = state + o_.c1w, *b1 = state + o_.c1b;
  const float *w2 = state + o_.c2w, *b2 = state + o_.c2b;
  const Slots slots{N};
  // Slot by slot, so that each slot sums BatchNorm's statistics of the outputs it just made.
  parallel_for(kSlots, [&](int s) {
    Scratch& sc = scratch();
    double *sum = bn_sums(0, s, kC1), *sum_sq = bn_sums(1, s, kC1);
    std::fill(sum, sum + kC1, 0.0);
    std::fill(sum_sq, sum_sq + kC1, 0.0);
    for (int i = slots.begin(s); i < slots.begin(s + 1); ++i) {
      float* c1 = c1_.data() + sz(i) * kC1 * kHW1;
      im2col3x3_pooled(sc.col.data(), x_.data() + sz(i) * kHW1, 1, kS1, kS1);
      gemm_nn(kC1, kHW1, kK1, w1, sc.col.data(), 0.0f, c1);
      add_bias(c1, b1, kC1, kHW1);
      if (train) add_row_sums_and_squares(sum, sum_sq, c1, kC1, kHW1);
    }
  });
  mark("conv1 (+bn1 sums)");
  if (train) {
    batchnorm_train(bn1_, state, o_.bn1w, o_.bn1b, o_.bn1m, o_.bn1v, N, kC1, kHW1);
  } else {
    batchnorm_eval(bn1_, state, o_.bn1w, o_.bn1b, o_.bn1m, o_.bn1v, kC1);
  }
  parallel_for(kSlots, [&](int s) {
    Scratch& sc = scratch();
    double *sum = bn_sums(0, s, kC2), *sum_sq = bn_sums(1, s, kC2);
    std::fill(sum, sum + kC2, 0.0);
    std::fill(sum_sq, sum_sq + kC2, 0.0);
    for (int i = slots.begin(s); i < slots.begin(s + 1); ++i) {
      float* p1 = p1_.data() + sz(i) * kP1;
      float* c2 = c2_.data() + sz(i) * kC2 * kHW2;
      affine_relu_maxpool(p1, am1_.data() + sz(i) * kP1, c1_.data() + sz(i) * kC1 * kHW1,
                          bn1_.center.data(), bn1_.scale.data(), bn1_.shift.data(), kC1, kS1, kS1);
      im2col3x3_pooled(sc.col.data(), p1, kC1, kS2, kS2);
      gemm_nn(kC2, kHW2, kK2, w2, sc.col.data(), 0.0f, c2);
      add_bias(c2, b2, kC2, kHW2);
      if (train) add_row_sums_and_squares(sum, sum_sq, c2, kC2, kHW2);
    }
  });
  mark("bn1+relu+pool1+conv2 (+bn2 sums)");
  if (train) {
    batchnorm_train(bn2_, state, o_.bn2w, o_.bn2b, o_.bn2m, o_.bn2v, N, kC2, kHW2);
  } else {
    batchnorm_eval(bn2_, state, o_.bn2w, o_.bn2b, o_.bn2m, o_.bn2v, kC2);
  }
  parallel_for(N, [&](int i) {
    affine_relu_maxpool(p2_.data() + sz(i) * kFlat, am2_.data() + sz(i) * kFlat,
                        c2_.data() + sz(i) * kC2 * kHW2, bn2_.center.data(), bn2_.scale.data(),
                        bn2_.shift.data(), kC2, kS2, kS2);
  });
  mark("bn2+relu+pool2");
}

double* FastModel::bn_sums(int which, int s, int C) {
  return bn_part_.data() + (sz(which) * kSlots + sz(s)) * sz(C);
}

void FastModel::batchnorm_train(BnBlock& bn, float* state, std::size_t w, std::size_t b,
                                std::size_t rm, std::size_t rv, int N, int C, int HW) {
  // One pass of sums of x and x^2 in double: for these activations (|mean| / std far below 1e6)
  // E[x^2] - mean^2 loses nothing a float result would keep. Per channel the sums of x, of x^2,
  // then the count; with ranks (--sync-bn), summed over them: the global batch's.
  double* t = bn_total_.data();
  for (int ch = 0; ch < C; ++ch) {
    const std::size_t k = sz(ch);
    double sum = 0.0, sum_sq = 0.0;
    for (int s = 0; s < kSlots; ++s) {
      sum += bn_sums(0, s, C)[k];
      sum_sq += bn_sums(1, s, C)[k];
    }
    t[k] = sum;
    t[sz(C) + k] = sum_sq;
  }
  t[2 * sz(C)] = static_cast<double>(N) * HW;
  if (bn_ranks_ != nullptr) bn_ranks_->allreduce_sum(t, 2 * sz(C) + 1);
  const double count = t[2 * sz(C)];
  for (int ch = 0; ch < C; ++ch) {
    const std::size_t k = sz(ch);
    const double sum = t[k], sum_sq = t[sz(C) + k];
    const double mean = sum / count;
    const double sq = std::max(0.0, sum_sq - sum * mean);  // sum of (x - mean)^2
    const double invstd = 1.0 / std::sqrt(sq / count + kBnEps);
    const double gamma = static_cast<double>(state[w + k]);
    bn.save_mean[k] = static_cast<float>(mean);
    bn.save_invstd[k] = static_cast<float>(invstd);
    bn.center[k] = bn.save_mean[k];
    bn.scale[k] = static_cast<float>(gamma * invstd);
    bn.shift[k] = state[b + k];
    state[rm + k] = static_cast<float>((1.0 - kBnMomentum) * static_cast<double>(state[rm + k]) +
                                       kBnMomentum * mean);
    state[rv + k] = static_cast<float>((1.0 - kBnMomentum) * static_cast<double>(state[rv + k]) +
                                       kBnMomentum * sq / (count - 1.0));
  }
}

void FastModel::batchnorm_eval(BnBlock& bn, const float* state, std::size_t w, std::size_t b,
                               std::size_t rm, std::size_t rv, int C) {
  for (int ch = 0; ch < C; ++ch) {
    const std::size_t k = sz(ch);
    const double invstd = 1.0 / std::sqrt(static_cast<double>(state[rv + k]) + kBnEps);
    bn.center[k] = state[rm + k];
    bn.scale[k] = static_cast<float>(static_cast<double>(state[w + k]) * invstd);
    bn.shift[k] = state[b + k];
  }
}

// =============================================================================================
// Backward
// =============================================================================================

void FastModel::backward(const float* state, const float* dlogits, float* grads) {
  OCTA_CHECK(n_ > 0 && last_train_, "FastModel::backward needs a training-mode forward first");
  const int N = n_;
  const std::size_t hidden = sz(N) * kHidden;
  mark(nullptr);
  if (table_.arch() == Arch::kA) {
    cpu::linear_backward(dh_.data(), grads + o_.f2w, grads + o_.f2b, dlogits, h_.data(),
                         state + o_.f2w, N, kHidden, table_.num_classes());
    cpu::relu_backward(dh_.data(), dh_.data(), h_.data(), hidden);
    mark("fc2.backward+relu.backward");
    backward_a(state, grads, N);
  } else {
    cpu::linear_backward(dd_.data(), grads + o_.f2w, grads + o_.f2b, dlogits, d_.data(),
                         state + o_.f2w, N, kHidden, table_.num_classes());
    cpu::dropout_backward(dh_.data(), dd_.data(), mask_.data(), hidden, kDropoutP);
    cpu::relu_backward(dh_.data(), dh_.data(), h_.data(), hidden);
    cpu::linear_backward(dg_.data(), grads + o_.f1w, grads + o_.f1b, dh_.data(), g_.data(),
                         state + o_.f1w, N, kC2, kHidden);
    cpu::global_avgpool_backward(dp2_.data(), dg_.data(), N, kC2, kHW3);
    mark("head.backward (fc2, dropout, relu, fc1, gap)");
    backward_b(state, grads, N);
  }
}

void FastModel::backward_a(const float* state, float* grads, int N) {
  // fc1: dW (128, 3136) = dh^T * p2 and dp2 (N, 3136) = dh * W, in fixed blocks of input
  // features; the last task sums the bias gradient.
  const float* wf = state + o_.f1w;
  constexpr int kBlocks = kFlat / kFc1InBlock;
  parallel_for(kBlocks + 1, [&](int blk) {
    if (blk == kBlocks) {
      for (int o = 0; o < kHidden; ++o) {
        double acc = 0.0;
        for (int n = 0; n < N; ++n) acc += static_cast<double>(dh_[sz(n) * kHidden + sz(o)]);
        grads[o_.f1b + sz(o)] = static_cast<float>(acc);
      }
      return;
    }
    const int c0 = blk * kFc1InBlock;
    cpu::gemm<float>(true, false, kHidden, kFc1InBlock, N, 1.0f, dh_.data(), kHidden,
                     p2_.data() + c0, kFlat, 0.0f, grads + o_.f1w + sz(c0), kFlat);
    cpu::gemm<float>(false, false, N, kFc1InBlock, kHidden, 1.0f, dh_.data(), kHidden, wf + c0,
                     kFlat, 0.0f, dp2_.data() + c0, kFlat);
  });
  mark("fc1.backward");

  // Both convolution blocks, image by image, the filter gradients summed per slot.
  const float* w2 = state + o_.c2w;
  const Slots slots{N};
  parallel_for(kSlots, [&](int s) {
    Scratch& sc = scratch();
    float* pw1 = part_w1_.data() + sz(s) * kC1 * kK1;
    float* pw2 = part_w2_.data() + sz(s) * kC2 * kK2;
    double* pb1 = part_b1_.data() + sz(s) * kC1;
    double* pb2 = part_b2_.data() + sz(s) * kC2;
    std::fill(pb1, pb1 + kC1, 0.0);
    std::fill(pb2, pb2 + kC2, 0.0);
    for (int i = slots.begin(s); i < slots.begin(s + 1); ++i) {
      const float beta = i == slots.begin(s) ? 0.0f : 1.0f;  // the slot's first image overwrites
      const float* p1 = p1_.data() + sz(i) * kP1;
      maxpool_relu_backward(sc.dy2.data(), dp2_.data() + sz(i) * kFlat, p2_.data() + sz(i) * kFlat,
                            am2_.data() + sz(i) * kFlat, kC2, kS2, kS2);
      add_filter_gradient(pw2, pb2, sc.dy2.data(), p1, kC1, kC2, kS2, beta, sc.col.data());
      gemm_tn(kK2, kHW2, kC2, w2, sc.dy2.data(), sc.dcol.data());
      col2im3x3_pooled(sc.dp1.data(), sc.dcol.data(), kC1, kS2, kS2);
      maxpool_relu_backward(sc.dy1.data(), sc.dp1.data(), p1, am1_.data() + sz(i) * kP1, kC1, kS1,
                            kS1);
      add_filter_gradient(pw1, pb1, sc.dy1.data(), x_.data() + sz(i) * kHW1, 1, kC1, kS1, beta,
                          sc.col.data());
    }
  });
  mark("pool2+relu+conv2+pool1+relu+conv1.backward");
  reduce_slots(grads, o_.c2w, o_.c2b, part_w2_, part_b2_, sz(kC2) * kK2, kC2, N);
  reduce_slots(grads, o_.c1w, o_.c1b, part_w1_, part_b1_, sz(kC1) * kK1, kC1, N);
  mark("slot sums");
}

void FastModel::backward_b(const float* state, float* grads, int N) {
  const float* w2 = state + o_.c2w;
  const Slots slots{N};
  // Block 2: BatchNorm's batch sums first, then per slot its input gradient and conv2's, and
  // block 1's BatchNorm sums from the dp1 just made.
  parallel_for(kSlots, [&](int s) {
    double *sum_dy = bn_sums(0, s, kC2), *sum_dyx = bn_sums(1, s, kC2);
    std::fill(sum_dy, sum_dy + kC2, 0.0);
    std::fill(sum_dyx, sum_dyx + kC2, 0.0);
    for (int i = slots.begin(s); i < slots.begin(s + 1); ++i) {
      pooled_batchnorm_sums(sum_dy, sum_dyx, dp2_.data() + sz(i) * kFlat,
                            p2_.data() + sz(i) * kFlat, am2_.data() + sz(i) * kFlat,
                            c2_.data() + sz(i) * kC2 * kHW2, bn2_.save_mean.data(),
                            bn2_.save_invstd.data(), kC2, kS2, kS2);
    }
  });
  batchnorm_backward_finish(bn2_, grads + o_.bn2w, grads + o_.bn2b, N, kC2, kHW2);
  mark("bn2.backward sums");
  std::vector<float> k2(sz(kC2)), k1(sz(kC1));
  for (int c = 0; c < kC2; ++c) k2[sz(c)] = state[o_.bn2w + sz(c)] * bn2_.save_invstd[sz(c)];
  for (int c = 0; c < kC1; ++c) k1[sz(c)] = state[o_.bn1w + sz(c)] * bn1_.save_invstd[sz(c)];
  parallel_for(kSlots, [&](int s) {
    Scratch& sc = scratch();
    float* pw2 = part_w2_.data() + sz(s) * kC2 * kK2;
    double* pb2 = part_b2_.data() + sz(s) * kC2;
    double *sum_dy = bn_sums(0, s, kC1), *sum_dyx = bn_sums(1, s, kC1);
    std::fill(pb2, pb2 + kC2, 0.0);
    std::fill(sum_dy, sum_dy + kC1, 0.0);
    std::fill(sum_dyx, sum_dyx + kC1, 0.0);
    for (int i = slots.begin(s); i < slots.begin(s + 1); ++i) {
      const float beta = i == slots.begin(s) ? 0.0f : 1.0f;
      float* dp1 = dp1_.data() + sz(i) * kP1;
      maxpool_relu_backward(sc.dy2.data(), dp2_.data() + sz(i) * kFlat, p2_.data() + sz(i) * kFlat,
                            am2_.data() + sz(i) * kFlat, kC2, kS2, kS2);
      batchnorm_input_grad(sc.dy2.data(), c2_.data() + sz(i) * kC2 * kHW2, bn2_.save_mean.data(),
                           bn2_.save_invstd.data(), k2.data(), bn2_.mean_dy.data(),
                           bn2_.mean_dy_xhat.data(), kC2, kHW2);
      add_filter_gradient(pw2, pb2, sc.dy2.data(), p1_.data() + sz(i) * kP1, kC1, kC2, kS2, beta,
                          sc.col.data());
      gemm_tn(kK2, kHW2, kC2, w2, sc.dy2.data(), sc.dcol.data());
      col2im3x3_pooled(dp1, sc.dcol.data(), kC1, kS2, kS2);
      pooled_batchnorm_sums(sum_dy, sum_dyx, dp1, p1_.data() + sz(i) * kP1,
                            am1_.data() + sz(i) * kP1, c1_.data() + sz(i) * kC1 * kHW1,
                            bn1_.save_mean.data(), bn1_.save_invstd.data(), kC1, kS1, kS1);
    }
  });
  batchnorm_backward_finish(bn1_, grads + o_.bn1w, grads + o_.bn1b, N, kC1, kHW1);
  mark("pool2+relu+bn2+conv2.backward (+bn1 sums)");
  // Block 1 the same way, from dp1.
  parallel_for(kSlots, [&](int s) {
    Scratch& sc = scratch();
    float* pw1 = part_w1_.data() + sz(s) * kC1 * kK1;
    double* pb1 = part_b1_.data() + sz(s) * kC1;
    std::fill(pb1, pb1 + kC1, 0.0);
    for (int i = slots.begin(s); i < slots.begin(s + 1); ++i) {
      const float beta = i == slots.begin(s) ? 0.0f : 1.0f;
      maxpool_relu_backward(sc.dy1.data(), dp1_.data() + sz(i) * kP1, p1_.data() + sz(i) * kP1,
                            am1_.data() + sz(i) * kP1, kC1, kS1, kS1);
      batchnorm_input_grad(sc.dy1.data(), c1_.data() + sz(i) * kC1 * kHW1, bn1_.save_mean.data(),
                           bn1_.save_invstd.data(), k1.data(), bn1_.mean_dy.data(),
                           bn1_.mean_dy_xhat.data(), kC1, kHW1);
      add_filter_gradient(pw1, pb1, sc.dy1.data(), x_.data() + sz(i) * kHW1, 1, kC1, kS1, beta,
                          sc.col.data());
    }
  });
  mark("pool1+relu+bn1+conv1.backward");
  reduce_slots(grads, o_.c2w, o_.c2b, part_w2_, part_b2_, sz(kC2) * kK2, kC2, N);
  reduce_slots(grads, o_.c1w, o_.c1b, part_w1_, part_b1_, sz(kC1) * kK1, kC1, N);
  mark("slot sums");
}

void FastModel::batchnorm_backward_finish(BnBlock& bn, float* dgamma, float* dbeta, int N, int C,
                                          int HW) {
  // Per channel the sums of dy, of dy * xhat (this batch's: dbeta, dgamma), then the count.
  double* t = bn_total_.data();
  for (int ch = 0; ch < C; ++ch) {
    const std::size_t k = sz(ch);
    double sum_dy = 0.0, sum_dyx = 0.0;
    for (int s = 0; s < kSlots; ++s) {
      sum_dy += bn_sums(0, s, C)[k];
      sum_dyx += bn_sums(1, s, C)[k];
    }
    dbeta[ch] = static_cast<float>(sum_dy);
    dgamma[ch] = static_cast<float>(sum_dyx);
    t[k] = sum_dy;
    t[sz(C) + k] = sum_dyx;
  }
  t[2 * sz(C)] = static_cast<double>(N) * HW;
  // With ranks: each rank's dy is its share's mean loss's, 1 / weight times the global loss's, so
  // the sums are weighted before they are added up and the global means unweighted after.
  const double weight = bn_ranks_ != nullptr ? bn_ranks_->weight : 1.0;
  if (bn_ranks_ != nullptr) {
    for (std::size_t i = 0; i < 2 * sz(C); ++i) t[i] *= weight;
    bn_ranks_->allreduce_sum(t, 2 * sz(C) + 1);
  }
  const double count = t[2 * sz(C)];
  for (int ch = 0; ch < C; ++ch) {
    const std::size_t k = sz(ch);
    double mean_dy = t[k] / count, mean_dyx = t[sz(C) + k] / count;
    if (bn_ranks_ != nullptr) {
      mean_dy /= weight;
      mean_dyx /= weight;
    }
    bn.mean_dy[k] = static_cast<float>(mean_dy);
    bn.mean_dy_xhat[k] = static_cast<float>(mean_dyx);
  }
}

void FastModel::reduce_slots(float* grads, std::size_t w, std::size_t b,
                             const std::vector<float>& part_w, const std::vector<double>& part_b,
                             std::size_t wn, int C, int N) const {
  const Slots slots{N};
  const Blocks blocks{static_cast<int>(wn), kReduceBlock};
  parallel_for(blocks.count(), [&](int blk) {
    const std::size_t j0 = sz(blocks.begin(blk)), j1 = j0 + sz(blocks.size(blk));
    bool first = true;
    for (int s = 0; s < kSlots; ++s) {
      if (slots.begin(s) == slots.begin(s + 1)) continue;  // no images: never written
      const float* src = part_w.data() + sz(s) * wn;
      for (std::size_t j = j0; j < j1; ++j) grads[w + j] = first ? src[j] : grads[w + j] + src[j];
      first = false;
    }
  });
  for (int c = 0; c < C; ++c) {
    double acc = 0.0;
    for (int s = 0; s < kSlots; ++s) acc += part_b[sz(s) * sz(C) + sz(c)];
    grads[b + sz(c)] = static_cast<float>(acc);
  }
}

}  // namespace octa::cpu_fast
