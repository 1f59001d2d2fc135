// engine/train/trainer.hpp: the training loop shared by every backend: epochs over a freshly
// shuffled training set, the per-epoch mean loss (over every sample, not the last batch's),
// a NaN/Inf guard, a checkpoint after each epoch, and evaluation in eval mode.
#pragma once

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/data/host_batch.hpp"
#include "engine/data/mnist.hpp"
#include "engine/io/checkpoint.hpp"
#include "engine/optim/lr_schedule.hpp"
#include "engine/train/backend.hpp"
#include "engine/train/metrics.hpp"
#include "engine/train/multiclass_metrics.hpp"

namespace octa {

struct TrainOptions {
  int epochs = 5;  // total epochs of the run (a resumed run continues to this)
  int batch_size = 64;
  int test_batch_size = 1000;
  bool drop_last = false;
  std::uint64_t seed = 0;  // shuffle order (and, through the backend, init/dropout)
  int target_digit = 8;    // the binary task's class; data::kClassIndexTarget with K classes
  std::vector<std::string> class_names;  // the dataset's (metrics, checkpoints); empty: numbers
  OptimizerConfig optimizer;             // recorded in checkpoints
  LrSchedule lr_schedule;                // each epoch's lr, from optimizer.lr (checkpointed)
  std::filesystem::path checkpoint;      // written after every epoch; empty: none
  std::string run_id;                    // ties a checkpoint's two files together
  bool interactive = false;              // redraw a progress line on the terminal
  int loss_sync_every = 1;               // steps between loss reads (a GPU backend wants more)
  int loader_threads = 1;                // threads preparing batches ahead of the step
  bool record_step_losses = false;       // keep every step's mean loss (reads the loss every step)
  bool eval_every_epoch = false;         // evaluate on the test split after every epoch
  int val_size = 0;                      // images held out of train_split as validation (recorded)
  // Where in epoch epochs_done + 1 a resumed run continues (a checkpoint saved mid-epoch after a
  // SIGINT/SIGTERM: Checkpoint::training.within_epoch); all zero: at its start.
  EpochPosition resume_within_epoch;
  // Data-parallel runs (engine/dist/data_parallel.hpp); empty in a single process. agree_on_signal
  // turns this rank's pending_interrupt() into the one answer every rank acts on, before each
  // step; after_epoch(epochs done) runs after each epoch, before its checkpoint (the replica
  // check).
  std::function<int(int)> agree_on_signal;
  std::function<void(int)> after_epoch;
};

struct EpochStats {
  int epoch = 0;         // 1-based
  double mean_loss = 0;  // mean loss (BCE or softmax CE) over every training sample of the epoch
  double lr = NAN;       // the learning rate the epoch trained with
  double seconds = 0;
  double cpu_seconds = 0;  // the process's user + system CPU time over the epoch, all threads
  double images_per_second = 0;
  double test_accuracy = NAN;  // with TrainOptions::eval_every_epoch
};

struct TrainReport {
  std::vector<EpochStats> epochs;
  BinaryMetrics test;               // the binary task's (one logit)
  MulticlassMetrics test_classes;   // K classes' (backend.table().multiclass())
  std::vector<double> step_losses;  // with TrainOptions::record_step_losses: each step's mean loss
  std::vector<float> test_logits;   // the final evaluation's logits, in test-split order (N, K)
};

// Trains epochs [epochs_done, options.epochs) and evaluates on `test`. Throws octa::Error when the
// loss becomes NaN or Inf, naming the epoch and step; the last checkpoint written is kept. Before
// each step it looks for a signal (engine/train/interrupt.hpp): when one came, it saves a
// checkpoint of the run so far (mid-epoch) and throws octa::Interrupted.
TrainReport train(TrainingBackend& backend, const data::Split& train_split,
                  const data::Split& test_split, const TrainOptions& options, int epochs_done = 0);

// Eval-mode predictions over a split, in order, and their metrics; the logits too when asked.
BinaryMetrics evaluate(TrainingBackend& backend, const data::Split& split, int batch_size,
                       int target_digit, std::vector<float>* logits_out = nullptr);
// The same for a model of K classes (backend.table().num_classes() > 1): logits (N, K).
MulticlassMetrics evaluate_classes(TrainingBackend& backend, const data::Split& split,
                                   int batch_size, std::vector<std::string> class_names = {},
                                   std::vector<float>* logits_out = nullptr);

nlohmann::json to_json(const EpochStats& e);

// The loader threads' ring (data::Prefetcher): the backend's own staging memory (pinned for the
// CUDA engine), or pageable memory when backend is null, room for a batch of min(batch_size, count)
// images per slot. Its slots bound how far the threads run ahead of the step (the one in use
// included): at least 4, and two per thread so none waits on another.
std::vector<std::unique_ptr<data::HostBatch>> host_batch_ring(int batch_size, int count,
                                                              int threads,
                                                              TrainingBackend* backend);

// Loader threads a run gets by default: 1 on the CPU path (its compute wants the cores); for a
// GPU, whose step is shorter than one thread's transform of a batch, a quarter of the cores, 1..4.
int default_loader_threads(bool gpu);

}  // namespace octa
