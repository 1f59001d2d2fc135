// tests/test_gpu_library.cpp: what is specific to octa::gpu's library paths beyond their results
// (which the case table checks against the CPU reference, bit-identical run to run:
// engine/selfcheck/library_cases.cpp, run by test_gpu_cases.cpp): cuDNN's choice of deterministic
// algorithms, per-batch-size planning, a CUDA graph capture of a planned convolution, and the
// size checks of CudnnConv3x3 and the cuBLAS linear launchers.
#include <catch2/catch.hpp>

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
#include "engine/gpu/cudnn_conv.hpp"
#include "engine/gpu/linear.hpp"
#include "tests/support/compare.hpp"
#include "tests/support/gradcheck.hpp"
#include "tests/support/skip.hpp"

namespace {

using octa::cuda::DeviceBuffer;
using octa::gpu::Epilogue;
using octa::test::random_vector;
namespace tol = octa::test::tol;

// Batch sizes: one image, a few, the training batch, and one that is no multiple of anything.
constexpr int kBatchSizes[] = {1, 3, 64, 67};

// Output gradients are drawn in [-kGradScale, kGradScale]: the model's own scale (the loss is a
// mean over the batch). At |dout| ~ 1 the weight gradient of conv1 sums 67 * 784 = 52,528 terms of
// size ~1, whose float32 rounding (in the CPU reference as much as on the GPU) alone exceeds
// kGpuVsCpu's atol where the sum cancels to near zero: measured float-vs-double worst error 1.0x
// the tolerance at scale 1, 0.03x at scale 1e-2.
constexpr double kGradScale = 1e-2;

struct Gpu {
  octa::cuda::Stream stream;
  octa::cuda::CublasHandle blas;
  octa::cuda::CudnnHandle dnn;
};

// Every transfer and fill is ordered on the test's stream (a non-blocking stream does not wait for
// the legacy default stream).
DeviceBuffer<float> to_device(const std::vector<float>& host, cudaStream_t stream) {
  DeviceBuffer<float> d(host.size(), "test input");
  OCTA_CUDA_CHECK(
      cudaMemcpyAsync(d.data(), host.data(), d.bytes(), cudaMemcpyHostToDevice, stream));
  OCTA_CUDA_CHECK(cudaStreamSynchronize(stream));  // `host` may go away after we return
  return d;
}

std::vector<float> to_host(const DeviceBuffer<float>& d, cudaStream_t stream) {
  std::vector<float> host(d.size());
  OCTA_CUDA_CHECK(
      cudaMemcpyAsync(host.data(), d.data(), d.bytes(), cudaMemcpyDeviceToHost, stream));
  OCTA_CUDA_CHECK(cudaStreamSynchronize(stream));
  return host;
}

// All bytes 0xFF: every float is a NaN, so a value the library failed to write cannot pass.
void poison(DeviceBuffer<float>& d, cudaStream_t stream) {
  OCTA_CUDA_CHECK(cudaMemsetAsync(d.data(), 0xFF, d.bytes(), stream));
}

// A fresh output buffer of n floats, already poisoned.
DeviceBuffer<float> poisoned(std::size_t n, cudaStream_t stream) {
  DeviceBuffer<float> d(n, "test output");
  poison(d, stream);
  return d;
}

std::size_t sz(int v) {
  return static_cast<std::size_t>(v);
}

std::string label(const std::string& what, int N, Epilogue epilogue = Epilogue::kNone) {
  return what + " N=" + std::to_string(N) + (epilogue == Epilogue::kRelu ? " relu" : "");
}

std::uint64_t seed_for(int shape_index, int N) {
  return 0x11b0000u + static_cast<std::uint64_t>(shape_index) * 1000u +
         static_cast<std::uint64_t>(N) * 10u;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The cuDNN convolution at the model's two shapes.

namespace {

struct ConvShape {
  int cin, cout, hw;
  const char* name;
};
constexpr ConvShape kConvShapes[] = {{1, 32, 28, "conv1"}, {32, 64, 14, "conv2"}};

struct ConvData {
  int N;
  ConvShape s;
  std::vector<float> in, weight, bias, dout;
  ConvData(const ConvShape& shape, int n, std::uint64_t seed) : N(n), s(shape) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(s.cin) * 9.0);
    in = random_vector<float>(in_size(), seed, -1.0, 1.0);
    weight = random_vector<float>(weight_size(), seed + 1, -bound, bound);
    bias = random_vector<float>(sz(s.cout), seed + 2, -bound, bound);
    dout = random_vector<float>(out_size(), seed + 3, -kGradScale, kGradScale);
  }
  std::size_t in_size() const { return sz(N) * sz(s.cin) * sz(s.hw) * sz(s.hw); }
  std::size_t out_size() const { return sz(N) * sz(s.cout) * sz(s.hw) * sz(s.hw); }
  std::size_t weight_size() const { return sz(s.cout) * sz(s.cin) * 9; }

  std::vector<float> forward_ref(Epilogue epilogue) const {
    std::vector<float> out(out_size());
    octa::cpu::conv3x3_forward(out.data(), in.data(), weight.data(), bias.data(), N, s.cin, s.cout,
                               s.hw, s.hw);
    if (epilogue == Epilogue::kRelu) octa::cpu::relu_forward(out.data(), out.data(), out.size());
    return out;
  }
};

}  // namespace

