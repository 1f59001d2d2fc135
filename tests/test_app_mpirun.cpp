// tests/test_app_mpirun.cpp: train_gpu under mpirun on the CPU path (engine/dist/), on this small
// machine with --oversubscribe: N = 1, 2 and 3 ranks against one process with the same global
// batch (20 steps of model A: parameters within tol::kDataParallel, the loss curves too; one rank
// bit-identical), two runs with the same N bit-identical, --resume with another N, model B, a
// batch too small to share failing on every rank at once instead of hanging; model B with
// --sync-bn against one process the same way (and per-rank BatchNorm shown not to be), --sync-bn
// refused for model A; a 2-rank checkpoint loaded in PyTorch (skipped without python3's torch);
// [gpu] --sync-bn on 2 GPUs (NCCL) against one GPU process (skipped without 2 GPUs).
// Skips, saying why, where mpirun is absent or train_gpu was built without MPI.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/core/device_probe.hpp"
#include "engine/io/checkpoint.hpp"
#include "engine/train/cpu_backend.hpp"
#include "tests/support/compare_states.hpp"
#include "tests/support/real_data.hpp"
#include "tests/support/run_command.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/torch_check.hpp"

namespace {

namespace fs = std::filesystem;
using octa::test::CommandResult;
using octa::test::run_command;
using octa::test::shell_quoted;

constexpr std::uint64_t kSeed = 7;
constexpr int kSteps = 20;  // 1280 images in batches of 64
constexpr double kLr = 1e-3;

// Why these cases cannot run here, or empty.
std::string mpi_missing_reason() {
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0) {
    return "mpirun not found (Debian's openmpi-bin; scripts/setup.sh installs it)";
  }
  const CommandResult help = run_command(OCTA_TRAIN_GPU_EXE, "--help");
  if (help.output.find("MPI built in") == std::string::npos) {
    return "train_gpu was built without MPI (no libopenmpi-dev when CMake ran, "
           "-DOCTA_ENABLE_MPI=OFF, or a sanitizer build)";
  }
  return {};
}

// train_gpu on `ranks` MPI ranks (0: a plain run, no mpirun), one CPU thread each; a minute at
// most, so that a rank left waiting fails the test instead of hanging it.
CommandResult train(int ranks, const std::string& args) {
  const std::string exe = OCTA_TRAIN_GPU_EXE;
  if (ranks == 0) return run_command(exe, args);
  return run_command("timeout", fmt::format("60 mpirun --oversubscribe --allow-run-as-root --mca "
                                            "btl_vader_single_copy_mechanism none -np {} {} {}",
                                            ranks, shell_quoted(exe), args));
}

struct Run {
  octa::ModelState model;
  std::vector<double> losses;
  nlohmann::json metrics;
  std::string output;
};

// A 20-step run of model `model` on `ranks` ranks, its outputs under dir/name.*.
Run run_of(const fs::path& data, const fs::path& dir, const std::string& name, int ranks,
           const std::string& extra = "--epochs 1", const std::string& model = "a",
           const std::string& device = "cpu") {
  const fs::path ck = dir / (name + ".safetensors");
  const CommandResult r = train(
      ranks, fmt::format("--device {} --threads 1 --no-download --data-dir {} --model {} "
                         "--max-train 1280 --max-test 300 --batch-size 64 --seed {} --no-report "
                         "--checkpoint {} --export-losses {} --metrics-out {} {}",
                         device, shell_quoted(data), model, kSeed, shell_quoted(ck),
                         shell_quoted(dir / (name + ".losses.json")),
                         shell_quoted(dir / (name + ".metrics.json")), extra));
  INFO(name << ":\n" << r.output);
  REQUIRE(r.exit_code == 0);
  // Rank 0 alone reports (and writes).
  std::size_t reports = 0;
  for (auto at = r.output.find("confusion matrix"); at != std::string::npos;
       at = r.output.find("confusion matrix", at + 1)) {
    ++reports;
  }
  CHECK(reports == 1);
  Run out;
  out.output = r.output;
  out.model = octa::load_checkpoint(ck, octa::ParamTable::for_arch(octa::parse_arch(model))).model;
  std::ifstream losses(dir / (name + ".losses.json"));
  out.losses = nlohmann::json::parse(losses)["step_losses"].get<std::vector<double>>();
  std::ifstream metrics(dir / (name + ".metrics.json"));
  out.metrics = nlohmann::json::parse(metrics);
  CHECK(out.metrics["ranks"] == std::max(ranks, 1));
  return out;
}

