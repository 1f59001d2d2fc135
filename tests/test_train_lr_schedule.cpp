// tests/test_train_lr_schedule.cpp: learning-rate schedules in the training loop on the CPU paths
// (the reference, the fast backend, the data-parallel wrapper): a step schedule's loss curve is the
// constant one's until the epoch its lr changes, each epoch records its lr, the checkpoint keeps
// the schedule, and a run resumed mid-schedule (at an epoch boundary, or mid-epoch after a signal)
// equals the uninterrupted run bit for bit.
#include <catch2/catch.hpp>

#include <cstddef>
#include <filesystem>
#include <memory>
#include <vector>

#include "engine/dist/communicator.hpp"
#include "engine/dist/data_parallel.hpp"
#include "engine/io/checkpoint.hpp"
#include "engine/optim/lr_schedule.hpp"
#include "engine/train/cpu_backend.hpp"
#include "engine/train/fast_cpu_backend.hpp"
#include "engine/train/interrupt.hpp"
#include "engine/train/trainer.hpp"
#include "tests/support/signal_at.hpp"
#include "tests/support/synthetic.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using octa::Arch;
using octa::LrSchedule;

octa::BackendConfig config(Arch arch) {
  octa::BackendConfig c;
  c.arch = arch;
  c.max_batch = 50;
  c.seed = 5;
  return c;
}

octa::TrainOptions options(int epochs, const LrSchedule& schedule) {
  octa::TrainOptions o;
  o.epochs = epochs;
  o.batch_size = 32;
  o.test_batch_size = 50;
  o.seed = 5;
  o.run_id = "lr-schedule";
  o.lr_schedule = schedule;
  o.record_step_losses = true;
  return o;
}

constexpr int kStepsPerEpoch = 4;  // 128 images in batches of 32

}  // namespace

TEST_CASE("a step schedule trains as the constant lr until the epoch its lr drops, then differs",
          "[cpu][train][lr_schedule]") {
  const auto train = octa::test::synthetic_split(128, 1);
  const auto test = octa::test::synthetic_split(50, 2);
  const auto comm = octa::dist::make_single_process_communicator();
  using Make = std::unique_ptr<octa::TrainingBackend> (*)(const octa::BackendConfig&);
  const Make plain_makers[] = {&octa::make_cpu_backend, &octa::make_fast_cpu_backend};
  for (const Make make : plain_makers) {
    for (const bool data_parallel : {false, true}) {
      const auto backend_for = [&]() -> std::unique_ptr<octa::TrainingBackend> {
        auto inner = make(config(Arch::kA));
        if (!data_parallel) return inner;
        return std::make_unique<octa::dist::DataParallelBackend>(std::move(inner), *comm);
      };
      auto constant = backend_for();
      auto stepped = backend_for();
      INFO(stepped->description());
      const auto flat = octa::train(*constant, train, test, options(3, LrSchedule{}));
      // StepLR(step_size 2, gamma 0.1): epochs 1 and 2 at 1e-3, epoch 3 at 1e-4.
      const auto decayed =
          octa::train(*stepped, train, test, options(3, LrSchedule::step_lr(2, 0.1)));
      REQUIRE(flat.epochs.size() == 3);
      REQUIRE(decayed.epochs.size() == 3);
      for (const auto& e : flat.epochs) CHECK(e.lr == 1e-3);
      CHECK(decayed.epochs[0].lr == 1e-3);
      CHECK(decayed.epochs[1].lr == 1e-3);
      CHECK(decayed.epochs[2].lr == 1e-3 * 0.1);
      CHECK(decayed.epochs[0].mean_loss == flat.epochs[0].mean_loss);
      CHECK(decayed.epochs[1].mean_loss == flat.epochs[1].mean_loss);
      CHECK(decayed.epochs[2].mean_loss != flat.epochs[2].mean_loss);
      // Step by step: a step's loss is taken before its update, so the first step of epoch 3 (the
      // first at the new lr) still has the constant run's loss, and every later one differs.
      REQUIRE(flat.step_losses.size() == 3 * kStepsPerEpoch);
      REQUIRE(decayed.step_losses.size() == flat.step_losses.size());
      const std::size_t first_new = 2 * kStepsPerEpoch;
      for (std::size_t i = 0; i <= first_new; ++i) {
        INFO("step " << i);
        CHECK(decayed.step_losses[i] == flat.step_losses[i]);
      }
      for (std::size_t i = first_new + 1; i < flat.step_losses.size(); ++i) {
        INFO("step " << i);
        CHECK(decayed.step_losses[i] != flat.step_losses[i]);
      }
      CHECK(constant->model_state().values != stepped->model_state().values);
    }
  }
}

