// engine/selfcheck/layer_cases.cpp: the cases of the case table for octa's kernels other than the
// convolutions: max-pool and global average pool, BatchNorm (training and eval forward, running
// statistics, backward with and without the fused ReLU), bias + epilogue and its gradient, ReLU's
// backward, dropout, BCE with logits, the fused training head, Adam and SGD. Each against the CPU
// reference (engine/cpu/ops.hpp, engine/optim/optimizer.hpp) on seeded random inputs, at the
// models' shapes at batch 64 and at sizes that are not multiples of the kernels' blocks, with every
// output poisoned before the launch.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "engine/core/philox.hpp"
#include "engine/core/random_fill.hpp"
#include "engine/cpu/ops.hpp"
#include "engine/model/param_table.hpp"
#include "engine/optim/optimizer.hpp"
#include "engine/selfcheck/case_inputs.hpp"
#include "engine/selfcheck/kernel_cases.hpp"
#include "kernels/batchnorm.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/logit_head.hpp"
#include "kernels/loss.hpp"
#include "kernels/optimizer.hpp"
#include "kernels/pool.hpp"

namespace octa::selfcheck {

namespace {

using gpu::Epilogue;
using enum CaseSize;

constexpr unsigned kBothModels = kModelA | kModelB;

const char* epilogue_name(Epilogue e) {
  return e == Epilogue::kRelu ? "kRelu" : "kNone";
}

KernelCase make_case(std::string launcher, std::string group, std::string shape_tag,
                     std::string shape, std::string reference, CaseSize size, unsigned models) {
  KernelCase c;
  c.name = launcher + " " + shape_tag;
  c.group = std::move(group);
  c.launcher = "gpu::" + launcher;
  c.shape = std::move(shape);
  c.reference = std::move(reference);
  c.tolerance = tol::kGpuVsCpu;
  c.size = size;
  c.models = models;
  return c;
}

// =============================================================================================
// Pooling
// =============================================================================================

struct PoolShape {
  int N, C, H, W;
  CaseSize size = kSmall;
  unsigned models = 0;
  std::size_t in_size() const { return count(N, C, H, W); }
  std::string tag() const { return fmt::format("N{} C{} {}x{}", N, C, H, W); }
  std::string str() const { return fmt::format("N={} C={} H={} W={}", N, C, H, W); }
};

// Models A's and B's two pools (after conv1 and conv2) at batch 64, one image, three and 67; a
// partial last block of 256 threads; a single window.
std::vector<PoolShape> pool_shapes() {
  return {{64, 32, 28, 28, kModel, kBothModels},
          {64, 64, 14, 14, kModel, kBothModels},
          {1, 32, 28, 28},
          {3, 32, 28, 28},
          {1, 64, 14, 14},
          {3, 64, 14, 14},
          {67, 32, 28, 28, kLarge},
          {67, 64, 14, 14, kLarge},
          {2, 3, 6, 10},
          {1, 1, 2, 2}};
}

KernelCase maxpool_forward_case(const PoolShape& s) {
  KernelCase c = make_case("maxpool2x2_forward", "pool", s.tag(), s.str(),
                           "cpu::maxpool2x2_forward", s.size, s.models);
  c.body = [s](CaseRun& r) {
    const std::vector<float> x =
        with_ties(random_vector<float>(s.in_size(), seed_of("maxpool forward " + s.tag())));
    std::vector<float> ref(s.in_size() / 4);
    cpu::maxpool2x2_forward(ref.data(), x.data(), s.N, s.C, s.H, s.W);
    const auto d_x = r.upload(x);
    auto d_out = r.alloc<float>(ref.size());
    r.launch(
        [&] { gpu::maxpool2x2_forward(d_out.data(), d_x.data(), s.N, s.C, s.H, s.W, r.stream()); });
    r.check("out", r.download(d_out), ref, tol::kGpuVsCpu);
  };
  return c;
}

KernelCase maxpool_backward_case(const PoolShape& s) {
  KernelCase c = make_case("maxpool2x2_backward", "pool", s.tag(), s.str(),
                           "cpu::maxpool2x2_backward (relu_before: then cpu::relu_backward)",
                           s.size, s.models);
  c.body = [s](CaseRun& r) {
    const std::uint64_t seed = seed_of("maxpool backward " + s.tag());
    const std::size_t n_in = s.in_size(), n_out = n_in / 4;
    const std::vector<float> x = with_ties(random_vector<float>(n_in, seed));
    const std::vector<float> xr = relu_of(x);  // many all-zero windows
    const std::vector<float> dout = random_vector<float>(n_out, seed + 1);
    const auto d_dout = r.upload(dout);
    auto d_din = r.alloc<float>(n_in);
    for (const bool relu_before : {false, true}) {
      // The fused ReLU backward: the pool's backward over the ReLU's output, then the ReLU's.
      const std::vector<float>& in = relu_before ? xr : x;
      std::vector<float> ref(n_in);
      cpu::maxpool2x2_backward(ref.data(), dout.data(), in.data(), s.N, s.C, s.H, s.W);
      if (relu_before) cpu::relu_backward(ref.data(), ref.data(), in.data(), n_in);
      const auto d_in = r.upload(in);
      d_din.poison();  // every element, zeros included, must be written
      r.launch([&] {
        gpu::maxpool2x2_backward(d_din.data(), d_dout.data(), d_in.data(), s.N, s.C, s.H, s.W,
                                 relu_before, r.stream());
      });
      r.check(relu_before ? "din (relu_before)" : "din", r.download(d_din), ref, tol::kGpuVsCpu);
    }
  };
  return c;
}

// Model B's global average pool (64 x 7 x 7 -> 64; 49 is not a multiple of the 8-way sum).
struct GapShape {
  int N;
  CaseSize size = kSmall;
  unsigned models = 0;
  static constexpr int kC = 64, kHW = 49;
  std::string tag() const { return fmt::format("N{} C{} HW{}", N, kC, kHW); }
  std::string str() const { return fmt::format("N={} C={} HW={}", N, kC, kHW); }
};
const GapShape kGapShapes[] = {{64, kModel, kModelB}, {1}, {3}, {5}, {67, kLarge}};

KernelCase gap_forward_case(const GapShape& s) {
  KernelCase c = make_case("global_avgpool_forward", "pool", s.tag(), s.str(),
                           "cpu::global_avgpool_forward", s.size, s.models);
  c.body = [s](CaseRun& r) {
    const std::vector<float> x =
        random_vector<float>(count(s.N, s.kC, s.kHW), seed_of("gap forward " + s.tag()));
    std::vector<float> ref(count(s.N, s.kC));
    cpu::global_avgpool_forward(ref.data(), x.data(), s.N, s.kC, s.kHW);
    const auto d_x = r.upload(x);
    auto d_out = r.alloc<float>(ref.size());
    r.launch([&] {
      gpu::global_avgpool_forward(d_out.data(), d_x.data(), s.N, s.kC, s.kHW, r.stream());
    });
    r.check("out", r.download(d_out), ref, tol::kGpuVsCpu);
  };
  return c;
}

KernelCase gap_backward_case(const GapShape& s) {
  KernelCase c = make_case("global_avgpool_backward", "pool", s.tag(), s.str(),
                           "cpu::global_avgpool_backward", s.size, s.models);
  c.body = [s](CaseRun& r) {
    const std::vector<float> dout =
        random_vector<float>(count(s.N, s.kC), seed_of("gap backward " + s.tag()));
    std::vector<float> ref(count(s.N, s.kC, s.kHW));
    cpu::global_avgpool_backward(ref.data(), dout.data(), s.N, s.kC, s.kHW);
    const auto d_dout = r.upload(dout);
    auto d_din = r.alloc<float>(ref.size());
    r.launch([&] {
      gpu::global_avgpool_backward(d_din.data(), d_dout.data(), s.N, s.kC, s.kHW, r.stream());
    });
    r.check("din", r.download(d_din), ref, tol::kGpuVsCpu);
  };
  return c;
}

// =============================================================================================
// BatchNorm
// =============================================================================================

constexpr float kBnEps = 1e-5f, kBnMomentum = 0.1f;

struct BnShape {
  int N, C, HW;
  CaseSize size = kSmall;
  unsigned models = 0;
  std::size_t n() const { return count(N, C, HW); }
  std::size_t c() const { return count(C); }
  std::string tag() const { return fmt::format("N{} C{} HW{}", N, C, HW); }
  std::string str() const { return fmt::format("N={} C={} HW={}", N, C, HW); }
};

// Model B's bn1 (32 x 28x28) and bn2 (64 x 14x14) at batch 64 and at 1, 3 and 67: the GPU
// runners' (large: each channel is one block of 1024 threads, which costs the emulator ~40
// barrier phases of them, about 85 s for these); and for every runner, fewer values per channel
// than threads (3 x 49), more (2 x 1500), and (eval: for its grid-stride blocks) more channels
// with bn2's 7x7 planes (16).
std::vector<BnShape> bn_shapes(bool eval) {
  std::vector<BnShape> shapes = {{64, 32, 784, kLarge, kModelB},
                                 {64, 64, 196, kLarge, kModelB},
                                 {1, 32, 784, kLarge},
                                 {3, 32, 784, kLarge},
                                 {67, 32, 784, kLarge},
                                 {1, 64, 196, kLarge},
                                 {3, 64, 196, kLarge},
                                 {67, 64, 196, kLarge},
                                 {3, 5, 49},
                                 {2, 3, 1500}};
  if (eval) shapes.push_back({2, 16, 49});
  return shapes;
}

// One configuration's inputs: x with its mean far from 0, gamma and the running variance near 1.
struct BnInputs {
  std::vector<float> x, gamma, beta, running_mean, running_var, dout;
  BnInputs(const BnShape& s, std::uint64_t seed)
      : x(random_vector<float>(s.n(), seed, -2.0, 3.0)),
        gamma(random_vector<float>(s.c(), seed + 1, 0.5, 1.5)),
        beta(random_vector<float>(s.c(), seed + 2, -0.5, 0.5)),
        running_mean(random_vector<float>(s.c(), seed + 3, -0.2, 0.2)),
        running_var(random_vector<float>(s.c(), seed + 4, 0.5, 1.5)),
        dout(random_vector<float>(s.n(), seed + 5)) {}
};

struct BnTrainRef {
  std::vector<float> out, mean, invstd, running_mean, running_var;
};

BnTrainRef bn_train_ref(const BnShape& s, const BnInputs& in, Epilogue epilogue) {
  BnTrainRef ref{std::vector<float>(s.n()), std::vector<float>(s.c()), std::vector<float>(s.c()),
                 in.running_mean, in.running_var};
  cpu::batchnorm_forward_train(ref.out.data(), ref.mean.data(), ref.invstd.data(),
                               ref.running_mean.data(), ref.running_var.data(), in.x.data(),
                               in.gamma.data(), in.beta.data(), s.N, s.C, s.HW, kBnEps,
                               kBnMomentum);
  if (epilogue == Epilogue::kRelu) ref.out = relu_of(std::move(ref.out));
  return ref;
}

KernelCase bn_train_case(const BnShape& s) {
  KernelCase c =
      make_case("batchnorm_forward_train", "batchnorm", s.tag(), s.str(),
                "cpu::batchnorm_forward_train (kRelu: then relu_forward)", s.size, s.models);
  c.launcher += " (kNone, kRelu; without running statistics)";
  c.body = [s](CaseRun& r) {
    const BnInputs in(s, seed_of("bn train " + s.tag()));
    const auto x = r.upload(in.x), gamma = r.upload(in.gamma), beta = r.upload(in.beta);
    auto rm = r.alloc<float>(s.c()), rv = r.alloc<float>(s.c());
    auto out = r.alloc<float>(s.n()), mean = r.alloc<float>(s.c()), invstd = r.alloc<float>(s.c());
    for (const Epilogue epilogue : {Epilogue::kNone, Epilogue::kRelu}) {
      const BnTrainRef ref = bn_train_ref(s, in, epilogue);
      rm.put(in.running_mean);
      rv.put(in.running_var);
      out.poison();
      mean.poison();
      invstd.poison();
      r.launch([&] {
        gpu::batchnorm_forward_train(out.data(), mean.data(), invstd.data(), rm.data(), rv.data(),
                                     x.data(), gamma.data(), beta.data(), s.N, s.C, s.HW, kBnEps,
                                     kBnMomentum, epilogue, r.stream());
      });
      const std::string e = fmt::format(" ({})", epilogue_name(epilogue));
      r.check("out" + e, r.download(out), ref.out, tol::kGpuVsCpu);
      r.check("save_mean" + e, r.download(mean), ref.mean, tol::kGpuVsCpu);
      r.check("save_invstd" + e, r.download(invstd), ref.invstd, tol::kGpuVsCpu);
      r.check("running_mean" + e, r.download(rm), ref.running_mean, tol::kGpuVsCpu);
      r.check("running_var" + e, r.download(rv), ref.running_var, tol::kGpuVsCpu);
      if (epilogue == Epilogue::kRelu) {
        // Without running statistics (null pointers, as an evaluation-free forward): the same.
        out.poison();
        r.launch([&] {
          gpu::batchnorm_forward_train(out.data(), mean.data(), invstd.data(), nullptr, nullptr,
                                       x.data(), gamma.data(), beta.data(), s.N, s.C, s.HW, kBnEps,
                                       kBnMomentum, epilogue, r.stream());
        });
        r.check("out without running statistics", r.download(out), ref.out, tol::kGpuVsCpu);
      }
    }
  };
  return c;
}

// Five training forwards on fresh batches: the running statistics follow the CPU's.
KernelCase bn_running_case(const BnShape& s) {
  KernelCase c =
      make_case("batchnorm_forward_train", "batchnorm", s.tag() + " x5", s.str() + ", 5 batches",
                "cpu::batchnorm_forward_train, 5 times", s.size, s.models);
  c.launcher += " (running statistics over 5 batches)";
  c.body = [s](CaseRun& r) {
    const std::uint64_t seed = seed_of("bn running " + s.tag());
    const BnInputs in(s, seed);
    const auto gamma = r.upload(in.gamma), beta = r.upload(in.beta);
    auto rm = r.upload(in.running_mean), rv = r.upload(in.running_var);
    auto x = r.alloc<float>(s.n()), out = r.alloc<float>(s.n());
    auto mean = r.alloc<float>(s.c()), invstd = r.alloc<float>(s.c());
    std::vector<float> out_ref(s.n()), mean_ref(s.c()), invstd_ref(s.c());
    std::vector<float> rm_ref = in.running_mean, rv_ref = in.running_var;
    for (int it = 0; it < 5; ++it) {
      const std::vector<float> batch = random_vector<float>(
          s.n(), seed + 10 + static_cast<std::uint64_t>(it), -1.0 + it, 2.0 + it);
      x.put(batch);
      cpu::batchnorm_forward_train(out_ref.data(), mean_ref.data(), invstd_ref.data(),
                                   rm_ref.data(), rv_ref.data(), batch.data(), in.gamma.data(),
                                   in.beta.data(), s.N, s.C, s.HW, kBnEps, kBnMomentum);
      r.launch([&] {
        gpu::batchnorm_forward_train(out.data(), mean.data(), invstd.data(), rm.data(), rv.data(),
                                     x.data(), gamma.data(), beta.data(), s.N, s.C, s.HW, kBnEps,
                                     kBnMomentum, Epilogue::kNone, r.stream());
      });
    }
    r.check("running_mean after 5", r.download(rm), rm_ref, tol::kGpuVsCpu);
    r.check("running_var after 5", r.download(rv), rv_ref, tol::kGpuVsCpu);
  };
  return c;
}

KernelCase bn_eval_case(const BnShape& s) {
  KernelCase c =
      make_case("batchnorm_forward_eval", "batchnorm", s.tag(), s.str(),
                "cpu::batchnorm_forward_eval (kRelu: then relu_forward)", s.size, s.models);
  c.launcher += " (kNone, kRelu)";
  c.body = [s](CaseRun& r) {
    const BnInputs in(s, seed_of("bn eval " + s.tag()));
    std::vector<float> ref(s.n());
    cpu::batchnorm_forward_eval(ref.data(), in.x.data(), in.gamma.data(), in.beta.data(),
                                in.running_mean.data(), in.running_var.data(), s.N, s.C, s.HW,
                                kBnEps);
    const std::vector<float> ref_relu = relu_of(ref);
    const auto x = r.upload(in.x), gamma = r.upload(in.gamma), beta = r.upload(in.beta),
               rm = r.upload(in.running_mean), rv = r.upload(in.running_var);
    auto out = r.alloc<float>(s.n());
    for (const Epilogue epilogue : {Epilogue::kNone, Epilogue::kRelu}) {
      out.poison();
      r.launch([&] {
        gpu::batchnorm_forward_eval(out.data(), x.data(), gamma.data(), beta.data(), rm.data(),
                                    rv.data(), s.N, s.C, s.HW, kBnEps, epilogue, r.stream());
      });
      r.check(fmt::format("out ({})", epilogue_name(epilogue)), r.download(out),
              epilogue == Epilogue::kRelu ? ref_relu : ref, tol::kGpuVsCpu);
    }
  };
  return c;
}

// The backward alone: both sides start from the CPU forward's saved statistics.
KernelCase bn_backward_case(const BnShape& s) {
  KernelCase c =
      make_case("batchnorm_backward", "batchnorm", s.tag(), s.str(),
                "cpu::batchnorm_backward (fused ReLU: after cpu::relu_backward)", s.size, s.models);
  c.launcher += " (plain, fused ReLU; without din)";
  c.body = [s](CaseRun& r) {
    const BnInputs in(s, seed_of("bn backward " + s.tag()));
    const auto x = r.upload(in.x), gamma = r.upload(in.gamma), dout = r.upload(in.dout);
    auto din = r.alloc<float>(s.n()), dgamma = r.alloc<float>(s.c()), dbeta = r.alloc<float>(s.c());
    for (const bool fused_relu : {false, true}) {
      const BnTrainRef fwd = bn_train_ref(s, in, fused_relu ? Epilogue::kRelu : Epilogue::kNone);
      std::vector<float> dy = in.dout;
      if (fused_relu) cpu::relu_backward(dy.data(), dy.data(), fwd.out.data(), s.n());
      std::vector<float> din_ref(s.n()), dgamma_ref(s.c()), dbeta_ref(s.c());
      cpu::batchnorm_backward(din_ref.data(), dgamma_ref.data(), dbeta_ref.data(), dy.data(),
                              in.x.data(), fwd.mean.data(), fwd.invstd.data(), in.gamma.data(), s.N,
                              s.C, s.HW);
      const auto relu_out = r.upload(fwd.out), mean = r.upload(fwd.mean),
                 invstd = r.upload(fwd.invstd);
      const std::string v = fused_relu ? " (fused ReLU)" : "";
      for (const bool want_din : {true, false}) {
        din.poison();
        dgamma.poison();
        dbeta.poison();
        r.launch([&] {
          gpu::batchnorm_backward(want_din ? din.data() : nullptr, dgamma.data(), dbeta.data(),
                                  dout.data(), fused_relu ? relu_out.data() : nullptr, x.data(),
                                  mean.data(), invstd.data(), gamma.data(), s.N, s.C, s.HW,
                                  r.stream());
        });
        const std::string w = want_din ? v : v + " without din";
        if (want_din) r.check("din" + w, r.download(din), din_ref, tol::kGpuVsCpu);
        r.check("dgamma" + w, r.download(dgamma), dgamma_ref, tol::kGpuVsCpu);
        r.check("dbeta" + w, r.download(dbeta), dbeta_ref, tol::kGpuVsCpu);
      }
    }
  };
  return c;
}

// =============================================================================================
// Bias, ReLU, dropout
// =============================================================================================

struct RowsShape {
  int N, C;
  CaseSize size = kSmall;
  unsigned models = 0;
  std::size_t n() const { return count(N, C); }
  std::string tag() const { return fmt::format("N{} C{}", N, C); }
  std::string str() const { return fmt::format("N={} C={}", N, C); }
};

// fc1's 128 outputs (at batch 64: both models), fc2's 1, and 33: a partial 32-column block; 1000
// rows (the test batch): many row groups of the reduction.
std::vector<RowsShape> bias_shapes() {
  std::vector<RowsShape> shapes;
  for (const int C : {128, 1, 33}) {
    for (const int N : {1, 3, 64, 67, 1000}) {
      const bool model = C == 128 && N == 64;
      shapes.push_back({N, C, model ? kModel : kSmall, model ? kBothModels : 0u});
    }
  }
  return shapes;
}

KernelCase bias_forward_case(const RowsShape& s) {
  KernelCase c = make_case("bias_forward", "elementwise", s.tag(), s.str(),
                           "x + bias (kRelu: then cpu::relu_forward)", s.size, s.models);
  c.launcher += " (kNone, kRelu)";
  c.body = [s](CaseRun& r) {
    const std::uint64_t seed = seed_of("bias forward " + s.tag());
    const std::vector<float> x = random_vector<float>(s.n(), seed);
    const std::vector<float> bias = random_vector<float>(count(s.C), seed + 1);
    std::vector<float> ref(s.n());
    for (std::size_t i = 0; i < s.n(); ++i) ref[i] = x[i] + bias[i % count(s.C)];
    const auto d_bias = r.upload(bias);
    auto d_x = r.alloc<float>(s.n());
    for (const Epilogue epilogue : {Epilogue::kNone, Epilogue::kRelu}) {
      d_x.put(x);  // in place
      r.launch(
          [&] { gpu::bias_forward(d_x.data(), d_bias.data(), s.N, s.C, epilogue, r.stream()); });
      r.check(fmt::format("x ({})", epilogue_name(epilogue)), r.download(d_x),
              epilogue == Epilogue::kRelu ? relu_of(ref) : ref, tol::kGpuVsCpu);
    }
  };
  return c;
}

KernelCase bias_backward_case(const RowsShape& s) {
  KernelCase c = make_case("bias_backward", "elementwise", s.tag(), s.str(),
                           "cpu::linear_backward's dbias (a one-input layer)", s.size, s.models);
  c.body = [s](CaseRun& r) {
    const std::vector<float> dout =
        random_vector<float>(s.n(), seed_of("bias backward " + s.tag()));
    const std::vector<float> in1(count(s.N), 1.0f), w1(count(s.C), 1.0f);
    std::vector<float> dw_ref(count(s.C)), dbias_ref(count(s.C));
    cpu::linear_backward<float>(nullptr, dw_ref.data(), dbias_ref.data(), dout.data(), in1.data(),
                                w1.data(), s.N, 1, s.C);
    const auto d_dout = r.upload(dout);
    auto d_dbias = r.alloc<float>(count(s.C));
    r.launch([&] { gpu::bias_backward(d_dbias.data(), d_dout.data(), s.N, s.C, r.stream()); });
    r.check("dbias", r.download(d_dbias), dbias_ref, tol::kGpuVsCpu);
  };
  return c;
}

// fc1's output (128 per image) at batches 1, 3, 64, 67. Not run by the models' steps (the head
// does fc1's ReLU backward), still a launcher of the library.
KernelCase relu_backward_case(int N) {
  const RowsShape s{N, 128};
  KernelCase c =
      make_case("relu_backward", "elementwise", s.tag(), s.str(), "cpu::relu_backward", kSmall, 0);
  c.launcher += " (out of place, in place)";
  c.body = [s](CaseRun& r) {
    const std::uint64_t seed = seed_of("relu backward " + s.tag());
    const std::vector<float> out = relu_of(random_vector<float>(s.n(), seed));  // about half 0
    const std::vector<float> dout = random_vector<float>(s.n(), seed + 1);
    std::vector<float> ref(s.n());
    cpu::relu_backward(ref.data(), dout.data(), out.data(), s.n());
    const auto d_out = r.upload(out);
    auto d_dout = r.upload(dout);
    auto d_din = r.alloc<float>(s.n());
    r.launch(
        [&] { gpu::relu_backward(d_din.data(), d_dout.data(), d_out.data(), s.n(), r.stream()); });
    r.check("din", r.download(d_din), ref, tol::kGpuVsCpu);
    r.launch(
        [&] { gpu::relu_backward(d_dout.data(), d_dout.data(), d_out.data(), s.n(), r.stream()); });
    r.check("din in place", r.download(d_dout), ref, tol::kGpuVsCpu);
  };
  return c;
}

constexpr std::uint64_t kDropoutSeed = 20240607;

// Model B's fc1 output at batch 64 (and 3, 67), and sizes that end inside a 4-word Philox block.
struct DropoutShape {
  std::size_t n;
  CaseSize size = kSmall;
  unsigned models = 0;
  // Where the n elements start in the tensor whose masks they draw (a data-parallel rank's share
  // of the global batch: its first image times the 128 features; not a multiple of 4 as well).
  std::uint64_t first = 0;
  std::string tag() const {
    return first == 0 ? fmt::format("n{}", n) : fmt::format("n{}_first{}", n, first);
  }
  std::string str() const {
    return first == 0 ? fmt::format("n={} (p 0.5 and 0.3)", n)
                      : fmt::format("n={} from element {} (p 0.5 and 0.3)", n, first);
  }
};
const DropoutShape kDropoutShapes[] = {
    {64 * 128, kModel, kModelB},
    {3 * 128},
    {67 * 128},
    {1},
    {3},
    {5},
    {1001},
    // Rank 2 of 3 in a global batch of 64 (images 42..63), and unaligned offsets.
    {22 * 128, kSmall, 0, 42 * 128},
    {1001, kSmall, 0, 7},
    {3, kSmall, 0, 5},
    {1, kSmall, 0, 3}};

KernelCase dropout_forward_case(const DropoutShape& s) {
  KernelCase c = make_case("dropout_forward", "elementwise", s.tag(), s.str(),
                           "cpu::dropout_forward (the same Philox words: the mask bit for bit)",
                           s.size, s.models);
  c.launcher += " (steps 7 and 8 from device memory)";
  c.body = [s](CaseRun& r) {
    const std::uint64_t base = rng_stream(RngStream::kDropout, 0);
    const std::vector<float> in = random_vector<float>(s.n, seed_of("dropout forward " + s.tag()));
    const auto d_in = r.upload(in);
    auto d_out = r.alloc<float>(s.n);
    auto d_mask = r.alloc<std::uint8_t>(s.n);
    auto d_step = r.alloc<std::int64_t>(1);
    for (const float p : {0.5f, 0.3f}) {
      std::vector<std::uint8_t> prev_mask;
      for (const std::int64_t step : {std::int64_t{7}, std::int64_t{8}}) {
        const std::string v = fmt::format(" (p {}, step {})", p, step);
        std::vector<float> out_ref(s.n);
        std::vector<std::uint8_t> mask_ref(s.n);
        cpu::dropout_forward(out_ref.data(), mask_ref.data(), in.data(), s.n, p, kDropoutSeed,
                             base + static_cast<std::uint64_t>(step), s.first);
        d_step.put({step});
        d_out.poison();
        d_mask.poison();
        r.launch([&] {
          gpu::dropout_forward(d_out.data(), d_mask.data(), d_in.data(), s.n, p, kDropoutSeed, base,
                               d_step.data(), r.stream(), s.first);
        });
        const std::vector<std::uint8_t> mask = r.download(d_mask);
        r.check("mask" + v, mask, mask_ref, tol::kExact);
        r.check("out" + v, r.download(d_out), out_ref, tol::kGpuVsCpu);
        r.check("step read, never written" + v, r.download(d_step), std::vector<std::int64_t>{step},
                tol::kExact);
        // The step read from device memory changes the draw (a replayed graph gets a new mask).
        if (!prev_mask.empty() && s.n >= 128)
          r.require("a fresh mask at step 8" + v, mask != prev_mask);
        prev_mask = mask;
      }
    }
  };
  return c;
}

KernelCase dropout_backward_case(const DropoutShape& s) {
  KernelCase c = make_case("dropout_backward", "elementwise", s.tag(), s.str(),
                           "cpu::dropout_backward (the CPU's mask)", kSmall, 0);
  c.body = [s](CaseRun& r) {
    const std::uint64_t seed = seed_of("dropout backward " + s.tag());
    const std::vector<float> in = random_vector<float>(s.n, seed);
    const std::vector<float> dout = random_vector<float>(s.n, seed + 1);
    const auto d_dout = r.upload(dout);
    auto d_din = r.alloc<float>(s.n);
    for (const float p : {0.5f, 0.3f}) {
      std::vector<float> out(s.n), din_ref(s.n);
      std::vector<std::uint8_t> mask(s.n);
      cpu::dropout_forward(out.data(), mask.data(), in.data(), s.n, p, kDropoutSeed,
                           rng_stream(RngStream::kDropout, 7));
      cpu::dropout_backward(din_ref.data(), dout.data(), mask.data(), s.n, p);
      const auto d_mask = r.upload(mask);
      d_din.poison();
      r.launch([&] {
        gpu::dropout_backward(d_din.data(), d_dout.data(), d_mask.data(), s.n, p, r.stream());
      });
      r.check(fmt::format("din (p {})", p), r.download(d_din), din_ref, tol::kGpuVsCpu);
    }
  };
  return c;
}

// =============================================================================================
// BCE with logits, the fused training head
// =============================================================================================

constexpr double kLossSumBefore = 2.5;  // the running sum the kernels add to

struct BceOut {
  std::vector<float> dlogits;
  float batch_loss;
  double loss_sum;
};

BceOut run_bce(CaseRun& r, const std::vector<float>& logits, const std::vector<float>& targets,
               float pos_weight, bool want_grad, bool timed) {
  const std::size_t n = logits.size();
  const auto d_logits = r.upload(logits), d_targets = r.upload(targets);
  auto d_dlogits = r.alloc<float>(n);
  auto d_batch_loss = r.alloc<float>(1);
  auto d_loss_sum = r.upload(std::vector<double>{kLossSumBefore});
  const auto launch = [&] {
    gpu::bce_with_logits(want_grad ? d_dlogits.data() : nullptr, d_batch_loss.data(),
                         d_loss_sum.data(), d_logits.data(), d_targets.data(), static_cast<int>(n),
                         pos_weight, r.stream());
  };
  if (timed) {
    r.launch(launch);
  } else {
    launch();
  }
  return {want_grad ? r.download(d_dlogits) : std::vector<float>{}, r.download(d_batch_loss)[0],
          r.download(d_loss_sum)[0]};
}

// One block of 1024 threads: fewer logits, exactly as many, more (the loop), many more; 64 the
// training batch, 1000 the test batch. Logits in [-8, 8], every 7th at +-100 (the stable forms).
KernelCase bce_case(int N) {
  KernelCase c =
      make_case("bce_with_logits", "loss", fmt::format("N{}", N),
                fmt::format("N={} (pos_weight 1 and 3.5)", N), "cpu::bce_with_logits", kSmall, 0);
  c.launcher += " (with and without the gradient)";
  c.body = [N](CaseRun& r) {
    const std::uint64_t seed = seed_of(fmt::format("bce N{}", N));
    std::vector<float> logits = random_vector<float>(count(N), seed, -8.0, 8.0);
    for (std::size_t i = 0; i < logits.size(); i += 7) logits[i] = (i / 7) % 2 ? 100.f : -100.f;
    const std::vector<float> targets = binary_targets(count(N), seed + 1);
    for (const float pos_weight : {1.0f, 3.5f}) {
      std::vector<float> dlogits_ref(count(N));
      const double mean =
          cpu::bce_with_logits(dlogits_ref.data(), logits.data(), targets.data(), N, pos_weight);
      const std::vector<float> batch_ref{static_cast<float>(mean)};
      const std::vector<double> sum_ref{kLossSumBefore + mean * N};
      const std::string v = fmt::format(" (pos_weight {})", pos_weight);
      const BceOut g = run_bce(r, logits, targets, pos_weight, true, true);
      r.check("dlogits" + v, g.dlogits, dlogits_ref, tol::kGpuVsCpu);
      r.check("batch_loss" + v, std::vector<float>{g.batch_loss}, batch_ref, tol::kGpuVsCpu);
      r.check("loss_sum" + v, std::vector<double>{g.loss_sum}, sum_ref, tol::kGpuVsCpu);
      const BceOut e = run_bce(r, logits, targets, pos_weight, false, true);
      r.check("batch_loss without the gradient" + v, std::vector<float>{e.batch_loss}, batch_ref,
              tol::kGpuVsCpu);
    }
  };
  return c;
}

struct HeadShape {
  int N, K;
  bool dropout;
  float pos_weight;
  CaseSize size = kSmall;
  unsigned models = 0;
  static constexpr float kDropoutP = 0.5f;
  std::size_t n() const { return count(N, K); }
  std::string tag() const {
    return fmt::format("N{} K{}{} pw{}", N, K, dropout ? " dropout" : "", pos_weight);
  }
  std::string str() const {
    return fmt::format("N={} K={}{}, pos_weight {}", N, K, dropout ? ", dropout 0.5" : "",
                       pos_weight);
  }
};

// Model A's head (K = 128, no dropout) and B's (with dropout) at batch 64; sizes that are not
// multiples of the kernel's passes (128 logits, 128 weights and 1024 loss terms per pass), a single
// row, and a K below the 8 segments of a dot product.
const HeadShape kHeadShapes[] = {{64, 128, false, 1.0f, kModel, kModelA},
                                 {64, 128, true, 1.0f, kModel, kModelB},
                                 {37, 128, true, 1.0f},
                                 {1, 5, false, 3.5f},
                                 {300, 200, true, 3.5f},
                                 {1100, 3, true, 1.0f}};

KernelCase head_case(const HeadShape& s) {
  KernelCase c = make_case(
      "logit_head_train", "loss", s.tag(), s.str(),
      "cpu::linear_forward, bce_with_logits, linear_backward, dropout_backward, relu_backward; "
      "and gpu::bce_with_logits bit for bit",
      s.size, s.models);
  c.body = [s](CaseRun& r) {
    const std::uint64_t seed = seed_of("logit head " + s.tag());
    // fc1's ReLU output (about half zeros: no gradient through them) and fc2's input.
    const std::vector<float> relu_out = relu_of(random_vector<float>(s.n(), seed));
    const std::vector<float> weight = random_vector<float>(count(s.K), seed + 1, -0.1, 0.1);
    const std::vector<float> bias = random_vector<float>(1, seed + 2, -0.1, 0.1);
    const std::vector<float> targets = binary_targets(count(s.N), seed + 3, 0.3);
    std::vector<float> x = relu_out;
    std::vector<std::uint8_t> mask(s.dropout ? s.n() : 1, 1);
    if (s.dropout) {
      const std::vector<float> draw = random_vector<float>(s.n(), seed + 4, 0.0, 1.0);
      for (std::size_t i = 0; i < s.n(); ++i) mask[i] = draw[i] >= s.kDropoutP ? 1 : 0;
      cpu::dropout_backward(x.data(), relu_out.data(), mask.data(), s.n(), s.kDropoutP);
    }
    // What the kernel replaces, op by op on the CPU.
    std::vector<float> logits(count(s.N)), dlogits(count(s.N)), dweight(count(s.K)), dx(s.n()),
        dhidden(s.n());
    float dbias = 0.0f;
    cpu::linear_forward(logits.data(), x.data(), weight.data(), bias.data(), s.N, s.K, 1);
    const double mean =
        cpu::bce_with_logits(dlogits.data(), logits.data(), targets.data(), s.N, s.pos_weight);
    cpu::linear_backward(dx.data(), dweight.data(), &dbias, dlogits.data(), x.data(), weight.data(),
                         s.N, s.K, 1);
    if (s.dropout) cpu::dropout_backward(dx.data(), dx.data(), mask.data(), s.n(), s.kDropoutP);
    cpu::relu_backward(dhidden.data(), dx.data(), relu_out.data(), s.n());

    const auto d_x = r.upload(x), d_relu = r.upload(relu_out), d_w = r.upload(weight),
               d_b = r.upload(bias), d_t = r.upload(targets);
    const auto d_mask = r.upload(mask);
    auto d_logits = r.alloc<float>(count(s.N)), d_dlogits = r.alloc<float>(count(s.N));
    auto d_batch_loss = r.alloc<float>(1), d_dbias = r.alloc<float>(1);
    auto d_dweight = r.alloc<float>(count(s.K)), d_dhidden = r.alloc<float>(s.n());
    auto d_loss_sum = r.upload(std::vector<double>{kLossSumBefore});
    r.launch([&] {
      gpu::logit_head_train({d_logits.data(), d_dlogits.data(), d_batch_loss.data(),
                             d_loss_sum.data(), d_dweight.data(), d_dbias.data(), d_dhidden.data()},
                            {d_x.data(), d_relu.data(), s.dropout ? d_mask.data() : nullptr,
                             s.kDropoutP, d_w.data(), d_b.data(), d_t.data()},
                            s.N, s.K, s.pos_weight, r.stream());
    });
    const std::vector<float> got_logits = r.download(d_logits), got_dlogits = r.download(d_dlogits);
    const float got_loss = r.download(d_batch_loss)[0];
    const double got_sum = r.download(d_loss_sum)[0];
    r.check("logits", got_logits, logits, tol::kGpuVsCpu);
    r.check("dlogits", got_dlogits, dlogits, tol::kGpuVsCpu);
    r.check("batch_loss", std::vector<float>{got_loss},
            std::vector<float>{static_cast<float>(mean)}, tol::kGpuVsCpu);
    r.check("loss_sum", std::vector<double>{got_sum},
            std::vector<double>{kLossSumBefore + mean * s.N}, tol::kGpuVsCpu);
    r.check("dweight", r.download(d_dweight), dweight, tol::kGpuVsCpu);
    r.check("dbias", r.download(d_dbias), std::vector<float>{dbias}, tol::kGpuVsCpu);
    r.check("dhidden", r.download(d_dhidden), dhidden, tol::kGpuVsCpu);
    // The loss and its gradient are bce_with_logits's, bit for bit, from the same logits.
    const BceOut bce = run_bce(r, got_logits, targets, s.pos_weight, true, false);
    r.check("dlogits vs gpu::bce_with_logits", got_dlogits, bce.dlogits, tol::kExact);
    r.check("batch_loss vs gpu::bce_with_logits", std::vector<float>{got_loss},
            std::vector<float>{bce.batch_loss}, tol::kExact);
    r.check("loss_sum vs gpu::bce_with_logits", std::vector<double>{got_sum},
            std::vector<double>{bce.loss_sum}, tol::kExact);
  };
  return c;
}

// The multi-class head (softmax_head_train): fc2 of C outputs, softmax cross-entropy with
// PyTorch's class weights and label smoothing, the backward to fc1's ReLU (and dropout).
struct SoftmaxHeadShape {
  int N, K, C;
  bool dropout, weighted;
  float label_smoothing;
  // Certain rows: x = 1, fc2's weights +1000 for class 0 and -1000 for the others, so every
  // logit is +-1000 (exp overflows unless the kernel subtracts the row's maximum) and every third
  // row's target is class 1 (certain and wrong: loss 2000, gradient -1/N and +1/N).
  bool certain = false;
  static constexpr float kDropoutP = 0.5f;
  std::size_t n() const { return count(N, K); }
  std::string tag() const {
    return fmt::format("N{} K{} C{}{}{}{} ls{}", N, K, C, dropout ? " dropout" : "",
                       weighted ? " weighted" : "", certain ? " certain" : "", label_smoothing);
  }
  std::string str() const {
    return fmt::format("N={} K={} C={}{}{}{}, label_smoothing {}", N, K, C,
                       dropout ? ", dropout 0.5" : "", weighted ? ", class weights" : "",
                       certain ? ", logits +-1000" : "", label_smoothing);
  }
};

// Model A's and B's heads with ten classes at batch 64; three classes with weights, smoothing and
// a partial pass; a single row; smoothing 1 (no one-hot term at all); C = 256 (the most, IDX
// labels being bytes) at a K below the dot product's segments; more rows than the loss's pass of
// threads; a K beyond one pass of weight gradients; logits of +-1000.
const SoftmaxHeadShape kSoftmaxHeadShapes[] = {
    {64, 128, 10, false, false, 0.0f},  {64, 128, 10, true, true, 0.1f},
    {37, 128, 3, true, true, 0.2f},     {1, 5, 2, false, false, 0.0f},
    {1, 5, 3, false, true, 1.0f},       {6, 3, 256, false, true, 0.05f},
    {1100, 7, 4, true, false, 0.0f},    {300, 200, 7, true, false, 0.2f},
    {4, 1, 3, false, false, 0.0f, true}};

KernelCase softmax_head_case(const SoftmaxHeadShape& s) {
  KernelCase c = make_case("softmax_head_train", "loss", s.tag(), s.str(),
                           "cpu::linear_forward, softmax_cross_entropy, linear_backward, "
                           "dropout_backward, relu_backward",
                           kSmall, 0);
  c.body = [s](CaseRun& r) {
    const std::uint64_t seed = seed_of("softmax head " + s.tag());
    const auto classes = count(s.C), logits_n = count(s.N, s.C);
    std::vector<float> relu_out = relu_of(random_vector<float>(s.n(), seed));
    // fc2 at 4x PyTorch's initial scale, so that some rows are confident.
    const double bound = 4.0 / std::sqrt(static_cast<double>(s.K));
    std::vector<float> weight = random_vector<float>(count(s.C, s.K), seed + 1, -bound, bound);
    std::vector<float> bias = random_vector<float>(classes, seed + 2, -0.1, 0.1);
    std::vector<float> targets = random_vector<float>(count(s.N), seed + 3, 0.0, 1.0);
    for (float& y : targets) {
      y = std::min(static_cast<float>(s.C - 1), std::floor(y * static_cast<float>(s.C)));
    }
    if (s.certain) {
      std::fill(relu_out.begin(), relu_out.end(), 1.0f);
      for (std::size_t i = 0; i < weight.size(); ++i)
        weight[i] = i < count(s.K) ? 1000.0f : -1000.0f;
      std::fill(bias.begin(), bias.end(), 0.0f);
      for (std::size_t i = 0; i < targets.size(); ++i) targets[i] = i % 3 == 2 ? 1.0f : 0.0f;
    }
    const std::vector<float> class_weight =
        s.weighted ? random_vector<float>(classes, seed + 4, 0.25, 3.0) : std::vector<float>(1);
    std::vector<float> x = relu_out;
    std::vector<std::uint8_t> mask(s.dropout ? s.n() : 1, 1);
    if (s.dropout) {
      const std::vector<float> draw = random_vector<float>(s.n(), seed + 5, 0.0, 1.0);
      for (std::size_t i = 0; i < s.n(); ++i) mask[i] = draw[i] >= s.kDropoutP ? 1 : 0;
      cpu::dropout_backward(x.data(), relu_out.data(), mask.data(), s.n(), s.kDropoutP);
    }
    // What the kernel replaces, op by op on the CPU.
    std::vector<float> logits(logits_n), dlogits(logits_n), dweight(count(s.C, s.K)),
        dbias(classes), dx(s.n()), dhidden(s.n());
    cpu::linear_forward(logits.data(), x.data(), weight.data(), bias.data(), s.N, s.K, s.C);
    const double mean =
        cpu::softmax_cross_entropy(dlogits.data(), logits.data(), targets.data(), s.N, s.C,
                                   s.weighted ? class_weight.data() : nullptr, s.label_smoothing);
    cpu::linear_backward(dx.data(), dweight.data(), dbias.data(), dlogits.data(), x.data(),
                         weight.data(), s.N, s.K, s.C);
    if (s.dropout) cpu::dropout_backward(dx.data(), dx.data(), mask.data(), s.n(), s.kDropoutP);
    cpu::relu_backward(dhidden.data(), dx.data(), relu_out.data(), s.n());

    const auto d_x = r.upload(x), d_relu = r.upload(relu_out), d_w = r.upload(weight),
               d_b = r.upload(bias), d_t = r.upload(targets), d_cw = r.upload(class_weight);
    const auto d_mask = r.upload(mask);
    auto d_logits = r.alloc<float>(logits_n), d_dlogits = r.alloc<float>(logits_n);
    auto d_batch_loss = r.alloc<float>(1), d_dbias = r.alloc<float>(classes);
    auto d_dweight = r.alloc<float>(count(s.C, s.K)), d_dhidden = r.alloc<float>(s.n());
    auto d_loss_sum = r.upload(std::vector<double>{kLossSumBefore});
    r.launch([&] {
      gpu::softmax_head_train(
          {d_logits.data(), d_dlogits.data(), d_batch_loss.data(), d_loss_sum.data(),
           d_dweight.data(), d_dbias.data(), d_dhidden.data()},
          {d_x.data(), d_relu.data(), s.dropout ? d_mask.data() : nullptr, s.kDropoutP, d_w.data(),
           d_b.data(), d_t.data(), s.weighted ? d_cw.data() : nullptr, s.label_smoothing},
          s.N, s.K, s.C, r.stream());
    });
    const std::vector<float> got_logits = r.download(d_logits), got_dlogits = r.download(d_dlogits),
                             got_loss = r.download(d_batch_loss);
    r.check("logits", got_logits, logits, tol::kGpuVsCpu);
    r.check("dlogits", got_dlogits, dlogits, tol::kGpuVsCpu);
    r.check("batch_loss", got_loss, std::vector<float>{static_cast<float>(mean)}, tol::kGpuVsCpu);
    r.check("loss_sum", r.download(d_loss_sum), std::vector<double>{kLossSumBefore + mean * s.N},
            tol::kGpuVsCpu);
    r.check("dweight", r.download(d_dweight), dweight, tol::kGpuVsCpu);
    r.check("dbias", r.download(d_dbias), dbias, tol::kGpuVsCpu);
    r.check("dhidden", r.download(d_dhidden), dhidden, tol::kGpuVsCpu);
    // The loss and dlogits are the CPU's softmax cross-entropy of the kernel's own logits (the
    // fused loss is right whatever fc2's rounding, not only close to the chain's end result).
    std::vector<float> own_dlogits(logits_n);
    const double own_mean =
        cpu::softmax_cross_entropy(own_dlogits.data(), got_logits.data(), targets.data(), s.N, s.C,
                                   s.weighted ? class_weight.data() : nullptr, s.label_smoothing);
    r.check("dlogits vs softmax_cross_entropy of its logits", got_dlogits, own_dlogits,
            tol::kGpuVsCpu);
    r.check("batch_loss vs softmax_cross_entropy of its logits", got_loss,
            std::vector<float>{static_cast<float>(own_mean)}, tol::kGpuVsCpu);
  };
  return c;
}

// =============================================================================================
// Optimisers
// =============================================================================================

// n parameters at `offset` floats into their buffers (offset 1: not 16-byte aligned, the scalar
// path), `steps` updates: the models' trainable parameters (A: float4 body and a tail, 5 steps,
// enough for the bias corrections to move and cheap enough for --conv auto's check; on the
// emulator even that takes tens of seconds, so it is the GPU runners'), 5003 = 4 x 1250 + 3 (five
// blocks of float4 work and a scalar tail), tiny buffers (the tail only).
struct OptimShape {
  std::size_t n, offset;
  CaseSize size = kSmall;
  unsigned models = 0;
  int steps = 20;
  std::string tag() const { return fmt::format("n{}{}", n, offset ? " offset1" : ""); }
  std::string str() const {
    return fmt::format("n={}{}, {} steps", n, offset ? " at offset 1" : "", steps);
  }
};

std::vector<OptimShape> optim_shapes() {
  return {{ParamTable::for_arch(Arch::kA).num_trainable(), 0, kLarge, kModelA, 5},
          {ParamTable::for_arch(Arch::kB).num_trainable(), 0, kModel, kModelB},
          {5003, 0},
          {5003, 1},
          {1, 0},
          {7, 0},
          {1001, 1}};
}

// The device side of an optimiser case: buffers of n + offset floats, pointers at the offset.
struct OptimBuffers {
  DeviceArray<float> p, g, m, v;
  DeviceArray<std::int64_t> step;
  std::size_t offset;
  OptimBuffers(CaseRun& r, const OptimShape& s, bool with_m, bool with_v)
      : p(r.alloc<float>(s.n + s.offset)),
        g(r.alloc<float>(s.n + s.offset)),
        m(r.alloc<float>(with_m ? s.n + s.offset : 0)),
        v(r.alloc<float>(with_v ? s.n + s.offset : 0)),
        step(r.upload(std::vector<std::int64_t>{0})),
        offset(s.offset) {}
  float* at(const DeviceArray<float>& a) const {
    return a.size() > 0 ? a.data() + offset : nullptr;
  }
};

void put(CaseRun& r, float* dst, const std::vector<float>& host) {
  r.device().upload(dst, host.data(), host.size() * sizeof(float));
}

// Step t's gradients: a + c_t * b for two random vectors drawn once (drawing n values per step
// would cost more than the update), with c_t in [-1, 1] different at every step.
class Grads {
 public:
  Grads(std::size_t n, std::uint64_t seed)
      : a_(random_vector<float>(n, seed)), b_(random_vector<float>(n, seed + 1)) {}
  std::vector<float> at(int t) const {
    const float c = static_cast<float>(std::sin(1.7 * t));
    std::vector<float> g(a_.size());
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = a_[i] + c * b_[i];
    return g;
  }

