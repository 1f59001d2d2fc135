// tests/emulation/emul_kernels_test.cpp: the kernel emulator's runner of octa's case table, and the
// emulator's own tests.
//
// Every case of the table that the emulator runs (engine/selfcheck/kernel_cases.hpp: each of
// octa's CUDA kernels at the models' shapes at batch 64 and at odd shapes with partial tiles,
// against the CPU reference, on seeded random inputs, under the one tolerance table) runs here on
// the CPU, through the real launchers of kernels/*.cu rewritten into host C++ at build time, with
// "device" memory that is host memory of exactly the right size, created poisoned (NaN), so that
// AddressSanitizer sees any access outside a buffer. What is specific to the emulator: every small
// case runs a second time with every launch's blocks in reverse order and must give the same bits;
// every launch must be followed by cudaGetLastError(); every kernel of kernels/*.cu must be
// launched by a case of its group, with more than one block where the reverse order is to prove
// anything. The first cases test the emulator itself; the last ones that the table's runners agree
// (octa_selftest --list marks as emulated exactly what runs here) and reject a broken launcher.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <new>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/selfcheck/kernel_cases.hpp"
#include "kernels/batchnorm_fused.hpp"
#include "kernels/conv3x3.hpp"
#include "kernels/conv3x3_tc.hpp"
#include "kernels/logit_head.hpp"
#include "tests/emulation/emul.hpp"
#include "tests/emulation/emul_wmma.hpp"
#include "tests/emulation/selftest_kernels.hpp"
#include "tests/support/compare.hpp"
#include "tests/support/gradcheck.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/temp_dir.hpp"

namespace gpu = octa::gpu;
namespace sc = octa::selfcheck;
namespace tol = octa::test::tol;
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

// =============================================================================================
// The case table's runner
// =============================================================================================

