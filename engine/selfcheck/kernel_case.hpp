// engine/selfcheck/kernel_case.hpp: one kernel case of octa's case table, and how a runner runs it.
//
// A case is one launcher (or one fused pass) at one shape: it draws seeded random inputs (never
// zeros), computes the CPU reference (engine/cpu/ops.hpp, engine/optim), runs the launcher on a
// CaseDevice into poisoned outputs, downloads them and compares them with the reference under an
// entry of the one tolerance table (engine/core/tolerance.hpp). The table (kernel_cases.hpp for
// octa's own kernels, case_table.hpp for the whole of it) is what every runner runs and nothing
// else: the kernel emulator in CI (tests/emulation/emul_kernels_test.cpp), the [gpu] tests
// (tests/test_gpu_cases.cpp), octa_selftest and train_gpu's --conv auto check.
//
// A run yields a CaseResult: every comparison (max abs and rel error, the worst error over what the
// tolerance allows), an error if the case threw (a launcher's message, a CUDA error), the device
// time of the launches under test, and a digest of every byte downloaded, so that a runner can
// prove two runs bit-identical (the [gpu] tests run each case twice; the emulator reruns the small
// ones with every launch's blocks in reverse order).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/core/tolerance.hpp"
#include "engine/selfcheck/case_device.hpp"

namespace octa::selfcheck {

// Which 3x3-convolution implementation a case checks.
enum class ConvImpl {
  kNone,        // not a convolution (pooling, BatchNorm, ...: every --conv path uses it)
  kCudaCore,    // kernels/conv3x3.hpp
  kTensorCore,  // kernels/conv3x3_tc.hpp
  kCudnn,       // engine/gpu/cudnn_conv.hpp
};
const char* conv_impl_name(ConvImpl impl);  // "-", "cuda-core", "tensor-core", "cudnn"

// How big a case is, which decides which runners run it:
//   kSmall: odd shapes with partial tiles, and the models' channels at small batches: every
//           runner; the emulator runs it twice, the second time with every launch's blocks in
//           reverse order, and requires the same bits.
//   kModel: the models' real shapes at batch 64: every runner (the emulator once, blocks in
//           order: a few seconds each there) and train_gpu's --conv auto check.
//   kLarge: further full-size shapes (batch 67, 37, 1000, ...): the GPU runners only; on the
//           emulator they would add minutes for code paths the other two classes already reach.
enum class CaseSize { kSmall, kModel, kLarge };
const char* case_size_name(CaseSize size);  // "small", "model", "large"

// KernelCase::models: the models whose training step runs at the case's shape (batch 64).
inline constexpr unsigned kModelA = 1u, kModelB = 2u;

class CaseRun;

struct KernelCase {
  std::string name;       // unique: "<launcher> <shape>", e.g. "conv3x3_tc_forward N64 32>64 14x14"
  std::string group;      // "conv3x3", "conv3x3_tc", "cudnn", "pool", "batchnorm", ...
  std::string launcher;   // what runs, e.g. "gpu::conv3x3_tc_forward (kNone, kRelu)"
  std::string shape;      // "N=64 Cin=32 Cout=64 H=14 W=14"
  std::string reference;  // what it is compared with, e.g. "cpu::conv3x3_forward + relu_forward"
  Tolerance tolerance;    // its entry in octa::tol (a case may add tol::kExact comparisons)
  CaseSize size = CaseSize::kSmall;
  unsigned models = 0;  // kModelA | kModelB, for a model shape at batch 64
  ConvImpl conv = ConvImpl::kNone;
  int conv_cin = 0;          // a convolution's input channels (--conv fused picks by them)
  bool gpu_library = false;  // runs cuDNN or cuBLAS: the emulator cannot
  std::function<void(CaseRun&)> body;

  // Whether the kernel emulator runs it, and if not, why.
  bool emulated() const { return !gpu_library && size != CaseSize::kLarge; }
  std::string runners() const;  // "emulator, gpu" or "gpu (why not the emulator)"
};

struct CheckResult {
  std::string what;  // the tensor compared, e.g. "out (kRelu)"
  Tolerance tolerance;
  CompareResult cmp;
};

struct CaseResult {
  std::vector<CheckResult> checks;
  std::string error;         // what the case threw; a case that threw fails
  std::uint64_t digest = 0;  // of every byte downloaded, in order
  double kernel_ms = 0.0;    // device time of the launches under test
  double wall_ms = 0.0;      // the whole case: inputs, reference, copies, launches
  bool passed() const;
  // The comparison with the largest error relative to its tolerance (null: none ran).
  const CheckResult* worst() const;
  // Empty when passed; else the error, or each failing comparison's report.
  std::string failure() const;
};

// What a case's body is given: the device, its memory, and the comparisons it records.
class CaseRun {
 public:
  explicit CaseRun(CaseDevice& dev) : dev_(dev) {}

  CaseDevice& device() const { return dev_; }
  cudaStream_t stream() const { return dev_.stream(); }
  template <class T>
  DeviceArray<T> alloc(std::size_t n) {
    return DeviceArray<T>(dev_, n);
  }
  template <class T>
  DeviceArray<T> upload(const std::vector<T>& host) {
    return DeviceArray<T>(dev_, host);
  }
  // Every download goes into the digest.
  template <class T>
  std::vector<T> download(const T* p, std::size_t n) {
    std::vector<T> host(n);
    if (n > 0) dev_.download(host.data(), p, n * sizeof(T));
    fold(host.data(), n * sizeof(T));
    return host;
  }
  template <class T>
  std::vector<T> download(const DeviceArray<T>& d) {
    return download(d.data(), d.size());
  }
  // Runs f (the launches under test), timing it on the device.
  template <class F>
  void launch(F&& f) {
    dev_.timer_start();
    f();
    result_.kernel_ms += dev_.timer_stop_ms();
  }
  // One comparison under the tolerance rule; sizes must match.
  template <class G, class R>
  void check(const std::string& what, const std::vector<G>& got, const std::vector<R>& ref,
             const Tolerance& t) {
    OCTA_CHECK(got.size() == ref.size(), "{}: {} values against a reference of {}", what,
               got.size(), ref.size());
    result_.checks.push_back({what, t, compare(what, got.data(), ref.data(), got.size(), t)});
  }
  // A condition that is not a comparison of values (e.g. two steps' masks differ).
  void require(const std::string& what, bool ok);

  CaseResult& result() { return result_; }

 private:
  void fold(const void* bytes, std::size_t n);
  CaseDevice& dev_;
  CaseResult result_;
};

// Runs one case on `dev`: never throws for what the case does (its exception becomes the result's
// error), so a runner can report every case.
CaseResult run_case(const KernelCase& c, CaseDevice& dev);

}  // namespace octa::selfcheck
