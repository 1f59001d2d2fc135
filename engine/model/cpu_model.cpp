// engine/model/cpu_model.cpp: forward and backward of models A and B on the CPU reference ops.
//
//   block1: conv1 (1->32) [-> bn1] -> ReLU -> maxpool      (N,32,28,28) -> (N,32,14,14)
//   block2: conv2 (32->64) [-> bn2] -> ReLU -> maxpool     (N,64,14,14) -> (N,64,7,7)
//   head A: flatten -> fc1 (3136->128) -> ReLU -> fc2 (128->K)
//   head B: global avg pool (N,64) -> fc1 (64->128) -> ReLU -> dropout(0.5) -> fc2 (128->K)
// K = table.num_classes(): 1 logit for the binary task, one per class otherwise.
#include "engine/model/cpu_model.hpp"

#include <algorithm>

#include "engine/core/error.hpp"
#include "engine/cpu/ops.hpp"

namespace octa {

namespace {
constexpr int kC1 = 32, kC2 = 64, kHidden = 128;
constexpr double kBnEps = 1e-5, kBnMomentum = 0.1;
}  // namespace

template <class T>
typename CpuModel<T>::ConvBlock CpuModel<T>::make_block(const std::string& conv,
                                                        const std::string& bn, int cin, int cout,
                                                        int size) const {
  ConvBlock k;
  k.cin = cin;
  k.cout = cout;
  k.size = size;
  k.w = table_.at(conv + ".weight").offset;
  k.b = table_.at(conv + ".bias").offset;
  k.bn = table_.arch() == Arch::kB;
  if (k.bn) {
    k.bn_w = table_.at(bn + ".weight").offset;
    k.bn_b = table_.at(bn + ".bias").offset;
    k.bn_mean = table_.at(bn + ".running_mean").offset;
    k.bn_var = table_.at(bn + ".running_var").offset;
    k.save_mean.assign(static_cast<std::size_t>(cout), T(0));
    k.save_invstd.assign(static_cast<std::size_t>(cout), T(0));
  }
  const std::size_t full = static_cast<std::size_t>(max_batch_) * cout * size * size;
  k.conv.assign(full, T(0));
  k.act.assign(full, T(0));
  k.dact.assign(full, T(0));
  if (k.bn) k.dconv.assign(full, T(0));
  k.pool.assign(full / 4, T(0));
  return k;
}

template <class T>
CpuModel<T>::CpuModel(const ParamTable& table, int max_batch)
    : table_(table), max_batch_(max_batch) {
  OCTA_CHECK(max_batch > 0, "CpuModel: batch size must be positive, got {}", max_batch);
  block1_ = make_block("conv1", "bn1", 1, kC1, kImageSize);
  block2_ = make_block("conv2", "bn2", kC1, kC2, kImageSize / 2);
  f1w_ = table.at("fc1.weight").offset;
  f1b_ = table.at("fc1.bias").offset;
  f2w_ = table.at("fc2.weight").offset;
  f2b_ = table.at("fc2.bias").offset;
  const auto n = static_cast<std::size_t>(max_batch);
  x_.assign(n * kImageSize * kImageSize, T(0));
  h_.assign(n * kHidden, T(0));
  dh_.assign(n * kHidden, T(0));
  dflat_.assign(block2_.pool.size(), T(0));
  dpool1_.assign(block1_.pool.size(), T(0));
  if (table.arch() == Arch::kB) {
    g_.assign(n * kC2, T(0));
    dg_.assign(n * kC2, T(0));
    d_.assign(n * kHidden, T(0));
    dd_.assign(n * kHidden, T(0));
    mask_.assign(n * kHidden, 0);
  }
}

template <class T>
std::uint64_t CpuModel<T>::buffer_bytes(const ParamTable& table, std::int64_t max_batch) {
  const bool bn = table.arch() == Arch::kB;
  const auto n = static_cast<std::uint64_t>(max_batch);
  // Per block (make_block): conv, act, dact [, dconv] of (n, cout, size, size) and the pooled
  // quarter [, two per-channel statistics].
  const auto block = [&](std::uint64_t cout, std::uint64_t size) {
    const std::uint64_t full = n * cout * size * size;
    return (bn ? 4 : 3) * full + full / 4 + (bn ? 2 * cout : 0);
  };
  const std::uint64_t pool1 = n * kC1 * (kImageSize / 2) * (kImageSize / 2);
  const std::uint64_t pool2 = n * kC2 * (kImageSize / 4) * (kImageSize / 4);
  // The head: x, h, dh, dflat (pool2), dpool1 (pool1) [, g, dg, d, dd].
  const std::uint64_t head = n * kImageSize * kImageSize + 2 * n * kHidden + pool2 + pool1 +
                             (bn ? 2 * n * kC2 + 2 * n * kHidden : 0);
  const std::uint64_t floats = block(kC1, kImageSize) + block(kC2, kImageSize / 2) + head;
  return floats * sizeof(T) + (bn ? n * kHidden : 0);  // + the dropout mask's bytes
}

template <class T>
void CpuModel<T>::block_forward(ConvBlock& k, T* state, const T* in, int N, bool train) {
  const std::size_t count = static_cast<std::size_t>(N) * k.cout * k.size * k.size;
  cpu::conv3x3_forward(k.conv.data(), in, state + k.w, state + k.b, N, k.cin, k.cout, k.size,
                       k.size);
  const T* relu_in = k.conv.data();
  if (k.bn) {
    const int hw = k.size * k.size;
    if (train) {
      cpu::batchnorm_forward_train(k.act.data(), k.save_mean.data(), k.save_invstd.data(),
                                   state + k.bn_mean, state + k.bn_var, k.conv.data(),
                                   state + k.bn_w, state + k.bn_b, N, k.cout, hw,
                                   static_cast<T>(kBnEps), static_cast<T>(kBnMomentum), bn_ranks_);
    } else {
      cpu::batchnorm_forward_eval(k.act.data(), k.conv.data(), state + k.bn_w, state + k.bn_b,
                                  state + k.bn_mean, state + k.bn_var, N, k.cout, hw,
                                  static_cast<T>(kBnEps));
    }
    relu_in = k.act.data();
  }
  cpu::relu_forward(k.act.data(), relu_in, count);
  cpu::maxpool2x2_forward(k.pool.data(), k.act.data(), N, k.cout, k.size, k.size);
}

template <class T>
void CpuModel<T>::block_backward(ConvBlock& k, const T* state, const T* dpool, const T* in, T* din,
                                 T* grads, int N) {
  const std::size_t count = static_cast<std::size_t>(N) * k.cout * k.size * k.size;
  cpu::maxpool2x2_backward(k.dact.data(), dpool, k.act.data(), N, k.cout, k.size, k.size);
  cpu::relu_backward(k.dact.data(), k.dact.data(), k.act.data(), count);
  const T* dconv = k.dact.data();
  if (k.bn) {
    cpu::batchnorm_backward(k.dconv.data(), grads + k.bn_w, grads + k.bn_b, k.dact.data(),
                            k.conv.data(), k.save_mean.data(), k.save_invstd.data(), state + k.bn_w,
                            N, k.cout, k.size * k.size, bn_ranks_);
    dconv = k.dconv.data();
  }
  cpu::conv3x3_backward(din, grads + k.w, grads + k.b, dconv, in, state + k.w, N, k.cin, k.cout,
                        k.size, k.size);
}

template <class T>
void CpuModel<T>::forward(T* state, const T* x, int N, bool train, std::uint64_t dropout_seed,
                          std::uint64_t dropout_stream, T* logits) {
  OCTA_CHECK(N > 0 && N <= max_batch_, "CpuModel::forward: batch of {} (allowed 1..{})", N,
             max_batch_);
  n_ = N;
  last_train_ = train;
  std::copy(x, x + static_cast<std::size_t>(N) * kImageSize * kImageSize, x_.begin());
  block_forward(block1_, state, x_.data(), N, train);
  block_forward(block2_, state, block1_.pool.data(), N, train);

  const std::size_t hidden = static_cast<std::size_t>(N) * kHidden;
  const T* fc2_in = h_.data();
  if (table_.arch() == Arch::kA) {
    cpu::linear_forward(h_.data(), block2_.pool.data(), state + f1w_, state + f1b_, N, kC2 * 7 * 7,
                        kHidden);
    cpu::relu_forward(h_.data(), h_.data(), hidden);
  } else {
    cpu::global_avgpool_forward(g_.data(), block2_.pool.data(), N, kC2, 7 * 7);
    cpu::linear_forward(h_.data(), g_.data(), state + f1w_, state + f1b_, N, kC2, kHidden);
    cpu::relu_forward(h_.data(), h_.data(), hidden);
    if (train) {
      cpu::dropout_forward(d_.data(), mask_.data(), h_.data(), hidden, kDropoutP, dropout_seed,
                           dropout_stream, dropout_first_ * kHidden);
      fc2_in = d_.data();
    }
  }
  cpu::linear_forward(logits, fc2_in, state + f2w_, state + f2b_, N, kHidden, table_.num_classes());
}

template <class T>
void CpuModel<T>::backward(const T* state, const T* dlogits, T* grads) {
  OCTA_CHECK(n_ > 0 && last_train_, "CpuModel::backward needs a training-mode forward first");
  const int N = n_;
  const std::size_t hidden = static_cast<std::size_t>(N) * kHidden;
  if (table_.arch() == Arch::kA) {
    cpu::linear_backward(dh_.data(), grads + f2w_, grads + f2b_, dlogits, h_.data(), state + f2w_,
                         N, kHidden, table_.num_classes());
    cpu::relu_backward(dh_.data(), dh_.data(), h_.data(), hidden);
    cpu::linear_backward(dflat_.data(), grads + f1w_, grads + f1b_, dh_.data(), block2_.pool.data(),
                         state + f1w_, N, kC2 * 7 * 7, kHidden);
  } else {
    cpu::linear_backward(dd_.data(), grads + f2w_, grads + f2b_, dlogits, d_.data(), state + f2w_,
                         N, kHidden, table_.num_classes());
    cpu::dropout_backward(dh_.data(), dd_.data(), mask_.data(), hidden, kDropoutP);
    cpu::relu_backward(dh_.data(), dh_.data(), h_.data(), hidden);
    cpu::linear_backward(dg_.data(), grads + f1w_, grads + f1b_, dh_.data(), g_.data(),
                         state + f1w_, N, kC2, kHidden);
    cpu::global_avgpool_backward(dflat_.data(), dg_.data(), N, kC2, 7 * 7);
  }
  block_backward(block2_, state, dflat_.data(), block1_.pool.data(), dpool1_.data(), grads, N);
  block_backward(block1_, state, dpool1_.data(), x_.data(), nullptr, grads, N);
}

template class CpuModel<float>;
template class CpuModel<double>;

}  // namespace octa
