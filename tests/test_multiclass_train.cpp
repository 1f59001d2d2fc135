// tests/test_multiclass_train.cpp: the K-class task end to end on the CPU paths: the fast backend
// against the reference with ten classes (steps, losses, weights, evaluation), a synthetic
// three-class IDX dataset that the test writes, loads as --dataset idx would and trains to
// near-perfect accuracy, checkpoints of K classes (metadata, and the clear error for a checkpoint
// of the other task or another K), and the real MNIST and Fashion-MNIST with ten classes, each
// clearly above chance after a short run (skipped where the data is absent).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/core/philox.hpp"
#include "engine/data/datasets.hpp"
#include "engine/data/mnist.hpp"
#include "engine/data/transform.hpp"
#include "engine/io/checkpoint.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/train/cpu_backend.hpp"
#include "engine/train/fast_cpu_backend.hpp"
#include "engine/train/trainer.hpp"
#include "tests/support/compare.hpp"
#include "tests/support/compare_states.hpp"
#include "tests/support/files.hpp"
#include "tests/support/idx_files.hpp"
#include "tests/support/real_data.hpp"
#include "tests/support/run_steps.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/synthetic.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/three_classes.hpp"

namespace {

namespace fs = std::filesystem;
using Catch::Contains;
using octa::Arch;
namespace tol = octa::test::tol;

octa::BackendConfig config(Arch arch, int batch, int classes) {
  octa::BackendConfig c;
  c.arch = arch;
  c.max_batch = 100;
  c.train_batch = batch;
  c.seed = 9;
  c.num_classes = classes;
  return c;
}

octa::data::FindOptions offline() {
  octa::data::FindOptions o;
  o.allow_download = false;
  return o;
}

// A short run of K classes on the fast backend; the final test metrics.
octa::MulticlassMetrics train_classes(const octa::data::Dataset& d, Arch arch, int epochs,
                                      int max_train, int max_test, double lr = 1e-3) {
  octa::BackendConfig bc = config(arch, 64, d.num_classes);
  bc.max_batch = 1000;
  bc.optimizer.lr = lr;
  auto backend = octa::make_fast_cpu_backend(bc);
  octa::TrainOptions to;
  to.epochs = epochs;
  to.batch_size = 64;
  to.seed = 4;
  to.target_digit = octa::data::kClassIndexTarget;
  to.class_names = d.class_names;
  const auto train = octa::data::take_first(d.train, static_cast<std::size_t>(max_train));
  const auto test = octa::data::take_first(d.test, static_cast<std::size_t>(max_test));
  return octa::train(*backend, train, test, to).test_classes;
}

}  // namespace

// Model A with Adam, model B with SGD and momentum: Adam's first steps move every weight by about
// lr times the sign of its gradient, and among model B's weights of ten weighted classes a few
// have gradients near zero whose sign the two backends' summation orders can flip (single-step
// gradients agree, test_cpu_fast), which leaves lr-sized differences that compare nothing.
TEST_CASE("Ten classes: twenty steps on the fast backend match the reference backend",
          "[cpu][fast][multiclass]") {
  for (const Arch arch : {Arch::kA, Arch::kB}) {
    const int batch = arch == Arch::kA ? 64 : 37;
    const int steps = 20;
    INFO("model " << octa::arch_name(arch) << ", batch " << batch);
    const auto split = octa::test::synthetic_split(3 * batch + 5, 31);  // labels 0..9
    auto cfg = config(arch, batch, 10);
    if (arch == Arch::kB) {
      cfg.optimizer.kind = octa::OptimizerKind::kSgd;
      cfg.optimizer.lr = 0.05;
      cfg.optimizer.momentum = 0.9;
    }
    cfg.label_smoothing = 0.05f;
    for (int c = 0; c < 10; ++c) cfg.class_weights.push_back(0.5f + 0.1f * static_cast<float>(c));
    auto ref = octa::make_cpu_backend(cfg);
    auto fst = octa::make_fast_cpu_backend(cfg);
    REQUIRE(ref->table().num_classes() == 10);
    const auto l_ref =
        octa::test::run_steps(*ref, split, batch, steps, octa::data::kClassIndexTarget);
    const auto l_fast =
        octa::test::run_steps(*fst, split, batch, steps, octa::data::kClassIndexTarget);
    // Cross-entropy of ten classes from random weights starts near log(10).
    CHECK(l_ref.front() > 1.5);
    CHECK(l_ref.front() < 3.5);
    OCTA_CHECK_CLOSE("losses", l_fast.data(), l_ref.data(), l_ref.size(), tol::kGpuStepVsCpu);
    octa::test::check_states_close(ref->table(), fst->model_state(), ref->model_state(), 9,
                                   arch == Arch::kA ? steps : 0, 1e-3, tol::kGpuStepVsCpu);
    // Evaluation of more images than the activations hold, (100, 10) logits, from the same state
    // (the reference's, loaded into the fast backend: model B's eval mode divides by running
    // variances that the steps' small differences move).
    fst->load(ref->model_state(), nullptr);
    const auto x = octa::test::synthetic_split(100, 41);
    std::vector<float> images(100 * 784);
    for (std::size_t i = 0; i < images.size(); ++i) {
      images[i] = octa::data::normalize_pixel(x.pixels[i]);
    }
    std::vector<float> z_ref(1000, NAN), z_fast(1000, NAN);
    ref->predict(images.data(), 100, z_ref.data());
    fst->predict(images.data(), 100, z_fast.data());
    OCTA_CHECK_CLOSE("eval logits, 100 images x 10 classes", z_fast.data(), z_ref.data(), 1000,
                     tol::kGpuStepVsCpu);
  }
}

