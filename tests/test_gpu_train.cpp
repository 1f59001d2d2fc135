// tests/test_gpu_train.cpp: the CUDA engine against the CPU reference, step for step: one training
// step, then 20 Adam steps, for models A and B and the three convolution paths (fused: octa's
// kernels, conv2 on the tensor cores; fused-fp32: octa's kernels on the CUDA cores; cudnn);
// model B's fused BatchNorm against the unfused kernels (training and the folded eval form);
// determinism; the --conv names; state
// moving between the GPU and the CPU (checkpoints written on one load on the other); the loader
// thread's pinned ring and the copy stream; phase timing; ten classes (fc2 [10, 128], the
// softmax head with class weights and label smoothing).
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/device_probe.hpp"
#include "engine/core/error.hpp"
#include "engine/data/loader.hpp"
#include "engine/data/transform.hpp"
#include "engine/gpu/cuda_backend.hpp"
#include "engine/train/cpu_backend.hpp"
#include "engine/train/trainer.hpp"
#include "tests/support/compare.hpp"
#include "tests/support/compare_states.hpp"
#include "tests/support/forwarding_backend.hpp"
#include "tests/support/run_steps.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/synthetic.hpp"

using octa::Arch;
using octa::ConvPath;

namespace {

constexpr std::array<ConvPath, 3> kConvPaths = {ConvPath::kFused, ConvPath::kFusedFp32,
                                                ConvPath::kCudnn};

octa::BackendConfig config(Arch arch, int batch) {
  octa::BackendConfig c;
  c.arch = arch;
  c.max_batch = batch;
  c.seed = 9;
  return c;
}

// classes > 1: fc2 with that many outputs, class-index targets, softmax cross-entropy with class
// weights and label smoothing.
void compare_with_cpu(Arch arch, ConvPath conv, int batch, int steps, int classes = 1) {
  INFO("model " << octa::arch_name(arch) << ", --conv " << octa::conv_path_name(conv) << ", batch "
                << batch << ", " << steps << " steps, " << classes << " outputs");
  const auto split = octa::test::synthetic_split(3 * batch + 5, 31);  // a partial last batch
  octa::BackendConfig cfg = config(arch, batch);
  cfg.num_classes = classes;
  if (classes > 1) {
    cfg.label_smoothing = 0.05f;
    for (int c = 0; c < classes; ++c)
      cfg.class_weights.push_back(0.5f + 0.1f * static_cast<float>(c));
  }
  const int target = classes > 1 ? octa::data::kClassIndexTarget : 8;
  auto cpu = octa::make_cpu_backend(cfg);
  octa::CudaBackendOptions opt;
  opt.conv = conv;
  auto gpu = octa::make_cuda_backend(cfg, opt);
  const auto l_cpu = octa::test::run_steps(*cpu, split, batch, steps, target);
  const auto l_gpu = octa::test::run_steps(*gpu, split, batch, steps, target);
  OCTA_CHECK_CLOSE("losses", l_gpu.data(), l_cpu.data(), l_cpu.size(),
                   octa::test::tol::kGpuStepVsCpu);
  // Model B's convolution biases before BatchNorm are bounded, not compared (compare_states.hpp).
  octa::test::check_states_close(cpu->table(), gpu->model_state(), cpu->model_state(), 9, steps,
                                 1e-3, octa::test::tol::kGpuStepVsCpu);
  const auto o_cpu = cpu->optimizer_state(), o_gpu = gpu->optimizer_state();
  CHECK(o_gpu.step == o_cpu.step);
  OCTA_CHECK_CLOSE("exp_avg", o_gpu.m.data(), o_cpu.m.data(), o_cpu.m.size(),
                   octa::test::tol::kGpuStepVsCpu);

  // Eval-mode predictions agree too.
  std::vector<float> x(static_cast<std::size_t>(batch) * 784), y(static_cast<std::size_t>(batch));
  octa::data::BatchLoader loader(split, batch, false, false, 0, target);
  const int n = loader.fill(0, x.data(), y.data(), nullptr);
  std::vector<float> z_cpu(static_cast<std::size_t>(n * classes)),
      z_gpu(static_cast<std::size_t>(n * classes));
  cpu->predict(x.data(), n, z_cpu.data());
  gpu->predict(x.data(), n, z_gpu.data());
  OCTA_CHECK_CLOSE("eval logits", z_gpu.data(), z_cpu.data(), z_cpu.size(),
                   octa::test::tol::kGpuStepVsCpu);
}

}  // namespace

