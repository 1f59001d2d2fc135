// tests/test_cpu_ops.cpp: proof of the CPU reference operations (engine/cpu/ops.hpp): finite-
// difference gradient checks in double for every backward pass, hand-computed cases for the
// semantics that matter (BCE at extreme logits, BatchNorm train/eval, max-pool ties, ReLU at 0,
// dropout's Philox mask), and float against double for every operation.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/core/philox.hpp"
#include "engine/cpu/blas.hpp"
#include "engine/cpu/ops.hpp"
#include "tests/support/compare.hpp"
#include "tests/support/gradcheck.hpp"

namespace cpu = octa::cpu;
namespace tol = octa::test::tol;
using octa::test::all_indices;
using octa::test::gradcheck;
using octa::test::ProjectedLoss;
using octa::test::random_vector;

namespace {

// The finite-difference step of every check here (compare.hpp's kGradCheck assumes it).
constexpr double kStep = 1e-6;

std::size_t sz(int v) {
  return static_cast<std::size_t>(v);
}

// Gradient buffers start as NaN, so a backward pass that skips an element (or accumulates into
// it) cannot pass.
std::vector<double> nan_vector(std::size_t n) {
  return std::vector<double>(n, std::numeric_limits<double>::quiet_NaN());
}

template <class T>
std::vector<T> cast_vector(const std::vector<double>& v) {
  std::vector<T> r(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) r[i] = static_cast<T>(v[i]);
  return r;
}

// Rounds every value to float, so that a float run and a double run see the same inputs and
// differ only in their arithmetic.
std::vector<double> round_to_float(std::vector<double> v) {
  for (double& x : v) x = static_cast<double>(static_cast<float>(x));
  return v;
}

// A direct 3x3 convolution (cross-correlation, padding 1) in seven plain loops: an independent
// reference for the im2col + GEMM forward.
std::vector<double> direct_conv3x3(const std::vector<double>& in, const std::vector<double>& w,
                                   const std::vector<double>& b, int N, int Cin, int Cout, int H,
                                   int W) {
  std::vector<double> out(sz(N) * sz(Cout) * sz(H) * sz(W));
  for (int n = 0; n < N; ++n)
    for (int co = 0; co < Cout; ++co)
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x) {
          double acc = b[sz(co)];
          for (int ci = 0; ci < Cin; ++ci)
            for (int ky = 0; ky < 3; ++ky)
              for (int kx = 0; kx < 3; ++kx) {
                const int iy = y + ky - 1, ix = x + kx - 1;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                acc += w[((sz(co) * sz(Cin) + sz(ci)) * 3 + sz(ky)) * 3 + sz(kx)] *
                       in[((sz(n) * sz(Cin) + sz(ci)) * sz(H) + sz(iy)) * sz(W) + sz(ix)];
              }
          out[((sz(n) * sz(Cout) + sz(co)) * sz(H) + sz(y)) * sz(W) + sz(x)] = acc;
        }
  return out;
}

}  // namespace

// =============================================================================================
// The checker itself
// =============================================================================================

TEST_CASE("gradcheck passes a right gradient, fails a wrong one and skips kinks", "[gradcheck]") {
  // f(x) = sum_i r_i * relu(x_i): gradient r_i where x_i > 0, else 0.
  std::vector<double> x = random_vector(40, 11);
  const std::vector<double> r = random_vector(40, 12);
  const auto loss = [&] {
    double s = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) s += r[i] * std::max(x[i], 0.0);
    return s;
  };
  std::vector<double> right(x.size()), wrong(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    right[i] = x[i] > 0.0 ? r[i] : 0.0;
    wrong[i] = x[i] > 0.0 ? 1.01 * r[i] : 0.0;
  }
  const auto idx = all_indices(x.size());
  const auto good = gradcheck(loss, x.data(), right.data(), idx, kStep, tol::kGradCheck);
  CHECK(good.ok());
  CHECK(good.kinks_skipped == 0);
  CHECK(good.checked == x.size());
  const auto bad = gradcheck(loss, x.data(), wrong.data(), idx, kStep, tol::kGradCheck);
  CHECK(bad.failures > 0);
  CHECK_FALSE(bad.report.empty());

  // Exactly at the kink (x = 0, where the analytic gradient is the left slope 0), and within h of
  // it: skipped as kinks, not failures. A wrong value at a kink is still a failure.
  const std::vector<double> before = x;
  x[3] = 0.0;
  x[7] = 0.4 * kStep;
  right[3] = 0.0;
  right[7] = r[7];
  const auto kink = gradcheck(loss, x.data(), right.data(), idx, kStep, tol::kGradCheck);
  CHECK(kink.ok());
  CHECK(kink.kinks_skipped == 2);
  right[3] = 5.0;
  CHECK(gradcheck(loss, x.data(), right.data(), idx, kStep, tol::kGradCheck).failures == 1);
  x[3] = before[3];
  x[7] = before[7];
  CHECK(x == before);  // x is restored exactly after every perturbation
}

TEST_CASE("gradcheck support: seeded fills never yield zeros, indices are distinct",
          "[gradcheck]") {
  const auto a = random_vector(10000, 5), b = random_vector(10000, 5), c = random_vector(10000, 6);
  CHECK(a == b);
  CHECK(a != c);
  for (const double v : a) {
    CHECK(std::abs(v) >= 1e-3);
    CHECK(std::abs(v) <= 1.0);
  }
  const auto s = octa::test::sample_indices(1000, 50, 9);
  REQUIRE(s.size() == 50);
  for (std::size_t i = 1; i < s.size(); ++i) CHECK(s[i - 1] < s[i]);
  CHECK(s.back() < 1000);
  CHECK(octa::test::sample_indices(10, 50, 9).size() == 10);
}

// =============================================================================================
// GEMM wrapper
// =============================================================================================

TEST_CASE("gemm: all transpose combinations with padded leading dimensions", "[cpu][ops]") {
  const int M = 5, N = 7, K = 4, pad = 3;
  const auto a = random_vector(sz(M) * sz(K), 21), b = random_vector(sz(K) * sz(N), 22);
  std::vector<double> expected(sz(M) * sz(N), 0.0);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j)
      for (int k = 0; k < K; ++k)
        expected[sz(i) * sz(N) + sz(j)] += a[sz(i) * sz(K) + sz(k)] * b[sz(k) * sz(N) + sz(j)];

  for (const bool ta : {false, true}) {
    for (const bool tb : {false, true}) {
      CAPTURE(ta, tb);
      // Store op(A) = a and op(B) = b in the layouts the flags describe, with padded rows.
      const int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
      std::vector<double> A(sz(lda) * sz(ta ? K : M), 99.0), B(sz(ldb) * sz(tb ? N : K), 99.0);
      for (int i = 0; i < M; ++i)
        for (int k = 0; k < K; ++k)
          A[ta ? sz(k) * sz(lda) + sz(i) : sz(i) * sz(lda) + sz(k)] = a[sz(i) * sz(K) + sz(k)];
      for (int k = 0; k < K; ++k)
        for (int j = 0; j < N; ++j)
          B[tb ? sz(j) * sz(ldb) + sz(k) : sz(k) * sz(ldb) + sz(j)] = b[sz(k) * sz(N) + sz(j)];
      std::vector<double> C(sz(ldc) * sz(M), 1.0);
      // alpha 2, beta 0.5 over a C of ones.
      cpu::gemm<double>(ta, tb, M, N, K, 2.0, A.data(), lda, B.data(), ldb, 0.5, C.data(), ldc);
      std::vector<double> got(sz(M) * sz(N)), want(sz(M) * sz(N));
      for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
          got[sz(i) * sz(N) + sz(j)] = C[sz(i) * sz(ldc) + sz(j)];
          want[sz(i) * sz(N) + sz(j)] = 2.0 * expected[sz(i) * sz(N) + sz(j)] + 0.5;
          CHECK(C[sz(i) * sz(ldc) + sz(N)] == 1.0);  // padding untouched
        }
      OCTA_CHECK_CLOSE("gemm", got.data(), want.data(), got.size(), tol::kGradCheck);
    }
  }
  const auto info = cpu::blas_info();
  INFO("OpenBLAS: " << info.config << "; core " << info.core << ", " << info.threads << " threads");
  CHECK_FALSE(info.core.empty());
  CHECK(info.threads >= 1);
  if (info.generic_kernels()) WARN("OpenBLAS runs its generic kernels: set OPENBLAS_CORETYPE");

  std::vector<float> f(64);
  CHECK_THROWS_AS(
      cpu::gemm<float>(false, false, 4, 4, 4, 1.0f, f.data(), 3, f.data(), 4, 0.0f, f.data(), 4),
      octa::Error);
}

