// engine/selfcheck/fused_bn_cases.cpp: the cases of the case table for model B's fused
// convolution + BatchNorm + ReLU + max-pool (kernels/batchnorm_fused.hpp), against the CPU
// reference's unfused chain (engine/cpu/ops.hpp):
//   - the training forward, on the CUDA cores and on the tensor cores: <prefix>_forward_bn_stats
//     then batchnorm_relu_maxpool_forward_train, against cpu::conv3x3_forward,
//     batchnorm_forward_train (two-pass variance), relu_forward and maxpool2x2_forward: the
//     convolution's output (and bit for bit the plain forward's), the pooled output, the saved and
//     running statistics, and the window codes the backward reads;
//   - the same at a large common offset (conv biases of +-1000: the mean 3000 standard deviations
//     from zero), where the reference's BatchNorm runs on the kernel's own convolution output so
//     that only the statistics are compared, and where a one-pass float variance is shown to fail;
//   - the training backward, batchnorm_relu_maxpool_backward, against cpu::maxpool2x2_backward,
//     relu_backward and batchnorm_backward; and conv1's, conv3x3_backward_filter_from_bn_maxpool
//     (BatchNorm's input gradient rebuilt in the filter gradient's staging), against the CPU and
//     bit for bit against the two passes it replaces;
//   - the eval form: batchnorm_fold_conv3x3 then <prefix>_relu_maxpool_forward over the folded
//     weights, against cpu::conv3x3_forward, batchnorm_forward_eval, relu_forward, maxpool;
//   - --sync-bn's merges (kernels/batchnorm_sync.hpp) on 1 to 3 simulated ranks of uneven shares,
//     the all-gathers' buffers filled in place as NCCL's would be: every rank's forward and
//     backward against the CPU reference's over the whole global batch, and the ranks' statistics
//     the same bits.
// Shapes: model B's two stages at batch 64, and small ones that leave partial tiles (the CUDA
// cores' 16x16 pixels and 16 channels, the tensor cores' 64 pixels straddling images and 32 or 64
// channels), several blocks per channel for the BatchNorm kernels, even H and W (the pool).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "engine/core/random_fill.hpp"
#include "engine/cpu/ops.hpp"
#include "engine/selfcheck/case_inputs.hpp"
#include "engine/selfcheck/conv_bodies.hpp"
#include "engine/selfcheck/kernel_cases.hpp"
#include "kernels/batchnorm_fused.hpp"
#include "kernels/batchnorm_sync.hpp"
#include "kernels/conv3x3.hpp"

