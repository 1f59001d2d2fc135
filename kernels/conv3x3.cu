// kernels/conv3x3.cu: octa's own 3x3 / stride 1 / pad 1 convolutions (kernels/conv3x3.hpp): one
// direct-convolution kernel for the forward (optionally fused with ReLU and the 2x2 max-pool) and,
// over flipped and transposed weights, the backward-data pass; a two-stage deterministic
// reduction for the backward-filter pass.
#include "kernels/batchnorm_fused.hpp"
#include "kernels/batchnorm_grad.cuh"
#include "kernels/batchnorm_stats.cuh"
#include "kernels/conv3x3.hpp"
#include "kernels/conv3x3_plan.hpp"
#include "kernels/launch_checks.hpp"
#include "kernels/maxpool_window.cuh"

#include <algorithm>
#include <climits>

#include "engine/core/error.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/nvtx.hpp"

namespace octa::gpu {

// =============================================================================================
// Shared with the tensor-core convolutions (kernels/conv3x3_plan.hpp). Host-side checks run before
// any CUDA call, so a bad call fails the same way with or without a device.
// =============================================================================================

namespace conv_detail {

void check_conv_sizes(const char* op, int N, int Cin, int Cout, int H, int W) {
  OCTA_CHECK(N > 0, "{}: N = {} must be positive", op, N);
  OCTA_CHECK(Cin > 0, "{}: Cin = {} must be positive", op, Cin);
  OCTA_CHECK(Cout > 0, "{}: Cout = {} must be positive", op, Cout);
  OCTA_CHECK(H > 0, "{}: H = {} must be positive", op, H);
  OCTA_CHECK(W > 0, "{}: W = {} must be positive", op, W);
  const long long plane = static_cast<long long>(H) * W;
  OCTA_CHECK(plane <= INT_MAX, "{}: H * W = {} is too large (at most {} pixels per plane)", op,
             plane, INT_MAX);
}

void check_forward_args(const char* op, const float* out, const float* in, const float* weight,
                        const float* bias, int N, int Cin, int Cout, int H, int W,
                        Epilogue epilogue) {
  check_conv_sizes(op, N, Cin, Cout, H, W);
  require_pointer(op, "out", out);
  require_pointer(op, "in", in);
  require_pointer(op, "weight", weight);
  require_pointer(op, "bias", bias);
  OCTA_CHECK(epilogue == Epilogue::kNone || epilogue == Epilogue::kRelu, "{}: unknown epilogue {}",
             op, static_cast<int>(epilogue));
}

void check_relu_maxpool_forward_args(const char* op, const char* forward_op, const float* pooled,
                                     const float* act, const float* in, const float* weight,
                                     const float* bias, int N, int Cin, int Cout, int H, int W) {
  check_conv_sizes(op, N, Cin, Cout, H, W);
  OCTA_CHECK(H % 2 == 0 && W % 2 == 0,
             "{}: H = {} and W = {} must both be even for the fused 2x2 max-pool (for odd sizes "
             "use {}, then a pool)",
             op, H, W, forward_op);
  require_pointer(op, "pooled", pooled);
  require_pointer(op, "act", act);
  require_pointer(op, "in", in);
  require_pointer(op, "weight", weight);
  require_pointer(op, "bias", bias);
}

void check_backward_data_args(const char* op, const float* din, const float* dout,
                              const float* weight, int N, int Cin, int Cout, int H, int W) {
  check_conv_sizes(op, N, Cin, Cout, H, W);
  require_pointer(op, "din", din);
  require_pointer(op, "dout", dout);
  require_pointer(op, "weight", weight);
}

void check_backward_filter_args(const char* op, const float* dweight, const float* dbias,
                                const char* dout_name, const float* dout, const float* in, int N,
                                int Cin, int Cout, int H, int W, const float* workspace) {
  check_conv_sizes(op, N, Cin, Cout, H, W);
  require_pointer(op, "dweight", dweight);
  require_pointer(op, "dbias", dbias);
  require_pointer(op, dout_name, dout);
  require_pointer(op, "in", in);
  require_pointer(op, "workspace (conv3x3_backward_filter_workspace floats)", workspace);
}

void check_grid(const char* op, const char* what, long long blocks, long long limit) {
  OCTA_CHECK(blocks <= limit,
             "{}: {} needs {} blocks, more than the grid allows ({}): use a smaller batch or "
             "fewer channels per call",
             op, what, blocks, limit);
}

constexpr int kWgradMinSlicePixels = 256;          // below this a block is mostly staging overhead
constexpr int kWgradMaxSlices = 256;               // more slices: more partials to read back
constexpr long long kWgradBudgetFloats = 1 << 20;  // workspace cap (4 MiB) that bounds the slices

WgradPlan plan_wgrad(int N, int Cin, int Cout, int H, int W) {
  WgradPlan p{};
  p.weights = static_cast<std::size_t>(Cout) * static_cast<std::size_t>(Cin) * 9;
  p.stride = p.weights + static_cast<std::size_t>(Cout);
  p.rows_total = static_cast<long long>(N) * H;
  const long long by_budget = kWgradBudgetFloats / static_cast<long long>(p.stride);
  const long long max_slices =
      by_budget < 1 ? 1 : (by_budget > kWgradMaxSlices ? kWgradMaxSlices : by_budget);
  const long long min_rows = ceil_div(kWgradMinSlicePixels, W);
  long long slices = ceil_div(p.rows_total, min_rows);
  slices = slices < 1 ? 1 : (slices > max_slices ? max_slices : slices);
  p.rows_per_slice = ceil_div(p.rows_total, slices);
  p.slices = static_cast<int>(ceil_div(p.rows_total, p.rows_per_slice));
  return p;
}

}  // namespace conv_detail

namespace {

using namespace conv_detail;
using cuda::NvtxRange;

__host__ __device__ constexpr int imin(int a, int b) {
  return a < b ? a : b;
}

// =============================================================================================
// Direct convolution: forward, fused forward + ReLU + max-pool, and backward data.
//
// A block computes a (2*BY) x (2*BX) tile of output pixels of one image for CO_BLK = CZ * CO_T
// output channels. Each thread computes one 2x2 patch (exactly one pooling window when fused) for
// CO_T channels: 4 * CO_T accumulators, so every input value read from shared memory feeds CO_T
// FMAs and every weight feeds 4. Input channels are consumed CI_CHUNK at a time: the chunk's input
// tile with its 1-pixel halo (zeros outside the image: the padding) and the block's weights,
// stored [ci][tap][co] so each thread reads its CO_T weights of a tap as float4s that every lane
// of the warp shares (a broadcast), are staged in shared memory.
//
// Grid: x = image * tiles_per_image + tile, y = group of CO_BLK output channels.
//
// kFlip: the backward-data pass, din = conv3x3(dout, w') with w'[ci][co][t] = w[co][ci][8 - t]
// (the kernel's "input channels" are the layer's Cout and its "output channels" the layer's Cin);
// the transpose and flip happen in the staging of the weights, so no extra pass or buffer.
//
// kStats: model B's training forward (conv3x3_forward_bn_stats): out = conv + bias, and the
// block's tile (blockIdx.x, one of N * tiles_per_image) emits BatchNorm's statistics of its CO_BLK
// channels (kernels/batchnorm_stats.cuh) into `stats`, through a fixed two-level sum in shared
// memory: no atomics, bit-identical from run to run.
// =============================================================================================

// The one configuration used for every shape today: a 16x16 output tile (one tile for a 14x14
// conv2 image, 2x2 tiles for a 28x28 conv1 image), 16 output channels per block, 128 threads.
constexpr int kFwdBX = 8;
constexpr int kFwdBY = 8;
constexpr int kFwdCZ = 2;
constexpr int kFwdCoT = 8;
constexpr int kFwdCiChunk = 8;

// At least 4 resident blocks (16 warps) per SM, which lets ptxas use up to 128 registers: the
// unrolled 32-accumulator loop needs about 120 (left to itself, ptxas picked 96 and spilled).
template <int BX, int BY, int CZ, int CO_T, int CI_CHUNK, bool kFlip, bool kRelu, bool kPool,
          bool kStats>
__global__ void __launch_bounds__(BX* BY* CZ, 4)
    conv3x3_direct_kernel(float* __restrict__ out, float* __restrict__ pooled,
                          double* __restrict__ stats, const float* __restrict__ in,
                          const float* __restrict__ weight, const float* __restrict__ bias, int Cin,
                          int Cout, int H, int W, int tiles_x, int tiles_per_image) {
  constexpr int kThreads = BX * BY * CZ;
  constexpr int TH = 2 * BY, TW = 2 * BX;  // output tile
  constexpr int IH = TH + 2, IW = TW + 2;  // input tile with halo
  constexpr int CO_BLK = CZ * CO_T;
  static_assert(CO_T % 4 == 0, "weights are read as float4");
  static_assert((BX * BY) % 32 == 0, "a warp must share one channel group (weight broadcast)");
  static_assert(!(kFlip && kPool), "the backward-data pass has no pooling");
  static_assert(!kStats || !(kFlip || kRelu || kPool), "statistics are of the plain forward");

  __shared__ float in_s[CI_CHUNK][IH][IW];
  __shared__ __align__(16) float w_s[CI_CHUNK][9][CO_BLK];

  const int tid = static_cast<int>(threadIdx.x);
  const int tx = tid % BX, ty = (tid / BX) % BY, cz = tid / (BX * BY);
  const int n = static_cast<int>(blockIdx.x) / tiles_per_image;
  const int tile = static_cast<int>(blockIdx.x) % tiles_per_image;
  const int y0 = (tile / tiles_x) * TH, x0 = (tile % tiles_x) * TW;
  const int co_blk0 = static_cast<int>(blockIdx.y) * CO_BLK;
  const std::size_t HW = static_cast<std::size_t>(H) * static_cast<std::size_t>(W);
  const float* in_n = in + static_cast<std::size_t>(n) * static_cast<std::size_t>(Cin) * HW;

  float acc[CO_T][2][2];
#pragma unroll
  for (int j = 0; j < CO_T; ++j) acc[j][0][0] = acc[j][0][1] = acc[j][1][0] = acc[j][1][1] = 0.f;

  for (int ci0 = 0; ci0 < Cin; ci0 += CI_CHUNK) {
    const int nc = imin(CI_CHUNK, Cin - ci0);
    __syncthreads();  // the previous chunk has been consumed
    for (int i = tid; i < nc * IH * IW; i += kThreads) {
      const int c = i / (IH * IW), r = (i / IW) % IH, q = i % IW;
      const int gy = y0 - 1 + r, gx = x0 - 1 + q;
      float v = 0.f;
      if (gy >= 0 && gy < H && gx >= 0 && gx < W)
        v = in_n[static_cast<std::size_t>(ci0 + c) * HW + static_cast<std::size_t>(gy * W + gx)];
      in_s[c][r][q] = v;
    }
    for (int i = tid; i < nc * 9 * CO_BLK; i += kThreads) {
      const int c = i / (9 * CO_BLK), t = (i / CO_BLK) % 9, o = i % CO_BLK;
      const int co = co_blk0 + o, ci = ci0 + c;
      float v = 0.f;  // channels past Cout compute zeros that are never stored
      if (co < Cout) {
        v = kFlip ? weight[(static_cast<std::size_t>(ci) * Cout + co) * 9 + (8 - t)]
                  : weight[(static_cast<std::size_t>(co) * Cin + ci) * 9 + t];
      }
      w_s[c][t][o] = v;
    }
    __syncthreads();

    for (int c = 0; c < nc; ++c) {
      float v[4][4];  // the 4x4 input window under this thread's 2x2 patch
#pragma unroll
      for (int r = 0; r < 4; ++r) {
#pragma unroll
        for (int q = 0; q < 4; ++q) v[r][q] = in_s[c][2 * ty + r][2 * tx + q];
      }
#pragma unroll
      for (int ky = 0; ky < 3; ++ky) {
#pragma unroll
        for (int kx = 0; kx < 3; ++kx) {
          const float4* wp = reinterpret_cast<const float4*>(&w_s[c][ky * 3 + kx][cz * CO_T]);
#pragma unroll
          for (int j4 = 0; j4 < CO_T / 4; ++j4) {
            const float4 w4 = wp[j4];
            const float wv[4] = {w4.x, w4.y, w4.z, w4.w};
#pragma unroll
            for (int jj = 0; jj < 4; ++jj) {
#pragma unroll
              for (int py = 0; py < 2; ++py) {
#pragma unroll
                for (int px = 0; px < 2; ++px) {
                  acc[j4 * 4 + jj][py][px] =
                      fmaf(wv[jj], v[py + ky][px + kx], acc[j4 * 4 + jj][py][px]);
                }
              }
            }
          }
        }
      }
    }
  }

  const int oy = y0 + 2 * ty, ox = x0 + 2 * tx;
  if constexpr (kStats) {
    // Every thread takes part (barriers follow), inside the image or not. Level 1: each thread's
    // shifted sums over its (up to) 4 pixels, per channel; level 2: kGroups threads per channel
    // add kPix / kGroups of those; level 3: one thread per channel adds the kGroups, in order.
    constexpr int kPix = BX * BY;  // threads (pixel patches) per channel group
    constexpr int kGroups = kThreads / CO_BLK;
    static_assert(kThreads % CO_BLK == 0 && kPix % kGroups == 0, "the sums must tile the block");
    __shared__ float shift_s[CO_BLK];
    __shared__ double sum1_s[2][CO_BLK][kPix];
    __shared__ double sum2_s[2][CO_BLK][kGroups];
    const int pix = ty * BX + tx;
    const std::size_t plane0 =
        static_cast<std::size_t>(n) * static_cast<std::size_t>(Cout) + co_blk0 + cz * CO_T;
#pragma unroll
    for (int j = 0; j < CO_T; ++j) {
      const int co = co_blk0 + cz * CO_T + j;
      const float b = co < Cout ? bias[co] : 0.f;  // channels past Cout: zeros, never stored
#pragma unroll
      for (int py = 0; py < 2; ++py) {
#pragma unroll
        for (int px = 0; px < 2; ++px) {
          acc[j][py][px] += b;
          const int y = oy + py, x = ox + px;
          if (co < Cout && y < H && x < W) out[(plane0 + j) * HW + y * W + x] = acc[j][py][px];
        }
      }
      // The shift: the tile's top-left pixel (y0, x0), inside every tile.
      if (pix == 0) shift_s[cz * CO_T + j] = acc[j][0][0];
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < CO_T; ++j) {
      const int q = cz * CO_T + j;
      const double k = static_cast<double>(shift_s[q]);
      double s1 = 0.0, s2 = 0.0;
#pragma unroll
      for (int py = 0; py < 2; ++py) {
#pragma unroll
        for (int px = 0; px < 2; ++px) {
          if (oy + py < H && ox + px < W) {
            const double d = static_cast<double>(acc[j][py][px]) - k;
            s1 += d;
            s2 += d * d;
          }
        }
      }
      sum1_s[0][q][pix] = s1;
      sum1_s[1][q][pix] = s2;
    }
    __syncthreads();
    {
      const int q = tid / kGroups, g = tid % kGroups;
      double s1 = 0.0, s2 = 0.0;
      for (int i = g * (kPix / kGroups); i < (g + 1) * (kPix / kGroups); ++i) {
        s1 += sum1_s[0][q][i];
        s2 += sum1_s[1][q][i];
      }
      sum2_s[0][q][g] = s1;
      sum2_s[1][q][g] = s2;
    }
    __syncthreads();
    if (tid < CO_BLK && co_blk0 + tid < Cout) {
      double s1 = 0.0, s2 = 0.0;
      for (int g = 0; g < kGroups; ++g) {
        s1 += sum2_s[0][tid][g];
        s2 += sum2_s[1][tid][g];
      }
      const double count = static_cast<double>(imin(TH, H - y0) * imin(TW, W - x0));
      store_tile_stats(stats, Cout, static_cast<int>(gridDim.x), co_blk0 + tid,
                       static_cast<int>(blockIdx.x), count, static_cast<double>(shift_s[tid]), s1,
                       s2);
    }
    return;
  }

  // Epilogue: bias, ReLU (written as the CPU reference's relu_forward, so a NaN passes through),
  // then the stores that fall inside the image and, fused, the pooled maximum.
  if (oy >= H || ox >= W) return;  // no __syncthreads() follows
#pragma unroll
  for (int j = 0; j < CO_T; ++j) {
    const int co = co_blk0 + cz * CO_T + j;
    if (co >= Cout) break;
    const float b = bias != nullptr ? bias[co] : 0.f;
    float r[2][2];
#pragma unroll
    for (int py = 0; py < 2; ++py) {
#pragma unroll
      for (int px = 0; px < 2; ++px) {
        const float s = acc[j][py][px] + b;
        r[py][px] = kRelu ? (s < 0.f ? 0.f : s) : s;
      }
    }
    const std::size_t plane =
        static_cast<std::size_t>(n) * static_cast<std::size_t>(Cout) + static_cast<std::size_t>(co);
    float* o = out + plane * HW;
#pragma unroll
    for (int py = 0; py < 2; ++py) {
#pragma unroll
      for (int px = 0; px < 2; ++px) {
        const int y = oy + py, x = ox + px;
        if (y < H && x < W) o[y * W + x] = r[py][px];
      }
    }
    if constexpr (kPool) {
      // H and W are even, so the whole window is inside. The first maximum in scan order wins,
      // with the CPU reference's window_argmax rule (a NaN, once the best, stays the best).
      const float cand[4] = {r[0][0], r[0][1], r[1][0], r[1][1]};
      float best = cand[0];
#pragma unroll
      for (int k = 1; k < 4; ++k) {
        const bool take = !(cand[k] <= best) && best == best;
        best = take ? cand[k] : best;
      }
      const int Ho = H / 2, Wo = W / 2;
      pooled[plane * static_cast<std::size_t>(Ho) * static_cast<std::size_t>(Wo) +
             static_cast<std::size_t>((oy / 2) * Wo + ox / 2)] = best;
    }
  }
}

// Launches the direct kernel over an (N, Cin, H, W) input producing Cout channels. The caller has
// validated the sizes and checked the grid with direct_grid().
struct DirectGrid {
  int tiles_x, tiles_per_image;
  long long blocks_x, blocks_y;
};

DirectGrid direct_grid(int N, int Cout, int H, int W) {
  const int tiles_x = static_cast<int>(ceil_div(W, 2 * kFwdBX));
  const int tiles_y = static_cast<int>(ceil_div(H, 2 * kFwdBY));
  const int tiles = tiles_x * tiles_y;
  return {tiles_x, tiles, static_cast<long long>(N) * tiles, ceil_div(Cout, kFwdCZ * kFwdCoT)};
}

void check_direct_grid(const char* op, int N, int Cout, int H, int W) {
  const DirectGrid g = direct_grid(N, Cout, H, W);
  check_grid(op, "N * spatial tiles", g.blocks_x, INT_MAX);
  check_grid(op, "output channel groups", g.blocks_y, 65535);
}

template <bool kFlip, bool kRelu, bool kPool, bool kStats = false>
void launch_direct(float* out, float* pooled, const float* in, const float* weight,
                   const float* bias, int N, int Cin, int Cout, int H, int W, cudaStream_t stream,
                   double* stats = nullptr) {
  const DirectGrid g = direct_grid(N, Cout, H, W);
  const dim3 grid(static_cast<unsigned int>(g.blocks_x), static_cast<unsigned int>(g.blocks_y));
  constexpr unsigned int kThreads = kFwdBX * kFwdBY * kFwdCZ;
  conv3x3_direct_kernel<kFwdBX, kFwdBY, kFwdCZ, kFwdCoT, kFwdCiChunk, kFlip, kRelu, kPool, kStats>
      <<<grid, kThreads, 0, stream>>>(out, pooled, stats, in, weight, bias, Cin, Cout, H, W,
                                      g.tiles_x, g.tiles_per_image);
  OCTA_CUDA_CHECK_LAUNCH();
}

// =============================================================================================
// Backward filter, stage 1: per-slice partial sums.
//
// The slices of plan_wgrad (kernels/conv3x3_plan.hpp). Block (slice, co tile, ci tile) walks its
// rows in chunks of up to CH rows x CW columns of one image, staging dout for its BM channels and
// the input for its CI_BLK channels (with halo, zeros outside the image) in shared memory.
//
// Thread (tc, tr, g) owns TM output channels x R "tap rows" (ci, ky), each with its three kx taps:
// TM * R * 3 float accumulators (+ TM for dbias), walking x with a sliding 3-value window per tap
// row, so each pixel costs TM + R shared loads for TM * R * 3 FMAs. The PG pixel groups g take
// every PG-th row of a chunk (more threads per block without more partials) and are summed at the
// end through shared memory in the fixed order g = 0, 1, ..., PG-1. Each block writes its share of
// the slice's partial (Cout*Cin*9 weights then Cout biases), every element exactly once, so the
// workspace needs no clearing.
// =============================================================================================

template <int BM, int TM, int CI_BLK, int R, int PG, int CH, int CW>
struct WgradConfig {
  static constexpr int kBM = BM, kTM = TM, kCiBlk = CI_BLK, kR = R, kPG = PG, kCH = CH, kCW = CW;
  static constexpr int kTRows = BM / TM;
  static constexpr int kTCols = 3 * CI_BLK / R;
  static constexpr int kThreads = kTRows * kTCols * PG;
  static_assert(BM % TM == 0 && (3 * CI_BLK) % R == 0, "thread tiles must divide the block tile");
};

// Cin >= 2 (conv2: 2 x 4 tiles of 32 x 8 channels): 192 threads, 24 weight accumulators each.
using WgradWide = WgradConfig<32, 4, 8, 2, 2, 4, 32>;
// Cin == 1 (conv1): one input channel, so more pixel groups instead: 192 threads.
using WgradCin1 = WgradConfig<32, 4, 1, 1, 8, 8, 32>;

// Where the conv output's gradient that a block stages comes from:
//   kPlain: `dout` itself (N, Cout, H, W);
//   kMaxpoolRelu: rebuilt from a 2x2 max-pool's gradient `dout` (N, Cout, H/2, W/2) and the pool's
//     input `act`, a ReLU's output (N, Cout, H, W): value for value what
//     maxpool2x2_backward(relu_before = true) would have written, so the result is bit-identical
//     to that pass followed by this one, without the (N, Cout, H, W) round trip;
//   kBnMaxpoolRelu: model B's fused BatchNorm (kernels/batchnorm_fused.hpp): `dout` is the pool's
//     gradient, `act` BatchNorm's input (the conv output) and `bn` the rest; BatchNorm's input
//     gradient is rebuilt (kernels/batchnorm_grad.cuh) from the window codes and the sums kernel's
//     workspace, which each block first reduces for its channels (block (0, *, 0) also writes
//     dgamma and dbeta), value for value what batchnorm_relu_maxpool_backward would have written.
enum class DoutSource { kPlain, kMaxpoolRelu, kBnMaxpoolRelu };

struct BnGradSource {
  const std::uint8_t* window = nullptr;
  const double* sums = nullptr;  // batchnorm_relu_maxpool_backward_sums's workspace
  int blocks = 0;                // its block sums per channel
  const float *save_mean = nullptr, *save_invstd = nullptr, *gamma = nullptr;
  float *dgamma = nullptr, *dbeta = nullptr;
};

template <class Cfg, DoutSource kSrc>
__global__ void __launch_bounds__(Cfg::kThreads)
    conv3x3_wgrad_partial_kernel(float* __restrict__ partial, const float* __restrict__ dout,
                                 const float* __restrict__ act, const float* __restrict__ in,
                                 int Cin, int Cout, int H, int W, long long rows_total,
                                 long long rows_per_slice, unsigned long long stride,
                                 BnGradSource bn) {
  constexpr int BM = Cfg::kBM, TM = Cfg::kTM, CI_BLK = Cfg::kCiBlk, R = Cfg::kR, PG = Cfg::kPG;
  constexpr int CH = Cfg::kCH, CW = Cfg::kCW, TROWS = Cfg::kTRows, TCOLS = Cfg::kTCols;
  constexpr int kThreads = Cfg::kThreads;
  // dout_s's channel stride is odd, so lanes reading different channels hit different banks.
  constexpr int DS = CH * CW + 1;
  constexpr int IW = CW + 2, IS = (CH + 2) * IW;
  constexpr int kTileFloats = BM * DS + CI_BLK * IS;
  constexpr int kOut = TM * (R * 3 + 1);  // per-thread results: weight taps, then bias
  constexpr int kRedFloats = (PG - 1) * TROWS * TCOLS * kOut;
  constexpr int kSmemFloats = kTileFloats > kRedFloats ? kTileFloats : kRedFloats;
  // kBnMaxpoolRelu: the block's channels' BatchNorm coefficients after the rest.
  constexpr int kCoeffFloats = kSrc == DoutSource::kBnMaxpoolRelu ? 5 * BM : 0;
  __shared__ float smem[kSmemFloats + kCoeffFloats];
  float* dout_s = smem;                 // [BM][DS]: [o][rr * CW + xx]
  float* in_s = smem + BM * DS;         // [CI_BLK][CH + 2][IW]
  float* coeff_s = smem + kSmemFloats;  // [5][BM]: k_dy, k_0, k_x, mean, invstd

  const int tid = static_cast<int>(threadIdx.x);
  const int tc = tid % TCOLS, tr = (tid / TCOLS) % TROWS, g = tid / (TCOLS * TROWS);
  const int co_blk0 = static_cast<int>(blockIdx.y) * BM;
  const int ci_blk0 = static_cast<int>(blockIdx.z) * CI_BLK;
  const long long r_begin = static_cast<long long>(blockIdx.x) * rows_per_slice;
  const long long r_end =
      r_begin + rows_per_slice < rows_total ? r_begin + rows_per_slice : rows_total;
  const std::size_t HW = static_cast<std::size_t>(H) * static_cast<std::size_t>(W);

  // This thread's tap rows: index tc * R + j = c * 3 + ky.
  int tap_off[R];
#pragma unroll
  for (int j = 0; j < R; ++j) {
    const int idx = tc * R + j;
    tap_off[j] = (idx / 3) * IS + (idx % 3) * IW;
  }

  if constexpr (kSrc == DoutSource::kBnMaxpoolRelu) {
    const int co = co_blk0 + tid;
    if (tid < BM && co < Cout) {
      double sum_dy = 0.0, sum_dy_xhat = 0.0;
      const double count = static_cast<double>(rows_total) * static_cast<double>(W);
      const BnGradCoeffs k = bn_grad_coeffs(bn.sums, Cout, bn.blocks, co, bn.gamma, bn.save_mean,
                                            bn.save_invstd, count, sum_dy, sum_dy_xhat);
      coeff_s[tid] = k.k_dy;
      coeff_s[BM + tid] = k.k_0;
      coeff_s[2 * BM + tid] = k.k_x;
      coeff_s[3 * BM + tid] = k.mean;
      coeff_s[4 * BM + tid] = k.invstd;
      if (blockIdx.x == 0 && blockIdx.z == 0) {
        bn.dbeta[co] = static_cast<float>(sum_dy);
        bn.dgamma[co] = static_cast<float>(sum_dy_xhat);
      }
    }
    __syncthreads();
  }

  float acc[TM][R][3];
  float db[TM];
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    db[i] = 0.f;
#pragma unroll
    for (int j = 0; j < R; ++j) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = 0.f;
  }