// =============================================================================================
// conv3x3
// =============================================================================================

namespace {
struct ConvCase {
  int N, Cin, Cout, H, W;
};
}  // namespace

TEST_CASE("conv3x3: forward matches a direct convolution, gradients match finite differences",
          "[cpu][ops][gradcheck]") {
  const ConvCase cases[] = {
      {1, 1, 2, 5, 4}, {3, 2, 3, 4, 6}, {2, 3, 4, 7, 5}, {1, 2, 1, 1, 3}, {2, 2, 2, 3, 1}};
  std::uint64_t seed = 100;
  for (const ConvCase& c : cases) {
    CAPTURE(c.N, c.Cin, c.Cout, c.H, c.W);
    const std::size_t n_in = sz(c.N) * sz(c.Cin) * sz(c.H) * sz(c.W);
    const std::size_t n_out = sz(c.N) * sz(c.Cout) * sz(c.H) * sz(c.W);
    auto in = random_vector(n_in, ++seed), w = random_vector(sz(c.Cout) * sz(c.Cin) * 9, ++seed),
         b = random_vector(sz(c.Cout), ++seed);
    std::vector<double> out(n_out);
    const auto forward = [&] {
      cpu::conv3x3_forward(out.data(), in.data(), w.data(), b.data(), c.N, c.Cin, c.Cout, c.H, c.W);
    };
    forward();
    const auto direct = direct_conv3x3(in, w, b, c.N, c.Cin, c.Cout, c.H, c.W);
    // Both in double; they differ only in summation order (kGradCheck is the double-precision row).
    OCTA_CHECK_CLOSE("conv out", out.data(), direct.data(), n_out, tol::kGradCheck);

    const ProjectedLoss L(n_out, ++seed);
    const auto loss = [&] {
      forward();
      return L(out.data());
    };
    auto din = nan_vector(n_in), dw = nan_vector(w.size()), db = nan_vector(b.size());
    cpu::conv3x3_backward(din.data(), dw.data(), db.data(), L.dout(), in.data(), w.data(), c.N,
                          c.Cin, c.Cout, c.H, c.W);
    // The convolution is linear in each argument: no kinks.
    OCTA_CHECK_GRADCHECK(gradcheck(loss, in.data(), din.data(), all_indices(n_in), kStep,
                                   tol::kGradCheck, "conv din"),
                         0.0);
    OCTA_CHECK_GRADCHECK(gradcheck(loss, w.data(), dw.data(), all_indices(w.size()), kStep,
                                   tol::kGradCheck, "conv dweight"),
                         0.0);
    OCTA_CHECK_GRADCHECK(gradcheck(loss, b.data(), db.data(), all_indices(b.size()), kStep,
                                   tol::kGradCheck, "conv dbias"),
                         0.0);

    // Without din (the first layer), the parameter gradients are the same.
    auto dw2 = nan_vector(w.size()), db2 = nan_vector(b.size());
    cpu::conv3x3_backward<double>(nullptr, dw2.data(), db2.data(), L.dout(), in.data(), w.data(),
                                  c.N, c.Cin, c.Cout, c.H, c.W);
    OCTA_CHECK_CLOSE("conv dweight, null din", dw2.data(), dw.data(), dw.size(), tol::kExact);
    OCTA_CHECK_CLOSE("conv dbias, null din", db2.data(), db.data(), db.size(), tol::kExact);
  }
}

TEST_CASE("conv3x3: model-sized layers, sampled gradient checks", "[cpu][ops][gradcheck]") {
  // Model A's layer shapes at batch 2 (conv2 with 8 of its 64 filters), checked on a seeded sample.
  const ConvCase cases[] = {{2, 1, 4, 28, 28}, {2, 32, 8, 14, 14}};
  std::uint64_t seed = 150;
  for (const ConvCase& c : cases) {
    CAPTURE(c.N, c.Cin, c.Cout, c.H, c.W);
    const std::size_t n_in = sz(c.N) * sz(c.Cin) * sz(c.H) * sz(c.W);
    const std::size_t n_out = sz(c.N) * sz(c.Cout) * sz(c.H) * sz(c.W);
    auto in = random_vector(n_in, ++seed), w = random_vector(sz(c.Cout) * sz(c.Cin) * 9, ++seed),
         b = random_vector(sz(c.Cout), ++seed);
    std::vector<double> out(n_out);
    const ProjectedLoss L(n_out, ++seed);
    const auto loss = [&] {
      cpu::conv3x3_forward(out.data(), in.data(), w.data(), b.data(), c.N, c.Cin, c.Cout, c.H, c.W);
      return L(out.data());
    };
    auto din = nan_vector(n_in), dw = nan_vector(w.size()), db = nan_vector(b.size());
    cpu::conv3x3_backward(din.data(), dw.data(), db.data(), L.dout(), in.data(), w.data(), c.N,
                          c.Cin, c.Cout, c.H, c.W);
    const auto in_idx = octa::test::sample_indices(n_in, 200, ++seed);
    const auto w_idx = octa::test::sample_indices(w.size(), 100, ++seed);
    OCTA_CHECK_GRADCHECK(
        gradcheck(loss, in.data(), din.data(), in_idx, kStep, tol::kGradCheck, "conv din, sampled"),
        0.0);
    OCTA_CHECK_GRADCHECK(gradcheck(loss, w.data(), dw.data(), w_idx, kStep, tol::kGradCheck,
                                   "conv dweight, sampled"),
                         0.0);
    OCTA_CHECK_GRADCHECK(gradcheck(loss, b.data(), db.data(), all_indices(b.size()), kStep,
                                   tol::kGradCheck, "conv dbias"),
                         0.0);
  }
}

