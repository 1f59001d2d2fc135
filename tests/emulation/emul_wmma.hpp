// tests/emulation/emul_wmma.hpp: CUDA's warp matrix API (<mma.h>, nvcuda::wmma) for the kernel
// emulator, so the tensor-core kernels of kernels/*.cu run on a CPU. tests/emulation/rewrite_cu.py
// points `#include <mma.h>` here.
//
// Only what octa's kernels use is modelled: TF32 fragments of shape m16n16k8 (matrix_a, matrix_b,
// row- or column-major) with a float accumulator, fill/load/store/mma_sync and __float_to_tf32.
// Anything else fails to compile (a static_assert names it) rather than be emulated wrongly.
//
// How a warp-wide operation is emulated without a warp. The emulator runs every CUDA thread as a
// thread of its own and knows nothing of warps; a WMMA kernel is, by the API's contract, written
// without relying on which lane holds which element. So:
//   - an input fragment (matrix_a / matrix_b) holds the whole 16x8 / 8x16 tile in every lane
//     (num_elements = 128, logical row-major order). load_matrix_sync reads all of it; element-wise
//     code on x[] (the TF32 conversion, the 3xTF32 split) then sees every element, as the union of
//     the lanes does on the GPU;
//   - an accumulator holds, in lane L, the 8 elements j * 32 + L (j = 0..7) of the 16x16 tile, the
//     GPU's count per lane; mma_sync computes exactly those, and store_matrix_sync writes exactly
//     those, so a warp's 32 lanes together write each element of the tile once (a missing
//     __syncthreads between a store and another thread's read is then visible as a race or as the
//     emulator's poisoned shared memory). The lane is the thread's index in its block modulo 32, as
//     on the GPU; a block whose size is not a multiple of 32 is refused.
// What is checked, as the GPU requires (where it would give undefined results instead):
//   - a load/store pointer is 32-byte aligned and ldm is a multiple of 4 (16 bytes of float) and at
//     least the tile's row (or column) length;
//   - every finite element of a TF32 input fragment passed to mma_sync has its low 13 mantissa bits
//     clear, i.e. went through __float_to_tf32 (the tensor core ignores those bits; a kernel that
//     forgets the conversion would silently compute something else).
// What is not modelled: that all 32 lanes call each operation with the same arguments (the kernels
// compute the pointer from the warp index only), and the tensor core's internal summation order:
// mma_sync here adds the 8 products one by one in float, in k order, after the accumulator; the
// products of TF32 values are exact in float, so only the order of the additions differs from the
// GPU, which the tests' tolerances cover.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "tests/emulation/emul.hpp"

namespace nvcuda::wmma {

struct row_major;
struct col_major;
struct matrix_a;
struct matrix_b;
struct accumulator;
namespace precision {
struct tf32;
}  // namespace precision

enum layout_t { mem_row_major, mem_col_major };

namespace detail {

constexpr int kLanes = 32;

inline int lane() {
  const auto& t = ::emul::tl;
  const unsigned threads = t.bdim.x * t.bdim.y * t.bdim.z;
  if (threads % kLanes != 0) {
    throw std::runtime_error("wmma: a block of " + std::to_string(threads) +
                             " threads has a partial warp; WMMA needs whole warps");
  }
  const unsigned linear = t.tid.x + t.bdim.x * (t.tid.y + t.bdim.y * t.tid.z);
  return static_cast<int>(linear % kLanes);
}

inline void check_pointer(const void* p, unsigned ldm, int row_len, const char* what) {
  if (reinterpret_cast<std::uintptr_t>(p) % 32 != 0) {
    throw std::runtime_error(std::string("wmma: ") + what + ": pointer not 32-byte aligned");
  }
  if (ldm % 4 != 0 || ldm < static_cast<unsigned>(row_len)) {
    throw std::runtime_error(std::string("wmma: ") + what + ": ldm " + std::to_string(ldm) +
                             " must be a multiple of 4 and at least " + std::to_string(row_len));
  }
}

inline bool is_tf32(float v) {
  std::uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return !std::isfinite(v) || (b & 0x1FFFu) == 0;
}

// Element (r, c) of a rows x cols tile stored with leading dimension ldm.
inline std::size_t at(bool row_major, int r, int c, unsigned ldm) {
  return row_major ? static_cast<std::size_t>(r) * ldm + static_cast<std::size_t>(c)
                   : static_cast<std::size_t>(c) * ldm + static_cast<std::size_t>(r);
}

}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
  static_assert(M == 16 && N == 16 && K == 8,
                "the kernel emulator models WMMA's m16n16k8 (TF32) shape only");
  static constexpr bool kInput = std::is_same_v<Use, matrix_a> || std::is_same_v<Use, matrix_b>;
  static_assert(!kInput || std::is_same_v<T, precision::tf32>,
                "the kernel emulator models TF32 input fragments only");
  static_assert(kInput || (std::is_same_v<Use, accumulator> && std::is_same_v<T, float>),
                "the kernel emulator models float accumulators only");
  static_assert(!kInput || std::is_same_v<Layout, row_major> || std::is_same_v<Layout, col_major>,
                "an input fragment needs row_major or col_major");

