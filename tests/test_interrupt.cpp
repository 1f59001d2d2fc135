// tests/test_interrupt.cpp: stopping training on a signal (engine/train/interrupt.hpp) within one
// process: the handler records the first signal, the loop saves mid-epoch and throws Interrupted,
// and a run resumed from that checkpoint equals the uninterrupted one bit for bit; the resume
// command. (The real executable under real signals: test_app_reliability.cpp.)
#include <catch2/catch.hpp>

#include <signal.h>

#include <filesystem>
#include <memory>

#include "engine/io/checkpoint.hpp"
#include "engine/train/cpu_backend.hpp"
#include "engine/train/interrupt.hpp"
#include "engine/train/trainer.hpp"
#include "tests/support/signal_at.hpp"
#include "tests/support/synthetic.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using octa::Arch;
using octa::test::TempDir;

using octa::test::SignalAt;

octa::BackendConfig config(Arch arch) {
  octa::BackendConfig c;
  c.arch = arch;
  c.max_batch = 50;
  c.seed = 4;
  return c;
}

octa::TrainOptions options(int epochs, const fs::path& checkpoint) {
  octa::TrainOptions o;
  o.epochs = epochs;
  o.batch_size = 32;
  o.test_batch_size = 50;
  o.seed = 4;
  o.run_id = "mid-epoch";
  o.checkpoint = checkpoint;
  return o;
}

}  // namespace

TEST_CASE("interrupt: the handler records the first signal and restores the previous handler",
          "[cpu][signal]") {
  struct sigaction before {};
  ::sigaction(SIGTERM, nullptr, &before);
  {
    octa::InterruptHandler handler;
    CHECK(octa::pending_interrupt() == 0);
    ::raise(SIGTERM);  // the process lives on: the handler only records it
    CHECK(octa::pending_interrupt() == SIGTERM);
    CHECK_THROWS_WITH(octa::InterruptHandler(), Catch::Contains("installed already"));
  }
  struct sigaction after {};
  ::sigaction(SIGTERM, nullptr, &after);
  CHECK(after.sa_handler == before.sa_handler);
  octa::clear_interrupt();
  CHECK(octa::pending_interrupt() == 0);
  CHECK(octa::interrupt_exit_status(SIGINT) == 130);
  CHECK(octa::interrupt_exit_status(SIGTERM) == 143);
  CHECK(octa::signal_name(SIGINT) == "SIGINT");
}

TEST_CASE("interrupt: the resume command keeps the run's flags and resumes from the checkpoint",
          "[cpu][signal]") {
  CHECK(octa::shell_quote("runs/m_a.safetensors") == "runs/m_a.safetensors");
  CHECK(octa::shell_quote("my runs/it's") == "'my runs/it'\\''s'");
  CHECK(octa::shell_quote("") == "''");
  const std::vector<std::string> argv = {"build/apps/train_gpu",
                                         "--model",
                                         "b",
                                         "--resume",
                                         "old.safetensors",
                                         "--init-from=w.st",
                                         "--export-init",
                                         "init.safetensors",
                                         "--epochs",
                                         "10",
                                         "--checkpoint",
                                         "my dir/m.safetensors"};
  CHECK(octa::resume_command(argv, "my dir/m.safetensors") ==
        "build/apps/train_gpu --model b --epochs 10 --checkpoint 'my dir/m.safetensors' --resume "
        "'my dir/m.safetensors'");
  // A data-parallel run's launcher goes in front, unquoted (it is several words).
  CHECK(
      octa::resume_command(argv, "m.safetensors", "mpirun -np 3") ==
      "mpirun -np 3 build/apps/train_gpu --model b --epochs 10 --checkpoint 'my dir/m.safetensors' "
      "--resume m.safetensors");
}

