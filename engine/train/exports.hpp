// engine/train/exports.hpp: what a run can export so another framework can replay it exactly
// (bench/pytorch/parity.py): the batch order of every epoch and the loss of every step. The
// initial weights are exported with save_weights (engine/io/checkpoint.hpp).
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "engine/data/mnist.hpp"

namespace octa {

// safetensors with one I64 tensor "order" of shape [epochs_end - epochs_begin, split.count]: row k
// lists the training-image indices in the order epoch epochs_begin + k consumes them (batch b is
// row[b * batch_size, (b + 1) * batch_size)). Written atomically.
void export_batch_order(const std::filesystem::path& path, const data::Split& split,
                        std::uint64_t seed, int epochs_begin, int epochs_end);

// JSON {"step_losses": [...]}: the mean loss of each training step, in order. Written atomically.
void export_step_losses(const std::filesystem::path& path, const std::vector<double>& losses);

}  // namespace octa