TEST_CASE("A synthetic three-class IDX dataset trains to near-perfect accuracy on the CPU path",
          "[cpu][train][multiclass]") {
  octa::test::TempDir dir("shapes");
  octa::test::write_three_classes(dir.path(), 900, 300);
  const octa::data::Dataset d =
      octa::data::load_dataset(octa::data::kIdxDataset, dir.path(), offline());
  REQUIRE(d.num_classes == 3);
  CHECK(d.class_names == std::vector<std::string>{"0", "1", "2"});
  for (const Arch arch : {Arch::kA, Arch::kB}) {
    INFO("model " << octa::arch_name(arch));
    const auto m =
        train_classes(d, arch, arch == Arch::kA ? 2 : 3, 900, 300, arch == Arch::kA ? 1e-3 : 1e-2);
    CHECK(m.num_classes == 3);
    CHECK(m.count == 300);
    CHECK(m.accuracy >= 0.98);
    CHECK(m.macro_f1 >= 0.98);
    std::int64_t total = 0;
    for (const auto v : m.confusion) total += v;
    CHECK(total == 300);
  }
}

TEST_CASE("A checkpoint of K classes records its task, and the other task's checkpoint is refused",
          "[cpu][checkpoint][multiclass]") {
  octa::test::TempDir dir("mcck");
  const octa::ParamTable binary = octa::ParamTable::for_arch(Arch::kA);
  const octa::ParamTable ten = octa::ParamTable::for_arch(Arch::kA, 10);
  const octa::ParamTable three = octa::ParamTable::for_arch(Arch::kA, 3);
  const auto state_of = [](const octa::ParamTable& t) {
    octa::ModelState m;
    m.values.resize(t.num_total());
    octa::init_parameters(t, m.values.data(), 5);
    return m;
  };
  octa::TrainingState ts;
  ts.run_id = "r";
  ts.optimizer_state.m.assign(ten.num_trainable(), 0.0f);
  ts.optimizer_state.v.assign(ten.num_trainable(), 0.0f);
  const octa::ModelState m10 = state_of(ten);
  octa::save_checkpoint(dir / "ten.safetensors", ten, m10, ts);
  const auto file = octa::io::read_safetensors(dir / "ten.safetensors");
  REQUIRE(file.find("fc2.weight") != nullptr);
  CHECK(file.find("fc2.weight")->shape == std::vector<std::int64_t>{10, 128});
  CHECK(file.find("fc2.bias")->shape == std::vector<std::int64_t>{10});
  CHECK(file.metadata.at("octa.task") == "multiclass");
  CHECK(file.metadata.at("octa.num_classes") == "10");
  const octa::Checkpoint back = octa::load_checkpoint(dir / "ten.safetensors", ten);
  CHECK(back.model.values == m10.values);
  CHECK_FALSE(back.training.target_digit.has_value());

  CHECK_THROWS_WITH(octa::load_checkpoint(dir / "ten.safetensors", binary),
                    Contains("ten.safetensors") &&
                        Contains("holds a multi-class model of 10 classes") &&
                        Contains("needs a binary model") && Contains("--task binary"));
  CHECK_THROWS_WITH(octa::load_weights(dir / "ten.safetensors", three),
                    Contains("10 classes") && Contains("3 classes"));

  octa::save_weights(dir / "binary.safetensors", binary, state_of(binary));
  CHECK(octa::io::read_safetensors(dir / "binary.safetensors").metadata.at("octa.task") ==
        "binary");
  CHECK_THROWS_WITH(octa::load_weights(dir / "binary.safetensors", ten),
                    Contains("holds a binary model (one output, fc2.weight [1, 128])") &&
                        Contains("--task multiclass"));
}

