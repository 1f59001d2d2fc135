// engine/dist/data_parallel.hpp: data-parallel training over a Communicator's ranks, as a
// TrainingBackend that wraps each rank's own backend, so the training loop (engine/train/trainer)
// runs unchanged on every rank with the same global batches:
//
//   - train_step gets the whole global batch (every rank's loader makes the same batches from the
//     same seed) and trains on this rank's contiguous share of it (share_of: rank r takes samples
//     floor(r n / N) .. floor((r+1) n / N) - 1). Between backward and update, the share's
//     gradients (of the mean loss over the share, n_r samples) are scaled by n_r / n and summed
//     over the ranks in rank order (Communicator::allreduce_sum): the gradient of the mean loss
//     over the global batch, the same bits on every rank, so every rank's optimiser makes the same
//     update. With N = 1 the scale is exactly 1 and the sum a no-op: a one-rank run is a plain run.
//   - Dropout (model B) draws, for this rank's share, the masks the whole batch draws there in
//     one process (GradientReducer::first_image).
//   - BatchNorm (model B) normalises with each rank's own batch statistics, as PyTorch DDP does by
//     default; the running statistics are rank 0's after every step (DDP's broadcast_buffers).
//     With sync_batchnorm (--sync-bn, PyTorch's SyncBatchNorm) it normalises with the global
//     batch's: the backend sums its per-channel statistics over the ranks in the forward and the
//     backward (allreduce_batchnorm, rank order), so every rank updates the same running
//     statistics and none is broadcast.
//   - take_loss_sum is the sum over ranks, so the loop's mean losses are the global batch's.
//   - predict (evaluation) runs each rank's share of the batch and gathers the logits in order.
//   - check_replicas hashes the model and optimiser state on every rank and throws when any rank
//     differs from rank 0; agree_on_signal makes every rank stop at the same step.
#pragma once

#include <memory>
#include <string>

#include "engine/dist/communicator.hpp"
#include "engine/train/backend.hpp"

namespace octa::dist {

class DataParallelBackend final : public TrainingBackend, private GradientReducer {
 public:
  // comm must outlive the backend. inner is this wrapper's alone from now on (it keeps a pointer
  // to the wrapper as its GradientReducer). sync_batchnorm: --sync-bn (throws for a model without
  // BatchNorm, and from a backend that cannot).
  DataParallelBackend(std::unique_ptr<TrainingBackend> inner, Communicator& comm,
                      bool sync_batchnorm = false);
  DataParallelBackend(const DataParallelBackend&) = delete;
  DataParallelBackend& operator=(const DataParallelBackend&) = delete;

  std::string description() const override;
  const ParamTable& table() const override { return inner_->table(); }
  // images and targets: the whole global batch of n. n must be at least the number of ranks.
  void train_step(const float* images, const float* targets, int n, std::int64_t step) override;
  std::unique_ptr<data::HostBatch> make_host_batch(int capacity) override {
    return inner_->make_host_batch(capacity);
  }
  double take_loss_sum() override;
  void predict(const float* images, int n, float* logits) override;
  ModelState model_state() override { return inner_->model_state(); }
  OptimizerState optimizer_state() override { return inner_->optimizer_state(); }
  void load(const ModelState& model, const OptimizerState* optimizer) override {
    inner_->load(model, optimizer);
  }
  std::vector<PhaseTimes> phase_times() const override { return inner_->phase_times(); }
  void set_learning_rate(double lr) override { inner_->set_learning_rate(lr); }

  // Throws octa::Error on every rank when any rank's model or optimiser state differs from rank
  // 0's, naming the ranks and `when` (e.g. "after epoch 2"). Collective: every rank calls it.
  void check_replicas(const std::string& when);
  // The signal every rank acts on: the first non-zero of the ranks' `signal`s, in rank order.
  // Collective.
  int agree_on_signal(int signal);

 private:
  void reduce(float* grads, std::size_t count) override;
  void sync_buffers(float* values, std::size_t count) override;
  int first_image() const override { return share_.begin; }
  int rank() const override { return comm_.rank(); }
  int ranks() const override { return comm_.size(); }
  float share_weight() const override;
  void broadcast_from_rank0(void* data, std::size_t bytes) override {
    comm_.broadcast(data, bytes, 0);
  }
  bool sync_batchnorm() const override { return sync_batchnorm_; }
  void allreduce_batchnorm(double* values, std::size_t count) override {
    comm_.allreduce_sum(values, count);
  }

  std::unique_ptr<TrainingBackend> inner_;
  Communicator& comm_;
  bool sync_batchnorm_ = false;
  int global_n_ = 0;  // the current step's global batch
  Share share_;       // this rank's share of it
};

// The 64-bit hash check_replicas compares: the model's values, BatchNorm's batch count and the
// optimiser's step and moments.
std::uint64_t state_hash(const ModelState& model, const OptimizerState& optimizer);

}  // namespace octa::dist
