// tests/test_dist.cpp: the data-parallel pieces that need no second process (engine/dist/): a
// rank's share of a batch, the single-process communicator, the data-parallel backend on one rank
// (bit-identical to the plain backend it wraps), and the replica check, which must fail loudly
// when a rank's state differs (shown with a communicator that plays a second rank). The runs under
// mpirun with 1, 2 and 3 ranks are in test_app_mpirun.cpp.
#include <catch2/catch.hpp>

#include <csignal>
#include <cstring>
#include <vector>

#include "engine/cpu/ops.hpp"
#include "engine/dist/communicator.hpp"
#include "engine/dist/data_parallel.hpp"
#include "engine/train/fast_cpu_backend.hpp"
#include "engine/train/interrupt.hpp"
#include "engine/train/trainer.hpp"
#include "tests/support/synthetic.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using octa::dist::Share;
using octa::dist::share_of;

octa::BackendConfig small_config(octa::Arch arch) {
  octa::BackendConfig bc;
  bc.arch = arch;
  bc.max_batch = 64;
  bc.seed = 11;
  return bc;
}

// A stand-in for rank 0 of two ranks whose partner's every contribution is this rank's own, except
// that the 64-bit values it gathers (the replica check's hashes) come back changed: what a second
// rank whose parameters drifted would send.
class DriftedPartner final : public octa::dist::Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string description() const override { return "a drifted partner"; }
  void allreduce_sum(float* d, std::size_t n) override {
    for (std::size_t i = 0; i < n; ++i) d[i] += d[i];
  }
  void allreduce_sum(double* d, std::size_t n) override {
    for (std::size_t i = 0; i < n; ++i) d[i] += d[i];
  }
  void allgatherv(const void* in, void* out, const std::vector<std::size_t>& counts) override {
    std::memcpy(out, in, counts[0]);
    auto* partner = static_cast<unsigned char*>(out) + counts[0];
    std::memcpy(partner, in, counts[1]);
    if (counts[1] == sizeof(std::uint64_t)) partner[0] ^= 1;
  }
  void broadcast(void*, std::size_t, int) override {}
  void abort_all(int) override {}
};

// Rank 0 of two whose partner has seen SIGTERM: the 64-bit values it gathers (the signals that
// agree_on_signal compares) come back with the partner's SIGTERM.
class SignalledPartner final : public octa::dist::Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string description() const override { return "a signalled partner"; }
  void allreduce_sum(float*, std::size_t) override {}
  void allreduce_sum(double*, std::size_t) override {}
  void allgatherv(const void* in, void* out, const std::vector<std::size_t>& counts) override {
    std::memcpy(out, in, counts[0]);
    const std::uint64_t partner = SIGTERM;
    std::memcpy(static_cast<unsigned char*>(out) + counts[0], &partner, sizeof partner);
  }
  void broadcast(void*, std::size_t, int) override {}
  void abort_all(int) override {}
};

}  // namespace

TEST_CASE("share_of splits a batch into contiguous shares in rank order", "[cpu][dist]") {
  for (int ranks = 1; ranks <= 7; ++ranks) {
    for (int n : {0, 1, 5, 63, 64, 1000}) {
      int next = 0;
      for (int r = 0; r < ranks; ++r) {
        const Share s = share_of(n, r, ranks);
        CHECK(s.begin == next);
        CHECK(s.count() >= n / ranks);
        CHECK(s.count() <= n / ranks + 1);
        next = s.end;
      }
      CHECK(next == n);
    }
  }
  CHECK(share_of(64, 1, 3).begin == 21);
  CHECK(share_of(64, 2, 3).count() == 22);
  CHECK_THROWS_WITH(share_of(10, 3, 3), Catch::Contains("rank 3 of 3"));
}

TEST_CASE("the single-process communicator is rank 0 of 1 and its collectives copy",
          "[cpu][dist]") {
  const auto comm = octa::dist::make_single_process_communicator();
  CHECK(comm->rank() == 0);
  CHECK(comm->size() == 1);
  std::vector<float> v{1.5f, -2.0f};
  comm->allreduce_sum(v.data(), v.size());
  CHECK(v == std::vector<float>{1.5f, -2.0f});
  CHECK(octa::dist::allgather_u64(*comm, 42) == std::vector<std::uint64_t>{42});
  CHECK(octa::dist::fnv1a64("a", 1) != octa::dist::fnv1a64("b", 1));
}

TEST_CASE("a one-rank data-parallel backend trains bit-identically to the backend it wraps",
          "[cpu][dist]") {
  const octa::Arch arch = GENERATE(octa::Arch::kA, octa::Arch::kB);
  const auto comm = octa::dist::make_single_process_communicator();
  auto plain = octa::make_fast_cpu_backend(small_config(arch));
  octa::dist::DataParallelBackend dp(octa::make_fast_cpu_backend(small_config(arch)), *comm);
  const octa::data::Split split = octa::test::synthetic_split(200, 3);
  octa::TrainOptions opt;
  opt.epochs = 1;
  opt.batch_size = 32;
  opt.test_batch_size = 50;
  opt.seed = 4;
  opt.record_step_losses = true;
  const octa::TrainReport a = octa::train(*plain, split, split, opt);
  opt.after_epoch = [&](int epochs) { dp.check_replicas(fmt::format("after epoch {}", epochs)); };
  const octa::TrainReport b = octa::train(dp, split, split, opt);
  CHECK(a.step_losses == b.step_losses);
  CHECK(a.test_logits == b.test_logits);
  CHECK(plain->model_state().values == dp.model_state().values);
  CHECK(plain->optimizer_state().m == dp.optimizer_state().m);
}

