// engine/predict/inference.cpp: weights file -> model -> backend -> logits.
#include "engine/predict/inference.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "engine/core/device_probe.hpp"
#include "engine/core/error.hpp"
#include "engine/core/gpu_module.hpp"
#include "engine/data/transform.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/train/cpu_backend.hpp"
#include "engine/train/fast_cpu_backend.hpp"

namespace octa::predict {
namespace fs = std::filesystem;

namespace {

std::optional<int> metadata_int(const io::SafetensorsFile& file, const fs::path& path,
                                const std::string& key) {
  const auto it = file.metadata.find(key);
  if (it == file.metadata.end()) return std::nullopt;
  try {
    std::size_t used = 0;
    const int v = std::stoi(it->second, &used);
    if (used == it->second.size()) return v;
  } catch (const std::exception&) {
  }
  throw Error(
      fmt::format("{}: metadata '{}' is not a number: '{}'", path.string(), key, it->second));
}

}  // namespace

ModelFile load_model_file(const fs::path& path, std::optional<Arch> arch, int num_classes) {
  const io::SafetensorsFile file = io::read_safetensors(path);
  ModelFile m;
  const auto recorded = file.metadata.find("octa.arch");
  m.octa_metadata = recorded != file.metadata.end();
  if (arch) {
    m.arch = *arch;  // load_weights checks it against the file's own record, if any
  } else if (m.octa_metadata) {
    m.arch = parse_arch(recorded->second);
  } else {
    m.arch = file.find("bn1.weight") != nullptr ? Arch::kB : Arch::kA;
  }
  m.state = load_weights(path, ParamTable::for_arch(m.arch, num_classes));
  m.target_digit = metadata_int(file, path, "octa.target_digit");
  if (m.target_digit) {
    OCTA_CHECK(*m.target_digit >= 0 && *m.target_digit <= 9,
               "{}: metadata octa.target_digit is {}, not a digit", path.string(), *m.target_digit);
  }
  m.epochs_done = metadata_int(file, path, "octa.epochs_done");
  return m;
}

std::unique_ptr<TrainingBackend> make_inference_backend(const std::string& device, Arch arch,
                                                        int max_batch, int num_classes) {
  OCTA_CHECK(device == "auto" || device == "cuda" || device == "cpu",
             "--device: '{}' (use auto, cuda or cpu)", device);
  BackendConfig config;
  config.arch = arch;
  config.max_batch = std::max(1, max_batch);
  config.num_classes = num_classes;
  if (device != "cpu") {
    const DeviceProbe probe = probe_cuda_device();  // loads the GPU module where it may be used
    if (probe.available) return make_gpu_backend(config, GpuBackendRequest{});
    OCTA_CHECK(device != "cuda", "--device cuda: {}", probe.reason);
    spdlog::warn("No GPU: {}. Predicting on the CPU instead (see --device).", probe.reason);
  }
  // The fast CPU backend, as train_gpu --device cpu evaluates with (so a re-evaluation gives the
  // figures a CPU run wrote), its activations for pieces of at most 64 images.
  config.train_batch = std::min(config.max_batch, 64);
  return make_fast_cpu_backend(config);
}

std::vector<float> predict_logits(TrainingBackend& backend, std::span<const std::uint8_t> images,
                                  int count, int batch_size) {
  constexpr std::size_t kPixels = static_cast<std::size_t>(kImageSize) * kImageSize;
  OCTA_CHECK(count >= 0 && images.size() == static_cast<std::size_t>(count) * kPixels,
             "predict_logits: {} bytes for {} images of 28x28", images.size(), count);
  OCTA_CHECK(batch_size > 0, "--batch-size: must be positive, got {}", batch_size);
  const std::array<float, 256> table = data::normalize_table();
  std::vector<float> logits(static_cast<std::size_t>(count));
  std::vector<float> x(static_cast<std::size_t>(std::min(batch_size, std::max(count, 1))) *
                       kPixels);
  for (int first = 0; first < count; first += batch_size) {
    const int n = std::min(batch_size, count - first);
    const std::uint8_t* src = images.data() + static_cast<std::size_t>(first) * kPixels;
    for (std::size_t i = 0; i < static_cast<std::size_t>(n) * kPixels; ++i) x[i] = table[src[i]];
    backend.predict(x.data(), n, logits.data() + first);
  }
  return logits;
}

}  // namespace octa::predict
