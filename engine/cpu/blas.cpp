// engine/cpu/blas.cpp: the row-major GEMM wrapper over cblas_sgemm / cblas_dgemm.
#include "engine/cpu/blas.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <type_traits>

#include <cblas.h>
#include <spdlog/spdlog.h>

#include "engine/core/error.hpp"

namespace octa::cpu {

namespace {

void check_gemm_args(bool trans_a, bool trans_b, int M, int N, int K, int lda, int ldb, int ldc) {
  OCTA_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm: negative size M={} N={} K={}", M, N, K);
  const int min_lda = std::max(1, trans_a ? M : K);
  const int min_ldb = std::max(1, trans_b ? K : N);
  const int min_ldc = std::max(1, N);
  OCTA_CHECK(lda >= min_lda, "gemm: lda={} is below {} (M={} K={} trans_a={})", lda, min_lda, M, K,
             trans_a);
  OCTA_CHECK(ldb >= min_ldb, "gemm: ldb={} is below {} (K={} N={} trans_b={})", ldb, min_ldb, K, N,
             trans_b);
  OCTA_CHECK(ldc >= min_ldc, "gemm: ldc={} is below {} (N={})", ldc, min_ldc, N);
}

CBLAS_TRANSPOSE op(bool trans) {
  return trans ? CblasTrans : CblasNoTrans;
}

}  // namespace

template <class T>
void gemm(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda, const T* B,
          int ldb, T beta, T* C, int ldc) {
  check_gemm_args(trans_a, trans_b, M, N, K, lda, ldb, ldc);
  if (M == 0 || N == 0) return;
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, op(trans_a), op(trans_b), M, N, K, alpha, A, lda, B, ldb, beta, C,
                ldc);
  } else {
    static_assert(std::is_same_v<T, double>, "gemm: float or double only");
    cblas_dgemm(CblasRowMajor, op(trans_a), op(trans_b), M, N, K, alpha, A, lda, B, ldb, beta, C,
                ldc);
  }
}

void set_blas_threads(int n) {
  OCTA_CHECK(n > 0, "set_blas_threads: {} threads", n);
  static std::atomic<int> in_force{0};  // 0: whatever OpenBLAS started with
  if (in_force.exchange(n) != n) openblas_set_num_threads(n);
}

BlasInfo blas_info() {
  BlasInfo info;
  const char* config = openblas_get_config();
  const char* core = openblas_get_corename();
  info.config = config != nullptr ? config : "";
  info.core = core != nullptr ? core : "";
  info.threads = openblas_get_num_threads();
  return info;
}

void reexec_with_tuned_blas(char** argv) {
  if (std::getenv("OPENBLAS_CORETYPE") || std::getenv("OCTA_NO_BLAS_REEXEC")) return;
  if (!blas_info().generic_kernels()) return;
  const char* core = nullptr;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    core = "SkylakeX";
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    core = "Haswell";
  }
  if (core == nullptr) return;
  // The guard variable makes a second generic pick (a library that ignores the variable) final.
  ::setenv("OPENBLAS_CORETYPE", core, 1);
  ::setenv("OCTA_NO_BLAS_REEXEC", "1", 1);
  ::execv("/proc/self/exe", argv);
  spdlog::debug("OpenBLAS uses generic kernels; re-running with OPENBLAS_CORETYPE={} failed", core);
}

template void gemm<float>(bool, bool, int, int, int, float, const float*, int, const float*, int,
                          float, float*, int);
template void gemm<double>(bool, bool, int, int, int, double, const double*, int, const double*,
                           int, double, double*, int);

}  // namespace octa::cpu
