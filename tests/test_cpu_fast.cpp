// tests/test_cpu_fast.cpp: the fast CPU backend (engine/cpu_fast/, engine/train/fast_cpu_backend.*)
// against the CPU reference, on seeded random inputs, as the GPU is checked: its per-image loops
// (pool-order im2col/col2im, the fused ReLU + max-pool and its backward) against the reference
// operations, the whole model's forward and backward, then training steps; and its promise of the
// same bits for any thread count. The thresholds are the GPU's (tests/support/compare.hpp): the
// fast backend differs from the reference only in the order its GEMMs and sums round.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <thread>
#include <tuple>
#include <vector>

#include "engine/core/philox.hpp"
#include "engine/cpu/blas.hpp"
#include "engine/cpu/ops.hpp"
#include "engine/cpu_fast/conv_kernels.hpp"
#include "engine/cpu_fast/fast_model.hpp"
#include "engine/data/loader.hpp"
#include "engine/model/cpu_model.hpp"
#include "engine/train/cpu_backend.hpp"
#include "engine/train/fast_cpu_backend.hpp"
#include "engine/train/trainer.hpp"
#include "tests/support/compare.hpp"
#include "tests/support/compare_states.hpp"
#include "tests/support/run_steps.hpp"
#include "tests/support/synthetic.hpp"

namespace cpu = octa::cpu;
namespace fast = octa::cpu_fast;
namespace tol = octa::test::tol;
using octa::Arch;

namespace {

std::size_t sz(int v) {
  return static_cast<std::size_t>(v);
}

std::vector<float> random_floats(std::size_t n, std::uint64_t seed, float scale = 1.0f) {
  std::vector<float> v(n);
  octa::PhiloxStream rng(seed, 77);
  for (auto& x : v) x = scale * (2.0f * rng.next_uniform01() - 1.0f);
  return v;
}

// Small integers in [-2, 2]: many exact ties inside pooling windows (zeros after the ReLU among
// them), where the first-maximum rule decides.
std::vector<float> tie_floats(std::size_t n, std::uint64_t seed) {
  std::vector<float> v(n);
  octa::PhiloxStream rng(seed, 78);
  for (auto& x : v) x = static_cast<float>(static_cast<int>(rng.next_below(5)) - 2);
  return v;
}

// (C, H, W) natural order -> pool order (conv_kernels.hpp), or back.
std::vector<float> reorder(const std::vector<float>& v, int C, int H, int W, bool to_pool) {
  std::vector<float> r(v.size());
  const int Q = (H / 2) * (W / 2);
  for (int c = 0; c < C; ++c) {
    for (int y = 0; y < H; ++y) {
      for (int x = 0; x < W; ++x) {
        const auto natural = sz(c * H * W + y * W + x);
        const auto pooled = sz(c * H * W + (y % 2 * 2 + x % 2) * Q + (y / 2) * (W / 2) + x / 2);
        if (to_pool) {
          r[pooled] = v[natural];
        } else {
          r[natural] = v[pooled];
        }
      }
    }
  }
  return r;
}

std::vector<float> to_pool_order(const std::vector<float>& v, int C, int H, int W) {
  return reorder(v, C, H, W, true);
}

std::vector<float> from_pool_order(const std::vector<float>& v, int C, int H, int W) {
  return reorder(v, C, H, W, false);
}

struct Shape {
  int Cin, Cout, H;
};
// The models' two blocks (the loops compiled for 28 and 14) and a size only the generic loop takes.
constexpr Shape kShapes[] = {{1, 32, 28}, {32, 64, 14}, {3, 5, 6}};

}  // namespace

TEST_CASE("Fast im2col + GEMM in pool order is the reference convolution", "[cpu][fast]") {
  for (const Shape s : kShapes) {
    INFO("Cin " << s.Cin << " Cout " << s.Cout << " H " << s.H);
    const int HW = s.H * s.H, K = s.Cin * 9;
    const auto x = random_floats(sz(s.Cin * HW), 1);
    const auto w = random_floats(sz(s.Cout * K), 2, 0.3f);
    const auto b = random_floats(sz(s.Cout), 3);
    std::vector<float> ref(sz(s.Cout * HW)), col(sz(K * HW)), y(sz(s.Cout * HW));
    cpu::conv3x3_forward(ref.data(), x.data(), w.data(), b.data(), 1, s.Cin, s.Cout, s.H, s.H);
    fast::im2col3x3_pooled(col.data(), x.data(), s.Cin, s.H, s.H);
    cpu::gemm<float>(false, false, s.Cout, HW, K, 1.0f, w.data(), K, col.data(), HW, 0.0f, y.data(),
                     HW);
    fast::add_bias(y.data(), b.data(), s.Cout, HW);
    const auto got = from_pool_order(y, s.Cout, s.H, s.H);
    OCTA_CHECK_CLOSE("conv forward", got.data(), ref.data(), ref.size(), tol::kGpuVsCpu);
  }
}