  for (long long r = r_begin; r < r_end;) {
    const std::size_t n = static_cast<std::size_t>(r / H);
    const int y = static_cast<int>(r % H);
    const long long rows_left = r_end - r;
    const int ch = rows_left < CH ? imin(static_cast<int>(rows_left), H - y) : imin(CH, H - y);
    for (int x0 = 0; x0 < W; x0 += CW) {
      const int cw = imin(CW, W - x0);
      __syncthreads();  // the previous chunk has been consumed
      for (int i = tid; i < BM * ch * cw; i += kThreads) {
        const int o = i / (ch * cw), rr = (i / cw) % ch, xx = i % cw;
        const int co = co_blk0 + o;
        float v = 0.f;
        if (co < Cout) {
          const std::size_t plane =
              n * static_cast<std::size_t>(Cout) + static_cast<std::size_t>(co);
          if constexpr (kSrc == DoutSource::kMaxpoolRelu) {
            v = maxpool2x2_relu_grad_at(act + plane * HW, dout + plane * (HW / 4), y + rr, x0 + xx,
                                        W);
          } else if constexpr (kSrc == DoutSource::kBnMaxpoolRelu) {
            const BnGradCoeffs k{coeff_s[o], coeff_s[BM + o], coeff_s[2 * BM + o],
                                 coeff_s[3 * BM + o], coeff_s[4 * BM + o]};
            v = bn_relu_maxpool_grad_at(act + plane * HW, bn.window + plane * (HW / 4),
                                        dout + plane * (HW / 4), y + rr, x0 + xx, W, k);
          } else {
            v = dout[plane * HW + static_cast<std::size_t>((y + rr) * W + x0 + xx)];
          }
        }
        dout_s[o * DS + rr * CW + xx] = v;
      }
      for (int i = tid; i < CI_BLK * (ch + 2) * (cw + 2); i += kThreads) {
        const int c = i / ((ch + 2) * (cw + 2)), rr = (i / (cw + 2)) % (ch + 2), xx = i % (cw + 2);
        const int ci = ci_blk0 + c, gy = y - 1 + rr, gx = x0 - 1 + xx;
        float v = 0.f;
        if (ci < Cin && gy >= 0 && gy < H && gx >= 0 && gx < W) {
          v = in[(n * static_cast<std::size_t>(Cin) + static_cast<std::size_t>(ci)) * HW +
                 static_cast<std::size_t>(gy * W + gx)];
        }
        in_s[c * IS + rr * IW + xx] = v;
      }
      __syncthreads();

      for (int rr = g; rr < ch; rr += PG) {
        float a[R][3];  // sliding window: columns xx, xx + 1, xx + 2 of each tap row
#pragma unroll
        for (int j = 0; j < R; ++j) {
          a[j][0] = in_s[tap_off[j] + rr * IW];
          a[j][1] = in_s[tap_off[j] + rr * IW + 1];
        }
        const float* d_row = dout_s + (tr * TM) * DS + rr * CW;
        for (int xx = 0; xx < cw; ++xx) {
          float d[TM];
#pragma unroll
          for (int i = 0; i < TM; ++i) d[i] = d_row[i * DS + xx];
#pragma unroll
          for (int j = 0; j < R; ++j) a[j][2] = in_s[tap_off[j] + rr * IW + xx + 2];
#pragma unroll
          for (int i = 0; i < TM; ++i) {
            db[i] += d[i];
#pragma unroll
            for (int j = 0; j < R; ++j) {
#pragma unroll
              for (int kx = 0; kx < 3; ++kx) acc[i][j][kx] = fmaf(d[i], a[j][kx], acc[i][j][kx]);
            }
          }
#pragma unroll
          for (int j = 0; j < R; ++j) {
            a[j][0] = a[j][1];
            a[j][1] = a[j][2];
          }
        }
      }
    }
    r += ch;
  }

