// tests/test_gpu_dist.cpp: [gpu] the CUDA engine's data-parallel path (engine/gpu/nccl_gradients,
// engine/dist/): on one rank, with NCCL's communicator of one GPU made through the single-process
// communicator, the gradients' all-reduce and the running statistics' broadcast inside the step
// (and its captured graph) must change no bit against the plain engine, for both models. Skips
// where there is no GPU. Two or more GPUs: run train_gpu under mpirun on such a machine. --sync-bn
// is refused on this path, with the reason.
#include <catch2/catch.hpp>

#include <memory>

#include "engine/core/device_probe.hpp"
#include "engine/dist/communicator.hpp"
#include "engine/dist/data_parallel.hpp"
#include "engine/gpu/cuda_backend.hpp"
#include "engine/gpu/nccl_gradients.hpp"
#include "engine/train/cpu_backend.hpp"
#include "engine/train/trainer.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/synthetic.hpp"

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
  octa::TrainOptions opt;
  opt.epochs = 1;
  opt.batch_size = 64;
  opt.test_batch_size = 100;
  opt.seed = 2;
  opt.record_step_losses = true;
  const octa::TrainReport a = octa::train(*plain, split, split, opt);
  const octa::TrainReport b = octa::train(dp, split, split, opt);
  CHECK(a.step_losses == b.step_losses);
  CHECK(a.test_logits == b.test_logits);
  CHECK(plain->model_state().values == dp.model_state().values);
  CHECK(plain->optimizer_state().m == dp.optimizer_state().m);
  dp.check_replicas("after the epoch");
}

TEST_CASE("GPU data-parallel refuses --sync-bn, saying it is not supported there yet",
          "[gpu][dist]") {
  OCTA_REQUIRE_GPU();
  octa::BackendConfig bc;
  bc.arch = octa::Arch::kB;
  bc.max_batch = 64;
  const auto comm = octa::dist::make_single_process_communicator();
  CHECK_THROWS_WITH(octa::dist::DataParallelBackend(octa::make_cuda_backend(bc, {}), *comm,
                                                    /*sync_batchnorm=*/true),
                    Catch::Contains("--sync-bn: not yet supported on the GPU path"));
}