// --sync-bn's runs: SGD with momentum, compared in full (adam_steps = 0): Adam would turn the
// rounding noise of gradients near zero into full-size steps (docs/SCALING.md), hiding what they
// compare.
constexpr const char* kSyncBnSgd = "--epochs 1 --optimizer sgd --lr 0.05 --momentum 0.9";

// A --sync-bn run against one process (SGD): the step losses and every parameter and running
// statistic within the tolerance.
void check_as_one_process(const octa::ParamTable& table, const Run& dp, const Run& plain) {
  REQUIRE(dp.losses.size() == kSteps);
  OCTA_CHECK_CLOSE("step losses", dp.losses.data(), plain.losses.data(), kSteps,
                   octa::tol::kDataParallel);
  octa::test::check_states_close(table, dp.model, plain.model, kSeed, /*adam_steps=*/0, 0.0,
                                 octa::tol::kDataParallel);
}

}  // namespace

TEST_CASE("train_gpu under mpirun with 1, 2 and 3 ranks trains as one process does",
          "[cpu][app][mpi][real]") {
  const auto data = octa::test::real_mnist_dir();
  if (!data) OCTA_SKIP(octa::test::real_mnist_missing_reason());
  if (const std::string why = mpi_missing_reason(); !why.empty()) OCTA_SKIP(why);
  octa::test::TempDir dir("mpirun");
  const octa::ParamTable table = octa::ParamTable::for_arch(octa::Arch::kA);
  const Run plain = run_of(*data, dir.path(), "plain", 0);
  REQUIRE(plain.losses.size() == kSteps);
  for (int ranks = 1; ranks <= 3; ++ranks) {
    INFO(ranks << " ranks");
    const Run dp = run_of(*data, dir.path(), fmt::format("np{}", ranks), ranks);
    REQUIRE(dp.losses.size() == kSteps);
    OCTA_CHECK_CLOSE("step losses", dp.losses.data(), plain.losses.data(), kSteps,
                     octa::tol::kDataParallel);
    octa::test::check_states_close(table, dp.model, plain.model, kSeed, kSteps, kLr,
                                   octa::tol::kDataParallel);
    CHECK(dp.metrics["test"]["count"] == 300);
    if (ranks == 1) {  // one rank is a plain run, to the bit
      CHECK(dp.model.values == plain.model.values);
      CHECK(dp.losses == plain.losses);
    }
    if (ranks == 2) {  // the same ranks and seed: the same bits
      const Run again = run_of(*data, dir.path(), "np2-again", 2);
      CHECK(again.model.values == dp.model.values);
      CHECK(again.losses == dp.losses);
    }
  }
}

TEST_CASE("train_gpu under mpirun resumes with another number of ranks, and trains model B",
          "[cpu][app][mpi][real]") {
  const auto data = octa::test::real_mnist_dir();
  if (!data) OCTA_SKIP(octa::test::real_mnist_missing_reason());
  if (const std::string why = mpi_missing_reason(); !why.empty()) OCTA_SKIP(why);
  octa::test::TempDir dir("mpirun-resume");
  const octa::ParamTable table = octa::ParamTable::for_arch(octa::Arch::kA);
  const Run plain = run_of(*data, dir.path(), "plain", 0, "--epochs 2");
  run_of(*data, dir.path(), "dp", 2, "--epochs 1");
  const Run resumed =
      run_of(*data, dir.path(), "dp", 3,
             fmt::format("--epochs 2 --resume {}", shell_quoted(dir / "dp.safetensors")));
  REQUIRE(resumed.losses.size() == kSteps);  // the second epoch's
  OCTA_CHECK_CLOSE("epoch 2's step losses", resumed.losses.data(), plain.losses.data() + kSteps,
                   kSteps, octa::tol::kDataParallel);
  octa::test::check_states_close(table, resumed.model, plain.model, kSeed, 2 * kSteps, kLr,
                                 octa::tol::kDataParallel);

  // Model B: BatchNorm on each rank's own share (so not one process's numbers); the replica
  // check after the epoch passes, as the run's success says.
  const Run b = run_of(*data, dir.path(), "b", 2, "--epochs 1", "b");
  CHECK(b.model.num_batches_tracked == kSteps);
}