  // Sum the pixel groups in the fixed order 0, 1, ..., PG-1 (shared memory reused).
  const int slot = tr * TCOLS + tc;
  if constexpr (PG > 1) {
    __syncthreads();
    if (g > 0) {
      float* dst = smem + ((g - 1) * TROWS * TCOLS + slot) * kOut;
#pragma unroll
      for (int i = 0; i < TM; ++i) {
#pragma unroll
        for (int j = 0; j < R; ++j) {
#pragma unroll
          for (int kx = 0; kx < 3; ++kx) dst[(i * R + j) * 3 + kx] = acc[i][j][kx];
        }
        dst[TM * R * 3 + i] = db[i];
      }
    }
    __syncthreads();
    if (g > 0) return;
    for (int gg = 1; gg < PG; ++gg) {
      const float* src = smem + ((gg - 1) * TROWS * TCOLS + slot) * kOut;
#pragma unroll
      for (int i = 0; i < TM; ++i) {
#pragma unroll
        for (int j = 0; j < R; ++j) {
#pragma unroll
          for (int kx = 0; kx < 3; ++kx) acc[i][j][kx] += src[(i * R + j) * 3 + kx];
        }
        db[i] += src[TM * R * 3 + i];
      }
    }
  }

  float* p = partial + static_cast<std::size_t>(blockIdx.x) * stride;
  const std::size_t weights = static_cast<std::size_t>(Cout) * static_cast<std::size_t>(Cin) * 9;
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int co = co_blk0 + tr * TM + i;
    if (co >= Cout) break;
#pragma unroll
    for (int j = 0; j < R; ++j) {
      const int idx = tc * R + j;
      const int ci = ci_blk0 + idx / 3, ky = idx % 3;
      if (ci >= Cin) continue;
      float* dst = p + (static_cast<std::size_t>(co) * Cin + ci) * 9 + ky * 3;
#pragma unroll
      for (int kx = 0; kx < 3; ++kx) dst[kx] = acc[i][j][kx];
    }
    // Every tc accumulated the same bias sums; one writes them, from the first ci tile only.
    if (blockIdx.z == 0 && tc == 0) p[weights + static_cast<std::size_t>(co)] = db[i];
  }
}