TEST_CASE("conv3x3: cross-correlation orientation and channel mixing, by hand", "[cpu][ops]") {
  const int H = 3, W = 4;
  std::vector<double> in(2 * sz(H) * sz(W));
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<double>(i + 1);  // 1..24
  // Channel 0: weight 1 at (ky, kx) = (0, 0), so out(y, x) = in0(y - 1, x - 1) (PyTorch's conv is a
  // cross-correlation). Channel 1: weight 2 at (1, 2), so out(y, x) += 2 * in1(y, x + 1).
  std::vector<double> w(18, 0.0), b{0.5}, out(sz(H) * sz(W));
  w[0] = 1.0;
  w[9 + 1 * 3 + 2] = 2.0;
  cpu::conv3x3_forward(out.data(), in.data(), w.data(), b.data(), 1, 2, 1, H, W);
  std::vector<double> want(out.size());
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      double v = 0.5;
      if (y >= 1 && x >= 1) v += in[sz(y - 1) * sz(W) + sz(x - 1)];
      if (x + 1 < W) v += 2.0 * in[sz(H * W) + sz(y) * sz(W) + sz(x + 1)];
      want[sz(y) * sz(W) + sz(x)] = v;
    }
  CHECK(want[0] == 0.5 + 2.0 * 14.0);                // top-left: no up-left neighbour
  CHECK(want[sz(W) + 1] == 0.5 + 1.0 + 2.0 * 19.0);  // (1, 1): in0(0, 0) = 1, in1(1, 2) = 19
  OCTA_CHECK_CLOSE("conv by hand", out.data(), want.data(), out.size(), tol::kExact);
}

TEST_CASE("conv3x3: a batch spanning several im2col chunks equals image-by-image", "[cpu][ops]") {
  // Cin 32 at 14x14 is 56,448 column entries per image; the 4M-entry workspace holds 74 images,
  // so 80 images take two chunks (and the weight gradient accumulates across them).
  const int N = 80, Cin = 32, Cout = 4, H = 14, W = 14;
  const std::size_t img_in = sz(Cin) * sz(H) * sz(W), img_out = sz(Cout) * sz(H) * sz(W);
  const auto in = random_vector(sz(N) * img_in, 201),
             w = random_vector(sz(Cout) * sz(Cin) * 9, 202), b = random_vector(sz(Cout), 203),
             dout = random_vector(sz(N) * img_out, 204);
  std::vector<double> out(sz(N) * img_out), din(in.size()), dw(w.size()), db(b.size());
  cpu::conv3x3_forward(out.data(), in.data(), w.data(), b.data(), N, Cin, Cout, H, W);
  cpu::conv3x3_backward(din.data(), dw.data(), db.data(), dout.data(), in.data(), w.data(), N, Cin,
                        Cout, H, W);

  std::vector<double> out1(img_out), din1(img_in), dw1(w.size()), db1(b.size());
  std::vector<double> dw_sum(w.size(), 0.0), db_sum(b.size(), 0.0);
  for (int n = 0; n < N; ++n) {
    const double* x = in.data() + sz(n) * img_in;
    const double* g = dout.data() + sz(n) * img_out;
    cpu::conv3x3_forward(out1.data(), x, w.data(), b.data(), 1, Cin, Cout, H, W);
    cpu::conv3x3_backward(din1.data(), dw1.data(), db1.data(), g, x, w.data(), 1, Cin, Cout, H, W);
    OCTA_CHECK_CLOSE("conv out, image", out.data() + sz(n) * img_out, out1.data(), img_out,
                     tol::kGradCheck);
    OCTA_CHECK_CLOSE("conv din, image", din.data() + sz(n) * img_in, din1.data(), img_in,
                     tol::kGradCheck);
    for (std::size_t i = 0; i < dw.size(); ++i) dw_sum[i] += dw1[i];
    for (std::size_t i = 0; i < db.size(); ++i) db_sum[i] += db1[i];
  }
  OCTA_CHECK_CLOSE("conv dweight, summed", dw.data(), dw_sum.data(), dw.size(), tol::kGradCheck);
  OCTA_CHECK_CLOSE("conv dbias, summed", db.data(), db_sum.data(), db.size(), tol::kGradCheck);

  // Deterministic: a second backward pass is bit-identical.
  std::vector<double> din2(in.size()), dw2(w.size()), db2(b.size());
  cpu::conv3x3_backward(din2.data(), dw2.data(), db2.data(), dout.data(), in.data(), w.data(), N,
                        Cin, Cout, H, W);
  OCTA_CHECK_CLOSE("conv din, rerun", din2.data(), din.data(), din.size(), tol::kExact);
  OCTA_CHECK_CLOSE("conv dweight, rerun", dw2.data(), dw.data(), dw.size(), tol::kExact);
}

TEST_CASE("conv3x3: sizes are validated", "[cpu][ops]") {
  std::vector<float> v(64);
  CHECK_THROWS_AS(cpu::conv3x3_forward(v.data(), v.data(), v.data(), v.data(), 0, 1, 1, 2, 2),
                  octa::Error);
  CHECK_THROWS_WITH(cpu::conv3x3_forward(v.data(), v.data(), v.data(), v.data(), 1, 1, 1, -2, 2),
                    Catch::Contains("H = -2"));
  CHECK_THROWS_AS(cpu::conv3x3_backward(v.data(), v.data(), v.data(), v.data(), v.data(), v.data(),
                                        1, 0, 1, 2, 2),
                  octa::Error);
}

// =============================================================================================
// BatchNorm2d
// =============================================================================================

TEST_CASE("batchnorm: training-mode gradients match finite differences", "[cpu][ops][gradcheck]") {
  struct Case {
    int N, C, HW;
  };
  const Case cases[] = {{3, 2, 5}, {2, 3, 4}, {4, 1, 1}, {1, 2, 9}};
  std::uint64_t seed = 300;
  for (const Case& c : cases) {
    CAPTURE(c.N, c.C, c.HW);
    const std::size_t n = sz(c.N) * sz(c.C) * sz(c.HW);
    auto in = random_vector(n, ++seed), gamma = random_vector(sz(c.C), ++seed, 0.5, 1.5),
         beta = random_vector(sz(c.C), ++seed);
    std::vector<double> out(n), mean(sz(c.C)), invstd(sz(c.C));
    const ProjectedLoss L(n, ++seed);
    const auto forward = [&] {
      // Fresh running statistics each call: they do not affect the output, but the loss must be a
      // pure function of the inputs.
      std::vector<double> rm(sz(c.C), 0.0), rv(sz(c.C), 1.0);
      cpu::batchnorm_forward_train(out.data(), mean.data(), invstd.data(), rm.data(), rv.data(),
                                   in.data(), gamma.data(), beta.data(), c.N, c.C, c.HW, 1e-5, 0.1);
    };
    const auto loss = [&] {
      forward();
      return L(out.data());
    };
    forward();
    auto din = nan_vector(n), dgamma = nan_vector(sz(c.C)), dbeta = nan_vector(sz(c.C));
    cpu::batchnorm_backward(din.data(), dgamma.data(), dbeta.data(), L.dout(), in.data(),
                            mean.data(), invstd.data(), gamma.data(), c.N, c.C, c.HW);
    OCTA_CHECK_GRADCHECK(
        gradcheck(loss, in.data(), din.data(), all_indices(n), kStep, tol::kGradCheck, "bn din"),
        0.0);
    OCTA_CHECK_GRADCHECK(gradcheck(loss, gamma.data(), dgamma.data(), all_indices(gamma.size()),
                                   kStep, tol::kGradCheck, "bn dgamma"),
                         0.0);
    OCTA_CHECK_GRADCHECK(gradcheck(loss, beta.data(), dbeta.data(), all_indices(beta.size()), kStep,
                                   tol::kGradCheck, "bn dbeta"),
                         0.0);
  }
}

