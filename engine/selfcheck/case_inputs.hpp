// engine/selfcheck/case_inputs.hpp: what the case files share to make their inputs: a seed from a
// case's text (stable on every platform, so a case draws the same values everywhere), element
// counts, ties for the max-pool's first-maximum rule, 0/1 targets, a ReLU'd copy.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "engine/core/random_fill.hpp"
#include "engine/cpu/ops.hpp"

namespace octa::selfcheck {

// FNV-1a of the text.
inline std::uint64_t seed_of(std::string_view text) {
  std::uint64_t h = 1469598103934665603ull;
  for (const char ch : text) {
    h ^= static_cast<unsigned char>(ch);
    h *= 1099511628211ull;
  }
  return h;
}

// The product of sizes, as an element count.
inline std::size_t count(int a, int b = 1, int c = 1, int d = 1) {
  return static_cast<std::size_t>(a) * static_cast<std::size_t>(b) * static_cast<std::size_t>(c) *
         static_cast<std::size_t>(d);
}

// Multiples of 1/4, so that many 2x2 windows hold ties and the first-maximum rule decides.
inline std::vector<float> with_ties(std::vector<float> v) {
  for (float& x : v) x = std::round(x * 4.0f) / 4.0f;
  return v;
}

// The CPU reference's ReLU of v: about half zeros for values in [-1, 1].
inline std::vector<float> relu_of(std::vector<float> v) {
  cpu::relu_forward(v.data(), v.data(), v.size());
  return v;
}

// Targets 0 or 1, `positive` of them 1 on average.
inline std::vector<float> binary_targets(std::size_t n, std::uint64_t seed,
                                         double positive = 1.0 / 3.0) {
  std::vector<float> t = random_vector<float>(n, seed, 0.0, 1.0);
  for (float& y : t) y = y < positive ? 1.0f : 0.0f;
  return t;
}

}  // namespace octa::selfcheck
