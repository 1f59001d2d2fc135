// tests/test_gpu_dist.cpp: [gpu] the CUDA engine's data-parallel path (engine/gpu/nccl_gradients,
// engine/dist/): on one rank, with NCCL's communicator of one GPU made through the single-process
// communicator, the gradients' all-reduce and the running statistics' broadcast inside the step
// (and its captured graph) must change no bit against the plain engine, for both models. Skips
// where there is no GPU. --sync-bn on one rank (its NCCL all-gathers and merges in the step)
// against the plain engine within tol::kDataParallel, and refused where octa's fused BatchNorm is
// not used (cuDNN). Two or more GPUs: test_app_mpirun's [gpu] case runs train_gpu under mpirun.
#include <catch2/catch.hpp>

#include <memory>

#include "engine/core/device_probe.hpp"
#include "engine/dist/communicator.hpp"
#include "engine/dist/data_parallel.hpp"
#include "engine/gpu/cuda_backend.hpp"
#include "engine/gpu/nccl_gradients.hpp"
#include "engine/train/cpu_backend.hpp"
#include "engine/train/trainer.hpp"
#include "tests/support/compare_states.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/synthetic.hpp"

namespace {

// One epoch in batches of 64 (the split's 12 full batches replay the step's graph), step losses
// recorded.
octa::TrainOptions one_epoch() {
  octa::TrainOptions opt;
  opt.epochs = 1;
  opt.batch_size = 64;
  opt.test_batch_size = 100;
  opt.seed = 2;
  opt.record_step_losses = true;
  return opt;
}

}  // namespace

TEST_CASE("GPU data-parallel on one rank (NCCL) equals the plain CUDA engine bit for bit",
          "[gpu][dist]") {
  OCTA_REQUIRE_GPU();
  if (!octa::gpu::nccl_built_in()) OCTA_SKIP("this build has no NCCL");
  const octa::Arch arch = GENERATE(octa::Arch::kA, octa::Arch::kB);
  octa::BackendConfig bc;
  bc.arch = arch;
  bc.max_batch = 64;
  bc.seed = 5;
  const auto comm = octa::dist::make_single_process_communicator();
  auto plain = octa::make_cuda_backend(bc, {});
  octa::dist::DataParallelBackend dp(octa::make_cuda_backend(bc, {}), *comm);
  const octa::data::Split split = octa::test::synthetic_split(64 * 12 + 20, 8);  // graph replays
  const octa::TrainOptions opt = one_epoch();
  const octa::TrainReport a = octa::train(*plain, split, split, opt);
  const octa::TrainReport b = octa::train(dp, split, split, opt);
  CHECK(a.step_losses == b.step_losses);
  CHECK(a.test_logits == b.test_logits);
  CHECK(plain->model_state().values == dp.model_state().values);
  CHECK(plain->optimizer_state().m == dp.optimizer_state().m);
  dp.check_replicas("after the epoch");
}

TEST_CASE("GPU data-parallel --sync-bn on one rank (NCCL) trains model B as the plain engine",
          "[gpu][dist]") {
  OCTA_REQUIRE_GPU();
  if (!octa::gpu::nccl_built_in()) OCTA_SKIP("this build has no NCCL");
  octa::BackendConfig bc;
  bc.arch = octa::Arch::kB;
  bc.max_batch = 64;
  bc.seed = 5;
  bc.optimizer.kind = octa::OptimizerKind::kSgd;  // Adam would magnify rounding (docs/SCALING.md)
  bc.optimizer.lr = 0.05;
  bc.optimizer.momentum = 0.9;
  const auto comm = octa::dist::make_single_process_communicator();
  auto plain = octa::make_cuda_backend(bc, {});
  // One rank's all-gathers and rank-order merges (kernels/batchnorm_sync.hpp) run in every step
  // and its graph; they merge the tiles in another order than the plain kernel, so the numbers
  // agree to rounding, not to the bit.
  octa::dist::DataParallelBackend dp(octa::make_cuda_backend(bc, {}), *comm,
                                     /*sync_batchnorm=*/true);
  CHECK_THAT(dp.description(), Catch::Contains("BatchNorm synchronised (--sync-bn)"));
  const octa::data::Split split = octa::test::synthetic_split(64 * 12 + 20, 8);  // graph replays
  const octa::TrainOptions opt = one_epoch();
  const octa::TrainReport a = octa::train(*plain, split, split, opt);
  const octa::TrainReport b = octa::train(dp, split, split, opt);
  REQUIRE(a.step_losses.size() == b.step_losses.size());
  OCTA_CHECK_CLOSE("step losses", b.step_losses.data(), a.step_losses.data(), a.step_losses.size(),
                   octa::tol::kDataParallel);
  const octa::ParamTable& table = plain->table();
  octa::test::check_states_close(table, dp.model_state(), plain->model_state(), bc.seed,
                                 /*adam_steps=*/0, 0.0, octa::tol::kDataParallel);
  dp.check_replicas("after the epoch");
}

TEST_CASE("GPU data-parallel --sync-bn refuses the paths without octa's fused BatchNorm",
          "[gpu][dist]") {
  OCTA_REQUIRE_GPU();
  octa::BackendConfig bc;
  bc.arch = octa::Arch::kB;
  bc.max_batch = 64;
  octa::CudaBackendOptions cudnn;
  cudnn.conv = octa::ConvPath::kCudnn;
  const auto comm = octa::dist::make_single_process_communicator();
  CHECK_THROWS_WITH(octa::dist::DataParallelBackend(octa::make_cuda_backend(bc, cudnn), *comm,
                                                    /*sync_batchnorm=*/true),
                    Catch::Contains("--sync-bn on the GPU needs octa's fused BatchNorm kernels") &&
                        Catch::Contains("cuDNN's convolutions"));
}
