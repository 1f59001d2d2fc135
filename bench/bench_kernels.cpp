// bench/bench_kernels.cpp: octa's CUDA kernels one by one, at the model's real shapes, against
// their cuDNN or cuBLAS counterparts and against the card's measured peaks: a large
// device-to-device copy (bandwidth) and a large cuBLAS SGEMM (FP32 throughput).
//
//   bench_kernels [--batches 64,1024] [--reps 50] [--warmup 10] [--filter conv] [--json PATH]
//
// Each row gives a kernel's median time per call, its GFLOP/s and GB/s from counts written out in
// this file (FLOPs = 2 x multiply-adds; bytes = each input read once and each output written once,
// the least any implementation must move), and the percentage of the peak that bounds it: the
// larger of (GFLOP/s over the SGEMM peak) and (GB/s over the copy peak), as a roofline would pick.
// Kernels with a cuDNN or cuBLAS counterpart (convolutions, pooling, BatchNorm; the bare cuBLAS
// GEMMs under the linear layers) are timed against it at the same shape; the elementwise kernels,
// the loss and the optimisers have none. Model B's fused stages (conv + BatchNorm + ReLU + pool:
// training forward, backward, the folded eval form) are timed against cuDNN's sequence and against
// octa's unfused kernels they replace, with the bytes each moves counted pass by pass. The
// convolutions come in two rows where the layer has Cin >= 8 (conv2): octa's CUDA-core kernel
// (conv3x3_*, --conv fused-fp32) and its tensor-core twin (conv3x3_tc_*, 3xTF32, what --conv fused
// runs there), with the same counts and the same counterpart; the tensor-core row also gives its
// time against the CUDA-core kernel's. Their % of peak is still against the FP32 SGEMM peak, so it
// may pass 100% (3xTF32's own ceiling is about a third of the TF32 GEMM peak printed for
// reference). Host code only: it calls the launchers of kernels/*.hpp and engine/gpu/*.hpp and the
// CUDA runtime, cuBLAS and cuDNN.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "engine/core/atomic_file.hpp"
#include "engine/core/device_probe.hpp"
#include "engine/core/error.hpp"
#include "engine/core/log.hpp"
#include "engine/core/philox.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/cudnn_descriptors.hpp"
#include "engine/cuda/raii.hpp"
#include "engine/gpu/cudnn_conv.hpp"
#include "engine/gpu/linear.hpp"
#include "engine/model/cpu_model.hpp"
#include "engine/model/param_table.hpp"
#include "kernels/batchnorm.hpp"
#include "kernels/batchnorm_fused.hpp"
#include "kernels/conv3x3.hpp"
#include "kernels/conv3x3_tc.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/logit_head.hpp"
#include "kernels/loss.hpp"
#include "kernels/optimizer.hpp"
#include "kernels/pool.hpp"

// The cuDNN counterparts of pooling and BatchNorm are cuDNN 9's legacy API, which it marks
// deprecated (the attribute only expands with CUDNN_WARN_DEPRECATED). A benchmark of that API
// should not fail a -Werror build if someone defines it, so the warning is off in this file.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace {

using octa::cuda::DeviceBuffer;
using octa::gpu::Epilogue;

constexpr std::uint64_t kSeed = 20240501;  // every input comes from this Philox key
constexpr float kBnEps = 1e-5f, kBnMomentum = 0.1f;
constexpr std::size_t kCublasWorkspaceBytes = std::size_t{32} << 20;  // as the CUDA backend

// ================================================================================================
// Options and results
// ================================================================================================

struct Options {
  std::vector<int> batches{64, 1024};
  int reps = 50;
  int warmup = 10;
  std::string filter;
  std::string json;
  int copy_mib = 1024;
  int gemm_size = 8192;
  int device = 0;
};

// The least a call must do: FLOPs (2 per multiply-add) and bytes (inputs read once, outputs
// written once). Each kernel's formulas are in a comment where its Work is built.
struct Work {
  double flops = 0.0;
  double bytes = 0.0;
};

struct Timing {
  double us = 0.0;     // median time of one call
  int per_replay = 0;  // calls captured in the graph that was replayed (see Timer)
};

struct Peaks {
  double copy_gbs = 0.0;      // device-to-device copy, read + write bytes
  double sgemm_gflops = 0.0;  // cuBLAS SGEMM, FP32 FMA: the arithmetic octa's kernels use
  double tf32_gflops = 0.0;   // cuBLAS GEMM on TF32 tensor cores: reported, not a % reference
};

struct Counterpart {
  std::string name;    // short, for the table
  std::string detail;  // e.g. the cuDNN algorithms chosen, for the JSON
  std::function<void()> op;
};

struct Row {
  Row(std::string kernel_name, std::string shape_text, int batch_size, Work counts)
      : kernel(std::move(kernel_name)),
        shape(std::move(shape_text)),
        batch(batch_size),
        work(counts) {}
  std::string kernel, shape;
  int batch = 0;  // 0: not batched (the optimisers)
  Work work;
  std::optional<Timing> time;
  std::string error;
  std::string counterpart, counterpart_detail;  // empty: none
  std::optional<Timing> counterpart_time;
  std::string counterpart_error;
  // Tensor-core convolutions: the CUDA-core kernel of the same pass and its time (empty: none).
  std::string cuda_core;
  std::optional<Timing> cuda_core_time;
  // Model B's fused BatchNorm stages: octa's unfused kernels that they replace, their bytes as
  // counted pass by pass, and their time (empty: none).
  std::string unfused;
  double unfused_bytes = 0.0;
  std::optional<Timing> unfused_time;
};

double gflop_per_s(const Work& w, double us) {
  return w.flops / (us * 1e3);
}
double gb_per_s(const Work& w, double us) {
  return w.bytes / (us * 1e3);
}

// Roofline: the fraction of the limit that binds this call, in percent, and that limit's name.
struct Bound {
  double percent;
  const char* peak;
};
Bound bound_of(const Work& w, double us, const Peaks& p) {
  const double of_sgemm = w.flops > 0.0 ? gflop_per_s(w, us) / p.sgemm_gflops : 0.0;
  const double of_copy = gb_per_s(w, us) / p.copy_gbs;
  return of_sgemm >= of_copy ? Bound{100.0 * of_sgemm, "sgemm"} : Bound{100.0 * of_copy, "copy"};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// ================================================================================================
// Inputs: uniform in [lo, hi) from one fixed-seed Philox stream, drawn on the host and copied once.
// A buffer larger than kFillBlock repeats one random block (the peaks' buffers: drawing a GiB
// would take seconds and change nothing a copy or a GEMM does).
// ================================================================================================

class Filler {
 public:
  DeviceBuffer<float> floats(std::size_t n, float lo, float hi, const char* what) {
    DeviceBuffer<float> buf(n, what);
    std::vector<float> host(std::min(n, kFillBlock));
    for (float& x : host) x = lo + (hi - lo) * rng_.next_uniform01();
    upload(buf.data(), host.data(), host.size(), n);
    return buf;
  }

  // Bytes of 0 or 1, about half each (dropout masks).
  DeviceBuffer<std::uint8_t> bits(std::size_t n, const char* what) {
    DeviceBuffer<std::uint8_t> buf(n, what);
    std::vector<std::uint8_t> host(std::min(n, kFillBlock));
    for (auto& x : host) x = static_cast<std::uint8_t>(rng_.next_u32() & 1u);
    upload(buf.data(), host.data(), host.size(), n);
    return buf;
  }

 private:
  static constexpr std::size_t kFillBlock = std::size_t{1} << 22;

  template <class T>
  static void upload(T* dst, const T* block, std::size_t block_count, std::size_t n) {
    for (std::size_t off = 0; off < n; off += block_count) {
      const std::size_t count = std::min(block_count, n - off);
      OCTA_CUDA_CHECK(cudaMemcpy(dst + off, block, count * sizeof(T), cudaMemcpyHostToDevice));
    }
  }

  octa::PhiloxStream rng_{kSeed, 0};
};

// ================================================================================================
// Timing
//
// Every op (one call of a launcher, or of its counterpart, which may be several launches) is
// timed the same way:
//   1. `warmup` eager calls, then a wait: lazy module loading, cuBLAS/cuDNN set-up, first touches.
//   2. The op is captured `k` times back to back into a CUDA graph on the one stream, and the graph
//      is replayed `reps` times with an event recorded between consecutive replays; each replay's
//      time divided by k is one sample; the result is the median sample.
// Why a graph: the training step runs as one, and many of these kernels take 2-10 us, less than
// the host needs to launch them (argument checks, NVTX, cudaLaunchKernel): timing single eager
// launches would time the host. Replays are enqueued without waiting, so the GPU never idles
// between them and each event pair brackets GPU work only.
// Why k calls per replay: an event pair resolves about half a microsecond and a graph launch adds
// a little GPU time of its own; k is chosen so that one replay lasts about kTargetReplayUs (from a
// probe replay of kProbeCalls calls), which makes both negligible. Ops longer than that get k = 1.
// So a figure is what a call costs inside a CUDA graph, the gaps between dependent kernels
// included, with a call's inputs still in L2 for the next call when they fit (the L2 column).
// ================================================================================================

struct GraphTraits {
  static void release(cudaGraph_t g) { OCTA_CUDA_CHECK_NOTHROW(cudaGraphDestroy(g)); }
};
using Graph = octa::cuda::UniqueHandle<cudaGraph_t, GraphTraits>;

class Timer {
 public:
  static constexpr double kTargetReplayUs = 200.0;
  static constexpr int kProbeCalls = 10;
  static constexpr int kMaxCallsPerReplay = 1000;

  Timer(cudaStream_t stream, int reps, int warmup)
      : stream_(stream), reps_(reps), warmup_(warmup) {}

  Timing time(const std::function<void()>& op) const {
    for (int i = 0; i < warmup_; ++i) op();
    OCTA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    double probe_us = 0.0;
    {
      const octa::cuda::GraphExec probe = capture(op, kProbeCalls);
      probe_us = 1e3 * replay(probe, 1)[0] / kProbeCalls;
    }
    const double wanted = std::ceil(kTargetReplayUs / std::max(probe_us, 1e-3));
    const int calls = static_cast<int>(std::clamp(wanted, 1.0, double{kMaxCallsPerReplay}));
    const octa::cuda::GraphExec graph = capture(op, calls);
    std::vector<double> us = replay(graph, reps_);
    for (double& t : us) t = 1e3 * t / calls;
    return Timing{median(std::move(us)), calls};
  }

 private:
  octa::cuda::GraphExec capture(const std::function<void()>& op, int calls) const {
    OCTA_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      for (int i = 0; i < calls; ++i) op();
    } catch (...) {
      cudaGraph_t partial = nullptr;
      static_cast<void>(cudaStreamEndCapture(stream_, &partial));  // ends the capture; may fail
      const Graph discard(partial);
      throw;
    }
    cudaGraph_t raw = nullptr;
    OCTA_CUDA_CHECK(cudaStreamEndCapture(stream_, &raw));
    const Graph graph(raw);
    cudaGraphExec_t exec = nullptr;
    OCTA_CUDA_CHECK(cudaGraphInstantiate(&exec, graph.get(), 0));
    return octa::cuda::GraphExec(exec);
  }

  // One untimed replay (which also keeps the GPU busy while the timed ones are enqueued), then
  // `count` replays with an event between each; returns each timed replay's milliseconds.
  std::vector<double> replay(cudaGraphExec_t graph, int count) const {
    std::vector<octa::cuda::Event> events;
    events.reserve(static_cast<std::size_t>(count) + 1);
    for (int i = 0; i <= count; ++i) events.emplace_back(true);
    OCTA_CUDA_CHECK(cudaGraphLaunch(graph, stream_));
    OCTA_CUDA_CHECK(cudaEventRecord(events[0], stream_));
    for (std::size_t i = 1; i < events.size(); ++i) {
      OCTA_CUDA_CHECK(cudaGraphLaunch(graph, stream_));
      OCTA_CUDA_CHECK(cudaEventRecord(events[i], stream_));
    }
    OCTA_CUDA_CHECK(cudaEventSynchronize(events.back()));
    std::vector<double> ms;
    for (std::size_t i = 1; i < events.size(); ++i) {
      float t = 0.0f;
      OCTA_CUDA_CHECK(cudaEventElapsedTime(&t, events[i - 1], events[i]));
      ms.push_back(static_cast<double>(t));
    }
    return ms;
  }

  cudaStream_t stream_;
  int reps_, warmup_;
};

