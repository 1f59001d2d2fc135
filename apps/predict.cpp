// apps/predict.cpp: ask a trained model "is it an 8?" (or, for a model of K classes, "which digit
// is it?") about a person's own digits: PNG and JPEG files, folders of them, and MNIST's IDX files.
// Images are preprocessed as MNIST was made (or taken as they are with --raw); bad inputs are
// reported by name and the rest still answered.
//
// Exit status: 0 all inputs answered; 2 some inputs failed (each named on stderr and in --json),
// the others answered; 1 nothing could be done (bad flags, unreadable model, no GPU for --device
// cuda).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "engine/core/atomic_file.hpp"
#include "engine/core/error.hpp"
#include "engine/core/log.hpp"
#include "engine/cpu/blas.hpp"
#include "engine/io/output_guard.hpp"
#include "engine/predict/image.hpp"
#include "engine/predict/inference.hpp"
#include "engine/predict/inputs.hpp"
#include "engine/predict/mnist_style.hpp"
#include "engine/predict/results.hpp"
#include "engine/train/cpu_backend.hpp"

namespace {

namespace fs = std::filesystem;

constexpr int kSomeFailed = 2;

struct Args {
  std::vector<std::string> inputs;
  std::string weights = "runs/model_a.safetensors";
  std::string model = "auto";
  double threshold = 0.5;
  bool threshold_given = false;
  std::optional<int> target_digit;
  std::string json;
  bool raw = false;
  std::string save_preprocessed;
  std::string device = "auto";
  int batch_size = 1000;
  int threads = 0;
  bool quiet = false;
  bool overwrite = false;
  std::string log_level = "warn";
};

const char* kExamples = R"(
Examples:
  predict my_digit.png                           is it an 8? (runs/model_a.safetensors)
  predict --weights runs/ten.safetensors my_digit.png
                                                 which digit is it? (a model trained with
                                                 train_gpu --task multiclass: the most
                                                 probable class and the runner-up)
  predict --weights runs/model_b.safetensors scans/
                                                 every .png/.jpg/.jpeg in scans/
  predict photo.jpg --save-preprocessed seen/    also write the 28x28 image the model saw
  predict data/MNIST/raw/t10k-images-idx3-ubyte.gz --quiet --json t10k.json
                                                 MNIST's own test images (labels beside them
                                                 give an accuracy)
  predict --raw mnist_style_28x28.png            already MNIST-style: skip the preprocessing
  predict --weights pytorch_model.safetensors --model b --device cpu digit.png
                                                 weights saved by PyTorch (safetensors.torch
                                                 .save_file(model.state_dict(), ...))
Preprocessing (without --raw), as MNIST was made: grayscale; dark ink on light paper is inverted
(read from the image's border); cropped to the ink; the longer side scaled to 20 px keeping the
aspect ratio (area-averaged); centred by its centre of mass in a 28x28 field.
Images larger than 50 megapixels or 256 MiB, 16-bit PNGs and CMYK JPEGs are refused.
Exit status: 0 all answered, 2 some inputs failed (the rest answered), 1 error.
)";

std::string safe_file_name(const std::string& name) {
  std::string s = fs::path(name).filename().string();
  for (char& c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) c = '_';
  }
  return s;
}

