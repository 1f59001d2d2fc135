// tests/test_gpu_conv.cpp: octa's own 3x3 convolution kernels, on the CUDA cores
// (kernels/conv3x3.hpp) and on the tensor cores (kernels/conv3x3_tc.hpp, 3xTF32), against the CPU
// reference (engine/cpu/ops.hpp) in float: the forward with each epilogue, the fused ReLU +
// max-pool forward, backward data, backward filter (bit-identical from run to run), and the
// launchers' argument checks, which run before any CUDA call and so are tested without a device
// too. The two sets of launchers take the same arguments and must give the same results within
// the same tolerance, so each test body runs on both.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/device_probe.hpp"
#include "engine/core/error.hpp"
#include "engine/cpu/ops.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/raii.hpp"
#include "kernels/conv3x3.hpp"
#include "kernels/pool.hpp"
#include "tests/support/compare.hpp"
#include "tests/support/conv_launchers.hpp"
#include "tests/support/gradcheck.hpp"
#include "tests/support/skip.hpp"

namespace cpu = octa::cpu;
namespace gpu = octa::gpu;
namespace tol = octa::test::tol;
using octa::cuda::DeviceBuffer;
using octa::test::random_vector;

namespace {

std::size_t sz(int v) {
  return static_cast<std::size_t>(v);
}

struct Shape {
  int N, Cin, Cout, H, W;

  std::size_t in_size() const { return sz(N) * sz(Cin) * sz(H) * sz(W); }
  std::size_t out_size() const { return sz(N) * sz(Cout) * sz(H) * sz(W); }
  std::size_t weight_size() const { return sz(Cout) * sz(Cin) * 9; }
  std::size_t pooled_size() const { return sz(N) * sz(Cout) * sz(H / 2) * sz(W / 2); }
  bool even() const { return H % 2 == 0 && W % 2 == 0; }
  std::string str() const {
    return "N=" + std::to_string(N) + " Cin=" + std::to_string(Cin) +
           " Cout=" + std::to_string(Cout) + " H=" + std::to_string(H) + " W=" + std::to_string(W);
  }
};

using ConvKernels = octa::test::ConvLaunchers;
const ConvKernels& kCudaCore = octa::test::kCudaCoreConv;
const ConvKernels& kTensorCore = octa::test::kTensorCoreConv;

// Model A's two convolutions at batch sizes on and off the kernels' block sizes, then small shapes
// that reach what the model shapes do not: odd H and W (partial 2x2 patches), channel counts that
// leave partial channel tiles (Cin = 9, Cout = 33), widths over one 32-column chunk (W = 35, 37),
// and one input channel with a wide image (the Cin = 1 filter-gradient path). The last ones are
// for the tensor-core tiles (8 input channels per chunk; 32 or 64 output channels per block;
// GEMM rows of N*H*W pixels): conv2 at a batch that is a multiple of nothing, 8 -> 16 channels at
// odd sizes, Cin and Cout that are not multiples of 8 (12 -> 20), and Cout = 72 (a partial second
// block of 64) from Cin = 40.
std::vector<Shape> all_shapes() {
  std::vector<Shape> shapes;
  for (const int N : {1, 3, 64, 67}) shapes.push_back({N, 1, 32, 28, 28});   // conv1
  for (const int N : {1, 3, 64, 67}) shapes.push_back({N, 32, 64, 14, 14});  // conv2
  shapes.push_back({2, 3, 5, 5, 7});
  shapes.push_back({2, 9, 33, 5, 35});
  shapes.push_back({3, 1, 3, 11, 37});
  shapes.push_back({37, 32, 64, 14, 14});
  shapes.push_back({3, 8, 16, 9, 7});
  shapes.push_back({37, 8, 16, 9, 7});
  shapes.push_back({3, 12, 20, 11, 13});
  shapes.push_back({2, 40, 72, 5, 9});
  return shapes;
}

// For the fused max-pool, which needs even H and W: the model shapes and even counterparts of the
// small ones.
std::vector<Shape> even_shapes() {
  std::vector<Shape> shapes;
  for (const Shape& s : all_shapes()) {
    if (s.even()) shapes.push_back(s);
  }
  shapes.push_back({2, 3, 5, 6, 8});
  shapes.push_back({2, 9, 33, 6, 34});
  shapes.push_back({3, 1, 3, 10, 36});
  shapes.push_back({3, 8, 16, 10, 8});
  shapes.push_back({37, 12, 20, 6, 10});
  shapes.push_back({2, 40, 72, 4, 6});
  return shapes;
}

// Random inputs in [-1, 1] (never zero) and parameters at PyTorch's initial scale,
// +-1/sqrt(fan_in), so sums have the magnitudes of a real step.
struct ConvInputs {
  std::vector<float> in, weight, bias;
};

ConvInputs make_inputs(const Shape& s, std::uint64_t seed) {
  const double bound = 1.0 / std::sqrt(9.0 * s.Cin);
  return {random_vector<float>(s.in_size(), seed),
          random_vector<float>(s.weight_size(), seed + 1, -bound, bound),
          random_vector<float>(sz(s.Cout), seed + 2, -bound, bound)};
}

// Copies and launches share one stream, so they run in order; every read-back synchronises.
class Device {
 public:
  DeviceBuffer<float> upload(const std::vector<float>& host) {
    DeviceBuffer<float> d(host.size(), "test input");
    OCTA_CUDA_CHECK(
        cudaMemcpyAsync(d.data(), host.data(), d.bytes(), cudaMemcpyHostToDevice, stream_));
    OCTA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return d;
  }
  // 0xFF bytes are a NaN in every float: an element a kernel fails to write cannot pass.
  void poison(DeviceBuffer<float>& d) {
    OCTA_CUDA_CHECK(cudaMemsetAsync(d.data(), 0xFF, d.bytes(), stream_));
  }
  DeviceBuffer<float> poisoned(std::size_t n, const char* what) {
    DeviceBuffer<float> d(n, what);
    poison(d);
    return d;
  }
  std::vector<float> download(const DeviceBuffer<float>& d) {
    std::vector<float> host(d.size());
    OCTA_CUDA_CHECK(
        cudaMemcpyAsync(host.data(), d.data(), d.bytes(), cudaMemcpyDeviceToHost, stream_));
    OCTA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return host;
  }
  cudaStream_t stream() const { return stream_; }

