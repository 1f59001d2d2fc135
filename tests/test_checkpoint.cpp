// tests/test_checkpoint.cpp: weights and training state through safetensors: bit-identical round
// trips, strict loading with clear errors, and a resumed run identical to an uninterrupted one.
#include <catch2/catch.hpp>

#include <filesystem>

#include "engine/core/error.hpp"
#include "engine/io/checkpoint.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/train/cpu_backend.hpp"
#include "engine/train/trainer.hpp"
#include "tests/support/synthetic.hpp"
#include "tests/support/temp_dir.hpp"

using octa::test::TempDir;

namespace fs = std::filesystem;
using octa::Arch;
using octa::ParamTable;

namespace {

octa::BackendConfig small_config(Arch arch) {
  octa::BackendConfig c;
  c.arch = arch;
  c.max_batch = 50;  // the test batch
  c.seed = 11;
  return c;
}

octa::TrainOptions small_options(int epochs) {
  octa::TrainOptions o;
  o.epochs = epochs;
  o.batch_size = 32;
  o.test_batch_size = 50;
  o.seed = 11;
  o.run_id = "test-run";
  return o;
}

}  // namespace

TEST_CASE("Weights round-trip bit for bit, with PyTorch's names and num_batches_tracked",
          "[cpu][checkpoint]") {
  TempDir dir("ckpt");
  for (const Arch arch : {Arch::kA, Arch::kB}) {
    const ParamTable t = ParamTable::for_arch(arch);
    octa::ModelState m;
    m.values.resize(t.num_total());
    octa::init_parameters(t, m.values.data(), 5);
    m.values[t.num_total() - 1] = 0.123f;  // a running_var (B) or fc2.bias (A) that init won't give
    m.num_batches_tracked = 937;
    const fs::path p = dir.path() / "w.safetensors";
    octa::save_weights(p, t, m);
    const octa::ModelState back = octa::load_weights(p, t);
    CHECK(back.values == m.values);
    const auto file = octa::io::read_safetensors(p);
    CHECK(file.metadata.at("format") == "pt");
    if (arch == Arch::kB) {
      CHECK(back.num_batches_tracked == 937);
      const auto* nbt = file.find("bn2.num_batches_tracked");
      REQUIRE(nbt);
      CHECK(nbt->dtype == octa::io::DType::kI64);
      CHECK(nbt->shape.empty());
    } else {
      CHECK(file.tensors.size() == 8);
    }
  }
}

TEST_CASE("Loading checks model, names, shapes and dtypes, naming the file and tensor",
          "[cpu][checkpoint]") {
  TempDir dir("ckpt");
  const ParamTable a = ParamTable::for_arch(Arch::kA), b = ParamTable::for_arch(Arch::kB);
  octa::ModelState m;
  m.values.resize(a.num_total());
  octa::init_parameters(a, m.values.data(), 5);
  const fs::path p = dir.path() / "a.safetensors";
  octa::save_weights(p, a, m);
  CHECK_THROWS_WITH(octa::load_weights(p, b),
                    Catch::Contains("a.safetensors") && Catch::Contains("model A"));

  // A file with a tensor of the wrong shape, one with a wrong dtype, one missing a tensor, and one
  // with an extra tensor, as a PyTorch user might produce by mistake.
  std::vector<float> small(10, 1.0f);
  std::vector<double> dbl(a.at("fc2.bias").numel, 1.0);
  const auto write_variant = [&](const std::string& name, const std::string& skip,
                                 const octa::io::TensorRef* replace, bool extra) {
    std::vector<octa::io::TensorRef> ts;
    for (const auto& e : a.entries()) {
      if (e.name == skip) continue;
      if (replace && replace->name == e.name) {
        ts.push_back(*replace);
      } else {
        ts.push_back({e.name, octa::io::DType::kF32, e.shape, m.values.data() + e.offset});
      }
    }
    if (extra) ts.push_back({"fc3.weight", octa::io::DType::kF32, {10}, small.data()});
    octa::io::write_safetensors(dir.path() / name, ts);
    return dir.path() / name;
  };
  const octa::io::TensorRef bad_shape{"conv1.bias", octa::io::DType::kF32, {10}, small.data()};
  CHECK_THROWS_WITH(octa::load_weights(write_variant("s.safetensors", "", &bad_shape, false), a),
                    Catch::Contains("conv1.bias") && Catch::Contains("shape [10]"));
  const octa::io::TensorRef bad_dtype{"fc2.bias", octa::io::DType::kF64, {1}, dbl.data()};
  CHECK_THROWS_WITH(octa::load_weights(write_variant("d.safetensors", "", &bad_dtype, false), a),
                    Catch::Contains("fc2.bias") && Catch::Contains("F64"));
  CHECK_THROWS_WITH(
      octa::load_weights(write_variant("m.safetensors", "fc1.weight", nullptr, false), a),
      Catch::Contains("missing tensor 'fc1.weight'"));
  CHECK_THROWS_WITH(octa::load_weights(write_variant("x.safetensors", "", nullptr, true), a),
                    Catch::Contains("unexpected tensor 'fc3.weight'"));
  CHECK_THROWS_WITH(octa::load_weights(dir.path() / "absent.safetensors", a),
                    Catch::Contains("absent.safetensors"));
}