TEST_CASE("train_gpu under mpirun stops every rank with the reason when a batch cannot be shared",
          "[cpu][app][mpi][real]") {
  const auto data = octa::test::real_mnist_dir();
  if (!data) OCTA_SKIP(octa::test::real_mnist_missing_reason());
  if (const std::string why = mpi_missing_reason(); !why.empty()) OCTA_SKIP(why);
  octa::test::TempDir dir("mpirun-small");
  const CommandResult r =
      train(3, fmt::format("--device cpu --threads 1 --no-download --data-dir {} --max-train 64 "
                           "--max-test 64 --batch-size 2 --epochs 1 --no-checkpoint --no-report",
                           shell_quoted(*data)));
  INFO(r.output);
  CHECK(r.exit_code != 0);
  CHECK(r.exit_code != 124);  // not the timeout: no rank was left waiting
  CHECK_THAT(r.output, Catch::Contains("cannot be shared by 3 ranks"));
}

TEST_CASE("train_gpu --sync-bn under mpirun with 1, 2 and 3 ranks trains model B as one process",
          "[cpu][app][mpi][real]") {
  const auto data = octa::test::real_mnist_dir();
  if (!data) OCTA_SKIP(octa::test::real_mnist_missing_reason());
  if (const std::string why = mpi_missing_reason(); !why.empty()) OCTA_SKIP(why);
  octa::test::TempDir dir("mpirun-syncbn");
  const octa::ParamTable table = octa::ParamTable::for_arch(octa::Arch::kB);
  const std::string sgd = kSyncBnSgd;

  for (const std::string device : {"cpu", "cpu-ref"}) {
    INFO("--device " << device);
    const Run plain = run_of(*data, dir.path(), "plain-" + device, 0, sgd, "b", device);
    REQUIRE(plain.losses.size() == kSteps);
    if (device == "cpu") {
      // One process: --sync-bn changes nothing (as PyTorch's SyncBatchNorm without a process
      // group) and says so.
      const Run alone = run_of(*data, dir.path(), "alone", 0, sgd + " --sync-bn", "b", device);
      CHECK_THAT(alone.output, Catch::Contains("nothing to synchronise"));
      CHECK(alone.model.values == plain.model.values);

      // Per-rank BatchNorm (DDP's default) on 2 ranks is not one process, far outside the
      // tolerance (its running statistics come from each rank's own share): the comparison below
      // tells the two apart.
      const Run per_rank = run_of(*data, dir.path(), "per-rank2", 2, sgd, "b", device);
      const octa::ParamEntry& var = table.at("bn2.running_var");
      CHECK_FALSE(octa::test::compare(
                      "per-rank bn2.running_var", per_rank.model.values.data() + var.offset,
                      plain.model.values.data() + var.offset, var.numel, octa::tol::kDataParallel)
                      .ok);
    }
    for (int ranks = 1; ranks <= 3; ++ranks) {
      INFO(ranks << " ranks");
      const Run dp = run_of(*data, dir.path(), fmt::format("sync{}-{}", ranks, device), ranks,
                            sgd + " --sync-bn", "b", device);
      CHECK_THAT(dp.output, Catch::Contains("BatchNorm synchronised (--sync-bn)"));
      check_as_one_process(table, dp, plain);
      if (ranks == 1) {  // one rank is a plain run, to the bit
        CHECK(dp.model.values == plain.model.values);
        CHECK(dp.losses == plain.losses);
      }
    }
  }
}