// =============================================================================================
// Backward filter, stage 2: sum the slices' partials in slice order, in double. The float
// partials are then added essentially exactly and rounded once, so the result carries only stage
// 1's float rounding, whatever the slice count; a pairwise float tree would add its own (small)
// error and more code. The cost is one pass over the partials (<= 4 MiB), and FP64 adds are cheap
// on an H100.
// =============================================================================================

constexpr unsigned int kFinalizeThreads = 256;

__global__ void __launch_bounds__(kFinalizeThreads)
    conv3x3_wgrad_finalize_kernel(float* __restrict__ dweight, float* __restrict__ dbias,
                                  const float* __restrict__ partial, int slices,
                                  unsigned long long weights, unsigned long long stride) {
  for (unsigned long long j =
           static_cast<unsigned long long>(blockIdx.x) * blockDim.x + threadIdx.x;
       j < stride; j += static_cast<unsigned long long>(gridDim.x) * blockDim.x) {
    double s = 0.0;
    for (int k = 0; k < slices; ++k)
      s += static_cast<double>(partial[static_cast<unsigned long long>(k) * stride + j]);
    if (j < weights) {
      dweight[j] = static_cast<float>(s);
    } else {
      dbias[j - weights] = static_cast<float>(s);
    }
  }
}

template <class Cfg>
void check_wgrad_grid(const char* op, int Cin, int Cout) {
  check_grid(op, "output channel tiles", ceil_div(Cout, Cfg::kBM), 65535);
  check_grid(op, "input channel tiles", ceil_div(Cin, Cfg::kCiBlk), 65535);
}

