// engine/selfcheck/fused_bn_step_case.cpp: the case of the case table that runs model B's two
// feature stages with the fused BatchNorm the way the CUDA backend does (engine/gpu/
// cuda_backend.cpp): conv1 + statistics, BatchNorm + ReLU + pool, conv2 + statistics, BatchNorm +
// ReLU + pool; then the fused backward of stage 2 with conv2's filter and data gradients, and
// conv1's filter gradient with stage 1's backward in its staging; then Adam over all their
// parameters; for several steps, against the CPU reference's unfused chain (engine/cpu/ops.hpp,
// engine/optim) step for step. The loss is a fixed linear function of pool2 (its gradient a fixed
// random tensor at a real gradient's scale), so no cuBLAS layer is needed and the emulator runs it.
// On the tensor cores (the --conv fused path: conv2 there, conv1 on the CUDA cores) and on the CUDA
// cores (--conv fused-fp32).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine/core/random_fill.hpp"
#include "engine/cpu/ops.hpp"
#include "engine/optim/optimizer.hpp"
#include "engine/selfcheck/case_inputs.hpp"
#include "engine/selfcheck/kernel_cases.hpp"
#include "kernels/batchnorm_fused.hpp"
#include "kernels/conv3x3.hpp"
#include "kernels/optimizer.hpp"