 private:
  octa::cuda::Stream stream_;
};

// ---------------------------------------------------------------------------------------------
// The test bodies, for either set of launchers.

void check_forward(const ConvKernels& k) {
  Device dev;
  std::uint64_t seed = 100;
  for (const Shape& s : all_shapes()) {
    INFO(k.prefix << ": " << s.str());
    const ConvInputs x = make_inputs(s, seed += 10);
    std::vector<float> ref(s.out_size()), ref_relu(s.out_size());
    cpu::conv3x3_forward(ref.data(), x.in.data(), x.weight.data(), x.bias.data(), s.N, s.Cin,
                         s.Cout, s.H, s.W);
    cpu::relu_forward(ref_relu.data(), ref.data(), ref.size());

    const DeviceBuffer<float> in = dev.upload(x.in), weight = dev.upload(x.weight),
                              bias = dev.upload(x.bias);
    DeviceBuffer<float> out(s.out_size(), "conv output");
    for (const gpu::Epilogue epilogue : {gpu::Epilogue::kNone, gpu::Epilogue::kRelu}) {
      const bool relu = epilogue == gpu::Epilogue::kRelu;
      dev.poison(out);
      k.forward(out.data(), in.data(), weight.data(), bias.data(), s.N, s.Cin, s.Cout, s.H, s.W,
                epilogue, dev.stream());
      const std::vector<float> got = dev.download(out);
      OCTA_CHECK_CLOSE(k.name("forward") + (relu ? " (kRelu)" : " (kNone)"), got.data(),
                       (relu ? ref_relu : ref).data(), got.size(), tol::kGpuVsCpu);
    }
  }
}

void check_relu_maxpool_forward(const ConvKernels& k) {
  Device dev;
  std::uint64_t seed = 200;
  for (const Shape& s : even_shapes()) {
    INFO(k.prefix << ": " << s.str());
    const ConvInputs x = make_inputs(s, seed += 10);
    std::vector<float> conv(s.out_size()), act(s.out_size()), pooled(s.pooled_size());
    cpu::conv3x3_forward(conv.data(), x.in.data(), x.weight.data(), x.bias.data(), s.N, s.Cin,
                         s.Cout, s.H, s.W);
    cpu::relu_forward(act.data(), conv.data(), act.size());
    cpu::maxpool2x2_forward(pooled.data(), act.data(), s.N, s.Cout, s.H, s.W);

    const DeviceBuffer<float> in = dev.upload(x.in), weight = dev.upload(x.weight),
                              bias = dev.upload(x.bias);
    DeviceBuffer<float> d_act = dev.poisoned(s.out_size(), "activation");
    DeviceBuffer<float> d_pooled = dev.poisoned(s.pooled_size(), "pooled");
    k.relu_maxpool_forward(d_pooled.data(), d_act.data(), in.data(), weight.data(), bias.data(),
                           s.N, s.Cin, s.Cout, s.H, s.W, dev.stream());
    const std::vector<float> got_act = dev.download(d_act), got_pooled = dev.download(d_pooled);
    OCTA_CHECK_CLOSE(k.name("relu_maxpool_forward act"), got_act.data(), act.data(), act.size(),
                     tol::kGpuVsCpu);
    OCTA_CHECK_CLOSE(k.name("relu_maxpool_forward pooled"), got_pooled.data(), pooled.data(),
                     pooled.size(), tol::kGpuVsCpu);
  }
}

void check_backward_data(const ConvKernels& k) {
  Device dev;
  std::uint64_t seed = 300;
  for (const Shape& s : all_shapes()) {
    INFO(k.prefix << ": " << s.str());
    const ConvInputs x = make_inputs(s, seed += 10);
    const std::vector<float> dout = random_vector<float>(s.out_size(), seed + 5);
    std::vector<float> din(s.in_size()), dweight(s.weight_size()), dbias(sz(s.Cout));
    cpu::conv3x3_backward(din.data(), dweight.data(), dbias.data(), dout.data(), x.in.data(),
                          x.weight.data(), s.N, s.Cin, s.Cout, s.H, s.W);

    const DeviceBuffer<float> d_dout = dev.upload(dout), weight = dev.upload(x.weight);
    DeviceBuffer<float> d_din = dev.poisoned(s.in_size(), "input gradient");
    k.backward_data(d_din.data(), d_dout.data(), weight.data(), s.N, s.Cin, s.Cout, s.H, s.W,
                    dev.stream());
    const std::vector<float> got = dev.download(d_din);
    OCTA_CHECK_CLOSE(k.name("backward_data din"), got.data(), din.data(), din.size(),
                     tol::kGpuVsCpu);
  }
}

void check_backward_filter(const ConvKernels& k) {
  Device dev;
  std::uint64_t seed = 400;
  for (const Shape& s : all_shapes()) {
    INFO(k.prefix << ": " << s.str());
    const ConvInputs x = make_inputs(s, seed += 10);
    // dout at the scale of a real gradient (the loss is a batch mean, so |dout| ~ 1/batch). Each
    // dweight sums N*H*W products (50,176 for conv1 at N = 64): with O(1) dout, float rounding
    // alone, the CPU reference's as much as the kernel's, is ~1e-5 absolute, over kGpuVsCpu's atol
    // for the few weights whose sum cancels to near zero; at this scale it is ~1e-6.
    const std::vector<float> dout =
        random_vector<float>(s.out_size(), seed + 5, -1.0 / 64, 1.0 / 64);
    std::vector<float> din(s.in_size()), dweight(s.weight_size()), dbias(sz(s.Cout));
    cpu::conv3x3_backward(din.data(), dweight.data(), dbias.data(), dout.data(), x.in.data(),
                          x.weight.data(), s.N, s.Cin, s.Cout, s.H, s.W);

    const DeviceBuffer<float> d_dout = dev.upload(dout), in = dev.upload(x.in);
    // Both sets of launchers use conv3x3_backward_filter_workspace's size.
    const std::size_t ws_size =
        gpu::conv3x3_backward_filter_workspace(s.N, s.Cin, s.Cout, s.H, s.W);
    REQUIRE(ws_size > 0);
    // The workspace is poisoned too: every partial must be written before it is summed.
    DeviceBuffer<float> workspace = dev.poisoned(ws_size, "backward-filter workspace");
    DeviceBuffer<float> d_dweight = dev.poisoned(s.weight_size(), "weight gradient");
    DeviceBuffer<float> d_dbias = dev.poisoned(sz(s.Cout), "bias gradient");
    const auto run = [&] {
      k.backward_filter(d_dweight.data(), d_dbias.data(), d_dout.data(), in.data(), s.N, s.Cin,
                        s.Cout, s.H, s.W, workspace.data(), dev.stream());
    };
    run();
    const std::vector<float> got_dw = dev.download(d_dweight), got_db = dev.download(d_dbias);
    OCTA_CHECK_CLOSE(k.name("backward_filter dweight"), got_dw.data(), dweight.data(),
                     dweight.size(), tol::kGpuVsCpu);
    OCTA_CHECK_CLOSE(k.name("backward_filter dbias"), got_db.data(), dbias.data(), dbias.size(),
                     tol::kGpuVsCpu);

    // Determinism: a second run from freshly poisoned buffers gives the same bits.
    dev.poison(workspace);
    dev.poison(d_dweight);
    dev.poison(d_dbias);
    run();
    const std::vector<float> again_dw = dev.download(d_dweight), again_db = dev.download(d_dbias);
    OCTA_CHECK_CLOSE(k.name("backward_filter dweight, second run"), again_dw.data(), got_dw.data(),
                     got_dw.size(), tol::kExact);
    OCTA_CHECK_CLOSE(k.name("backward_filter dbias, second run"), again_db.data(), got_db.data(),
                     got_db.size(), tol::kExact);
  }
}

// The argument checks both sets share (kernels/conv3x3_plan.hpp's size checks, then the
// pointers): each message names the launcher and the argument.
void check_argument_errors(const ConvKernels& k) {
  using Catch::Contains;
  float dummy[1] = {0.f};
  float* p = dummy;
  const gpu::Epilogue none = gpu::Epilogue::kNone;
  const std::string fwd = k.name("forward"), pool = k.name("relu_maxpool_forward"),
                    data = k.name("backward_data"), filter = k.name("backward_filter");
  INFO(k.prefix);

  CHECK_THROWS_AS(k.forward(p, p, p, p, 0, 1, 1, 4, 4, none, nullptr), octa::Error);
  CHECK_THROWS_WITH(k.forward(p, p, p, p, 0, 1, 1, 4, 4, none, nullptr),
                    Contains(fwd + ": N = 0 must be positive"));
  CHECK_THROWS_WITH(k.forward(p, p, p, p, 1, -2, 1, 4, 4, none, nullptr),
                    Contains(fwd + ": Cin = -2 must be positive"));
  CHECK_THROWS_WITH(k.forward(p, p, p, p, 1, 1, 0, 4, 4, none, nullptr),
                    Contains(fwd + ": Cout = 0 must be positive"));
  CHECK_THROWS_WITH(k.forward(p, p, p, p, 1, 1, 1, 0, 4, none, nullptr),
                    Contains(fwd + ": H = 0 must be positive"));
  CHECK_THROWS_WITH(k.forward(p, p, p, p, 1, 1, 1, 4, -1, none, nullptr),
                    Contains(fwd + ": W = -1 must be positive"));
  CHECK_THROWS_WITH(k.forward(p, p, p, p, 1, 1, 1, 65536, 65536, none, nullptr),
                    Contains(fwd) && Contains("H * W = 4294967296 is too large"));
  CHECK_THROWS_WITH(k.forward(p, nullptr, p, p, 1, 1, 1, 4, 4, none, nullptr),
                    Contains(fwd + ": in must not be null"));
  CHECK_THROWS_WITH(k.forward(p, p, p, nullptr, 1, 1, 1, 4, 4, none, nullptr),
                    Contains(fwd + ": bias must not be null"));
  CHECK_THROWS_WITH(k.forward(p, p, p, p, 1, 1, 1, 4, 4, static_cast<gpu::Epilogue>(7), nullptr),
                    Contains(fwd + ": unknown epilogue 7"));

  CHECK_THROWS_WITH(k.relu_maxpool_forward(p, p, p, p, p, 2, 3, 5, 5, 8, nullptr),
                    Contains(pool + ": H = 5 and W = 8") && Contains("must both be even"));
  CHECK_THROWS_WITH(k.relu_maxpool_forward(p, p, p, p, p, 0, 3, 5, 6, 8, nullptr),
                    Contains(pool + ": N = 0 must be positive"));
  CHECK_THROWS_WITH(k.relu_maxpool_forward(p, p, p, p, p, 2, 3, 0, 6, 8, nullptr),
                    Contains(pool + ": Cout = 0 must be positive"));
  CHECK_THROWS_WITH(k.relu_maxpool_forward(p, nullptr, p, p, p, 2, 3, 5, 6, 8, nullptr),
                    Contains(pool + ": act must not be null"));
  CHECK_THROWS_WITH(k.relu_maxpool_forward(nullptr, p, p, p, p, 2, 3, 5, 6, 8, nullptr),
                    Contains(pool + ": pooled must not be null"));

  CHECK_THROWS_WITH(k.backward_data(p, p, p, 0, 2, 5, 6, 8, nullptr),
                    Contains(data + ": N = 0 must be positive"));
  CHECK_THROWS_WITH(k.backward_data(p, p, p, 3, 0, 5, 6, 8, nullptr),
                    Contains(data + ": Cin = 0 must be positive"));
  CHECK_THROWS_WITH(k.backward_data(nullptr, p, p, 3, 2, 5, 6, 8, nullptr),
                    Contains(data + ": din must not be null"));
  CHECK_THROWS_WITH(k.backward_data(p, p, nullptr, 3, 2, 5, 6, 8, nullptr),
                    Contains(data + ": weight must not be null"));

  CHECK_THROWS_WITH(k.backward_filter(p, p, p, p, 0, 2, 3, 4, 4, p, nullptr),
                    Contains(filter + ": N = 0 must be positive"));
  CHECK_THROWS_WITH(k.backward_filter(p, p, p, p, -1, 2, 3, 4, 4, p, nullptr),
                    Contains(filter + ": N = -1 must be positive"));
  CHECK_THROWS_WITH(k.backward_filter(p, nullptr, p, p, 1, 2, 3, 4, 4, p, nullptr),
                    Contains(filter + ": dbias must not be null"));
  CHECK_THROWS_WITH(k.backward_filter(p, p, p, p, 1, 2, 3, 4, 4, nullptr, nullptr),
                    Contains(filter + ": workspace") && Contains("must not be null"));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// CUDA cores (kernels/conv3x3.hpp)

TEST_CASE("conv3x3_forward matches the CPU reference, with and without ReLU", "[gpu][conv]") {
  OCTA_REQUIRE_GPU();
  check_forward(kCudaCore);
}

TEST_CASE("conv3x3_relu_maxpool_forward matches conv, relu and maxpool2x2 on the CPU",
          "[gpu][conv]") {
  OCTA_REQUIRE_GPU();
  check_relu_maxpool_forward(kCudaCore);
}

TEST_CASE("conv3x3_backward_data matches the CPU reference's input gradient", "[gpu][conv]") {
  OCTA_REQUIRE_GPU();
  check_backward_data(kCudaCore);
}

TEST_CASE("conv3x3_backward_filter matches the CPU reference and is bit-identical run to run",
          "[gpu][conv]") {
  OCTA_REQUIRE_GPU();
  check_backward_filter(kCudaCore);
}

TEST_CASE(
    "conv3x3_backward_filter_from_maxpool equals maxpool2x2_backward then "
    "conv3x3_backward_filter bit for bit",
    "[gpu][conv]") {
  OCTA_REQUIRE_GPU();
  Device dev;
  std::uint64_t seed = 700;
  for (const Shape& s : even_shapes()) {
    INFO(s.str());
    const ConvInputs x = make_inputs(s, seed += 10);
    // The pool's input is a ReLU output with ties (multiples of 1/4) and zeros.
    std::vector<float> act = random_vector<float>(s.out_size(), seed + 3);
    for (float& v : act) v = std::max(0.0f, std::round(v * 4.0f) / 4.0f);
    const std::vector<float> dpool =
        random_vector<float>(s.pooled_size(), seed + 4, -1.0 / 64, 1.0 / 64);
    const DeviceBuffer<float> d_act = dev.upload(act), d_dpool = dev.upload(dpool),
                              in = dev.upload(x.in);
    const std::size_t ws_size =
        gpu::conv3x3_backward_filter_workspace(s.N, s.Cin, s.Cout, s.H, s.W);
    DeviceBuffer<float> workspace = dev.poisoned(ws_size, "backward-filter workspace");
    DeviceBuffer<float> d_dconv = dev.poisoned(s.out_size(), "conv output gradient");
    DeviceBuffer<float> d_dweight = dev.poisoned(s.weight_size(), "weight gradient");
    DeviceBuffer<float> d_dbias = dev.poisoned(sz(s.Cout), "bias gradient");
    gpu::maxpool2x2_backward(d_dconv.data(), d_dpool.data(), d_act.data(), s.N, s.Cout, s.H, s.W,
                             /*relu_before=*/true, dev.stream());
    gpu::conv3x3_backward_filter(d_dweight.data(), d_dbias.data(), d_dconv.data(), in.data(), s.N,
                                 s.Cin, s.Cout, s.H, s.W, workspace.data(), dev.stream());
    const std::vector<float> two_dw = dev.download(d_dweight), two_db = dev.download(d_dbias);
    dev.poison(workspace);
    dev.poison(d_dweight);
    dev.poison(d_dbias);
    gpu::conv3x3_backward_filter_from_maxpool(d_dweight.data(), d_dbias.data(), d_dpool.data(),
                                              d_act.data(), in.data(), s.N, s.Cin, s.Cout, s.H, s.W,
                                              workspace.data(), dev.stream());
    const std::vector<float> got_dw = dev.download(d_dweight), got_db = dev.download(d_dbias);
    OCTA_CHECK_CLOSE("fused dweight vs the two passes", got_dw.data(), two_dw.data(), two_dw.size(),
                     tol::kExact);
    OCTA_CHECK_CLOSE("fused dbias vs the two passes", got_db.data(), two_db.data(), two_db.size(),
                     tol::kExact);
  }
}

// ---------------------------------------------------------------------------------------------
// Tensor cores (kernels/conv3x3_tc.hpp): the same bodies, shapes and tolerances.

TEST_CASE("conv3x3_tc_forward matches the CPU reference, with and without ReLU",
          "[gpu][conv][tc]") {
  OCTA_REQUIRE_GPU();
  check_forward(kTensorCore);
}

TEST_CASE("conv3x3_tc_relu_maxpool_forward matches conv, relu and maxpool2x2 on the CPU",
          "[gpu][conv][tc]") {
  OCTA_REQUIRE_GPU();
  check_relu_maxpool_forward(kTensorCore);
}

TEST_CASE("conv3x3_tc_backward_data matches the CPU reference's input gradient",
          "[gpu][conv][tc]") {
  OCTA_REQUIRE_GPU();
  check_backward_data(kTensorCore);
}

TEST_CASE("conv3x3_tc_backward_filter matches the CPU reference and is bit-identical run to run",
          "[gpu][conv][tc]") {
  OCTA_REQUIRE_GPU();
  check_backward_filter(kTensorCore);
}

// ---------------------------------------------------------------------------------------------
// Argument checks

// No OCTA_REQUIRE_GPU: every launcher validates its arguments before its first CUDA call, so these
// throw the same octa::Error with or without a device (a launch reaching the device would fail
// differently, with a CudaError that names no size).
TEST_CASE("conv3x3_tc launchers reject bad sizes and null pointers, naming the launcher",
          "[conv][check][tc]") {
  check_argument_errors(kTensorCore);
}

TEST_CASE("conv3x3 launchers reject bad sizes and null pointers, naming the problem",
          "[conv][check]") {
  check_argument_errors(kCudaCore);
  // The checks only the CUDA-core launchers have: their grid limits differ from the tensor
  // cores', and the workspace's size function and the max-pool-fused filter gradient are theirs.
  using Catch::Contains;
  float dummy[1] = {0.f};
  float* p = dummy;
  const gpu::Epilogue none = gpu::Epilogue::kNone;
  CHECK_THROWS_WITH(gpu::conv3x3_forward(p, p, p, p, 1, 1, 70000 * 16, 4, 4, none, nullptr),
                    Contains("conv3x3_forward") && Contains("more than the grid allows"));
  CHECK_THROWS_WITH(
      gpu::conv3x3_backward_filter_workspace(1, 1, 1, 4, 0),
      Contains("conv3x3_backward_filter_workspace") && Contains("W = 0 must be positive"));
  CHECK_THROWS_WITH(
      gpu::conv3x3_backward_filter_from_maxpool(p, p, p, p, p, 1, 2, 3, 5, 4, p, nullptr),
      Contains("conv3x3_backward_filter_from_maxpool") && Contains("must both be even"));
}
