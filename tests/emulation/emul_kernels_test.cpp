// tests/emulation/emul_kernels_test.cpp: every CUDA kernel of kernels/*.cu, run on the CPU by the
// kernel emulator (tests/emulation/emul.hpp), against the CPU reference (engine/cpu/ops.hpp,
// engine/optim), so CI checks the kernels without a GPU. The launchers under test are the real
// ones (gpu::conv3x3_forward, ...), compiled from the .cu files rewritten into host C++ at build
// time. Inputs are seeded random values (never zero), outputs start poisoned (NaN), comparisons
// use the one tolerance rule of tests/support/compare.hpp, and each kernel runs once more with its
// blocks in reverse order and must give the same bits. The first cases test the emulator itself.
//
// Shapes are small (the emulator runs one std::thread per CUDA thread) but include sizes that are
// not multiples of the kernels' tiles and blocks, and the models' real channel counts once.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <new>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/philox.hpp"
#include "engine/cpu/ops.hpp"
#include "engine/optim/optimizer.hpp"
#include "kernels/batchnorm.hpp"
#include "kernels/conv3x3.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/logit_head.hpp"
#include "kernels/loss.hpp"
#include "kernels/optimizer.hpp"
#include "kernels/pool.hpp"
#include "tests/emulation/emul.hpp"
#include "tests/emulation/emul_wmma.hpp"
#include "tests/emulation/selftest_kernels.hpp"
#include "tests/support/batchnorm_inputs.hpp"
#include "tests/support/compare.hpp"
#include "tests/support/conv_launchers.hpp"
#include "tests/support/gradcheck.hpp"
#include "tests/support/logit_head_case.hpp"
#include "tests/support/optimizer_cases.hpp"

namespace cpu = octa::cpu;
namespace gpu = octa::gpu;
namespace tol = octa::test::tol;
using octa::gpu::Epilogue;
using octa::test::random_vector;

namespace {

std::size_t sz(int v) {
  return static_cast<std::size_t>(v);
}

// "Device" memory: exactly n elements (so AddressSanitizer sees any access past either end),
// 256-byte aligned like cudaMalloc's, created poisoned: 0xFF bytes, NaN in every float.
template <class T>
class Buf {
 public:
  explicit Buf(std::size_t n)
      : n_(n),
        p_(static_cast<T*>(
            ::operator new (std::max<std::size_t>(n, 1) * sizeof(T), std::align_val_t{256}))) {
    poison();
  }
  explicit Buf(const std::vector<T>& v) : Buf(v.size()) { put(v); }
  ~Buf() { ::operator delete (p_, std::align_val_t{256}); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;

  T* data() const { return p_; }
  std::size_t size() const { return n_; }
  void poison() { std::memset(p_, 0xFF, n_ * sizeof(T)); }
  void put(const std::vector<T>& v) {
    REQUIRE(v.size() == n_);
    std::memcpy(p_, v.data(), n_ * sizeof(T));
  }
  std::vector<T> get() const { return std::vector<T>(p_, p_ + n_); }

 private:
  std::size_t n_;
  T* p_;
};

// Every test case starts from a clean emulator and ends by checking that each launch was followed
// by cudaGetLastError() (OCTA_CUDA_CHECK_LAUNCH), as the project's launchers promise.
class EmulCase {
 public:
  EmulCase() { emul::reset(); }
  void check_launches() const {
    std::string unchecked;
    for (const std::string& u : emul::unchecked_launches()) unchecked += u + "\n";
    INFO(unchecked);
    CHECK(unchecked.empty());
    CHECK(!emul::launches().empty());
  }
};

// Runs f() with every launch's blocks in reverse order.
template <class F>
void with_blocks_reversed(F&& f) {
  emul::Options o = emul::options();
  o.order = emul::BlockOrder::kReverse;
  const emul::ScopedOptions scoped(o);
  f();
}

// The most blocks of any launch of `kernel` (a prefix of its name) so far: a reverse-order run
// proves something only where a launch had more than one block.
unsigned long long most_blocks(const std::string& kernel) {
  unsigned long long most = 0;
  for (const emul::LaunchRecord& r : emul::launches()) {
    if (r.kernel.rfind(kernel, 0) == 0) most = std::max(most, r.blocks());
  }
  return most;
}

template <class T>
void check_same_bits(const char* what, const std::vector<T>& got, const std::vector<T>& first) {
  REQUIRE(got.size() == first.size());
  OCTA_CHECK_CLOSE(what, got.data(), first.data(), got.size(), tol::kExact);
}

std::vector<float> relu(std::vector<float> v) {
  cpu::relu_forward(v.data(), v.data(), v.size());
  return v;
}

// Multiples of 1/4, so that many 2x2 windows hold ties and the first-maximum rule decides.
std::vector<float> with_ties(std::vector<float> v) {
  for (float& x : v) x = std::round(x * 4.0f) / 4.0f;
  return v;
}

bool all_poison(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) {
    std::uint32_t bits = 0;
    std::memcpy(&bits, &x, sizeof bits);
    return bits == 0xFFFFFFFFu;
  });
}

}  // namespace

// =============================================================================================
// The emulator itself (tests/emulation/selftest_kernels.cu)
// =============================================================================================

TEST_CASE("emulator: shared memory is fresh and poisoned in every block, aligned as declared",
          "[emul][emulator]") {
  EmulCase ec;
  const int blocks = 3;
  Buf<float> out(sz(blocks) * 64);
  emul_selftest::read_shared_before_write(out.data(), blocks);
  CHECK(all_poison(out.get()));  // never the 1.0f an earlier block wrote

  Buf<unsigned int> align(4);
  emul_selftest::shared_alignment(align.data());
  // float[8]: on 4 bytes, not 8; __align__(16): on 16, not 32; doubles: on 8, not 16.
  CHECK(align.get() == std::vector<unsigned int>{4, 16, 8, 8});

  const std::vector<float> in = random_vector<float>(64, 7);
  Buf<float> din(in), vout(64);
  emul_selftest::vector_loads(vout.data(), din.data());
  std::vector<float> twice(64);
  for (std::size_t i = 0; i < 64; ++i) twice[i] = 2.0f * in[i];
  OCTA_CHECK_CLOSE("float4 loads from shared memory", vout.get().data(), twice.data(), 64,
                   tol::kExact);

  Buf<float> early(64);
  emul_selftest::early_exit_after_last_barrier(early.data(), 40);
  const std::vector<float> e = early.get();
  for (int i = 0; i < 40; ++i) CHECK(e[sz(i)] == static_cast<float>(39 - i));
  CHECK(all_poison(std::vector<float>(e.begin() + 40, e.end())));
  ec.check_launches();
}

TEST_CASE("emulator: divergent __syncthreads, traps and launch bounds fail the launch, no hang",
          "[emul][emulator]") {
  EmulCase ec;
  Buf<float> out(1024);
  using Catch::Contains;
  CHECK_THROWS_WITH(emul_selftest::divergent_syncthreads(out.data(), 17),
                    Contains("divergent __syncthreads()") && Contains("17 threads wait at") &&
                        Contains("selftest_kernels.cu:") && Contains("47 have left"));
  CHECK_NOTHROW(emul_selftest::divergent_syncthreads(out.data(), 64));  // the whole block: fine
  CHECK_THROWS_WITH(emul_selftest::syncthreads_at_two_sites(out.data()),
                    Contains("different __syncthreads() calls"));
  CHECK_THROWS_WITH(emul_selftest::one_thread_traps(out.data()),
                    Contains("CUDA thread (3, 0, 0)") && Contains("__trap()"));
  CHECK_THROWS_WITH(emul_selftest::launch_bounds_64(out.data(), 128),
                    Contains("exceeds the kernel's __launch_bounds__(64)"));
  CHECK_NOTHROW(emul_selftest::launch_bounds_64(out.data(), 64));
  CHECK_THROWS_AS(emul_selftest::divergent_syncthreads(out.data(), 1), emul::KernelFault);
  // The pool still works after all of that.
  out.poison();
  emul_selftest::launch_block_of(out.data(), 1024);
  const std::vector<float> ones = out.get();
  CHECK(std::all_of(ones.begin(), ones.end(), [](float x) { return x == 1.0f; }));
  ec.check_launches();
}

