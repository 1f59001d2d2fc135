// engine/predict/inputs.hpp: what `predict` is asked about, turned into 28x28 MNIST-style images:
// image files (PNG or JPEG, recognised by their first bytes, not their names), folders of them
// (the .png/.jpg/.jpeg files directly inside, by name), and IDX image files (MNIST's own format,
// gzip or not: used as they are, with their labels when the matching labels file lies beside
// them). An input that cannot be read or preprocessed becomes an entry with its error, naming the
// file; the others go on.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "engine/predict/image.hpp"

namespace octa::predict {

enum class InputKind { kPng, kJpeg, kIdx, kUnknown };
const char* input_kind_name(InputKind k);  // "png", "jpeg", "idx", "?"

struct PredictInput {
  std::string name;  // the path; "PATH#i" for image i of an IDX file
  InputKind kind = InputKind::kUnknown;
  std::optional<int> label;          // IDX images whose labels file was found
  std::vector<std::uint8_t> pixels;  // 28 x 28: what the model sees (before normalisation)
  bool inverted = false;             // preprocessing turned dark-on-light into light-on-dark
  std::string error;                 // not empty: this input failed, pixels is empty
  bool ok() const { return error.empty(); }
};

struct InputOptions {
  bool raw = false;  // images are already 28x28 MNIST-style: only turned gray (--raw)
  ImageLimits limits;
};

// In the order given; a folder's images sorted by name. Never throws for a bad input: each becomes
// an entry with its error (a missing path, an empty folder, an unreadable image, a bad IDX file).
std::vector<PredictInput> gather_inputs(const std::vector<std::filesystem::path>& paths,
                                        const InputOptions& options);

// One image file, preprocessed (or --raw). Throws octa::Error naming the file.
PredictInput read_image_input(const std::filesystem::path& path, const InputOptions& options);

// The labels file that belongs to an IDX images file: the same name with "images-idx3" replaced by
// "labels-idx1", with or without ".gz"; nullopt when there is none.
std::optional<std::filesystem::path> idx_labels_beside(const std::filesystem::path& images);

}  // namespace octa::predict