TEST_CASE("batchnorm: train vs eval on a hand-computed input", "[cpu][ops]") {
  // N = 2, C = 1, HW = 2: values 1, 2 (image 0) and 3, 6 (image 1). Batch mean 3, biased variance
  // (4 + 1 + 0 + 9) / 4 = 3.5, unbiased 14 / 3.
  const std::vector<double> in{1.0, 2.0, 3.0, 6.0}, gamma{2.0}, beta{0.5};
  const double eps = 1e-5;
  std::vector<double> out(4), mean(1), invstd(1), rm{0.0}, rv{1.0};
  cpu::batchnorm_forward_train(out.data(), mean.data(), invstd.data(), rm.data(), rv.data(),
                               in.data(), gamma.data(), beta.data(), 2, 1, 2, eps, 0.1);
  const double inv = 1.0 / std::sqrt(3.5 + eps);
  const std::vector<double> want_train{(1.0 - 3.0) * inv * 2.0 + 0.5, (2.0 - 3.0) * inv * 2.0 + 0.5,
                                       (3.0 - 3.0) * inv * 2.0 + 0.5,
                                       (6.0 - 3.0) * inv * 2.0 + 0.5};
  OCTA_CHECK_CLOSE("bn train out", out.data(), want_train.data(), 4, tol::kGradCheck);
  CHECK(mean[0] == 3.0);
  OCTA_CHECK_CLOSE("bn save_invstd", invstd.data(), &inv, 1, tol::kGradCheck);
  // Running statistics after one step: 0.9 * init + 0.1 * batch, with the unbiased variance.
  const double want_rm = 0.1 * 3.0, want_rv = 0.9 * 1.0 + 0.1 * (14.0 / 3.0);
  OCTA_CHECK_CLOSE("bn running_mean", rm.data(), &want_rm, 1, tol::kGradCheck);
  OCTA_CHECK_CLOSE("bn running_var", rv.data(), &want_rv, 1, tol::kGradCheck);

  // Eval normalises with the running statistics, not the batch's.
  std::vector<double> eval(4);
  cpu::batchnorm_forward_eval(eval.data(), in.data(), gamma.data(), beta.data(), rm.data(),
                              rv.data(), 2, 1, 2, eps);
  const double inv_run = 1.0 / std::sqrt(want_rv + eps);
  std::vector<double> want_eval(4);
  for (std::size_t i = 0; i < 4; ++i) want_eval[i] = (in[i] - want_rm) * inv_run * 2.0 + 0.5;
  OCTA_CHECK_CLOSE("bn eval out", eval.data(), want_eval.data(), 4, tol::kGradCheck);
  CHECK(std::abs(eval[0] - out[0]) > 0.1);  // the two modes really differ here

  // A second step moves the running estimates again: 0.9 * previous + 0.1 * batch.
  cpu::batchnorm_forward_train(out.data(), mean.data(), invstd.data(), rm.data(), rv.data(),
                               in.data(), gamma.data(), beta.data(), 2, 1, 2, eps, 0.1);
  const double want_rm2 = 0.9 * want_rm + 0.1 * 3.0, want_rv2 = 0.9 * want_rv + 0.1 * (14.0 / 3.0);
  OCTA_CHECK_CLOSE("bn running_mean, step 2", rm.data(), &want_rm2, 1, tol::kGradCheck);
  OCTA_CHECK_CLOSE("bn running_var, step 2", rv.data(), &want_rv2, 1, tol::kGradCheck);

  // One value per channel has no unbiased variance: refused, as PyTorch does.
  std::vector<double> one{1.0}, o(1), m(1), s(1), r0{0.0}, r1{1.0};
  CHECK_THROWS_AS(
      cpu::batchnorm_forward_train(o.data(), m.data(), s.data(), r0.data(), r1.data(), one.data(),
                                   gamma.data(), beta.data(), 1, 1, 1, eps, 0.1),
      octa::Error);
}

// =============================================================================================
// ReLU
// =============================================================================================

TEST_CASE("relu: gradient matches finite differences", "[cpu][ops][gradcheck]") {
  const std::size_t n = 500;
  auto in = random_vector(n, 400);  // |x| >= 1e-3: no point within h of the kink
  std::vector<double> out(n);
  const ProjectedLoss L(n, 401);
  const auto loss = [&] {
    cpu::relu_forward(out.data(), in.data(), n);
    return L(out.data());
  };
  loss();
  auto din = nan_vector(n);
  cpu::relu_backward(din.data(), L.dout(), out.data(), n);
  OCTA_CHECK_GRADCHECK(
      gradcheck(loss, in.data(), din.data(), all_indices(n), kStep, tol::kGradCheck, "relu din"),
      0.0);
}

TEST_CASE("relu: values, zero gradient at exactly 0, in place, NaN propagates", "[cpu][ops]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> x{-2.0, 0.0, 3.0, -0.5, nan};
  std::vector<double> out(x.size());
  cpu::relu_forward(out.data(), x.data(), x.size());
  CHECK(out[0] == 0.0);
  CHECK(out[1] == 0.0);
  CHECK(out[2] == 3.0);
  CHECK(out[3] == 0.0);
  CHECK(std::isnan(out[4]));
  std::vector<double> g{1.0, 1.0, 1.0, 1.0, 1.0};
  cpu::relu_backward(g.data(), g.data(), out.data(), 4);  // in place
  CHECK(g[0] == 0.0);
  CHECK(g[1] == 0.0);  // at exactly 0, no gradient flows (PyTorch's rule)
  CHECK(g[2] == 1.0);
  CHECK(g[3] == 0.0);
  cpu::relu_forward(x.data(), x.data(), 4);  // in place
  CHECK(x[0] == 0.0);
  CHECK(x[2] == 3.0);
}

// =============================================================================================
// Max-pool 2x2
// =============================================================================================

namespace {
// Each 2x2 window holds base + {0, 0.3, 0.6, 0.9} in a random order: distinct maxima, separated by
// far more than the finite-difference step, so no point straddles a switch.
std::vector<double> separated_pool_input(int N, int C, int H, int W, std::uint64_t seed) {
  std::vector<double> v(sz(N) * sz(C) * sz(H) * sz(W));
  octa::PhiloxStream s(seed, 1);
  for (int pl = 0; pl < N * C; ++pl)
    for (int oy = 0; oy < H / 2; ++oy)
      for (int ox = 0; ox < W / 2; ++ox) {
        double offs[4] = {0.0, 0.3, 0.6, 0.9};
        for (int k = 3; k > 0; --k) {
          std::swap(offs[k], offs[s.next_below(static_cast<std::uint32_t>(k + 1))]);
        }
        const double base = -1.0 + 2.0 * static_cast<double>(s.next_uniform01());
        for (int k = 0; k < 4; ++k) {
          const std::size_t y = sz(2 * oy + k / 2), x = sz(2 * ox + k % 2);
          v[(sz(pl) * sz(H) + y) * sz(W) + x] = base + offs[k];
        }
      }
  return v;
}
}  // namespace