TEST_CASE("emulator: launch configurations, unchecked launches, block order, runtime calls",
          "[emul][emulator]") {
  EmulCase ec;
  Buf<float> out(2048);
  // An invalid configuration does not run and sets the sticky error OCTA_CUDA_CHECK_LAUNCH throws.
  CHECK_THROWS_WITH(emul_selftest::launch_block_of(out.data(), 1025),
                    Catch::Contains("cudaErrorInvalidConfiguration"));
  CHECK(all_poison(out.get()));
  REQUIRE(!emul::launches().empty());
  CHECK_FALSE(emul::launches().back().ran);
  emul_selftest::launch_block_of(out.data(), 32);  // the error was consumed: this one runs

  emul_selftest::unchecked_launch(out.data());
  CHECK(emul::unchecked_launches().size() == 1);
  emul::reset();

  // Block order: each block's rank in time.
  const int blocks = 9;
  for (const emul::BlockOrder order :
       {emul::BlockOrder::kForward, emul::BlockOrder::kReverse, emul::BlockOrder::kShuffled}) {
    emul::Options o;
    o.order = order;
    o.blocks_in_flight = 1;
    const emul::ScopedOptions scoped(o);
    Buf<int> rank(sz(blocks)), counter(std::vector<int>{0});
    emul_selftest::record_block_order(rank.data(), counter.data(), blocks);
    std::vector<int> r = rank.get();
    CHECK(counter.get()[0] == blocks);
    CHECK(emul::launches().back().range == "record_block_order");
    if (order == emul::BlockOrder::kForward) {
      for (int b = 0; b < blocks; ++b) CHECK(r[sz(b)] == b);
    } else if (order == emul::BlockOrder::kReverse) {
      for (int b = 0; b < blocks; ++b) CHECK(r[sz(b)] == blocks - 1 - b);
    } else {
      std::sort(r.begin(), r.end());
      for (int b = 0; b < blocks; ++b) CHECK(r[sz(b)] == b);  // a permutation
    }
  }

  // Blocks in flight together: all blocks still run exactly once.
  {
    emul::Options o;
    o.blocks_in_flight = 3;
    const emul::ScopedOptions scoped(o);
    Buf<int> rank(sz(blocks)), counter(std::vector<int>{0});
    emul_selftest::record_block_order(rank.data(), counter.data(), blocks);
    std::vector<int> r = rank.get();
    std::sort(r.begin(), r.end());
    for (int b = 0; b < blocks; ++b) CHECK(r[sz(b)] == b);
  }

  // Dynamic shared memory, cudaMemsetAsync and cudaMemcpyAsync.
  const int n = 50;
  const std::vector<float> in = random_vector<float>(sz(n), 9);
  Buf<float> d_in(in), d_out(2 * sz(n));
  emul_selftest::dynamic_shared_copy(d_out.data(), d_in.data(), n);
  const std::vector<float> got = d_out.get();
  for (int i = 0; i < n; ++i) CHECK(got[sz(i)] == in[sz(n - 1 - i)] + 1.0f);
  for (int i = 0; i < n / 2; ++i) CHECK(got[sz(n + i)] == got[sz(i)]);
  for (int i = n + n / 2; i < 2 * n; ++i) CHECK(got[sz(i)] == 0.0f);
  ec.check_launches();
}

TEST_CASE("emulator: WMMA TF32 fragments cover the tile once and refuse what the GPU would not",
          "[emul][emulator]") {
  EmulCase ec;
  using Catch::Contains;
  // __float_to_tf32 rounds to 10 mantissa bits, ties away from zero.
  CHECK(nvcuda::wmma::__float_to_tf32(1.0f + 0x1p-12f) == 1.0f);
  CHECK(nvcuda::wmma::__float_to_tf32(1.0f + 0x1p-11f) == 1.0f + 0x1p-10f);  // a tie: away
  CHECK(nvcuda::wmma::__float_to_tf32(-1.0f - 0x1p-11f) == -1.0f - 0x1p-10f);
  CHECK(nvcuda::wmma::__float_to_tf32(1.0f + 0x1p-11f + 0x1p-20f) == 1.0f + 0x1p-10f);

  // c = 0.5 + a * b: every element written exactly once by the warp (c starts poisoned), the
  // layouts honoured, the products those of the TF32-rounded inputs.
  const std::vector<float> a = random_vector<float>(16 * 8, 31),
                           b = random_vector<float>(8 * 16, 32);
  Buf<float> d_a(a), d_b(b), d_c(16 * 16);
  emul_selftest::wmma_tile_product(d_c.data(), d_a.data(), d_b.data(), /*convert=*/true, 32);
  const std::vector<float> c = d_c.get();
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) {
      double want = 0.5;
      for (int k = 0; k < 8; ++k) {
        want += static_cast<double>(nvcuda::wmma::__float_to_tf32(a[sz(i * 8 + k)])) *
                nvcuda::wmma::__float_to_tf32(b[sz(j * 8 + k)]);  // b column-major
      }
      INFO("c[" << i << "][" << j << "]");
      CHECK(std::abs(c[sz(i * 16 + j)] - want) <= 1e-6);
    }
  }
  // Unconverted floats (the tensor core would ignore their low bits), a partial warp, a
  // misaligned tile: each fails the launch with the reason.
  CHECK_THROWS_WITH(emul_selftest::wmma_tile_product(d_c.data(), d_a.data(), d_b.data(), false, 32),
                    Contains("matrix_a element is not TF32"));
  CHECK_THROWS_WITH(emul_selftest::wmma_tile_product(d_c.data(), d_a.data(), d_b.data(), true, 48),
                    Contains("partial warp"));
  Buf<float> shifted(16 * 8 + 1);
  CHECK_THROWS_WITH(
      emul_selftest::wmma_tile_product(d_c.data(), shifted.data() + 1, d_b.data(), true, 32),
      Contains("not 32-byte aligned"));
  ec.check_launches();
}

TEST_CASE("emulator: every kernel of kernels/*.cu is rewritten and launched by a test here",
          "[emul][emulator]") {
  // The kernels the cases below launch. A kernel added to kernels/ (every .cu there is rewritten
  // and registers its __global__ functions) fails this case until a test here launches it and
  // it is listed.
  using Kernel = std::pair<std::string, std::string>;  // file name, kernel name
  const std::set<Kernel> tested = {
      {"conv3x3.cu", "conv3x3_direct_kernel"},
      {"conv3x3.cu", "conv3x3_wgrad_partial_kernel"},
      {"conv3x3.cu", "conv3x3_wgrad_finalize_kernel"},
      {"conv3x3_tc.cu", "conv3x3_tc_kernel"},
      {"conv3x3_tc.cu", "conv3x3_tc_wgrad_partial_kernel"},
      {"pool.cu", "maxpool2x2_forward_kernel"},
      {"pool.cu", "maxpool2x2_backward_kernel"},
      {"pool.cu", "global_avgpool_forward_kernel"},
      {"pool.cu", "global_avgpool_backward_kernel"},
      {"batchnorm.cu", "batchnorm_forward_train_kernel"},
      {"batchnorm.cu", "batchnorm_forward_eval_kernel"},
      {"batchnorm.cu", "batchnorm_backward_kernel"},
      {"elementwise.cu", "bias_forward_kernel"},
      {"elementwise.cu", "bias_backward_kernel"},
      {"elementwise.cu", "relu_backward_kernel"},
      {"elementwise.cu", "dropout_forward_kernel"},
      {"elementwise.cu", "dropout_backward_kernel"},
      {"loss.cu", "bce_with_logits_kernel"},
      {"logit_head.cu", "logit_head_train_kernel"},
      {"logit_head.cu", "softmax_head_train_kernel"},  // emul_softmax_head_test.cpp
      {"optimizer.cu", "adam_update_kernel"},
      {"optimizer.cu", "sgd_update_kernel"},
      {"optimizer.cu", "increment_step_kernel"},
  };
  std::set<Kernel> found;
  for (const emul::KernelInfo& k : emul::kernels()) {
    const std::filesystem::path file(k.file);
    if (file.parent_path().filename() == "kernels") {
      found.insert({file.filename().string(), k.name});
    }
  }
  for (const Kernel& k : found) {
    INFO("kernels/" << k.first << ": " << k.second << " has no emulated test in this file");
    CHECK(tested.count(k) == 1);
  }
  for (const Kernel& k : tested) {
    INFO("kernels/" << k.first << ": " << k.second << " is not among the rewritten kernels");
    CHECK(found.count(k) == 1);
  }
}

// =============================================================================================
// conv3x3
// =============================================================================================

namespace {

struct ConvShape {
  int N, Cin, Cout, H, W;

