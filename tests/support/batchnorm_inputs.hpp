// tests/support/batchnorm_inputs.hpp: one BatchNorm configuration's random inputs, the same for the
// CPU reference and the kernel under test (test_gpu_kernels.cpp on a device, tests/emulation/ on
// the emulator).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/support/gradcheck.hpp"

namespace octa::test {

struct BnInputs {
  int N, C, HW;
  std::vector<float> x, gamma, beta, running_mean, running_var, dout;

  BnInputs(int n, int c, int hw, std::uint64_t seed)
      : N(n),
        C(c),
        HW(hw),
        x(random_vector<float>(count(n, c, hw), seed, -2.0, 3.0)),  // mean far from 0
        gamma(random_vector<float>(count(1, c, 1), seed + 1, 0.5, 1.5)),
        beta(random_vector<float>(count(1, c, 1), seed + 2, -0.5, 0.5)),
        running_mean(random_vector<float>(count(1, c, 1), seed + 3, -0.2, 0.2)),
        running_var(random_vector<float>(count(1, c, 1), seed + 4, 0.5, 1.5)),
        dout(random_vector<float>(x.size(), seed + 5)) {}
  std::size_t size() const { return x.size(); }
  std::string str() const {
    return "N " + std::to_string(N) + " C " + std::to_string(C) + " HW " + std::to_string(HW);
  }

 private:
  static std::size_t count(int n, int c, int hw) {
    return static_cast<std::size_t>(n) * static_cast<std::size_t>(c) * static_cast<std::size_t>(hw);
  }
};

}  // namespace octa::test
