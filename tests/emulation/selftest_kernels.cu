// tests/emulation/selftest_kernels.cu: small CUDA kernels that test the kernel emulator itself
// (see selftest_kernels.hpp). Rewritten by rewrite_cu.py exactly like kernels/*.cu; some kernels
// are wrong on purpose (a divergent __syncthreads, a trap), which the emulator must report.
#include "tests/emulation/selftest_kernels.hpp"

#include <mma.h>

#include <cstdint>

#include "engine/cuda/check.hpp"
#include "engine/cuda/nvtx.hpp"

namespace emul_selftest {

namespace {

using octa::cuda::NvtxRange;

__global__ void read_shared_before_write_kernel(float* out) {
  __shared__ float slots[64];
  const unsigned int t = threadIdx.x;
  out[blockIdx.x * 64 + t] = slots[t];
  __syncthreads();
  slots[t] = 1.0f;
}

__global__ void shared_alignment_kernel(unsigned int* out) {
  __shared__ float plain[8];
  __shared__ __align__(16) float wide[8];
  __shared__ double d, e;
  plain[0] = wide[0] = 0.0f;
  d = e = 0.0;
  out[0] = static_cast<unsigned int>(reinterpret_cast<std::uintptr_t>(&plain[0]) % 8);
  out[1] = static_cast<unsigned int>(reinterpret_cast<std::uintptr_t>(&wide[0]) % 32);
  out[2] = static_cast<unsigned int>(reinterpret_cast<std::uintptr_t>(&d) % 16);
  out[3] = static_cast<unsigned int>(reinterpret_cast<std::uintptr_t>(&e) % 16);
}

__global__ void record_block_order_kernel(int* order, int* counter) {
  if (threadIdx.x == 0) order[blockIdx.x] = atomicAdd(counter, 1);
}

__global__ void divergent_syncthreads_kernel(float* out, int k) {
  if (static_cast<int>(threadIdx.x) >= k) return;
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}

__global__ void syncthreads_at_two_sites_kernel(float* out) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1.0f;
}

__global__ void early_exit_kernel(float* out, int n) {
  __shared__ float s[64];
  const int t = static_cast<int>(threadIdx.x);
  s[t] = static_cast<float>(t);
  __syncthreads();
  if (t >= n) return;  // no __syncthreads() follows
  out[t] = s[n - 1 - t];
}

__global__ void trap_kernel(float* out) {
  if (threadIdx.x == 3) __trap();
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}

__global__ void __launch_bounds__(64) bounded_kernel(float* out) {
  out[threadIdx.x] = 1.0f;
}

__global__ void plain_kernel(float* out) {
  out[threadIdx.x] = 1.0f;
}

__global__ void dynamic_shared_kernel(float* out, const float* in, int n) {
  extern __shared__ float buf[];
  const int t = static_cast<int>(threadIdx.x);
  buf[t] = in[t];
  __syncthreads();
  out[t] = buf[n - 1 - t] + 1.0f;
}

template <int kThreads>
__global__ void __launch_bounds__(kThreads / 4 * 4)
    vector_loads_kernel(float* __restrict__ out, const float* __restrict__ in) {
  __shared__ __align__(16) float s[kThreads];
  const int t = static_cast<int>(threadIdx.x);
  s[t] = in[t];
  __syncthreads();
  const float4 v = reinterpret_cast<const float4*>(s)[t / 4];
  const float lane[4] = {v.x, v.y, v.z, v.w};
  out[t] = 2.0f * lane[t % 4];
}

// One warp: c (16x16, row-major) = a (16x8, row-major) * b (8x16, column-major) on TF32 fragments,
// each element converted with __float_to_tf32 first when `convert`.
__global__ void wmma_tile_product_kernel(float* c, const float* a, const float* b, bool convert) {
  namespace wmma = nvcuda::wmma;
  wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> fc;
  wmma::load_matrix_sync(fa, a, 8);
  wmma::load_matrix_sync(fb, b, 8);
  if (convert) {
    for (int i = 0; i < fa.num_elements; ++i) fa.x[i] = wmma::__float_to_tf32(fa.x[i]);
    for (int i = 0; i < fb.num_elements; ++i) fb.x[i] = wmma::__float_to_tf32(fb.x[i]);
  }
  wmma::fill_fragment(fc, 0.5f);
  wmma::mma_sync(fc, fa, fb, fc);
  wmma::store_matrix_sync(c, fc, 16, wmma::mem_row_major);
}

}  // namespace

void wmma_tile_product(float* c, const float* a, const float* b, bool convert, int threads) {
  wmma_tile_product_kernel<<<1, static_cast<unsigned int>(threads)>>>(c, a, b, convert);
  OCTA_CUDA_CHECK_LAUNCH();
}

void read_shared_before_write(float* out, int blocks) {
  read_shared_before_write_kernel<<<static_cast<unsigned int>(blocks), 64>>>(out);
  OCTA_CUDA_CHECK_LAUNCH();
}

void shared_alignment(unsigned int* out) {
  shared_alignment_kernel<<<1, 1>>>(out);
  OCTA_CUDA_CHECK_LAUNCH();
}

void record_block_order(int* order, int* counter, int blocks) {
  NvtxRange range("record_block_order");
  record_block_order_kernel<<<static_cast<unsigned int>(blocks), 32, 0, nullptr>>>(order, counter);
  OCTA_CUDA_CHECK_LAUNCH();
}

void divergent_syncthreads(float* out, int k) {
  divergent_syncthreads_kernel<<<1, 64>>>(out, k);
  OCTA_CUDA_CHECK_LAUNCH();
}

void syncthreads_at_two_sites(float* out) {
  syncthreads_at_two_sites_kernel<<<1, 64>>>(out);
  OCTA_CUDA_CHECK_LAUNCH();
}

void early_exit_after_last_barrier(float* out, int n) {
  early_exit_kernel<<<1, 64>>>(out, n);
  OCTA_CUDA_CHECK_LAUNCH();
}

void one_thread_traps(float* out) {
  trap_kernel<<<1, 64>>>(out);
  OCTA_CUDA_CHECK_LAUNCH();
}

void launch_bounds_64(float* out, int threads) {
  bounded_kernel<<<1, static_cast<unsigned int>(threads)>>>(out);
  OCTA_CUDA_CHECK_LAUNCH();
}

void launch_block_of(float* out, int threads) {
  plain_kernel<<<1, static_cast<unsigned int>(threads)>>>(out);
  OCTA_CUDA_CHECK_LAUNCH();
}

void unchecked_launch(float* out) {
  plain_kernel<<<1, 1>>>(out);
}

void dynamic_shared_copy(float* out, const float* in, int n) {
  const auto count = static_cast<std::size_t>(n);
  OCTA_CUDA_CHECK(cudaMemsetAsync(out, 0, 2 * count * sizeof(float), nullptr));
  dynamic_shared_kernel<<<1, static_cast<unsigned int>(n), count * sizeof(float), nullptr>>>(out,
                                                                                             in, n);
  OCTA_CUDA_CHECK_LAUNCH();
  OCTA_CUDA_CHECK(
      cudaMemcpyAsync(out + n, out, count / 2 * sizeof(float), cudaMemcpyDeviceToDevice, nullptr));
  OCTA_CUDA_CHECK(cudaStreamSynchronize(nullptr));
}

void vector_loads(float* out, const float* in) {
  vector_loads_kernel<64><<<1, 64>>>(out, in);
  OCTA_CUDA_CHECK_LAUNCH();
}

}  // namespace emul_selftest