// ================================================================================================
// cuDNN descriptors for the pooling and BatchNorm counterparts (owned, released on scope exit)
// ================================================================================================

using octa::cuda::ActivationDesc;
using octa::cuda::PoolDesc;
using octa::cuda::TensorDesc;

// window x window, stride window, no padding.
PoolDesc pool_desc(cudnnPoolingMode_t mode, int window) {
  cudnnPoolingDescriptor_t raw{};
  OCTA_CUDNN_CHECK(cudnnCreatePoolingDescriptor(&raw));
  PoolDesc d(raw);
  OCTA_CUDNN_CHECK(cudnnSetPooling2dDescriptor(d, mode, CUDNN_PROPAGATE_NAN, window, window, 0, 0,
                                               window, window));
  return d;
}

ActivationDesc relu_desc() {
  cudnnActivationDescriptor_t raw{};
  OCTA_CUDNN_CHECK(cudnnCreateActivationDescriptor(&raw));
  ActivationDesc d(raw);
  OCTA_CUDNN_CHECK(
      cudnnSetActivationDescriptor(d, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0));
  return d;
}

// ================================================================================================
// The model's shapes
// ================================================================================================

struct ConvLayer {
  const char* name;
  int cin, cout, size;  // size: H = W
  bool needs_din;       // conv1's input gradient is never needed
};
constexpr std::array<ConvLayer, 2> kConvLayers = {
    {{"conv1", 1, 32, 28, false}, {"conv2", 32, 64, 14, true}}};

// octa's two implementations of the convolution passes, with the same arguments: the CUDA-core
// kernels (kernels/conv3x3.hpp) and the tensor-core ones (kernels/conv3x3_tc.hpp), which the CUDA
// backend's --conv fused runs for layers with Cin >= kTensorCoreMinCin.
struct ConvKernels {
  const char* prefix;  // of the launchers' names: <prefix>_forward, ...
  decltype(&octa::gpu::conv3x3_forward) forward;
  decltype(&octa::gpu::conv3x3_relu_maxpool_forward) relu_maxpool_forward;
  decltype(&octa::gpu::conv3x3_backward_data) backward_data;
  decltype(&octa::gpu::conv3x3_backward_filter) backward_filter;
  decltype(&octa::gpu::conv3x3_forward_bn_stats) forward_bn_stats;
  decltype(&octa::gpu::conv3x3_bn_stats_tiles) bn_stats_tiles;
};
constexpr ConvKernels kCudaCoreConv{"conv3x3",
                                    &octa::gpu::conv3x3_forward,
                                    &octa::gpu::conv3x3_relu_maxpool_forward,
                                    &octa::gpu::conv3x3_backward_data,
                                    &octa::gpu::conv3x3_backward_filter,
                                    &octa::gpu::conv3x3_forward_bn_stats,
                                    &octa::gpu::conv3x3_bn_stats_tiles};
constexpr ConvKernels kTensorCoreConv{"conv3x3_tc",
                                      &octa::gpu::conv3x3_tc_forward,
                                      &octa::gpu::conv3x3_tc_relu_maxpool_forward,
                                      &octa::gpu::conv3x3_tc_backward_data,
                                      &octa::gpu::conv3x3_tc_backward_filter,
                                      &octa::gpu::conv3x3_tc_forward_bn_stats,
                                      &octa::gpu::conv3x3_tc_bn_stats_tiles};
constexpr int kTensorCoreMinCin = 8;  // as engine/gpu/cuda_backend.cpp

struct Stage {  // a feature map: pooling and BatchNorm inputs
  const char* name;
  int c, size;
};
constexpr std::array<Stage, 2> kPoolStages = {{{"pool1", 32, 28}, {"pool2", 64, 14}}};
constexpr std::array<Stage, 2> kBnStages = {{{"bn1", 32, 28}, {"bn2", 64, 14}}};
constexpr Stage kGapStage{"gap", 64, 7};  // model B's global average pool over pool2's output

constexpr int kHidden = 128;

struct LinearLayer {
  const char* name;
  int in, out;
  Epilogue epilogue;
};
constexpr std::array<LinearLayer, 3> kLinearLayers = {
    {{"A fc1", 64 * 7 * 7, kHidden, Epilogue::kRelu},
     {"B fc1", 64, kHidden, Epilogue::kRelu},
     {"fc2", kHidden, 1, Epilogue::kNone}}};

double as_double(std::size_t v) {
  return static_cast<double>(v);
}

// ================================================================================================
// The benchmark
// ================================================================================================

class Bench {
 public:
  explicit Bench(const Options& opt)
      : opt_(opt),
        timer_(stream_, opt.reps, opt.warmup),
        blas_ws_(kCublasWorkspaceBytes, "cuBLAS workspace") {
    OCTA_CUDA_CHECK(cudaGetDeviceProperties(&prop_, opt.device));
    // One stream for everything; cuBLAS gets its workspace up front so that it never allocates
    // inside a graph capture (as the CUDA backend does).
    OCTA_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
    OCTA_CUBLAS_CHECK(cublasSetPointerMode(blas_, CUBLAS_POINTER_MODE_HOST));
    OCTA_CUBLAS_CHECK(cublasSetWorkspace(blas_, blas_ws_.data(), blas_ws_.bytes()));
    OCTA_CUDNN_CHECK(cudnnSetStream(dnn_, stream_));
  }

  void run() {
    print_device();
    measure_peaks();
    print_header();
    for (const int n : opt_.batches) {
      for (const ConvLayer& l : kConvLayers) conv_layer(l, n);
      for (const ConvLayer& l : kConvLayers) fused_batchnorm(l, n);
      for (const Stage& s : kPoolStages) maxpool(s, n);
      for (const Stage& s : kBnStages) batchnorm(s, n);
      global_avgpool(n);
      head(n);
      for (const LinearLayer& l : kLinearLayers) linear(l, n);
    }
    optimizers();
  }

  nlohmann::json json(const std::string& command) const;

 private:
  // ---------------------------------------------------------------------------------------------
  // Peaks