TEST_CASE("GPU step matches the CPU reference: model A, fused kernels", "[gpu][train]") {
  OCTA_REQUIRE_GPU();
  compare_with_cpu(Arch::kA, ConvPath::kFused, 64, 1);
  compare_with_cpu(Arch::kA, ConvPath::kFused, 64, 20);
}

TEST_CASE("GPU step matches the CPU reference: model A, fused-fp32 kernels", "[gpu][train]") {
  OCTA_REQUIRE_GPU();
  compare_with_cpu(Arch::kA, ConvPath::kFusedFp32, 64, 1);
  compare_with_cpu(Arch::kA, ConvPath::kFusedFp32, 64, 20);
}

TEST_CASE("GPU step matches the CPU reference: model A, cuDNN", "[gpu][train]") {
  OCTA_REQUIRE_GPU();
  compare_with_cpu(Arch::kA, ConvPath::kCudnn, 64, 1);
  compare_with_cpu(Arch::kA, ConvPath::kCudnn, 64, 20);
}

TEST_CASE("GPU step matches the CPU reference: model B, fused kernels", "[gpu][train]") {
  OCTA_REQUIRE_GPU();
  compare_with_cpu(Arch::kB, ConvPath::kFused, 64, 1);
  compare_with_cpu(Arch::kB, ConvPath::kFused, 37, 20);
}

TEST_CASE("GPU step matches the CPU reference: model B, fused-fp32 kernels", "[gpu][train]") {
  OCTA_REQUIRE_GPU();
  compare_with_cpu(Arch::kB, ConvPath::kFusedFp32, 64, 1);
  compare_with_cpu(Arch::kB, ConvPath::kFusedFp32, 37, 20);
}

TEST_CASE("GPU step matches the CPU reference: model B, cuDNN", "[gpu][train]") {
  OCTA_REQUIRE_GPU();
  compare_with_cpu(Arch::kB, ConvPath::kCudnn, 64, 1);
  compare_with_cpu(Arch::kB, ConvPath::kCudnn, 37, 20);
}

TEST_CASE("GPU step matches the CPU reference: ten classes (the softmax head), models A and B",
          "[gpu][train][multiclass]") {
  OCTA_REQUIRE_GPU();
  compare_with_cpu(Arch::kA, ConvPath::kFused, 64, 1, 10);
  compare_with_cpu(Arch::kA, ConvPath::kFused, 64, 20, 10);
  compare_with_cpu(Arch::kB, ConvPath::kFused, 64, 1, 10);
  compare_with_cpu(Arch::kB, ConvPath::kCudnn, 37, 1, 3);
}