  std::size_t in_size() const { return sz(N) * sz(Cin) * sz(H) * sz(W); }
  std::size_t out_size() const { return sz(N) * sz(Cout) * sz(H) * sz(W); }
  std::size_t weight_size() const { return sz(Cout) * sz(Cin) * 9; }
  std::size_t pooled_size() const { return sz(N) * sz(Cout) * sz(H / 2) * sz(W / 2); }
  std::string str() const {
    return "N=" + std::to_string(N) + " Cin=" + std::to_string(Cin) +
           " Cout=" + std::to_string(Cout) + " H=" + std::to_string(H) + " W=" + std::to_string(W);
  }
};

// The direct kernel's block covers a 16x16 output tile for 16 output channels, consuming input
// channels 8 at a time; the filter gradient works in 32-column chunks of rows, 32 output x 8
// input channels per block (32 x 1 when Cin == 1).
const ConvShape kConvSmall{3, 3, 5, 6, 6};   // one tile, partial channel groups
const ConvShape kConvOdd{3, 3, 5, 7, 7};     // odd H and W: partial 2x2 patches
const ConvShape kConvWide{2, 9, 33, 5, 35};  // 9 = 8 + 1 input channels, 33 = 2 x 16 + 1 outputs,
                                             // 3 tiles across, two 32-column chunks
const ConvShape kConv1{2, 1, 32, 28, 28};    // model A's conv1 channels: 2 x 2 tiles, Cin == 1
const ConvShape kConv2{2, 32, 64, 14, 14};   // model A's conv2 channels: 4 input chunks
const ConvShape kConvCin1Wide{3, 1, 3, 11, 37};  // Cin == 1 filter gradient over two chunks

const ConvShape kConvEvenShapes[] = {kConvSmall, {2, 9, 33, 6, 34}, kConv1, kConv2};

struct ConvInputs {
  std::vector<float> in, weight, bias;
};

// Inputs in [-1, 1], parameters at PyTorch's initial scale, +-1/sqrt(fan_in).
ConvInputs make_conv_inputs(const ConvShape& s, std::uint64_t seed) {
  const double bound = 1.0 / std::sqrt(9.0 * s.Cin);
  return {random_vector<float>(s.in_size(), seed),
          random_vector<float>(s.weight_size(), seed + 1, -bound, bound),
          random_vector<float>(sz(s.Cout), seed + 2, -bound, bound)};
}

// One implementation of the four convolution launchers (tests/support/conv_launchers.hpp) with the
// names of its kernels in the launch records and the shapes chosen for its tiles. Each check below
// runs on both implementations.
struct ConvLaunchers {
  octa::test::ConvLaunchers launch;
  std::string kernel;        // the forward / backward-data kernel
  std::string wgrad_kernel;  // the filter gradient's stage 1
  std::vector<ConvShape> shapes, even_shapes, filter_shapes;
  std::size_t reverse_at;  // the shape whose run is repeated with the blocks reversed
};

// The tensor-core kernels: 64 pixels (row-major, or window-major with the pool) x 32 or 64 output
// channels per block, input channels 8 at a time; the filter gradient 64 output channels x 96 of
// Cin * 9 per block, 32 pixels at a time.
const ConvShape kTcSmall{3, 3, 5, 6, 6};     // 108 pixels: a partial block; K = 27 < one chunk
const ConvShape kTcTiles{2, 12, 70, 6, 10};  // 2 channel tiles of 64 forward, 32 backward (Cin
                                             // 12); 108 of K: 2 filter k tiles, 2 o tiles
const ConvShape kTcWide{1, 40, 20, 5, 7};    // Cin 40: 5 chunks; backward data 40 outputs (64)

const ConvLaunchers kCudaCores{octa::test::kCudaCoreConv,
                               "conv3x3_direct_kernel",
                               "conv3x3_wgrad_partial_kernel",
                               {kConvSmall, kConvOdd, kConvWide, kConv1, kConv2},
                               {kConvSmall, {2, 9, 33, 6, 34}, kConv1, kConv2},
                               {kConvSmall, kConvOdd, kConvWide, kConv1, kConv2, kConvCin1Wide},
                               2};

const ConvLaunchers kTensorCores{octa::test::kTensorCoreConv,
                                 "conv3x3_tc_kernel",
                                 "conv3x3_tc_wgrad_partial_kernel",
                                 {kTcSmall, kConvOdd, kTcTiles, kTcWide, kConv2},
                                 {kTcSmall, kTcTiles, kConv2},
                                 {kTcSmall, kConvOdd, kTcTiles, kTcWide, kConv2},
                                 2};

void check_conv_forward(const ConvLaunchers& L, std::uint64_t seed) {
  EmulCase ec;
  for (const ConvShape& s : L.shapes) {
    INFO(L.launch.name("forward") << ", " << s.str());
    const ConvInputs x = make_conv_inputs(s, seed += 10);
    std::vector<float> ref(s.out_size()), ref_relu(s.out_size());
    cpu::conv3x3_forward(ref.data(), x.in.data(), x.weight.data(), x.bias.data(), s.N, s.Cin,
                         s.Cout, s.H, s.W);
    cpu::relu_forward(ref_relu.data(), ref.data(), ref.size());

    const Buf<float> in(x.in), weight(x.weight), bias(x.bias);
    Buf<float> out(s.out_size());
    for (const Epilogue epilogue : {Epilogue::kNone, Epilogue::kRelu}) {
      const bool relu_on = epilogue == Epilogue::kRelu;
      auto run = [&] {
        out.poison();
        L.launch.forward(out.data(), in.data(), weight.data(), bias.data(), s.N, s.Cin, s.Cout, s.H,
                         s.W, epilogue, nullptr);
        return out.get();
      };
      const std::vector<float> got = run();
      OCTA_CHECK_CLOSE(L.launch.name(relu_on ? "forward (kRelu)" : "forward (kNone)"), got.data(),
                       (relu_on ? ref_relu : ref).data(), got.size(), tol::kGpuVsCpu);
      if (&s == &L.shapes[L.reverse_at] && relu_on) {
        std::vector<float> again;
        with_blocks_reversed([&] { again = run(); });
        check_same_bits("forward, blocks reversed", again, got);
      }
    }
  }
  CHECK(most_blocks(L.kernel) > 1);
  ec.check_launches();
}

void check_conv_relu_maxpool_forward(const ConvLaunchers& L, std::uint64_t seed) {
  EmulCase ec;
  for (const ConvShape& s : L.even_shapes) {
    INFO(L.launch.name("relu_maxpool_forward") << ", " << s.str());
    const ConvInputs x = make_conv_inputs(s, seed += 10);
    std::vector<float> conv(s.out_size()), act(s.out_size()), pooled(s.pooled_size());
    cpu::conv3x3_forward(conv.data(), x.in.data(), x.weight.data(), x.bias.data(), s.N, s.Cin,
                         s.Cout, s.H, s.W);
    cpu::relu_forward(act.data(), conv.data(), act.size());
    cpu::maxpool2x2_forward(pooled.data(), act.data(), s.N, s.Cout, s.H, s.W);

    const Buf<float> in(x.in), weight(x.weight), bias(x.bias);
    Buf<float> d_act(s.out_size()), d_pooled(s.pooled_size());
    auto run = [&] {
      d_act.poison();
      d_pooled.poison();
      L.launch.relu_maxpool_forward(d_pooled.data(), d_act.data(), in.data(), weight.data(),
                                    bias.data(), s.N, s.Cin, s.Cout, s.H, s.W, nullptr);
    };
    run();
    const std::vector<float> got_act = d_act.get(), got_pooled = d_pooled.get();
    OCTA_CHECK_CLOSE("fused act", got_act.data(), act.data(), act.size(), tol::kGpuVsCpu);
    OCTA_CHECK_CLOSE("fused pooled", got_pooled.data(), pooled.data(), pooled.size(),
                     tol::kGpuVsCpu);
    if (&s == &L.even_shapes[1]) {
      with_blocks_reversed(run);
      check_same_bits("fused act, blocks reversed", d_act.get(), got_act);
      check_same_bits("fused pooled, blocks reversed", d_pooled.get(), got_pooled);
    }
  }
  ec.check_launches();
}

void check_conv_backward_data(const ConvLaunchers& L, std::uint64_t seed) {
  EmulCase ec;
  for (const ConvShape& s : L.shapes) {
    INFO(L.launch.name("backward_data") << ", " << s.str());
    const ConvInputs x = make_conv_inputs(s, seed += 10);
    const std::vector<float> dout = random_vector<float>(s.out_size(), seed + 5);
    std::vector<float> din(s.in_size()), dweight(s.weight_size()), dbias(sz(s.Cout));
    cpu::conv3x3_backward(din.data(), dweight.data(), dbias.data(), dout.data(), x.in.data(),
                          x.weight.data(), s.N, s.Cin, s.Cout, s.H, s.W);

    const Buf<float> d_dout(dout), weight(x.weight);
    Buf<float> d_din(s.in_size());
    auto run = [&] {
      d_din.poison();
      L.launch.backward_data(d_din.data(), d_dout.data(), weight.data(), s.N, s.Cin, s.Cout, s.H,
                             s.W, nullptr);
      return d_din.get();
    };
    const std::vector<float> got = run();
    OCTA_CHECK_CLOSE(L.launch.name("backward_data din"), got.data(), din.data(), din.size(),
                     tol::kGpuVsCpu);
    if (&s == &L.shapes[L.reverse_at]) {
      std::vector<float> again;
      with_blocks_reversed([&] { again = run(); });
      check_same_bits("backward_data, blocks reversed", again, got);
    }
  }
  ec.check_launches();
}

void check_conv_backward_filter(const ConvLaunchers& L, std::uint64_t seed) {
  EmulCase ec;
  for (const ConvShape& s : L.filter_shapes) {
    INFO(L.launch.name("backward_filter") << ", " << s.str());
    const ConvInputs x = make_conv_inputs(s, seed += 10);
    // dout at the scale of a real gradient (see tests/test_gpu_conv.cpp: |dout| ~ 1/batch).
    const std::vector<float> dout =
        random_vector<float>(s.out_size(), seed + 5, -1.0 / 64, 1.0 / 64);
    std::vector<float> din(s.in_size()), dweight(s.weight_size()), dbias(sz(s.Cout));
    cpu::conv3x3_backward(din.data(), dweight.data(), dbias.data(), dout.data(), x.in.data(),
                          x.weight.data(), s.N, s.Cin, s.Cout, s.H, s.W);

    const Buf<float> d_dout(dout), in(x.in);
    const std::size_t ws_size =
        gpu::conv3x3_backward_filter_workspace(s.N, s.Cin, s.Cout, s.H, s.W);
    REQUIRE(ws_size > 0);
    // The workspace is poisoned too: every partial must be written before it is summed.
    Buf<float> workspace(ws_size), d_dw(s.weight_size()), d_db(sz(s.Cout));
    auto run = [&] {
      workspace.poison();
      d_dw.poison();
      d_db.poison();
      L.launch.backward_filter(d_dw.data(), d_db.data(), d_dout.data(), in.data(), s.N, s.Cin,
                               s.Cout, s.H, s.W, workspace.data(), nullptr);
    };
    run();
    const std::vector<float> got_dw = d_dw.get(), got_db = d_db.get();
    OCTA_CHECK_CLOSE(L.launch.name("backward_filter dweight"), got_dw.data(), dweight.data(),
                     dweight.size(), tol::kGpuVsCpu);
    OCTA_CHECK_CLOSE(L.launch.name("backward_filter dbias"), got_db.data(), dbias.data(),
                     dbias.size(), tol::kGpuVsCpu);
    if (&s == &L.filter_shapes[L.reverse_at]) {
      with_blocks_reversed(run);
      check_same_bits("dweight, blocks reversed", d_dw.get(), got_dw);
      check_same_bits("dbias, blocks reversed", d_db.get(), got_db);
    }
  }
  CHECK(most_blocks(L.wgrad_kernel) > 1);
  CHECK(most_blocks("conv3x3_wgrad_finalize_kernel") > 1);
  ec.check_launches();
}

}  // namespace

