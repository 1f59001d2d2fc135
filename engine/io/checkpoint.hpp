// engine/io/checkpoint.hpp: model weights and training state as safetensors files.
//
//   PATH                     the model's state_dict with PyTorch's names and shapes (float32), plus
//                            `bnK.num_batches_tracked` (int64 scalar) for model B: a PyTorch user
//                            runs model.load_state_dict(safetensors.torch.load_file(PATH)).
//   PATH minus .safetensors  + ".optim.safetensors": optimiser state (exp_avg.<name>, ...), its
//                            step count, and the epoch/seed/run id that --resume needs.
// Both are written atomically, as a pair (save_checkpoint below); loading checks names, shapes,
// dtypes and sizes against the ParamTable, and that the two files belong to the same run and point
// in it (run id, epoch, batch).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/model/param_table.hpp"
#include "engine/optim/lr_schedule.hpp"
#include "engine/optim/optimizer.hpp"

namespace octa {

// Everything a model *is*: parameters and BatchNorm buffers in the ParamTable's layout.
struct ModelState {
  std::vector<float> values;             // table.num_total() floats
  std::int64_t num_batches_tracked = 0;  // BatchNorm's counter (model B; all layers share it)
};

// How far into epoch epochs_done + 1 a checkpoint was written: all zero at an epoch boundary. A run
// stopped by SIGINT/SIGTERM (engine/train/interrupt.hpp) saves mid-epoch and resumes at the next
// batch, which needs the same batches: the same batch size, drop_last and training-set size.
struct EpochPosition {
  std::int64_t batches_done = 0;
  std::int64_t images_done = 0;  // images in those batches
  double loss_sum = 0.0;         // their summed training loss (the epoch's mean loss needs it)
  int batch_size = 0;            // the run's shape (0: not recorded, as in older checkpoints)
  bool drop_last = false;
  std::int64_t train_images = 0;
};

// What --resume needs besides the model.
struct TrainingState {
  int epochs_done = 0;
  EpochPosition within_epoch;
  std::uint64_t seed = 0;
  std::string run_id;
  OptimizerConfig optimizer;
  OptimizerState optimizer_state;
  // The optimiser state file's "lr_schedule", "lr_step_size", ... (files written before schedules
  // existed hold none: constant, as they were trained).
  LrSchedule lr_schedule;
  // Recorded in both files' metadata ("octa.target_digit", "octa.val_size"). Files written before
  // they were recorded: no target digit (unknown), no validation split (none existed then).
  std::optional<int> target_digit;
  int val_size = 0;  // training images held out as the validation split (train_gpu --val-size)
  // The dataset's class names ("octa.class_names", a JSON array; predict names its answers with
  // them). Empty: the classes are numbered (MNIST's digits), and nothing is recorded.
  std::vector<std::string> class_names;
};

std::filesystem::path optimizer_state_path(const std::filesystem::path& weights_path);

// Weights only (what --save-weights / PyTorch interchange needs). Metadata is added to the file's
// __metadata__ next to octa's own keys (octa.arch, octa.task "binary" or "multiclass",
// octa.num_classes K: fc2.weight is [K, 128]).
void save_weights(const std::filesystem::path& path, const ParamTable& table,
                  const ModelState& model, const std::map<std::string, std::string>& metadata = {});

// Strict, like load_state_dict(strict=True): every name present, none unexpected, F32 with the
// right shape (num_batches_tracked: I64 scalar). Errors name the file and the tensor; a file of
// the other task (a binary model for a table of K classes, or the reverse, or another K) is an
// error that says so.
ModelState load_weights(const std::filesystem::path& path, const ParamTable& table);

// Weights file plus optimiser-state file. Both are written completely as temporaries first
// (PendingFile), then the optimiser state is renamed into place, then the weights. A process
// killed between the two renames leaves the new optimiser state, the old weights and the new
// weights complete in their temporary: load_checkpoint then reads that temporary (and says so),
// and the next save replaces all three. Stale temporaries of killed saves are removed after each
// save.
void save_checkpoint(const std::filesystem::path& path, const ParamTable& table,
                     const ModelState& model, const TrainingState& training);

struct Checkpoint {
  ModelState model;
  TrainingState training;
};
// Throws octa::Error naming the file when either file is missing or malformed, or when the two do
// not belong together (and no complete temporary of an interrupted save mends that).
Checkpoint load_checkpoint(const std::filesystem::path& path, const ParamTable& table);

}  // namespace octa
