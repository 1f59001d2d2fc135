// tests/test_torch_interop.cpp: octa's safetensors load into the tutorial's PyTorch modules with
// load_state_dict(strict=True) and give the same eval-mode logits. Needs python3 with torch and
// safetensors (the GPU machine has them); skips with the reason elsewhere.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine/core/philox.hpp"
#include "engine/io/checkpoint.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/train/cpu_backend.hpp"
#include "engine/train/trainer.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/synthetic.hpp"
#include "tests/support/temp_dir.hpp"

TEST_CASE("Weights saved by octa load into the PyTorch modules and predict the same",
          "[cpu][interop][torch]") {
  if (std::system("python3 -c \"import torch, safetensors.torch\" > /dev/null 2>&1") != 0) {
    OCTA_SKIP("python3 with torch and safetensors is not available here");
  }
  octa::test::TempDir dir("torch");
  const std::string script = std::string(OCTA_SOURCE_DIR) + "/tests/python/check_torch_load.py";
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

    constexpr int kN = 16;
    std::vector<float> x(kN * 28 * 28), logits(kN);
    octa::PhiloxStream rng(3, 4);
    for (auto& v : x) v = 2.0f * rng.next_uniform01() - 1.0f;
    backend->predict(x.data(), kN, logits.data());
    const auto cases = dir / "case.safetensors";
    octa::io::write_safetensors(cases, {{"x", octa::io::DType::kF32, {kN, 1, 28, 28}, x.data()},
                                        {"logits", octa::io::DType::kF32, {kN}, logits.data()}});
    const std::string cmd =
        fmt::format("python3 '{}' {} '{}' '{}'", script, arch == octa::Arch::kA ? "a" : "b",
                    weights.string(), cases.string());
    CHECK(std::system(cmd.c_str()) == 0);
  }
}