TEST_CASE("The loss settings are checked, naming the flag", "[cpu][multiclass]") {
  auto c = config(Arch::kA, 8, 10);
  c.label_smoothing = 1.5f;
  CHECK_THROWS_WITH(octa::make_cpu_backend(c), Contains("--label-smoothing"));
  c.label_smoothing = 0.0f;
  c.class_weights = {1.0f, 2.0f};
  CHECK_THROWS_WITH(octa::make_fast_cpu_backend(c),
                    Contains("--class-weights: 2 weights for 10 classes"));
  c.class_weights.assign(10, 1.0f);
  c.class_weights[4] = -1.0f;
  CHECK_THROWS_WITH(octa::make_cpu_backend(c), Contains("class 4"));
  auto b = config(Arch::kA, 8, 1);
  b.label_smoothing = 0.1f;
  CHECK_THROWS_WITH(octa::make_cpu_backend(b), Contains("--task multiclass"));
}

TEST_CASE("The trainer refuses a target that does not fit the model's outputs",
          "[cpu][train][multiclass]") {
  auto backend = octa::make_fast_cpu_backend(config(Arch::kA, 8, 10));
  const auto split = octa::test::synthetic_split(16, 3);
  octa::TrainOptions to;
  to.epochs = 1;
  to.batch_size = 8;
  to.target_digit = 8;  // a binary target for a model of ten outputs
  CHECK_THROWS_WITH(octa::train(*backend, split, split, to), Contains("10 outputs"));
  CHECK_THROWS_WITH(octa::evaluate(*backend, split, 8, 8), Contains("evaluate_classes"));
}

TEST_CASE("Real MNIST, ten classes: well above chance after a short run on the CPU path",
          "[cpu][train][multiclass][real]") {
  const auto dir = octa::test::real_mnist_dir();
  if (!dir) OCTA_SKIP(octa::test::real_mnist_missing_reason());
  const octa::data::Dataset d = octa::data::load_dataset(octa::data::kMnist, *dir, offline());
  REQUIRE(d.num_classes == 10);
  const auto m = train_classes(d, Arch::kA, 1, 3000, 1000);
  INFO(octa::format_report(m));
  CHECK(m.accuracy > 0.75);  // chance 0.1, the majority class about 0.13; seen: 0.835
  CHECK(m.accuracy > m.baseline_accuracy + 0.5);
  CHECK(m.top2_accuracy >= m.accuracy);
}

TEST_CASE("Real Fashion-MNIST, ten classes: well above chance after a short run on the CPU path",
          "[cpu][train][multiclass][real]") {
  const auto dir = octa::test::real_fashion_mnist_dir();
  if (!dir) OCTA_SKIP(octa::test::real_fashion_mnist_missing_reason());
  const octa::data::Dataset d =
      octa::data::load_dataset(octa::data::kFashionMnist, *dir, offline());
  REQUIRE(d.num_classes == 10);
  CHECK(d.class_names.at(8) == "Bag");
  const auto m = train_classes(d, Arch::kA, 1, 3000, 1000);
  INFO(octa::format_report(m));
  CHECK(m.accuracy > 0.6);                // chance: 0.1
  CHECK(m.per_class.at(1).recall > 0.8);  // trousers are the easy class
  CHECK(m.class_names.at(9) == "Ankle boot");
}