TEST_CASE("emulated conv3x3_forward matches the CPU reference (kNone and kRelu)", "[emul][conv]") {
  check_conv_forward(kCudaCores, 100);
}

TEST_CASE("emulated conv3x3_tc_forward (3xTF32) matches the CPU reference (kNone and kRelu)",
          "[emul][conv][tc]") {
  check_conv_forward(kTensorCores, 150);
}

TEST_CASE("emulated conv3x3_relu_maxpool_forward matches conv, relu and maxpool2x2 on the CPU",
          "[emul][conv]") {
  check_conv_relu_maxpool_forward(kCudaCores, 200);
}

TEST_CASE("emulated conv3x3_tc_relu_maxpool_forward matches conv, relu and maxpool2x2 on the CPU",
          "[emul][conv][tc]") {
  check_conv_relu_maxpool_forward(kTensorCores, 250);
}

TEST_CASE("emulated conv3x3_backward_data matches the CPU reference's input gradient",
          "[emul][conv]") {
  check_conv_backward_data(kCudaCores, 300);
}

TEST_CASE("emulated conv3x3_tc_backward_data matches the CPU reference's input gradient",
          "[emul][conv][tc]") {
  check_conv_backward_data(kTensorCores, 350);
}

TEST_CASE("emulated conv3x3_backward_filter matches the CPU reference (both tilings)",
          "[emul][conv]") {
  check_conv_backward_filter(kCudaCores, 400);
}

TEST_CASE("emulated conv3x3_tc_backward_filter matches the CPU reference", "[emul][conv][tc]") {
  check_conv_backward_filter(kTensorCores, 420);
}

TEST_CASE(
    "emulated conv3x3_backward_filter_from_maxpool equals maxpool2x2_backward then "
    "conv3x3_backward_filter bit for bit, and the CPU",
    "[emul][conv]") {
  EmulCase ec;
  std::uint64_t seed = 450;
  for (const ConvShape& s : kConvEvenShapes) {
    INFO(s.str());
    const ConvInputs x = make_conv_inputs(s, seed += 10);
    // The pool's input is a ReLU output with many ties (the first-maximum rule decides) and zeros
    // (no gradient through the ReLU); its gradient at the scale of a real one.
    const std::vector<float> act = relu(with_ties(random_vector<float>(s.out_size(), seed + 3)));
    const std::vector<float> dpool =
        random_vector<float>(s.pooled_size(), seed + 4, -1.0 / 64, 1.0 / 64);
    std::vector<float> dconv(s.out_size());
    cpu::maxpool2x2_backward(dconv.data(), dpool.data(), act.data(), s.N, s.Cout, s.H, s.W);
    cpu::relu_backward(dconv.data(), dconv.data(), act.data(), dconv.size());
    std::vector<float> din(s.in_size()), dweight(s.weight_size()), dbias(sz(s.Cout));
    cpu::conv3x3_backward(din.data(), dweight.data(), dbias.data(), dconv.data(), x.in.data(),
                          x.weight.data(), s.N, s.Cin, s.Cout, s.H, s.W);

    const Buf<float> d_act(act), d_dpool(dpool), in(x.in);
    Buf<float> workspace(gpu::conv3x3_backward_filter_workspace(s.N, s.Cin, s.Cout, s.H, s.W));
    Buf<float> d_dconv(s.out_size()), d_dw(s.weight_size()), d_db(sz(s.Cout));
    // The two passes the fused launcher replaces.
    gpu::maxpool2x2_backward(d_dconv.data(), d_dpool.data(), d_act.data(), s.N, s.Cout, s.H, s.W,
                             /*relu_before=*/true, nullptr);
    gpu::conv3x3_backward_filter(d_dw.data(), d_db.data(), d_dconv.data(), in.data(), s.N, s.Cin,
                                 s.Cout, s.H, s.W, workspace.data(), nullptr);
    const std::vector<float> two_dw = d_dw.get(), two_db = d_db.get();
    auto run = [&] {
      workspace.poison();
      d_dw.poison();
      d_db.poison();
      gpu::conv3x3_backward_filter_from_maxpool(d_dw.data(), d_db.data(), d_dpool.data(),
                                                d_act.data(), in.data(), s.N, s.Cin, s.Cout, s.H,
                                                s.W, workspace.data(), nullptr);
    };
    run();
    const std::vector<float> got_dw = d_dw.get(), got_db = d_db.get();
    check_same_bits("fused dweight vs the two passes", got_dw, two_dw);
    check_same_bits("fused dbias vs the two passes", got_db, two_db);
    OCTA_CHECK_CLOSE("fused dweight vs the CPU", got_dw.data(), dweight.data(), dweight.size(),
                     tol::kGpuVsCpu);
    OCTA_CHECK_CLOSE("fused dbias vs the CPU", got_db.data(), dbias.data(), dbias.size(),
                     tol::kGpuVsCpu);
    if (&s == &kConvEvenShapes[2]) {
      with_blocks_reversed(run);
      check_same_bits("fused dweight, blocks reversed", d_dw.get(), got_dw);
      check_same_bits("fused dbias, blocks reversed", d_db.get(), got_db);
    }
  }
  // Odd sizes have no 2x2 pool: refused before any launch, with what to use instead.
  Buf<float> ws(64), dw(45), db(5), buf(3 * 5 * 49);
  REQUIRE_THROWS_WITH(
      gpu::conv3x3_backward_filter_from_maxpool(dw.data(), db.data(), buf.data(), buf.data(),
                                                buf.data(), 3, 1, 5, 7, 7, ws.data(), nullptr),
      Catch::Contains("must both be even") && Catch::Contains("maxpool2x2_backward"));
  ec.check_launches();
}

// =============================================================================================
// Pooling
// =============================================================================================

