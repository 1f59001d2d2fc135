// tests/support/optimizer_cases.hpp: the optimiser settings that the device kernel tests
// (test_gpu_kernels.cpp) and the emulated ones (tests/emulation/) both sweep, kept in one place.
#pragma once

#include "engine/optim/optimizer.hpp"

namespace octa::test {

struct SgdCase {
  double momentum, dampening, weight_decay;
  bool nesterov;
};
// Plain, momentum, momentum with dampening and weight decay, Nesterov.
inline constexpr SgdCase kSgdCases[] = {
    {0.0, 0.0, 0.0, false}, {0.9, 0.0, 0.0, false}, {0.9, 0.1, 1e-3, false}, {0.9, 0.0, 0.0, true}};

inline OptimizerConfig sgd_config(const SgdCase& sc) {
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::kSgd;
  cfg.lr = 0.05;
  cfg.momentum = sc.momentum;
  cfg.dampening = sc.dampening;
  cfg.weight_decay = sc.weight_decay;
  cfg.nesterov = sc.nesterov;
  return cfg;
}

// PyTorch's Adam defaults (betas (0.9, 0.999), eps 1e-8) with a larger step, so 20 steps move.
inline OptimizerConfig adam_config(double weight_decay) {
  OptimizerConfig cfg;
  cfg.lr = 3e-3;
  cfg.weight_decay = weight_decay;
  return cfg;
}

}  // namespace octa::test