namespace {

// The CaseDevice of the emulator: host memory as "device" memory, exactly the bytes asked for,
// 256-byte aligned like cudaMalloc's, created poisoned; everything synchronous; host time.
class EmulDevice final : public sc::CaseDevice {
 public:
  std::string name() const override { return "emulator"; }
  void* allocate(std::size_t bytes) override {
    if (bytes == 0) return nullptr;
    void* p = ::operator new (bytes, std::align_val_t{256});
    std::memset(p, 0xFF, bytes);
    return p;
  }
  void release(void* p) noexcept override { ::operator delete (p, std::align_val_t{256}); }
  void upload(void* dst, const void* src, std::size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void download(void* dst, const void* src, std::size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void poison(void* p, std::size_t bytes) override { std::memset(p, 0xFF, bytes); }
  cudaStream_t stream() const override { return nullptr; }
  void timer_start() override { start_ = std::chrono::steady_clock::now(); }
  double timer_stop_ms() override {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_)
        .count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

// The groups of the table and the kernels of kernels/*.cu each one's cases must launch (file,
// kernel), with whether a small case must launch it with more than one block (else reversing the
// blocks proves nothing). A kernel added to kernels/ (every .cu there is rewritten and registers
// its __global__ functions) fails "every kernel ... is launched" until it is listed here, and its
// group's runner fails until a case launches it.
struct GroupKernel {
  const char* file;
  const char* kernel;
  bool multi_block;
};
const std::map<std::string, std::vector<GroupKernel>>& group_kernels() {
  static const std::map<std::string, std::vector<GroupKernel>> groups = {
      {"conv3x3",
       {{"conv3x3.cu", "conv3x3_direct_kernel", true},
        {"conv3x3.cu", "conv3x3_wgrad_partial_kernel", true},
        {"conv3x3.cu", "conv3x3_wgrad_finalize_kernel", true},
        {"pool.cu", "maxpool2x2_backward_kernel", true},  // the from-max-pool case's two passes
        // Model B's fused BatchNorm: after the statistics, and the fold of the eval form.
        {"batchnorm_fused.cu", "batchnorm_relu_maxpool_forward_train_kernel", true},
        {"batchnorm_fused.cu", "batchnorm_fold_conv3x3_kernel", true}}},
      {"conv3x3_tc",
       {{"conv3x3_tc.cu", "conv3x3_tc_kernel", true},
        {"conv3x3_tc.cu", "conv3x3_tc_wgrad_partial_kernel", true},
        {"conv3x3.cu", "conv3x3_wgrad_finalize_kernel", true},
        {"batchnorm_fused.cu", "batchnorm_relu_maxpool_forward_train_kernel", true},
        {"batchnorm_fused.cu", "batchnorm_fold_conv3x3_kernel", true}}},
      {"pool",
       {{"pool.cu", "maxpool2x2_forward_kernel", true},
        {"pool.cu", "maxpool2x2_backward_kernel", true},
        {"pool.cu", "global_avgpool_forward_kernel", true},
        {"pool.cu", "global_avgpool_backward_kernel", true}}},
      {"batchnorm",
       {{"batchnorm.cu", "batchnorm_forward_train_kernel", true},
        {"batchnorm.cu", "batchnorm_forward_eval_kernel", true},
        {"batchnorm.cu", "batchnorm_backward_kernel", true},
        {"batchnorm_fused.cu", "batchnorm_relu_maxpool_backward_sums_kernel", true},
        {"batchnorm_fused.cu", "batchnorm_relu_maxpool_backward_data_kernel", true},
        // --sync-bn's merges around the all-gathers.
        {"batchnorm_sync.cu", "batchnorm_sync_pack_stats_kernel", true},
        {"batchnorm_sync.cu", "batchnorm_sync_unpack_stats_kernel", true},
        {"batchnorm_sync.cu", "batchnorm_sync_pack_sums_kernel", true},
        {"batchnorm_sync.cu", "batchnorm_sync_unpack_sums_kernel", true}}},
      {"elementwise",
       {{"elementwise.cu", "bias_forward_kernel", true},
        {"elementwise.cu", "bias_backward_kernel", true},
        {"elementwise.cu", "relu_backward_kernel", true},
        {"elementwise.cu", "dropout_forward_kernel", true},
        {"elementwise.cu", "dropout_backward_kernel", true}}},
      {"loss",
       {{"loss.cu", "bce_with_logits_kernel", false},
        {"logit_head.cu", "logit_head_train_kernel", false},
        {"logit_head.cu", "softmax_head_train_kernel", false}}},
      {"optimizer",
       {{"optimizer.cu", "adam_update_kernel", true},
        {"optimizer.cu", "sgd_update_kernel", true},
        {"optimizer.cu", "increment_step_kernel", false}}},
  };
  return groups;
}

// The cases the emulator runs: every case of octa's kernels that is neither large nor a cuDNN or
// cuBLAS one, in table order. octa_selftest --list must mark exactly these as emulated.
std::vector<sc::KernelCase> emulated_cases(const sc::CaseOptions& options = {}) {
  std::vector<sc::KernelCase> cases;
  for (sc::KernelCase& c : sc::kernel_cases(options)) {
    if (c.emulated()) cases.push_back(std::move(c));
  }
  return cases;
}

// Runs the emulated cases of one group and size class; a small case runs again with every
// launch's blocks reversed and must give the same bits. Then every launch must have been checked,
// and (small) every kernel of the group launched, with more than one block where listed.
void run_group(const std::string& group, sc::CaseSize size) {
  EmulCase ec;
  EmulDevice dev;
  int ran = 0;
  for (const sc::KernelCase& c : emulated_cases()) {
    if (c.group != group || c.size != size) continue;
    ++ran;
    INFO(c.name << " (" << c.launcher << ", " << c.shape << ")");
    const sc::CaseResult r = sc::run_case(c, dev);
    INFO(r.failure());
    CHECK(r.passed());
    if (size == sc::CaseSize::kSmall && r.passed()) {
      sc::CaseResult reversed;
      with_blocks_reversed([&] { reversed = sc::run_case(c, dev); });
      INFO("blocks reversed: " << reversed.failure());
      CHECK(reversed.passed());
      CHECK(reversed.digest == r.digest);
    }
  }
  INFO("group " << group << ", size " << sc::case_size_name(size));
  CHECK(ran > 0);
  if (size == sc::CaseSize::kSmall) {
    for (const GroupKernel& k : group_kernels().at(group)) {
      INFO("kernels/" << k.file << ": " << k.kernel);
      CHECK(most_blocks(k.kernel) > (k.multi_block ? 1u : 0u));
    }
  }
  ec.check_launches();
}

}  // namespace

TEST_CASE("emulator: every kernel of kernels/*.cu is launched by a case of its group",
          "[emul][emulator]") {
  using Kernel = std::pair<std::string, std::string>;  // file name, kernel name
  std::set<Kernel> listed;
  for (const auto& [group, kernels] : group_kernels()) {
    for (const GroupKernel& k : kernels) listed.insert({k.file, k.kernel});
  }
  std::set<Kernel> found;
  for (const emul::KernelInfo& k : emul::kernels()) {
    const std::filesystem::path file(k.file);
    if (file.parent_path().filename() == "kernels") {
      found.insert({file.filename().string(), k.name});
    }
  }
  for (const Kernel& k : found) {
    INFO("kernels/" << k.first << ": " << k.second << " is in no group of group_kernels()");
    CHECK(listed.count(k) == 1);
  }
  for (const Kernel& k : listed) {
    INFO("kernels/" << k.first << ": " << k.second << " is not among the rewritten kernels");
    CHECK(found.count(k) == 1);
  }
}

// One runner case per group and size class that has emulated cases (below); this list names
// them, and the next case checks it against the table, so no emulated case goes unrun.
const std::set<std::pair<std::string, sc::CaseSize>> kRunnerCases = {
    {"conv3x3", sc::CaseSize::kSmall},     {"conv3x3", sc::CaseSize::kModel},
    {"conv3x3_tc", sc::CaseSize::kSmall},  {"conv3x3_tc", sc::CaseSize::kModel},
    {"pool", sc::CaseSize::kSmall},        {"pool", sc::CaseSize::kModel},
    {"batchnorm", sc::CaseSize::kSmall},   {"batchnorm", sc::CaseSize::kModel},
    {"elementwise", sc::CaseSize::kSmall}, {"elementwise", sc::CaseSize::kModel},
    {"loss", sc::CaseSize::kSmall},        {"loss", sc::CaseSize::kModel},
    {"optimizer", sc::CaseSize::kSmall},   {"optimizer", sc::CaseSize::kModel}};

TEST_CASE("emulator: every case of the table is run by the emulator or says why not",
          "[emul][cases]") {
  std::set<std::string> names;
  std::set<std::pair<std::string, sc::CaseSize>> emulated;
  std::set<std::string> model_groups;
  for (const sc::KernelCase& c : sc::kernel_cases()) {
    INFO(c.name);
    CHECK(names.insert(c.name).second);  // names are unique: runners report by them
    CHECK(group_kernels().count(c.group) == 1);
    CHECK(c.body);
    CHECK_FALSE(c.gpu_library);  // cuDNN and cuBLAS cases are the library's (case_table.hpp)
    if (c.models != 0) model_groups.insert(c.group);
    if (c.emulated()) {
      emulated.insert({c.group, c.size});
    } else {
      CHECK(c.size == sc::CaseSize::kLarge);
      CHECK_THAT(c.runners(), Catch::Contains("gpu (large"));
    }
  }
  CHECK(emulated == kRunnerCases);
  // Every group has cases at the models' shapes at batch 64 (what --conv auto checks).
  CHECK(model_groups.size() == group_kernels().size());
  CHECK(emulated_cases().size() > 200);
}

#define OCTA_EMUL_GROUP(group, size_class, tags)                                                \
  TEST_CASE("emulated cases: " group ", " #size_class, "[emul][cases][" #size_class "]" tags) { \
    run_group(group, sc::CaseSize::k##size_class);                                              \
  }

OCTA_EMUL_GROUP("conv3x3", Small, "[conv]")
OCTA_EMUL_GROUP("conv3x3", Model, "[conv]")
OCTA_EMUL_GROUP("conv3x3_tc", Small, "[conv][tc]")
OCTA_EMUL_GROUP("conv3x3_tc", Model, "[conv][tc]")
OCTA_EMUL_GROUP("pool", Small, "[pool]")
OCTA_EMUL_GROUP("pool", Model, "[pool]")
OCTA_EMUL_GROUP("batchnorm", Small, "[batchnorm]")
OCTA_EMUL_GROUP("batchnorm", Model, "[batchnorm]")
OCTA_EMUL_GROUP("elementwise", Small, "[elementwise]")
OCTA_EMUL_GROUP("elementwise", Model, "[elementwise]")
OCTA_EMUL_GROUP("loss", Small, "[loss]")
OCTA_EMUL_GROUP("loss", Model, "[loss]")
OCTA_EMUL_GROUP("optimizer", Small, "[optimizer]")
OCTA_EMUL_GROUP("optimizer", Model, "[optimizer]")

// =============================================================================================
// The runners agree, and reject a broken launcher
// =============================================================================================

namespace {

// A deliberately broken tensor-core forward, handed to the table through CaseOptions (the test-
// only fault hook): the real launcher, then one wrong value ("device" memory is host memory here).
void broken_tc_forward(float* out, const float* in, const float* weight, const float* bias, int N,
                       int Cin, int Cout, int H, int W, gpu::Epilogue epilogue,
                       cudaStream_t stream) {
  gpu::conv3x3_tc_forward(out, in, weight, bias, N, Cin, Cout, H, W, epilogue, stream);
  out[static_cast<std::size_t>(N) * Cout * H * W - 1] += 0.5f;
}

}  // namespace

TEST_CASE("emulator: a broken launcher fails exactly its own cases, naming the tensor",
          "[emul][cases][fault]") {
  EmulCase ec;
  EmulDevice dev;
  sc::CaseOptions broken;
  broken.tensor_core.forward = &broken_tc_forward;
  int failed = 0, failed_fused = 0, passed = 0;
  for (const sc::KernelCase& c : emulated_cases(broken)) {
    if (c.size != sc::CaseSize::kSmall || c.group != "conv3x3_tc" ||
        c.name.find("backward") != std::string::npos) {
      continue;  // the tensor-core forward passes: the broken one and its neighbour
    }
    INFO(c.name);
    const sc::CaseResult r = sc::run_case(c, dev);
    if (c.name.rfind("conv3x3_tc_forward ", 0) == 0) {
      ++failed;
      CHECK_FALSE(r.passed());
      CHECK_THAT(r.failure(), Catch::Contains("out (kNone): 1 of") &&
                                  Catch::Contains("out (kRelu): 1 of") &&
                                  Catch::Contains("kGpuVsCpu"));
    } else if (c.name.rfind("conv3x3_tc_forward_bn_stats ", 0) == 0) {
      // The fused forward's cases compare its convolution with the plain forward bit for bit, so
      // they name the broken launcher too (and nothing else fails there).
      ++failed_fused;
      CHECK_FALSE(r.passed());
      CHECK_THAT(r.failure(), Catch::Contains("conv_out vs conv3x3_tc_forward bit for bit: 1 of") &&
                                  !Catch::Contains("pooled"));
    } else {
      ++passed;
      INFO(r.failure());
      CHECK(r.passed());
    }
  }
  CHECK(failed > 10);
  CHECK(failed_fused > 10);
  CHECK(passed > 5);
  ec.check_launches();
}

TEST_CASE("emulator: octa_selftest --list marks as emulated exactly the cases run here",
          "[emul][cases][selftest]") {
  if (!std::filesystem::exists(OCTA_SELFTEST_EXE)) {
    OCTA_SKIP(fmt::format("{} is not built (a sanitizer build builds this test alone)",
                          OCTA_SELFTEST_EXE));
  }
  const octa::test::TempDir dir("selftest-list");
  const std::filesystem::path json = dir / "list.json";
  const std::string cmd =
      fmt::format("'{}' --list --json '{}' > /dev/null 2>&1", OCTA_SELFTEST_EXE, json.string());
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::ifstream in(json);
  const nlohmann::json listed = nlohmann::json::parse(in);
  std::vector<std::string> selftest_emulated, selftest_all;
  for (const nlohmann::json& c : listed.at("cases")) {
    selftest_all.push_back(c.at("name").get<std::string>());
    if (c.at("emulated").get<bool>()) selftest_emulated.push_back(selftest_all.back());
  }
  std::vector<std::string> here;
  for (const sc::KernelCase& c : emulated_cases()) here.push_back(c.name);
  CHECK(selftest_emulated == here);
  // octa_selftest lists every case of octa's kernels (emulated or large), then the cuDNN and
  // cuBLAS ones.
  std::vector<std::string> kernels;
  for (const sc::KernelCase& c : sc::kernel_cases()) kernels.push_back(c.name);
  REQUIRE(selftest_all.size() > kernels.size());
  CHECK(std::vector<std::string>(
            selftest_all.begin(),
            selftest_all.begin() + static_cast<std::ptrdiff_t>(kernels.size())) == kernels);
}

// =============================================================================================
// Argument checks of the launchers (before any launch)
// =============================================================================================

TEST_CASE("emulated launchers refuse what they cannot do before any launch, naming it",
          "[emul][check]") {
  EmulCase ec;
  using Catch::Contains;
  // Odd sizes have no 2x2 pool: refused, with what to use instead.
  Buf<float> ws(64), dw(45), db(5), buf(3 * 5 * 49);
  CHECK_THROWS_WITH(
      gpu::conv3x3_backward_filter_from_maxpool(dw.data(), db.data(), buf.data(), buf.data(),
                                                buf.data(), 3, 1, 5, 7, 7, ws.data(), nullptr),
      Contains("must both be even") && Contains("maxpool2x2_backward"));
  // The training head: bad sizes, a missing buffer, a drop probability of 1.
  Buf<float> f(4);
  Buf<double> d(1);
  const gpu::LogitHeadOutputs out{f.data(), f.data(), f.data(), d.data(),
                                  f.data(), f.data(), f.data()};
  const gpu::LogitHeadInputs in{f.data(), f.data(), nullptr, 0.5f, f.data(), f.data(), f.data()};
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
  CHECK(emul::launches().empty());
}

TEST_CASE("emulated fused BatchNorm launchers refuse bad arguments before any launch, naming them",
          "[emul][check][batchnorm]") {
  EmulCase ec;
  using Catch::Contains;
  Buf<float> f(64);
  Buf<double> d(64);
  Buf<std::uint8_t> w(16);
  float* p = f.data();
  const char* fwd = "batchnorm_relu_maxpool_forward_train";
  CHECK_THROWS_WITH(
      gpu::batchnorm_relu_maxpool_forward_train(p, w.data(), p, p, p, p, p, d.data(), 1, p, p, 2, 3,
                                                5, 6, 1e-5f, 0.1f, nullptr),
      Contains(fwd) && Contains("H = 5 and W = 6 must both be even") && Contains("unfused"));
  CHECK_THROWS_WITH(
      gpu::batchnorm_relu_maxpool_forward_train(p, w.data(), p, p, p, p, p, d.data(), 0, p, p, 2, 3,
                                                4, 4, 1e-5f, 0.1f, nullptr),
      Contains(std::string(fwd) + ": stats_tiles = 0 must be positive"));
  CHECK_THROWS_WITH(
      gpu::batchnorm_relu_maxpool_forward_train(p, w.data(), p, p, p, nullptr, p, d.data(), 1, p, p,
                                                2, 3, 4, 4, 1e-5f, 0.1f, nullptr),
      Contains("running_mean and running_var must both be given or both be null"));
  CHECK_THROWS_WITH(
      gpu::batchnorm_relu_maxpool_forward_train(p, nullptr, p, p, p, p, p, d.data(), 1, p, p, 2, 3,
                                                4, 4, 1e-5f, 0.1f, nullptr),
      Contains(std::string(fwd) + ": window must not be null"));
  CHECK_THROWS_WITH(
      gpu::batchnorm_relu_maxpool_forward_train(p, w.data(), p, p, p, p, p, d.data(), 1, p, p, 1, 3,
                                                2, 2, 1e-5f, 1.5f, nullptr),
      Contains("momentum = 1.5 must be in [0, 1]"));
  CHECK_THROWS_WITH(
      gpu::batchnorm_relu_maxpool_backward(p, p, p, p, w.data(), p, p, p, p, 2, 3, 4, 4, nullptr,
                                           nullptr),
      Contains("batchnorm_relu_maxpool_backward: workspace") && Contains("must not be null"));
  CHECK_THROWS_WITH(gpu::batchnorm_relu_maxpool_backward(p, p, p, p, w.data(), p, p, p, p, 2, 0, 4,
                                                         4, d.data(), nullptr),
                    Contains("batchnorm_relu_maxpool_backward: C = 0 must be positive"));
  CHECK_THROWS_WITH(
      gpu::batchnorm_fold_conv3x3(p, p + 9, p, p + 9, p, p, p, p, 1, 1, 1e-5f, nullptr),
      Contains("batchnorm_fold_conv3x3") && Contains("must not overwrite"));
  CHECK_THROWS_WITH(gpu::conv3x3_forward_bn_stats(p, nullptr, p, p, p, 1, 1, 1, 4, 4, nullptr),
                    Contains("conv3x3_forward_bn_stats: stats") && Contains("must not be null"));
  CHECK_THROWS_WITH(gpu::conv3x3_tc_forward_bn_stats(p, d.data(), p, p, p, 1, 0, 1, 4, 4, nullptr),
                    Contains("conv3x3_tc_forward_bn_stats: Cin = 0 must be positive"));
  const char* filter = "conv3x3_backward_filter_from_bn_maxpool";
  CHECK_THROWS_WITH(
      gpu::conv3x3_backward_filter_from_bn_maxpool(p, p, p, p, p, w.data(), p, p, p, p, p, 2, 1, 3,
                                                   6, 5, d.data(), p, nullptr),
      Contains(filter) && Contains("must both be even"));
  CHECK_THROWS_WITH(gpu::conv3x3_backward_filter_from_bn_maxpool(
                        p, p, p, p, p, nullptr, p, p, p, p, p, 2, 1, 3, 6, 6, d.data(), p, nullptr),
                    Contains(std::string(filter) + ": window must not be null"));
  CHECK_THROWS_WITH(gpu::conv3x3_backward_filter_from_bn_maxpool(
                        p, p, p, p, p, w.data(), p, p, p, p, p, 2, 1, 3, 6, 6, nullptr, p, nullptr),
                    Contains(std::string(filter) + ": bn_workspace"));
  CHECK(gpu::conv3x3_bn_stats_tiles(3, 28, 28) == 3 * 4);  // 16x16-pixel tiles
  CHECK(gpu::conv3x3_tc_bn_stats_tiles(3, 6, 10) == 3);    // 180 pixels in blocks of 64
  CHECK(emul::launches().empty());
}