int run(const Args& a) {
  // Never replace a file octa did not write (engine/io/output_guard.hpp), checked before any work.
  if (!a.json.empty())
    octa::check_output_path(a.json, octa::OutputKind::kJson, "--json", a.overwrite);
  OCTA_CHECK(a.threshold > 0.0 && a.threshold < 1.0,
             "--threshold: {} is not a probability strictly between 0 and 1", a.threshold);
  OCTA_CHECK(a.batch_size > 0, "--batch-size: must be positive, got {}", a.batch_size);
  if (a.threads > 0) octa::set_cpu_threads(a.threads);

  // --- the model --------------------------------------------------------------------------------
  std::optional<octa::Arch> arch;
  if (a.model != "auto") arch = octa::parse_arch(a.model);
  const octa::predict::ModelFile model = octa::predict::load_model_file(a.weights, arch);
  const bool multiclass = model.num_classes > 1;
  for (const auto& [given, flag] : {std::pair{a.target_digit.has_value(), "--target-digit"},
                                    {a.threshold_given, "--threshold"}}) {
    OCTA_CHECK(!multiclass || !given,
               "{}: the model in {} answers {} classes (the most probable one), not one class "
               "against the rest",
               flag, a.weights, model.num_classes);
  }
  int digit = model.target_digit.value_or(8);
  if (a.target_digit) {
    const int classes = model.class_names.empty() ? 10 : static_cast<int>(model.class_names.size());
    OCTA_CHECK(*a.target_digit >= 0 && *a.target_digit < classes,
               "--target-digit: must be 0..{}, got {}", classes - 1, *a.target_digit);
    OCTA_CHECK(!model.target_digit || *model.target_digit == *a.target_digit,
               "--target-digit {}: the model in {} was trained to recognise {}", *a.target_digit,
               a.weights,
               model.class_names.empty()
                   ? fmt::format("the digit {}", *model.target_digit)
                   : fmt::format("class {} ({})", *model.target_digit,
                                 model.class_names[static_cast<std::size_t>(*model.target_digit)]));
    digit = *a.target_digit;
  }

  // --- the inputs -------------------------------------------------------------------------------
  octa::predict::InputOptions io;
  io.raw = a.raw;
  std::vector<fs::path> paths(a.inputs.begin(), a.inputs.end());
  octa::predict::PredictRun result;
  result.inputs = octa::predict::gather_inputs(paths, io);
  result.num_classes = model.num_classes;
  result.class_names = model.class_names;
  result.threshold = a.threshold;
  result.target_digit = digit;
  result.raw = a.raw;
  result.model = fmt::format("model {} from {}", octa::arch_name(model.arch), a.weights);

  // --- predict ----------------------------------------------------------------------------------
  std::vector<std::uint8_t> images;
  std::vector<std::size_t> which;
  for (std::size_t i = 0; i < result.inputs.size(); ++i) {
    if (!result.inputs[i].ok()) continue;
    images.insert(images.end(), result.inputs[i].pixels.begin(), result.inputs[i].pixels.end());
    which.push_back(i);
  }
  const auto K = static_cast<std::size_t>(model.num_classes);
  result.logits.assign(result.inputs.size() * K, 0.0f);
  if (!which.empty()) {
    const int count = static_cast<int>(which.size());
    const int batch = std::min(a.batch_size, count);
    auto backend =
        octa::predict::make_inference_backend(a.device, model.arch, batch, model.num_classes);
    backend->load(model.state, nullptr);
    result.device = backend->description();
    const std::vector<float> logits = octa::predict::predict_logits(*backend, images, count, batch);
    for (std::size_t k = 0; k < which.size(); ++k) {
      std::copy_n(logits.begin() + static_cast<std::ptrdiff_t>(k * K), K,
                  result.logits.begin() + static_cast<std::ptrdiff_t>(which[k] * K));
    }
  } else {
    result.device = "none (no input could be read)";
  }

  // --- what the model saw, the answers ----------------------------------------------------------
  result.saved.assign(result.inputs.size(), "");
  if (!a.save_preprocessed.empty()) {
    for (std::size_t i = 0; i < result.inputs.size(); ++i) {
      const octa::predict::PredictInput& in = result.inputs[i];
      if (!in.ok()) continue;
      std::string base = safe_file_name(in.name);
      const auto hash = in.name.rfind('#');
      if (in.kind == octa::predict::InputKind::kIdx && hash != std::string::npos) {
        base = safe_file_name(in.name.substr(0, hash)) + "-" + in.name.substr(hash + 1);
      }
      const fs::path out = fs::path(a.save_preprocessed) / fmt::format("{:05d}-{}.png", i, base);
      octa::predict::write_png(
          out, {octa::predict::kDigitSide, octa::predict::kDigitSide, 1, in.pixels});
      result.saved[i] = out.string();
    }
  }
  const std::string table = octa::predict::format_table(result);
  if (a.quiet) {
    // Errors and the summary line only.
    const auto last = table.rfind('\n', table.size() - 2);
    std::string tail = table.substr(last == std::string::npos ? 0 : last + 1);
    for (const auto& in : result.inputs) {
      if (!in.ok()) std::fprintf(stderr, "predict: error: %s\n", in.error.c_str());
    }
    std::fputs(tail.c_str(), stdout);
  } else {
    std::fputs(table.c_str(), stdout);
    for (const auto& in : result.inputs) {
      if (!in.ok()) std::fprintf(stderr, "predict: error: %s\n", in.error.c_str());
    }
  }
  if (!a.json.empty()) {
    nlohmann::json j = octa::predict::to_json(result);
    octa::mark_octa_json(j, "predict-1");
    octa::write_file_atomically(a.json, j.dump(2) + "\n");
  }
  return result.failed() > 0 ? kSomeFailed : 0;
}

}  // namespace