TEST_CASE("emulated maxpool2x2 forward and backward (plain and fused ReLU) match the CPU",
          "[emul][pool]") {
  EmulCase ec;
  struct Shape {
    int N, C, H, W;
  };
  // 3 x 32 x 14 x 14 outputs: 74 blocks of 256 threads, the last one partial.
  for (const Shape s : {Shape{3, 32, 28, 28}, Shape{2, 3, 6, 10}, Shape{1, 1, 2, 2}}) {
    INFO("N " << s.N << " C " << s.C << " H " << s.H << " W " << s.W);
    const std::size_t n_in = sz(s.N) * sz(s.C) * sz(s.H) * sz(s.W), n_out = n_in / 4;
    const std::vector<float> x = with_ties(random_vector<float>(n_in, 11 + sz(s.N)));
    const std::vector<float> xr = relu(x);
    const std::vector<float> dout = random_vector<float>(n_out, 12 + sz(s.N));
    std::vector<float> out_ref(n_out), din_ref(n_in), din_relu_ref(n_in);
    cpu::maxpool2x2_forward(out_ref.data(), x.data(), s.N, s.C, s.H, s.W);
    cpu::maxpool2x2_backward(din_ref.data(), dout.data(), x.data(), s.N, s.C, s.H, s.W);
    // The fused ReLU backward: the pool's backward over the ReLU's output, then the ReLU's.
    cpu::maxpool2x2_backward(din_relu_ref.data(), dout.data(), xr.data(), s.N, s.C, s.H, s.W);
    cpu::relu_backward(din_relu_ref.data(), din_relu_ref.data(), xr.data(), n_in);

    const Buf<float> d_x(x), d_xr(xr), d_dout(dout);
    Buf<float> d_out(n_out), d_din(n_in), d_din_relu(n_in);
    auto run = [&] {
      d_out.poison();
      d_din.poison();
      d_din_relu.poison();
      gpu::maxpool2x2_forward(d_out.data(), d_x.data(), s.N, s.C, s.H, s.W, nullptr);
      gpu::maxpool2x2_backward(d_din.data(), d_dout.data(), d_x.data(), s.N, s.C, s.H, s.W, false,
                               nullptr);
      gpu::maxpool2x2_backward(d_din_relu.data(), d_dout.data(), d_xr.data(), s.N, s.C, s.H, s.W,
                               true, nullptr);
    };
    run();
    const std::vector<float> out = d_out.get(), din = d_din.get(), din_relu = d_din_relu.get();
    OCTA_CHECK_CLOSE("maxpool forward", out.data(), out_ref.data(), n_out, tol::kGpuVsCpu);
    OCTA_CHECK_CLOSE("maxpool backward", din.data(), din_ref.data(), n_in, tol::kGpuVsCpu);
    OCTA_CHECK_CLOSE("maxpool backward, fused relu", din_relu.data(), din_relu_ref.data(), n_in,
                     tol::kGpuVsCpu);
    if (s.N == 3) {
      with_blocks_reversed(run);
      check_same_bits("maxpool forward, blocks reversed", d_out.get(), out);
      check_same_bits("maxpool backward, blocks reversed", d_din.get(), din);
      check_same_bits("maxpool backward relu, blocks reversed", d_din_relu.get(), din_relu);
    }
  }
  CHECK(most_blocks("maxpool2x2_forward_kernel") > 1);
  ec.check_launches();
}

TEST_CASE("emulated global average pool forward and backward match the CPU", "[emul][pool]") {
  EmulCase ec;
  const int C = 64, HW = 49;  // model B's bn2 output: 7 x 7, not a multiple of the 8-way sum
  for (const int N : {1, 5}) {
    INFO("N " << N);
    const std::size_t n_in = sz(N) * sz(C) * sz(HW), n_out = sz(N) * sz(C);
    const std::vector<float> x = random_vector<float>(n_in, 21 + sz(N));
    const std::vector<float> dout = random_vector<float>(n_out, 22 + sz(N));
    std::vector<float> out_ref(n_out), din_ref(n_in);
    cpu::global_avgpool_forward(out_ref.data(), x.data(), N, C, HW);
    cpu::global_avgpool_backward(din_ref.data(), dout.data(), N, C, HW);

    const Buf<float> d_x(x), d_dout(dout);
    Buf<float> d_out(n_out), d_din(n_in);
    auto run = [&] {
      d_out.poison();
      d_din.poison();
      gpu::global_avgpool_forward(d_out.data(), d_x.data(), N, C, HW, nullptr);
      gpu::global_avgpool_backward(d_din.data(), d_dout.data(), N, C, HW, nullptr);
    };
    run();
    const std::vector<float> out = d_out.get(), din = d_din.get();
    OCTA_CHECK_CLOSE("gap forward", out.data(), out_ref.data(), n_out, tol::kGpuVsCpu);
    OCTA_CHECK_CLOSE("gap backward", din.data(), din_ref.data(), n_in, tol::kGpuVsCpu);
    if (N == 5) {  // 320 planes, 15,680 gradients: more than one block each
      with_blocks_reversed(run);
      check_same_bits("gap forward, blocks reversed", d_out.get(), out);
      check_same_bits("gap backward, blocks reversed", d_din.get(), din);
    }
  }
  CHECK(most_blocks("global_avgpool_forward_kernel") > 1);
  ec.check_launches();
}

// =============================================================================================
// BatchNorm
// =============================================================================================

namespace {

constexpr float kBnEps = 1e-5f, kBnMomentum = 0.1f;

using octa::test::BnInputs;

// One block of 1024 threads per channel: fewer values per channel than threads (3 x 49), more
// (2 x 1500), and more channels (16, with model B's bn2 planes of 7 x 7) for the eval kernel's
// grid-stride blocks. Each 1024-thread block costs the emulator ~40 barrier phases, so C stays
// small (model B's 32 and 64 channels run the same per-channel code).
struct BnShape {
  int N, C, HW;
};
constexpr BnShape kBnShapes[] = {{3, 5, 49}, {2, 3, 1500}, {2, 16, 49}};

}  // namespace

TEST_CASE("emulated BatchNorm training forward and running statistics match the CPU",
          "[emul][batchnorm]") {
  EmulCase ec;
  for (const BnShape s : kBnShapes) {
    for (const Epilogue epilogue : {Epilogue::kNone, Epilogue::kRelu}) {
      const BnInputs in(s.N, s.C, s.HW, 31 + sz(s.N) + sz(s.C));
      INFO(in.str() << (epilogue == Epilogue::kRelu ? " relu" : ""));
      const std::size_t n = in.size(), C = sz(s.C);
      std::vector<float> out_ref(n), mean_ref(C), invstd_ref(C);
      std::vector<float> rm_ref = in.running_mean, rv_ref = in.running_var;
      cpu::batchnorm_forward_train(out_ref.data(), mean_ref.data(), invstd_ref.data(),
                                   rm_ref.data(), rv_ref.data(), in.x.data(), in.gamma.data(),
                                   in.beta.data(), s.N, s.C, s.HW, kBnEps, kBnMomentum);
      if (epilogue == Epilogue::kRelu) out_ref = relu(out_ref);

      const Buf<float> x(in.x), gamma(in.gamma), beta(in.beta);
      Buf<float> rm(C), rv(C), out(n), mean(C), invstd(C);
      auto run = [&] {
        rm.put(in.running_mean);
        rv.put(in.running_var);
        out.poison();
        mean.poison();
        invstd.poison();
        gpu::batchnorm_forward_train(out.data(), mean.data(), invstd.data(), rm.data(), rv.data(),
                                     x.data(), gamma.data(), beta.data(), s.N, s.C, s.HW, kBnEps,
                                     kBnMomentum, epilogue, nullptr);
        return std::vector<std::vector<float>>{out.get(), mean.get(), invstd.get(), rm.get(),
                                               rv.get()};
      };
      const std::vector<std::vector<float>> got = run();
      OCTA_CHECK_CLOSE("bn out", got[0].data(), out_ref.data(), n, tol::kGpuVsCpu);
      OCTA_CHECK_CLOSE("bn save_mean", got[1].data(), mean_ref.data(), C, tol::kGpuVsCpu);
      OCTA_CHECK_CLOSE("bn save_invstd", got[2].data(), invstd_ref.data(), C, tol::kGpuVsCpu);
      OCTA_CHECK_CLOSE("bn running_mean", got[3].data(), rm_ref.data(), C, tol::kGpuVsCpu);
      OCTA_CHECK_CLOSE("bn running_var", got[4].data(), rv_ref.data(), C, tol::kGpuVsCpu);

      if (s.C == 5 && epilogue == Epilogue::kRelu) {
        std::vector<std::vector<float>> again;
        with_blocks_reversed([&] { again = run(); });
        for (std::size_t k = 0; k < got.size(); ++k) {
          check_same_bits("bn forward, blocks reversed", again[k], got[k]);
        }
        // Without running statistics (null pointers): the same outputs.
        out.poison();
        gpu::batchnorm_forward_train(out.data(), mean.data(), invstd.data(), nullptr, nullptr,
                                     x.data(), gamma.data(), beta.data(), s.N, s.C, s.HW, kBnEps,
                                     kBnMomentum, epilogue, nullptr);
        check_same_bits("bn out without running statistics", out.get(), got[0]);
      }
    }
  }
  ec.check_launches();
}

