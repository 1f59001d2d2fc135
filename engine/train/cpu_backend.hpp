// engine/train/cpu_backend.hpp: the CPU reference as a TrainingBackend: CpuModel<float>, BCE with
// logits and the CPU optimiser. This is what train_gpu runs where there is no GPU.
#pragma once

#include <cstdint>
#include <memory>

#include "engine/optim/optimizer.hpp"
#include "engine/train/backend.hpp"

namespace octa {

struct BackendConfig {
  Arch arch = Arch::kA;
  OptimizerConfig optimizer;
  int max_batch = 64;       // the largest batch train_step or predict will see
  std::uint64_t seed = 0;   // initial weights and dropout masks
  float pos_weight = 1.0f;  // BCEWithLogitsLoss(pos_weight=...)
};

std::unique_ptr<TrainingBackend> make_cpu_backend(const BackendConfig& config);

}  // namespace octa

namespace octa {

// Threads for the CPU path (OpenMP loops and OpenBLAS GEMMs). n > 0.
void set_cpu_threads(int n);

}  // namespace octa