int main(int argc, char** argv) {
  octa::cpu::reexec_with_tuned_blas(argv);
  Args a;
  CLI::App app{
      "predict: ask a model trained by octa's train_gpu (or by PyTorch, saved as safetensors) "
      "\"is it an 8?\" about images: the probability, sigmoid(logit), and a verdict at a "
      "threshold; or, for a model of K classes (train_gpu --task multiclass), the most probable "
      "class, softmax(logits), and the runner-up."};
  app.footer(kExamples);
  app.get_formatter()->column_width(34);
  app.add_option("inputs", a.inputs,
                 "PNG or JPEG files (gray, RGB or RGBA, 8-bit), folders of them, IDX image files")
      ->required();
  app.add_option("--weights", a.weights,
                 "Weights: an octa checkpoint or a PyTorch state_dict in safetensors")
      ->capture_default_str();
  app.add_option("--model", a.model, "auto (from the file), a or b")
      ->check(CLI::IsMember({"auto", "a", "b", "A", "B"}))
      ->capture_default_str();
  app.add_option("--threshold", a.threshold,
                 "Binary models: \"yes\" when the probability is above this")
      ->capture_default_str();
  app.add_option(
      "--target-digit", a.target_digit,
      "Binary models: the digit the model recognises [as recorded in the checkpoint, else 8]");
  app.add_option("--json", a.json, "Also write every answer (and every error) as JSON here");
  app.add_flag("--raw", a.raw,
               "Inputs are already 28x28 MNIST-style (light digit on black): no preprocessing");
  app.add_option("--save-preprocessed", a.save_preprocessed,
                 "Write each 28x28 image the model saw, as PNG, into this folder");
  app.add_option("--device", a.device, "auto (GPU if usable, else CPU), cuda or cpu")
      ->check(CLI::IsMember({"auto", "cuda", "cpu"}))
      ->capture_default_str();
  app.add_option("--batch-size", a.batch_size, "Images per forward pass")->capture_default_str();
  app.add_option("--threads", a.threads, "CPU threads for the CPU path (0: all cores)");
  app.add_flag("--quiet", a.quiet, "Print errors and the summary line only");
  app.add_flag("--overwrite", a.overwrite,
               "Let --json replace an existing file that octa did not write");
  app.add_option("--log-level", a.log_level, "trace, debug, info, warn, error, critical or off")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  a.threshold_given = app.count("--threshold") > 0;

  try {
    octa::init_logging(octa::parse_log_level(a.log_level));
    return run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "predict: error: %s\n", e.what());
    return 1;
  }
}
