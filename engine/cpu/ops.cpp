// engine/cpu/ops.cpp: the CPU reference operations declared in ops.hpp, for float and double.
// Plain serial loops, with the GEMM-shaped work (convolution via im2col, linear layers) through
// BLAS, whose own threads are the only parallelism: on two cores, OpenMP regions between GEMMs
// fought OpenBLAS's spinning threads and made a model A step slower, not faster. The reductions
// written here (bias gradients, BatchNorm statistics, pooling, the loss) accumulate in double in a
// fixed order, so every result is reproducible.
#include "engine/cpu/ops.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/core/philox.hpp"
#include "engine/cpu/blas.hpp"

namespace octa::cpu {

namespace {

std::size_t sz(int v) {
  return static_cast<std::size_t>(v);
}

void check_positive(const char* op, const char* name, int value) {
  OCTA_CHECK(value > 0, "{}: {} = {} must be positive", op, name, value);
}

// Grow-only per-thread scratch buffers, so that a training step does not allocate (and fault in)
// tens of megabytes of im2col workspace every call. Slot 0: columns, 1: output-gradient matrix,
// 2: column gradients.
template <class T>
T* scratch(int slot, std::size_t n) {
  thread_local std::vector<T> buffers[3];
  std::vector<T>& b = buffers[slot];
  if (b.size() < n) b.resize(n);
  return b.data();
}

// The im2col workspace is bounded (about 4M elements) by converting the batch in chunks of whole
// images: batch 64 of model A's conv2 is one chunk, an evaluation batch of 1000 is several.
constexpr std::size_t kColChunkElems = std::size_t{1} << 22;

struct ConvShape {
  int N, Cin, Cout, H, W;
  std::size_t HW() const { return sz(H) * sz(W); }
  std::size_t K() const { return sz(Cin) * 9; }  // rows of the column matrix: (ci, ky, kx)
  int images_per_chunk() const {
    const std::size_t per_image = K() * HW();
    return static_cast<int>(std::clamp<std::size_t>(kColChunkElems / per_image, 1, sz(N)));
  }
};

ConvShape check_conv(const char* op, int N, int Cin, int Cout, int H, int W) {
  check_positive(op, "N", N);
  check_positive(op, "Cin", Cin);
  check_positive(op, "Cout", Cout);
  check_positive(op, "H", H);
  check_positive(op, "W", W);
  const ConvShape s{N, Cin, Cout, H, W};
  // BLAS takes int dimensions: one image's column block must fit.
  OCTA_CHECK(s.K() * s.HW() <= static_cast<std::size_t>(INT_MAX),
             "{}: Cin*9*H*W = {} is too large for one im2col block", op, s.K() * s.HW());
  return s;
}

// col: (Cin*9, nb*HW), column (n - n0)*HW + y*W + x holds the 3x3 neighbourhood of (y, x) in image
// n, zero outside the image (padding 1). Each row of col is the image shifted by (ky - 1, kx - 1):
// copied as contiguous runs, with the padding columns zeroed.
template <class T>
void im2col(T* col, const T* in, const ConvShape& s, int n0, int nb) {
  const int H = s.H, W = s.W;
  const std::size_t HW = s.HW(), ld = sz(nb) * HW;
  for (int b = 0; b < nb; ++b) {
    for (int ci = 0; ci < s.Cin; ++ci) {
      const T* src = in + (sz(n0 + b) * sz(s.Cin) + sz(ci)) * HW;
      for (int ky = 0; ky < 3; ++ky) {
        for (int kx = 0; kx < 3; ++kx) {
          T* dst = col + (sz(ci) * 9 + sz(ky) * 3 + sz(kx)) * ld + sz(b) * HW;
          // Output columns x in [x0, x1) read input column x + kx - 1 inside the image.
          const int x0 = kx == 0 ? 1 : 0, x1 = kx == 2 ? W - 1 : W;
          for (int y = 0; y < H; ++y) {
            const int iy = y + ky - 1;
            T* drow = dst + sz(y) * sz(W);
            if (iy < 0 || iy >= H) {
              std::fill(drow, drow + W, T(0));
              continue;
            }
            const T* srow = src + sz(iy) * sz(W) + sz(x0 + kx - 1);
            std::fill(drow, drow + x0, T(0));
            if (x1 > x0) std::copy(srow, srow + (x1 - x0), drow + x0);
            std::fill(drow + std::max(x0, x1), drow + W, T(0));
          }
        }
      }
    }
  }
}

// The adjoint of im2col: each input pixel receives its (up to) nine column entries, added in the
// fixed order (ky, kx), as contiguous shifted runs.
template <class T>
void col2im(T* din, const T* dcol, const ConvShape& s, int n0, int nb) {
  const int H = s.H, W = s.W;
  const std::size_t HW = s.HW(), ld = sz(nb) * HW;
  for (int b = 0; b < nb; ++b) {
    for (int ci = 0; ci < s.Cin; ++ci) {
      T* dst = din + (sz(n0 + b) * sz(s.Cin) + sz(ci)) * HW;
      std::fill(dst, dst + HW, T(0));
      for (int ky = 0; ky < 3; ++ky) {
        for (int kx = 0; kx < 3; ++kx) {
          const T* src = dcol + (sz(ci) * 9 + sz(ky) * 3 + sz(kx)) * ld + sz(b) * HW;
          const int x0 = kx == 0 ? 1 : 0, x1 = kx == 2 ? W - 1 : W;
          for (int y = 0; y < H; ++y) {
            const int iy = y + ky - 1;
            if (iy < 0 || iy >= H) continue;
            const T* srow = src + sz(y) * sz(W) + sz(x0);
            T* drow = dst + sz(iy) * sz(W) + sz(x0 + kx - 1);
            for (int x = 0; x < x1 - x0; ++x) drow[x] += srow[x];
          }
        }
      }
    }
  }
}

// sum(x[0..n)) in double, with eight interleaved partial sums (so the loop vectorises) combined in
// a fixed order: the same result on every run and thread count.
template <class T>
double sum_double(const T* x, std::size_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (std::size_t k = 0; k < 8; ++k) acc[k] += static_cast<double>(x[i + k]);
  }
  double tail = 0.0;
  for (; i < n; ++i) tail += static_cast<double>(x[i]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

void check_pool(const char* op, int N, int C, int H, int W) {
  check_positive(op, "N", N);
  check_positive(op, "C", C);
  check_positive(op, "H", H);
  check_positive(op, "W", W);
  OCTA_CHECK(H % 2 == 0 && W % 2 == 0, "{}: H = {} and W = {} must both be even for a 2x2 pool", op,
             H, W);
}

// Index (0..3, row-major) of the first maximum of a 2x2 window. A NaN wins (the first one), so a
// diverged value propagates as in PyTorch: v replaces the best unless v <= best or best is NaN.
template <class T>
int window_argmax(const T* top, int W) {
  const T v[4] = {top[0], top[1], top[W], top[W + 1]};
  int best = 0;
  T bv = v[0];
  for (int k = 1; k < 4; ++k) {
    const bool take = !(v[k] <= bv) && bv == bv;  // a select, not a branch: unpredictable
    best = take ? k : best;
    bv = take ? v[k] : bv;
  }
  return best;
}

void check_dropout_p(const char* op, float p) {
  OCTA_CHECK(p >= 0.0f && p < 1.0f, "{}: drop probability p = {} must be in [0, 1)", op, p);
}

// sigmoid(z), without overflow for any finite z.
double sigmoid(double z) {
  if (z >= 0.0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

// log(1 + exp(z)), without overflow for any finite z.
double softplus(double z) {
  return std::max(z, 0.0) + std::log1p(std::exp(-std::abs(z)));
}

}  // namespace

// =============================================================================================
// conv2d 3x3, stride 1, padding 1
// =============================================================================================

template <class T>
void conv3x3_forward(T* out, const T* in, const T* weight, const T* bias, int N, int Cin, int Cout,
                     int H, int W) {
  const ConvShape s = check_conv("conv3x3_forward", N, Cin, Cout, H, W);
  const std::size_t HW = s.HW(), K = s.K();
  const int chunk = s.images_per_chunk();
  for (int n0 = 0; n0 < N; n0 += chunk) {
    const int nb = std::min(chunk, N - n0);
    const std::size_t cols = sz(nb) * HW;
    T* col = scratch<T>(0, K * cols);
    T* y = scratch<T>(1, sz(Cout) * cols);
    im2col(col, in, s, n0, nb);
    // y (Cout, nb*HW) = weight (Cout, Cin*9) * col (Cin*9, nb*HW)
    gemm<T>(false, false, Cout, static_cast<int>(cols), static_cast<int>(K), T(1), weight,
            static_cast<int>(K), col, static_cast<int>(cols), T(0), y, static_cast<int>(cols));
    for (int b = 0; b < nb; ++b) {
      for (int co = 0; co < Cout; ++co) {
        const T* src = y + sz(co) * cols + sz(b) * HW;
        T* dst = out + (sz(n0 + b) * sz(Cout) + sz(co)) * HW;
        const T bc = bias[co];
        for (std::size_t p = 0; p < HW; ++p) dst[p] = src[p] + bc;
      }
    }
  }
}

template <class T>
void conv3x3_backward(T* din, T* dweight, T* dbias, const T* dout, const T* in, const T* weight,
                      int N, int Cin, int Cout, int H, int W) {
  const ConvShape s = check_conv("conv3x3_backward", N, Cin, Cout, H, W);
  const std::size_t HW = s.HW(), K = s.K();

  for (int co = 0; co < Cout; ++co) {
    double acc = 0.0;
    for (int n = 0; n < N; ++n) {
      const T* g = dout + (sz(n) * sz(Cout) + sz(co)) * HW;
      acc += sum_double(g, HW);
    }
    dbias[co] = static_cast<T>(acc);
  }

  const int chunk = s.images_per_chunk();
  for (int n0 = 0; n0 < N; n0 += chunk) {
    const int nb = std::min(chunk, N - n0);
    const std::size_t cols = sz(nb) * HW;
    const int icols = static_cast<int>(cols), iK = static_cast<int>(K);
    T* col = scratch<T>(0, K * cols);
    T* dy = scratch<T>(1, sz(Cout) * cols);
    im2col(col, in, s, n0, nb);
    // dy (Cout, nb*HW): the chunk's output gradient with the batch folded into the columns.
    for (int co = 0; co < Cout; ++co) {
      for (int b = 0; b < nb; ++b) {
        const T* src = dout + (sz(n0 + b) * sz(Cout) + sz(co)) * HW;
        std::copy(src, src + HW, dy + sz(co) * cols + sz(b) * HW);
      }
    }
    // dweight (Cout, Cin*9) (+)= dy * col^T; the first chunk overwrites.
    gemm<T>(false, true, Cout, iK, icols, T(1), dy, icols, col, icols, n0 == 0 ? T(0) : T(1),
            dweight, iK);
    if (din != nullptr) {
      // dcol (Cin*9, nb*HW) = weight^T * dy, then scattered back onto the input pixels.
      T* dcol = scratch<T>(2, K * cols);
      gemm<T>(true, false, iK, icols, Cout, T(1), weight, iK, dy, icols, T(0), dcol, icols);
      col2im(din, dcol, s, n0, nb);
    }
  }
}

// =============================================================================================
// BatchNorm2d
// =============================================================================================

template <class T>
void batchnorm_forward_train(T* out, T* save_mean, T* save_invstd, T* running_mean, T* running_var,
                             const T* in, const T* gamma, const T* beta, int N, int C, int HW,
                             T eps, T momentum, const BatchNormRanks* ranks) {
  const char* op = "batchnorm_forward_train";
  check_positive(op, "N", N);
  check_positive(op, "C", C);
  check_positive(op, "HW", HW);
  OCTA_CHECK(eps >= T(0), "{}: eps = {} must be non-negative", op, eps);
  OCTA_CHECK(momentum >= T(0) && momentum <= T(1), "{}: momentum = {} must be in [0, 1]", op,
             momentum);
  const double m = static_cast<double>(momentum);
  const auto channel = [&](int n, int c) { return in + (sz(n) * sz(C) + sz(c)) * sz(HW); };

  // Per channel the sum of x, then the element count; with ranks, the global batch's.
  std::vector<double> sums(sz(C) + 1, 0.0);
  for (int c = 0; c < C; ++c) {
    for (int n = 0; n < N; ++n) sums[sz(c)] += sum_double(channel(n, c), sz(HW));
  }
  sums[sz(C)] = static_cast<double>(sz(N) * sz(HW));
  if (ranks != nullptr) ranks->allreduce_sum(sums.data(), sums.size());
  const double count = sums[sz(C)];
  // PyTorch refuses this too: the unbiased variance of one value is undefined.
  OCTA_CHECK(count > 1.0, "{}: N * H * W = {} must exceed 1 per channel in training mode", op,
             count);

  // Then the sum of (x - mean)^2 about that mean: two passes, no cancellation when |mean| >> std.
  std::vector<double> sq(sz(C), 0.0);
  for (int c = 0; c < C; ++c) {
    const double mean = sums[sz(c)] / count;
    for (int n = 0; n < N; ++n) {
      const T* x = channel(n, c);
      for (int p = 0; p < HW; ++p) {
        const double d = static_cast<double>(x[p]) - mean;
        sq[sz(c)] += d * d;
      }
    }
  }
  if (ranks != nullptr) ranks->allreduce_sum(sq.data(), sq.size());

  for (int c = 0; c < C; ++c) {
    const double mean = sums[sz(c)] / count;
    const double var_biased = sq[sz(c)] / count;
    const double invstd = 1.0 / std::sqrt(var_biased + static_cast<double>(eps));
    const double g = static_cast<double>(gamma[c]), bt = static_cast<double>(beta[c]);
    for (int n = 0; n < N; ++n) {
      const std::size_t base = (sz(n) * sz(C) + sz(c)) * sz(HW);
      for (int p = 0; p < HW; ++p) {
        const double xhat = (static_cast<double>(in[base + sz(p)]) - mean) * invstd;
        out[base + sz(p)] = static_cast<T>(xhat * g + bt);
      }
    }
    save_mean[c] = static_cast<T>(mean);
    save_invstd[c] = static_cast<T>(invstd);
    // A module built without running statistics passes null for both.
    if (running_mean != nullptr) {
      running_mean[c] = static_cast<T>((1.0 - m) * static_cast<double>(running_mean[c]) + m * mean);
    }
    if (running_var != nullptr) {
      const double var_unbiased = sq[sz(c)] / (count - 1.0);
      running_var[c] =
          static_cast<T>((1.0 - m) * static_cast<double>(running_var[c]) + m * var_unbiased);
    }
  }
}

template <class T>
void batchnorm_forward_eval(T* out, const T* in, const T* gamma, const T* beta,
                            const T* running_mean, const T* running_var, int N, int C, int HW,
                            T eps) {
  const char* op = "batchnorm_forward_eval";
  check_positive(op, "N", N);
  check_positive(op, "C", C);
  check_positive(op, "HW", HW);
  OCTA_CHECK(eps >= T(0), "{}: eps = {} must be non-negative", op, eps);
  for (int n = 0; n < N; ++n) {
    for (int c = 0; c < C; ++c) {
      const double mean = static_cast<double>(running_mean[c]);
      const double invstd =
          1.0 / std::sqrt(static_cast<double>(running_var[c]) + static_cast<double>(eps));
      const double g = static_cast<double>(gamma[c]), bt = static_cast<double>(beta[c]);
      const std::size_t base = (sz(n) * sz(C) + sz(c)) * sz(HW);
      for (int p = 0; p < HW; ++p) {
        const double xhat = (static_cast<double>(in[base + sz(p)]) - mean) * invstd;
        out[base + sz(p)] = static_cast<T>(xhat * g + bt);
      }
    }
  }
}

template <class T>
void batchnorm_backward(T* din, T* dgamma, T* dbeta, const T* dout, const T* in, const T* save_mean,
                        const T* save_invstd, const T* gamma, int N, int C, int HW,
                        const BatchNormRanks* ranks) {
  const char* op = "batchnorm_backward";
  check_positive(op, "N", N);
  check_positive(op, "C", C);
  check_positive(op, "HW", HW);

  // Per channel the sums of dy and of dy * xhat (dbeta and dgamma), then the element count.
  std::vector<double> sums(2 * sz(C) + 1, 0.0);
  for (int c = 0; c < C; ++c) {
    const double mean = static_cast<double>(save_mean[c]);
    const double invstd = static_cast<double>(save_invstd[c]);
    double sum_dy = 0.0, sum_dy_xhat = 0.0;
    for (int n = 0; n < N; ++n) {
      const std::size_t base = (sz(n) * sz(C) + sz(c)) * sz(HW);
      for (int p = 0; p < HW; ++p) {
        const double dy = static_cast<double>(dout[base + sz(p)]);
        sum_dy += dy;
        sum_dy_xhat += dy * (static_cast<double>(in[base + sz(p)]) - mean) * invstd;
      }
    }
    dbeta[c] = static_cast<T>(sum_dy);
    dgamma[c] = static_cast<T>(sum_dy_xhat);
    sums[sz(c)] = sum_dy;
    sums[sz(C) + sz(c)] = sum_dy_xhat;
  }
  if (din == nullptr) return;  // no input gradient: nothing to reduce (on every rank alike)
  sums[2 * sz(C)] = static_cast<double>(sz(N) * sz(HW));
  // With ranks: each rank's dy is its share's mean loss's, 1 / weight times the global loss's, so
  // the sums are weighted before they are added up and the global means unweighted after.
  const double weight = ranks != nullptr ? ranks->weight : 1.0;
  if (ranks != nullptr) {
    for (std::size_t i = 0; i < 2 * sz(C); ++i) sums[i] *= weight;
    ranks->allreduce_sum(sums.data(), sums.size());
  }
  const double count = sums[2 * sz(C)];

  for (int c = 0; c < C; ++c) {
    const double mean = static_cast<double>(save_mean[c]);
    const double invstd = static_cast<double>(save_invstd[c]);
    // d/dx of gamma * xhat + beta through the batch mean and variance.
    const double scale = static_cast<double>(gamma[c]) * invstd;
    double mean_dy = sums[sz(c)] / count, mean_dy_xhat = sums[sz(C) + sz(c)] / count;
    if (ranks != nullptr) {
      mean_dy /= weight;
      mean_dy_xhat /= weight;
    }
    for (int n = 0; n < N; ++n) {
      const std::size_t base = (sz(n) * sz(C) + sz(c)) * sz(HW);
      for (int p = 0; p < HW; ++p) {
        const double xhat = (static_cast<double>(in[base + sz(p)]) - mean) * invstd;
        const double dy = static_cast<double>(dout[base + sz(p)]);
        din[base + sz(p)] = static_cast<T>(scale * (dy - mean_dy - xhat * mean_dy_xhat));
      }
    }
  }
}

// =============================================================================================
// ReLU
// =============================================================================================

// x < 0 -> 0 rather than x > 0 ? x : 0, so that a NaN propagates (as PyTorch's relu does).
template <class T>
void relu_forward(T* out, const T* in, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = in[i] < T(0) ? T(0) : in[i];
}

template <class T>
void relu_backward(T* din, const T* dout, const T* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) din[i] = out[i] > T(0) ? dout[i] : T(0);
}

// =============================================================================================
// Max-pool 2x2, stride 2
// =============================================================================================

template <class T>
void maxpool2x2_forward(T* out, const T* in, int N, int C, int H, int W) {
  check_pool("maxpool2x2_forward", N, C, H, W);
  const int Ho = H / 2, Wo = W / 2;
  const int planes = N * C;
  for (int pl = 0; pl < planes; ++pl) {
    const T* src = in + sz(pl) * sz(H) * sz(W);
    T* dst = out + sz(pl) * sz(Ho) * sz(Wo);
    for (int oy = 0; oy < Ho; ++oy) {
      for (int ox = 0; ox < Wo; ++ox) {
        const T* top = src + sz(2 * oy) * sz(W) + sz(2 * ox);
        const int k = window_argmax(top, W);
        dst[sz(oy) * sz(Wo) + sz(ox)] = top[(k / 2) * W + (k % 2)];
      }
    }
  }
}

template <class T>
void maxpool2x2_backward(T* din, const T* dout, const T* in, int N, int C, int H, int W) {
  check_pool("maxpool2x2_backward", N, C, H, W);
  const int Ho = H / 2, Wo = W / 2;
  const int planes = N * C;
  for (int pl = 0; pl < planes; ++pl) {
    const T* src = in + sz(pl) * sz(H) * sz(W);
    T* dsrc = din + sz(pl) * sz(H) * sz(W);
    const T* g = dout + sz(pl) * sz(Ho) * sz(Wo);
    for (int oy = 0; oy < Ho; ++oy) {
      for (int ox = 0; ox < Wo; ++ox) {
        const std::size_t off = sz(2 * oy) * sz(W) + sz(2 * ox);
        const int k = window_argmax(src + off, W);
        T* dtop = dsrc + off;
        dtop[0] = dtop[1] = dtop[W] = dtop[W + 1] = T(0);
        dtop[(k / 2) * W + (k % 2)] = g[sz(oy) * sz(Wo) + sz(ox)];
      }
    }
  }
}

// =============================================================================================
// Global average pool
// =============================================================================================

template <class T>
void global_avgpool_forward(T* out, const T* in, int N, int C, int HW) {
  const char* op = "global_avgpool_forward";
  check_positive(op, "N", N);
  check_positive(op, "C", C);
  check_positive(op, "HW", HW);
  const std::size_t planes = sz(N) * sz(C);
  for (std::size_t pl = 0; pl < planes; ++pl) {
    const T* x = in + pl * sz(HW);
    out[pl] = static_cast<T>(sum_double(x, sz(HW)) / static_cast<double>(HW));
  }
}

template <class T>
void global_avgpool_backward(T* din, const T* dout, int N, int C, int HW) {
  const char* op = "global_avgpool_backward";
  check_positive(op, "N", N);
  check_positive(op, "C", C);
  check_positive(op, "HW", HW);
  const std::size_t planes = sz(N) * sz(C);
  for (std::size_t pl = 0; pl < planes; ++pl) {
    const T g = static_cast<T>(static_cast<double>(dout[pl]) / static_cast<double>(HW));
    std::fill(din + pl * sz(HW), din + (pl + 1) * sz(HW), g);
  }
}

// =============================================================================================
// Linear
// =============================================================================================

template <class T>
void linear_forward(T* out, const T* in, const T* weight, const T* bias, int N, int In, int Out) {
  const char* op = "linear_forward";
  check_positive(op, "N", N);
  check_positive(op, "In", In);
  check_positive(op, "Out", Out);
  for (int n = 0; n < N; ++n) std::copy(bias, bias + Out, out + sz(n) * sz(Out));
  // out (N, Out) = in (N, In) * weight^T (In, Out) + out
  gemm<T>(false, true, N, Out, In, T(1), in, In, weight, In, T(1), out, Out);
}

template <class T>
void linear_backward(T* din, T* dweight, T* dbias, const T* dout, const T* in, const T* weight,
                     int N, int In, int Out) {
  const char* op = "linear_backward";
  check_positive(op, "N", N);
  check_positive(op, "In", In);
  check_positive(op, "Out", Out);
  for (int o = 0; o < Out; ++o) {
    double acc = 0.0;
    for (int n = 0; n < N; ++n) acc += static_cast<double>(dout[sz(n) * sz(Out) + sz(o)]);
    dbias[o] = static_cast<T>(acc);
  }
  // dweight (Out, In) = dout^T (Out, N) * in (N, In)
  gemm<T>(true, false, Out, In, N, T(1), dout, Out, in, In, T(0), dweight, In);
  // din (N, In) = dout (N, Out) * weight (Out, In)
  if (din != nullptr) gemm<T>(false, false, N, In, Out, T(1), dout, Out, weight, In, T(0), din, In);
}

// =============================================================================================
// Dropout
// =============================================================================================

template <class T>
void dropout_forward(T* out, std::uint8_t* mask, const T* in, std::size_t n, float p,
                     std::uint64_t seed, std::uint64_t stream, std::uint64_t first) {
  check_dropout_p("dropout_forward", p);
  const T scale = T(1) / (T(1) - static_cast<T>(p));
  const auto count = static_cast<std::int64_t>(n);
  for (std::int64_t j = 0; j < count; ++j) {
    const auto i = static_cast<std::size_t>(j);
    const bool keep = uniform01(philox_word(seed, stream, first + i)) >= p;
    mask[i] = keep ? std::uint8_t{1} : std::uint8_t{0};
    out[i] = keep ? in[i] * scale : T(0);
  }
}

template <class T>
void dropout_backward(T* din, const T* dout, const std::uint8_t* mask, std::size_t n, float p) {
  check_dropout_p("dropout_backward", p);
  const T scale = T(1) / (T(1) - static_cast<T>(p));
  for (std::size_t i = 0; i < n; ++i) din[i] = mask[i] != 0 ? dout[i] * scale : T(0);
}

// =============================================================================================
// BCE with logits
// =============================================================================================

template <class T>
double bce_with_logits(T* dlogits, const T* logits, const T* targets, int N, T pos_weight) {
  check_positive("bce_with_logits", "N", N);
  OCTA_CHECK(std::isfinite(static_cast<double>(pos_weight)),
             "bce_with_logits: pos_weight = {} must be finite", pos_weight);
  const double pw = static_cast<double>(pos_weight), count = static_cast<double>(N);
  double sum = 0.0;
  for (int i = 0; i < N; ++i) {
    const double z = static_cast<double>(logits[i]), y = static_cast<double>(targets[i]);
    // The header's (1-y) z + L (log1p(exp(-|z|)) + max(-z, 0)), L = 1 + (pw-1) y, rearranged
    // with softplus(z) = z + softplus(-z) into a sum of non-negative terms (for 0 <= y <= 1), so
    // that nothing cancels at large |z|: l = (1-y) softplus(z) + pw y softplus(-z).
    sum += (1.0 - y) * softplus(z) + pw * y * softplus(-z);
    if (dlogits != nullptr) {
      // ((1-y) + L (sigmoid(z) - 1)) / N, rearranged the same way: sigmoid(z) - 1 = -sigmoid(-z).
      const double g = (1.0 - y) * sigmoid(z) - pw * y * sigmoid(-z);
      dlogits[i] = static_cast<T>(g / count);
    }
  }
  return sum / count;
}

// =============================================================================================
// Softmax cross-entropy
// =============================================================================================

namespace {

// The class index a target holds, checked: an integer in [0, C).
template <class T>
int target_class(const T* targets, int n, int C) {
  const double t = static_cast<double>(targets[n]);
  OCTA_CHECK(t >= 0.0 && t < static_cast<double>(C) && t == std::floor(t),
             "softmax_cross_entropy: target {} of sample {} is not a class index in 0..{}", t, n,
             C - 1);
  return static_cast<int>(t);
}

}  // namespace

template <class T>
double softmax_cross_entropy(T* dlogits, const T* logits, const T* targets, int N, int C,
                             const T* class_weight, T label_smoothing) {
  const char* op = "softmax_cross_entropy";
  check_positive(op, "N", N);
  check_positive(op, "C", C);
  const double eps = static_cast<double>(label_smoothing);
  OCTA_CHECK(eps >= 0.0 && eps <= 1.0, "{}: label_smoothing = {} must be in [0, 1]", op, eps);
  const auto w = [&](int c) {
    return class_weight != nullptr ? static_cast<double>(class_weight[c]) : 1.0;
  };
  double weight_total = 0.0;  // sum over the classes, for the smoothing term's gradient
  for (int c = 0; c < C; ++c) {
    OCTA_CHECK(std::isfinite(w(c)) && w(c) >= 0.0,
               "{}: class weight {} = {} must be finite and non-negative", op, c, w(c));
    weight_total += w(c);
  }
  double W = 0.0;  // the weights of the batch's targets: the mean's denominator
  for (int n = 0; n < N; ++n) W += w(target_class(targets, n, C));
  if (W == 0.0) {  // PyTorch's nll_loss divides 0 by 0 here, and the NaN reaches everything
    const double nan = std::numeric_limits<double>::quiet_NaN();
    if (dlogits != nullptr) std::fill(dlogits, dlogits + sz(N) * sz(C), static_cast<T>(nan));
    return nan;
  }

  const double smooth_per_class = eps / static_cast<double>(C);
  double nll = 0.0, smooth = 0.0;
  for (int n = 0; n < N; ++n) {
    const T* z = logits + sz(n) * sz(C);
    const int y = target_class(targets, n, C);
    // The first maximum a (a NaN wins, so that it reaches the loss), and the softmax's
    // denominator s = 1 + rest, rest = sum of exp(z[c] - z[a]) over c != a: log s = log1p(rest)
    // keeps its accuracy where one class is (nearly) certain.
    int a = 0;
    double m = static_cast<double>(z[0]);
    for (int c = 1; c < C; ++c) {
      const double v = static_cast<double>(z[c]);
      if (!(v <= m) && m == m) {
        a = c;
        m = v;
      }
    }
    double rest = 0.0;
    for (int c = 0; c < C; ++c) {
      if (c != a) rest += std::exp(static_cast<double>(z[c]) - m);
    }
    const double log_s = std::log1p(rest), s = 1.0 + rest;
    // -log p[c] = (m - z[c]) + log s: two non-negative terms.
    const auto neg_log_p = [&](int c) { return (m - static_cast<double>(z[c])) + log_s; };
    const double wy = w(y);
    nll += wy * neg_log_p(y);
    if (eps > 0.0) {
      double row = 0.0;
      for (int c = 0; c < C; ++c) row += w(c) * neg_log_p(c);
      smooth += row;
    }
    if (dlogits == nullptr) continue;
    T* g = dlogits + sz(n) * sz(C);
    for (int j = 0; j < C; ++j) {
      const double p = j == a ? 1.0 / s : std::exp(static_cast<double>(z[j]) - m) / s;
      // p[y] - 1, without cancellation where y is the maximum: -rest / s.
      const double onehot_term = j != y ? p : (y == a ? -rest / s : p - 1.0);
      const double d =
          (1.0 - eps) * wy * onehot_term + smooth_per_class * (weight_total * p - w(j));
      g[j] = static_cast<T>(d / W);
    }
  }
  return ((1.0 - eps) * nll + smooth_per_class * smooth) / W;
}

// =============================================================================================
// Explicit instantiations
// =============================================================================================

#define OCTA_INSTANTIATE_CPU_OPS(T)                                                                \
  template void conv3x3_forward<T>(T*, const T*, const T*, const T*, int, int, int, int, int);     \
  template void conv3x3_backward<T>(T*, T*, T*, const T*, const T*, const T*, int, int, int, int,  \
                                    int);                                                          \
  template void batchnorm_forward_train<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*, int,  \
                                           int, int, T, T, const BatchNormRanks*);                 \
  template void batchnorm_forward_eval<T>(T*, const T*, const T*, const T*, const T*, const T*,    \
                                          int, int, int, T);                                       \
  template void batchnorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,          \
                                      const T*, int, int, int, const BatchNormRanks*);             \
  template void relu_forward<T>(T*, const T*, std::size_t);                                        \
  template void relu_backward<T>(T*, const T*, const T*, std::size_t);                             \
  template void maxpool2x2_forward<T>(T*, const T*, int, int, int, int);                           \
  template void maxpool2x2_backward<T>(T*, const T*, const T*, int, int, int, int);                \
  template void global_avgpool_forward<T>(T*, const T*, int, int, int);                            \
  template void global_avgpool_backward<T>(T*, const T*, int, int, int);                           \
  template void linear_forward<T>(T*, const T*, const T*, const T*, int, int, int);                \
  template void linear_backward<T>(T*, T*, T*, const T*, const T*, const T*, int, int, int);       \
  template void dropout_forward<T>(T*, std::uint8_t*, const T*, std::size_t, float, std::uint64_t, \
                                   std::uint64_t, std::uint64_t);                                  \
  template void dropout_backward<T>(T*, const T*, const std::uint8_t*, std::size_t, float);        \
  template double bce_with_logits<T>(T*, const T*, const T*, int, T);                              \
  template double softmax_cross_entropy<T>(T*, const T*, const T*, int, int, const T*, T);

OCTA_INSTANTIATE_CPU_OPS(float)
OCTA_INSTANTIATE_CPU_OPS(double)

#undef OCTA_INSTANTIATE_CPU_OPS

}  // namespace octa::cpu