TEST_CASE("emulated BatchNorm eval forward matches the CPU", "[emul][batchnorm]") {
  EmulCase ec;
  for (const BnShape s : kBnShapes) {
    for (const Epilogue epilogue : {Epilogue::kNone, Epilogue::kRelu}) {
      const BnInputs in(s.N, s.C, s.HW, 51 + sz(s.N) + sz(s.C));
      INFO(in.str() << (epilogue == Epilogue::kRelu ? " relu" : ""));
      std::vector<float> ref(in.size());
      cpu::batchnorm_forward_eval(ref.data(), in.x.data(), in.gamma.data(), in.beta.data(),
                                  in.running_mean.data(), in.running_var.data(), s.N, s.C, s.HW,
                                  kBnEps);
      if (epilogue == Epilogue::kRelu) ref = relu(ref);
      const Buf<float> x(in.x), gamma(in.gamma), beta(in.beta), rm(in.running_mean),
          rv(in.running_var);
      Buf<float> out(in.size());
      auto run = [&] {
        out.poison();
        gpu::batchnorm_forward_eval(out.data(), x.data(), gamma.data(), beta.data(), rm.data(),
                                    rv.data(), s.N, s.C, s.HW, kBnEps, epilogue, nullptr);
        return out.get();
      };
      const std::vector<float> got = run();
      OCTA_CHECK_CLOSE("bn eval out", got.data(), ref.data(), in.size(), tol::kGpuVsCpu);
      if (s.C == 16 && epilogue == Epilogue::kRelu) {
        std::vector<float> again;
        with_blocks_reversed([&] { again = run(); });
        check_same_bits("bn eval, blocks reversed", again, got);
      }
    }
  }
  CHECK(most_blocks("batchnorm_forward_eval_kernel") > 1);
  ec.check_launches();
}

TEST_CASE("emulated BatchNorm backward (plain and fused ReLU) matches the CPU",
          "[emul][batchnorm]") {
  EmulCase ec;
  for (const BnShape s : kBnShapes) {
    for (const bool fused_relu : {false, true}) {
      const BnInputs in(s.N, s.C, s.HW, 61 + sz(s.N) + sz(s.C));
      INFO(in.str() << (fused_relu ? " relu" : ""));
      const std::size_t n = in.size(), C = sz(s.C);
      // The CPU's forward gives the saved statistics both sides use, so only backward is tested.
      std::vector<float> out_ref(n), mean_ref(C), invstd_ref(C);
      std::vector<float> rm = in.running_mean, rv = in.running_var;
      cpu::batchnorm_forward_train(out_ref.data(), mean_ref.data(), invstd_ref.data(), rm.data(),
                                   rv.data(), in.x.data(), in.gamma.data(), in.beta.data(), s.N,
                                   s.C, s.HW, kBnEps, kBnMomentum);
      if (fused_relu) out_ref = relu(out_ref);
      std::vector<float> dy = in.dout;
      if (fused_relu) cpu::relu_backward(dy.data(), dy.data(), out_ref.data(), n);
      std::vector<float> din_ref(n), dgamma_ref(C), dbeta_ref(C);
      cpu::batchnorm_backward(din_ref.data(), dgamma_ref.data(), dbeta_ref.data(), dy.data(),
                              in.x.data(), mean_ref.data(), invstd_ref.data(), in.gamma.data(), s.N,
                              s.C, s.HW);

      const Buf<float> x(in.x), gamma(in.gamma), dout(in.dout), relu_out(out_ref), mean(mean_ref),
          invstd(invstd_ref);
      Buf<float> din(n), dgamma(C), dbeta(C);
      auto run = [&](bool want_din) {
        din.poison();
        dgamma.poison();
        dbeta.poison();
        gpu::batchnorm_backward(want_din ? din.data() : nullptr, dgamma.data(), dbeta.data(),
                                dout.data(), fused_relu ? relu_out.data() : nullptr, x.data(),
                                mean.data(), invstd.data(), gamma.data(), s.N, s.C, s.HW, nullptr);
        return std::vector<std::vector<float>>{din.get(), dgamma.get(), dbeta.get()};
      };
      const std::vector<std::vector<float>> got = run(true);
      OCTA_CHECK_CLOSE("bn din", got[0].data(), din_ref.data(), n, tol::kGpuVsCpu);
      OCTA_CHECK_CLOSE("bn dgamma", got[1].data(), dgamma_ref.data(), C, tol::kGpuVsCpu);
      OCTA_CHECK_CLOSE("bn dbeta", got[2].data(), dbeta_ref.data(), C, tol::kGpuVsCpu);
      if (s.C == 5) {
        // din not needed (null): the parameter gradients alone, the same bits.
        const std::vector<std::vector<float>> params_only = run(false);
        CHECK(all_poison(params_only[0]));
        check_same_bits("bn dgamma without din", params_only[1], got[1]);
        check_same_bits("bn dbeta without din", params_only[2], got[2]);
        std::vector<std::vector<float>> again;
        with_blocks_reversed([&] { again = run(true); });
        for (std::size_t k = 0; k < got.size(); ++k) {
          check_same_bits("bn backward, blocks reversed", again[k], got[k]);
        }
      }
    }
  }
  ec.check_launches();
}

// =============================================================================================
// Bias, ReLU, dropout
// =============================================================================================

TEST_CASE("emulated bias_forward (with epilogue) and bias_backward match the CPU",
          "[emul][elementwise]") {
  EmulCase ec;
  // fc1 (128 outputs), fc2 (1), and 33: a partial 32-column block. 1000 rows: many row groups.
  for (const int C : {128, 1, 33}) {
    for (const int N : {1, 3, 67, 1000}) {
      INFO("N " << N << " C " << C);
      const std::size_t n = sz(N) * sz(C);
      const std::vector<float> x = random_vector<float>(n, 61 + sz(N) + sz(C));
      const std::vector<float> bias = random_vector<float>(sz(C), 62 + sz(C));
      const Buf<float> d_bias(bias);
      const bool reverse_too = C == 128 && N == 67;
      for (const Epilogue epilogue : {Epilogue::kNone, Epilogue::kRelu}) {
        std::vector<float> ref(n);
        for (std::size_t i = 0; i < n; ++i) ref[i] = x[i] + bias[i % sz(C)];
        if (epilogue == Epilogue::kRelu) ref = relu(ref);
        Buf<float> d_x(x);
        gpu::bias_forward(d_x.data(), d_bias.data(), N, C, epilogue, nullptr);
        const std::vector<float> got = d_x.get();
        OCTA_CHECK_CLOSE("bias forward", got.data(), ref.data(), n, tol::kGpuVsCpu);
        if (reverse_too && epilogue == Epilogue::kRelu) {
          d_x.put(x);
          with_blocks_reversed(
              [&] { gpu::bias_forward(d_x.data(), d_bias.data(), N, C, epilogue, nullptr); });
          check_same_bits("bias forward, blocks reversed", d_x.get(), got);
        }
      }
      // The reference dbias is cpu::linear_backward's (with a dummy one-input layer).
      const std::vector<float> dout = random_vector<float>(n, 63 + sz(N));
      const std::vector<float> in1(sz(N), 1.0f), w1(sz(C), 1.0f);
      std::vector<float> dw_ref(sz(C)), dbias_ref(sz(C));
      cpu::linear_backward<float>(nullptr, dw_ref.data(), dbias_ref.data(), dout.data(), in1.data(),
                                  w1.data(), N, 1, C);
      const Buf<float> d_dout(dout);
      Buf<float> d_dbias(sz(C));
      gpu::bias_backward(d_dbias.data(), d_dout.data(), N, C, nullptr);
      const std::vector<float> got = d_dbias.get();
      OCTA_CHECK_CLOSE("bias backward", got.data(), dbias_ref.data(), sz(C), tol::kGpuVsCpu);
      if (reverse_too) {
        d_dbias.poison();
        with_blocks_reversed(
            [&] { gpu::bias_backward(d_dbias.data(), d_dout.data(), N, C, nullptr); });
        check_same_bits("bias backward, blocks reversed", d_dbias.get(), got);
      }
    }
  }
  CHECK(most_blocks("bias_forward_kernel") > 1);
  CHECK(most_blocks("bias_backward_kernel") > 1);
  ec.check_launches();
}

TEST_CASE("emulated relu_backward matches the CPU, out of place and in place",
          "[emul][elementwise]") {
  EmulCase ec;
  for (const int N : {1, 3, 67}) {
    INFO("N " << N);
    const std::size_t n = sz(N) * 128;
    const std::vector<float> out = relu(random_vector<float>(n, 71 + sz(N)));  // about half 0
    const std::vector<float> dout = random_vector<float>(n, 72 + sz(N));
    std::vector<float> ref(n);
    cpu::relu_backward(ref.data(), dout.data(), out.data(), n);
    const Buf<float> d_out(out);
    Buf<float> d_dout(dout), d_din(n);
    gpu::relu_backward(d_din.data(), d_dout.data(), d_out.data(), n, nullptr);
    const std::vector<float> got = d_din.get();
    OCTA_CHECK_CLOSE("relu backward", got.data(), ref.data(), n, tol::kGpuVsCpu);
    if (N == 67) {
      d_din.poison();
      with_blocks_reversed(
          [&] { gpu::relu_backward(d_din.data(), d_dout.data(), d_out.data(), n, nullptr); });
      check_same_bits("relu backward, blocks reversed", d_din.get(), got);
    }
    gpu::relu_backward(d_dout.data(), d_dout.data(), d_out.data(), n, nullptr);
    OCTA_CHECK_CLOSE("relu backward in place", d_dout.get().data(), ref.data(), n, tol::kGpuVsCpu);
  }
  CHECK(most_blocks("relu_backward_kernel") > 1);
  ec.check_launches();
}

