// tests/test_torch_interop.cpp: octa's safetensors load into the tutorial's PyTorch modules with
// load_state_dict(strict=True) and give the same eval-mode logits. Needs python3 with torch and
// safetensors (the GPU machine has them); skips with the reason elsewhere.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "engine/io/checkpoint.hpp"
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
