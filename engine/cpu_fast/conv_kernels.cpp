// engine/cpu_fast/conv_kernels.cpp: the per-image loops of conv_kernels.hpp. Each hot loop is
// compiled twice (AVX2 and the x86-64 baseline) and picked when the program loads
// (target_clones); neither version contracts a * b + c into an FMA, so both give the same bits.
#include "engine/cpu_fast/conv_kernels.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define OCTA_FAST_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define OCTA_FAST_CLONES
#endif

namespace octa::cpu_fast {

namespace {

std::size_t sz(int v) {
  return static_cast<std::size_t>(v);
}

// A plane with a one-pixel zero border, (H + 2) x (W + 2), split by the parity of its row and
// column: parity plane (a, b) holds padded pixels (2i + a, 2j + b), (H/2 + 1) x (W/2 + 1) each.
// A 3x3 tap of the convolution, read in pool order, is then a contiguous run of each of them.
constexpr int kMaxParity = (kMaxSide / 2 + 1) * (kMaxSide / 2 + 1);
using ParityPlanes = std::array<float, 4 * kMaxParity>;

// Whether v replaces best as the maximum of a pooling window scanned in row-major order
// (cpu::window_argmax): unless v <= best or best is a NaN. So the first maximum wins, and the
// first NaN.
inline bool beats(float v, float best) {
  return !(v <= best) && best == best;
}

}  // namespace

namespace {

// The loops below take the plane size as template arguments (0: the run-time h, w), so the two
// sizes the models use get loops of known length that the compiler vectorises whole.

// For tap (ky, kx) and window position k = (dy, dx): the parity plane and the offset (in its
// (Wo + 1)-wide rows) that pool-order column block k of that tap reads.
struct TapSource {
  int plane, offset;
};
inline TapSource tap_source(int ky, int kx, int k, int Wo) {
  const int sy = k / 2 + ky, sx = k % 2 + kx;  // padded row / column of window (0, 0)
  return {(sy % 2) * 2 + sx % 2, (sy / 2) * (Wo + 1) + sx / 2};
}

template <int kH, int kW>
[[gnu::always_inline]] inline void im2col_planes(float* col, const float* in, int C, int h, int w) {
  const int H = kH != 0 ? kH : h, W = kW != 0 ? kW : w;
  const int Ho = H / 2, Wo = W / 2, Q = Ho * Wo, HW = H * W, PW = Wo + 1, PN = (Ho + 1) * PW;
  // The padded plane (its border zeroed once), then its parity planes: padded pixel (py, px) =
  // in (py - 1, px - 1), or 0 on the border.
  const int PS = W + 2;
  std::array<float, (kMaxSide + 2) * (kMaxSide + 2)> pad;
  std::fill(pad.begin(), pad.begin() + (H + 2) * PS, 0.0f);
  ParityPlanes par;
  for (int c = 0; c < C; ++c) {
    const float* src = in + sz(c) * sz(HW);
    for (int y = 0; y < H; ++y) {
      std::memcpy(&pad[sz((y + 1) * PS + 1)], src + sz(y) * sz(W), sz(W) * sizeof(float));
    }
    for (int py = 0; py < H + 2; ++py) {
      const float* r = &pad[sz(py * PS)];
      float* even = &par[sz((py % 2 * 2) * PN + py / 2 * PW)];
      float* odd = even + PN;
      for (int j = 0; j < PW; ++j) {
        even[j] = r[2 * j];
        odd[j] = r[2 * j + 1];
      }
    }
    for (int t = 0; t < 9; ++t) {
      float* row = col + (sz(c) * 9 + sz(t)) * sz(HW);
      for (int k = 0; k < 4; ++k) {
        const TapSource s = tap_source(t / 3, t % 3, k, Wo);
        const float* from = &par[sz(s.plane * PN + s.offset)];
        float* to = row + k * Q;
        for (int oy = 0; oy < Ho; ++oy) {
          for (int ox = 0; ox < Wo; ++ox) to[oy * Wo + ox] = from[oy * PW + ox];
        }
      }
    }
  }
}

template <int kH, int kW>
[[gnu::always_inline]] inline void col2im_planes(float* din, const float* dcol, int C, int h,
                                                 int w) {
  const int H = kH != 0 ? kH : h, W = kW != 0 ? kW : w;
  const int Ho = H / 2, Wo = W / 2, Q = Ho * Wo, HW = H * W, PW = Wo + 1, PN = (Ho + 1) * PW;
  ParityPlanes acc;
  for (int c = 0; c < C; ++c) {
    std::fill(acc.begin(), acc.begin() + 4 * PN, 0.0f);
    // Tap by tap, so that each pixel receives its (up to) nine entries in (ky, kx) order.
    for (int t = 0; t < 9; ++t) {
      const float* row = dcol + (sz(c) * 9 + sz(t)) * sz(HW);
      for (int k = 0; k < 4; ++k) {
        const TapSource s = tap_source(t / 3, t % 3, k, Wo);
        float* to = &acc[sz(s.plane * PN + s.offset)];
        const float* from = row + k * Q;
        for (int oy = 0; oy < Ho; ++oy) {
          for (int ox = 0; ox < Wo; ++ox) to[oy * PW + ox] += from[oy * Wo + ox];
        }
      }
    }
    // Pixel (y, x) is padded pixel (y + 1, x + 1).
    float* dst = din + sz(c) * sz(HW);
    for (int y = 0; y < H; ++y) {
      const int a = (y + 1) % 2, i = (y + 1) / 2;
      for (int x = 0; x < W; ++x) {
        const int b = (x + 1) % 2, j = (x + 1) / 2;
        dst[y * W + x] = acc[sz((a * 2 + b) * PN + i * PW + j)];
      }
    }
  }
}

template <int kH, int kW>
[[gnu::always_inline]] inline void pool_planes(float* out, std::uint8_t* argmax, const float* in,
                                               const float* center, const float* scale,
                                               const float* shift, int C, int h, int w) {
  const int H = kH != 0 ? kH : h, W = kW != 0 ? kW : w;
  const int Q = (H / 2) * (W / 2), HW = H * W;
  for (int c = 0; c < C; ++c) {
    const float m = center != nullptr ? center[c] : 0.0f;
    const float a = scale != nullptr ? scale[c] : 1.0f;
    const float b = shift != nullptr ? shift[c] : 0.0f;
    const float* v = in + sz(c) * sz(HW);
    float* dst = out + sz(c) * sz(Q);
    std::uint8_t* am = argmax + sz(c) * sz(Q);
    for (int q = 0; q < Q; ++q) {
      float e[4];
      for (int k = 0; k < 4; ++k) {
        e[k] = (v[k * Q + q] - m) * a + b;
        e[k] = e[k] < 0.0f ? 0.0f : e[k];
      }
      // The window in row-major order, as cpu::window_argmax.
      float best = e[0];
      std::int32_t k_best = 0;
      const bool t1 = beats(e[1], best);
      best = t1 ? e[1] : best;
      k_best = t1 ? 1 : k_best;
      const bool t2 = beats(e[2], best);
      best = t2 ? e[2] : best;
      k_best = t2 ? 2 : k_best;
      const bool t3 = beats(e[3], best);
      best = t3 ? e[3] : best;
      k_best = t3 ? 3 : k_best;
      dst[q] = best;
      am[q] = static_cast<std::uint8_t>(k_best);
    }
  }
}

template <int kH, int kW>
[[gnu::always_inline]] inline void unpool_planes(float* din, const float* dout, const float* out,
                                                 const std::uint8_t* argmax, int C, int h, int w) {
  const int H = kH != 0 ? kH : h, W = kW != 0 ? kW : w;
  const int Q = (H / 2) * (W / 2), HW = H * W;
  for (int c = 0; c < C; ++c) {
    float* d = din + sz(c) * sz(HW);
    const float* g = dout + sz(c) * sz(Q);
    const float* o = out + sz(c) * sz(Q);
    const std::uint8_t* am = argmax + sz(c) * sz(Q);
    for (int q = 0; q < Q; ++q) {
      const float v = o[q] > 0.0f ? g[q] : 0.0f;
      const int k = am[q];
      d[q] = k == 0 ? v : 0.0f;
      d[Q + q] = k == 1 ? v : 0.0f;
      d[2 * Q + q] = k == 2 ? v : 0.0f;
      d[3 * Q + q] = k == 3 ? v : 0.0f;
    }
  }
}

}  // namespace

// Each entry point picks the loop compiled for its plane size.
#define OCTA_BY_SIZE(fn, H, W, ...)                             \
  do {                                                          \
    if ((H) == 28 && (W) == 28) return fn<28, 28>(__VA_ARGS__); \
    if ((H) == 14 && (W) == 14) return fn<14, 14>(__VA_ARGS__); \
    return fn<0, 0>(__VA_ARGS__);                               \
  } while (0)

OCTA_FAST_CLONES
void im2col3x3_pooled(float* col, const float* in, int C, int H, int W) {
  OCTA_BY_SIZE(im2col_planes, H, W, col, in, C, H, W);
}

OCTA_FAST_CLONES
void col2im3x3_pooled(float* din, const float* dcol, int C, int H, int W) {
  OCTA_BY_SIZE(col2im_planes, H, W, din, dcol, C, H, W);
}

OCTA_FAST_CLONES
void affine_relu_maxpool(float* out, std::uint8_t* argmax, const float* in, const float* center,
                         const float* scale, const float* shift, int C, int H, int W) {
  OCTA_BY_SIZE(pool_planes, H, W, out, argmax, in, center, scale, shift, C, H, W);
}

OCTA_FAST_CLONES
void maxpool_relu_backward(float* din, const float* dout, const float* out,
                           const std::uint8_t* argmax, int C, int H, int W) {
  OCTA_BY_SIZE(unpool_planes, H, W, din, dout, out, argmax, C, H, W);
}

OCTA_FAST_CLONES
void add_bias(float* y, const float* bias, int C, int HW) {
  for (int c = 0; c < C; ++c) {
    float* row = y + sz(c) * sz(HW);
    const float b = bias[c];
    for (int p = 0; p < HW; ++p) row[p] += b;
  }
}

namespace {

// sum of f(i) for i in [0, n) in double: eight interleaved partial sums (so the loop vectorises)
// combined in a fixed order.
template <class F>
double interleaved_sum(int n, F f) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) acc[k] += f(i + k);
  }
  double tail = 0.0;
  for (; i < n; ++i) tail += f(i);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