namespace {

// Model B's fused BatchNorm (CudaBackendOptions::fuse_batchnorm: kernels/batchnorm_fused.hpp)
// against the unfused kernels it replaces, on one of octa's convolution paths: the same batches
// (graph replays and a partial batch included), PyTorch's Adam; the states compared by the one
// rule of compare_states.hpp (the convolution biases before BatchNorm are bounded). Evaluation
// (the folded form) against an unfused engine holding the same state, so that the fold is what is
// compared: at initialisation, after the steps, after more steps (the fold follows the
// parameters and running statistics) and after the fused engine loads a state.
void compare_fused_with_unfused(ConvPath conv, int batch, int steps) {
  INFO("model B, --conv " << octa::conv_path_name(conv) << ", batch " << batch << ", " << steps
                          << " steps");
  const auto split = octa::test::synthetic_split(3 * batch + 5, 31);
  const octa::BackendConfig cfg = config(Arch::kB, batch);
  octa::CudaBackendOptions opt;
  opt.conv = conv;
  auto fused = octa::make_cuda_backend(cfg, opt);
  opt.fuse_batchnorm = false;
  auto unfused = octa::make_cuda_backend(cfg, opt);
  auto evaluator = octa::make_cuda_backend(cfg, opt);  // unfused, loaded with the fused one's state
  CHECK(fused->description().find("unfused") == std::string::npos);
  CHECK_THAT(unfused->description(), Catch::Contains("BatchNorm unfused"));
  const auto tol = octa::test::tol::kGpuStepVsCpu;

  std::vector<float> x(static_cast<std::size_t>(batch) * 784), y(static_cast<std::size_t>(batch));
  octa::data::BatchLoader loader(split, batch, false, false, 0, 8);
  const int n = loader.fill(0, x.data(), y.data(), nullptr);
  std::vector<float> z_fused(static_cast<std::size_t>(n)), z_unfused(z_fused.size());
  const auto predictions_agree = [&](const char* when, octa::TrainingBackend& other) {
    INFO(when);
    fused->predict(x.data(), n, z_fused.data());
    other.predict(x.data(), n, z_unfused.data());
    OCTA_CHECK_CLOSE("eval logits", z_fused.data(), z_unfused.data(), z_unfused.size(), tol);
  };
  predictions_agree("at initialisation", *unfused);

  const auto l_fused = octa::test::run_steps(*fused, split, batch, steps);
  const auto l_unfused = octa::test::run_steps(*unfused, split, batch, steps);
  OCTA_CHECK_CLOSE("losses", l_fused.data(), l_unfused.data(), l_unfused.size(), tol);
  const auto p_fused = fused->model_state();
  octa::test::check_states_close(octa::ParamTable::for_arch(Arch::kB), p_fused,
                                 unfused->model_state(), cfg.seed, steps, cfg.optimizer.lr, tol);
  const auto o_fused = fused->optimizer_state(), o_unfused = unfused->optimizer_state();
  CHECK(o_fused.step == o_unfused.step);
  OCTA_CHECK_CLOSE("exp_avg", o_fused.m.data(), o_unfused.m.data(), o_unfused.m.size(), tol);
  OCTA_CHECK_CLOSE("exp_avg_sq", o_fused.v.data(), o_unfused.v.data(), o_unfused.v.size(), tol);

  evaluator->load(p_fused, nullptr);
  predictions_agree("after the training steps", *evaluator);
  // The fold writes buffers of its own: the state (what checkpoints hold) is PyTorch's unfolded
  // parameters, unchanged by evaluating.
  CHECK(fused->model_state().values == p_fused.values);

  octa::test::run_steps(*fused, split, batch, 2);
  evaluator->load(fused->model_state(), nullptr);
  predictions_agree("after two more steps", *evaluator);
  fused->load(unfused->model_state(), nullptr);
  predictions_agree("after loading the unfused engine's state", *unfused);
}

}  // namespace

TEST_CASE("GPU: model B's fused BatchNorm equals the unfused kernels, 20 Adam steps and eval",
          "[gpu][train][batchnorm]") {
  OCTA_REQUIRE_GPU();
  for (const ConvPath conv : {ConvPath::kFused, ConvPath::kFusedFp32}) {
    compare_fused_with_unfused(conv, 64, 1);
    compare_fused_with_unfused(conv, 64, 20);
    compare_fused_with_unfused(conv, 37, 20);
  }
}

TEST_CASE("GPU training is deterministic: two runs from one seed give identical losses",
          "[gpu][train][determinism]") {
  OCTA_REQUIRE_GPU();
  const auto split = octa::test::synthetic_split(64 * 8, 3);
  for (const Arch arch : {Arch::kA, Arch::kB}) {
    for (const ConvPath conv : kConvPaths) {
      octa::CudaBackendOptions opt;
      opt.conv = conv;
      auto g1 = octa::make_cuda_backend(config(arch, 64), opt);
      auto g2 = octa::make_cuda_backend(config(arch, 64), opt);
      const auto l1 =
          octa::test::run_steps(*g1, split, 64, 16);  // past warm-up: graph replays included
      const auto l2 = octa::test::run_steps(*g2, split, 64, 16);
      INFO("model " << octa::arch_name(arch) << ", --conv " << octa::conv_path_name(conv));
      CHECK(l1 == l2);
      CHECK(g1->model_state().values == g2->model_state().values);
    }
  }
}

// No device needed: the names are host code.
TEST_CASE("parse_conv_path takes the three --conv paths and rejects others, listing them",
          "[train][check]") {
  for (const ConvPath conv : kConvPaths) {
    CHECK(octa::parse_conv_path(octa::conv_path_name(conv)) == conv);
  }
  CHECK(std::string(octa::conv_path_name(ConvPath::kFused)) == "fused");
  CHECK(std::string(octa::conv_path_name(ConvPath::kFusedFp32)) == "fused-fp32");
  CHECK(std::string(octa::conv_path_name(ConvPath::kCudnn)) == "cudnn");
  CHECK_THROWS_WITH(octa::parse_conv_path("fp32"),
                    Catch::Contains("--conv") && Catch::Contains("'fp32'") &&
                        Catch::Contains("'fused'") && Catch::Contains("'fused-fp32'") &&
                        Catch::Contains("'cudnn'"));
  CHECK_THROWS_AS(octa::parse_conv_path(""), octa::Error);
}