TEST_CASE("A resumed run matches an uninterrupted one bit for bit", "[cpu][checkpoint][resume]") {
  TempDir dir("ckpt");
  const auto train = octa::test::synthetic_split(200, 1);
  const auto test = octa::test::synthetic_split(50, 2);
  for (const Arch arch : {Arch::kA, Arch::kB}) {
    INFO("model " << octa::arch_name(arch));
    auto straight = octa::make_cpu_backend(small_config(arch));
    const auto full = octa::train(*straight, train, test, small_options(3));

    // Two epochs, checkpoint, then a fresh process-equivalent: new backend, load, one more epoch.
    auto first = octa::make_cpu_backend(small_config(arch));
    auto opts = small_options(2);
    opts.checkpoint = dir.path() / "run.safetensors";
    const auto part1 = octa::train(*first, train, test, opts);
    const ParamTable t = ParamTable::for_arch(arch);
    const octa::Checkpoint ck = octa::load_checkpoint(opts.checkpoint, t);
    CHECK(ck.training.epochs_done == 2);
    CHECK(ck.training.run_id == "test-run");
    CHECK(ck.training.optimizer_state.step == 2 * 7);  // 200 images / 32 = 7 batches per epoch
    auto second = octa::make_cpu_backend(small_config(arch));
    second->load(ck.model, &ck.training.optimizer_state);
    const auto part2 = octa::train(*second, train, test, small_options(3), ck.training.epochs_done);

    REQUIRE(part1.epochs.size() == 2);
    REQUIRE(part2.epochs.size() == 1);
    CHECK(part1.epochs[0].mean_loss == full.epochs[0].mean_loss);
    CHECK(part1.epochs[1].mean_loss == full.epochs[1].mean_loss);
    CHECK(part2.epochs[0].mean_loss == full.epochs[2].mean_loss);
    CHECK(second->model_state().values == straight->model_state().values);
    CHECK(second->model_state().num_batches_tracked == straight->model_state().num_batches_tracked);
    CHECK(second->optimizer_state().m == straight->optimizer_state().m);
  }
}

TEST_CASE("Resume refuses mismatched or incomplete checkpoints", "[cpu][checkpoint][resume]") {
  TempDir dir("ckpt");
  const ParamTable t = ParamTable::for_arch(Arch::kA);
  auto backend = octa::make_cpu_backend(small_config(Arch::kA));
  octa::TrainingState ts;
  ts.epochs_done = 1;
  ts.run_id = "r1";
  ts.optimizer_state = backend->optimizer_state();
  const fs::path p = dir.path() / "c.safetensors";
  octa::save_checkpoint(p, t, backend->model_state(), ts);
  CHECK(octa::optimizer_state_path(p) == dir.path() / "c.optim.safetensors");
  CHECK_NOTHROW(octa::load_checkpoint(p, t));

  // Weights from another epoch next to this optimiser state: an interrupted save.
  octa::save_weights(p, t, backend->model_state(),
                     {{"octa.run_id", "r1"}, {"octa.epochs_done", "2"}});
  CHECK_THROWS_WITH(octa::load_checkpoint(p, t), Catch::Contains("do not belong together"));
  // Weights only: cannot resume.
  fs::remove(octa::optimizer_state_path(p));
  CHECK_THROWS_WITH(octa::load_checkpoint(p, t),
                    Catch::Contains("optimiser state") && Catch::Contains("missing"));
}