TEST_CASE("maxpool2x2: gradient matches finite differences", "[cpu][ops][gradcheck]") {
  struct Case {
    int N, C, H, W;
  };
  const Case cases[] = {{2, 3, 4, 6}, {1, 1, 2, 2}, {3, 2, 6, 4}};
  std::uint64_t seed = 500;
  for (const Case& c : cases) {
    CAPTURE(c.N, c.C, c.H, c.W);
    const std::size_t n_in = sz(c.N) * sz(c.C) * sz(c.H) * sz(c.W), n_out = n_in / 4;
    auto in = separated_pool_input(c.N, c.C, c.H, c.W, ++seed);
    std::vector<double> out(n_out);
    const ProjectedLoss L(n_out, ++seed);
    const auto loss = [&] {
      cpu::maxpool2x2_forward(out.data(), in.data(), c.N, c.C, c.H, c.W);
      return L(out.data());
    };
    loss();
    for (std::size_t o = 0; o < n_out; ++o) CHECK(std::isfinite(out[o]));
    auto din = nan_vector(n_in);
    cpu::maxpool2x2_backward(din.data(), L.dout(), in.data(), c.N, c.C, c.H, c.W);
    OCTA_CHECK_GRADCHECK(gradcheck(loss, in.data(), din.data(), all_indices(n_in), kStep,
                                   tol::kGradCheck, "maxpool din"),
                         0.0);
  }
}

TEST_CASE("maxpool2x2: ties send the gradient to the first maximum in scan order", "[cpu][ops]") {
  // One 2x6 plane, three windows: all equal; a tie between top-right and bottom-left; a tie
  // between the two bottom values.
  const std::vector<double> in{5.0, 5.0, 1.0, 3.0, 1.0, 2.0,  //
                               5.0, 5.0, 3.0, 2.0, 3.0, 3.0};
  std::vector<double> out(3);
  cpu::maxpool2x2_forward(out.data(), in.data(), 1, 1, 2, 6);
  const std::vector<double> want_out{5.0, 3.0, 3.0};
  OCTA_CHECK_CLOSE("maxpool ties out", out.data(), want_out.data(), 3, tol::kExact);
  const std::vector<double> dout{10.0, 20.0, 30.0};
  auto din = nan_vector(in.size());
  cpu::maxpool2x2_backward(din.data(), dout.data(), in.data(), 1, 1, 2, 6);
  const std::vector<double> want_din{10.0, 0.0, 0.0, 20.0, 0.0,  0.0,  //
                                     0.0,  0.0, 0.0, 0.0,  30.0, 0.0};
  OCTA_CHECK_CLOSE("maxpool ties din", din.data(), want_din.data(), din.size(), tol::kExact);

  std::vector<double> v(12);
  CHECK_THROWS_WITH(cpu::maxpool2x2_forward(v.data(), v.data(), 1, 1, 3, 4),
                    Catch::Contains("even"));
  CHECK_THROWS_AS(cpu::maxpool2x2_backward(v.data(), v.data(), v.data(), 1, 1, 2, 3), octa::Error);
}

// =============================================================================================
// Global average pool
// =============================================================================================

TEST_CASE("global_avgpool: forward is the mean, gradient matches finite differences",
          "[cpu][ops][gradcheck]") {
  const int N = 2, C = 3, HW = 7;
  const std::size_t n_in = sz(N) * sz(C) * sz(HW), n_out = sz(N) * sz(C);
  auto in = random_vector(n_in, 600);
  std::vector<double> out(n_out), want(n_out, 0.0);
  cpu::global_avgpool_forward(out.data(), in.data(), N, C, HW);
  for (std::size_t pl = 0; pl < n_out; ++pl) {
    for (int p = 0; p < HW; ++p) want[pl] += in[pl * sz(HW) + sz(p)] / HW;
  }
  OCTA_CHECK_CLOSE("gap out", out.data(), want.data(), n_out, tol::kGradCheck);

  const ProjectedLoss L(n_out, 601);
  const auto loss = [&] {
    cpu::global_avgpool_forward(out.data(), in.data(), N, C, HW);
    return L(out.data());
  };
  auto din = nan_vector(n_in);
  cpu::global_avgpool_backward(din.data(), L.dout(), N, C, HW);
  OCTA_CHECK_GRADCHECK(
      gradcheck(loss, in.data(), din.data(), all_indices(n_in), kStep, tol::kGradCheck, "gap din"),
      0.0);
}

// =============================================================================================
// Linear
// =============================================================================================

TEST_CASE("linear: forward matches plain loops, gradients match finite differences",
          "[cpu][ops][gradcheck]") {
  struct Case {
    int N, In, Out;
  };
  const Case cases[] = {{3, 5, 4}, {1, 7, 1}, {4, 2, 6}};
  std::uint64_t seed = 700;
  for (const Case& c : cases) {
    CAPTURE(c.N, c.In, c.Out);
    const std::size_t n_in = sz(c.N) * sz(c.In), n_out = sz(c.N) * sz(c.Out);
    auto in = random_vector(n_in, ++seed), w = random_vector(sz(c.Out) * sz(c.In), ++seed),
         b = random_vector(sz(c.Out), ++seed);
    std::vector<double> out(n_out), want(n_out);
    cpu::linear_forward(out.data(), in.data(), w.data(), b.data(), c.N, c.In, c.Out);
    for (int n = 0; n < c.N; ++n)
      for (int o = 0; o < c.Out; ++o) {
        double acc = b[sz(o)];
        for (int i = 0; i < c.In; ++i)
          acc += in[sz(n) * sz(c.In) + sz(i)] * w[sz(o) * sz(c.In) + sz(i)];
        want[sz(n) * sz(c.Out) + sz(o)] = acc;
      }
    OCTA_CHECK_CLOSE("linear out", out.data(), want.data(), n_out, tol::kGradCheck);

    const ProjectedLoss L(n_out, ++seed);
    const auto loss = [&] {
      cpu::linear_forward(out.data(), in.data(), w.data(), b.data(), c.N, c.In, c.Out);
      return L(out.data());
    };
    auto din = nan_vector(n_in), dw = nan_vector(w.size()), db = nan_vector(b.size());
    cpu::linear_backward(din.data(), dw.data(), db.data(), L.dout(), in.data(), w.data(), c.N, c.In,
                         c.Out);
    OCTA_CHECK_GRADCHECK(gradcheck(loss, in.data(), din.data(), all_indices(n_in), kStep,
                                   tol::kGradCheck, "linear din"),
                         0.0);
    OCTA_CHECK_GRADCHECK(gradcheck(loss, w.data(), dw.data(), all_indices(w.size()), kStep,
                                   tol::kGradCheck, "linear dweight"),
                         0.0);
    OCTA_CHECK_GRADCHECK(gradcheck(loss, b.data(), db.data(), all_indices(b.size()), kStep,
                                   tol::kGradCheck, "linear dbias"),
                         0.0);
    auto dw2 = nan_vector(w.size()), db2 = nan_vector(b.size());
    cpu::linear_backward<double>(nullptr, dw2.data(), db2.data(), L.dout(), in.data(), w.data(),
                                 c.N, c.In, c.Out);
    OCTA_CHECK_CLOSE("linear dweight, null din", dw2.data(), dw.data(), dw.size(), tol::kExact);
    OCTA_CHECK_CLOSE("linear dbias, null din", db2.data(), db.data(), db.size(), tol::kExact);
  }
}

// =============================================================================================
// Dropout
// =============================================================================================

