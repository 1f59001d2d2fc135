// tests/emulation/selftest_kernels.hpp: launchers of small CUDA kernels that exist only to test the
// kernel emulator itself (tests/emulation/selftest_kernels.cu, run through the same rewrite as
// kernels/*.cu): that it reports what it promises to report (divergent __syncthreads, faults in
// one thread, launch bounds, invalid configurations, unchecked launches) and runs kernels as CUDA
// does (fresh poisoned shared memory per block, alignment, block order, dynamic shared memory,
// runtime calls, WMMA fragments). Valid CUDA, never compiled by nvcc in the build (it is not under
// kernels/).
#pragma once

#include <cuda_runtime_api.h>

namespace emul_selftest {

// out: (blocks * 64). Every thread reads its shared slot before any thread writes it, then the
// block writes the slots: each block must see only the poison (0xFF bytes), never 1.0f.
void read_shared_before_write(float* out, int blocks);

// out: (4) = {address % 8 of a __shared__ float[8], address % 32 of an __align__(16) one, ...}.
void shared_alignment(unsigned int* out);

// order: (blocks): thread 0 of each block stores atomicAdd(counter, 1), the block's rank in time.
void record_block_order(int* order, int* counter, int blocks);

// Threads 0 .. k-1 of a 64-thread block call __syncthreads(); the others return before it.
void divergent_syncthreads(float* out, int k);

// Threads of one block wait at two different __syncthreads() calls.
void syncthreads_at_two_sites(float* out);

// Threads return early after the block's last __syncthreads(): allowed. out: (n) = n - 1 - i.
void early_exit_after_last_barrier(float* out, int n);

// Thread 3 of a 64-thread block traps while the others wait at a __syncthreads().
void one_thread_traps(float* out);

// A __launch_bounds__(64) kernel launched with `threads` threads per block. out: (threads).
void launch_bounds_64(float* out, int threads);

// A kernel launched with `threads` threads per block (over 1024 is an invalid configuration).
void launch_block_of(float* out, int threads);

// A launch that is not followed by cudaGetLastError().
void unchecked_launch(float* out);

// out: (2n), in: (n). cudaMemsetAsync(out, 0), then out[i] = in[n - 1 - i] + 1 through n floats of
// dynamic shared memory, then cudaMemcpyAsync(out + n, out, n / 2 floats).
void dynamic_shared_copy(float* out, const float* in, int n);

// out: (64) = in * 2 through float4 loads from __align__(16) shared memory, in a templated kernel
// with template-dependent launch bounds. in: (64), 16-byte aligned.
void vector_loads(float* out, const float* in);

// One block of `threads` threads computes c (16x16, row-major) = 0.5 + a (16x8, row-major) *
// b (8x16, column-major, ldm 8) with WMMA TF32 fragments, converting every element with
// __float_to_tf32 first if `convert` (without it, the emulator must refuse unconverted values).
// a and b must be 32-byte aligned for WMMA; the emulator refuses them otherwise.
void wmma_tile_product(float* c, const float* a, const float* b, bool convert, int threads);

}  // namespace emul_selftest