TEST_CASE("State moves between the GPU and the CPU engines unchanged", "[gpu][train]") {
  OCTA_REQUIRE_GPU();
  const auto split = octa::test::synthetic_split(200, 8);
  octa::CudaBackendOptions opt;
  auto gpu = octa::make_cuda_backend(config(Arch::kB, 64), opt);
  octa::test::run_steps(*gpu, split, 64, 5);
  const auto model = gpu->model_state();
  const auto optim = gpu->optimizer_state();
  auto cpu = octa::make_cpu_backend(config(Arch::kB, 64));
  cpu->load(model, &optim);
  CHECK(cpu->model_state().values == model.values);
  auto gpu2 = octa::make_cuda_backend(config(Arch::kB, 64), opt);
  gpu2->load(cpu->model_state(), &optim);
  CHECK(gpu2->model_state().values == model.values);
  CHECK(gpu2->optimizer_state().step == optim.step);
}

namespace {

// Hides the CUDA engine's pinned batches, so the trainer hands it pageable memory (the copying
// path) instead of pinned slots filled by the loader threads: the forwarding wrapper stages
// through the base class's pageable defaults.
using PageableOnly = octa::test::ForwardingBackend;

octa::TrainReport train_two_epochs(octa::TrainingBackend& b, const octa::data::Split& train,
                                   const octa::data::Split& test, int sync_every) {
  octa::TrainOptions t;
  t.epochs = 2;
  t.batch_size = 64;
  t.test_batch_size = 100;
  t.seed = 9;
  t.loss_sync_every = sync_every;
  return octa::train(b, train, test, t);
}

}  // namespace

TEST_CASE("GPU: the loader thread's pinned ring and copy stream change no number", "[gpu][train]") {
  OCTA_REQUIRE_GPU();
  // 20 batches of 64 and a partial one per epoch: graph replays on both input slots, and eager
  // partial batches in between.
  const auto train_split = octa::test::synthetic_split(64 * 20 + 13, 5);
  const auto test_split = octa::test::synthetic_split(250, 6);
  for (const Arch arch : {Arch::kA, Arch::kB}) {
    INFO("model " << octa::arch_name(arch));
    octa::CudaBackendOptions opt;
    auto pinned = octa::make_cuda_backend(config(arch, 100), opt);
    PageableOnly pageable(octa::make_cuda_backend(config(arch, 100), opt));
    opt.use_graph = false;
    auto eager = octa::make_cuda_backend(config(arch, 100), opt);
    // Reading the loss rarely lets the copies run ahead of the compute; every step makes the
    // host wait each time. (Where the host reads the device's double loss sum changes how the
    // epoch's sum is grouped, so the eager run's mean loss is compared to 1e-12, not bitwise.)
    const auto r_pinned = train_two_epochs(*pinned, train_split, test_split, 100);
    const auto r_pageable = train_two_epochs(pageable, train_split, test_split, 100);
    const auto r_eager = train_two_epochs(*eager, train_split, test_split, 1);
    for (std::size_t e = 0; e < 2; ++e) {
      CHECK(r_pinned.epochs[e].mean_loss == r_pageable.epochs[e].mean_loss);
      CHECK(r_pinned.epochs[e].mean_loss ==
            Approx(r_eager.epochs[e].mean_loss).epsilon(1e-12).margin(0));
    }
    CHECK(pinned->model_state().values == pageable.model_state().values);
    CHECK(pinned->model_state().values == eager->model_state().values);
    CHECK(r_pinned.test.tp == r_pageable.test.tp);
    CHECK(r_pinned.test.fp == r_pageable.test.fp);
    CHECK(r_pinned.test.accuracy == r_eager.test.accuracy);
  }
}