TEST_CASE("dropout: backward with a fixed mask matches finite differences",
          "[cpu][ops][gradcheck]") {
  const std::size_t n = 1000;
  const float p = 0.3f;
  auto in = random_vector(n, 800);
  std::vector<double> out(n);
  std::vector<std::uint8_t> mask(n);
  const ProjectedLoss L(n, 801);
  const auto loss = [&] {  // same seed and stream: the same mask on every call
    cpu::dropout_forward(out.data(), mask.data(), in.data(), n, p, 42, 7);
    return L(out.data());
  };
  loss();
  auto din = nan_vector(n);
  cpu::dropout_backward(din.data(), L.dout(), mask.data(), n, p);
  OCTA_CHECK_GRADCHECK(
      gradcheck(loss, in.data(), din.data(), all_indices(n), kStep, tol::kGradCheck, "dropout din"),
      0.0);
}

TEST_CASE("dropout: Philox mask, keep rate, scaling, reproducibility", "[cpu][ops]") {
  const std::size_t n = 100000;
  const auto in = random_vector(n, 900);
  std::vector<double> out(n);
  std::vector<std::uint8_t> mask(n);
  cpu::dropout_forward(out.data(), mask.data(), in.data(), n, 0.5f, 1234, 5);

  std::size_t kept = 0, mismatched_words = 0;
  for (std::size_t i = 0; i < n; ++i) {
    REQUIRE((mask[i] == 0 || mask[i] == 1));
    // The contract the GPU kernel shares: kept iff uniform01(philox_word(seed, stream, i)) >= p.
    const bool keep = octa::uniform01(octa::philox_word(1234, 5, i)) >= 0.5f;
    if (keep != (mask[i] == 1)) ++mismatched_words;
    if (mask[i] == 1) {
      ++kept;
      if (out[i] != 2.0 * in[i]) FAIL_CHECK("kept value not doubled at " << i);
    } else if (out[i] != 0.0) {
      FAIL_CHECK("dropped value not zero at " << i);
    }
  }
  CHECK(mismatched_words == 0);
  // Binomial(100000, 0.5): standard deviation 158; 6 sigma is 949.
  CAPTURE(kept);
  CHECK(kept > 50000 - 950);
  CHECK(kept < 50000 + 950);

  std::vector<double> out2(n);
  std::vector<std::uint8_t> same(n), other(n);
  cpu::dropout_forward(out2.data(), same.data(), in.data(), n, 0.5f, 1234, 5);
  CHECK(same == mask);
  CHECK(out2 == out);
  cpu::dropout_forward(out2.data(), other.data(), in.data(), n, 0.5f, 1234, 6);
  std::size_t differ = 0;
  for (std::size_t i = 0; i < n; ++i) differ += other[i] != mask[i] ? 1 : 0;
  CHECK(differ > n / 4);  // independent masks differ in about half the places

  cpu::dropout_forward(out2.data(), other.data(), in.data(), n, 0.0f, 1234, 5);
  CHECK(out2 == in);  // p = 0 keeps everything, unscaled
  for (const std::uint8_t m : other) REQUIRE(m == 1);

  // The boundary: a draw exactly equal to p is kept (>=, not >).
  const float p17 = octa::uniform01(octa::philox_word(1234, 5, 17));
  std::vector<double> small(32);
  std::vector<std::uint8_t> small_mask(32);
  cpu::dropout_forward(small.data(), small_mask.data(), in.data(), 32, p17, 1234, 5);
  CHECK(small_mask[17] == 1);

  // Backward: zero where dropped, scaled by 1/(1-p) where kept.
  std::vector<double> g(n, 1.0), dg(n);
  cpu::dropout_backward(dg.data(), g.data(), mask.data(), n, 0.5f);
  for (std::size_t i = 0; i < n; ++i) REQUIRE(dg[i] == (mask[i] ? 2.0 : 0.0));

  CHECK_THROWS_AS(cpu::dropout_forward(out2.data(), other.data(), in.data(), n, 1.0f, 1, 1),
                  octa::Error);
  CHECK_THROWS_AS(cpu::dropout_forward(out2.data(), other.data(), in.data(), n, -0.1f, 1, 1),
                  octa::Error);
  CHECK_THROWS_AS(cpu::dropout_backward(dg.data(), g.data(), mask.data(), n, 1.5f), octa::Error);
}

// =============================================================================================
// BCE with logits
// =============================================================================================

TEST_CASE("bce_with_logits: gradient matches finite differences", "[cpu][ops][gradcheck]") {
  const int N = 9;
  auto z = random_vector(sz(N), 1000, -4.0, 4.0);
  const std::vector<double> y{0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.3, 0.0, 1.0};
  for (const double pw : {1.0, 2.5}) {
    CAPTURE(pw);
    const auto loss = [&] {
      return cpu::bce_with_logits<double>(nullptr, z.data(), y.data(), N, pw);
    };
    auto dz = nan_vector(sz(N));
    const double with_grad = cpu::bce_with_logits(dz.data(), z.data(), y.data(), N, pw);
    CHECK(with_grad == loss());
    OCTA_CHECK_GRADCHECK(
        gradcheck(loss, z.data(), dz.data(), all_indices(sz(N)), kStep, tol::kGradCheck, "bce dz"),
        0.0);
  }
}

TEST_CASE("bce_with_logits: extreme logits are finite and exact", "[cpu][ops]") {
  struct Case {
    double z, y, loss, grad;
  };
  const double e100 = std::exp(-100.0);  // log1p(exp(-100)) and sigmoid(-100), to double precision
  const Case cases[] = {
      {100.0, 0.0, 100.0, 1.0},  {-100.0, 1.0, 100.0, -1.0}, {100.0, 1.0, e100, -e100},
      {-100.0, 0.0, e100, e100}, {1000.0, 0.0, 1000.0, 1.0}, {-1000.0, 1.0, 1000.0, -1.0},
      {1000.0, 1.0, 0.0, -0.0},  {-1000.0, 0.0, 0.0, 0.0},
  };
  CHECK(e100 > 3.72e-44);
  CHECK(e100 < 3.721e-44);
  std::vector<double> zs, ys, losses, grads;
  for (const Case& c : cases) {
    CAPTURE(c.z, c.y);
    double g = 0.0;
    const double l = cpu::bce_with_logits(&g, &c.z, &c.y, 1, 1.0);
    CHECK(std::isfinite(l));
    CHECK(std::isfinite(g));
    OCTA_CHECK_CLOSE("bce loss", &l, &c.loss, 1, tol::kExact);
    OCTA_CHECK_CLOSE("bce grad", &g, &c.grad, 1, tol::kExact);

    // float: the loss still comes back in double; the gradient is finite with the right sign.
    const float zf = static_cast<float>(c.z), yf = static_cast<float>(c.y);
    float gf = 0.0f;
    const double lf = cpu::bce_with_logits(&gf, &zf, &yf, 1, 1.0f);
    CHECK(std::isfinite(lf));
    CHECK(std::isfinite(gf));
    OCTA_CHECK_CLOSE("bce loss, float", &lf, &c.loss, 1, tol::kFloatVsDouble);
    OCTA_CHECK_CLOSE("bce grad, float", &gf, &c.grad, 1, tol::kFloatVsDouble);
    zs.push_back(c.z);
    ys.push_back(c.y);
    losses.push_back(c.loss);
    grads.push_back(c.grad / 8.0);
  }
  // All eight in one batch: the mean loss, and per-element gradients divided by N.
  std::vector<double> g(8);
  const double l = cpu::bce_with_logits(g.data(), zs.data(), ys.data(), 8, 1.0);
  double want = 0.0;
  for (const double v : losses) want += v / 8.0;
  OCTA_CHECK_CLOSE("bce batch loss", &l, &want, 1, tol::kGradCheck);
  OCTA_CHECK_CLOSE("bce batch grad", g.data(), grads.data(), 8, tol::kGradCheck);
}