template <class Cfg, DoutSource kSrc>
void launch_wgrad_partial(float* partial, const float* dout, const float* act, const float* in,
                          int Cin, int Cout, int H, int W, const WgradPlan& plan,
                          const BnGradSource& bn, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned int>(plan.slices),
                  static_cast<unsigned int>(ceil_div(Cout, Cfg::kBM)),
                  static_cast<unsigned int>(ceil_div(Cin, Cfg::kCiBlk)));
  conv3x3_wgrad_partial_kernel<Cfg, kSrc><<<grid, Cfg::kThreads, 0, stream>>>(
      partial, dout, act, in, Cin, Cout, H, W, plan.rows_total, plan.rows_per_slice,
      static_cast<unsigned long long>(plan.stride), bn);
  OCTA_CUDA_CHECK_LAUNCH();
}

// Every filter-gradient launcher: stage 1 (partials per slice), then stage 2 (their sum). The
// caller has checked the arguments.
template <DoutSource kSrc>
void backward_filter(float* dweight, float* dbias, const float* dout, const float* act,
                     const float* in, int N, int Cin, int Cout, int H, int W, float* workspace,
                     cudaStream_t stream, const BnGradSource& bn = {}) {
  const WgradPlan plan = plan_wgrad(N, Cin, Cout, H, W);
  if (Cin == 1) {
    launch_wgrad_partial<WgradCin1, kSrc>(workspace, dout, act, in, Cin, Cout, H, W, plan, bn,
                                          stream);
  } else {
    launch_wgrad_partial<WgradWide, kSrc>(workspace, dout, act, in, Cin, Cout, H, W, plan, bn,
                                          stream);
  }
  launch_wgrad_finalize(dweight, dbias, workspace, plan, stream);
}

