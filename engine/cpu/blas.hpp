// engine/cpu/blas.hpp: a thin row-major GEMM over OpenBLAS's cblas, for float and double, so the
// CPU reference never includes cblas.h itself (its include directory is private to the library).
#pragma once

#include <string>

namespace octa::cpu {

// C (M x N) = alpha * op(A) * op(B) + beta * C, all row-major.
// op(A) is (M x K): A is (M x K) with leading dimension lda >= K, or (K x M) with lda >= M when
// trans_a. op(B) is (K x N): B is (K x N) with ldb >= N, or (N x K) with ldb >= K when trans_b.
// ldc >= N. Leading dimensions are checked here (an octa::Error, rather than BLAS's xerbla
// printing a message and leaving C untouched).
template <class T>
void gemm(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda, const T* B,
          int ldb, T beta, T* C, int ldc);

// OpenBLAS's own thread count for the calls that follow, on any thread. The reference path runs
// on OpenBLAS's threads alone; the fast CPU backend calls BLAS from its own threads and sets 1, so
// the two threading layers never run at once (idle OpenBLAS threads spin and yield against busy
// ones: the sched_yield storm of issue 15). Does nothing when n is already in force. n > 0.
void set_blas_threads(int n);

// What OpenBLAS is running, for the log: its build configuration, the kernel family it chose for
// this CPU, and its thread count. OpenBLAS 0.3.21 (Debian 12) does not recognise some recent Xeons
// under KVM and falls back to its generic "Prescott" (SSE3) kernels, about 3x slower than the
// SkylakeX ones on the same machine; OPENBLAS_CORETYPE=SkylakeX in the environment (read when the
// library is loaded, so before main) selects the right ones.
struct BlasInfo {
  std::string config;  // e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Prescott ..."
  std::string core;    // e.g. "SkylakeX", "Haswell", "Prescott"
  int threads = 0;
  bool generic_kernels() const { return core == "Prescott"; }
};
BlasInfo blas_info();

// Called first thing in main(argc, argv) by octa's executables. When OpenBLAS fell back to its
// generic kernels on a CPU that has AVX-512 or AVX2, and the user set no OPENBLAS_CORETYPE,
// re-executes the program once with OPENBLAS_CORETYPE naming the matching kernel family (the only
// way to choose it: OpenBLAS reads it when it is loaded, before main). OCTA_NO_BLAS_REEXEC=1 turns
// this off. Returns normally when nothing is to be done or the re-exec fails.
void reexec_with_tuned_blas(char** argv);

}  // namespace octa::cpu