TEST_CASE("Fast col2im in pool order gives the reference convolution's input gradient",
          "[cpu][fast]") {
  for (const Shape s : kShapes) {
    INFO("Cin " << s.Cin << " Cout " << s.Cout << " H " << s.H);
    const int HW = s.H * s.H, K = s.Cin * 9;
    const auto x = random_floats(sz(s.Cin * HW), 4);
    const auto w = random_floats(sz(s.Cout * K), 5, 0.3f);
    const auto dy = random_floats(sz(s.Cout * HW), 6);
    std::vector<float> ref_din(sz(s.Cin * HW)), ref_dw(sz(s.Cout * K)), ref_db(sz(s.Cout));
    cpu::conv3x3_backward(ref_din.data(), ref_dw.data(), ref_db.data(), dy.data(), x.data(),
                          w.data(), 1, s.Cin, s.Cout, s.H, s.H);
    const auto dy_pool = to_pool_order(dy, s.Cout, s.H, s.H);
    std::vector<float> dcol(sz(K * HW)), din(sz(s.Cin * HW)), col(sz(K * HW)), dw(sz(s.Cout * K));
    cpu::gemm<float>(true, false, K, HW, s.Cout, 1.0f, w.data(), K, dy_pool.data(), HW, 0.0f,
                     dcol.data(), HW);
    fast::col2im3x3_pooled(din.data(), dcol.data(), s.Cin, s.H, s.H);
    OCTA_CHECK_CLOSE("conv input gradient", din.data(), ref_din.data(), din.size(), tol::kGpuVsCpu);
    // The filter gradient from the same pool-order columns.
    fast::im2col3x3_pooled(col.data(), x.data(), s.Cin, s.H, s.H);
    cpu::gemm<float>(false, true, s.Cout, K, HW, 1.0f, dy_pool.data(), HW, col.data(), HW, 0.0f,
                     dw.data(), K);
    OCTA_CHECK_CLOSE("conv filter gradient", dw.data(), ref_dw.data(), dw.size(), tol::kGpuVsCpu);
    std::vector<double> db(sz(s.Cout), 0.0);
    fast::add_row_sums(db.data(), dy_pool.data(), s.Cout, HW);
    OCTA_CHECK_CLOSE("conv bias gradient", db.data(), ref_db.data(), db.size(), tol::kGpuVsCpu);
  }
}

