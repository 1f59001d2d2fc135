// tests/support/torch_check.hpp: the PyTorch side of the interop tests: whether python3 has torch
// and safetensors, and tests/python/check_torch_load.py run on a weights file and a backend that
// holds those weights (its eval-mode logits on seeded inputs are what PyTorch must reproduce).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine/core/philox.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/train/backend.hpp"
#include "tests/support/run_command.hpp"

namespace octa::test {

inline bool torch_available() {
  return std::system("python3 -c \"import torch, safetensors.torch\" > /dev/null 2>&1") == 0;
}

// Loads `weights` into the tutorial's module `arch` ("a" or "b") in PyTorch and compares its
// eval-mode logits on 16 seeded inputs with `backend`'s (which must hold the same weights); the
// case file goes to `case_file`. The script's exit status and what it printed.
inline CommandResult check_in_torch(const std::string& arch, const std::filesystem::path& weights,
                                    TrainingBackend& backend,
                                    const std::filesystem::path& case_file) {
  constexpr int kN = 16;
  std::vector<float> x(kN * 28 * 28), logits(kN);
  PhiloxStream rng(3, 4);
  for (auto& v : x) v = 2.0f * rng.next_uniform01() - 1.0f;
  backend.predict(x.data(), kN, logits.data());
  io::write_safetensors(case_file, {{"x", io::DType::kF32, {kN, 1, 28, 28}, x.data()},
                                    {"logits", io::DType::kF32, {kN}, logits.data()}});
  const std::filesystem::path script =
      std::filesystem::path(OCTA_SOURCE_DIR) / "tests/python/check_torch_load.py";
  return run_command("python3", fmt::format("{} {} {} {}", shell_quoted(script), arch,
                                            shell_quoted(weights), shell_quoted(case_file)));
}

}  // namespace octa::test