 public:
  using element_type = float;
  static constexpr int kRows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int kCols = std::is_same_v<Use, matrix_a> ? K : N;
  static constexpr int num_elements = kInput ? kRows * kCols : kRows * kCols / detail::kLanes;
  float x[num_elements];
};

template <class Use, int M, int N, int K, class T, class L>
void fill_fragment(fragment<Use, M, N, K, T, L>& f, float v) {
  for (float& e : f.x) e = v;
}

// Input fragments: the whole tile in every lane.
template <class Use, int M, int N, int K, class L>
void load_matrix_sync(fragment<Use, M, N, K, precision::tf32, L>& f, const float* p, unsigned ldm) {
  using F = fragment<Use, M, N, K, precision::tf32, L>;
  constexpr bool kRowMajor = std::is_same_v<L, row_major>;
  detail::check_pointer(p, ldm, kRowMajor ? F::kCols : F::kRows, "load_matrix_sync");
  for (int r = 0; r < F::kRows; ++r) {
    for (int c = 0; c < F::kCols; ++c) f.x[r * F::kCols + c] = p[detail::at(kRowMajor, r, c, ldm)];
  }
}

// Accumulators: the lane's own 8 elements.
template <int M, int N, int K>
void load_matrix_sync(fragment<accumulator, M, N, K, float>& f, const float* p, unsigned ldm,
                      layout_t layout) {
  const bool row_major = layout == mem_row_major;
  detail::check_pointer(p, ldm, row_major ? N : M, "load_matrix_sync");
  const int lane = detail::lane();
  for (int j = 0; j < f.num_elements; ++j) {
    const int e = j * detail::kLanes + lane;
    f.x[j] = p[detail::at(row_major, e / N, e % N, ldm)];
  }
}

template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm,
                       layout_t layout) {
  const bool row_major = layout == mem_row_major;
  detail::check_pointer(p, ldm, row_major ? N : M, "store_matrix_sync");
  const int lane = detail::lane();
  for (int j = 0; j < f.num_elements; ++j) {
    const int e = j * detail::kLanes + lane;
    p[detail::at(row_major, e / N, e % N, ldm)] = f.x[j];
  }
}

// d = a * b + c for the lane's elements of d. d may be c.
template <int M, int N, int K, class LA, class LB>
void mma_sync(fragment<accumulator, M, N, K, float>& d,
              const fragment<matrix_a, M, N, K, precision::tf32, LA>& a,
              const fragment<matrix_b, M, N, K, precision::tf32, LB>& b,
              const fragment<accumulator, M, N, K, float>& c) {
  for (const float v : a.x) {
    if (!detail::is_tf32(v)) {
      throw std::runtime_error(
          "wmma::mma_sync: a matrix_a element is not TF32 (convert it with "
          "wmma::__float_to_tf32 first)");
    }
  }
  for (const float v : b.x) {
    if (!detail::is_tf32(v)) {
      throw std::runtime_error(
          "wmma::mma_sync: a matrix_b element is not TF32 (convert it with "
          "wmma::__float_to_tf32 first)");
    }
  }
  const int lane = detail::lane();
  float out[fragment<accumulator, M, N, K, float>::num_elements];
  for (int j = 0; j < d.num_elements; ++j) {
    const int e = j * detail::kLanes + lane, r = e / N, col = e % N;
    float s = c.x[j];
    for (int k = 0; k < K; ++k) s += a.x[r * K + k] * b.x[k * N + col];  // exact products
    out[j] = s;
  }
  for (int j = 0; j < d.num_elements; ++j) d.x[j] = out[j];
}

// cvt.rna.tf32.f32: round to the nearest TF32 value (10 mantissa bits), ties away from zero; the
// low 13 bits of the result are zero. A NaN stays a NaN.
inline float __float_to_tf32(float v) {
  if (std::isnan(v)) return v;
  std::uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  b = (b + 0x1000u) & 0xFFFFE000u;
  float r;
  std::memcpy(&r, &b, sizeof r);
  return r;
}

}  // namespace nvcuda::wmma