TEST_CASE("Fused bias + ReLU + max-pool and its backward are the reference's, bit for bit",
          "[cpu][fast]") {
  for (const Shape s : kShapes) {
    for (const bool ties : {false, true}) {
      INFO("C " << s.Cout << " H " << s.H << (ties ? ", many ties" : ""));
      const int C = s.Cout, H = s.H, HW = H * H, Q = HW / 4;
      auto y = ties ? tie_floats(sz(C * HW), 7) : random_floats(sz(C * HW), 7);
      if (!ties) y[5] = std::numeric_limits<float>::quiet_NaN();  // a NaN wins its window
      const auto b = ties ? std::vector<float>(sz(C), 0.0f) : random_floats(sz(C), 8, 0.2f);
      // Reference: bias, ReLU, pool (on natural order), then pool backward and ReLU backward.
      std::vector<float> act(sz(C * HW)), ref_out(sz(C * Q));
      for (int c = 0; c < C; ++c) {
        for (int p = 0; p < HW; ++p) act[sz(c * HW + p)] = y[sz(c * HW + p)] + b[sz(c)];
      }
      cpu::relu_forward(act.data(), act.data(), act.size());
      cpu::maxpool2x2_forward(ref_out.data(), act.data(), 1, C, H, H);
      const auto dout = random_floats(sz(C * Q), 9);
      std::vector<float> ref_din(sz(C * HW));
      cpu::maxpool2x2_backward(ref_din.data(), dout.data(), act.data(), 1, C, H, H);
      cpu::relu_backward(ref_din.data(), ref_din.data(), act.data(), ref_din.size());

      const auto y_pool = to_pool_order(y, C, H, H);
      std::vector<float> out(sz(C * Q)), din_pool(sz(C * HW), -7.0f);
      std::vector<std::uint8_t> am(sz(C * Q));
      fast::affine_relu_maxpool(out.data(), am.data(), y_pool.data(), nullptr, nullptr, b.data(), C,
                                H, H);
      // NaN != NaN: compare the bits.
      CHECK(std::memcmp(out.data(), ref_out.data(), out.size() * sizeof(float)) == 0);
      fast::maxpool_relu_backward(din_pool.data(), dout.data(), out.data(), am.data(), C, H, H);
      const auto din = from_pool_order(din_pool, C, H, H);
      OCTA_CHECK_CLOSE("pool + relu backward", din.data(), ref_din.data(), din.size(), tol::kExact);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The whole model
// ---------------------------------------------------------------------------------------------

TEST_CASE("The fast model's forward and backward match the reference model", "[cpu][fast]") {
  for (const auto& [arch, N, K] :
       {std::tuple{Arch::kA, 5, 1}, std::tuple{Arch::kA, 37, 1}, std::tuple{Arch::kB, 5, 1},
        std::tuple{Arch::kB, 37, 1}, std::tuple{Arch::kA, 37, 10}, std::tuple{Arch::kB, 37, 10}}) {
    {  // N: fewer images than slots; a batch the slots split unevenly. K: fc2's outputs.
      INFO("model " << octa::arch_name(arch) << ", batch " << N << ", " << K << " outputs");
      const auto table = octa::ParamTable::for_arch(arch, K);
      std::vector<float> s_ref(table.num_total());
      octa::init_parameters(table, s_ref.data(), 11);
      std::vector<float> s_fast = s_ref;
      const auto x = random_floats(sz(N) * 784, 12);
      std::vector<float> y(sz(N));
      for (int i = 0; i < N; ++i) {
        y[sz(i)] = K == 1 ? (i % 3 == 0 ? 1.0f : 0.0f) : static_cast<float>(i % K);
      }

      octa::CpuModel<float> ref(table, N);
      fast::FastModel net(table, 40);
      std::vector<float> z_ref(sz(N * K)), z_fast(sz(N * K)), dz_ref(sz(N * K)), dz_fast(sz(N * K));
      std::vector<float> g_ref(table.num_trainable()), g_fast(table.num_trainable(), NAN);
      for (const bool train : {false, true}) {
        ref.forward(s_ref.data(), x.data(), N, train, 5, 6, z_ref.data());
        net.forward(s_fast.data(), x.data(), N, train, 5, 6, z_fast.data());
        OCTA_CHECK_CLOSE(train ? "train logits" : "eval logits", z_fast.data(), z_ref.data(),
                         z_ref.size(), tol::kGpuVsCpu);
      }
      // Model B: the running statistics the training forward updated.
      OCTA_CHECK_CLOSE("state after the training forward", s_fast.data(), s_ref.data(),
                       s_ref.size(), tol::kGpuVsCpu);
      const auto loss = [&](float* dz, const float* z) {
        if (K == 1) return cpu::bce_with_logits(dz, z, y.data(), N, 1.0f);
        return cpu::softmax_cross_entropy<float>(dz, z, y.data(), N, K, nullptr, 0.0f);
      };
      loss(dz_ref.data(), z_ref.data());
      loss(dz_fast.data(), z_fast.data());
      ref.backward(s_ref.data(), dz_ref.data(), g_ref.data());
      net.backward(s_fast.data(), dz_fast.data(), g_fast.data());
      for (const auto& e : table.entries()) {
        if (!e.trainable()) continue;
        OCTA_CHECK_CLOSE(e.name, g_fast.data() + e.offset, g_ref.data() + e.offset, e.numel,
                         tol::kGpuStepVsCpu);
      }
    }
  }
}

namespace {

octa::BackendConfig config(Arch arch, int batch) {
  octa::BackendConfig c;
  c.arch = arch;
  c.max_batch = 100;
  c.train_batch = batch;
  c.seed = 9;
  return c;
}

}  // namespace

TEST_CASE("Twenty Adam steps on the fast backend match the reference backend", "[cpu][fast]") {
  for (const Arch arch : {Arch::kA, Arch::kB}) {
    const int batch = arch == Arch::kA ? 64 : 37;
    INFO("model " << octa::arch_name(arch) << ", batch " << batch);
    const auto split = octa::test::synthetic_split(3 * batch + 5, 31);  // a partial last batch
    auto ref = octa::make_cpu_backend(config(arch, batch));
    auto fst = octa::make_fast_cpu_backend(config(arch, batch));
    const auto l_ref = octa::test::run_steps(*ref, split, batch, 20);
    const auto l_fast = octa::test::run_steps(*fst, split, batch, 20);
    OCTA_CHECK_CLOSE("losses", l_fast.data(), l_ref.data(), l_ref.size(), tol::kGpuStepVsCpu);
    octa::test::check_states_close(octa::ParamTable::for_arch(arch), fst->model_state(),
                                   ref->model_state(), 9, 20, 1e-3, tol::kGpuStepVsCpu);
    const auto o_ref = ref->optimizer_state(), o_fast = fst->optimizer_state();
    CHECK(o_fast.step == o_ref.step);
    OCTA_CHECK_CLOSE("exp_avg", o_fast.m.data(), o_ref.m.data(), o_ref.m.size(),
                     tol::kGpuStepVsCpu);  // of a zero gradient: tiny either way
    // Evaluation of more images than the activations hold (in pieces of the training batch).
    const auto x = random_floats(100 * 784, 41);
    std::vector<float> z_ref(100), z_fast(100);
    ref->predict(x.data(), 100, z_ref.data());
    fst->predict(x.data(), 100, z_fast.data());
    OCTA_CHECK_CLOSE("eval logits, 100 images", z_fast.data(), z_ref.data(), 100,
                     tol::kGpuStepVsCpu);
  }
}

TEST_CASE("Twenty SGD steps with momentum on the fast backend match the reference backend",
          "[cpu][fast]") {
  for (const Arch arch : {Arch::kA, Arch::kB}) {
    INFO("model " << octa::arch_name(arch));
    auto cfg = config(arch, 37);
    cfg.optimizer.kind = octa::OptimizerKind::kSgd;
    cfg.optimizer.lr = 0.05;
    cfg.optimizer.momentum = 0.9;
    const auto split = octa::test::synthetic_split(3 * 37 + 5, 32);
    auto ref = octa::make_cpu_backend(cfg);
    auto fst = octa::make_fast_cpu_backend(cfg);
    const auto l_ref = octa::test::run_steps(*ref, split, 37, 20);
    const auto l_fast = octa::test::run_steps(*fst, split, 37, 20);
    OCTA_CHECK_CLOSE("losses", l_fast.data(), l_ref.data(), l_ref.size(), tol::kGpuStepVsCpu);
    const auto p_ref = ref->model_state(), p_fast = fst->model_state();
    OCTA_CHECK_CLOSE("parameters and buffers", p_fast.values.data(), p_ref.values.data(),
                     p_ref.values.size(), tol::kGpuStepVsCpu);
    const auto o_ref = ref->optimizer_state(), o_fast = fst->optimizer_state();
    OCTA_CHECK_CLOSE("momentum", o_fast.m.data(), o_ref.m.data(), o_ref.m.size(),
                     tol::kGpuStepVsCpu);
  }
}

TEST_CASE("The fast backend gives the same bits for any number of threads",
          "[cpu][fast][determinism]") {
  const auto split = octa::test::synthetic_split(150, 33);
  for (const Arch arch : {Arch::kA, Arch::kB}) {
    INFO("model " << octa::arch_name(arch));
    std::vector<std::vector<double>> losses;
    std::vector<octa::ModelState> states;
    std::vector<std::vector<float>> logits;
    const auto x = random_floats(70 * 784, 42);
    for (const int threads : {1, 2, 3, 1}) {
      octa::set_cpu_threads(threads);
      auto b = octa::make_fast_cpu_backend(config(arch, 64));
      losses.push_back(octa::test::run_steps(*b, split, 64, 6));
      states.push_back(b->model_state());
      logits.emplace_back(70);
      b->predict(x.data(), 70, logits.back().data());
    }
    octa::set_cpu_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    for (std::size_t r = 1; r < losses.size(); ++r) {
      INFO("run " << r << " against run 0 (threads 1, 2, 3, 1)");
      CHECK(losses[r] == losses[0]);
      CHECK(states[r].values == states[0].values);
      CHECK(logits[r] == logits[0]);
    }
  }
}

TEST_CASE("The fast model holds activations for its capacity, not for the evaluation batch",
          "[cpu][fast]") {
  const auto table = octa::ParamTable::for_arch(Arch::kB);
  const fast::FastModel small(table, 64), large(table, 128);
  // Model B at batch 64: 16.6 MB (conv1's output, kept for BatchNorm, is 6.4 MB of it), against
  // about 240 MB if sized for an evaluation batch of 1000.
  CHECK(small.activation_bytes() < std::size_t{20} << 20);
  CHECK(large.activation_bytes() > small.activation_bytes() * 3 / 2);
}