TEST_CASE("emulated dropout draws the CPU's Philox mask bit for bit, fresh at each step",
          "[emul][elementwise][dropout]") {
  EmulCase ec;
  const std::uint64_t seed = 20240607;
  const std::uint64_t base = octa::rng_stream(octa::RngStream::kDropout, 0);
  // Model B's fc1 output at batch 3 and 67, and sizes that end inside a 4-word Philox block.
  for (const std::size_t n : {std::size_t{3 * 128}, std::size_t{67 * 128}, std::size_t{1},
                              std::size_t{3}, std::size_t{5}, std::size_t{1001}}) {
    for (const float p : {0.5f, 0.3f}) {
      INFO("n " << n << " p " << p);
      const std::vector<float> in = random_vector<float>(n, 81 + n);
      const std::vector<float> dout = random_vector<float>(n, 82 + n);
      const Buf<float> d_in(in), d_dout(dout);
      Buf<float> d_out(n), d_din(n);
      Buf<std::uint8_t> d_mask(n);
      Buf<std::int64_t> d_step(1);
      std::vector<std::uint8_t> prev_mask;
      for (const std::int64_t step : {std::int64_t{7}, std::int64_t{8}}) {
        INFO("step " << step);
        d_step.put({step});
        std::vector<float> out_ref(n), din_ref(n);
        std::vector<std::uint8_t> mask_ref(n);
        cpu::dropout_forward(out_ref.data(), mask_ref.data(), in.data(), n, p, seed,
                             base + static_cast<std::uint64_t>(step));
        cpu::dropout_backward(din_ref.data(), dout.data(), mask_ref.data(), n, p);

        auto run = [&] {
          d_out.poison();
          d_mask.poison();
          gpu::dropout_forward(d_out.data(), d_mask.data(), d_in.data(), n, p, seed, base,
                               d_step.data(), nullptr);
        };
        run();
        const std::vector<std::uint8_t> mask = d_mask.get();
        const std::vector<float> out = d_out.get();
        CHECK(mask == mask_ref);
        OCTA_CHECK_CLOSE("dropout out", out.data(), out_ref.data(), n, tol::kGpuVsCpu);
        CHECK(d_step.get()[0] == step);  // read, never written
        d_din.poison();
        gpu::dropout_backward(d_din.data(), d_dout.data(), d_mask.data(), n, p, nullptr);
        OCTA_CHECK_CLOSE("dropout din", d_din.get().data(), din_ref.data(), n, tol::kGpuVsCpu);
        if (!prev_mask.empty() && n >= 128) CHECK(mask != prev_mask);
        prev_mask = mask;
        if (n == 67 * 128 && step == 8) {
          with_blocks_reversed(run);
          CHECK(d_mask.get() == mask);
          check_same_bits("dropout out, blocks reversed", d_out.get(), out);
        }
      }
    }
  }
  CHECK(most_blocks("dropout_forward_kernel") > 1);
  ec.check_launches();
}

// =============================================================================================
// BCE with logits
// =============================================================================================

namespace {

struct BceResult {
  std::vector<float> dlogits;
  float batch_loss;
  double loss_sum;
};

BceResult run_bce(const std::vector<float>& logits, const std::vector<float>& targets,
                  float pos_weight, double loss_sum0, bool want_grad) {
  const std::size_t n = logits.size();
  const Buf<float> d_logits(logits), d_targets(targets);
  Buf<float> d_dlogits(n), d_batch_loss(1);
  Buf<double> d_loss_sum(std::vector<double>{loss_sum0});
  gpu::bce_with_logits(want_grad ? d_dlogits.data() : nullptr, d_batch_loss.data(),
                       d_loss_sum.data(), d_logits.data(), d_targets.data(), static_cast<int>(n),
                       pos_weight, nullptr);
  return BceResult{d_dlogits.get(), d_batch_loss.get()[0], d_loss_sum.get()[0]};
}

// Targets 0 or 1, about a third positive.
std::vector<float> binary_targets(std::size_t n, std::uint64_t seed) {
  std::vector<float> t = random_vector<float>(n, seed, 0.0, 1.0);
  for (float& y : t) y = y < 1.0f / 3.0f ? 1.0f : 0.0f;
  return t;
}

}  // namespace

TEST_CASE("emulated BCE with logits: loss, gradient and running sum match the CPU",
          "[emul][loss]") {
  EmulCase ec;
  // One block of 1024 threads: fewer logits, exactly as many, more (the loop), many more.
  for (const int N : {1, 3, 67, 1024, 1025, 5000}) {
    for (const float pos_weight : {1.0f, 3.5f}) {
      INFO("N " << N << " pos_weight " << pos_weight);
      const std::vector<float> logits = random_vector<float>(sz(N), 91 + sz(N), -8.0, 8.0);
      const std::vector<float> targets = binary_targets(sz(N), 92 + sz(N));
      std::vector<float> dlogits_ref(sz(N));
      const double mean_ref =
          cpu::bce_with_logits(dlogits_ref.data(), logits.data(), targets.data(), N, pos_weight);
      const auto batch_ref = static_cast<float>(mean_ref);
      const double sum_ref = 2.5 + mean_ref * N;
      const BceResult r = run_bce(logits, targets, pos_weight, 2.5, true);
      OCTA_CHECK_CLOSE("bce dlogits", r.dlogits.data(), dlogits_ref.data(), sz(N), tol::kGpuVsCpu);
      OCTA_CHECK_CLOSE("bce batch_loss", &r.batch_loss, &batch_ref, 1, tol::kGpuVsCpu);
      OCTA_CHECK_CLOSE("bce loss_sum", &r.loss_sum, &sum_ref, 1, tol::kGpuVsCpu);
      const BceResult e = run_bce(logits, targets, pos_weight, 0.0, false);
      OCTA_CHECK_CLOSE("bce batch_loss, no grad", &e.batch_loss, &batch_ref, 1, tol::kGpuVsCpu);
      if (N == 5000 && pos_weight != 1.0f) {
        // One block only, so reversing the blocks changes nothing; a second run still shows that
        // the fixed reduction tree does not depend on how the threads were scheduled.
        BceResult again{};
        with_blocks_reversed([&] { again = run_bce(logits, targets, pos_weight, 2.5, true); });
        check_same_bits("bce dlogits, rerun", again.dlogits, r.dlogits);
        CHECK(std::memcmp(&again.batch_loss, &r.batch_loss, sizeof(float)) == 0);
        CHECK(std::memcmp(&again.loss_sum, &r.loss_sum, sizeof(double)) == 0);
      }
    }
  }
  // Logits of +-100: finite and right (the stable forms).
  const std::vector<float> logits = {100.0f, -100.0f, 100.0f, -100.0f};
  const std::vector<float> targets = {0.0f, 1.0f, 1.0f, 0.0f};
  const BceResult r = run_bce(logits, targets, 1.0f, 0.0, true);
  const std::vector<float> expected = {0.25f, -0.25f, 0.0f, 0.0f};
  const float loss = 50.0f;
  const double sum = 200.0;
  OCTA_CHECK_CLOSE("bce dlogits at +-100", r.dlogits.data(), expected.data(), 4, tol::kGpuVsCpu);
  OCTA_CHECK_CLOSE("bce batch_loss at +-100", &r.batch_loss, &loss, 1, tol::kGpuVsCpu);
  OCTA_CHECK_CLOSE("bce loss_sum at +-100", &r.loss_sum, &sum, 1, tol::kGpuVsCpu);
  ec.check_launches();
}