TEST_CASE("GPU: phase timing names every phase of the step and changes no number", "[gpu][train]") {
  OCTA_REQUIRE_GPU();
  const auto split = octa::test::synthetic_split(64 * 4, 2);
  for (const Arch arch : {Arch::kA, Arch::kB}) {
    INFO("model " << octa::arch_name(arch));
    octa::CudaBackendOptions opt;
    auto plain = octa::make_cuda_backend(config(arch, 64), opt);
    CHECK(plain->phase_times().empty());
    opt.time_phases = true;
    auto timed = octa::make_cuda_backend(config(arch, 64), opt);
    const auto l_plain = octa::test::run_steps(*plain, split, 64, 6);
    const auto l_timed = octa::test::run_steps(*timed, split, 64, 6);
    CHECK(l_plain == l_timed);
    const auto phases = timed->phase_times();
    std::vector<std::string> names;
    float total = 0.0f;
    for (const auto& p : phases) {
      names.push_back(p.name);
      CHECK(p.ms.size() == 6);
      for (const float ms : p.ms) {
        CHECK(ms >= 0.0f);  // a tiny kernel may round to 0 at the events' resolution
        total += ms;
      }
    }
    CHECK(total > 0.0f);
    INFO("phases: " << Catch::Detail::stringify(names));
    // Model A (--conv fused) folds pool1's and the ReLU's backward into conv1's filter gradient,
    // model B pool1's, the ReLU's and bn1's.
    const char* conv1_filter = arch == Arch::kA ? "pool1+relu+conv1.backward_filter"
                                                : "pool1+relu+bn1+conv1.backward_filter";
    for (const char* expected : {"h2d_copy", "conv2.backward_filter", "conv2.backward_data",
                                 conv1_filter, "fc1.backward", "fc2+bce_loss+backward", "adam"}) {
      CHECK(std::find(names.begin(), names.end(), expected) != names.end());
    }
    // Model B (--conv fused): BatchNorm fused with conv, ReLU and pool, forward and backward.
    CHECK(std::find(names.begin(), names.end(), "pool1.backward") == names.end());
    for (const char* fused : {"conv1+bn1_stats", "bn1+relu+pool1", "conv2+bn2_stats",
                              "bn2+relu+pool2", "pool2+relu+bn2.backward"}) {
      CHECK((arch == Arch::kB) == (std::find(names.begin(), names.end(), fused) != names.end()));
    }
    for (const char* gone : {"bn1+relu", "pool1+relu+bn1.backward", "conv1.backward_filter"}) {
      CHECK(std::find(names.begin(), names.end(), gone) == names.end());
    }
    CHECK(std::find(names.begin(), names.end(), "conv1.backward_data") == names.end());
    // The head kernel replaces the separate fc2, loss and fc2/dropout/ReLU backward phases.
    for (const char* gone : {"fc2", "bce_loss", "fc2.backward", "relu.backward"}) {
      CHECK(std::find(names.begin(), names.end(), gone) == names.end());
    }
  }
}

TEST_CASE("GPU: a learning-rate schedule reaches the captured graph (equal to eager steps)",
          "[gpu][train][lr_schedule]") {
  OCTA_REQUIRE_GPU();
  // 8 batches of 64 per epoch: the graph is captured in epoch 1 and replayed after; StepLR(2, 0.1)
  // drops the lr to 1e-4 for epoch 3, whose steps are all replays.
  const auto train_split = octa::test::synthetic_split(64 * 8, 7);
  const auto test_split = octa::test::synthetic_split(100, 8);
  octa::TrainOptions o;
  o.epochs = 3;
  o.batch_size = 64;
  o.test_batch_size = 100;
  o.seed = 9;
  o.record_step_losses = true;
  for (const Arch arch : {Arch::kA, Arch::kB}) {
    INFO("model " << octa::arch_name(arch));
    octa::CudaBackendOptions opt;
    auto constant = octa::make_cuda_backend(config(arch, 100), opt);
    auto graphed = octa::make_cuda_backend(config(arch, 100), opt);
    opt.use_graph = false;
    auto eager = octa::make_cuda_backend(config(arch, 100), opt);
    const auto flat = octa::train(*constant, train_split, test_split, o);
    o.lr_schedule = octa::LrSchedule::step_lr(2, 0.1);
    const auto replayed = octa::train(*graphed, train_split, test_split, o);
    const auto stepped = octa::train(*eager, train_split, test_split, o);
    o.lr_schedule = {};
    CHECK(replayed.step_losses == stepped.step_losses);
    CHECK(graphed->model_state().values == eager->model_state().values);
    REQUIRE(replayed.step_losses.size() == 24);
    for (std::size_t i = 0; i <= 16; ++i) CHECK(replayed.step_losses[i] == flat.step_losses[i]);
    for (std::size_t i = 17; i < 24; ++i) CHECK(replayed.step_losses[i] != flat.step_losses[i]);
  }
}