TEST_CASE("CudnnConv3x3::describe names the three chosen algorithms", "[gpu][cudnn][conv]") {
  OCTA_REQUIRE_GPU();
  Gpu g;
  for (const ConvShape& s : kConvShapes) {
    octa::gpu::CudnnConv3x3 conv(g.dnn, s.cin, s.cout, s.hw, s.hw);
    conv.plan(64);
    const std::string text = conv.describe(64);
    INFO(s.name << ": " << text);
    CHECK_FALSE(text.empty());
    CHECK_THAT(text, Catch::Contains("fwd ") && Catch::Contains("bwd-data ") &&
                         Catch::Contains("bwd-filter ") && Catch::Contains("workspace"));
    // Deterministic choices only: never the atomics-based backward algorithms.
    CHECK_THAT(text, !Catch::Contains("bwd-data 0 (") && !Catch::Contains("bwd-filter 0 (") &&
                         !Catch::Contains("bwd-filter 3 ("));
    CHECK(conv.describe(64) == text);  // planning is idempotent
  }
}

TEST_CASE("CudnnConv3x3 plans several batch sizes up front and runs each with its own plan",
          "[gpu][cudnn][conv]") {
  OCTA_REQUIRE_GPU();
  Gpu g;
  const ConvShape& s = kConvShapes[1];
  octa::gpu::CudnnConv3x3 conv(g.dnn, s.cin, s.cout, s.hw, s.hw);
  for (const int N : kBatchSizes) conv.plan(N);
  for (const int N : kBatchSizes) conv.plan(N);  // again: no effect
  // Largest first, so a plan sized for a smaller batch being used by mistake would show.
  for (const int N : {67, 64, 3, 1}) {
    const ConvData d(s, N, seed_for(30, N));
    const auto ref = d.forward_ref(Epilogue::kRelu);
    const auto in = to_device(d.in, g.stream);
    const auto weight = to_device(d.weight, g.stream);
    const auto bias = to_device(d.bias, g.stream);
    auto out = poisoned(d.out_size(), g.stream);
    conv.forward(out.data(), in.data(), weight.data(), bias.data(), N, Epilogue::kRelu, g.stream);
    const auto got = to_host(out, g.stream);
    INFO(conv.describe(N));
    OCTA_CHECK_CLOSE(label("conv2 planned out", N, Epilogue::kRelu), got.data(), ref.data(),
                     ref.size(), tol::kGpuVsCpu);
  }
}