void check_backward_filter(const char* op, float* dweight, float* dbias, const char* dout_name,
                           const float* dout, const float* in, int N, int Cin, int Cout, int H,
                           int W, float* workspace) {
  check_backward_filter_args(op, dweight, dbias, dout_name, dout, in, N, Cin, Cout, H, W,
                             workspace);
  if (Cin == 1) {
    check_wgrad_grid<WgradCin1>(op, Cin, Cout);
  } else {
    check_wgrad_grid<WgradWide>(op, Cin, Cout);
  }
}

}  // namespace

void conv_detail::launch_wgrad_finalize(float* dweight, float* dbias, const float* partial,
                                        const WgradPlan& plan, cudaStream_t stream) {
  const unsigned int blocks = std::min(blocks_for(plan.stride, kFinalizeThreads), 4096u);
  conv3x3_wgrad_finalize_kernel<<<blocks, kFinalizeThreads, 0, stream>>>(
      dweight, dbias, partial, plan.slices, static_cast<unsigned long long>(plan.weights),
      static_cast<unsigned long long>(plan.stride));
  OCTA_CUDA_CHECK_LAUNCH();
}

// =============================================================================================
// Launchers
// =============================================================================================

void conv3x3_forward(float* out, const float* in, const float* weight, const float* bias, int N,
                     int Cin, int Cout, int H, int W, Epilogue epilogue, cudaStream_t stream) {
  const char* op = "conv3x3_forward";
  check_forward_args(op, out, in, weight, bias, N, Cin, Cout, H, W, epilogue);
  check_direct_grid(op, N, Cout, H, W);
  NvtxRange range(op);
  if (epilogue == Epilogue::kRelu) {
    launch_direct<false, true, false>(out, nullptr, in, weight, bias, N, Cin, Cout, H, W, stream);
  } else {
    launch_direct<false, false, false>(out, nullptr, in, weight, bias, N, Cin, Cout, H, W, stream);
  }
}