TEST_CASE("emulated fused training head matches fc2, BCE, fc2/dropout/ReLU backward on the CPU",
          "[emul][loss]") {
  EmulCase ec;
  for (const octa::test::LogitHeadCase& c : octa::test::logit_head_cases()) {
    INFO(c.str());
    const auto n = sz(c.N);
    const Buf<float> x(c.x), relu_out(c.relu_out), weight(c.weight), bias(c.bias),
        targets(c.targets);
    const Buf<std::uint8_t> mask(c.dropout ? c.mask : std::vector<std::uint8_t>(1));
    Buf<float> logits(n), dlogits(n), batch_loss(1), dweight(sz(c.K)), dbias(1), dhidden(c.size());
    Buf<double> loss_sum(std::vector<double>{octa::test::LogitHeadCase::kLossSumBefore});
    gpu::logit_head_train(
        {logits.data(), dlogits.data(), batch_loss.data(), loss_sum.data(), dweight.data(),
         dbias.data(), dhidden.data()},
        {x.data(), relu_out.data(), c.dropout ? mask.data() : nullptr,
         octa::test::LogitHeadCase::kDropoutP, weight.data(), bias.data(), targets.data()},
        c.N, c.K, c.pos_weight, nullptr);
    const octa::test::LogitHeadResult got{logits.get(),     dlogits.get(),       dweight.get(),
                                          dhidden.get(),    batch_loss.get()[0], dbias.get()[0],
                                          loss_sum.get()[0]};
    c.check(got, tol::kGpuVsCpu);
    // The loss and its gradient are bce_with_logits's, bit for bit, from the same logits.
    const BceResult bce = run_bce(got.logits, c.targets, c.pos_weight,
                                  octa::test::LogitHeadCase::kLossSumBefore, true);
    check_same_bits("head dlogits vs bce_with_logits", got.dlogits, bce.dlogits);
    CHECK(std::memcmp(&got.batch_loss, &bce.batch_loss, sizeof(float)) == 0);
    CHECK(std::memcmp(&got.loss_sum, &bce.loss_sum, sizeof(double)) == 0);
  }
  // Bad arguments are refused before any launch, naming the argument.
  Buf<float> f(4);
  Buf<double> d(1);
  const gpu::LogitHeadOutputs out{f.data(), f.data(), f.data(), d.data(),
                                  f.data(), f.data(), f.data()};
  const gpu::LogitHeadInputs in{f.data(), f.data(), nullptr, 0.5f, f.data(), f.data(), f.data()};
  using Catch::Contains;
  CHECK_THROWS_WITH(gpu::logit_head_train(out, in, 0, 4, 1.0f, nullptr),
                    Contains("logit_head_train: N = 0 must be positive"));
  gpu::LogitHeadInputs no_targets = in;
  no_targets.targets = nullptr;
  CHECK_THROWS_WITH(gpu::logit_head_train(out, no_targets, 1, 4, 1.0f, nullptr),
                    Contains("logit_head_train: targets must not be null"));
  Buf<std::uint8_t> m(4);
  gpu::LogitHeadInputs bad_p = in;
  bad_p.mask = m.data();
  bad_p.dropout_p = 1.0f;
  CHECK_THROWS_WITH(gpu::logit_head_train(out, bad_p, 1, 4, 1.0f, nullptr),
                    Contains("drop probability p = 1 must be in [0, 1)"));
  ec.check_launches();
}

// =============================================================================================
// Optimisers
// =============================================================================================

namespace {

constexpr int kOptimizerSteps = 20;

// n parameters at `offset` floats into their buffers (offset 1: not 16-byte aligned, the scalar
// path). 5003 = 4 x 1250 + 3: five blocks of float4 work plus a scalar tail.
struct OptimCase {
  std::size_t n, offset;
};
constexpr OptimCase kOptimCases[] = {{5003, 0}, {5003, 1}, {1, 0}, {7, 0}, {1001, 1}};

}  // namespace

TEST_CASE("emulated Adam: 20 steps match octa::adam_update and the step counter reaches 20",
          "[emul][optimizer]") {
  EmulCase ec;
  for (const OptimCase oc : kOptimCases) {
    for (const double weight_decay : {0.0, 0.01}) {
      INFO("n " << oc.n << " offset " << oc.offset << " weight_decay " << weight_decay);
      const octa::OptimizerConfig cfg = octa::test::adam_config(weight_decay);
      const gpu::AdamParams hp{cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay};
      const std::size_t n = oc.n, total = n + oc.offset;
      const std::vector<float> p0 = random_vector<float>(n, 101 + n, -0.5, 0.5);

      // Both runs of the device side (forward, then reversed block order) from the same start.
      auto run = [&] {
        Buf<float> d_p(total), d_g(total), d_m(total), d_v(total);
        Buf<std::int64_t> d_step(std::vector<std::int64_t>{0});
        float *p = d_p.data() + oc.offset, *g = d_g.data() + oc.offset, *m = d_m.data() + oc.offset,
              *v = d_v.data() + oc.offset;
        std::memcpy(p, p0.data(), n * sizeof(float));
        std::fill(m, m + n, 0.0f);
        std::fill(v, v + n, 0.0f);
        for (int t = 1; t <= kOptimizerSteps; ++t) {
          const std::vector<float> grads = random_vector<float>(n, 102 + sz(t) * 1000 + n);
          std::memcpy(g, grads.data(), n * sizeof(float));
          gpu::adam_update(p, g, m, v, n, hp, d_step.data(), nullptr);
        }
        CHECK(d_step.get()[0] == kOptimizerSteps);
        return std::vector<std::vector<float>>{{p, p + n}, {m, m + n}, {v, v + n}};
      };
      const std::vector<std::vector<float>> got = run();

      std::vector<float> p_ref = p0, m_ref(n, 0.0f), v_ref(n, 0.0f);
      for (int t = 1; t <= kOptimizerSteps; ++t) {
        const std::vector<float> grads = random_vector<float>(n, 102 + sz(t) * 1000 + n);
        octa::adam_update(p_ref.data(), grads.data(), m_ref.data(), v_ref.data(), n, cfg, t);
      }
      OCTA_CHECK_CLOSE("adam params", got[0].data(), p_ref.data(), n, tol::kGpuVsCpu);
      OCTA_CHECK_CLOSE("adam m", got[1].data(), m_ref.data(), n, tol::kGpuVsCpu);
      OCTA_CHECK_CLOSE("adam v", got[2].data(), v_ref.data(), n, tol::kGpuVsCpu);
      if (oc.n == 5003 && oc.offset == 0 && weight_decay != 0.0) {
        std::vector<std::vector<float>> again;
        with_blocks_reversed([&] { again = run(); });
        for (std::size_t k = 0; k < got.size(); ++k) {
          check_same_bits("adam, blocks reversed", again[k], got[k]);
        }
      }
    }
  }
  CHECK(most_blocks("adam_update_kernel") > 1);
  ec.check_launches();
}

TEST_CASE("emulated SGD: 20 steps match octa::sgd_update (plain, momentum, dampening, Nesterov)",
          "[emul][optimizer]") {
  EmulCase ec;
  for (const OptimCase oc : kOptimCases) {
    for (const octa::test::SgdCase& sc : octa::test::kSgdCases) {
      INFO("n " << oc.n << " offset " << oc.offset << " momentum " << sc.momentum << " dampening "
                << sc.dampening << " weight_decay " << sc.weight_decay << " nesterov "
                << sc.nesterov);
      const octa::OptimizerConfig cfg = octa::test::sgd_config(sc);
      const gpu::SgdParams hp{cfg.lr, cfg.momentum, cfg.dampening, cfg.weight_decay, cfg.nesterov};
      const std::size_t n = oc.n, total = n + oc.offset;
      const bool with_momentum = sc.momentum != 0.0;
      const std::vector<float> p0 = random_vector<float>(n, 111 + n, -0.5, 0.5);

      auto run = [&] {
        // The momentum buffer starts poisoned: the first update must write it, never read it.
        Buf<float> d_p(total), d_g(total), d_buf(with_momentum ? total : 0);
        Buf<std::int64_t> d_step(std::vector<std::int64_t>{0});
        float *p = d_p.data() + oc.offset, *g = d_g.data() + oc.offset;
        float* buf = with_momentum ? d_buf.data() + oc.offset : nullptr;
        std::memcpy(p, p0.data(), n * sizeof(float));
        for (int t = 1; t <= kOptimizerSteps; ++t) {
          const std::vector<float> grads = random_vector<float>(n, 112 + sz(t) * 1000 + n);
          std::memcpy(g, grads.data(), n * sizeof(float));
          gpu::sgd_update(p, g, buf, n, hp, d_step.data(), nullptr);
        }
        CHECK(d_step.get()[0] == kOptimizerSteps);
        return std::vector<std::vector<float>>{
            {p, p + n}, with_momentum ? std::vector<float>(buf, buf + n) : std::vector<float>{}};
      };
      const std::vector<std::vector<float>> got = run();

      std::vector<float> p_ref = p0, buf_ref(n, std::numeric_limits<float>::quiet_NaN());
      for (int t = 1; t <= kOptimizerSteps; ++t) {
        const std::vector<float> grads = random_vector<float>(n, 112 + sz(t) * 1000 + n);
        octa::sgd_update(p_ref.data(), grads.data(), buf_ref.data(), n, cfg, t);
      }
      OCTA_CHECK_CLOSE("sgd params", got[0].data(), p_ref.data(), n, tol::kGpuVsCpu);
      if (with_momentum) {
        OCTA_CHECK_CLOSE("sgd momentum buffer", got[1].data(), buf_ref.data(), n, tol::kGpuVsCpu);
      }
      if (oc.n == 5003 && oc.offset == 0 && sc.nesterov) {
        std::vector<std::vector<float>> again;
        with_blocks_reversed([&] { again = run(); });
        for (std::size_t k = 0; k < got.size(); ++k) {
          check_same_bits("sgd, blocks reversed", again[k], got[k]);
        }
      }
    }
  }
  CHECK(most_blocks("sgd_update_kernel") > 1);
  ec.check_launches();
}