template <int kH, int kW>
[[gnu::always_inline]] inline void pooled_bn_sums_planes(double* sum_dy, double* sum_dy_xhat,
                                                         const float* dout, const float* out,
                                                         const std::uint8_t* argmax, const float* x,
                                                         const float* mean, const float* invstd,
                                                         int C, int h, int w) {
  const int H = kH != 0 ? kH : h, W = kW != 0 ? kW : w;
  const int Q = (H / 2) * (W / 2), HW = H * W;
  std::array<float, kMaxSide * kMaxSide / 4> dy, xs;  // per window: dy at the argmax, and x there
  for (int c = 0; c < C; ++c) {
    const float* g = dout + sz(c) * sz(Q);
    const float* o = out + sz(c) * sz(Q);
    const std::uint8_t* am = argmax + sz(c) * sz(Q);
    const float* xc = x + sz(c) * sz(HW);
    for (int q = 0; q < Q; ++q) {
      dy[sz(q)] = o[q] > 0.0f ? g[q] : 0.0f;
      const int k = am[q];
      xs[sz(q)] = k == 0 ? xc[q] : k == 1 ? xc[Q + q] : k == 2 ? xc[2 * Q + q] : xc[3 * Q + q];
    }
    const double m = static_cast<double>(mean[c]);
    sum_dy[c] += interleaved_sum(Q, [&](int q) { return static_cast<double>(dy[sz(q)]); });
    sum_dy_xhat[c] +=
        static_cast<double>(invstd[c]) * interleaved_sum(Q, [&](int q) {
          return static_cast<double>(dy[sz(q)]) * (static_cast<double>(xs[sz(q)]) - m);
        });
  }
}

}  // namespace