TEST_CASE("a run resumed mid-schedule equals the uninterrupted one bit for bit",
          "[cpu][train][lr_schedule][resume]") {
  octa::test::TempDir dir("lrresume");
  const auto train = octa::test::synthetic_split(128, 3);
  const auto test = octa::test::synthetic_split(50, 4);
  const auto table = octa::ParamTable::for_arch(Arch::kB);
  for (const LrSchedule& schedule : {LrSchedule::cosine(4, 0.0), LrSchedule::step_lr(1, 0.5)}) {
    INFO(octa::describe(schedule));
    octa::clear_interrupt();
    auto straight = octa::make_fast_cpu_backend(config(Arch::kB));
    const auto full = octa::train(*straight, train, test, options(4, schedule));
    REQUIRE(full.epochs.size() == 4);
    for (int e = 0; e < 4; ++e) CHECK(full.epochs[e].lr == octa::scheduled_lr(schedule, 1e-3, e));
    CHECK(full.epochs[3].lr < full.epochs[1].lr);

    {  // At an epoch boundary: two epochs, then the checkpoint resumed to four.
      const fs::path ck = dir / "boundary.safetensors";
      auto first = octa::make_fast_cpu_backend(config(Arch::kB));
      auto opts = options(2, schedule);  // T_max stays 4: the schedule, not --epochs, holds it
      opts.checkpoint = ck;
      octa::train(*first, train, test, opts);
      const octa::Checkpoint saved = octa::load_checkpoint(ck, table);
      CHECK(saved.training.epochs_done == 2);
      CHECK(saved.training.lr_schedule == schedule);
      auto second = octa::make_fast_cpu_backend(config(Arch::kB));
      second->load(saved.model, &saved.training.optimizer_state);
      auto rest_opts = options(4, saved.training.lr_schedule);
      const auto rest = octa::train(*second, train, test, rest_opts, saved.training.epochs_done);
      REQUIRE(rest.epochs.size() == 2);
      CHECK(rest.epochs[0].lr == full.epochs[2].lr);
      CHECK(rest.epochs[1].lr == full.epochs[3].lr);
      CHECK(rest.epochs[0].mean_loss == full.epochs[2].mean_loss);
      CHECK(rest.epochs[1].mean_loss == full.epochs[3].mean_loss);
      CHECK(second->model_state().values == straight->model_state().values);
      CHECK(second->optimizer_state().m == straight->optimizer_state().m);
      CHECK(second->optimizer_state().v == straight->optimizer_state().v);
      CHECK(rest.test_logits == full.test_logits);
    }
    {  // Mid-epoch: stopped by a signal in epoch 3, resumed from its checkpoint.
      const fs::path ck = dir / "mid.safetensors";
      // Signalled while running step 9 (epoch 3, batch 2 of 4): the loop stops before step 10.
      octa::test::SignalAt first(octa::make_fast_cpu_backend(config(Arch::kB)), 9);
      auto opts = options(4, schedule);
      opts.checkpoint = ck;
      CHECK_THROWS_AS(octa::train(first, train, test, opts), octa::Interrupted);
      octa::clear_interrupt();
      const octa::Checkpoint saved = octa::load_checkpoint(ck, table);
      CHECK(saved.training.epochs_done == 2);
      CHECK(saved.training.within_epoch.batches_done == 2);
      CHECK(saved.training.lr_schedule == schedule);
      auto second = octa::make_fast_cpu_backend(config(Arch::kB));
      second->load(saved.model, &saved.training.optimizer_state);
      opts.resume_within_epoch = saved.training.within_epoch;
      const auto rest = octa::train(*second, train, test, opts, saved.training.epochs_done);
      REQUIRE(rest.epochs.size() == 2);
      CHECK(rest.epochs[0].lr == full.epochs[2].lr);
      CHECK(rest.epochs[0].mean_loss == full.epochs[2].mean_loss);  // the interrupted epoch
      CHECK(rest.epochs[1].mean_loss == full.epochs[3].mean_loss);
      CHECK(second->model_state().values == straight->model_state().values);
      CHECK(second->optimizer_state().m == straight->optimizer_state().m);
      CHECK(rest.test_logits == full.test_logits);
    }
  }
}

TEST_CASE("the trainer refuses a bad schedule, and a cosine run past its T_max",
          "[cpu][train][lr_schedule]") {
  const auto train = octa::test::synthetic_split(64, 5);
  const auto test = octa::test::synthetic_split(20, 6);
  auto backend = octa::make_cpu_backend(config(Arch::kA));
  CHECK_THROWS_WITH(octa::train(*backend, train, test, options(5, LrSchedule::cosine(4, 0.0))),
                    Catch::Contains("--epochs 5") && Catch::Contains("T_max = 4"));
  CHECK_THROWS_WITH(octa::train(*backend, train, test, options(2, LrSchedule::step_lr(0, 0.1))),
                    Catch::Contains("--lr-step-size"));
  // Old checkpoints hold no schedule: a constant one, as they were trained.
  CHECK(octa::TrainingState{}.lr_schedule == LrSchedule{});
}
