// engine/core/random_fill.hpp: seeded random values for checks (the tests' inputs, the kernel
// cases of engine/selfcheck/): Philox, so identical on every platform and compiler, and never zero.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "engine/core/philox.hpp"

namespace octa {

// Uniform double in [0, 1) with 53 random bits.
inline double uniform01_53(PhiloxStream& s) {
  const std::uint64_t hi = s.next_u32() >> 5, lo = s.next_u32() >> 6;  // 27 + 26 bits
  return static_cast<double>((hi << 26) | lo) * (1.0 / 9007199254740992.0);
}

// Fills x with values uniform in [lo, hi], redrawing any value with |v| < min_abs so that no value
// is zero or within a finite-difference step of a ReLU kink. Same seed => same values.
template <class T>
void fill_uniform(std::span<T> x, std::uint64_t seed, double lo = -1.0, double hi = 1.0,
                  double min_abs = 1e-3) {
  PhiloxStream s(seed, 0x7e57);
  for (T& v : x) {
    double d = 0.0;
    do {
      d = lo + (hi - lo) * uniform01_53(s);
    } while (std::abs(d) < min_abs);
    v = static_cast<T>(d);
  }
}

// A new vector of n such values.
template <class T = double>
std::vector<T> random_vector(std::size_t n, std::uint64_t seed, double lo = -1.0, double hi = 1.0,
                             double min_abs = 1e-3) {
  std::vector<T> v(n);
  fill_uniform(std::span<T>(v), seed, lo, hi, min_abs);
  return v;
}

}  // namespace octa
