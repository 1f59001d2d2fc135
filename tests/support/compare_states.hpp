// tests/support/compare_states.hpp: one backend's model state held to another's after the same
// training steps from the same initial parameters (GPU vs CPU reference, fast CPU vs reference,
// fused vs unfused GPU stages), with the one rule such comparisons need beyond the tolerance:
//
// In model B a BatchNorm follows each convolution and removes any per-channel constant, so the
// convolutions' bias gradients are exactly zero and every backend sees only its own rounding
// noise there. Adam normalises that noise into steps of up to lr in either direction, so after
// s Adam steps each of those biases may sit anywhere within s * lr of its initial value, and the
// running means that follow them within twice that. Those entries are bounded, not compared;
// everything else is compared with the given tolerance. (SGD moves them by lr times the noise
// itself, so an SGD comparison needs no such rule: pass adam_steps = 0.)
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/model/param_table.hpp"
#include "tests/support/compare.hpp"

namespace octa::test {

// Whether `name` is a convolution bias that a BatchNorm follows in this table's model.
inline bool bias_before_batchnorm(const ParamTable& table, const std::string& name) {
  const auto dot = name.find('.');
  if (dot == std::string::npos || name.substr(dot) != ".bias" || name.rfind("conv", 0) != 0) {
    return false;
  }
  const std::string bn = "bn" + name.substr(4, dot - 4) + ".weight";  // conv1.bias -> bn1.weight
  for (const auto& e : table.entries()) {
    if (e.name == bn) return true;
  }
  return false;
}

// got and want: the two backends' model states after `adam_steps` Adam steps of learning rate
// `lr` (0 steps: another optimiser, compared in full) from the parameters that init_parameters
// draws from `init_seed`.
inline void check_states_close(const ParamTable& table, const ModelState& got,
                               const ModelState& want, std::uint64_t init_seed, int adam_steps,
                               double lr, Tolerance t) {
  std::vector<float> init(table.num_total());
  init_parameters(table, init.data(), init_seed);
  const double wander = adam_steps * lr * 1.01;
  const bool adam = adam_steps > 0;
  for (const auto& e : table.entries()) {
    INFO(e.name);
    const float* g = got.values.data() + e.offset;
    const float* w = want.values.data() + e.offset;
    if (adam && bias_before_batchnorm(table, e.name)) {
      for (std::size_t i = 0; i < e.numel; ++i) {
        CHECK(std::abs(g[i] - init[e.offset + i]) <= wander);
        CHECK(std::abs(w[i] - init[e.offset + i]) <= wander);
      }
      continue;
    }
    if (adam && e.kind == ParamKind::kRunningMean) {
      for (std::size_t i = 0; i < e.numel; ++i) CHECK(std::abs(g[i] - w[i]) <= 2 * wander);
      continue;
    }
    OCTA_CHECK_CLOSE(e.name, g, w, e.numel, t);
  }
  CHECK(got.num_batches_tracked == want.num_batches_tracked);
}

}  // namespace octa::test