TEST_CASE(
    "interrupt: a run stopped mid-epoch saves there and resumes to the uninterrupted run "
    "bit for bit",
    "[cpu][signal][resume]") {
  TempDir dir("midepoch");
  const auto train = octa::test::synthetic_split(200, 1);  // 7 batches of 32 per epoch
  const auto test = octa::test::synthetic_split(50, 2);
  for (const Arch arch : {Arch::kA, Arch::kB}) {
    for (const int threads : {1, 3}) {
      INFO("model " << octa::arch_name(arch) << ", " << threads << " loader threads");
      octa::clear_interrupt();
      auto straight = octa::make_cpu_backend(config(arch));
      auto opts = options(3, {});
      opts.loader_threads = threads;
      const auto full = octa::train(*straight, train, test, opts);

      // Signalled while running step 9 (epoch 2, batch 3): the loop stops before step 10.
      const fs::path ck = dir / "run.safetensors";
      SignalAt first(octa::make_cpu_backend(config(arch)), 9);
      opts.checkpoint = ck;
      try {
        octa::train(first, train, test, opts);
        FAIL("train() should have thrown octa::Interrupted");
      } catch (const octa::Interrupted& stop) {
        CHECK(stop.signal() == SIGINT);
        CHECK(stop.checkpoint() == ck);
        CHECK_THAT(stop.what(), Catch::Contains("SIGINT in epoch 2/3 after 3 of its 7 batches"));
      }
      CHECK(octa::pending_interrupt() == SIGINT);
      octa::clear_interrupt();

      const auto table = octa::ParamTable::for_arch(arch);
      const octa::Checkpoint saved = octa::load_checkpoint(ck, table);
      CHECK(saved.training.epochs_done == 1);
      CHECK(saved.training.within_epoch.batches_done == 3);
      CHECK(saved.training.within_epoch.images_done == 96);
      CHECK(saved.training.within_epoch.batch_size == 32);
      CHECK(saved.training.within_epoch.train_images == 200);
      CHECK(saved.training.optimizer_state.step == 10);

      auto second = octa::make_cpu_backend(config(arch));
      second->load(saved.model, &saved.training.optimizer_state);
      opts.resume_within_epoch = saved.training.within_epoch;
      const auto rest = octa::train(*second, train, test, opts, saved.training.epochs_done);
      opts.resume_within_epoch = {};
      REQUIRE(rest.epochs.size() == 2);
      CHECK(rest.epochs[0].mean_loss == full.epochs[1].mean_loss);  // the interrupted epoch
      CHECK(rest.epochs[1].mean_loss == full.epochs[2].mean_loss);
      CHECK(second->model_state().values == straight->model_state().values);
      CHECK(second->model_state().num_batches_tracked ==
            straight->model_state().num_batches_tracked);
      CHECK(second->optimizer_state().m == straight->optimizer_state().m);
      CHECK(second->optimizer_state().v == straight->optimizer_state().v);
      CHECK(rest.test.roc_auc == full.test.roc_auc);
    }
  }
}

TEST_CASE("interrupt: at an epoch boundary, with checkpoints off, and before the first step",
          "[cpu][signal]") {
  TempDir dir("boundary");
  const auto train = octa::test::synthetic_split(64, 3);  // 2 batches per epoch
  const auto test = octa::test::synthetic_split(20, 4);
  octa::clear_interrupt();
  {
    SignalAt backend(octa::make_cpu_backend(config(Arch::kA)), 1);  // the last step of epoch 1
    CHECK_THROWS_WITH(octa::train(backend, train, test, options(3, dir / "b.safetensors")),
                      Catch::Contains("at the start of epoch 2/3"));
    const auto ck =
        octa::load_checkpoint(dir / "b.safetensors", octa::ParamTable::for_arch(Arch::kA));
    CHECK(ck.training.epochs_done == 1);
    CHECK(ck.training.within_epoch.batches_done == 0);
  }
  octa::clear_interrupt();
  {
    SignalAt backend(octa::make_cpu_backend(config(Arch::kA)), 2);
    try {
      octa::train(backend, train, test, options(3, {}));
      FAIL("no interrupt");
    } catch (const octa::Interrupted& stop) {
      CHECK(stop.checkpoint().empty());
      CHECK_THAT(stop.what(), Catch::Contains("no checkpoint written"));
    }
  }
  octa::clear_interrupt();
  {
    octa::request_interrupt(SIGTERM);  // came before training started
    auto backend = octa::make_cpu_backend(config(Arch::kA));
    CHECK_THROWS_WITH(octa::train(*backend, train, test, options(3, dir / "c.safetensors")),
                      Catch::Contains("SIGTERM at the start of epoch 1/3"));
    const auto ck =
        octa::load_checkpoint(dir / "c.safetensors", octa::ParamTable::for_arch(Arch::kA));
    CHECK(ck.training.epochs_done == 0);
    CHECK(ck.training.optimizer_state.step == 0);
  }
  octa::clear_interrupt();
}

TEST_CASE("interrupt: a mid-epoch checkpoint refuses to resume with other batches",
          "[cpu][signal][resume]") {
  TempDir dir("refuse");
  const auto train = octa::test::synthetic_split(200, 1);
  const auto test = octa::test::synthetic_split(50, 2);
  octa::clear_interrupt();
  SignalAt first(octa::make_cpu_backend(config(Arch::kA)), 2);
  const fs::path ck = dir / "r.safetensors";
  CHECK_THROWS_AS(octa::train(first, train, test, options(2, ck)), octa::Interrupted);
  octa::clear_interrupt();
  const auto saved = octa::load_checkpoint(ck, octa::ParamTable::for_arch(Arch::kA));
  REQUIRE(saved.training.within_epoch.batches_done == 3);
  auto backend = octa::make_cpu_backend(config(Arch::kA));
  auto opts = options(2, {});
  opts.resume_within_epoch = saved.training.within_epoch;
  opts.batch_size = 16;
  CHECK_THROWS_WITH(octa::train(*backend, train, test, opts, 0),
                    Catch::Contains("--batch-size") && Catch::Contains("--batch-size 32"));
  opts.batch_size = 32;
  opts.drop_last = true;
  CHECK_THROWS_WITH(octa::train(*backend, train, test, opts, 0), Catch::Contains("--drop-last"));
  opts.drop_last = false;
  CHECK_THROWS_WITH(octa::train(*backend, octa::test::synthetic_split(150, 1), test, opts, 0),
                    Catch::Contains("--max-train") && Catch::Contains("200"));
  opts.epochs = 1;
  CHECK_THROWS_WITH(octa::train(*backend, train, test, opts, 1), Catch::Contains("--epochs"));
}