  void measure_peaks() {
    {
      // copy: cudaMemcpyAsync D2D of `bytes`: reads bytes and writes bytes.
      const std::size_t bytes = static_cast<std::size_t>(opt_.copy_mib) << 20;
      const DeviceBuffer<float> src =
          fill_.floats(bytes / sizeof(float), -1.0f, 1.0f, "copy source");
      const DeviceBuffer<float> dst(bytes / sizeof(float), "copy destination");
      const Work w{0.0, 2.0 * as_double(bytes)};
      const Timing t = timer_.time([&] {
        OCTA_CUDA_CHECK(
            cudaMemcpyAsync(dst.data(), src.data(), bytes, cudaMemcpyDeviceToDevice, stream_));
      });
      peaks_.copy_gbs = gb_per_s(w, t.us);
      peak_json_["copy"] = {{"what", fmt::format("cudaMemcpyAsync device to device, {} MiB, "
                                                 "read + write bytes counted",
                                                 opt_.copy_mib)},
                            {"bytes", w.bytes},
                            {"time_us", t.us},
                            {"gb_per_s", peaks_.copy_gbs}};
      fmt::print("peak copy       {:<40} {:>10.1f} us {:>9.1f} GB/s\n",
                 fmt::format("cudaMemcpyAsync D2D {} MiB, read + write", opt_.copy_mib), t.us,
                 peaks_.copy_gbs);
    }
    {
      // GEMM: C (n x n) = A (n x n) * B (n x n): FLOPs = 2 n^3; bytes = 4 * 3 n^2 (A, B read, C
      // written; beta = 0, so C is not read).
      const int n = opt_.gemm_size;
      const std::size_t nn = static_cast<std::size_t>(n) * n;
      const DeviceBuffer<float> a = fill_.floats(nn, -1.0f, 1.0f, "GEMM A");
      const DeviceBuffer<float> b = fill_.floats(nn, -1.0f, 1.0f, "GEMM B");
      const DeviceBuffer<float> c(nn, "GEMM C");
      const Work w{2.0 * as_double(nn) * n, 4.0 * 3.0 * as_double(nn)};
      const float one = 1.0f, zero = 0.0f;
      // FP32: cublasSgemm under the handle's default math mode (no TF32), as engine/gpu/linear.
      const Timing fp32 = timer_.time([&] {
        OCTA_CUBLAS_CHECK(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a.data(), n,
                                      b.data(), n, &zero, c.data(), n));
      });
      peaks_.sgemm_gflops = gflop_per_s(w, fp32.us);
      // TF32 tensor cores, for reference only: octa's kernels and layers compute in FP32.
      const Timing tf32 = timer_.time([&] {
        OCTA_CUBLAS_CHECK(cublasGemmEx(blas_, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a.data(),
                                       CUDA_R_32F, n, b.data(), CUDA_R_32F, n, &zero, c.data(),
                                       CUDA_R_32F, n, CUBLAS_COMPUTE_32F_FAST_TF32,
                                       CUBLAS_GEMM_DEFAULT));
      });
      peaks_.tf32_gflops = gflop_per_s(w, tf32.us);
      peak_json_["sgemm_fp32"] = {
          {"what",
           fmt::format("cublasSgemm {0}x{0}x{0}, CUBLAS_COMPUTE_32F, default math (no TF32)", n)},
          {"flops", w.flops},
          {"time_us", fp32.us},
          {"gflop_per_s", peaks_.sgemm_gflops}};
      peak_json_["gemm_tf32"] = {
          {"what", fmt::format("cublasGemmEx {0}x{0}x{0}, CUBLAS_COMPUTE_32F_FAST_TF32 (reference "
                               "only; not used for % of peak)",
                               n)},
          {"flops", w.flops},
          {"time_us", tf32.us},
          {"gflop_per_s", peaks_.tf32_gflops}};
      fmt::print("peak SGEMM FP32 {:<40} {:>10.1f} us {:>9.0f} GFLOP/s\n",
                 fmt::format("cublasSgemm {0}x{0}x{0}, COMPUTE_32F", n), fp32.us,
                 peaks_.sgemm_gflops);
      fmt::print(
          "peak GEMM TF32  {:<40} {:>10.1f} us {:>9.0f} GFLOP/s (reference only: octa "
          "computes in FP32)\n\n",
          fmt::format("cublasGemmEx {0}x{0}x{0}, COMPUTE_32F_FAST_TF32", n), tf32.us,
          peaks_.tf32_gflops);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Convolutions (against gpu::CudnnConv3x3, the --conv cudnn path), conv2's also on the tensor
  // cores

  void conv_layer(const ConvLayer& l, int n) {
    const std::size_t hw = static_cast<std::size_t>(l.size) * l.size;
    const std::size_t in_count = static_cast<std::size_t>(n) * l.cin * hw;
    const std::size_t out_count = static_cast<std::size_t>(n) * l.cout * hw;
    const std::size_t w_count = static_cast<std::size_t>(l.cout) * l.cin * 9;
    const auto cout_count = static_cast<std::size_t>(l.cout);
    const DeviceBuffer<float> in = fill_.floats(in_count, -1.0f, 1.0f, "conv input");
    const DeviceBuffer<float> weight = fill_.floats(w_count, -0.5f, 0.5f, "conv weight");
    const DeviceBuffer<float> bias = fill_.floats(cout_count, -0.5f, 0.5f, "conv bias");
    const DeviceBuffer<float> out = fill_.floats(out_count, -1.0f, 1.0f, "conv output");
    const DeviceBuffer<float> pooled = fill_.floats(out_count / 4, -1.0f, 1.0f, "pooled output");
    const DeviceBuffer<float> dout = fill_.floats(out_count, -1.0f, 1.0f, "conv output gradient");
    const DeviceBuffer<float> din = fill_.floats(in_count, -1.0f, 1.0f, "conv input gradient");
    const DeviceBuffer<float> dweight = fill_.floats(w_count, -1.0f, 1.0f, "weight gradient");
    const DeviceBuffer<float> dbias = fill_.floats(cout_count, -1.0f, 1.0f, "bias gradient");
    const DeviceBuffer<float> ws(
        octa::gpu::conv3x3_backward_filter_workspace(n, l.cin, l.cout, l.size, l.size),
        "conv3x3_backward_filter workspace");
    octa::gpu::CudnnConv3x3 cudnn(dnn_, l.cin, l.cout, l.size, l.size);
    cudnn.plan(n);
    const std::string algos = cudnn.describe(n);
    const std::string shape = fmt::format("{} {}->{} {}x{}", l.name, l.cin, l.cout, l.size, l.size);
    const double N = n, Ci = l.cin, Co = l.cout, HW = as_double(hw), K = 9.0;
    cudaStream_t s = stream_;
    // Each pass below on the CUDA cores, then (conv2) on the tensor cores: the same counts.
    std::vector<const ConvKernels*> impls{&kCudaCoreConv};
    if (l.cin >= kTensorCoreMinCin) impls.push_back(&kTensorCoreConv);

    // conv3x3_forward (and conv3x3_tc_forward): out (N,Cout,H,W) = conv(in (N,Cin,H,W),
    // weight (Cout,Cin,3,3)) + bias.
    //   FLOPs = 2 * N*Cout*H*W * Cin*9  (every output sums Cin*9 products; the zero taps of the
    //           padding are counted, as in any GEMM-shaped count; the bias add is not; 3xTF32's
    //           three tensor-core products per multiply-add are not: the count is the problem's)
    //   bytes = 4 * (N*Cin*H*W + Cout*Cin*9 + Cout + N*Cout*H*W)  (in, weight, bias; out)
    const Work fwd{2.0 * N * Co * HW * Ci * K,
                   4.0 * (N * Ci * HW + Co * Ci * K + Co + N * Co * HW)};
    {
      const Counterpart cp{"cudnn conv + bias", algos, [&] {
                             cudnn.forward(out.data(), in.data(), weight.data(), bias.data(), n,
                                           Epilogue::kNone, s);
                           }};
      measure_conv("forward", shape, n, fwd, cp, impls, [&](const ConvKernels& k) {
        k.forward(out.data(), in.data(), weight.data(), bias.data(), n, l.cin, l.cout, l.size,
                  l.size, Epilogue::kNone, s);
      });
    }

    // conv3x3_relu_maxpool_forward (and _tc_): act = relu(conv + bias) (N,Cout,H,W), kept for
    // backward, and pooled = maxpool2x2(act) (N,Cout,H/2,W/2).
    //   FLOPs = as conv3x3_forward (ReLU and max compares not counted)
    //   bytes = conv3x3_forward's + 4 * N*Cout*H*W/4  (pooled written as well)
    // Counterpart: model A's --conv cudnn path, cuDNN conv + bias + ReLU then octa's max-pool.
    {
      const Work w{fwd.flops, fwd.bytes + 4.0 * N * Co * HW / 4.0};
      const Counterpart cp{
          "cudnn conv+relu, octa pool", algos, [&] {
            cudnn.forward(out.data(), in.data(), weight.data(), bias.data(), n, Epilogue::kRelu, s);
            octa::gpu::maxpool2x2_forward(pooled.data(), out.data(), n, l.cout, l.size, l.size, s);
          }};
      measure_conv("relu_maxpool_forward", shape, n, w, cp, impls, [&](const ConvKernels& k) {
        k.relu_maxpool_forward(pooled.data(), out.data(), in.data(), weight.data(), bias.data(), n,
                               l.cin, l.cout, l.size, l.size, s);
      });
    }

    // conv3x3_backward_data (and _tc_): din (N,Cin,H,W) from dout (N,Cout,H,W) and weight.
    //   FLOPs = 2 * N*Cin*H*W * Cout*9
    //   bytes = 4 * (N*Cout*H*W + Cout*Cin*9 + N*Cin*H*W)  (dout, weight; din)
    if (l.needs_din) {
      const Work w{2.0 * N * Ci * HW * Co * K, 4.0 * (N * Co * HW + Co * Ci * K + N * Ci * HW)};
      const Counterpart cp{"cudnn backward data", algos, [&] {
                             cudnn.backward_data(din.data(), dout.data(), weight.data(), n, s);
                           }};
      measure_conv("backward_data", shape, n, w, cp, impls, [&](const ConvKernels& k) {
        k.backward_data(din.data(), dout.data(), weight.data(), n, l.cin, l.cout, l.size, l.size,
                        s);
      });
    }

    // conv3x3_backward_filter (and _tc_): dweight (Cout,Cin,3,3) and dbias (Cout) from dout and
    // in.
    //   FLOPs = 2 * Cout*Cin*9 * N*H*W  (dbias's N*H*W adds per channel not counted)
    //   bytes = 4 * (N*Cout*H*W + N*Cin*H*W + Cout*Cin*9 + Cout)  (dout, in; dweight, dbias); the
    //           workspace round trip is octa's choice, not part of the minimum
    // (conv3x3_tc_backward_filter: the same workspace, conv3x3_backward_filter_workspace floats.)
    {
      const Work w{2.0 * Co * Ci * K * N * HW,
                   4.0 * (N * Co * HW + N * Ci * HW + Co * Ci * K + Co)};
      const Counterpart cp{"cudnn backward filter+bias", algos, [&] {
                             cudnn.backward_filter(dweight.data(), dbias.data(), dout.data(),
                                                   in.data(), n, s);
                           }};
      measure_conv("backward_filter", shape, n, w, cp, impls, [&](const ConvKernels& k) {
        k.backward_filter(dweight.data(), dbias.data(), dout.data(), in.data(), n, l.cin, l.cout,
                          l.size, l.size, ws.data(), s);
      });
    }

    // conv3x3_backward_filter_from_maxpool (model A's conv1): the same filter gradient, with the
    // conv output's gradient rebuilt from the pool's gradient dpool (N,Cout,H/2,W/2) and the ReLU
    // output act (N,Cout,H,W) instead of read.
    //   FLOPs = as conv3x3_backward_filter
    //   bytes = 4 * (N*Cout*H*W/4 + N*Cout*H*W + N*Cin*H*W + Cout*Cin*9 + Cout)
    //           (dpool, act, in; dweight, dbias)
    // Counterpart: what it replaces, octa's maxpool2x2_backward (ReLU fused) and then
    // conv3x3_backward_filter, through an (N,Cout,H,W) gradient in memory.
    if (!l.needs_din) {
      const Work w{2.0 * Co * Ci * K * N * HW,
                   4.0 * (N * Co * HW / 4.0 + N * Co * HW + N * Ci * HW + Co * Ci * K + Co)};
      const Counterpart cp{"octa pool backward + backward filter", "", [&] {
                             octa::gpu::maxpool2x2_backward(dout.data(), pooled.data(), out.data(),
                                                            n, l.cout, l.size, l.size,
                                                            /*relu_before=*/true, s);
                             octa::gpu::conv3x3_backward_filter(
                                 dweight.data(), dbias.data(), dout.data(), in.data(), n, l.cin,
                                 l.cout, l.size, l.size, ws.data(), s);
                           }};
      measure(
          {"conv3x3_backward_filter_from_maxpool", shape, n, w},
          [&] {
            octa::gpu::conv3x3_backward_filter_from_maxpool(
                dweight.data(), dbias.data(), pooled.data(), out.data(), in.data(), n, l.cin,
                l.cout, l.size, l.size, ws.data(), s);
          },
          &cp);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Model B's stages with the fused BatchNorm (kernels/batchnorm_fused.hpp), each against cuDNN's
  // sequence (the row's counterpart) and against octa's unfused kernels it replaces (printed
  // below the row, with their bytes). Bytes here are counted pass by pass, as each kernel reads
  // and writes device memory (a pass over a tensor that fits the L2 may cost less): the saving is
  // passes over the (N, C, H, W) activation. X = N*Cout*H*W; "conv" = the convolution's own
  // reads (in, weight, bias).

  void fused_batchnorm(const ConvLayer& l, int n) {
    const int size = l.size, hw = size * size, half = size / 2;
    const std::size_t in_count = static_cast<std::size_t>(n) * l.cin * hw;
    const std::size_t full = static_cast<std::size_t>(n) * l.cout * hw;
    const std::size_t w_count = static_cast<std::size_t>(l.cout) * l.cin * 9;
    const auto c = static_cast<std::size_t>(l.cout);
    std::vector<const ConvKernels*> impls{&kCudaCoreConv};
    if (l.cin >= kTensorCoreMinCin) impls.push_back(&kTensorCoreConv);
    int max_tiles = 0;
    for (const ConvKernels* k : impls)
      max_tiles = std::max(max_tiles, k->bn_stats_tiles(n, size, size));
    const DeviceBuffer<float> in = fill_.floats(in_count, -1.0f, 1.0f, "conv input");
    const DeviceBuffer<float> weight = fill_.floats(w_count, -0.3f, 0.3f, "conv weight");
    const DeviceBuffer<float> bias = fill_.floats(c, -0.3f, 0.3f, "conv bias");
    const DeviceBuffer<float> gamma = fill_.floats(c, 0.5f, 1.5f, "gamma");
    const DeviceBuffer<float> beta = fill_.floats(c, -0.5f, 0.5f, "beta");
    const DeviceBuffer<float> run_mean = fill_.floats(c, -0.5f, 0.5f, "running mean");
    const DeviceBuffer<float> run_var = fill_.floats(c, 0.5f, 1.5f, "running var");
    const DeviceBuffer<float> conv = fill_.floats(full, -1.0f, 1.0f, "conv output");
    const DeviceBuffer<float> act = fill_.floats(full, -1.0f, 1.0f, "activation");
    const DeviceBuffer<float> pooled = fill_.floats(full / 4, -1.0f, 1.0f, "pooled output");
    const DeviceBuffer<float> dpool = fill_.floats(full / 4, -1.0f, 1.0f, "pooled gradient");
    const DeviceBuffer<float> dact = fill_.floats(full, -1.0f, 1.0f, "activation gradient");
    const DeviceBuffer<float> dact_relu = fill_.floats(full, -1.0f, 1.0f, "cuDNN ReLU gradient");
    const DeviceBuffer<float> dconv = fill_.floats(full, -1.0f, 1.0f, "conv output gradient");
    const DeviceBuffer<float> save_mean = fill_.floats(c, -0.5f, 0.5f, "saved mean");
    const DeviceBuffer<float> save_invstd = fill_.floats(c, 0.5f, 1.5f, "saved invstd");
    const DeviceBuffer<float> dgamma = fill_.floats(c, -1.0f, 1.0f, "gamma gradient");
    const DeviceBuffer<float> dbeta = fill_.floats(c, -1.0f, 1.0f, "beta gradient");
    const DeviceBuffer<float> folded_w = fill_.floats(w_count, -0.3f, 0.3f, "folded weight");
    const DeviceBuffer<float> folded_b = fill_.floats(c, -0.3f, 0.3f, "folded bias");
    const DeviceBuffer<double> stats(3 * c * static_cast<std::size_t>(max_tiles),
                                     "BatchNorm tile statistics");
    const std::size_t bws_count =
        octa::gpu::batchnorm_relu_maxpool_backward_workspace(n, l.cout, size, size);
    const DeviceBuffer<double> bws(bws_count, "BatchNorm backward workspace");
    const DeviceBuffer<std::uint8_t> window(full / 4, "window codes");
    octa::gpu::CudnnConv3x3 cudnn(dnn_, l.cin, l.cout, size, size);
    cudnn.plan(n);
    const TensorDesc xd = octa::cuda::make_tensor_desc(n, l.cout, size, size);
    const TensorDesc pd = octa::cuda::make_tensor_desc(n, l.cout, half, half);
    const TensorDesc cd = octa::cuda::make_tensor_desc(1, l.cout, 1, 1);
    const PoolDesc pool = pool_desc(CUDNN_POOLING_MAX_DETERMINISTIC, 2);
    const ActivationDesc relu = relu_desc();
    const std::string shape = fmt::format("{} {}->{} {}x{}", l.name, l.cin, l.cout, size, size);
    const double N = n, Ci = l.cin, Co = l.cout, HW = hw, X = as_double(full), C = Co;
    const double conv_in = N * Ci * HW + Co * Ci * 9.0 + Co;  // floats the convolution reads
    const double conv_flops = 2.0 * N * Co * HW * Ci * 9.0;
    const float one = 1.0f, zero = 0.0f;
    cudaStream_t s = stream_;
    const std::string algos = cudnn.describe(n);

    // The unfused training forward and cuDNN's; both leave conv, act and pooled consistent (the
    // backward rows start from them).
    const auto unfused_train = [&](const ConvKernels& k) {
      k.forward(conv.data(), in.data(), weight.data(), bias.data(), n, l.cin, l.cout, size, size,
                Epilogue::kNone, s);
      octa::gpu::batchnorm_forward_train(act.data(), save_mean.data(), save_invstd.data(),
                                         run_mean.data(), run_var.data(), conv.data(), gamma.data(),
                                         beta.data(), n, l.cout, hw, kBnEps, kBnMomentum,
                                         Epilogue::kRelu, s);
      octa::gpu::maxpool2x2_forward(pooled.data(), act.data(), n, l.cout, size, size, s);
    };
    const auto cudnn_train = [&] {
      cudnn.forward(conv.data(), in.data(), weight.data(), bias.data(), n, Epilogue::kNone, s);
      OCTA_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
          dnn_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, xd, conv.data(), xd, act.data(), cd,
          gamma.data(), beta.data(), static_cast<double>(kBnMomentum), run_mean.data(),
          run_var.data(), static_cast<double>(kBnEps), save_mean.data(), save_invstd.data()));
      OCTA_CUDNN_CHECK(
          cudnnActivationForward(dnn_, relu, &one, xd, act.data(), &zero, xd, act.data()));
      OCTA_CUDNN_CHECK(
          cudnnPoolingForward(dnn_, pool, &one, xd, act.data(), &zero, pd, pooled.data()));
    };
    // cuDNN's pool, ReLU and BatchNorm backward (from cudnn_train's outputs): the counterpart of
    // the fused backward, and with the filter gradient after it, of the fused backward + filter.
    const auto cudnn_backward = [&] {
      OCTA_CUDNN_CHECK(cudnnPoolingBackward(dnn_, pool, &one, pd, pooled.data(), pd, dpool.data(),
                                            xd, act.data(), &zero, xd, dact.data()));
      OCTA_CUDNN_CHECK(cudnnActivationBackward(dnn_, relu, &one, xd, act.data(), xd, dact.data(),
                                               xd, act.data(), &zero, xd, dact_relu.data()));
      OCTA_CUDNN_CHECK(cudnnBatchNormalizationBackward(
          dnn_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, xd, conv.data(), xd,
          dact_relu.data(), xd, dconv.data(), cd, gamma.data(), dgamma.data(), dbeta.data(),
          static_cast<double>(kBnEps), save_mean.data(), save_invstd.data()));
    };
    const auto fused_train = [&](const ConvKernels& k) {
      k.forward_bn_stats(conv.data(), stats.data(), in.data(), weight.data(), bias.data(), n, l.cin,
                         l.cout, size, size, s);
      octa::gpu::batchnorm_relu_maxpool_forward_train(
          pooled.data(), window.data(), save_mean.data(), save_invstd.data(), run_mean.data(),
          run_var.data(), conv.data(), stats.data(), k.bn_stats_tiles(n, size, size), gamma.data(),
          beta.data(), n, l.cout, size, size, kBnEps, kBnMomentum, s);
    };

    // Training forward, <prefix>_forward_bn_stats + batchnorm_relu_maxpool_forward_train:
    //   FLOPs = the convolution's
    //   bytes = 4*conv + 4*X (conv out) + 24*3*C*tiles (statistics written, read) + 4*X (read
    //           back once) + 4*X/4 (pooled) + X/4 (window codes, bytes) + 4*8*C (gamma, beta,
    //           running statistics in and out, saved mean and invstd)
    //   unfused (conv, batchnorm_forward_train with the ReLU, maxpool2x2_forward): 4*conv + 4*X
    //           (conv out) + 4*3*X (BatchNorm's sum, squared deviations, normalise passes) + 4*X
    //           (its out) + 4*X (the pool's read) + 4*X/4 + 4*8*C
    for (const ConvKernels* k : impls) {
      const double tiles = k->bn_stats_tiles(n, size, size);
      const Work w{conv_flops,
                   4.0 * conv_in + 4.0 * X + 48.0 * C * tiles + 4.0 * X + X + X / 4.0 + 32.0 * C};
      const double unfused_bytes = 4.0 * conv_in + 4.0 * (X + 3.0 * X + X + X + X / 4.0) + 32.0 * C;
      const Counterpart cp{"cudnn conv, BN, relu, pool", algos, cudnn_train};
      measure_fused(
          {fmt::format("{}+bn train fwd", k->prefix), shape, n, w}, [&] { fused_train(*k); }, cp,
          fmt::format("{}_forward, batchnorm_forward_train, maxpool2x2_forward", k->prefix),
          unfused_bytes, [&] { unfused_train(*k); });
    }

    // Training backward, batchnorm_relu_maxpool_backward (its two kernels):
    //   bytes = 4*X/4 (dpool) + X/4 (codes) + 4*X/4 (conv out at the windows' maxima: one float
    //           of four) + 16*C*blocks (block sums, written and read) + 4*X/4 + X/4 (dpool, codes
    //           again) + 4*X (conv out) + 4*X (dconv) + 4*7*C (saved statistics twice, gamma,
    //           dgamma, dbeta)
    //   unfused (maxpool2x2_backward, batchnorm_backward with the fused ReLU): 4*X/4 (dpool) +
    //           4*X (act) + 4*X (dact) + 4*3*X twice (dact, act, conv out: the sums, then the
    //           gradient) + 4*X (dconv) + 4*5*C
    {
      const Work w{0.0, 4.0 * X / 4.0 + X / 4.0 + 4.0 * X / 4.0 + 8.0 * as_double(bws_count) * 2.0 +
                            4.0 * X / 4.0 + X / 4.0 + 8.0 * X + 28.0 * C};
      const double unfused_bytes = 4.0 * (X / 4.0 + X + X + 6.0 * X + X) + 20.0 * C;
      const Counterpart cp{"cudnn pool, relu, BN bwd",
                           "CUDNN_POOLING_MAX_DETERMINISTIC, CUDNN_BATCHNORM_SPATIAL",
                           cudnn_backward};
      // Each side from its own forward (run first, untimed).
      measure_fused(
          {"bn+relu+pool train bwd", shape, n, w},
          [&] {
            octa::gpu::batchnorm_relu_maxpool_backward(
                dconv.data(), dgamma.data(), dbeta.data(), dpool.data(), window.data(), conv.data(),
                save_mean.data(), save_invstd.data(), gamma.data(), n, l.cout, size, size,
                bws.data(), s);
          },
          cp, "maxpool2x2_backward, batchnorm_backward", unfused_bytes,
          [&] {
            octa::gpu::maxpool2x2_backward(dact.data(), dpool.data(), act.data(), n, l.cout, size,
                                           size, /*relu_before=*/false, s);
            octa::gpu::batchnorm_backward(dconv.data(), dgamma.data(), dbeta.data(), dact.data(),
                                          act.data(), conv.data(), save_mean.data(),
                                          save_invstd.data(), gamma.data(), n, l.cout, hw, s);
          },
          {[&] { fused_train(kCudaCoreConv); }, [&] { unfused_train(kCudaCoreConv); },
           [&] { cudnn_train(); }});
    }

    // conv3x3_backward_filter_from_bn_maxpool (model B's conv1, whose input gradient is not
    // needed): the sums kernel, then the filter gradient rebuilding BatchNorm's input gradient as
    // it stages it (never written).
    //   FLOPs = the filter gradient's, 2 * Cout*Cin*9 * N*H*W
    //   bytes = the sums' (4*X/4 + X/4 + 4*X/4 + 16*C*blocks) + the staging's reads (4*X conv out,
    //           4*X/4 dpool, X/4 codes) + 4*(N*Cin*H*W + Cout*Cin*9 + Cout) (in; dweight, dbias) +
    //           4*7*C
    //   unfused (what it replaces: batchnorm_relu_maxpool_backward, then conv3x3_backward_filter
    //           reading the dconv it wrote): the backward row's bytes + 4*X (dconv read) + the same
    //           4*(N*Cin*H*W + Cout*Cin*9 + Cout)
    if (!l.needs_din) {
      const DeviceBuffer<float> dweight(w_count, "weight gradient");
      const DeviceBuffer<float> dbias(c, "bias gradient");
      const DeviceBuffer<float> filter_ws(
          octa::gpu::conv3x3_backward_filter_workspace(n, l.cin, l.cout, size, size),
          "conv3x3_backward_filter workspace");
      const double filter_io = 4.0 * (N * Ci * HW + Co * Ci * 9.0 + Co);
      const double sums_bytes =
          4.0 * X / 4.0 + X / 4.0 + 4.0 * X / 4.0 + 16.0 * as_double(bws_count);
      const Work w{2.0 * Co * Ci * 9.0 * N * HW,
                   sums_bytes + 4.0 * X + 4.0 * X / 4.0 + X / 4.0 + filter_io + 28.0 * C};
      const double unfused_bytes =
          sums_bytes + 4.0 * X / 4.0 + X / 4.0 + 8.0 * X + 28.0 * C + 4.0 * X + filter_io;
      const Counterpart cp{"cudnn pool, relu, BN bwd, filter", algos, [&] {
                             cudnn_backward();
                             cudnn.backward_filter(dweight.data(), dbias.data(), dconv.data(),
                                                   in.data(), n, s);
                           }};
      measure_fused(
          {"conv3x3_backward_filter_from_bn_maxpool", shape, n, w},
          [&] {
            octa::gpu::conv3x3_backward_filter_from_bn_maxpool(
                dweight.data(), dbias.data(), dgamma.data(), dbeta.data(), dpool.data(),
                window.data(), conv.data(), save_mean.data(), save_invstd.data(), gamma.data(),
                in.data(), n, l.cin, l.cout, size, size, bws.data(), filter_ws.data(), s);
          },
          cp, "batchnorm_relu_maxpool_backward, conv3x3_backward_filter", unfused_bytes,
          [&] {
            octa::gpu::batchnorm_relu_maxpool_backward(
                dconv.data(), dgamma.data(), dbeta.data(), dpool.data(), window.data(), conv.data(),
                save_mean.data(), save_invstd.data(), gamma.data(), n, l.cout, size, size,
                bws.data(), s);
            octa::gpu::conv3x3_backward_filter(dweight.data(), dbias.data(), dconv.data(),
                                               in.data(), n, l.cin, l.cout, size, size,
                                               filter_ws.data(), s);
          },
          {[&] { fused_train(kCudaCoreConv); }, [&] { fused_train(kCudaCoreConv); },
           [&] { cudnn_train(); }});
    }

    // The fold, batchnorm_fold_conv3x3 (once per evaluation after the parameters change):
    //   bytes = 4 * (2*Cout*Cin*9 + 6*C)  (weight, bias, gamma, beta, running mean and var; the
    //           folded weight and bias)
    const auto fold = [&] {
      octa::gpu::batchnorm_fold_conv3x3(folded_w.data(), folded_b.data(), weight.data(),
                                        bias.data(), gamma.data(), beta.data(), run_mean.data(),
                                        run_var.data(), l.cin, l.cout, kBnEps, s);
    };
    measure({"batchnorm_fold_conv3x3", shape, 0, Work{0.0, 4.0 * (2.0 * Co * Ci * 9.0 + 6.0 * C)}},
            fold);
    fold();

    // Evaluation, <prefix>_relu_maxpool_forward over the folded weights: conv + BatchNorm + ReLU
    // + pool in one kernel.
    //   bytes = 4*conv + 4*X (the activation, which the kernel writes) + 4*X/4 (pooled)
    //   unfused (conv, batchnorm_forward_eval with the ReLU, maxpool2x2_forward): 4*conv + 4*X +
    //           4*(X + 4*C) + 4*X + 4*X + 4*X/4
    // Counterpart: cudnnConvolutionBiasActivationForward over the same folded weights (ReLU),
    // then cuDNN's max-pool.
    for (const ConvKernels* k : impls) {
      const Work w{conv_flops, 4.0 * conv_in + 4.0 * X + X};
      const double unfused_bytes = 4.0 * conv_in + 4.0 * (4.0 * X + 4.0 * C + X / 4.0);
      const Counterpart cp{
          "cudnn conv+bias+relu (folded), pool", "cudnnConvolutionBiasActivationForward; " + algos,
          [&] {
            cudnn.forward_bias_relu(act.data(), in.data(), folded_w.data(), folded_b.data(), n, s);
            OCTA_CUDNN_CHECK(
                cudnnPoolingForward(dnn_, pool, &one, xd, act.data(), &zero, pd, pooled.data()));
          }};
      measure_fused(
          {fmt::format("{}+bn eval (folded)", k->prefix), shape, n, w},
          [&] {
            k->relu_maxpool_forward(pooled.data(), act.data(), in.data(), folded_w.data(),
                                    folded_b.data(), n, l.cin, l.cout, size, size, s);
          },
          cp, fmt::format("{}_forward, batchnorm_forward_eval, maxpool2x2_forward", k->prefix),
          unfused_bytes,
          [&] {
            k->forward(conv.data(), in.data(), weight.data(), bias.data(), n, l.cin, l.cout, size,
                       size, Epilogue::kNone, s);
            octa::gpu::batchnorm_forward_eval(act.data(), conv.data(), gamma.data(), beta.data(),
                                              run_mean.data(), run_var.data(), n, l.cout, hw,
                                              kBnEps, Epilogue::kRelu, s);
            octa::gpu::maxpool2x2_forward(pooled.data(), act.data(), n, l.cout, size, size, s);
          });
    }
  }

  // What each side of a fused row runs, untimed, before it is timed (a backward: its forward).
  struct FusedSetup {
    std::function<void()> fused, unfused, counterpart;
  };

  // Times a fused stage: octa's unfused kernels first, then the fused op, then cuDNN's sequence
  // (the row's counterpart), each after its setup.
  void measure_fused(Row row, const std::function<void()>& op, const Counterpart& cp,
                     const std::string& unfused, double unfused_bytes,
                     const std::function<void()>& unfused_op, const FusedSetup& setup = {}) {
    if (!selected(row)) return;
    const auto run_setup = [&](const std::function<void()>& f) {
      if (!f) return;
      f();
      OCTA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    };
    row.unfused = unfused;
    row.unfused_bytes = unfused_bytes;
    try {
      run_setup(setup.unfused);
      row.unfused_time = timer_.time(unfused_op);
    } catch (const std::exception&) {
      recover(row.unfused);  // its failure shows as a missing time
    }
    try {
      run_setup(setup.fused);
    } catch (const std::exception& e) {
      row.error = e.what();
      recover(row.kernel);
    }
    measure(std::move(row), op, &cp, [&] { run_setup(setup.counterpart); });
  }

  // ---------------------------------------------------------------------------------------------
  // Max-pool 2x2 (against cudnnPoolingForward/Backward, CUDNN_POOLING_MAX_DETERMINISTIC)

  void maxpool(const Stage& st, int n) {
    const int half = st.size / 2;
    const std::size_t full = static_cast<std::size_t>(n) * st.c * st.size * st.size;
    const DeviceBuffer<float> x = fill_.floats(full, -1.0f, 1.0f, "pool input");
    const DeviceBuffer<float> y = fill_.floats(full / 4, -1.0f, 1.0f, "pool output");
    const DeviceBuffer<float> dy = fill_.floats(full / 4, -1.0f, 1.0f, "pool output gradient");
    const DeviceBuffer<float> dx = fill_.floats(full, -1.0f, 1.0f, "pool input gradient");
    const TensorDesc xd = octa::cuda::make_tensor_desc(n, st.c, st.size, st.size);
    const TensorDesc yd = octa::cuda::make_tensor_desc(n, st.c, half, half);
    const PoolDesc pool = pool_desc(CUDNN_POOLING_MAX_DETERMINISTIC, 2);
    const std::string shape = fmt::format("{} {}x{}x{}", st.name, st.c, st.size, st.size);
    const double X = as_double(full);
    const float one = 1.0f, zero = 0.0f;
    cudaStream_t s = stream_;
    // y must be x's true maxima for cuDNN's backward, which looks them up.
    octa::gpu::maxpool2x2_forward(y.data(), x.data(), n, st.c, st.size, st.size, s);
    OCTA_CUDA_CHECK(cudaStreamSynchronize(s));

    // maxpool2x2_forward: out (N,C,H/2,W/2) = max over each 2x2 window of in (N,C,H,W).
    //   bytes = 4 * (N*C*H*W + N*C*H*W/4)  (in; out); no FLOPs counted
    {
      const Counterpart cp{"cudnn pooling fwd", "CUDNN_POOLING_MAX_DETERMINISTIC", [&] {
                             OCTA_CUDNN_CHECK(cudnnPoolingForward(dnn_, pool, &one, xd, x.data(),
                                                                  &zero, yd, y.data()));
                           }};
      measure(
          {"maxpool2x2_forward", shape, n, Work{0.0, 4.0 * (X + X / 4.0)}},
          [&] { octa::gpu::maxpool2x2_forward(y.data(), x.data(), n, st.c, st.size, st.size, s); },
          &cp);
    }
    // maxpool2x2_backward (relu_before = false, model B's call, so that cuDNN computes the same):
    // din (N,C,H,W) from dout (N,C,H/2,W/2) and in.
    //   bytes = 4 * (N*C*H*W/4 + N*C*H*W + N*C*H*W)  (dout, in; din)
    {
      const Counterpart cp{
          "cudnn pooling bwd", "CUDNN_POOLING_MAX_DETERMINISTIC", [&] {
            OCTA_CUDNN_CHECK(cudnnPoolingBackward(dnn_, pool, &one, yd, y.data(), yd, dy.data(), xd,
                                                  x.data(), &zero, xd, dx.data()));
          }};
      measure(
          {"maxpool2x2_backward", shape, n, Work{0.0, 4.0 * (X / 4.0 + 2.0 * X)}},
          [&] {
            octa::gpu::maxpool2x2_backward(dx.data(), dy.data(), x.data(), n, st.c, st.size,
                                           st.size,
                                           /*relu_before=*/false, s);
          },
          &cp);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // BatchNorm with the fused ReLU (against cuDNN's spatial BatchNorm plus a separate ReLU)

  void batchnorm(const Stage& st, int n) {
    const int hw = st.size * st.size;
    const std::size_t full = static_cast<std::size_t>(n) * st.c * hw;
    const auto c = static_cast<std::size_t>(st.c);
    const DeviceBuffer<float> x = fill_.floats(full, -1.0f, 1.0f, "BatchNorm input");
    const DeviceBuffer<float> y = fill_.floats(full, -1.0f, 1.0f, "BatchNorm output");
    const DeviceBuffer<float> dy = fill_.floats(full, -1.0f, 1.0f, "BatchNorm output gradient");
    const DeviceBuffer<float> dx = fill_.floats(full, -1.0f, 1.0f, "BatchNorm input gradient");
    const DeviceBuffer<float> dy_relu = fill_.floats(full, -1.0f, 1.0f, "cuDNN ReLU gradient");
    const DeviceBuffer<float> gamma = fill_.floats(c, 0.5f, 1.5f, "gamma");
    const DeviceBuffer<float> beta = fill_.floats(c, -0.5f, 0.5f, "beta");
    const DeviceBuffer<float> run_mean = fill_.floats(c, -0.5f, 0.5f, "running mean");
    const DeviceBuffer<float> run_var = fill_.floats(c, 0.5f, 1.5f, "running var");
    const DeviceBuffer<float> save_mean = fill_.floats(c, -0.5f, 0.5f, "saved mean");
    const DeviceBuffer<float> save_invstd = fill_.floats(c, 0.5f, 1.5f, "saved invstd");
    const DeviceBuffer<float> dgamma = fill_.floats(c, -1.0f, 1.0f, "gamma gradient");
    const DeviceBuffer<float> dbeta = fill_.floats(c, -1.0f, 1.0f, "beta gradient");
    const TensorDesc xd = octa::cuda::make_tensor_desc(n, st.c, st.size, st.size);
    const TensorDesc cd = octa::cuda::make_tensor_desc(1, st.c, 1, 1);
    const ActivationDesc relu = relu_desc();
    const std::string shape = fmt::format("{} {}x{}x{}", st.name, st.c, st.size, st.size);
    const double X = as_double(full), C = as_double(c);
    const float one = 1.0f, zero = 0.0f;
    cudaStream_t s = stream_;

    const auto octa_train = [&] {
      octa::gpu::batchnorm_forward_train(
          y.data(), save_mean.data(), save_invstd.data(), run_mean.data(), run_var.data(), x.data(),
          gamma.data(), beta.data(), n, st.c, hw, kBnEps, kBnMomentum, Epilogue::kRelu, s);
    };
    const auto cudnn_train = [&] {
      OCTA_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
          dnn_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, xd, x.data(), xd, y.data(), cd, gamma.data(),
          beta.data(), static_cast<double>(kBnMomentum), run_mean.data(), run_var.data(),
          static_cast<double>(kBnEps), save_mean.data(), save_invstd.data()));
      OCTA_CUDNN_CHECK(cudnnActivationForward(dnn_, relu, &one, xd, y.data(), &zero, xd, y.data()));
    };

    // batchnorm_forward_train (ReLU epilogue): out (N,C,HW); batch statistics; running stats.
    //   bytes = 4 * (2*N*C*HW + 8*C)  (in, gamma, beta, running mean and var; out, saved mean and
    //           invstd, running mean and var); the statistics' second pass over in is not counted
    {
      const Counterpart cp{"cudnn BN train + relu", "CUDNN_BATCHNORM_SPATIAL", cudnn_train};
      measure({"batchnorm_forward_train", shape, n, Work{0.0, 4.0 * (2.0 * X + 8.0 * C)}},
              octa_train, &cp);
    }
    // batchnorm_forward_eval (ReLU epilogue): out from in and the running statistics.
    //   bytes = 4 * (2*N*C*HW + 4*C)  (in, gamma, beta, running mean and var; out)
    {
      const Counterpart cp{"cudnn BN infer + relu", "CUDNN_BATCHNORM_SPATIAL", [&] {
                             OCTA_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
                                 dnn_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, xd, x.data(), xd,
                                 y.data(), cd, gamma.data(), beta.data(), run_mean.data(),
                                 run_var.data(), static_cast<double>(kBnEps)));
                             OCTA_CUDNN_CHECK(cudnnActivationForward(dnn_, relu, &one, xd, y.data(),
                                                                     &zero, xd, y.data()));
                           }};
      measure(
          {"batchnorm_forward_eval", shape, n, Work{0.0, 4.0 * (2.0 * X + 4.0 * C)}},
          [&] {
            octa::gpu::batchnorm_forward_eval(y.data(), x.data(), gamma.data(), beta.data(),
                                              run_mean.data(), run_var.data(), n, st.c, hw, kBnEps,
                                              Epilogue::kRelu, s);
          },
          &cp);
    }
    // batchnorm_backward (fused ReLU backward through relu_out): din, dgamma, dbeta.
    //   bytes = 4 * (4*N*C*HW + 5*C)  (dout, relu_out, in, saved mean and invstd, gamma; din,
    //           dgamma, dbeta)
    // Each side's backward reads the statistics its own forward saved (run once first).
    {
      const Counterpart cp{
          "cudnn relu bwd + BN bwd", "CUDNN_BATCHNORM_SPATIAL", [&] {
            OCTA_CUDNN_CHECK(cudnnActivationBackward(dnn_, relu, &one, xd, y.data(), xd, dy.data(),
                                                     xd, y.data(), &zero, xd, dy_relu.data()));
            OCTA_CUDNN_CHECK(cudnnBatchNormalizationBackward(
                dnn_, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, xd, x.data(), xd,
                dy_relu.data(), xd, dx.data(), cd, gamma.data(), dgamma.data(), dbeta.data(),
                static_cast<double>(kBnEps), save_mean.data(), save_invstd.data()));
          }};
      Row row{"batchnorm_backward", shape, n, Work{0.0, 4.0 * (4.0 * X + 5.0 * C)}};
      if (selected(row)) {
        octa_train();
        OCTA_CUDA_CHECK(cudaStreamSynchronize(s));
      }
      measure(
          std::move(row),
          [&] {
            octa::gpu::batchnorm_backward(dx.data(), dgamma.data(), dbeta.data(), dy.data(),
                                          y.data(), x.data(), save_mean.data(), save_invstd.data(),
                                          gamma.data(), n, st.c, hw, s);
          },
          &cp,
          [&] {
            cudnn_train();
            OCTA_CUDA_CHECK(cudaStreamSynchronize(s));
          });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Global average pool, model B (against cuDNN average pooling over the whole 7x7 map)

  void global_avgpool(int n) {
    const Stage& st = kGapStage;
    const int hw = st.size * st.size;
    const std::size_t nc = static_cast<std::size_t>(n) * st.c, full = nc * hw;
    const DeviceBuffer<float> x = fill_.floats(full, -1.0f, 1.0f, "avgpool input");
    const DeviceBuffer<float> y = fill_.floats(nc, -1.0f, 1.0f, "avgpool output");
    const DeviceBuffer<float> dy = fill_.floats(nc, -1.0f, 1.0f, "avgpool output gradient");
    const DeviceBuffer<float> dx = fill_.floats(full, -1.0f, 1.0f, "avgpool input gradient");
    const TensorDesc xd = octa::cuda::make_tensor_desc(n, st.c, st.size, st.size);
    const TensorDesc yd = octa::cuda::make_tensor_desc(n, st.c, 1, 1);
    const PoolDesc pool = pool_desc(CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING, st.size);
    const std::string shape = fmt::format("{} {}x{}x{}", st.name, st.c, st.size, st.size);
    const double X = as_double(full), NC = as_double(nc);
    const float one = 1.0f, zero = 0.0f;
    cudaStream_t s = stream_;

    // global_avgpool_forward: out (N,C) = mean of in (N,C,HW) over HW.
    //   bytes = 4 * (N*C*HW + N*C)  (in; out)
    {
      const Counterpart cp{"cudnn avg pooling fwd", "7x7 window", [&] {
                             OCTA_CUDNN_CHECK(cudnnPoolingForward(dnn_, pool, &one, xd, x.data(),
                                                                  &zero, yd, y.data()));
                           }};
      measure(
          {"global_avgpool_forward", shape, n, Work{0.0, 4.0 * (X + NC)}},
          [&] { octa::gpu::global_avgpool_forward(y.data(), x.data(), n, st.c, hw, s); }, &cp);
    }
    // global_avgpool_backward: din (N,C,HW) = dout (N,C) / HW, broadcast.
    //   bytes = 4 * (N*C + N*C*HW)  (dout; din)
    {
      const Counterpart cp{
          "cudnn avg pooling bwd", "7x7 window", [&] {
            OCTA_CUDNN_CHECK(cudnnPoolingBackward(dnn_, pool, &one, yd, y.data(), yd, dy.data(), xd,
                                                  x.data(), &zero, xd, dx.data()));
          }};
      measure(
          {"global_avgpool_backward", shape, n, Work{0.0, 4.0 * (NC + X)}},
          [&] { octa::gpu::global_avgpool_backward(dx.data(), dy.data(), n, st.c, hw, s); }, &cp);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The head's elementwise kernels and the loss (no cuDNN/cuBLAS counterpart: GB/s vs copy)

  void head(int n) {
    const std::size_t count = static_cast<std::size_t>(n) * kHidden;
    const auto batch = static_cast<std::size_t>(n);
    const DeviceBuffer<float> h = fill_.floats(count, -1.0f, 1.0f, "hidden activation");
    const DeviceBuffer<float> dh = fill_.floats(count, -1.0f, 1.0f, "hidden gradient");
    const DeviceBuffer<float> out = fill_.floats(count, -1.0f, 1.0f, "hidden output");
    const DeviceBuffer<float> bias = fill_.floats(kHidden, -0.1f, 0.1f, "bias");
    const DeviceBuffer<float> dbias = fill_.floats(kHidden, -1.0f, 1.0f, "bias gradient");
    const DeviceBuffer<std::uint8_t> mask = fill_.bits(count, "dropout mask");
    const DeviceBuffer<float> logits = fill_.floats(batch, -4.0f, 4.0f, "logits");
    const DeviceBuffer<float> targets = fill_.floats(batch, 0.0f, 1.0f, "targets");
    const DeviceBuffer<float> dlogits = fill_.floats(batch, -1.0f, 1.0f, "logit gradient");
    const DeviceBuffer<float> batch_loss(1, "batch loss");
    const DeviceBuffer<double> loss_sum(1, "loss sum");
    const DeviceBuffer<std::int64_t> step(1, "step counter");
    OCTA_CUDA_CHECK(cudaMemset(loss_sum.data(), 0, sizeof(double)));
    OCTA_CUDA_CHECK(cudaMemset(step.data(), 0, sizeof(std::int64_t)));
    const std::string hidden = fmt::format("hidden {}", kHidden);
    const double X = as_double(count), B = as_double(batch), C = kHidden;
    cudaStream_t s = stream_;

    // bias_forward (ReLU epilogue), in place: x (N,128) = relu(x + bias).
    //   bytes = 4 * (2*N*C + C)  (x, bias; x)
    measure({"bias_forward", hidden, n, Work{0.0, 4.0 * (2.0 * X + C)}}, [&] {
      octa::gpu::bias_forward(h.data(), bias.data(), n, kHidden, Epilogue::kRelu, s);
    });
    // bias_backward: dbias (C) = sum over N of dout (N,C).
    //   bytes = 4 * (N*C + C)  (dout; dbias)
    measure({"bias_backward", hidden, n, Work{0.0, 4.0 * (X + C)}},
            [&] { octa::gpu::bias_backward(dbias.data(), dh.data(), n, kHidden, s); });
    // relu_backward: din = dout where out > 0 (n = N*128).
    //   bytes = 4 * 3n  (dout, out; din)
    measure({"relu_backward", hidden, n, Work{0.0, 4.0 * 3.0 * X}},
            [&] { octa::gpu::relu_backward(out.data(), dh.data(), h.data(), count, s); });
    // dropout_forward, p = 0.5: out and mask from in, Philox keyed by the device step.
    //   bytes = 4n + 4n + n + 8  (in; out; mask bytes; the step counter read)
    measure({"dropout_forward", hidden, n, Work{0.0, 9.0 * X + 8.0}}, [&] {
      octa::gpu::dropout_forward(out.data(), mask.data(), h.data(), count, octa::kDropoutP, kSeed,
                                 octa::rng_stream(octa::RngStream::kDropout, 0), step.data(), s);
    });
    // dropout_backward: din = dout * mask / (1 - p).
    //   bytes = 4n + n + 4n  (dout, mask; din)
    measure({"dropout_backward", hidden, n, Work{0.0, 9.0 * X}}, [&] {
      octa::gpu::dropout_backward(out.data(), dh.data(), mask.data(), count, octa::kDropoutP, s);
    });
    // bce_with_logits: dlogits (N), batch mean loss, running loss sum, from logits and targets.
    //   bytes = 4 * (2N + N + 1) + 2*8  (logits, targets; dlogits, batch loss; loss sum read and
    //           written, a double)
    measure({"bce_with_logits", fmt::format("logits {}", n), n,
             Work{0.0, 4.0 * (3.0 * B + 1.0) + 16.0}},
            [&] {
              octa::gpu::bce_with_logits(dlogits.data(), batch_loss.data(), loss_sum.data(),
                                         logits.data(), targets.data(), n, 1.0f, s);
            });
    fused_head(n, h, mask, targets, logits, dlogits, batch_loss, loss_sum);
  }

  // logit_head_train, the training head in one kernel (fc2, the loss, fc2's gradients, back
  // through the dropout (model B) and fc1's ReLU), against the launches it replaces: fc2's
  // linear_forward (SGEMM + bias kernel), bce_with_logits, linear_backward (two SGEMMs + bias
  // gradient), dropout_backward (B), relu_backward. K = 128 (fc1's width).
  //   FLOPs = 2NK (logits) + 2NK (dweight) + NK (the input gradient) = 5NK
  //   bytes = 4 * (NK + K + 1 + N)  (x, weight, bias, targets)
  //         + [A: 0 | B: 4NK + NK]  (relu_out, mask; for A relu_out is x)
  //         + 4 * (2N + K + 1 + NK) + 8 + 16  (logits, dlogits, dweight, dbias, dhidden; loss)
  void fused_head(int n, const DeviceBuffer<float>& h, const DeviceBuffer<std::uint8_t>& mask,
                  const DeviceBuffer<float>& targets, const DeviceBuffer<float>& logits,
                  const DeviceBuffer<float>& dlogits, const DeviceBuffer<float>& batch_loss,
                  const DeviceBuffer<double>& loss_sum) {
    const std::size_t count = static_cast<std::size_t>(n) * kHidden;
    const DeviceBuffer<float> x = fill_.floats(count, -1.0f, 1.0f, "fc2 input");
    const DeviceBuffer<float> w = fill_.floats(kHidden, -0.1f, 0.1f, "fc2 weight");
    const DeviceBuffer<float> b = fill_.floats(1, -0.1f, 0.1f, "fc2 bias");
    const DeviceBuffer<float> dw = fill_.floats(kHidden, -1.0f, 1.0f, "fc2 weight gradient");
    const DeviceBuffer<float> db = fill_.floats(1, -1.0f, 1.0f, "fc2 bias gradient");
    const DeviceBuffer<float> dx = fill_.floats(count, -1.0f, 1.0f, "fc2 input gradient");
    const DeviceBuffer<float> dh = fill_.floats(count, -1.0f, 1.0f, "fc1 output gradient");
    const double X = as_double(count), N = n, K = kHidden;
    cudaStream_t s = stream_;
    for (const bool dropout : {false, true}) {
      const float* in = dropout ? x.data() : h.data();
      const Counterpart cp{
          dropout ? "8 launches, unfused" : "7 launches, unfused",
          "linear_forward, bce_with_logits, linear_backward, [dropout_backward,] relu_backward",
          [&] {
            octa::gpu::linear_forward(logits.data(), in, w.data(), b.data(), n, kHidden, 1,
                                      Epilogue::kNone, blas_, s);
            octa::gpu::bce_with_logits(dlogits.data(), batch_loss.data(), loss_sum.data(),
                                       logits.data(), targets.data(), n, 1.0f, s);
            octa::gpu::linear_backward(dx.data(), dw.data(), db.data(), dlogits.data(), in,
                                       w.data(), n, kHidden, 1, blas_, s);
            if (dropout) {
              octa::gpu::dropout_backward(dx.data(), dx.data(), mask.data(), count, octa::kDropoutP,
                                          s);
            }
            octa::gpu::relu_backward(dh.data(), dx.data(), h.data(), count, s);
          }};
      const double bytes = 4.0 * (X + K + 1.0 + N) + (dropout ? 5.0 * X : 0.0) +
                           4.0 * (2.0 * N + K + 1.0 + X) + 24.0;
      measure(
          {dropout ? "logit_head_train (B: dropout)" : "logit_head_train (A)",
           fmt::format("hidden {}", kHidden), n, Work{5.0 * N * K, bytes}},
          [&] {
            octa::gpu::logit_head_train({logits.data(), dlogits.data(), batch_loss.data(),
                                         loss_sum.data(), dw.data(), db.data(), dh.data()},
                                        {in, h.data(), dropout ? mask.data() : nullptr,
                                         octa::kDropoutP, w.data(), b.data(), targets.data()},
                                        n, kHidden, 1.0f, s);
          },
          &cp);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Linear layers (engine/gpu/linear: cuBLAS SGEMM + octa's bias kernels) against the same
  // SGEMMs alone, so the ratio is what the bias kernels add.

  void linear(const LinearLayer& l, int n) {
    const std::size_t in_count = static_cast<std::size_t>(n) * l.in;
    const std::size_t out_count = static_cast<std::size_t>(n) * l.out;
    const std::size_t w_count = static_cast<std::size_t>(l.out) * l.in;
    const auto o_count = static_cast<std::size_t>(l.out);
    const DeviceBuffer<float> in = fill_.floats(in_count, -1.0f, 1.0f, "linear input");
    const DeviceBuffer<float> weight = fill_.floats(w_count, -0.1f, 0.1f, "linear weight");
    const DeviceBuffer<float> bias = fill_.floats(o_count, -0.1f, 0.1f, "linear bias");
    const DeviceBuffer<float> out = fill_.floats(out_count, -1.0f, 1.0f, "linear output");
    const DeviceBuffer<float> dout = fill_.floats(out_count, -1.0f, 1.0f, "linear out gradient");
    const DeviceBuffer<float> din = fill_.floats(in_count, -1.0f, 1.0f, "linear input gradient");
    const DeviceBuffer<float> dweight = fill_.floats(w_count, -1.0f, 1.0f, "weight gradient");
    const DeviceBuffer<float> dbias = fill_.floats(o_count, -1.0f, 1.0f, "bias gradient");
    const std::string shape = fmt::format("{} {}->{}", l.name, l.in, l.out);
    const double N = n, I = l.in, O = l.out;
    const float one = 1.0f, zero = 0.0f;
    cudaStream_t s = stream_;

    // linear_forward: out (N,Out) = epilogue(in (N,In) * weight^T + bias), weight (Out,In).
    //   FLOPs = 2 * N*In*Out  (the bias add not counted)
    //   bytes = 4 * (N*In + Out*In + Out + N*Out)  (in, weight, bias; out)
    {
      const Counterpart cp{"cublasSgemm alone", "out^T = W * in^T (OP_T, OP_N)", [&] {
                             OCTA_CUBLAS_CHECK(cublasSgemm(
                                 blas_, CUBLAS_OP_T, CUBLAS_OP_N, l.out, n, l.in, &one,
                                 weight.data(), l.in, in.data(), l.in, &zero, out.data(), l.out));
                           }};
      measure(
          {"linear_forward", shape, n, Work{2.0 * N * I * O, 4.0 * (N * I + O * I + O + N * O)}},
          [&] {
            octa::gpu::linear_forward(out.data(), in.data(), weight.data(), bias.data(), n, l.in,
                                      l.out, l.epilogue, blas_, s);
          },
          &cp);
    }
    // linear_backward with din: dweight (Out,In) = dout^T * in, din (N,In) = dout * weight,
    // dbias (Out) = sum over N of dout.
    //   FLOPs = 2 * N*In*Out (dweight) + 2 * N*In*Out (din)  (dbias's adds not counted)
    //   bytes = 4 * (N*Out + N*In + Out*In + Out*In + Out + N*In)  (dout, in, weight; dweight,
    //           dbias, din)
    {
      const Counterpart cp{"cublasSgemm x2 alone", "dW^T = in^T * dout; din^T = W^T * dout^T", [&] {
                             OCTA_CUBLAS_CHECK(cublasSgemm(
                                 blas_, CUBLAS_OP_N, CUBLAS_OP_T, l.in, l.out, n, &one, in.data(),
                                 l.in, dout.data(), l.out, &zero, dweight.data(), l.in));
                             OCTA_CUBLAS_CHECK(cublasSgemm(
                                 blas_, CUBLAS_OP_N, CUBLAS_OP_N, l.in, n, l.out, &one,
                                 weight.data(), l.in, dout.data(), l.out, &zero, din.data(), l.in));
                           }};
      const Work w{4.0 * N * I * O, 4.0 * (N * O + N * I + O * I + O * I + O + N * I)};
      measure(
          {"linear_backward", shape, n, w},
          [&] {
            octa::gpu::linear_backward(din.data(), dweight.data(), dbias.data(), dout.data(),
                                       in.data(), weight.data(), n, l.in, l.out, blas_, s);
          },
          &cp);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Optimisers over each model's whole trainable-parameter buffer (no counterpart: GB/s vs copy)

  void optimizers() {
    for (const octa::Arch arch : {octa::Arch::kA, octa::Arch::kB}) {
      const std::size_t count = octa::ParamTable::for_arch(arch).num_trainable();
      const DeviceBuffer<float> params = fill_.floats(count, -0.5f, 0.5f, "parameters");
      const DeviceBuffer<float> grads = fill_.floats(count, -1.0f, 1.0f, "gradients");
      const DeviceBuffer<float> m = fill_.floats(count, -0.1f, 0.1f, "first moment");
      const DeviceBuffer<float> v = fill_.floats(count, 0.0f, 0.01f, "second moment");
      const DeviceBuffer<std::int64_t> step(1, "step counter");
      OCTA_CUDA_CHECK(cudaMemset(step.data(), 0, sizeof(std::int64_t)));
      const std::string shape = fmt::format("model {} {} params", octa::arch_name(arch), count);
      const double P = as_double(count);
      cudaStream_t s = stream_;

      // adam_update: params, m, v updated in place from grads; the step counter incremented.
      //   bytes = 4 * 7P + 2*8  (params, grads, m, v; params, m, v; step read and written)
      const octa::gpu::AdamParams adam{1e-3, 0.9, 0.999, 1e-8, 0.0};
      measure({"adam_update", shape, 0, Work{0.0, 4.0 * 7.0 * P + 16.0}}, [&] {
        octa::gpu::adam_update(params.data(), grads.data(), m.data(), v.data(), count, adam,
                               step.data(), s);
      });
      // sgd_update with momentum 0.9: params and the momentum buffer updated in place.
      //   bytes = 4 * 5P + 2*8  (params, grads, buffer; params, buffer; step read and written)
      const octa::gpu::SgdParams sgd{1e-3, 0.9, 0.0, 0.0, false};
      measure({"sgd_update", shape, 0, Work{0.0, 4.0 * 5.0 * P + 16.0}}, [&] {
        octa::gpu::sgd_update(params.data(), grads.data(), m.data(), count, sgd, step.data(), s);
      });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Measuring and printing

  bool selected(const Row& row) const {
    return opt_.filter.empty() || row.kernel.find(opt_.filter) != std::string::npos ||
           row.shape.find(opt_.filter) != std::string::npos;
  }

  // Times op (and the counterpart's op, after `before_counterpart`), prints the row and keeps it.
  // A failing op fails its own cell only, unless it left the device unusable. Without cp, the
  // row's counterpart fields are printed as they come. Returns the kept row (valid until the next
  // call), or null when --filter leaves it out.
  const Row* measure(Row row, const std::function<void()>& op, const Counterpart* cp = nullptr,
                     const std::function<void()>& before_counterpart = {}) {
    if (!selected(row)) return nullptr;
    try {
      row.time = timer_.time(op);
    } catch (const std::exception& e) {
      row.error = e.what();
      recover(row.kernel);
    }
    if (cp != nullptr) {
      row.counterpart = cp->name;
      row.counterpart_detail = cp->detail;
      try {
        if (before_counterpart) before_counterpart();
        row.counterpart_time = timer_.time(cp->op);
      } catch (const std::exception& e) {
        row.counterpart_error = e.what();
        recover(row.counterpart);
      }
    }
    print_row(row);
    rows_.push_back(std::move(row));
    return &rows_.back();
  }

  // One convolution pass ("forward", ...) on each of `kernels`, the CUDA-core kernels first: one
  // row each (<prefix>_<pass>), with the same counts and counterpart. The counterpart is timed
  // once, with the CUDA-core row, and shared by the tensor-core row, which also gets the CUDA-core
  // kernel's time; where --filter leaves the CUDA-core row out, the tensor-core row times both
  // itself.
  void measure_conv(const std::string& pass, const std::string& shape, int n, const Work& w,
                    const Counterpart& cp, const std::vector<const ConvKernels*>& kernels,
                    const std::function<void(const ConvKernels&)>& call) {
    const ConvKernels& core = *kernels.front();
    const std::function<void()> core_op = [&] { call(core); };
    std::optional<Row> core_row;
    if (const Row* r =
            measure({fmt::format("{}_{}", core.prefix, pass), shape, n, w}, core_op, &cp))
      core_row = *r;
    for (std::size_t i = 1; i < kernels.size(); ++i) {
      const ConvKernels& k = *kernels[i];
      Row row(fmt::format("{}_{}", k.prefix, pass), shape, n, w);
      if (!selected(row)) continue;
      row.cuda_core = fmt::format("{}_{}", core.prefix, pass);
      if (core_row) {
        row.cuda_core_time = core_row->time;
        row.counterpart = core_row->counterpart;
        row.counterpart_detail = core_row->counterpart_detail;
        row.counterpart_time = core_row->counterpart_time;
        row.counterpart_error = core_row->counterpart_error;
      } else {
        try {
          row.cuda_core_time = timer_.time(core_op);
        } catch (const std::exception&) {
          recover(row.cuda_core);  // its failure shows as a missing time
        }
      }
      measure(
          std::move(row), [&] { call(k); }, core_row ? nullptr : &cp);
    }
  }

  // After a failure: clear a recoverable error; a sticky one (an illegal address, say) leaves the
  // context unusable and every later figure meaningless, so stop there.
  static void recover(const std::string& what) {
    static_cast<void>(cudaGetLastError());
    const cudaError_t st = cudaDeviceSynchronize();
    if (st != cudaSuccess) {
      throw octa::CudaError(fmt::format("{} left the device unusable ({}: {}); stopping", what,
                                        cudaGetErrorName(st), cudaGetErrorString(st)));
    }
  }

  static void print_line(const std::array<std::string, 11>& c) {
    fmt::print("{:<28} {:<22} {:>5} {:>9} {:>8} {:>8} {:>10}  {:<26} {:>9} {:>7} {:>3}\n", c[0],
               c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]);
  }

  static void print_header() {
    print_line({"kernel", "shape", "batch", "us", "GFLOP/s", "GB/s", "% of peak", "counterpart",
                "cp us", "octa/cp", "L2"});
  }

  void print_row(const Row& r) const {
    std::array<std::string, 11> c;
    c[0] = r.kernel;
    c[1] = r.shape;
    c[2] = r.batch > 0 ? std::to_string(r.batch) : "-";
    c[3] = c[4] = c[5] = c[6] = c[8] = c[9] = "-";
    if (r.time) {
      const double us = r.time->us;
      const Bound b = bound_of(r.work, us, peaks_);
      c[3] = fmt::format("{:.2f}", us);
      if (r.work.flops > 0.0) c[4] = fmt::format("{:.0f}", gflop_per_s(r.work, us));
      c[5] = fmt::format("{:.1f}", gb_per_s(r.work, us));
      c[6] = fmt::format("{:.0f}% {}", b.percent, b.peak);
    } else {
      c[3] = "error";
    }
    c[7] = r.counterpart.empty() ? "-" : r.counterpart;
    if (r.counterpart_time) {
      c[8] = fmt::format("{:.2f}", r.counterpart_time->us);
      if (r.time) c[9] = fmt::format("{:.2f}", r.time->us / r.counterpart_time->us);
    } else if (!r.counterpart_error.empty()) {
      c[8] = "error";
    }
    c[10] = r.work.bytes <= static_cast<double>(prop_.l2CacheSize) ? "yes" : "no";
    print_line(c);
    if (!r.cuda_core.empty()) {  // a tensor-core row: the CUDA-core kernel's time beside it
      std::string vs = "error";
      if (r.cuda_core_time) {
        vs = fmt::format("{:.2f} us", r.cuda_core_time->us);
        if (r.time) vs += fmt::format(", tc/fp32 {:.2f}", r.time->us / r.cuda_core_time->us);
      }
      fmt::print("    vs {} (CUDA cores): {}\n", r.cuda_core, vs);
    }
    if (!r.unfused.empty()) {
      std::string vs = "error";
      if (r.unfused_time) {
        vs = fmt::format("{:.2f} us", r.unfused_time->us);
        if (r.time) vs += fmt::format(", fused/unfused {:.2f}", r.time->us / r.unfused_time->us);
      }
      fmt::print("    vs unfused {} ({:.2f} MB against {:.2f} MB): {}\n", r.unfused,
                 r.unfused_bytes / 1e6, r.work.bytes / 1e6, vs);
    }
    if (!r.error.empty()) fmt::print("    error: {}\n", r.error);
    if (!r.counterpart_error.empty())
      fmt::print("    counterpart error: {}\n", r.counterpart_error);
    std::fflush(stdout);
  }

  void print_device() const {
    int runtime = 0, driver = 0, blas_version = 0;
    OCTA_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
    OCTA_CUDA_CHECK(cudaDriverGetVersion(&driver));
    OCTA_CUBLAS_CHECK(cublasGetVersion(blas_, &blas_version));
    fmt::print(
        "device {}: {}, cc {}.{}, {} SMs, L2 {:.0f} MiB, {:.1f} GiB; CUDA runtime {}, "
        "driver {}, cuBLAS {}, cuDNN {}\n",
        opt_.device, prop_.name, prop_.major, prop_.minor, prop_.multiProcessorCount,
        prop_.l2CacheSize / 1048576.0, as_double(prop_.totalGlobalMem) / 1073741824.0, runtime,
        driver, blas_version, cudnnGetVersion());
    fmt::print(
        "timing: median of {} CUDA-graph replays per op after {} warm-up calls; each replay "
        "runs the op back to back for about {:.0f} us (see the source)\n\n",
        opt_.reps, opt_.warmup, Timer::kTargetReplayUs);
  }

  const Options& opt_;
  cudaDeviceProp prop_{};
  octa::cuda::Stream stream_;
  octa::cuda::CublasHandle blas_;
  octa::cuda::CudnnHandle dnn_;
  Timer timer_;
  DeviceBuffer<std::uint8_t> blas_ws_;
  Filler fill_;
  Peaks peaks_;
  nlohmann::json peak_json_ = nlohmann::json::object();
  std::vector<Row> rows_;
};

nlohmann::json timing_json(const std::optional<Timing>& t) {
  if (!t) return nullptr;
  return {{"time_us", t->us}, {"calls_per_replay", t->per_replay}};
}

nlohmann::json Bench::json(const std::string& command) const {
  int runtime = 0, driver = 0, blas_version = 0;
  OCTA_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  OCTA_CUDA_CHECK(cudaDriverGetVersion(&driver));
  OCTA_CUBLAS_CHECK(cublasGetVersion(blas_, &blas_version));
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  std::array<char, 32> date{};
  std::strftime(date.data(), date.size(), "%Y-%m-%dT%H:%M:%SZ", &utc);

  nlohmann::json j;
  j["command"] = command;
  j["date"] = date.data();
  j["device"] = {{"index", opt_.device},
                 {"name", std::string(prop_.name)},
                 {"compute_capability", fmt::format("{}.{}", prop_.major, prop_.minor)},
                 {"sms", prop_.multiProcessorCount},
                 {"l2_bytes", prop_.l2CacheSize},
                 {"memory_bytes", prop_.totalGlobalMem},
                 {"cuda_runtime", runtime},
                 {"cuda_driver", driver},
                 {"cublas", blas_version},
                 {"cudnn", cudnnGetVersion()}};
  j["options"] = {{"batches", opt_.batches},   {"reps", opt_.reps},
                  {"warmup", opt_.warmup},     {"filter", opt_.filter},
                  {"copy_mib", opt_.copy_mib}, {"gemm_size", opt_.gemm_size}};
  j["timing"] = fmt::format(
      "median over {} replays of a CUDA graph holding the op back to back (about {:.0f} "
      "us per replay), divided by the calls per replay; {} eager warm-up calls first",
      opt_.reps, Timer::kTargetReplayUs, opt_.warmup);
  j["counts"] =
      "flops = 2 x multiply-adds (conv/GEMM only); bytes = each input read once and each "
      "output written once; percent_of_peak against the larger of flops/sgemm_fp32 and "
      "bytes/copy (the tensor-core conv3x3_tc_* rows too, so theirs may pass 100)";
  j["peaks"] = peak_json_;
  j["rows"] = nlohmann::json::array();
  for (const Row& r : rows_) {
    nlohmann::json row = {
        {"kernel", r.kernel},
        {"shape", r.shape},
        {"batch", r.batch > 0 ? nlohmann::json(r.batch) : nlohmann::json(nullptr)},
        {"flops", r.work.flops},
        {"bytes", r.work.bytes},
        {"fits_l2", r.work.bytes <= static_cast<double>(prop_.l2CacheSize)}};
    row["octa"] = timing_json(r.time);
    if (r.time) {
      const Bound b = bound_of(r.work, r.time->us, peaks_);
      row["gflop_per_s"] = gflop_per_s(r.work, r.time->us);
      row["gb_per_s"] = gb_per_s(r.work, r.time->us);
      row["percent_of_peak"] = b.percent;
      row["peak"] = b.peak;
    }
    if (!r.error.empty()) row["error"] = r.error;
    if (!r.cuda_core.empty()) {
      nlohmann::json core = {{"kernel", r.cuda_core}, {"timing", timing_json(r.cuda_core_time)}};
      if (r.time && r.cuda_core_time) core["tc_over_cuda_core"] = r.time->us / r.cuda_core_time->us;
      row["cuda_core"] = core;
    }
    if (!r.unfused.empty()) {
      nlohmann::json u = {{"kernels", r.unfused},
                          {"bytes", r.unfused_bytes},
                          {"timing", timing_json(r.unfused_time)}};
      if (r.time && r.unfused_time) u["fused_over_unfused"] = r.time->us / r.unfused_time->us;
      row["unfused"] = u;
    }
    if (!r.counterpart.empty()) {
      nlohmann::json cp = {{"name", r.counterpart}, {"detail", r.counterpart_detail}};
      cp["timing"] = timing_json(r.counterpart_time);
      if (r.time && r.counterpart_time)
        cp["octa_over_counterpart"] = r.time->us / r.counterpart_time->us;
      if (!r.counterpart_error.empty()) cp["error"] = r.counterpart_error;
      row["counterpart"] = cp;
    } else {
      row["counterpart"] = nullptr;
    }
    j["rows"].push_back(std::move(row));
  }
  return j;
}

const char* kExamples = R"(
Examples:
  bench_kernels                                   batches 64 and 1024, 50 timed replays per op
  bench_kernels --batches 64 --filter conv3x3     the convolutions only, at batch 64
  bench_kernels --filter conv3x3_tc               the tensor-core convolutions (conv2), each
                                                  against cuDNN and its CUDA-core version
  bench_kernels --json runs/bench/kernels.json    the table as JSON as well (written atomically)
Exit status: 0 done; 1 an error (its message says which); 2 no usable CUDA device (or no such
--device); another non-zero status: a bad command line.
)";

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "bench_kernels: octa's CUDA kernels at the model's shapes, against cuDNN/cuBLAS and against "
      "the card's measured copy and SGEMM peaks"};
  app.footer(kExamples);
  app.add_option("--batches", o.batches, "Batch sizes, comma-separated")
      ->delimiter(',')
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  app.add_option("--reps", o.reps, "Timed graph replays per op (the median is reported)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--warmup", o.warmup, "Eager warm-up calls per op before timing")
      ->check(CLI::Range(0, 10000))
      ->capture_default_str();
  app.add_option("--filter", o.filter, "Only rows whose kernel or shape contains this text");
  app.add_option("--json", o.json, "Also write the results as JSON to this file");
  app.add_option("--copy-mib", o.copy_mib, "Buffer size of the copy peak, MiB")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  app.add_option("--gemm-size", o.gemm_size, "M = N = K of the SGEMM peak")
      ->check(CLI::Range(256, 32768))
      ->capture_default_str();
  app.add_option("--device", o.device, "CUDA device index")
      ->check(CLI::Range(0, 1023))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const octa::DeviceProbe probe = octa::probe_cuda_device();
  if (!probe.available) {
    std::fprintf(stderr, "bench_kernels: %s: nothing to benchmark\n", probe.reason.c_str());
    return 2;
  }
  if (o.device >= probe.device_count) {
    std::fprintf(stderr, "bench_kernels: --device %d: this machine has %d CUDA device(s)\n",
                 o.device, probe.device_count);
    return 2;
  }
  try {
    octa::init_logging(spdlog::level::warn);
    OCTA_CUDA_CHECK(cudaSetDevice(o.device));
    std::string command;
    for (int i = 0; i < argc; ++i) command += (i > 0 ? " " : "") + std::string(argv[i]);
    Bench bench(o);
    bench.run();
    if (!o.json.empty()) {
      octa::write_file_atomically(o.json, bench.json(command).dump(2) + "\n");
      fmt::print("\nwrote {}\n", o.json);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_kernels: error: %s\n", e.what());
    return 1;
  }
}

#pragma GCC diagnostic pop
