// kernels/conv3x3_tc.cu: the tensor-core 3x3 convolutions of kernels/conv3x3_tc.hpp: one implicit-
// GEMM kernel for the forward (optionally with ReLU, or ReLU and the 2x2 max-pool) and, over the
// flipped and transposed weights, the backward-data pass; one for the backward filter's per-slice
// partial sums, reduced by conv3x3.cu's stage 2. All products in 3xTF32 (WMMA m16n16k8).
#include "kernels/conv3x3_tc.hpp"

#include <mma.h>

#include <climits>

#include "engine/core/error.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/nvtx.hpp"
#include "kernels/batchnorm_stats.cuh"
#include "kernels/conv3x3_plan.hpp"
#include "kernels/launch_checks.hpp"
#include "kernels/maxpool_window.cuh"

namespace octa::gpu {

namespace {

namespace wmma = nvcuda::wmma;
using namespace conv_detail;
using cuda::NvtxRange;

constexpr int kWarpThreads = 32;
constexpr int kTile = 16;  // WMMA's m and n
constexpr int kStep = 8;   // WMMA's k for TF32

using AccFrag = wmma::fragment<wmma::accumulator, kTile, kTile, kStep, float>;
template <class Layout>
using AFrag = wmma::fragment<wmma::matrix_a, kTile, kTile, kStep, wmma::precision::tf32, Layout>;
template <class Layout>
using BFrag = wmma::fragment<wmma::matrix_b, kTile, kTile, kStep, wmma::precision::tf32, Layout>;

constexpr int cmax(int a, int b) {
  return a > b ? a : b;
}

// Loads a tile of floats and splits it for 3xTF32: hi = tf32(x), lo = tf32(x - hi), so that
// hi + lo carries about 21 of x's 24 significant bits. Element-wise, so independent of which lane
// holds which element.
template <class Frag>
__device__ __forceinline__ void load_split(Frag& hi, Frag& lo, const float* p, unsigned ldm) {
  wmma::load_matrix_sync(hi, p, ldm);
#pragma unroll
  for (int i = 0; i < hi.num_elements; ++i) {
    const float v = hi.x[i];
    const float h = wmma::__float_to_tf32(v);
    hi.x[i] = h;
    lo.x[i] = wmma::__float_to_tf32(v - h);
  }
}

// acc += a * b to float32 accuracy: the two cross terms first (they are the small ones), then the
// main term; a_lo * b_lo (about 2^-22 of the product) is left out.
template <class FA, class FB>
__device__ __forceinline__ void mma_3xtf32(AccFrag& acc, const FA& a_hi, const FA& a_lo,
                                           const FB& b_hi, const FB& b_lo) {
  wmma::mma_sync(acc, a_lo, b_hi, acc);
  wmma::mma_sync(acc, a_hi, b_lo, acc);
  wmma::mma_sync(acc, a_hi, b_hi, acc);
}

// A pixel of the batch a block works on: image n (-1: none, past the pixels it covers), row y,
// column x. Both kernels keep a table of them in shared memory, one per GEMM row.
struct Pixel {
  int n, y, x;
};

// Pixel m of the batch in row-major order (n, y, x), or none at or past `end`.
__device__ __forceinline__ Pixel row_major_pixel(long long m, long long end, int H, int W) {
  if (m >= end) return {-1, 0, 0};
  const long long row = m / W;
  return {static_cast<int>(row / H), static_cast<int>(row % H), static_cast<int>(m % W)};
}

// The im2col element of pixel p for input channel c and tap t = ky * 3 + kx:
// in[n][c][y + ky - 1][x + kx - 1] of an (N, C, H, W) input, 0 outside the image (the padding),
// for c >= C (a partial chunk) and for no pixel.
__device__ __forceinline__ float im2col_at(const float* __restrict__ in, Pixel p, int c, int t,
                                           int C, int H, int W) {
  const int gy = p.y + t / 3 - 1, gx = p.x + t % 3 - 1;
  if (p.n < 0 || c >= C || gy < 0 || gy >= H || gx < 0 || gx >= W) return 0.0f;
  return in[(static_cast<std::size_t>(p.n) * C + c) * (static_cast<std::size_t>(H) * W) +
            static_cast<std::size_t>(gy * W + gx)];
}

// =============================================================================================
// Forward and backward data: C[m][o] = sum over k of A[m][k] * B[k][o].
//
// m is an output pixel (n, y, x), o an output channel, k = (c, t) an input channel and a tap
// t = ky * 3 + kx: A[m][(c, t)] = in[n][c][y + ky - 1][x + kx - 1] (0 outside the image: the
// padding), B[(c, t)][o] = w[o][c][t]. kFlip: the backward-data pass, din = conv3x3(dout, w') with
// w'[o][c][t] = w[c][o][8 - t] (the kernel's input channels are the layer's Cout, its output
// channels the layer's Cin), as conv3x3.cu's direct kernel does it; the transpose and flip happen
// while staging B.
//
// A block computes kBM = 64 pixels x BN output channels with 4 warps, warp w the pixels 16w..16w+15
// for all BN channels (BN / 16 accumulators). The input channels are consumed 8 at a time (72 k,
// 9 WMMA steps): the chunk's im2col tile A (column-major, so the threads that stage consecutive
// pixels write consecutive words) and its weights B (column-major, k contiguous, so the forward
// pass reads each output channel's weights contiguously) are staged in shared memory; after the
// last chunk the accumulators go through shared memory (C, reusing the staging space) to the
// epilogue, which adds the bias, applies the ReLU and, with kPool, the max-pool.
//
// Pixel order: row-major (n, y, x) over the whole batch; with kPool window-major, (n, window row,
// window column, dy, dx), so that each 2x2 window is 4 consecutive m and lies in one block.
//
// kStats: model B's training forward (conv3x3_tc_forward_bn_stats): out = conv + bias, and the
// block's 64 pixels (tile blockIdx.x of ceil(N*H*W / 64)) emit BatchNorm's statistics of its BN
// channels (kernels/batchnorm_stats.cuh) from C in shared memory: kConvThreads / BN threads per
// channel each sum a fixed run of pixels, then one adds those in order. No atomics.
// =============================================================================================

constexpr int kBM = 64;
constexpr int kConvThreads = 4 * kWarpThreads;
constexpr int kChunkC = 8;
constexpr int kChunkK = kChunkC * 9;
constexpr int kLdA = kBM + 4;      // A: (m, k) at k * kLdA + m; C: (m, o) at o * kLdA + m
constexpr int kLdB = kChunkK + 4;  // B: (k, o) at o * kLdB + k
static_assert(kChunkK % kStep == 0 && kBM == 4 * kTile, "tiles must divide the block");

template <int BN, bool kFlip, bool kRelu, bool kPool, bool kStats>
__global__ void __launch_bounds__(kConvThreads)
    conv3x3_tc_kernel(float* __restrict__ out, float* __restrict__ pooled,
                      double* __restrict__ stats, const float* __restrict__ in,
                      const float* __restrict__ weight, const float* __restrict__ bias, int Cin,
                      int Cout, int H, int W, int pixels) {
  static_assert(BN % kTile == 0, "BN must be a multiple of 16");
  static_assert(!(kFlip && kPool), "the backward-data pass has no pooling");
  static_assert(!kStats || !(kFlip || kRelu || kPool), "statistics are of the plain forward");
  constexpr int kSmemFloats = cmax(kChunkK * kLdA + BN * kLdB, BN * kLdA);  // staging, then C
  __shared__ __align__(32) float smem[kSmemFloats];
  __shared__ Pixel pix[kBM];
  float* a_s = smem;
  float* b_s = smem + kChunkK * kLdA;
  float* c_s = smem;  // after the main loop

  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / kWarpThreads;
  const int o0 = static_cast<int>(blockIdx.y) * BN;
  const int HW = H * W;
  const std::size_t plane = static_cast<std::size_t>(HW);

  if (tid < kBM) {
    const long long m = static_cast<long long>(blockIdx.x) * kBM + tid;
    if constexpr (kPool) {
      Pixel p{-1, 0, 0};
      if (m < pixels) {
        const int mi = static_cast<int>(m);
        const int wo = W / 2, q = mi / 4, d = mi % 4, r = q % (HW / 4);
        p = {q / (HW / 4), 2 * (r / wo) + d / 2, 2 * (r % wo) + d % 2};
      }
      pix[tid] = p;
    } else {
      pix[tid] = row_major_pixel(m, pixels, H, W);
    }
  }

  AccFrag acc[BN / kTile];
#pragma unroll
  for (int j = 0; j < BN / kTile; ++j) wmma::fill_fragment(acc[j], 0.0f);

  for (int c0 = 0; c0 < Cin; c0 += kChunkC) {
    __syncthreads();  // the previous chunk has been consumed (the first time: the pixel table)
    for (int i = tid; i < kChunkK * kBM; i += kConvThreads) {
      const int k = i / kBM, ml = i % kBM;
      a_s[k * kLdA + ml] = im2col_at(in, pix[ml], c0 + k / 9, k % 9, Cin, H, W);
    }
    for (int i = tid; i < BN * kChunkK; i += kConvThreads) {
      int ol, k;
      if constexpr (kFlip) {  // w[c][o][8 - t] is contiguous along (o, t) for one c
        ol = (i / 9) % BN;
        k = (i / (9 * BN)) * 9 + i % 9;
      } else {  // w[o][c][t] is contiguous along (c, t) for one o
        ol = i / kChunkK;
        k = i % kChunkK;
      }
      const int o = o0 + ol, c = c0 + k / 9, t = k % 9;
      float v = 0.0f;  // channels past Cin or Cout contribute zeros / are never stored
      if (o < Cout && c < Cin) {
        v = kFlip ? weight[(static_cast<std::size_t>(c) * Cout + o) * 9 + (8 - t)]
                  : weight[(static_cast<std::size_t>(o) * Cin + c) * 9 + t];
      }
      b_s[ol * kLdB + k] = v;
    }
    __syncthreads();

#pragma unroll
    for (int k0 = 0; k0 < kChunkK; k0 += kStep) {
      AFrag<wmma::col_major> a_hi, a_lo;
      load_split(a_hi, a_lo, a_s + k0 * kLdA + warp * kTile, kLdA);
#pragma unroll
      for (int j = 0; j < BN / kTile; ++j) {
        BFrag<wmma::col_major> b_hi, b_lo;
        load_split(b_hi, b_lo, b_s + j * kTile * kLdB + k0, kLdB);
        mma_3xtf32(acc[j], a_hi, a_lo, b_hi, b_lo);
      }
    }
  }

  __syncthreads();  // every warp is done with the staging space that C reuses
#pragma unroll
  for (int j = 0; j < BN / kTile; ++j) {
    wmma::store_matrix_sync(c_s + j * kTile * kLdA + warp * kTile, acc[j], kLdA,
                            wmma::mem_col_major);
  }
  __syncthreads();

  // Epilogue: bias, ReLU (as the CPU reference's relu_forward, so a NaN passes through), the
  // stores, and with kPool the window's first maximum (window_argmax, the CPU reference's rule).
  if constexpr (kPool) {
    for (int i = tid; i < BN * (kBM / 4); i += kConvThreads) {
      const int ol = i / (kBM / 4), ml = 4 * (i % (kBM / 4));
      const int o = o0 + ol, n = pix[ml].n;
      if (o >= Cout || n < 0) continue;
      const float b = bias[o];
      float r[4];
#pragma unroll
      for (int d = 0; d < 4; ++d) {
        const float s = c_s[ol * kLdA + ml + d] + b;
        r[d] = s < 0.0f ? 0.0f : s;
      }
      const std::size_t p = static_cast<std::size_t>(n) * Cout + o;
      const int y = pix[ml].y, x = pix[ml].x;  // the window's top-left pixel
      float* a = out + p * plane + static_cast<std::size_t>(y * W + x);
      a[0] = r[0];
      a[1] = r[1];
      a[W] = r[2];
      a[W + 1] = r[3];
      pooled[p * (plane / 4) + static_cast<std::size_t>((y / 2) * (W / 2) + x / 2)] =
          window_argmax(r).value;
    }
  } else {
    for (int i = tid; i < BN * kBM; i += kConvThreads) {
      const int ol = i / kBM, ml = i % kBM;
      const int o = o0 + ol, n = pix[ml].n;
      if (o >= Cout || n < 0) continue;
      float s = c_s[ol * kLdA + ml];
      if (bias != nullptr) s += bias[o];
      if constexpr (kRelu) s = s < 0.0f ? 0.0f : s;
      out[(static_cast<std::size_t>(n) * Cout + o) * plane +
          static_cast<std::size_t>(pix[ml].y * W + pix[ml].x)] = s;
    }
    if constexpr (kStats) {
      constexpr int kSeg = kConvThreads / BN;  // threads per channel
      constexpr int kSegPix = kBM / kSeg;
      static_assert(kConvThreads % BN == 0 && kBM % kSeg == 0, "the sums must tile the block");
      __shared__ double sum_s[2][kConvThreads];
      const int ol = tid / kSeg, seg = tid % kSeg, o = o0 + ol;
      const float b = o < Cout ? bias[o] : 0.0f;  // channels past Cout: never stored
      // The shift: the block's first pixel, which every block has.
      const double k = static_cast<double>(c_s[ol * kLdA] + b);
      double s1 = 0.0, s2 = 0.0;
      for (int ml = seg * kSegPix; ml < (seg + 1) * kSegPix; ++ml) {
        if (pix[ml].n < 0) continue;
        const double d = static_cast<double>(c_s[ol * kLdA + ml] + b) - k;
        s1 += d;
        s2 += d * d;
      }
      sum_s[0][tid] = s1;
      sum_s[1][tid] = s2;
      __syncthreads();
      if (seg == 0 && o < Cout) {
        for (int g = 1; g < kSeg; ++g) {
          s1 += sum_s[0][tid + g];
          s2 += sum_s[1][tid + g];
        }
        const long long first = static_cast<long long>(blockIdx.x) * kBM;
        const double count = static_cast<double>(pixels - first < kBM ? pixels - first : kBM);
        store_tile_stats(stats, Cout, static_cast<int>(gridDim.x), o, static_cast<int>(blockIdx.x),
                         count, k, s1, s2);
      }
    }
  }
}

// The widest tile that is not mostly padding: 32 output channels for conv2's backward data (32),
// 64 for its forward (64).
constexpr int kNarrowBN = 32;
constexpr int kWideBN = 64;

int tc_tile_n(int Cout) {
  return Cout <= kNarrowBN ? kNarrowBN : kWideBN;
}

void check_tc_grid(const char* op, int N, int Cout, int H, int W) {
  const long long pixels = static_cast<long long>(N) * H * W;
  OCTA_CHECK(pixels <= INT_MAX,
             "{}: N * H * W = {} pixels is too many for one call (at most {}): use a smaller batch",
             op, pixels, INT_MAX);
  check_grid(op, "output channel groups", ceil_div(Cout, tc_tile_n(Cout)), 65535);
}

template <bool kFlip, bool kRelu, bool kPool, bool kStats = false>
void launch_tc(float* out, float* pooled, const float* in, const float* weight, const float* bias,
               int N, int Cin, int Cout, int H, int W, cudaStream_t stream,
               double* stats = nullptr) {
  const long long pixels = static_cast<long long>(N) * H * W;
  const int bn = tc_tile_n(Cout);
  const dim3 grid(static_cast<unsigned int>(ceil_div(pixels, kBM)),
                  static_cast<unsigned int>(ceil_div(Cout, bn)));
  if (bn == kNarrowBN) {
    conv3x3_tc_kernel<kNarrowBN, kFlip, kRelu, kPool, kStats><<<grid, kConvThreads, 0, stream>>>(
        out, pooled, stats, in, weight, bias, Cin, Cout, H, W, static_cast<int>(pixels));
  } else {
    conv3x3_tc_kernel<kWideBN, kFlip, kRelu, kPool, kStats><<<grid, kConvThreads, 0, stream>>>(
        out, pooled, stats, in, weight, bias, Cin, Cout, H, W, static_cast<int>(pixels));
  }
  OCTA_CUDA_CHECK_LAUNCH();
}

// =============================================================================================
// Backward filter, stage 1: the partial sums of one slice of pixels (plan_wgrad's rows), as
// conv3x3.cu's CUDA-core stage 1 writes them (same layout, same workspace, same stage 2).
//
// C[o][k] = sum over the slice's pixels p of D[o][p] * A[p][k], with D = dout and A the im2col of
// the input as above. Block (slice, k tile, o tile) computes 64 output channels x 96 k with 8
// warps: warp (wo, wk) the channels 16wo..16wo+15 and the k 48wk..48wk+47 (3 accumulators). The
// slice's pixels are staged 32 at a time, D row-major (o, p) and A column-major (p, k), each
// written along p by consecutive threads. The bias gradient (the sum of D over the pixels) is added
// up by the first 64 threads of the blocks of the first k tile, pixel by pixel in order.
// =============================================================================================

constexpr int kWgBO = 64;
constexpr int kWgBK = 96;
constexpr int kWgWarpK = kWgBK / 2;  // k per warp: 3 tiles of 16
constexpr int kWgThreads = 8 * kWarpThreads;
constexpr int kWgP = 32;
constexpr int kLdP = kWgP + 4;   // D: (o, p) at o * kLdP + p; A: (p, k) at k * kLdP + p
constexpr int kLdO = kWgBK + 4;  // C: (o, k) at o * kLdO + k
static_assert(kWgBO == 4 * kTile && kWgWarpK % kTile == 0 && kWgP % kStep == 0,
              "tiles must divide the block");

__global__ void __launch_bounds__(kWgThreads)
    conv3x3_tc_wgrad_partial_kernel(float* __restrict__ partial, const float* __restrict__ dout,
                                    const float* __restrict__ in, int Cin, int Cout, int H, int W,
                                    long long rows_total, long long rows_per_slice,
                                    unsigned long long stride) {
  constexpr int kSmemFloats = cmax((kWgBO + kWgBK) * kLdP, kWgBO * kLdO);  // staging, then C
  __shared__ __align__(32) float smem[kSmemFloats];
  __shared__ Pixel pix[kWgP];
  float* d_s = smem;
  float* a_s = smem + kWgBO * kLdP;
  float* c_s = smem;  // after the main loop

  const int tid = static_cast<int>(threadIdx.x);
  const int warp = tid / kWarpThreads, wo = warp % 4, wk = warp / 4;
  const int k0 = static_cast<int>(blockIdx.y) * kWgBK;
  const int o0 = static_cast<int>(blockIdx.z) * kWgBO;
  const int K = Cin * 9;
  const int HW = H * W;
  const std::size_t plane = static_cast<std::size_t>(HW);
  const long long r_begin = static_cast<long long>(blockIdx.x) * rows_per_slice;
  const long long r_end =
      r_begin + rows_per_slice < rows_total ? r_begin + rows_per_slice : rows_total;
  const long long p_end = r_end * W;
  const bool sums_bias = blockIdx.y == 0 && tid < kWgBO;

  AccFrag acc[kWgWarpK / kTile];
#pragma unroll
  for (int j = 0; j < kWgWarpK / kTile; ++j) wmma::fill_fragment(acc[j], 0.0f);
  float db = 0.0f;

  for (long long p0 = r_begin * W; p0 < p_end; p0 += kWgP) {
    __syncthreads();  // the previous pixels have been consumed
    if (tid < kWgP) pix[tid] = row_major_pixel(p0 + tid, p_end, H, W);
    __syncthreads();
    for (int i = tid; i < kWgBO * kWgP; i += kWgThreads) {
      const int ol = i / kWgP, pl = i % kWgP;
      const int o = o0 + ol;
      const Pixel px = pix[pl];
      float v = 0.0f;
      if (px.n >= 0 && o < Cout) {
        v = dout[(static_cast<std::size_t>(px.n) * Cout + o) * plane +
                 static_cast<std::size_t>(px.y * W + px.x)];
      }
      d_s[ol * kLdP + pl] = v;
    }
    for (int i = tid; i < kWgBK * kWgP; i += kWgThreads) {
      const int kl = i / kWgP, pl = i % kWgP, k = k0 + kl;
      a_s[kl * kLdP + pl] = im2col_at(in, pix[pl], k / 9, k % 9, Cin, H, W);  // k < K: c < Cin
    }
    __syncthreads();

    if (sums_bias) {
      for (int pl = 0; pl < kWgP; ++pl) db += d_s[tid * kLdP + pl];
    }
#pragma unroll
    for (int s = 0; s < kWgP; s += kStep) {
      AFrag<wmma::row_major> d_hi, d_lo;
      load_split(d_hi, d_lo, d_s + wo * kTile * kLdP + s, kLdP);
#pragma unroll
      for (int j = 0; j < kWgWarpK / kTile; ++j) {
        BFrag<wmma::col_major> a_hi, a_lo;
        load_split(a_hi, a_lo, a_s + (wk * kWgWarpK + j * kTile) * kLdP + s, kLdP);
        mma_3xtf32(acc[j], d_hi, d_lo, a_hi, a_lo);
      }
    }
  }

  __syncthreads();  // every warp is done with the staging space that C reuses
#pragma unroll
  for (int j = 0; j < kWgWarpK / kTile; ++j) {
    wmma::store_matrix_sync(c_s + wo * kTile * kLdO + wk * kWgWarpK + j * kTile, acc[j], kLdO,
                            wmma::mem_row_major);
  }
  __syncthreads();

  // This block's share of the slice's partial, every element exactly once (no clearing needed).
  float* p = partial + static_cast<std::size_t>(blockIdx.x) * stride;
  for (int i = tid; i < kWgBO * kWgBK; i += kWgThreads) {
    const int ol = i / kWgBK, kl = i % kWgBK;
    const int o = o0 + ol, k = k0 + kl;
    if (o < Cout && k < K) p[static_cast<std::size_t>(o) * K + k] = c_s[ol * kLdO + kl];
  }
  if (sums_bias && o0 + tid < Cout) {
    p[static_cast<std::size_t>(Cout) * K + static_cast<std::size_t>(o0 + tid)] = db;
  }
}

}  // namespace

// =============================================================================================
// Launchers
// =============================================================================================

void conv3x3_tc_forward(float* out, const float* in, const float* weight, const float* bias, int N,
                        int Cin, int Cout, int H, int W, Epilogue epilogue, cudaStream_t stream) {
  const char* op = "conv3x3_tc_forward";
  check_forward_args(op, out, in, weight, bias, N, Cin, Cout, H, W, epilogue);
  check_tc_grid(op, N, Cout, H, W);
  NvtxRange range(op);
  if (epilogue == Epilogue::kRelu) {
    launch_tc<false, true, false>(out, nullptr, in, weight, bias, N, Cin, Cout, H, W, stream);
  } else {
    launch_tc<false, false, false>(out, nullptr, in, weight, bias, N, Cin, Cout, H, W, stream);
  }
}

int conv3x3_tc_bn_stats_tiles(int N, int H, int W) {
  const char* op = "conv3x3_tc_bn_stats_tiles";
  check_conv_sizes(op, N, 1, 1, H, W);
  check_tc_grid(op, N, 1, H, W);
  return static_cast<int>(ceil_div(static_cast<long long>(N) * H * W, kBM));
}

void conv3x3_tc_forward_bn_stats(float* out, double* stats, const float* in, const float* weight,
                                 const float* bias, int N, int Cin, int Cout, int H, int W,
                                 cudaStream_t stream) {
  const char* op = "conv3x3_tc_forward_bn_stats";
  check_forward_args(op, out, in, weight, bias, N, Cin, Cout, H, W, Epilogue::kNone);
  require_pointer(op, "stats (3 * Cout * conv3x3_tc_bn_stats_tiles doubles)", stats);
  check_tc_grid(op, N, Cout, H, W);
  NvtxRange range(op);
  launch_tc<false, false, false, true>(out, nullptr, in, weight, bias, N, Cin, Cout, H, W, stream,
                                       stats);
}

void conv3x3_tc_relu_maxpool_forward(float* pooled, float* act, const float* in,
                                     const float* weight, const float* bias, int N, int Cin,
                                     int Cout, int H, int W, cudaStream_t stream) {
  const char* op = "conv3x3_tc_relu_maxpool_forward";
  check_relu_maxpool_forward_args(op, "conv3x3_tc_forward", pooled, act, in, weight, bias, N, Cin,
                                  Cout, H, W);
  check_tc_grid(op, N, Cout, H, W);
  NvtxRange range(op);
  launch_tc<false, true, true>(act, pooled, in, weight, bias, N, Cin, Cout, H, W, stream);
}

void conv3x3_tc_backward_data(float* din, const float* dout, const float* weight, int N, int Cin,
                              int Cout, int H, int W, cudaStream_t stream) {
  const char* op = "conv3x3_tc_backward_data";
  check_backward_data_args(op, din, dout, weight, N, Cin, Cout, H, W);
  check_tc_grid(op, N, Cin, H, W);  // the pass produces Cin channels
  NvtxRange range(op);
  // A 3x3 convolution from Cout to Cin channels over the flipped, transposed weights, no bias.
  launch_tc<true, false, false>(din, nullptr, dout, weight, nullptr, N, Cout, Cin, H, W, stream);
}

void conv3x3_tc_backward_filter(float* dweight, float* dbias, const float* dout, const float* in,
                                int N, int Cin, int Cout, int H, int W, float* workspace,
                                cudaStream_t stream) {
  const char* op = "conv3x3_tc_backward_filter";
  check_backward_filter_args(op, dweight, dbias, "dout", dout, in, N, Cin, Cout, H, W, workspace);
  const long long k_tiles = ceil_div(static_cast<long long>(Cin) * 9, kWgBK);
  check_grid(op, "k tiles (Cin * 9 / 96)", k_tiles, 65535);
  check_grid(op, "output channel tiles", ceil_div(Cout, kWgBO), 65535);
  NvtxRange range(op);
  const WgradPlan plan = plan_wgrad(N, Cin, Cout, H, W);
  const dim3 grid(static_cast<unsigned int>(plan.slices), static_cast<unsigned int>(k_tiles),
                  static_cast<unsigned int>(ceil_div(Cout, kWgBO)));
  conv3x3_tc_wgrad_partial_kernel<<<grid, kWgThreads, 0, stream>>>(
      workspace, dout, in, Cin, Cout, H, W, plan.rows_total, plan.rows_per_slice,
      static_cast<unsigned long long>(plan.stride));
  OCTA_CUDA_CHECK_LAUNCH();
  launch_wgrad_finalize(dweight, dbias, workspace, plan, stream);
}

}  // namespace octa::gpu
