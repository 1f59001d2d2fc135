// engine/train/cpu_backend.hpp: the CPU reference as a TrainingBackend: CpuModel<float>, BCE with
// logits and the CPU optimiser: the ground truth the GPU and the fast CPU backend
// (fast_cpu_backend.hpp, what train_gpu runs where there is no GPU) are checked against;
// `train_gpu --device cpu-ref` trains on it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/optim/optimizer.hpp"
#include "engine/train/backend.hpp"

namespace octa {

struct BackendConfig {
  Arch arch = Arch::kA;
  OptimizerConfig optimizer;
  int max_batch = 64;  // the largest batch train_step or predict will see
  // The largest batch train_step will see (0: max_batch). The CPU backends size their activations
  // for it and predict larger batches in pieces of this size (evaluation at 1000 would otherwise
  // hold activations for 1000 images through the whole run).
  int train_batch = 0;
  int activation_batch() const { return train_batch > 0 ? train_batch : max_batch; }
  std::uint64_t seed = 0;   // initial weights and dropout masks
  float pos_weight = 1.0f;  // BCEWithLogitsLoss(pos_weight=...)
  // fc2's outputs (ParamTable::for_arch): 1, the binary task (BCE with logits, targets 0/1), or
  // K >= 2 classes (softmax cross-entropy, targets the class index): PyTorch's
  // CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing).
  int num_classes = 1;
  std::vector<float> class_weights;  // K weights, or empty: all ones
  float label_smoothing = 0.0f;
  // Throws octa::Error naming the flag for smoothing outside [0, 1], a weight that is negative or
  // not finite, or as many weights as not K (or any with the binary task).
  void validate_loss() const;
};

std::unique_ptr<TrainingBackend> make_cpu_backend(const BackendConfig& config);

}  // namespace octa

namespace octa {

// Threads for the CPU path: the fast backend's own threads, or OpenBLAS's on the reference. n > 0.
void set_cpu_threads(int n);

}  // namespace octa
