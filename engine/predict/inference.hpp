// engine/predict/inference.hpp: a trained model ready to answer: its weights file read (octa's
// checkpoint or PyTorch's safetensors, same names), the model recognised from the file, a device
// chosen like train_gpu's --device, and eval-mode logits for 28x28 images in batches.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/io/checkpoint.hpp"
#include "engine/model/param_table.hpp"
#include "engine/train/backend.hpp"

namespace octa::predict {

struct ModelFile {
  Arch arch = Arch::kA;
  int num_classes = 1;  // fc2's outputs: 1, the binary task's logit; K, one logit per class
  ModelState state;
  std::vector<std::string> class_names;  // "octa.class_names"; empty: numbered (MNIST's digits)
  std::optional<int> target_digit;       // recorded by octa's checkpoints ("octa.target_digit")
  std::optional<int> epochs_done;        // likewise ("octa.epochs_done")
  bool octa_metadata = false;            // false: e.g. safetensors.torch.save_file of a state_dict
};

// Reads a weights file. arch: the model asked for (--model a|b), or nullopt to recognise it: from
// octa's "octa.arch" metadata, else from the tensor names (BatchNorm's bn1.* exist only in model
// B). num_classes: fc2's outputs (1: the binary task's logit), or 0 to take them from the file:
// octa's "octa.num_classes", else the rows of fc2.weight (a PyTorch state_dict of nn.Linear(128,
// K)). Loading is strict (every tensor, right dtypes and shapes, none unexpected); errors name
// the file and the tensor.
ModelFile load_model_file(const std::filesystem::path& path, std::optional<Arch> arch,
                          int num_classes = 0);

// The engine to run on: "cuda" (an error when no GPU is usable), "cpu", or "auto" (the GPU when one
// is usable, else the CPU with a warning saying why). max_batch: the largest batch predict gets;
// num_classes: the model's outputs (1: the binary task's logit).
std::unique_ptr<TrainingBackend> make_inference_backend(const std::string& device, Arch arch,
                                                        int max_batch, int num_classes = 1);

// Eval-mode logits of `count` 28x28 images (uint8, MNIST polarity), normalised as
// data::normalize_pixel, in batches of at most batch_size: count x K values, K the backend's
// model's outputs, image by image.
std::vector<float> predict_logits(TrainingBackend& backend, std::span<const std::uint8_t> images,
                                  int count, int batch_size);

}  // namespace octa::predict