namespace octa::selfcheck {

namespace {

constexpr float kBnEps = 1e-5f, kBnMomentum = 0.1f;
constexpr int kC1 = 32, kC2 = 64, kH1 = 28, kH2 = 14;

// Where each parameter of the two stages sits in the one parameter (and gradient) buffer.
struct Layout {
  std::size_t w1 = 0, b1, g1, be1, w2, b2, g2, be2, total;
  Layout() {
    b1 = w1 + count(kC1, 9);
    g1 = b1 + count(kC1);
    be1 = g1 + count(kC1);
    w2 = be1 + count(kC1);
    b2 = w2 + count(kC2, kC1, 9);
    g2 = b2 + count(kC2);
    be2 = g2 + count(kC2);
    total = be2 + count(kC2);
  }
};

// The CPU reference's step: forward, the loss's gradient dpool2, backward, Adam. Returns pool2.
struct CpuStages {
  std::vector<float>& p;  // parameters (Layout)
  std::vector<float> rm1, rv1, rm2, rv2, m, v;
  std::vector<float> step(const std::vector<float>& x, const std::vector<float>& dpool2, int N,
                          const OptimizerConfig& cfg, int t) {
    const Layout L;
    const std::size_t n1 = count(N, kC1, kH1, kH1), n2 = count(N, kC2, kH2, kH2);
    std::vector<float> y1(n1), a1(n1), q1(n1 / 4), mean1(kC1), inv1(kC1);
    std::vector<float> y2(n2), a2(n2), q2(n2 / 4), mean2(kC2), inv2(kC2);
    cpu::conv3x3_forward(y1.data(), x.data(), &p[L.w1], &p[L.b1], N, 1, kC1, kH1, kH1);
    cpu::batchnorm_forward_train(a1.data(), mean1.data(), inv1.data(), rm1.data(), rv1.data(),
                                 y1.data(), &p[L.g1], &p[L.be1], N, kC1, kH1 * kH1, kBnEps,
                                 kBnMomentum);
    cpu::relu_forward(a1.data(), a1.data(), n1);
    cpu::maxpool2x2_forward(q1.data(), a1.data(), N, kC1, kH1, kH1);
    cpu::conv3x3_forward(y2.data(), q1.data(), &p[L.w2], &p[L.b2], N, kC1, kC2, kH2, kH2);
    cpu::batchnorm_forward_train(a2.data(), mean2.data(), inv2.data(), rm2.data(), rv2.data(),
                                 y2.data(), &p[L.g2], &p[L.be2], N, kC2, kH2 * kH2, kBnEps,
                                 kBnMomentum);
    cpu::relu_forward(a2.data(), a2.data(), n2);
    cpu::maxpool2x2_forward(q2.data(), a2.data(), N, kC2, kH2, kH2);

    std::vector<float> g(L.total), d2(n2), dy2(n2), dq1(n1 / 4), d1(n1), dy1(n1), dx(x.size());
    cpu::maxpool2x2_backward(d2.data(), dpool2.data(), a2.data(), N, kC2, kH2, kH2);
    cpu::relu_backward(d2.data(), d2.data(), a2.data(), n2);
    cpu::batchnorm_backward(dy2.data(), &g[L.g2], &g[L.be2], d2.data(), y2.data(), mean2.data(),
                            inv2.data(), &p[L.g2], N, kC2, kH2 * kH2);
    cpu::conv3x3_backward(dq1.data(), &g[L.w2], &g[L.b2], dy2.data(), q1.data(), &p[L.w2], N, kC1,
                          kC2, kH2, kH2);
    cpu::maxpool2x2_backward(d1.data(), dq1.data(), a1.data(), N, kC1, kH1, kH1);
    cpu::relu_backward(d1.data(), d1.data(), a1.data(), n1);
    cpu::batchnorm_backward(dy1.data(), &g[L.g1], &g[L.be1], d1.data(), y1.data(), mean1.data(),
                            inv1.data(), &p[L.g1], N, kC1, kH1 * kH1);
    cpu::conv3x3_backward(dx.data(), &g[L.w1], &g[L.b1], dy1.data(), x.data(), &p[L.w1], N, 1, kC1,
                          kH1, kH1);
    adam_update(p.data(), g.data(), m.data(), v.data(), L.total, cfg, t);
    return q2;
  }
};

KernelCase stages_case(const ConvLaunchers& conv1, const ConvLaunchers& conv2, ConvImpl impl, int N,
                       int steps) {
  KernelCase c;
  c.name =
      fmt::format("model B stages, fused BatchNorm ({} conv2) N{} x{}", conv2.prefix, N, steps);
  c.group = conv2.prefix;
  c.launcher = fmt::format(
      "the CUDA backend's sequence: gpu::{} and {}, each + batchnorm_relu_maxpool_forward_train; "
      "batchnorm_relu_maxpool_backward, {}, {}; conv3x3_backward_filter_from_bn_maxpool; "
      "adam_update",
      conv1.name("forward_bn_stats"), conv2.name("forward_bn_stats"), conv2.name("backward_filter"),
      conv2.name("backward_data"));
  c.shape = fmt::format("N={}: conv1 1>32 28x28, conv2 32>64 14x14, {} Adam steps", N, steps);
  c.reference =
      "cpu::conv3x3_forward, batchnorm_forward_train, relu, maxpool and their "
      "backward, octa::adam_update, step for step";
  c.tolerance = tol::kGpuVsCpu;
  c.conv = impl;
  c.conv_cin = kC1;
  c.body = [conv1, conv2, N, steps](CaseRun& r) {
    const Layout L;
    const std::uint64_t seed = seed_of(fmt::format("model B stages {} N{}", conv2.prefix, N));
    // PyTorch's initial scale for the convolutions; BatchNorm's parameters near its initial 1, 0.
    std::vector<float> p(L.total);
    const auto fill = [&](std::size_t at, std::size_t n, double lo, double hi, std::uint64_t s) {
      const std::vector<float> v = random_vector<float>(n, s, lo, hi);
      for (std::size_t i = 0; i < n; ++i) p[at + i] = v[i];
    };
    fill(L.w1, count(kC1, 9), -1.0 / 3, 1.0 / 3, seed);
    fill(L.b1, count(kC1), -1.0 / 3, 1.0 / 3, seed + 1);
    fill(L.g1, count(kC1), 0.8, 1.2, seed + 2);
    fill(L.be1, count(kC1), -0.2, 0.2, seed + 3);
    const double b2 = 1.0 / std::sqrt(9.0 * kC1);
    fill(L.w2, count(kC2, kC1, 9), -b2, b2, seed + 4);
    fill(L.b2, count(kC2), -b2, b2, seed + 5);
    fill(L.g2, count(kC2), 0.8, 1.2, seed + 6);
    fill(L.be2, count(kC2), -0.2, 0.2, seed + 7);
    const std::size_t n1 = count(N, kC1, kH1, kH1), n2 = count(N, kC2, kH2, kH2);
    const std::vector<float> dpool2 = random_vector<float>(n2 / 4, seed + 8, -1.0 / 64, 1.0 / 64);
    // Adam with a larger step, so that a few of them move, and a larger eps. The convolutions'
    // biases feed BatchNorm, which cancels them: their gradient is zero in exact arithmetic, and
    // what is computed is rounding noise (~1e-8 here), different on the GPU and the CPU. With
    // PyTorch's eps (1e-8) Adam's normalisation turns that noise into steps of about +-lr, so the
    // two sides' biases (and running means) would part by a few lr however right the kernels are;
    // at eps 1e-5 the noise moves them by ~1e-3 lr and every real gradient (1e-4 and up) still
    // gets Adam's normalised step.
    OptimizerConfig cfg;
    cfg.lr = 3e-3;
    cfg.eps = 1e-5;
    const gpu::AdamParams hp{cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay};

    CpuStages cpu{p,
                  std::vector<float>(kC1, 0.0f),
                  std::vector<float>(kC1, 1.0f),
                  std::vector<float>(kC2, 0.0f),
                  std::vector<float>(kC2, 1.0f),
                  std::vector<float>(L.total, 0.0f),
                  std::vector<float>(L.total, 0.0f)};
    auto d_p = r.upload(p), d_m = r.upload(cpu.m), d_v = r.upload(cpu.v);
    auto d_g = r.alloc<float>(L.total);
    auto rm1 = r.upload(cpu.rm1), rv1 = r.upload(cpu.rv1), rm2 = r.upload(cpu.rm2),
         rv2 = r.upload(cpu.rv2);
    auto step = r.upload(std::vector<std::int64_t>{0});
    const int tiles1 = conv1.bn_stats_tiles(N, kH1, kH1),
              tiles2 = conv2.bn_stats_tiles(N, kH2, kH2);
    auto x = r.alloc<float>(count(N, 1, kH1, kH1));
    auto y1 = r.alloc<float>(n1), q1 = r.alloc<float>(n1 / 4), dq1 = r.alloc<float>(n1 / 4);
    auto y2 = r.alloc<float>(n2), q2 = r.alloc<float>(n2 / 4), dy2 = r.alloc<float>(n2);
    auto st1 = r.alloc<double>(3 * count(kC1) * count(tiles1)),
         st2 = r.alloc<double>(3 * count(kC2) * count(tiles2));
    auto w1 = r.alloc<std::uint8_t>(n1 / 4), w2 = r.alloc<std::uint8_t>(n2 / 4);
    auto mean1 = r.alloc<float>(kC1), inv1 = r.alloc<float>(kC1), mean2 = r.alloc<float>(kC2),
         inv2 = r.alloc<float>(kC2);
    auto bws1 = r.alloc<double>(gpu::batchnorm_relu_maxpool_backward_workspace(N, kC1, kH1, kH1)),
         bws2 = r.alloc<double>(gpu::batchnorm_relu_maxpool_backward_workspace(N, kC2, kH2, kH2));
    auto fws =
        r.alloc<float>(std::max(gpu::conv3x3_backward_filter_workspace(N, 1, kC1, kH1, kH1),
                                gpu::conv3x3_backward_filter_workspace(N, kC1, kC2, kH2, kH2)));
    const auto d_dpool2 = r.upload(dpool2);
    float* P = d_p.data();
    float* G = d_g.data();
    cudaStream_t s = r.stream();

    std::vector<float> q2_ref;
    for (int t = 1; t <= steps; ++t) {
      const std::vector<float> images =
          random_vector<float>(count(N, 1, kH1, kH1), seed + 10 + static_cast<std::uint64_t>(t));
      x.put(images);
      q2_ref = cpu.step(images, dpool2, N, cfg, t);
      r.launch([&] {
        conv1.forward_bn_stats(y1.data(), st1.data(), x.data(), P + L.w1, P + L.b1, N, 1, kC1, kH1,
                               kH1, s);
        gpu::batchnorm_relu_maxpool_forward_train(
            q1.data(), w1.data(), mean1.data(), inv1.data(), rm1.data(), rv1.data(), y1.data(),
            st1.data(), tiles1, P + L.g1, P + L.be1, N, kC1, kH1, kH1, kBnEps, kBnMomentum, s);
        conv2.forward_bn_stats(y2.data(), st2.data(), q1.data(), P + L.w2, P + L.b2, N, kC1, kC2,
                               kH2, kH2, s);
        gpu::batchnorm_relu_maxpool_forward_train(
            q2.data(), w2.data(), mean2.data(), inv2.data(), rm2.data(), rv2.data(), y2.data(),
            st2.data(), tiles2, P + L.g2, P + L.be2, N, kC2, kH2, kH2, kBnEps, kBnMomentum, s);
        gpu::batchnorm_relu_maxpool_backward(dy2.data(), G + L.g2, G + L.be2, d_dpool2.data(),
                                             w2.data(), y2.data(), mean2.data(), inv2.data(),
                                             P + L.g2, N, kC2, kH2, kH2, bws2.data(), s);
        conv2.backward_filter(G + L.w2, G + L.b2, dy2.data(), q1.data(), N, kC1, kC2, kH2, kH2,
                              fws.data(), s);
        conv2.backward_data(dq1.data(), dy2.data(), P + L.w2, N, kC1, kC2, kH2, kH2, s);
        gpu::conv3x3_backward_filter_from_bn_maxpool(
            G + L.w1, G + L.b1, G + L.g1, G + L.be1, dq1.data(), w1.data(), y1.data(), mean1.data(),
            inv1.data(), P + L.g1, x.data(), N, 1, kC1, kH1, kH1, bws1.data(), fws.data(), s);
        gpu::adam_update(P, G, d_m.data(), d_v.data(), L.total, hp, step.data(), s);
      });
    }
    // After several Adam steps the GPU/CPU rounding differences have been through the optimiser
    // too: the training-step entry of the table, as the GPU engine's step tests.
    const Tolerance t = tol::kGpuStepVsCpu;
    r.check(fmt::format("pool2 at step {}", steps), r.download(q2), q2_ref, t);
    r.check("parameters", r.download(d_p), p, t);
    r.check("exp_avg", r.download(d_m), cpu.m, t);
    r.check("bn1 running_mean", r.download(rm1), cpu.rm1, t);
    r.check("bn1 running_var", r.download(rv1), cpu.rv1, t);
    r.check("bn2 running_mean", r.download(rm2), cpu.rm2, t);
    r.check("bn2 running_var", r.download(rv2), cpu.rv2, t);
  };
  return c;
}

}  // namespace

std::vector<KernelCase> fused_bn_step_cases(const CaseOptions& options) {
  return {stages_case(options.cuda_core, options.tensor_core, ConvImpl::kTensorCore, 2, 3),
          stages_case(options.cuda_core, options.cuda_core, ConvImpl::kCudaCore, 2, 3)};
}

}  // namespace octa::selfcheck
