// engine/train/backend.hpp: what the training loop needs from a device. The CPU reference
// (cpu_backend.hpp) and the CUDA engine implement it; the loop itself (trainer.hpp), metrics,
// checkpoints and resume are shared, so both paths behave the same to a user.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/data/host_batch.hpp"

#include "engine/io/checkpoint.hpp"
#include "engine/model/param_table.hpp"

namespace octa {

// Data-parallel training (engine/dist/data_parallel.hpp): what a backend's training step calls
// between its backward pass and its optimiser update, and after the update.
class GradientReducer {
 public:
  virtual ~GradientReducer() = default;
  // Host gradients of the mean loss over this rank's share of the step's batch, made the gradients
  // of the mean loss over the whole batch, with the same bits on every rank.
  virtual void reduce(float* grads, std::size_t count) = 0;
  // The model's non-trainable values after the update (BatchNorm's running statistics, from this
  // rank's own batch statistics) made rank 0's on every rank, as PyTorch DDP's broadcast_buffers.
  virtual void sync_buffers(float* values, std::size_t count) = 0;
  // Where this rank's share starts in the step's global batch: its dropout masks are the ones the
  // whole batch draws from there, as in one process.
  virtual int first_image() const = 0;
  // For a device backend that sums on the device itself (the CUDA engine: NCCL): this rank of
  // ranks(), the weight n_r / n of its share in the step's batch, and a host broadcast from rank 0
  // (NCCL's unique id). Collective where the communicator's calls are.
  virtual int rank() const = 0;
  virtual int ranks() const = 0;
  virtual float share_weight() const = 0;
  virtual void broadcast_from_rank0(void* data, std::size_t bytes) = 0;
  // --sync-bn (PyTorch's SyncBatchNorm): whether training-mode BatchNorm takes the statistics of
  // the whole global batch, and the rank-order sum over the ranks of the per-channel sums it needs
  // for them (engine/cpu/batchnorm_ranks.hpp), in place, the same bits on every rank. Collective.
  virtual bool sync_batchnorm() const = 0;
  virtual void allreduce_batchnorm(double* values, std::size_t count) = 0;
};

class TrainingBackend {
 public:
  virtual ~TrainingBackend() = default;

  // e.g. "cpu (2 threads)" or "cuda:0 NVIDIA H100 80GB HBM3"
  virtual std::string description() const = 0;
  virtual const ParamTable& table() const = 0;

  // One optimisation step on a batch. images: (n, 1, 28, 28) normalised; targets: (n) 0/1 for
  // the binary task, the class index for K classes (table().num_classes() > 1).
  // step: the 0-based global step index (it selects the dropout stream, so a resumed run draws
  // the same masks as an uninterrupted one). May run asynchronously.
  virtual void train_step(const float* images, const float* targets, int n, std::int64_t step) = 0;

  // Host memory for one batch of up to `capacity` images that this backend reads fastest (the
  // CUDA engine: pinned). The loader thread fills these (data/prefetcher.hpp).
  virtual std::unique_ptr<data::HostBatch> make_host_batch(int capacity) {
    return std::make_unique<data::PageableHostBatch>(
        capacity, static_cast<std::size_t>(kImageSize) * kImageSize);
  }
  // train_step on a batch staged in memory from make_host_batch. The backend may go on reading
  // the batch after returning, until batch.wait_reusable() returns; the caller must not refill
  // it before. The default reads it before returning.
  virtual void train_step_staged(data::HostBatch& batch, int n, std::int64_t step) {
    train_step(batch.images(), batch.targets(), n, step);
  }

  // The sum over samples of the training loss of every train_step since the last call (the mean
  // loss of a batch times its size), then resets it. Waits for outstanding work.
  virtual double take_loss_sum() = 0;

  // Eval mode (BatchNorm running statistics, no dropout), no gradients. logits: (n, K), K =
  // table().num_classes().
  virtual void predict(const float* images, int n, float* logits) = 0;

  // Host copies of the model and optimiser state, and their restoration (resume, --init-from).
  virtual ModelState model_state() = 0;
  virtual OptimizerState optimizer_state() = 0;
  virtual void load(const ModelState& model, const OptimizerState* optimizer) = 0;

  // The optimiser's learning rate from the next train_step on (a schedule's: the trainer sets it
  // before each epoch, engine/optim/lr_schedule.hpp). The default: this backend cannot change it,
  // and says so.
  virtual void set_learning_rate(double lr) {
    throw Error(
        fmt::format("{}: no learning-rate schedule on this backend (lr {})", description(), lr));
  }

  // Per-phase device times of the steps run so far, in step order, for a backend made with
  // timing on (CudaBackendOptions::time_phases); empty otherwise.
  struct PhaseTimes {
    std::string name;       // e.g. "conv2.backward_filter"
    std::vector<float> ms;  // one entry per call
  };
  virtual std::vector<PhaseTimes> phase_times() const { return {}; }

  // From now on every train_step reduces its gradients through `reducer` (null: no more). The
  // default: this backend cannot train data-parallel, and says so.
  virtual void set_gradient_reducer(GradientReducer* reducer) {
    if (reducer != nullptr) {
      throw Error(description() + ": no data-parallel (mpirun) training on this backend yet");
    }
  }
};

}  // namespace octa
