// engine/predict/inference.cpp: weights file -> model -> backend -> logits.
#include "engine/predict/inference.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

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

// fc2's outputs: octa's record, else fc2.weight's rows (load_weights checks the rest).
int classes_in(const io::SafetensorsFile& file, const fs::path& path) {
  if (const std::optional<int> k = metadata_int(file, path, "octa.num_classes")) {
    OCTA_CHECK(*k >= 1 && *k <= 256, "{}: metadata octa.num_classes is {}, not 1 to 256",
               path.string(), *k);
    return *k;
  }
  const io::Tensor* fc2 = file.find("fc2.weight");
  if (fc2 == nullptr || fc2->shape.size() != 2 || fc2->shape[0] < 1 || fc2->shape[0] > 256) {
    return 1;  // load_weights names what is wrong with it
  }
  return static_cast<int>(fc2->shape[0]);
}

std::vector<std::string> class_names_in(const io::SafetensorsFile& file, const fs::path& path,
                                        int num_classes) {
  const auto it = file.metadata.find("octa.class_names");
  if (it == file.metadata.end()) return {};
  const nlohmann::json names = nlohmann::json::parse(it->second, nullptr, false);
  OCTA_CHECK(names.is_array() && std::all_of(names.begin(), names.end(),
                                             [](const auto& n) { return n.is_string(); }),
             "{}: metadata octa.class_names is not a JSON array of names: '{}'", path.string(),
             it->second);
  // A binary model records its dataset's names too (its class is one of them).
  OCTA_CHECK(num_classes == 1 || names.size() == static_cast<std::size_t>(num_classes),
             "{}: metadata octa.class_names has {} names for {} classes", path.string(),
             names.size(), num_classes);
  return names.get<std::vector<std::string>>();
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
  m.num_classes = num_classes > 0 ? num_classes : classes_in(file, path);
  m.state = load_weights(path, ParamTable::for_arch(m.arch, m.num_classes));
  m.class_names = class_names_in(file, path, m.num_classes);
  m.target_digit = metadata_int(file, path, "octa.target_digit");
  if (m.target_digit) {
    // Labels are bytes: an IDX dataset without names may have up to 256 classes.
    const int classes = m.class_names.empty() ? 256 : static_cast<int>(m.class_names.size());
    OCTA_CHECK(*m.target_digit >= 0 && *m.target_digit < classes,
               "{}: metadata octa.target_digit is {}, not a class of {}", path.string(),
               *m.target_digit, classes);
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
  const auto classes = static_cast<std::size_t>(backend.table().num_classes());
  std::vector<float> logits(static_cast<std::size_t>(count) * classes);
  std::vector<float> x(static_cast<std::size_t>(std::min(batch_size, std::max(count, 1))) *
                       kPixels);
  for (int first = 0; first < count; first += batch_size) {
    const int n = std::min(batch_size, count - first);
    const std::uint8_t* src = images.data() + static_cast<std::size_t>(first) * kPixels;
    for (std::size_t i = 0; i < static_cast<std::size_t>(n) * kPixels; ++i) x[i] = table[src[i]];
    backend.predict(x.data(), n, logits.data() + static_cast<std::size_t>(first) * classes);
  }
  return logits;
}

}  // namespace octa::predict