OCTA_FAST_CLONES
void add_row_sums(double* acc, const float* y, int C, int HW) {
  for (int c = 0; c < C; ++c) {
    const float* row = y + sz(c) * sz(HW);
    acc[c] += interleaved_sum(HW, [row](int i) { return static_cast<double>(row[i]); });
  }
}

OCTA_FAST_CLONES
void add_row_sums_and_squares(double* sum, double* sum_sq, const float* y, int C, int HW) {
  for (int c = 0; c < C; ++c) {
    const float* row = y + sz(c) * sz(HW);
    sum[c] += interleaved_sum(HW, [row](int i) { return static_cast<double>(row[i]); });
    sum_sq[c] += interleaved_sum(HW, [row](int i) {
      const double v = static_cast<double>(row[i]);
      return v * v;
    });
  }
}

OCTA_FAST_CLONES
void pooled_batchnorm_sums(double* sum_dy, double* sum_dy_xhat, const float* dout, const float* out,
                           const std::uint8_t* argmax, const float* x, const float* mean,
                           const float* invstd, int C, int H, int W) {
  OCTA_BY_SIZE(pooled_bn_sums_planes, H, W, sum_dy, sum_dy_xhat, dout, out, argmax, x, mean, invstd,
               C, H, W);
}

#undef OCTA_BY_SIZE

OCTA_FAST_CLONES
void batchnorm_input_grad(float* dy, const float* x, const float* mean, const float* invstd,
                          const float* k, const float* mean_dy, const float* mean_dy_xhat, int C,
                          int HW) {
  for (int c = 0; c < C; ++c) {
    float* d = dy + sz(c) * sz(HW);
    const float* xc = x + sz(c) * sz(HW);
    const float m = mean[c], is = invstd[c], kc = k[c], mdy = mean_dy[c], mdx = mean_dy_xhat[c];
    for (int p = 0; p < HW; ++p) {
      const float xhat = (xc[p] - m) * is;
      d[p] = kc * (d[p] - mdy - xhat * mdx);
    }
  }
}

}  // namespace octa::cpu_fast