TEST_CASE("bce_with_logits: pos_weight by hand", "[cpu][ops]") {
  // z = (0.5, -1.2, 0.7), y = (1, 0, 0.3), pos_weight 2.5, written out from the definition
  // l = -[pw y log s(z) + (1 - y) log(1 - s(z))] and its derivative (pw y (s - 1) + (1 - y) s).
  const std::vector<double> z{0.5, -1.2, 0.7}, y{1.0, 0.0, 0.3};
  const double pw = 2.5;
  const auto s = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  double want_loss = 0.0;
  std::vector<double> want_grad(3);
  for (std::size_t i = 0; i < 3; ++i) {
    want_loss += -(pw * y[i] * std::log(s(z[i])) + (1.0 - y[i]) * std::log(1.0 - s(z[i]))) / 3.0;
    want_grad[i] = (pw * y[i] * (s(z[i]) - 1.0) + (1.0 - y[i]) * s(z[i])) / 3.0;
  }
  // The header's own form for the soft target, and the brief's gradient form, agree with them.
  const double L2 = 1.0 + (pw - 1.0) * y[2];
  const double header_l2 = (1.0 - y[2]) * z[2] + L2 * (std::log1p(std::exp(-z[2])) + 0.0);
  const double brief_g2 = ((1.0 - y[2]) + L2 * (s(z[2]) - 1.0)) / 3.0;
  const double def_l2 = -(pw * y[2] * std::log(s(z[2])) + (1.0 - y[2]) * std::log(1.0 - s(z[2])));
  OCTA_CHECK_CLOSE("bce header form", &header_l2, &def_l2, 1, tol::kGradCheck);
  OCTA_CHECK_CLOSE("bce brief gradient form", &brief_g2, &want_grad[2], 1, tol::kGradCheck);

  std::vector<double> g(3);
  const double l = cpu::bce_with_logits(g.data(), z.data(), y.data(), 3, pw);
  OCTA_CHECK_CLOSE("bce pos_weight loss", &l, &want_loss, 1, tol::kGradCheck);
  OCTA_CHECK_CLOSE("bce pos_weight grad", g.data(), want_grad.data(), 3, tol::kGradCheck);

  // pos_weight scales the positive term only: for y = 1 the loss is exactly pw times larger.
  const double one = 1.0, zero = 0.0;
  const double l1 = cpu::bce_with_logits<double>(nullptr, &z[0], &one, 1, 1.0);
  const double l25 = cpu::bce_with_logits<double>(nullptr, &z[0], &one, 1, 2.5);
  const double want25 = 2.5 * l1;
  OCTA_CHECK_CLOSE("bce pos_weight scales positives", &l25, &want25, 1, tol::kGradCheck);
  const double n1 = cpu::bce_with_logits<double>(nullptr, &z[1], &zero, 1, 1.0);
  const double n25 = cpu::bce_with_logits<double>(nullptr, &z[1], &zero, 1, 2.5);
  CHECK(n1 == n25);  // negatives untouched
  CHECK_THROWS_AS(cpu::bce_with_logits<double>(nullptr, z.data(), y.data(), 0, 1.0), octa::Error);
}

// =============================================================================================
// float against double
// =============================================================================================