int conv3x3_bn_stats_tiles(int N, int H, int W) {
  check_conv_sizes("conv3x3_bn_stats_tiles", N, 1, 1, H, W);
  const long long tiles = direct_grid(N, 1, H, W).blocks_x;
  check_grid("conv3x3_bn_stats_tiles", "N * spatial tiles", tiles, INT_MAX);
  return static_cast<int>(tiles);
}

void conv3x3_forward_bn_stats(float* out, double* stats, const float* in, const float* weight,
                              const float* bias, int N, int Cin, int Cout, int H, int W,
                              cudaStream_t stream) {
  const char* op = "conv3x3_forward_bn_stats";
  check_forward_args(op, out, in, weight, bias, N, Cin, Cout, H, W, Epilogue::kNone);
  require_pointer(op, "stats (3 * Cout * conv3x3_bn_stats_tiles doubles)", stats);
  check_direct_grid(op, N, Cout, H, W);
  NvtxRange range(op);
  launch_direct<false, false, false, true>(out, nullptr, in, weight, bias, N, Cin, Cout, H, W,
                                           stream, stats);
}

void conv3x3_relu_maxpool_forward(float* pooled, float* act, const float* in, const float* weight,
                                  const float* bias, int N, int Cin, int Cout, int H, int W,
                                  cudaStream_t stream) {
  const char* op = "conv3x3_relu_maxpool_forward";
  check_relu_maxpool_forward_args(op, "conv3x3_forward", pooled, act, in, weight, bias, N, Cin,
                                  Cout, H, W);
  check_direct_grid(op, N, Cout, H, W);
  NvtxRange range(op);
  launch_direct<false, true, true>(act, pooled, in, weight, bias, N, Cin, Cout, H, W, stream);
}