 private:
  std::vector<float> a_, b_;
};

// A learning-rate schedule's lr for step t of a case with a device lr (AdamParams::device_lr):
// a different value at every step, none of them the host lr the launch is given.
double scheduled_case_lr(double host_lr, int t) {
  return host_lr * (0.25 + 0.5 / t);
}

// The device lr of a case: written before each step's launch, read by the kernel.
void put_lr(CaseRun& r, const DeviceArray<double>& lr, double value) {
  r.device().upload(lr.data(), &value, sizeof value);
}

// PyTorch's Adam defaults (betas (0.9, 0.999), eps 1e-8) with a larger step, so a few steps move.
KernelCase adam_case(const OptimShape& s) {
  KernelCase c = make_case("adam_update", "optimizer", s.tag(), s.str(),
                           "octa::adam_update (engine/optim)", s.size, s.models);
  c.launcher += " (weight_decay 0 and 0.01; the lr a device scalar changed every step)";
  c.body = [s](CaseRun& r) {
    const std::uint64_t seed = seed_of("adam " + s.tag());
    const std::vector<float> p0 = random_vector<float>(s.n, seed, -0.5, 0.5);
    const Grads grads(s.n, seed + 1);
    const std::pair<double, bool> variants[] = {{0.0, false}, {0.01, false}, {0.0, true}};
    for (const auto& [weight_decay, device_lr] : variants) {
      OptimizerConfig cfg;
      cfg.lr = 3e-3;
      cfg.weight_decay = weight_decay;
      const DeviceArray<double> lr = r.upload(std::vector<double>{cfg.lr});
      const gpu::AdamParams hp{cfg.lr,  cfg.beta1,        cfg.beta2,
                               cfg.eps, cfg.weight_decay, device_lr ? lr.data() : nullptr};
      OptimBuffers d(r, s, true, true);
      std::vector<float> p = p0, m(s.n, 0.0f), v(s.n, 0.0f);
      put(r, d.at(d.p), p);
      put(r, d.at(d.m), m);
      put(r, d.at(d.v), v);
      for (int t = 1; t <= s.steps; ++t) {
        const std::vector<float> g = grads.at(t);
        put(r, d.at(d.g), g);
        OptimizerConfig step_cfg = cfg;
        if (device_lr) {
          step_cfg.lr = scheduled_case_lr(cfg.lr, t);
          put_lr(r, lr, step_cfg.lr);
        }
        r.launch([&] {
          gpu::adam_update(d.at(d.p), d.at(d.g), d.at(d.m), d.at(d.v), s.n, hp, d.step.data(),
                           r.stream());
        });
        adam_update(p.data(), g.data(), m.data(), v.data(), s.n, step_cfg, t);
      }
      const std::string w =
          fmt::format(" (weight_decay {}{})", weight_decay, device_lr ? ", device lr" : "");
      r.check("params" + w, r.download(d.at(d.p), s.n), p, tol::kGpuVsCpu);
      r.check("exp_avg" + w, r.download(d.at(d.m), s.n), m, tol::kGpuVsCpu);
      r.check("exp_avg_sq" + w, r.download(d.at(d.v), s.n), v, tol::kGpuVsCpu);
      r.check("step counter" + w, r.download(d.step), std::vector<std::int64_t>{s.steps},
              tol::kExact);
    }
  };
  return c;
}

struct SgdVariant {
  double momentum, dampening, weight_decay;
  bool nesterov;
  bool device_lr = false;  // the lr a device scalar, changed before every step
  std::string str() const {
    return fmt::format("momentum {} dampening {} weight_decay {}{}{}", momentum, dampening,
                       weight_decay, nesterov ? " nesterov" : "", device_lr ? " device lr" : "");
  }
};
// Plain, momentum, momentum with dampening and weight decay, Nesterov, momentum with a device lr.
constexpr SgdVariant kSgdVariants[] = {{0.0, 0.0, 0.0, false},
                                       {0.9, 0.0, 0.0, false},
                                       {0.9, 0.1, 1e-3, false},
                                       {0.9, 0.0, 0.0, true},
                                       {0.9, 0.0, 0.0, false, true}};

KernelCase sgd_case(const OptimShape& s) {
  KernelCase c = make_case("sgd_update", "optimizer", s.tag(), s.str(),
                           "octa::sgd_update (engine/optim)", s.size, s.models);
  c.launcher += " (plain, momentum, dampening + weight decay, Nesterov, a device lr)";
  c.body = [s](CaseRun& r) {
    const std::uint64_t seed = seed_of("sgd " + s.tag());
    const std::vector<float> p0 = random_vector<float>(s.n, seed, -0.5, 0.5);
    const Grads grads(s.n, seed + 1);
    for (const SgdVariant& sv : kSgdVariants) {
      const bool device_lr = sv.device_lr;
      OptimizerConfig cfg;
      cfg.kind = OptimizerKind::kSgd;
      cfg.lr = 0.05;
      cfg.momentum = sv.momentum;
      cfg.dampening = sv.dampening;
      cfg.weight_decay = sv.weight_decay;
      cfg.nesterov = sv.nesterov;
      const DeviceArray<double> lr = r.upload(std::vector<double>{cfg.lr});
      const gpu::SgdParams hp{cfg.lr,           cfg.momentum, cfg.dampening,
                              cfg.weight_decay, cfg.nesterov, device_lr ? lr.data() : nullptr};
      const bool with_momentum = sv.momentum != 0.0;
      // The momentum buffer starts poisoned: the first update must write it, never read it.
      OptimBuffers d(r, s, with_momentum, false);
      std::vector<float> p = p0, buf(s.n, std::numeric_limits<float>::quiet_NaN());
      put(r, d.at(d.p), p);
      for (int t = 1; t <= s.steps; ++t) {
        const std::vector<float> g = grads.at(t);
        put(r, d.at(d.g), g);
        OptimizerConfig step_cfg = cfg;
        if (device_lr) {
          step_cfg.lr = scheduled_case_lr(cfg.lr, t);
          put_lr(r, lr, step_cfg.lr);
        }
        r.launch([&] {
          gpu::sgd_update(d.at(d.p), d.at(d.g), d.at(d.m), s.n, hp, d.step.data(), r.stream());
        });
        sgd_update(p.data(), g.data(), buf.data(), s.n, step_cfg, t);
      }
      const std::string v = " (" + sv.str() + ")";
      r.check("params" + v, r.download(d.at(d.p), s.n), p, tol::kGpuVsCpu);
      if (with_momentum)
        r.check("momentum_buffer" + v, r.download(d.at(d.m), s.n), buf, tol::kGpuVsCpu);
      r.check("step counter" + v, r.download(d.step), std::vector<std::int64_t>{s.steps},
              tol::kExact);
    }
  };
  return c;
}

}  // namespace

std::vector<KernelCase> layer_cases() {
  std::vector<KernelCase> cases;
  for (const PoolShape& s : pool_shapes()) cases.push_back(maxpool_forward_case(s));
  for (const PoolShape& s : pool_shapes()) cases.push_back(maxpool_backward_case(s));
  for (const GapShape& s : kGapShapes) cases.push_back(gap_forward_case(s));
  for (const GapShape& s : kGapShapes) cases.push_back(gap_backward_case(s));
  for (const BnShape& s : bn_shapes(false)) cases.push_back(bn_train_case(s));
  cases.push_back(bn_running_case({3, 5, 49}));
  cases.push_back(bn_running_case({3, 32, 784, kLarge}));
  for (const BnShape& s : bn_shapes(true)) cases.push_back(bn_eval_case(s));
  for (const BnShape& s : bn_shapes(false)) cases.push_back(bn_backward_case(s));
  for (const RowsShape& s : bias_shapes()) cases.push_back(bias_forward_case(s));
  for (const RowsShape& s : bias_shapes()) cases.push_back(bias_backward_case(s));
  for (const int N : {1, 3, 64, 67}) cases.push_back(relu_backward_case(N));
  for (const DropoutShape& s : kDropoutShapes) cases.push_back(dropout_forward_case(s));
  for (const DropoutShape& s : kDropoutShapes) {
    if (s.first == 0) cases.push_back(dropout_backward_case(s));  // backward reads only the mask
  }
  for (const int N : {1, 3, 64, 67, 1000, 1024, 1025, 5000}) cases.push_back(bce_case(N));
  for (const HeadShape& s : kHeadShapes) cases.push_back(head_case(s));
  for (const SoftmaxHeadShape& s : kSoftmaxHeadShapes) cases.push_back(softmax_head_case(s));
  for (const OptimShape& s : optim_shapes()) cases.push_back(adam_case(s));
  for (const OptimShape& s : optim_shapes()) cases.push_back(sgd_case(s));
  return cases;
}

}  // namespace octa::selfcheck
