// engine/dist/data_parallel.cpp: a rank's share of each global batch, the gradient reduction, the
// sharded evaluation and the replica check (data_parallel.hpp).
#include "engine/dist/data_parallel.hpp"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "engine/core/error.hpp"
#include "engine/data/mnist.hpp"

namespace octa::dist {
namespace {

constexpr std::size_t kPixels = static_cast<std::size_t>(kImageSize) * kImageSize;

template <class T>
std::uint64_t hash_vector(const std::vector<T>& v, std::uint64_t h) {
  return fnv1a64(v.data(), v.size() * sizeof(T), h);
}

}  // namespace

std::uint64_t state_hash(const ModelState& model, const OptimizerState& optimizer) {
  std::uint64_t h = hash_vector(model.values, fnv1a64(nullptr, 0));
  h = fnv1a64(&model.num_batches_tracked, sizeof model.num_batches_tracked, h);
  h = fnv1a64(&optimizer.step, sizeof optimizer.step, h);
  h = hash_vector(optimizer.m, h);
  return hash_vector(optimizer.v, h);
}

DataParallelBackend::DataParallelBackend(std::unique_ptr<TrainingBackend> inner, Communicator& comm,
                                         bool sync_batchnorm)
    : inner_(std::move(inner)), comm_(comm), sync_batchnorm_(sync_batchnorm) {
  OCTA_CHECK(inner_ != nullptr, "DataParallelBackend: no backend");
  OCTA_CHECK(!sync_batchnorm_ || !inner_->table().batchnorm_layers().empty(),
             "--sync-bn: model {} has no BatchNorm layers to synchronise (model B has: --model b)",
             arch_name(inner_->table().arch()));
  inner_->set_gradient_reducer(this);  // throws where the backend cannot
}

std::string DataParallelBackend::description() const {
  return fmt::format("{} on each of {}{}", inner_->description(), comm_.description(),
                     sync_batchnorm_ ? ", BatchNorm synchronised (--sync-bn)" : "");
}

void DataParallelBackend::train_step(const float* images, const float* targets, int n,
                                     std::int64_t step) {
  OCTA_CHECK(n >= comm_.size(),
             "a training batch of {} images cannot be shared by {} ranks (each needs at least "
             "one): use a --batch-size of at least {} and --drop-last, or fewer ranks",
             n, comm_.size(), comm_.size());
  global_n_ = n;
  share_ = share_of(n, comm_.rank(), comm_.size());
  const auto first = static_cast<std::size_t>(share_.begin);
  inner_->train_step(images + first * kPixels, targets + first, share_.count(), step);
}

float DataParallelBackend::share_weight() const {
  return share_.count() == global_n_
             ? 1.0f
             : static_cast<float>(static_cast<double>(share_.count()) / global_n_);
}

void DataParallelBackend::reduce(float* grads, std::size_t count) {
  if (share_.count() != global_n_) {
    // d(mean over the batch)/dθ = sum over ranks of (n_r / n) d(mean over the share)/dθ.
    const float scale = share_weight();
    for (std::size_t i = 0; i < count; ++i) grads[i] *= scale;
  }
  comm_.allreduce_sum(grads, count);
}

void DataParallelBackend::sync_buffers(float* values, std::size_t count) {
  // --sync-bn: every rank updated the running statistics from the same global figures already
  // (check_replicas proves them equal).
  if (sync_batchnorm_) return;
  comm_.broadcast(values, count * sizeof(float), 0);
}

double DataParallelBackend::take_loss_sum() {
  double sum = inner_->take_loss_sum();
  comm_.allreduce_sum(&sum, 1);
  return sum;
}

void DataParallelBackend::predict(const float* images, int n, float* logits) {
  const Share mine = share_of(n, comm_.rank(), comm_.size());
  std::vector<float> part(static_cast<std::size_t>(mine.count()));
  if (mine.count() > 0) {
    inner_->predict(images + static_cast<std::size_t>(mine.begin) * kPixels, mine.count(),
                    part.data());
  }
  std::vector<std::size_t> bytes(static_cast<std::size_t>(comm_.size()));
  for (int r = 0; r < comm_.size(); ++r) {
    bytes[static_cast<std::size_t>(r)] = share_of(n, r, comm_.size()).count() * sizeof(float);
  }
  comm_.allgatherv(part.data(), logits, bytes);
}

void DataParallelBackend::check_replicas(const std::string& when) {
  const std::vector<std::uint64_t> hashes =
      allgather_u64(comm_, state_hash(inner_->model_state(), inner_->optimizer_state()));
  std::string differ;
  for (std::size_t r = 1; r < hashes.size(); ++r) {
    if (hashes[r] != hashes[0]) differ += fmt::format(" rank {}: {:016x};", r, hashes[r]);
  }
  OCTA_CHECK(differ.empty(),
             "data-parallel replicas differ {}: the model and optimiser state hash {:016x} on rank "
             "0 but{} every rank must hold the same parameters (a bug in the gradient reduction, "
             "or ranks given different inputs)",
             when, hashes[0], differ);
}

int DataParallelBackend::agree_on_signal(int signal) {
  if (comm_.size() == 1) return signal;
  for (const std::uint64_t s : allgather_u64(comm_, static_cast<std::uint64_t>(signal))) {
    if (s != 0) return static_cast<int>(s);
  }
  return 0;
}

}  // namespace octa::dist