void conv3x3_backward_data(float* din, const float* dout, const float* weight, int N, int Cin,
                           int Cout, int H, int W, cudaStream_t stream) {
  const char* op = "conv3x3_backward_data";
  check_backward_data_args(op, din, dout, weight, N, Cin, Cout, H, W);
  check_direct_grid(op, N, Cin, H, W);  // the pass produces Cin channels
  NvtxRange range(op);
  // A 3x3 convolution from Cout to Cin channels over the flipped, transposed weights, no bias.
  launch_direct<true, false, false>(din, nullptr, dout, weight, nullptr, N, Cout, Cin, H, W,
                                    stream);
}

std::size_t conv3x3_backward_filter_workspace(int N, int Cin, int Cout, int H, int W) {
  check_conv_sizes("conv3x3_backward_filter_workspace", N, Cin, Cout, H, W);
  const WgradPlan plan = plan_wgrad(N, Cin, Cout, H, W);
  return static_cast<std::size_t>(plan.slices) * plan.stride;
}

void conv3x3_backward_filter(float* dweight, float* dbias, const float* dout, const float* in,
                             int N, int Cin, int Cout, int H, int W, float* workspace,
                             cudaStream_t stream) {
  const char* op = "conv3x3_backward_filter";
  check_backward_filter(op, dweight, dbias, "dout", dout, in, N, Cin, Cout, H, W, workspace);
  NvtxRange range(op);
  backward_filter<DoutSource::kPlain>(dweight, dbias, dout, nullptr, in, N, Cin, Cout, H, W,
                                      workspace, stream);
}

void conv3x3_backward_filter_from_maxpool(float* dweight, float* dbias, const float* dpool,
                                          const float* act, const float* in, int N, int Cin,
                                          int Cout, int H, int W, float* workspace,
                                          cudaStream_t stream) {
  const char* op = "conv3x3_backward_filter_from_maxpool";
  check_backward_filter(op, dweight, dbias, "dpool", dpool, in, N, Cin, Cout, H, W, workspace);
  OCTA_CHECK(H % 2 == 0 && W % 2 == 0,
             "{}: H = {} and W = {} must both be even for the 2x2 max-pool (for odd sizes use "
             "maxpool2x2_backward, then conv3x3_backward_filter)",
             op, H, W);
  require_pointer(op, "act", act);
  NvtxRange range(op);
  backward_filter<DoutSource::kMaxpoolRelu>(dweight, dbias, dpool, act, in, N, Cin, Cout, H, W,
                                            workspace, stream);
}

void conv3x3_backward_filter_from_bn_maxpool(float* dweight, float* dbias, float* dgamma,
                                             float* dbeta, const float* dpool,
                                             const std::uint8_t* window, const float* conv_out,
                                             const float* save_mean, const float* save_invstd,
                                             const float* gamma, const float* in, int N, int Cin,
                                             int Cout, int H, int W, double* bn_workspace,
                                             float* workspace, cudaStream_t stream) {
  const char* op = "conv3x3_backward_filter_from_bn_maxpool";
  check_backward_filter(op, dweight, dbias, "dpool", dpool, in, N, Cin, Cout, H, W, workspace);
  OCTA_CHECK(H % 2 == 0 && W % 2 == 0,
             "{}: H = {} and W = {} must both be even for the 2x2 max-pool (for odd sizes use the "
             "unfused kernels: kernels/batchnorm.hpp, kernels/pool.hpp)",
             op, H, W);
  require_pointer(op, "dgamma", dgamma);
  require_pointer(op, "dbeta", dbeta);
  require_pointer(op, "window", window);
  require_pointer(op, "conv_out", conv_out);
  require_pointer(op, "save_mean", save_mean);
  require_pointer(op, "save_invstd", save_invstd);
  require_pointer(op, "gamma", gamma);
  require_pointer(op, "bn_workspace (batchnorm_relu_maxpool_backward_workspace doubles)",
                  bn_workspace);
  NvtxRange range(op);
  batchnorm_relu_maxpool_backward_sums(bn_workspace, dpool, window, conv_out, save_mean,
                                       save_invstd, N, Cout, H, W, stream);
  const BnGradSource bn{window,    bn_workspace, batchnorm_relu_maxpool_backward_blocks(N, H, W),
                        save_mean, save_invstd,  gamma,
                        dgamma,    dbeta};
  backward_filter<DoutSource::kBnMaxpoolRelu>(dweight, dbias, dpool, conv_out, in, N, Cin, Cout, H,
                                              W, workspace, stream, bn);
}

}  // namespace octa::gpu