namespace {
struct GraphTraits {
  static void release(cudaGraph_t graph) { OCTA_CUDA_CHECK_NOTHROW(cudaGraphDestroy(graph)); }
};
using Graph = octa::cuda::UniqueHandle<cudaGraph_t, GraphTraits>;
}  // namespace

TEST_CASE(
    "A planned CudnnConv3x3 forward can be captured in a CUDA graph, an unplanned one refused",
    "[gpu][cudnn][conv][graph]") {
  OCTA_REQUIRE_GPU();
  Gpu g;
  const ConvShape& s = kConvShapes[1];
  const int N = 3;
  octa::gpu::CudnnConv3x3 conv(g.dnn, s.cin, s.cout, s.hw, s.hw);
  conv.plan(N);
  const ConvData d(s, N, seed_for(40, N));
  const auto ref = d.forward_ref(Epilogue::kRelu);
  const auto in = to_device(d.in, g.stream);
  const auto weight = to_device(d.weight, g.stream);
  const auto bias = to_device(d.bias, g.stream);
  DeviceBuffer<float> out(d.out_size(), "captured output");
  // One eager run first, as before any capture: the first launch of a kernel may load its module,
  // which is not allowed while capturing.
  conv.forward(out.data(), in.data(), weight.data(), bias.data(), N, Epilogue::kRelu, g.stream);
  OCTA_CUDA_CHECK(cudaStreamSynchronize(g.stream));

  cudaGraph_t raw = nullptr;
  OCTA_CUDA_CHECK(cudaStreamBeginCapture(g.stream, cudaStreamCaptureModeGlobal));
  conv.forward(out.data(), in.data(), weight.data(), bias.data(), N, Epilogue::kRelu, g.stream);
  OCTA_CUDA_CHECK(cudaStreamEndCapture(g.stream, &raw));
  const Graph graph(raw);
  cudaGraphExec_t raw_exec = nullptr;
  OCTA_CUDA_CHECK(cudaGraphInstantiate(&raw_exec, graph, 0));
  const octa::cuda::GraphExec exec(raw_exec);

  for (int replay = 0; replay < 2; ++replay) {
    poison(out, g.stream);
    OCTA_CUDA_CHECK(cudaGraphLaunch(exec, g.stream));
    const auto got = to_host(out, g.stream);
    OCTA_CHECK_CLOSE(
        label("conv2 graph replay " + std::to_string(replay) + " out", N, Epilogue::kRelu),
        got.data(), ref.data(), ref.size(), tol::kGpuVsCpu);
  }

  // A batch size that was never planned cannot be planned during capture (it allocates).
  cudaGraph_t raw_unplanned = nullptr;
  OCTA_CUDA_CHECK(cudaStreamBeginCapture(g.stream, cudaStreamCaptureModeGlobal));
  CHECK_THROWS_WITH(
      conv.forward(out.data(), in.data(), weight.data(), bias.data(), 5, Epilogue::kNone, g.stream),
      Catch::Contains("plan(5)"));
  OCTA_CUDA_CHECK(cudaStreamEndCapture(g.stream, &raw_unplanned));
  const Graph unplanned(raw_unplanned);
}

TEST_CASE("CudnnConv3x3 and the linear launchers reject bad sizes with a message",
          "[gpu][cudnn][linear]") {
  OCTA_REQUIRE_GPU();
  Gpu g;
  CHECK_THROWS_WITH(octa::gpu::CudnnConv3x3(g.dnn, 0, 32, 28, 28),
                    Catch::Contains("must be positive"));
  octa::gpu::CudnnConv3x3 conv(g.dnn, 1, 32, 28, 28);
  CHECK_THROWS_WITH(conv.plan(0), Catch::Contains("must be positive"));
  DeviceBuffer<float> buf(16);
  CHECK_THROWS_WITH(octa::gpu::linear_forward(buf.data(), buf.data(), buf.data(), buf.data(), 0, 4,
                                              4, Epilogue::kNone, g.blas, g.stream),
                    Catch::Contains("must be positive"));
}
