// engine/core/philox.hpp: Philox4x32-10, the counter-based random number generator behind every
// random choice octa makes (initial weights, the epoch shuffle, dropout masks).
//
// A counter-based generator is a pure function (key, counter) -> 4 random words, so the CPU
// reference and the CUDA kernels draw the *same* numbers for the same (seed, stream, index) with no
// state to carry: a dropout mask on the GPU is bit-identical to the CPU reference's, and a resumed
// run draws exactly what an uninterrupted one would. Usable from host and device code.
// Reference: Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC'11).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define OCTA_HD __host__ __device__ __forceinline__
#else
#define OCTA_HD inline
#endif

namespace octa {

struct Philox4x32 {
  std::uint32_t v[4];
};

namespace philox_detail {
constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

OCTA_HD void mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  hi = static_cast<std::uint32_t>(p >> 32);
  lo = static_cast<std::uint32_t>(p);
}
}  // namespace philox_detail

// Ten rounds of Philox4x32 on the 128-bit counter ctr with the 64-bit key.
OCTA_HD Philox4x32 philox4x32(std::uint64_t key, std::uint32_t c0, std::uint32_t c1,
                              std::uint32_t c2, std::uint32_t c3) {
  using namespace philox_detail;
  std::uint32_t k0 = static_cast<std::uint32_t>(key), k1 = static_cast<std::uint32_t>(key >> 32);
  std::uint32_t x0 = c0, x1 = c1, x2 = c2, x3 = c3;
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, x0, hi0, lo0);
    mulhilo(kM1, x2, hi1, lo1);
    const std::uint32_t y0 = hi1 ^ x1 ^ k0, y1 = lo1, y2 = hi0 ^ x3 ^ k1, y3 = lo0;
    x0 = y0; x1 = y1; x2 = y2; x3 = y3;
    k0 += kW0;
    k1 += kW1;
  }
  return Philox4x32{{x0, x1, x2, x3}};
}

// The i-th 32-bit word of stream `stream` under `key`: word i lives in block i/4, lane i%4.
OCTA_HD std::uint32_t philox_word(std::uint64_t key, std::uint64_t stream, std::uint64_t i) {
  const std::uint64_t block = i >> 2;
  const Philox4x32 r = philox4x32(key, static_cast<std::uint32_t>(block),
                                  static_cast<std::uint32_t>(block >> 32),
                                  static_cast<std::uint32_t>(stream),
                                  static_cast<std::uint32_t>(stream >> 32));
  return r.v[i & 3];
}

// Uniform float in [0, 1) from the top 24 bits of a word (exactly representable, never 1).
OCTA_HD float uniform01(std::uint32_t word) {
  return static_cast<float>(word >> 8) * (1.0f / 16777216.0f);
}

// A sequential reader over one Philox stream, for host code that draws numbers one at a time.
class PhiloxStream {
 public:
  PhiloxStream(std::uint64_t key, std::uint64_t stream) : key_(key), stream_(stream) {}

  std::uint32_t next_u32() { return philox_word(key_, stream_, index_++); }

  // Uniform integer in [0, bound), unbiased (Lemire's multiply-and-reject). bound > 0.
  std::uint32_t next_below(std::uint32_t bound) {
    std::uint64_t m = static_cast<std::uint64_t>(next_u32()) * bound;
    auto low = static_cast<std::uint32_t>(m);
    if (low < bound) {
      const std::uint32_t threshold = (0u - bound) % bound;
      while (low < threshold) {
        m = static_cast<std::uint64_t>(next_u32()) * bound;
        low = static_cast<std::uint32_t>(m);
      }
    }
    return static_cast<std::uint32_t>(m >> 32);
  }

  float next_uniform01() { return uniform01(next_u32()); }
  std::uint64_t position() const { return index_; }

 private:
  std::uint64_t key_, stream_, index_ = 0;
};

// Stream identifiers, so that no two uses of one seed ever draw the same numbers.
enum class RngStream : std::uint64_t {
  kInit = 1ull << 40,     // + parameter index in the table
  kShuffle = 2ull << 40,  // + epoch
  kDropout = 3ull << 40,  // + global step (and layer) index
  kHoldOut = 4ull << 40,  // + 0: which training images form the validation split (--val-size)
};

inline std::uint64_t rng_stream(RngStream base, std::uint64_t index) {
  return static_cast<std::uint64_t>(base) + index;
}

}  // namespace octa
