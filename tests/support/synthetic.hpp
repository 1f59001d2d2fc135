// tests/support/synthetic.hpp: small random MNIST-shaped splits for tests that must not depend on
// the real data (checkpoint round trips, resume, determinism).
#pragma once

#include <cstdint>

#include "engine/core/philox.hpp"
#include "engine/data/mnist.hpp"

namespace octa::test {

inline data::Split synthetic_split(int count, std::uint64_t seed) {
  data::Split s;
  s.count = count;
  s.rows = 28;
  s.cols = 28;
  s.pixels.resize(static_cast<std::size_t>(count) * 28 * 28);
  s.labels.resize(static_cast<std::size_t>(count));
  PhiloxStream rng(seed, 12345);
  for (auto& p : s.pixels) p = static_cast<std::uint8_t>(rng.next_below(256));
  for (auto& l : s.labels) l = static_cast<std::uint8_t>(rng.next_below(10));
  return s;
}

}  // namespace octa::test