TEST_CASE("the replica check fails loudly, naming the rank, when a rank's state differs",
          "[cpu][dist]") {
  DriftedPartner comm;
  octa::dist::DataParallelBackend dp(octa::make_fast_cpu_backend(small_config(octa::Arch::kA)),
                                     comm);
  CHECK_THROWS_WITH(dp.check_replicas("after epoch 3"),
                    Catch::Contains("replicas differ after epoch 3") && Catch::Contains("rank 1:"));
}

TEST_CASE("a batch smaller than the number of ranks is refused with the flags to change",
          "[cpu][dist]") {
  DriftedPartner comm;  // two ranks
  octa::dist::DataParallelBackend dp(octa::make_fast_cpu_backend(small_config(octa::Arch::kA)),
                                     comm);
  const std::vector<float> image(28 * 28, 0.5f), target(1, 1.0f);
  CHECK_THROWS_WITH(dp.train_step(image.data(), target.data(), 1, 0),
                    Catch::Contains("batch of 1 images cannot be shared by 2 ranks") &&
                        Catch::Contains("--drop-last"));
}

TEST_CASE("a backend that cannot train data-parallel says so", "[cpu][dist]") {
  struct Minimal : octa::TrainingBackend {
    std::string description() const override { return "minimal"; }
    const octa::ParamTable& table() const override { return t; }
    void train_step(const float*, const float*, int, std::int64_t) override {}
    double take_loss_sum() override { return 0; }
    void predict(const float*, int, float*) override {}
    octa::ModelState model_state() override { return {}; }
    octa::OptimizerState optimizer_state() override { return {}; }
    void load(const octa::ModelState&, const octa::OptimizerState*) override {}
    octa::ParamTable t = octa::ParamTable::for_arch(octa::Arch::kA);
  };
  const auto comm = octa::dist::make_single_process_communicator();
  CHECK_THROWS_WITH(octa::dist::DataParallelBackend(std::make_unique<Minimal>(), *comm),
                    Catch::Contains("minimal: no data-parallel"));
}

TEST_CASE("a share's dropout mask is the whole batch's mask from the share's first element",
          "[cpu][dist]") {
  constexpr std::size_t kN = 1000, kFirst = 384;
  std::vector<float> in(kN), out(kN), part(kN - kFirst);
  for (std::size_t i = 0; i < kN; ++i) in[i] = 0.25f + static_cast<float>(i % 7);
  std::vector<std::uint8_t> mask(kN), part_mask(kN - kFirst);
  octa::cpu::dropout_forward(out.data(), mask.data(), in.data(), kN, 0.5f, 9, 3);
  octa::cpu::dropout_forward(part.data(), part_mask.data(), in.data() + kFirst, kN - kFirst, 0.5f,
                             9, 3, kFirst);
  CHECK(std::vector<std::uint8_t>(mask.begin() + kFirst, mask.end()) == part_mask);
  CHECK(std::vector<float>(out.begin() + kFirst, out.end()) == part);
  // And the share does not simply repeat the batch's start.
  CHECK(std::vector<std::uint8_t>(mask.begin(), mask.begin() + (kN - kFirst)) != part_mask);
}

TEST_CASE("every rank stops at the step where any rank saw a signal, saving there",
          "[cpu][dist][signal]") {
  SignalledPartner partner;
  octa::dist::DataParallelBackend dp(octa::make_fast_cpu_backend(small_config(octa::Arch::kA)),
                                     partner);
  CHECK(dp.agree_on_signal(0) == SIGTERM);  // this rank saw none; its partner did

  // The loop acts on the agreed answer, not on this rank's own: a signal seen elsewhere before
  // the fourth step stops this rank there too, with a mid-epoch checkpoint of three steps.
  octa::test::TempDir dir("dist-signal");
  auto backend = octa::make_fast_cpu_backend(small_config(octa::Arch::kA));
  const octa::data::Split split = octa::test::synthetic_split(200, 3);
  octa::TrainOptions opt;
  opt.epochs = 1;
  opt.batch_size = 32;
  opt.checkpoint = dir / "m.safetensors";
  int polls = 0;
  opt.agree_on_signal = [&](int own) {
    CHECK(own == 0);
    return ++polls == 4 ? SIGTERM : own;
  };
  try {
    octa::train(*backend, split, split, opt);
    FAIL("train() did not stop");
  } catch (const octa::Interrupted& stop) {
    CHECK(stop.signal() == SIGTERM);
    CHECK_THAT(stop.what(), Catch::Contains("after 3 of its 7 batches"));
  }
  const octa::Checkpoint ck =
      octa::load_checkpoint(dir / "m.safetensors", octa::ParamTable::for_arch(octa::Arch::kA));
  CHECK(ck.training.within_epoch.batches_done == 3);
}