namespace octa::selfcheck {

namespace {

using enum CaseSize;

constexpr float kBnEps = 1e-5f, kBnMomentum = 0.1f;

// BatchNorm's parameters and running statistics for C channels.
struct BnParams {
  std::vector<float> gamma, beta, running_mean, running_var;
  BnParams(int C, std::uint64_t seed)
      : gamma(random_vector<float>(count(C), seed, 0.5, 1.5)),
        beta(random_vector<float>(count(C), seed + 1, -0.5, 0.5)),
        running_mean(random_vector<float>(count(C), seed + 2, -0.2, 0.2)),
        running_var(random_vector<float>(count(C), seed + 3, 0.5, 1.5)) {}
};

// The CPU reference's unfused training forward from the convolution's output x (N, C, H, W).
struct TrainRef {
  std::vector<float> act, pooled, mean, invstd, running_mean, running_var;
};

TrainRef train_ref(const std::vector<float>& x, const BnParams& p, int N, int C, int H, int W) {
  const std::size_t n = count(N, C, H, W);
  TrainRef r{std::vector<float>(n),
             std::vector<float>(n / 4),
             std::vector<float>(count(C)),
             std::vector<float>(count(C)),
             p.running_mean,
             p.running_var};
  std::vector<float> bn(n);
  cpu::batchnorm_forward_train(bn.data(), r.mean.data(), r.invstd.data(), r.running_mean.data(),
                               r.running_var.data(), x.data(), p.gamma.data(), p.beta.data(), N, C,
                               H * W, kBnEps, kBnMomentum);
  cpu::relu_forward(r.act.data(), bn.data(), n);
  cpu::maxpool2x2_forward(r.pooled.data(), r.act.data(), N, C, H, W);
  return r;
}

// The flat index in (N, C, H, W) of element k (0..3, row-major) of window o of (N, C, H/2, W/2).
std::size_t window_element(std::size_t o, int k, int H, int W) {
  const std::size_t Wo = count(W / 2), HWo = count(H / 2) * Wo;
  const std::size_t plane = o / HWo, w = o % HWo;
  return plane * count(H, W) + (2 * (w / Wo) + count(k / 2)) * count(W) + 2 * (w % Wo) +
         count(k % 2);
}

// Window codes from a ReLU output, by the CPU reference's first-maximum rule (a later value wins
// only if strictly greater; a NaN, once the best, stays): the maximum's index where it is positive.
std::vector<std::uint8_t> window_codes(const std::vector<float>& act, int H, int W) {
  std::vector<std::uint8_t> codes(act.size() / 4);
  for (std::size_t o = 0; o < codes.size(); ++o) {
    int best = 0;
    for (int k = 1; k < 4; ++k) {
      const float v = act[window_element(o, k, H, W)], b = act[window_element(o, best, H, W)];
      if (!(v <= b) && b == b) best = k;
    }
    codes[o] = act[window_element(o, best, H, W)] > 0.0f ? static_cast<std::uint8_t>(best)
                                                         : gpu::kWindowNoGradient;
  }
  return codes;
}

// The training forward's window codes, checked against the CPU's ReLU output and pooled maxima:
// each code names a maximum of its window (its value within tolerance of the CPU's maximum: a
// near-tie may go either way), kWindowNoGradient only where the CPU's maximum is (about) zero, and
// a code below it exactly where the kernel's own pooled value is positive.
void check_window_codes(CaseRun& r, const std::vector<std::uint8_t>& codes,
                        const std::vector<float>& pooled, const TrainRef& ref, int H, int W) {
  std::vector<float> chosen(codes.size());
  bool consistent = true;
  for (std::size_t o = 0; o < codes.size(); ++o) {
    const int k = codes[o];
    consistent = consistent && k <= gpu::kWindowNoGradient &&
                 (k < gpu::kWindowNoGradient) == (pooled[o] > 0.0f);
    chosen[o] = k < gpu::kWindowNoGradient ? ref.act[window_element(o, k, H, W)] : 0.0f;
  }
  r.check("the CPU's ReLU output where the window codes point", chosen, ref.pooled, tol::kGpuVsCpu);
  r.require("window codes: a position exactly where the pooled value is positive", consistent);
}

// =============================================================================================
// Training forward: the convolution with statistics, then BatchNorm + ReLU + pool
// =============================================================================================

// Model B's stages (conv1, conv2) at batch 64, at 3 and 67 images; then partial tiles: H 10, W 10
// or 34 against the CUDA cores' 16x16 pixels, Cout 33, 3, 20, 72 against their 16 channels and the
// tensor cores' 32 or 64, 3 x 6 x 10 = 180 pixels against 64-pixel tiles straddling images; 7
// images of 28x28 (two blocks per channel in BatchNorm's kernels), 37 images of 6x10.
std::vector<ConvShape> fused_conv_shapes() {
  return {{64, 1, 32, 28, 28, kModel},
          {64, 32, 64, 14, 14, kModel},
          {3, 1, 32, 28, 28},
          {3, 32, 64, 14, 14},
          {67, 1, 32, 28, 28, kLarge},
          {67, 32, 64, 14, 14, kLarge},
          {2, 3, 5, 6, 10},
          {2, 9, 33, 6, 34},
          {3, 1, 3, 10, 36},
          {3, 8, 16, 10, 8},
          {3, 12, 20, 6, 10},
          {2, 40, 72, 4, 6},
          {7, 1, 8, 28, 28},
          {37, 12, 20, 6, 10}};
}

// The large-offset shapes: both stages' channels at 3 images, and partial tiles.
std::vector<ConvShape> offset_conv_shapes() {
  return {{3, 1, 32, 28, 28}, {3, 32, 64, 14, 14}, {2, 9, 33, 6, 34}, {3, 12, 20, 6, 10}};
}

constexpr float kOffset = 1000.0f;

KernelCase fused_forward_case(const ConvLaunchers& L, ConvImpl impl, const ConvShape& s,
                              bool offset) {
  const std::string stats_name = L.name("forward_bn_stats");
  KernelCase c = conv_case(stats_name, L.prefix, impl, ConvPass::kBatchNormTrain, "", s,
                           "cpu::conv3x3_forward, batchnorm_forward_train (two-pass), "
                           "relu_forward, maxpool2x2_forward");
  c.launcher = "gpu::" + stats_name + " + gpu::batchnorm_relu_maxpool_forward_train";
  if (offset) {
    c.name += " offset";
    c.shape += fmt::format(", conv biases +-{} (mean >> spread)", kOffset);
    c.reference =
        "cpu::batchnorm_forward_train (two-pass) on the kernel's own conv output, "
        "relu_forward, maxpool2x2_forward; a one-pass float variance must fail";
  }
  c.body = [L, s, offset](CaseRun& r) {
    const std::uint64_t seed =
        seed_of(std::string("fused bn forward ") + (offset ? "offset " : "") + s.tag());
    ConvInputs x = conv_inputs(s, seed);
    if (offset) {
      for (std::size_t co = 0; co < x.bias.size(); ++co) x.bias[co] += co % 2 ? -kOffset : kOffset;
    }
    const BnParams p(s.Cout, seed + 10);
    std::vector<float> conv(s.out_size());
    cpu::conv3x3_forward(conv.data(), x.in.data(), x.weight.data(), x.bias.data(), s.N, s.Cin,
                         s.Cout, s.H, s.W);

    const int tiles = L.bn_stats_tiles(s.N, s.H, s.W);
    const auto in = r.upload(x.in), weight = r.upload(x.weight), bias = r.upload(x.bias);
    const auto gamma = r.upload(p.gamma), beta = r.upload(p.beta);
    auto rm = r.upload(p.running_mean), rv = r.upload(p.running_var);
    auto out = r.alloc<float>(s.out_size()), plain = r.alloc<float>(s.out_size());
    auto stats = r.alloc<double>(3 * count(s.Cout) * count(tiles));
    auto pooled = r.alloc<float>(s.pooled_size());
    auto window = r.alloc<std::uint8_t>(s.pooled_size());
    auto mean = r.alloc<float>(count(s.Cout)), invstd = r.alloc<float>(count(s.Cout));
    r.launch([&] {
      L.forward_bn_stats(out.data(), stats.data(), in.data(), weight.data(), bias.data(), s.N,
                         s.Cin, s.Cout, s.H, s.W, r.stream());
      gpu::batchnorm_relu_maxpool_forward_train(pooled.data(), window.data(), mean.data(),
                                                invstd.data(), rm.data(), rv.data(), out.data(),
                                                stats.data(), tiles, gamma.data(), beta.data(), s.N,
                                                s.Cout, s.H, s.W, kBnEps, kBnMomentum, r.stream());
    });
    const std::vector<float> got_conv = r.download(out);
    r.check("conv_out", got_conv, conv, tol::kGpuVsCpu);
    L.forward(plain.data(), in.data(), weight.data(), bias.data(), s.N, s.Cin, s.Cout, s.H, s.W,
              gpu::Epilogue::kNone, r.stream());
    r.check("conv_out vs " + L.name("forward") + " bit for bit", got_conv, r.download(plain),
            tol::kExact);

    // At |mean| = 1000 the convolution's own float rounding (6e-5 per value, 2e-4 of the
    // spread) would swamp what is compared: there BatchNorm's reference runs on the kernel's
    // output, so that the statistics alone are tested.
    const TrainRef ref = train_ref(offset ? got_conv : conv, p, s.N, s.Cout, s.H, s.W);
    const std::vector<float> got_pooled = r.download(pooled);
    r.check("pooled", got_pooled, ref.pooled, tol::kGpuVsCpu);
    r.check("save_mean", r.download(mean), ref.mean, tol::kGpuVsCpu);
    const std::vector<float> got_invstd = r.download(invstd);
    r.check("save_invstd", got_invstd, ref.invstd, tol::kGpuVsCpu);
    r.check("running_mean", r.download(rm), ref.running_mean, tol::kGpuVsCpu);
    r.check("running_var", r.download(rv), ref.running_var, tol::kGpuVsCpu);
    check_window_codes(r, r.download(window), got_pooled, ref, s.H, s.W);

    if (offset) {
      // The case can fail: the textbook one-pass variance in float, E[x^2] - E[x]^2, misses the
      // tolerance on these inputs by orders of magnitude.
      const std::size_t hw = count(s.H, s.W);
      std::vector<float> naive(count(s.Cout));
      for (int co = 0; co < s.Cout; ++co) {
        float sum = 0.0f, sq = 0.0f;
        for (int n = 0; n < s.N; ++n) {
          const float* v = got_conv.data() + (count(n) * count(s.Cout) + count(co)) * hw;
          for (std::size_t i = 0; i < hw; ++i) {
            sum += v[i];
            sq += v[i] * v[i];
          }
        }
        const float m = static_cast<float>(count(s.N) * hw);
        const float var = sq / m - (sum / m) * (sum / m);
        naive[count(co)] = 1.0f / std::sqrt((var > 0.0f ? var : 0.0f) + kBnEps);
      }
      r.require(
          "a one-pass float variance fails this case (the comparison has teeth)",
          !compare("naive invstd", naive.data(), ref.invstd.data(), naive.size(), tol::kGpuVsCpu)
               .ok);
    }
  };
  return c;
}

// =============================================================================================
// Training backward
// =============================================================================================

struct BnPoolShape {
  int N, C, H, W;
  CaseSize size = kSmall;
  unsigned models = 0;
  std::size_t n() const { return count(N, C, H, W); }
  std::string tag() const { return fmt::format("N{} C{} {}x{}", N, C, H, W); }
  std::string str() const { return fmt::format("N={} C={} H={} W={}", N, C, H, W); }
};

// Model B's two stages at batch 64 and 67; small: fewer windows than a block's threads, seven
// 28x28 images (two blocks per channel), planes of more than a block's 1024 windows (one image per
// block: three per channel), a single window, bn2's 64 channels at 2 images.
std::vector<BnPoolShape> bn_pool_shapes() {
  return {{64, 32, 28, 28, kModel, kModelB},
          {64, 64, 14, 14, kModel, kModelB},
          {67, 32, 28, 28, kLarge},
          {67, 64, 14, 14, kLarge},
          {3, 5, 6, 10},
          {7, 3, 28, 28},
          {3, 2, 64, 66},
          {1, 2, 2, 2},
          {2, 64, 14, 14}};
}

KernelCase fused_backward_case(const BnPoolShape& s) {
  KernelCase c;
  c.name = "batchnorm_relu_maxpool_backward " + s.tag();
  c.group = "batchnorm";
  c.launcher = "gpu::batchnorm_relu_maxpool_backward (both kernels)";
  c.shape = s.str();
  c.reference =
      "cpu::maxpool2x2_backward, relu_backward, batchnorm_backward (the window codes "
      "and statistics of cpu::batchnorm_forward_train, relu_forward)";
  c.tolerance = tol::kGpuVsCpu;
  c.size = s.size;
  c.models = s.models;
  c.body = [s](CaseRun& r) {
    const std::uint64_t seed = seed_of("fused bn backward " + s.tag());
    const std::vector<float> x = random_vector<float>(s.n(), seed, -2.0, 3.0);
    const BnParams p(s.C, seed + 10);
    const TrainRef fwd = train_ref(x, p, s.N, s.C, s.H, s.W);
    const std::vector<std::uint8_t> codes = window_codes(fwd.act, s.H, s.W);
    const std::vector<float> dpool = random_vector<float>(s.n() / 4, seed + 5);
    std::vector<float> dy(s.n()), din(s.n()), dgamma(count(s.C)), dbeta(count(s.C));
    cpu::maxpool2x2_backward(dy.data(), dpool.data(), fwd.act.data(), s.N, s.C, s.H, s.W);
    cpu::relu_backward(dy.data(), dy.data(), fwd.act.data(), s.n());
    cpu::batchnorm_backward(din.data(), dgamma.data(), dbeta.data(), dy.data(), x.data(),
                            fwd.mean.data(), fwd.invstd.data(), p.gamma.data(), s.N, s.C,
                            s.H * s.W);

    const auto d_x = r.upload(x), d_dpool = r.upload(dpool), d_mean = r.upload(fwd.mean),
               d_invstd = r.upload(fwd.invstd), d_gamma = r.upload(p.gamma);
    const auto d_codes = r.upload(codes);
    auto ws = r.alloc<double>(gpu::batchnorm_relu_maxpool_backward_workspace(s.N, s.C, s.H, s.W));
    auto d_din = r.alloc<float>(s.n());
    auto d_dgamma = r.alloc<float>(count(s.C)), d_dbeta = r.alloc<float>(count(s.C));
    r.launch([&] {
      gpu::batchnorm_relu_maxpool_backward(d_din.data(), d_dgamma.data(), d_dbeta.data(),
                                           d_dpool.data(), d_codes.data(), d_x.data(),
                                           d_mean.data(), d_invstd.data(), d_gamma.data(), s.N, s.C,
                                           s.H, s.W, ws.data(), r.stream());
    });
    r.check("dconv", r.download(d_din), din, tol::kGpuVsCpu);
    r.check("dgamma", r.download(d_dgamma), dgamma, tol::kGpuVsCpu);
    r.check("dbeta", r.download(d_dbeta), dbeta, tol::kGpuVsCpu);
  };
  return c;
}

// =============================================================================================
// Model B's conv1 backward: BatchNorm's input gradient rebuilt in the filter gradient's staging
// =============================================================================================

// Model B's conv1 at batch 64, 3 and 67; small: partial 32-column chunks (W 10, 36), seven 28x28
// images (two BatchNorm blocks per channel), Cout 33 (a partial 32-channel tile) and Cin 9 (the
// kernel's Cin > 1 configuration).
std::vector<ConvShape> from_bn_shapes() {
  return {{64, 1, 32, 28, 28, kModel},
          {3, 1, 32, 28, 28},
          {67, 1, 32, 28, 28, kLarge},
          {2, 1, 5, 6, 10},
          {3, 1, 3, 10, 36},
          {7, 1, 8, 28, 28},
          {2, 9, 33, 6, 34}};
}

KernelCase from_bn_maxpool_case(const ConvLaunchers& L, const ConvShape& s) {
  KernelCase c = conv_case(
      "conv3x3_backward_filter_from_bn_maxpool", L.prefix, ConvImpl::kCudaCore,
      ConvPass::kFromBnMaxpool, "", s,
      "cpu::maxpool2x2_backward, relu_backward, batchnorm_backward, conv3x3_backward; and "
      "gpu::batchnorm_relu_maxpool_backward + " +
          L.name("backward_filter") + " bit for bit");
  c.body = [L, s](CaseRun& r) {
    const std::uint64_t seed = seed_of("fused bn backward filter " + s.tag());
    const ConvInputs x = conv_inputs(s, seed);
    const std::vector<float> y = random_vector<float>(s.out_size(), seed + 3, -2.0, 3.0);
    const BnParams p(s.Cout, seed + 10);
    const TrainRef fwd = train_ref(y, p, s.N, s.Cout, s.H, s.W);
    const std::vector<std::uint8_t> codes = window_codes(fwd.act, s.H, s.W);
    // The pool's gradient at the scale of a real one (see conv_bodies.hpp's filter gradient).
    const std::vector<float> dpool =
        random_vector<float>(s.pooled_size(), seed + 4, -1.0 / 64, 1.0 / 64);
    std::vector<float> dy(s.out_size()), dconv(s.out_size()), dgamma(count(s.Cout)),
        dbeta(count(s.Cout)), din(s.in_size()), dweight(s.weight_size()), dbias(count(s.Cout));
    cpu::maxpool2x2_backward(dy.data(), dpool.data(), fwd.act.data(), s.N, s.Cout, s.H, s.W);
    cpu::relu_backward(dy.data(), dy.data(), fwd.act.data(), dy.size());
    cpu::batchnorm_backward(dconv.data(), dgamma.data(), dbeta.data(), dy.data(), y.data(),
                            fwd.mean.data(), fwd.invstd.data(), p.gamma.data(), s.N, s.Cout,
                            s.H * s.W);
    cpu::conv3x3_backward(din.data(), dweight.data(), dbias.data(), dconv.data(), x.in.data(),
                          x.weight.data(), s.N, s.Cin, s.Cout, s.H, s.W);

    const auto in = r.upload(x.in), d_y = r.upload(y), d_dpool = r.upload(dpool),
               mean = r.upload(fwd.mean), invstd = r.upload(fwd.invstd), gamma = r.upload(p.gamma);
    const auto d_codes = r.upload(codes);
    auto bws =
        r.alloc<double>(gpu::batchnorm_relu_maxpool_backward_workspace(s.N, s.Cout, s.H, s.W));
    auto ws = r.alloc<float>(gpu::conv3x3_backward_filter_workspace(s.N, s.Cin, s.Cout, s.H, s.W));
    auto d_dconv = r.alloc<float>(s.out_size());
    auto d_dw = r.alloc<float>(s.weight_size()), d_db = r.alloc<float>(count(s.Cout));
    auto d_dg = r.alloc<float>(count(s.Cout)), d_dbt = r.alloc<float>(count(s.Cout));
    // The two passes it replaces.
    gpu::batchnorm_relu_maxpool_backward(
        d_dconv.data(), d_dg.data(), d_dbt.data(), d_dpool.data(), d_codes.data(), d_y.data(),
        mean.data(), invstd.data(), gamma.data(), s.N, s.Cout, s.H, s.W, bws.data(), r.stream());
    L.backward_filter(d_dw.data(), d_db.data(), d_dconv.data(), in.data(), s.N, s.Cin, s.Cout, s.H,
                      s.W, ws.data(), r.stream());
    const std::vector<float> two_dw = r.download(d_dw), two_db = r.download(d_db),
                             two_dg = r.download(d_dg), two_dbt = r.download(d_dbt);
    for (auto* a : {&d_dw, &d_db, &d_dg, &d_dbt}) a->poison();
    bws.poison();
    ws.poison();
    r.launch([&] {
      gpu::conv3x3_backward_filter_from_bn_maxpool(
          d_dw.data(), d_db.data(), d_dg.data(), d_dbt.data(), d_dpool.data(), d_codes.data(),
          d_y.data(), mean.data(), invstd.data(), gamma.data(), in.data(), s.N, s.Cin, s.Cout, s.H,
          s.W, bws.data(), ws.data(), r.stream());
    });
    const std::vector<float> got_dw = r.download(d_dw), got_db = r.download(d_db),
                             got_dg = r.download(d_dg), got_dbt = r.download(d_dbt);
    r.check("dweight", got_dw, dweight, tol::kGpuVsCpu);
    r.check("dbias", got_db, dbias, tol::kGpuVsCpu);
    r.check("dgamma", got_dg, dgamma, tol::kGpuVsCpu);
    r.check("dbeta", got_dbt, dbeta, tol::kGpuVsCpu);
    r.check("dweight vs the two passes", got_dw, two_dw, tol::kExact);
    r.check("dbias vs the two passes", got_db, two_db, tol::kExact);
    r.check("dgamma vs the two passes", got_dg, two_dg, tol::kExact);
    r.check("dbeta vs the two passes", got_dbt, two_dbt, tol::kExact);
  };
  return c;
}

// =============================================================================================
// Evaluation: BatchNorm folded into the convolution
// =============================================================================================

KernelCase folded_eval_case(const ConvLaunchers& L, ConvImpl impl, const ConvShape& s) {
  const std::string pool_name = L.name("relu_maxpool_forward");
  KernelCase c = conv_case("batchnorm_fold_conv3x3 + " + pool_name, L.prefix, impl,
                           ConvPass::kBatchNormEval, "", s,
                           "cpu::conv3x3_forward, batchnorm_forward_eval, relu_forward, "
                           "maxpool2x2_forward; the fold in double");
  c.launcher = "gpu::batchnorm_fold_conv3x3, then gpu::" + pool_name + " on the folded weights";
  c.body = [L, s](CaseRun& r) {
    const std::uint64_t seed = seed_of("fused bn eval " + s.tag());
    const ConvInputs x = conv_inputs(s, seed);
    const BnParams p(s.Cout, seed + 10);
    std::vector<float> conv(s.out_size()), bn(s.out_size()), act(s.out_size()),
        pooled(s.pooled_size());
    cpu::conv3x3_forward(conv.data(), x.in.data(), x.weight.data(), x.bias.data(), s.N, s.Cin,
                         s.Cout, s.H, s.W);
    cpu::batchnorm_forward_eval(bn.data(), conv.data(), p.gamma.data(), p.beta.data(),
                                p.running_mean.data(), p.running_var.data(), s.N, s.Cout, s.H * s.W,
                                kBnEps);
    cpu::relu_forward(act.data(), bn.data(), act.size());
    cpu::maxpool2x2_forward(pooled.data(), act.data(), s.N, s.Cout, s.H, s.W);
    // The fold's formula in double: w * s and (b - mean) * s + beta, s = gamma / sqrt(var + eps).
    std::vector<float> fw(s.weight_size()), fb(count(s.Cout));
    const std::size_t per = count(s.Cin, 9);
    for (std::size_t i = 0; i < fw.size(); ++i) {
      const std::size_t co = i / per;
      const double sc = static_cast<double>(p.gamma[co]) /
                        std::sqrt(static_cast<double>(p.running_var[co]) + kBnEps);
      fw[i] = static_cast<float>(static_cast<double>(x.weight[i]) * sc);
      if (i % per == 0) {
        fb[co] = static_cast<float>(
            (static_cast<double>(x.bias[co]) - static_cast<double>(p.running_mean[co])) * sc +
            static_cast<double>(p.beta[co]));
      }
    }

    const auto in = r.upload(x.in), weight = r.upload(x.weight), bias = r.upload(x.bias);
    const auto gamma = r.upload(p.gamma), beta = r.upload(p.beta), rm = r.upload(p.running_mean),
               rv = r.upload(p.running_var);
    auto d_fw = r.alloc<float>(s.weight_size()), d_fb = r.alloc<float>(count(s.Cout));
    auto d_act = r.alloc<float>(s.out_size()), d_pooled = r.alloc<float>(s.pooled_size());
    r.launch([&] {
      gpu::batchnorm_fold_conv3x3(d_fw.data(), d_fb.data(), weight.data(), bias.data(),
                                  gamma.data(), beta.data(), rm.data(), rv.data(), s.Cin, s.Cout,
                                  kBnEps, r.stream());
      L.relu_maxpool_forward(d_pooled.data(), d_act.data(), in.data(), d_fw.data(), d_fb.data(),
                             s.N, s.Cin, s.Cout, s.H, s.W, r.stream());
    });
    r.check("folded_weight", r.download(d_fw), fw, tol::kGpuVsCpu);
    r.check("folded_bias", r.download(d_fb), fb, tol::kGpuVsCpu);
    r.check("act", r.download(d_act), act, tol::kGpuVsCpu);
    r.check("pooled", r.download(d_pooled), pooled, tol::kGpuVsCpu);
  };
  return c;
}

// =============================================================================================
// --sync-bn: the ranks' statistics and backward sums merged in rank order
// =============================================================================================

// The ranks' shares of the global batch (uneven: as the last rank of a batch that does not
// divide), one stage's channels and size.
struct SyncShape {
  std::vector<int> shares;
  int Cin, Cout, H, W;
  int ranks() const { return static_cast<int>(shares.size()); }
  int total() const {
    int n = 0;
    for (const int v : shares) n += v;
    return n;
  }
  std::string tag() const {
    return fmt::format("ranks {} {}>{} {}x{}", fmt::join(shares, "+"), Cin, Cout, H, W);
  }
};

// One rank (it must equal the plain kernels' numbers), model B's two stages on 2 ranks of small
// shares, 3 uneven ranks with partial tiles and a channel count off the tiles' 16, two blocks per
// channel in BatchNorm's kernels (7 images of 28x28).
std::vector<SyncShape> sync_shapes() {
  return {{{3}, 1, 32, 28, 28},
          {{2, 1}, 1, 32, 28, 28},
          {{2, 2}, 32, 64, 14, 14},
          {{3, 2, 2}, 9, 33, 6, 34},
          {{7, 4}, 1, 8, 28, 28}};
}

KernelCase sync_bn_case(const ConvLaunchers& L, const SyncShape& s) {
  KernelCase c;
  c.name = "batchnorm_sync " + s.tag();
  c.group = "batchnorm";
  c.launcher = "gpu::batchnorm_sync_pack_stats, _unpack_stats, _pack_sums, _unpack_sums around " +
               L.name("forward_bn_stats") +
               ", gpu::batchnorm_relu_maxpool_forward_train, _backward_sums, _backward_data";
  c.shape = fmt::format("ranks of N = {}, Cin={} Cout={} H={} W={}", fmt::join(s.shares, ", "),
                        s.Cin, s.Cout, s.H, s.W);
  c.reference =
      "cpu::batchnorm_forward_train, relu_forward, maxpool2x2_forward, batchnorm_backward over "
      "the whole global batch (the kernels' own conv output), dy weighted by each share n_r / n";
  c.tolerance = tol::kGpuVsCpu;
  c.body = [L, s](CaseRun& r) {
    const std::uint64_t seed = seed_of("sync bn " + s.tag());
    const int R = s.ranks(), C = s.Cout;
    const std::size_t hw = count(s.H, s.W);
    const BnParams p(C, seed + 10);
    const ConvInputs model = conv_inputs({1, s.Cin, C, s.H, s.W}, seed);
    const auto weight = r.upload(model.weight), bias = r.upload(model.bias);
    const auto gamma = r.upload(p.gamma), beta = r.upload(p.beta);

    // Each rank's device state, as its CUDA engine holds it.
    struct Rank {
      ConvShape shape;
      DeviceArray<float> in, conv, pooled, mean, invstd, rm, rv, dpool, dconv, dgamma, dbeta;
      DeviceArray<std::uint8_t> window;
      DeviceArray<double> stats, ws;
      int tiles, blocks;
      float weight;
    };
    std::vector<Rank> ranks;
    std::vector<std::vector<float>> dpools;
    ranks.reserve(count(R));
    for (int k = 0; k < R; ++k) {
      const ConvShape rs{s.shares[count(k)], s.Cin, C, s.H, s.W};
      const int tiles = L.bn_stats_tiles(rs.N, s.H, s.W);
      const int blocks = gpu::batchnorm_relu_maxpool_backward_blocks(rs.N, s.H, s.W);
      dpools.push_back(random_vector<float>(rs.pooled_size(), seed + 50 + count(k)));
      ranks.push_back(Rank{
          rs, r.upload(random_vector<float>(rs.in_size(), seed + 20 + count(k))),
          r.alloc<float>(rs.out_size()), r.alloc<float>(rs.pooled_size()), r.alloc<float>(count(C)),
          r.alloc<float>(count(C)), r.upload(p.running_mean), r.upload(p.running_var),
          r.upload(dpools.back()), r.alloc<float>(rs.out_size()), r.alloc<float>(count(C)),
          r.alloc<float>(count(C)), r.alloc<std::uint8_t>(rs.pooled_size()),
          r.alloc<double>(3 * count(C) * count(tiles)),
          r.alloc<double>(2 * count(C) * count(blocks)), tiles, blocks,
          static_cast<float>(static_cast<double>(rs.N) / s.total())});
    }
    // The all-gathers' buffers (each rank's slot written by its own pack, as NCCL's in-place
    // all-gather leaves it on every rank) and the merged workspaces.
    auto gathered_stats = r.alloc<double>(3 * count(C) * count(R));
    auto gathered_sums = r.alloc<double>(2 * count(C) * count(R));
    auto merged = r.alloc<double>(3 * count(C) * count(R));
    r.launch([&] {
      for (int k = 0; k < R; ++k) {
        Rank& q = ranks[count(k)];
        L.forward_bn_stats(q.conv.data(), q.stats.data(), q.in.data(), weight.data(), bias.data(),
                           q.shape.N, s.Cin, C, s.H, s.W, r.stream());
        gpu::batchnorm_sync_pack_stats(gathered_stats.data() + 3 * count(C) * count(k),
                                       q.stats.data(), C, q.tiles, r.stream());
      }
      gpu::batchnorm_sync_unpack_stats(merged.data(), gathered_stats.data(), C, R, r.stream());
      for (Rank& q : ranks) {
        gpu::batchnorm_relu_maxpool_forward_train(
            q.pooled.data(), q.window.data(), q.mean.data(), q.invstd.data(), q.rm.data(),
            q.rv.data(), q.conv.data(), merged.data(), R, gamma.data(), beta.data(), q.shape.N, C,
            s.H, s.W, kBnEps, kBnMomentum, r.stream());
      }
      for (int k = 0; k < R; ++k) {
        Rank& q = ranks[count(k)];
        gpu::batchnorm_relu_maxpool_backward_sums(q.ws.data(), q.dpool.data(), q.window.data(),
                                                  q.conv.data(), q.mean.data(), q.invstd.data(),
                                                  q.shape.N, C, s.H, s.W, r.stream());
        gpu::batchnorm_sync_pack_sums(gathered_sums.data() + 2 * count(C) * count(k), q.ws.data(),
                                      C, q.blocks, static_cast<double>(q.weight), r.stream());
      }
      for (Rank& q : ranks) {
        gpu::batchnorm_sync_unpack_sums(q.ws.data(), gathered_sums.data(), C, q.blocks, R,
                                        r.stream());
        gpu::batchnorm_relu_maxpool_backward_data(q.dconv.data(), q.dgamma.data(), q.dbeta.data(),
                                                  q.ws.data(), q.dpool.data(), q.window.data(),
                                                  q.conv.data(), q.mean.data(), q.invstd.data(),
                                                  gamma.data(), q.shape.N, C, s.H, s.W, r.stream());
      }
    });

    // The global batch: the ranks' conv outputs one after another (NCHW: along N).
    std::vector<float> x, global_dpool;
    std::vector<std::vector<std::uint8_t>> codes;
    for (int k = 0; k < R; ++k) {
      const std::vector<float> xk = r.download(ranks[count(k)].conv);
      x.insert(x.end(), xk.begin(), xk.end());
      codes.push_back(r.download(ranks[count(k)].window));
      // The global mean loss's gradient: each share's, weighted by the share.
      for (const float v : dpools[count(k)]) {
        global_dpool.push_back(static_cast<float>(static_cast<double>(ranks[count(k)].weight) *
                                                  static_cast<double>(v)));
      }
    }
    const int N = s.total();
    const TrainRef ref = train_ref(x, p, N, C, s.H, s.W);
    // dy from the kernels' own window codes (ties go either way within the tolerance; the codes
    // themselves are checked by the forward cases), then BatchNorm's backward over the batch.
    std::vector<float> dy(x.size(), 0.0f), din(x.size()), dgamma(count(C)), dbeta(count(C));
    std::size_t o = 0;
    for (const auto& rank_codes : codes) {
      for (const std::uint8_t k : rank_codes) {
        if (k != gpu::kWindowNoGradient) dy[window_element(o, k, s.H, s.W)] = global_dpool[o];
        ++o;
      }
    }
    std::vector<float> rank0_mean;
    std::size_t at = 0, pooled_at = 0;
    for (int k = 0; k < R; ++k) {
      Rank& q = ranks[count(k)];
      const std::string who = fmt::format("rank {}: ", k);
      const std::size_t n = q.shape.out_size(), np = q.shape.pooled_size();
      const std::vector<float> want_pooled(
          ref.pooled.begin() + static_cast<std::ptrdiff_t>(pooled_at),
          ref.pooled.begin() + static_cast<std::ptrdiff_t>(pooled_at + np));
      r.check(who + "pooled", r.download(q.pooled), want_pooled, tol::kGpuVsCpu);
      const std::vector<float> mean = r.download(q.mean);
      r.check(who + "save_mean", mean, ref.mean, tol::kGpuVsCpu);
      r.check(who + "save_invstd", r.download(q.invstd), ref.invstd, tol::kGpuVsCpu);
      r.check(who + "running_mean", r.download(q.rm), ref.running_mean, tol::kGpuVsCpu);
      r.check(who + "running_var (unbiased with the global count)", r.download(q.rv),
              ref.running_var, tol::kGpuVsCpu);
      if (k == 0) {
        rank0_mean = mean;
        // The reference backward runs on rank 0's saved statistics (the ranks' are checked
        // equal to the bit just below), as the kernels do.
        cpu::batchnorm_backward(din.data(), dgamma.data(), dbeta.data(), dy.data(), x.data(),
                                mean.data(), r.download(q.invstd).data(), p.gamma.data(), N, C,
                                static_cast<int>(hw));
      } else {
        r.check(who + "save_mean vs rank 0's, bit for bit", mean, rank0_mean, tol::kExact);
      }
      // This rank's dconv is the global loss's input gradient in the units of its own share's
      // loss: 1 / weight times the global one.
      std::vector<float> want(n);
      for (std::size_t i = 0; i < n; ++i) {
        want[i] =
            static_cast<float>(static_cast<double>(din[at + i]) / static_cast<double>(q.weight));
      }
      r.check(who + "dconv", r.download(q.dconv), want, tol::kGpuVsCpu);
      r.check(who + "dgamma (the global sum)", r.download(q.dgamma), dgamma, tol::kGpuVsCpu);
      r.check(who + "dbeta (the global sum)", r.download(q.dbeta), dbeta, tol::kGpuVsCpu);
      at += n;
      pooled_at += np;
    }
  };
  return c;
}

}  // namespace

std::vector<KernelCase> fused_bn_cases(const CaseOptions& options) {
  std::vector<KernelCase> cases;
  const std::pair<const ConvLaunchers*, ConvImpl> impls[] = {
      {&options.cuda_core, ConvImpl::kCudaCore}, {&options.tensor_core, ConvImpl::kTensorCore}};
  for (const auto& [launchers, impl] : impls) {
    for (const ConvShape& s : fused_conv_shapes()) {
      cases.push_back(fused_forward_case(*launchers, impl, s, /*offset=*/false));
    }
    for (const ConvShape& s : offset_conv_shapes()) {
      cases.push_back(fused_forward_case(*launchers, impl, s, /*offset=*/true));
    }
    for (const ConvShape& s : fused_conv_shapes()) {
      cases.push_back(folded_eval_case(*launchers, impl, s));
    }
  }
  for (const ConvShape& s : from_bn_shapes()) {
    cases.push_back(from_bn_maxpool_case(options.cuda_core, s));
  }
  for (const BnPoolShape& s : bn_pool_shapes()) cases.push_back(fused_backward_case(s));
  for (const SyncShape& s : sync_shapes()) cases.push_back(sync_bn_case(options.cuda_core, s));
  return cases;
}

}  // namespace octa::selfcheck