TEST_CASE("every operation in float matches double", "[cpu][ops]") {
  // Inputs are drawn in double and rounded to float, so both runs see identical values; weights
  // carry PyTorch's initial scale (uniform in +-1/sqrt(fan_in)), as in training.
  const auto F = [](const std::vector<double>& v) { return cast_vector<float>(v); };
  const auto fvd = tol::kFloatVsDouble;

  SECTION("conv3x3") {
    const int N = 2, Cin = 32, Cout = 8, H = 14, W = 14;
    const double bound = 1.0 / std::sqrt(Cin * 9.0);
    const auto in = round_to_float(random_vector(sz(N) * sz(Cin) * sz(H) * sz(W), 1100));
    const auto w = round_to_float(random_vector(sz(Cout) * sz(Cin) * 9, 1101, -bound, bound, 0.0));
    const auto b = round_to_float(random_vector(sz(Cout), 1102, -bound, bound, 0.0));
    const auto dout = round_to_float(random_vector(sz(N) * sz(Cout) * sz(H) * sz(W), 1103));
    std::vector<double> out(dout.size()), din(in.size()), dw(w.size()), db(b.size());
    std::vector<float> outf(dout.size()), dinf(in.size()), dwf(w.size()), dbf(b.size());
    cpu::conv3x3_forward(out.data(), in.data(), w.data(), b.data(), N, Cin, Cout, H, W);
    cpu::conv3x3_forward(outf.data(), F(in).data(), F(w).data(), F(b).data(), N, Cin, Cout, H, W);
    cpu::conv3x3_backward(din.data(), dw.data(), db.data(), dout.data(), in.data(), w.data(), N,
                          Cin, Cout, H, W);
    cpu::conv3x3_backward(dinf.data(), dwf.data(), dbf.data(), F(dout).data(), F(in).data(),
                          F(w).data(), N, Cin, Cout, H, W);
    OCTA_CHECK_CLOSE("conv out f32", outf.data(), out.data(), out.size(), fvd);
    OCTA_CHECK_CLOSE("conv din f32", dinf.data(), din.data(), din.size(), fvd);
    // dweight and dbias are sums over N*H*W = 392 products of unit-scale values.
    OCTA_CHECK_CLOSE("conv dweight f32", dwf.data(), dw.data(), dw.size(), fvd);
    OCTA_CHECK_CLOSE("conv dbias f32", dbf.data(), db.data(), db.size(), fvd);
  }

  SECTION("batchnorm") {
    const int N = 4, C = 3, HW = 49;
    const std::size_t n = sz(N) * sz(C) * sz(HW);
    const auto in = round_to_float(random_vector(n, 1200));
    const auto gamma = round_to_float(random_vector(sz(C), 1201, 0.5, 1.5));
    const auto beta = round_to_float(random_vector(sz(C), 1202));
    const auto dout = round_to_float(random_vector(n, 1203));
    std::vector<double> out(n), mean(sz(C)), invstd(sz(C)), rm(sz(C), 0.0), rv(sz(C), 1.0), ev(n),
        din(n), dg(sz(C)), dbt(sz(C));
    std::vector<float> outf(n), meanf(sz(C)), invstdf(sz(C)), rmf(sz(C), 0.0f), rvf(sz(C), 1.0f),
        evf(n), dinf(n), dgf(sz(C)), dbtf(sz(C));
    cpu::batchnorm_forward_train(out.data(), mean.data(), invstd.data(), rm.data(), rv.data(),
                                 in.data(), gamma.data(), beta.data(), N, C, HW, 1e-5, 0.1);
    cpu::batchnorm_forward_train(outf.data(), meanf.data(), invstdf.data(), rmf.data(), rvf.data(),
                                 F(in).data(), F(gamma).data(), F(beta).data(), N, C, HW, 1e-5f,
                                 0.1f);
    OCTA_CHECK_CLOSE("bn out f32", outf.data(), out.data(), n, fvd);
    OCTA_CHECK_CLOSE("bn mean f32", meanf.data(), mean.data(), sz(C), fvd);
    OCTA_CHECK_CLOSE("bn invstd f32", invstdf.data(), invstd.data(), sz(C), fvd);
    OCTA_CHECK_CLOSE("bn running_mean f32", rmf.data(), rm.data(), sz(C), fvd);
    OCTA_CHECK_CLOSE("bn running_var f32", rvf.data(), rv.data(), sz(C), fvd);
    cpu::batchnorm_forward_eval(ev.data(), in.data(), gamma.data(), beta.data(), rm.data(),
                                rv.data(), N, C, HW, 1e-5);
    cpu::batchnorm_forward_eval(evf.data(), F(in).data(), F(gamma).data(), F(beta).data(),
                                rmf.data(), rvf.data(), N, C, HW, 1e-5f);
    OCTA_CHECK_CLOSE("bn eval f32", evf.data(), ev.data(), n, fvd);
    cpu::batchnorm_backward(din.data(), dg.data(), dbt.data(), dout.data(), in.data(), mean.data(),
                            invstd.data(), gamma.data(), N, C, HW);
    cpu::batchnorm_backward(dinf.data(), dgf.data(), dbtf.data(), F(dout).data(), F(in).data(),
                            meanf.data(), invstdf.data(), F(gamma).data(), N, C, HW);
    OCTA_CHECK_CLOSE("bn din f32", dinf.data(), din.data(), n, fvd);
    OCTA_CHECK_CLOSE("bn dgamma f32", dgf.data(), dg.data(), sz(C), fvd);
    OCTA_CHECK_CLOSE("bn dbeta f32", dbtf.data(), dbt.data(), sz(C), fvd);
  }

  SECTION("relu, maxpool, global average pool") {
    const int N = 2, C = 3, H = 6, W = 4;
    const std::size_t n = sz(N) * sz(C) * sz(H) * sz(W);
    const auto in = round_to_float(random_vector(n, 1300));
    const auto dout = round_to_float(random_vector(n, 1301));
    std::vector<double> r(n), dr(n), mp(n / 4), dmp(n), gap(sz(N) * sz(C)), dgap(n);
    std::vector<float> rf(n), drf(n), mpf(n / 4), dmpf(n), gapf(sz(N) * sz(C)), dgapf(n);
    cpu::relu_forward(r.data(), in.data(), n);
    cpu::relu_forward(rf.data(), F(in).data(), n);
    cpu::relu_backward(dr.data(), dout.data(), r.data(), n);
    cpu::relu_backward(drf.data(), F(dout).data(), rf.data(), n);
    OCTA_CHECK_CLOSE("relu f32", rf.data(), r.data(), n, fvd);
    OCTA_CHECK_CLOSE("relu din f32", drf.data(), dr.data(), n, fvd);
    cpu::maxpool2x2_forward(mp.data(), in.data(), N, C, H, W);
    cpu::maxpool2x2_forward(mpf.data(), F(in).data(), N, C, H, W);
    cpu::maxpool2x2_backward(dmp.data(), dout.data(), in.data(), N, C, H, W);
    cpu::maxpool2x2_backward(dmpf.data(), F(dout).data(), F(in).data(), N, C, H, W);
    OCTA_CHECK_CLOSE("maxpool f32", mpf.data(), mp.data(), mp.size(), fvd);
    OCTA_CHECK_CLOSE("maxpool din f32", dmpf.data(), dmp.data(), n, fvd);
    cpu::global_avgpool_forward(gap.data(), in.data(), N, C, H * W);
    cpu::global_avgpool_forward(gapf.data(), F(in).data(), N, C, H * W);
    cpu::global_avgpool_backward(dgap.data(), gap.data(), N, C, H * W);
    cpu::global_avgpool_backward(dgapf.data(), gapf.data(), N, C, H * W);
    OCTA_CHECK_CLOSE("gap f32", gapf.data(), gap.data(), gap.size(), fvd);
    OCTA_CHECK_CLOSE("gap din f32", dgapf.data(), dgap.data(), n, fvd);
  }

  SECTION("linear (model A's fc1: 3136 inputs)") {
    const int N = 4, In = 3136, Out = 16;
    const double bound = 1.0 / std::sqrt(static_cast<double>(In));
    const auto in = round_to_float(random_vector(sz(N) * sz(In), 1400));
    const auto w = round_to_float(random_vector(sz(Out) * sz(In), 1401, -bound, bound, 0.0));
    const auto b = round_to_float(random_vector(sz(Out), 1402, -bound, bound, 0.0));
    const auto dout = round_to_float(random_vector(sz(N) * sz(Out), 1403));
    std::vector<double> out(dout.size()), din(in.size()), dw(w.size()), db(b.size());
    std::vector<float> outf(dout.size()), dinf(in.size()), dwf(w.size()), dbf(b.size());
    cpu::linear_forward(out.data(), in.data(), w.data(), b.data(), N, In, Out);
    cpu::linear_forward(outf.data(), F(in).data(), F(w).data(), F(b).data(), N, In, Out);
    cpu::linear_backward(din.data(), dw.data(), db.data(), dout.data(), in.data(), w.data(), N, In,
                         Out);
    cpu::linear_backward(dinf.data(), dwf.data(), dbf.data(), F(dout).data(), F(in).data(),
                         F(w).data(), N, In, Out);
    OCTA_CHECK_CLOSE("linear out f32", outf.data(), out.data(), out.size(), fvd);
    OCTA_CHECK_CLOSE("linear din f32", dinf.data(), din.data(), din.size(), fvd);
    OCTA_CHECK_CLOSE("linear dweight f32", dwf.data(), dw.data(), dw.size(), fvd);
    OCTA_CHECK_CLOSE("linear dbias f32", dbf.data(), db.data(), db.size(), fvd);
  }

  SECTION("dropout and BCE") {
    const std::size_t n = 4096;
    const auto in = round_to_float(random_vector(n, 1500));
    std::vector<double> out(n), din(n);
    std::vector<float> outf(n), dinf(n);
    std::vector<std::uint8_t> mask(n), maskf(n);
    cpu::dropout_forward(out.data(), mask.data(), in.data(), n, 0.3f, 77, 3);
    cpu::dropout_forward(outf.data(), maskf.data(), F(in).data(), n, 0.3f, 77, 3);
    CHECK(mask == maskf);  // the mask does not depend on T
    OCTA_CHECK_CLOSE("dropout f32", outf.data(), out.data(), n, fvd);
    cpu::dropout_backward(din.data(), in.data(), mask.data(), n, 0.3f);
    cpu::dropout_backward(dinf.data(), F(in).data(), maskf.data(), n, 0.3f);
    OCTA_CHECK_CLOSE("dropout din f32", dinf.data(), din.data(), n, fvd);

    const int N = 1000;
    const auto z = round_to_float(random_vector(sz(N), 1501, -8.0, 8.0));
    std::vector<double> y(sz(N));
    for (int i = 0; i < N; ++i) y[sz(i)] = i % 10 == 8 ? 1.0 : 0.0;
    for (const double pw : {1.0, 2.5}) {
      std::vector<double> dz(sz(N));
      std::vector<float> dzf(sz(N));
      const double l = cpu::bce_with_logits(dz.data(), z.data(), y.data(), N, pw);
      const double lf =
          cpu::bce_with_logits(dzf.data(), F(z).data(), F(y).data(), N, static_cast<float>(pw));
      OCTA_CHECK_CLOSE("bce loss f32", &lf, &l, 1, fvd);
      OCTA_CHECK_CLOSE("bce dz f32", dzf.data(), dz.data(), sz(N), fvd);
    }
  }
}
