// tests/emulation/emul_cuda.hpp: the CUDA dialect as host C++, for the sources that
// tests/emulation/rewrite_cu.py generates from kernels/*.cu (each starts by including this file).
// It also stands in for octa's engine/cuda/check.hpp and engine/cuda/nvtx.hpp (the rewriter points
// those includes here), so the emulated launchers need neither libcudart, cuBLAS, cuDNN nor NVTX:
// only the CUDA toolkit's headers, for dim3, float4, cudaError_t and the like.
//
// What the rewriter does not rewrite and this file supplies: the CUDA keywords (empty on the
// host), the device intrinsics the kernels may call, atomics (real atomics: blocks in flight run
// concurrently), and OCTA_CUDA_CHECK / OCTA_CUDA_CHECK_LAUNCH / NvtxRange over the emulator.
//
// Intrinsics are emulated by their correctly rounded host counterparts. The _rn ones are then
// exact; the approximate ones (__expf, rsqrtf, __fdividef, ...) are more accurate here than on the
// GPU, a difference the tests' tolerances (tests/support/compare.hpp) must cover.
#pragma once

#include <cuda_runtime_api.h>
#include <vector_functions.h>  // make_float4 and friends (host inline functions)

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include <fmt/format.h>

#include "engine/core/error.hpp"
#include "tests/emulation/emul.hpp"

// ---------------------------------------------------------------------------------------------
// Keywords. crt/host_defines.h already makes these empty for a host compiler; say so explicitly.
// __shared__ and __launch_bounds__ never reach the compiler: the rewriter turns them into calls.
#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __host__
#define __host__

// ---------------------------------------------------------------------------------------------
// Intrinsics. Each _rn result passes through an empty asm so that the host compiler cannot fuse
// it into an FMA whatever -ffp-contract says (the GPU rounds each of them separately too).
namespace emul::detail {
template <class T>
inline T rounded(T r) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm("" : "+x"(r));
#elif defined(__GNUC__)
  asm("" : "+w"(r));
#endif
  return r;
}
}  // namespace emul::detail

inline float __fadd_rn(float a, float b) {
  return emul::detail::rounded(a + b);
}
inline float __fsub_rn(float a, float b) {
  return emul::detail::rounded(a - b);
}
inline float __fmul_rn(float a, float b) {
  return emul::detail::rounded(a * b);
}
inline float __fdiv_rn(float a, float b) {
  return emul::detail::rounded(a / b);
}
inline float __frcp_rn(float a) {
  return emul::detail::rounded(1.0f / a);
}
inline float __fsqrt_rn(float a) {
  return std::sqrt(a);
}
inline float __fmaf_rn(float a, float b, float c) {
  return std::fma(a, b, c);
}
inline double __dadd_rn(double a, double b) {
  return emul::detail::rounded(a + b);
}
inline double __dsub_rn(double a, double b) {
  return emul::detail::rounded(a - b);
}
inline double __dmul_rn(double a, double b) {
  return emul::detail::rounded(a * b);
}
inline double __ddiv_rn(double a, double b) {
  return emul::detail::rounded(a / b);
}
inline double __fma_rn(double a, double b, double c) {
  return std::fma(a, b, c);
}
// Approximate on the GPU, correctly rounded here.
inline float __expf(float a) {
  return std::exp(a);
}
inline float __logf(float a) {
  return std::log(a);
}
inline float __powf(float a, float b) {
  return std::pow(a, b);
}
inline float __fdividef(float a, float b) {
  return a / b;
}
inline float rsqrtf(float a) {
  return 1.0f / std::sqrt(a);
}
inline double rsqrt(double a) {
  return 1.0 / std::sqrt(a);
}
inline float __saturatef(float a) {
  return a < 0.0f ? 0.0f : (a > 1.0f ? 1.0f : a);
}
// Bit casts.
inline int __float_as_int(float a) {
  int r;
  std::memcpy(&r, &a, sizeof r);
  return r;
}
inline unsigned __float_as_uint(float a) {
  unsigned r;
  std::memcpy(&r, &a, sizeof r);
  return r;
}
inline float __int_as_float(int a) {
  float r;
  std::memcpy(&r, &a, sizeof r);
  return r;
}
inline float __uint_as_float(unsigned int a) {
  float r;
  std::memcpy(&r, &a, sizeof r);
  return r;
}
// Loads through the read-only cache: plain loads here.
template <class T>
inline T __ldg(const T* p) {
  return *p;
}
// A kernel's trap (as device-side failures do): the launch fails with the thread named.
[[noreturn]] inline void __trap() {
  throw std::runtime_error("__trap() called");
}
// Memory fences.
inline void __threadfence() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
}
inline void __threadfence_block() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

// ---------------------------------------------------------------------------------------------
// Atomics: real ones, since CUDA threads (and blocks in flight) run concurrently here.
template <class T>
inline T atomicAdd(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_add(v);
}
template <class T>
inline T atomicSub(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_sub(v);
}
template <class T>
inline T atomicExch(T* p, T v) {
  return std::atomic_ref<T>(*p).exchange(v);
}
template <class T>
inline T atomicCAS(T* p, T compare, T v) {
  std::atomic_ref<T>(*p).compare_exchange_strong(compare, v);
  return compare;  // the old value, whether or not it was replaced
}
template <class T>
inline T atomicMax(T* p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (old < v && !a.compare_exchange_weak(old, v)) {
  }
  return old;
}
template <class T>
inline T atomicMin(T* p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (v < old && !a.compare_exchange_weak(old, v)) {
  }
  return old;
}

// ---------------------------------------------------------------------------------------------
// engine/cuda/check.hpp over the emulator: the same macros and octa::CudaError, with the
// emulator's cudaGetLastError (whose sticky error is set by a rejected launch configuration).
namespace octa {

class CudaError : public Error {
 public:
  using Error::Error;
};

namespace emul_detail {
[[noreturn]] inline void throw_cuda(cudaError_t status, const char* expr, const char* file,
                                    int line) {
  throw CudaError(fmt::format("CUDA error {} (emulated: {}) in {} at {}:{}",
                              ::emul::error_name(status), ::emul::last_error_detail(), expr, file,
                              line));
}
}  // namespace emul_detail

}  // namespace octa

#define OCTA_CUDA_CHECK(expr)                                                   \
  do {                                                                          \
    const cudaError_t octa_status_ = (expr);                                    \
    if (octa_status_ != cudaSuccess)                                            \
      ::octa::emul_detail::throw_cuda(octa_status_, #expr, __FILE__, __LINE__); \
  } while (0)

#define OCTA_CUDA_CHECK_NOTHROW(expr) \
  do {                                \
    (void)(expr);                     \
  } while (0)

#define OCTA_CUDA_CHECK_LAUNCH() OCTA_CUDA_CHECK(::emul::cudaGetLastError())

// ---------------------------------------------------------------------------------------------
// engine/cuda/nvtx.hpp over the emulator: no NVTX; the range names the launcher in the records.
namespace octa::cuda {

class NvtxRange {
 public:
  explicit NvtxRange(const char* name) { ::emul::push_range(name); }
  ~NvtxRange() { ::emul::pop_range(); }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace octa::cuda