TEST_CASE("train_gpu --sync-bn on 2 GPUs under mpirun (NCCL) trains model B as one GPU process",
          "[gpu][app][mpi][real]") {
  OCTA_REQUIRE_GPU();
  if (const octa::DeviceProbe probe = octa::probe_cuda_device(); probe.device_count < 2) {
    OCTA_SKIP(fmt::format("[gpu] test: needs 2 GPUs (one per rank), this machine has {}",
                          probe.device_count));
  }
  const auto data = octa::test::real_mnist_dir();
  if (!data) OCTA_SKIP(octa::test::real_mnist_missing_reason());
  if (const std::string why = mpi_missing_reason(); !why.empty()) OCTA_SKIP(why);
  octa::test::TempDir dir("mpirun-syncbn-cuda");
  const octa::ParamTable table = octa::ParamTable::for_arch(octa::Arch::kB);
  const std::string sgd = kSyncBnSgd;
  const Run plain = run_of(*data, dir.path(), "plain-cuda", 0, sgd, "b", "cuda");
  REQUIRE(plain.losses.size() == kSteps);
  const Run dp = run_of(*data, dir.path(), "sync2-cuda", 2, sgd + " --sync-bn", "b", "cuda");
  CHECK_THAT(dp.output, Catch::Contains("BatchNorm synchronised (--sync-bn)"));
  check_as_one_process(table, dp, plain);
  // The same ranks and seed: the same bits (NCCL's order is fixed for a fixed topology).
  const Run again =
      run_of(*data, dir.path(), "sync2-cuda-again", 2, sgd + " --sync-bn", "b", "cuda");
  CHECK(again.model.values == dp.model.values);
}

TEST_CASE("train_gpu --sync-bn refuses model A, which has no BatchNorm", "[cpu][app][mpi]") {
  if (const std::string why = mpi_missing_reason(); !why.empty()) OCTA_SKIP(why);
  for (const int ranks : {0, 2}) {
    INFO(ranks << " ranks (0: no mpirun)");
    const CommandResult r =
        train(ranks,
              "--device cpu --threads 1 --no-download --model a --sync-bn --epochs 1 "
              "--no-checkpoint --no-report");
    INFO(r.output);
    CHECK(r.exit_code != 0);
    CHECK(r.exit_code != 124);
    CHECK_THAT(r.output, Catch::Contains("--sync-bn: model A has no BatchNorm layers"));
  }
}

TEST_CASE("A checkpoint of a data-parallel run loads in PyTorch and predicts the same",
          "[cpu][app][mpi][real][interop][torch]") {
  if (!octa::test::torch_available()) {
    OCTA_SKIP("python3 with torch and safetensors is not available here");
  }
  const auto data = octa::test::real_mnist_dir();
  if (!data) OCTA_SKIP(octa::test::real_mnist_missing_reason());
  if (const std::string why = mpi_missing_reason(); !why.empty()) OCTA_SKIP(why);
  octa::test::TempDir dir("mpirun-torch");
  for (const std::string model : {"a", "b"}) {
    INFO("model " << model);
    // Two ranks (model B with --sync-bn too), rank 0's checkpoint, whose logits octa computes here.
    const Run dp = run_of(*data, dir.path(), "dp-" + model, 2,
                          model == "b" ? "--epochs 1 --sync-bn" : "--epochs 1", model);
    octa::BackendConfig bc;
    bc.arch = octa::parse_arch(model);
    bc.max_batch = 16;
    auto backend = octa::make_cpu_backend(bc);
    backend->load(dp.model, nullptr);
    const CommandResult py =
        octa::test::check_in_torch(model, dir.path() / ("dp-" + model + ".safetensors"), *backend,
                                   dir.path() / ("case-" + model + ".safetensors"));
    INFO(py.output);
    std::printf("%s", py.output.c_str());  // the figure PyTorch saw, in the test's log
    CHECK(py.exit_code == 0);
  }
}
