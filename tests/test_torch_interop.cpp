// tests/test_torch_interop.cpp: octa's safetensors load into the tutorial's PyTorch modules with
// load_state_dict(strict=True) and give the same eval-mode logits; a checkpoint of ten classes
// (fc2.weight [10, 128]) loads into the same modules with nn.Linear(128, 10) and reproduces octa's
// evaluation. Needs python3 with torch and safetensors (the GPU machine has them); skips with the
// reason elsewhere.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine/data/transform.hpp"
#include "engine/io/checkpoint.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/train/cpu_backend.hpp"
#include "engine/train/trainer.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/synthetic.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/torch_check.hpp"

TEST_CASE("Weights saved by octa load into the PyTorch modules and predict the same",
          "[cpu][interop][torch]") {
  if (!octa::test::torch_available()) {
    OCTA_SKIP("python3 with torch and safetensors is not available here");
  }
  octa::test::TempDir dir("torch");
  for (const octa::Arch arch : {octa::Arch::kA, octa::Arch::kB}) {
    INFO("model " << octa::arch_name(arch));
    // A few real training steps, so BatchNorm's running statistics are not at their initial values.
    octa::BackendConfig bc;
    bc.arch = arch;
    bc.max_batch = 32;
    auto backend = octa::make_cpu_backend(bc);
    octa::TrainOptions to;
    to.epochs = 1;
    to.batch_size = 32;
    to.test_batch_size = 32;
    octa::train(*backend, octa::test::synthetic_split(96, 1), octa::test::synthetic_split(32, 2),
                to);
    const octa::ParamTable& table = backend->table();
    const auto weights = dir / fmt::format("model_{}.safetensors", octa::arch_name(arch));
    octa::save_weights(weights, table, backend->model_state());
    const octa::test::CommandResult py = octa::test::check_in_torch(
        arch == octa::Arch::kA ? "a" : "b", weights, *backend, dir / "case.safetensors");
    INFO(py.output);
    CHECK(py.exit_code == 0);
  }
}

TEST_CASE(
    "A checkpoint of ten classes loads into the PyTorch modules with nn.Linear(128, 10) and "
    "reproduces octa's evaluation",
    "[cpu][interop][torch][multiclass]") {
  if (!octa::test::torch_available()) {
    OCTA_SKIP("python3 with torch and safetensors is not available here");
  }
  octa::test::TempDir dir("torch10");
  const std::string script = std::string(OCTA_SOURCE_DIR) + "/tests/python/check_torch_load.py";
  constexpr int kClasses = 10;
  for (const octa::Arch arch : {octa::Arch::kA, octa::Arch::kB}) {
    INFO("model " << octa::arch_name(arch));
    // One epoch of real steps, written as train_gpu --task multiclass writes its checkpoint.
    octa::BackendConfig bc;
    bc.arch = arch;
    bc.max_batch = 50;
    bc.num_classes = kClasses;
    auto backend = octa::make_cpu_backend(bc);
    octa::TrainOptions to;
    to.epochs = 1;
    to.batch_size = 32;
    to.test_batch_size = 50;
    to.target_digit = octa::data::kClassIndexTarget;
    to.checkpoint = dir / fmt::format("model_{}10.safetensors", octa::arch_name(arch));
    const auto test = octa::test::synthetic_split(200, 2);  // labels 0..9
    octa::train(*backend, octa::test::synthetic_split(96, 1), test, to);
    const auto file = octa::io::read_safetensors(to.checkpoint);
    REQUIRE(file.find("fc2.weight") != nullptr);
    CHECK(file.find("fc2.weight")->shape == std::vector<std::int64_t>{kClasses, 128});
    CHECK(file.metadata.at("octa.num_classes") == "10");

    // octa's evaluation of the test images, and the images as the model saw them.
    std::vector<float> logits;
    const octa::MulticlassMetrics m = octa::evaluate_classes(*backend, test, 50, {}, &logits);
    std::vector<float> x(test.pixels.size());
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = octa::data::normalize_pixel(test.pixels[i]);
    const std::vector<std::int64_t> labels(test.labels.begin(), test.labels.end());
    const std::vector<std::int64_t> confusion(m.confusion.begin(), m.confusion.end());
    const std::int64_t n = test.count;
    const auto write_case = [&](const std::filesystem::path& path,
                                const std::vector<std::int64_t>& counts) {
      octa::io::write_safetensors(
          path, {{"x", octa::io::DType::kF32, {n, 1, 28, 28}, x.data()},
                 {"logits", octa::io::DType::kF32, {n, kClasses}, logits.data()},
                 {"labels", octa::io::DType::kI64, {n}, labels.data()},
                 {"confusion", octa::io::DType::kI64, {kClasses, kClasses}, counts.data()},
                 {"accuracy", octa::io::DType::kF64, {1}, &m.accuracy},
                 {"mean_loss", octa::io::DType::kF64, {1}, &m.mean_loss}});
    };
    const auto cases = dir / "case10.safetensors";
    write_case(cases, confusion);
    const std::string cmd =
        fmt::format("python3 '{}' {} '{}' '{}'", script, arch == octa::Arch::kA ? "a" : "b",
                    to.checkpoint.string(), cases.string());
    CHECK(std::system(cmd.c_str()) == 0);
    if (arch == octa::Arch::kA) {
      // The script can fail: a confusion matrix with one image moved between two cells.
      std::vector<std::int64_t> moved = confusion;
      moved[0] -= 1;
      moved[1] += 1;
      const auto wrong = dir / "wrong10.safetensors";
      write_case(wrong, moved);
      const std::string bad =
          fmt::format("python3 '{}' a '{}' '{}'", script, to.checkpoint.string(), wrong.string());
      CHECK(std::system(bad.c_str()) != 0);
    }
  }
}
