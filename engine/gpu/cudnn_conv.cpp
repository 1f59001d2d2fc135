// engine/gpu/cudnn_conv.cpp: the 3x3 / stride 1 / pad 1 convolution through cuDNN 9's legacy
// convolution API, FP32 FMA math only (no TF32), deterministic algorithms only, chosen per batch
// size by cuDNN's heuristics and planned (descriptors + workspace) before any CUDA graph capture.
#include "engine/gpu/cudnn_conv.hpp"

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/cudnn_descriptors.hpp"
#include "engine/cuda/nvtx.hpp"
#include "engine/cuda/raii.hpp"

// cuDNN 9 marks the whole legacy convolution API CUDNN_DEPRECATED (the descriptor types, the
// *_v7 queries, cudnnConvolutionForward/BackwardData/BackwardFilter/BackwardBias, filter and
// activation descriptors, cudnnAddTensor, even the cudnnNanPropagation_t values) in favour of the
// graph API. In 9.19 the attribute only expands when CUDNN_WARN_DEPRECATED is defined, which octa
// does not do, so today nothing warns; but this file *is* the legacy-API path by design, so should
// anyone define it, the deprecation is silenced here, in this file alone, rather than failing the
// -Werror build. The graph API (cudnn_backend.h) is the supported replacement if the legacy one is
// ever removed.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace octa::gpu {

namespace {

// Largest workspace an algorithm may ask for. The model's convolutions need a few MiB at most;
// the cap keeps a heuristic's FFT choice from quietly taking gigabytes.
constexpr std::size_t kWorkspaceCap = std::size_t{256} << 20;
constexpr double kMiB = 1024.0 * 1024.0;

using cuda::ActivationDesc;
using cuda::ConvDesc;
using cuda::FilterDesc;
using cuda::TensorDesc;

// Each factory owns the descriptor before configuring it, so a failing Set* call leaks nothing.
FilterDesc make_filter(int cout, int cin) {
  cudnnFilterDescriptor_t raw{};
  OCTA_CUDNN_CHECK(cudnnCreateFilterDescriptor(&raw));
  FilterDesc d(raw);
  OCTA_CUDNN_CHECK(
      cudnnSetFilter4dDescriptor(d, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, cout, cin, 3, 3));
  return d;
}

// pad 1, stride 1, dilation 1, cross-correlation (what every framework calls convolution), FP32.
// Math: CUDNN_FMA_MATH, not CUDNN_DEFAULT_MATH: cuDNN documents that DEFAULT_MATH *permits* TF32
// tensor-core kernels for FP32 data on Ampere and later (the H100 included), and FMA_MATH is the
// mode that restricts it to FP32 FMA kernels. TF32 would need a far looser tolerance than
// tol::kGpuVsCpu (about atol 1e-3 / rtol 1e-2); if wanted later, set CUDNN_DEFAULT_MATH here and
// accept the heuristics' tensor-op results in choose() below.
ConvDesc make_conv() {
  cudnnConvolutionDescriptor_t raw{};
  OCTA_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&raw));
  ConvDesc d(raw);
  OCTA_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                                   CUDNN_DATA_FLOAT));
  OCTA_CUDNN_CHECK(cudnnSetConvolutionMathType(d, CUDNN_FMA_MATH));
  return d;
}

ActivationDesc make_relu() {
  cudnnActivationDescriptor_t raw{};
  OCTA_CUDNN_CHECK(cudnnCreateActivationDescriptor(&raw));
  ActivationDesc d(raw);
  OCTA_CUDNN_CHECK(
      cudnnSetActivationDescriptor(d, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0));
  return d;
}

// ---------------------------------------------------------------------------------------------
// Algorithm names, for describe() and error messages (the enum values of cudnn_ops.h).

constexpr std::array<std::string_view, 8> kFwdNames = {
    "IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT", "FFT", "FFT_TILING",
    "WINOGRAD",      "WINOGRAD_NONFUSED"};
constexpr std::array<std::string_view, 6> kBwdDataNames = {
    "ALGO_0", "ALGO_1", "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
constexpr std::array<std::string_view, 7> kBwdFilterNames = {
    "ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD", "WINOGRAD_NONFUSED", "FFT_TILING"};

template <std::size_t Count, class Algo>
std::string algo_name(const std::array<std::string_view, Count>& names, Algo algo) {
  const auto i = static_cast<std::size_t>(algo);
  const std::string_view name = i < Count ? names[i] : std::string_view("UNKNOWN");
  return fmt::format("{} ({})", static_cast<int>(algo), name);
}

// ---------------------------------------------------------------------------------------------
// Choosing an algorithm.

template <class Algo>
struct Choice {
  Algo algo{};
  std::size_t workspace_bytes = 0;
};

// Takes the first (the heuristics' best-ranked) result that ran the query successfully, is
// deterministic, uses FP32 FMA math and whose workspace (asked of cuDNN for the FMA descriptor,
// not taken from the query) is within the cap. There is deliberately no fallback: a
// non-deterministic algorithm would silently break run-to-run reproducibility.
//
// Heuristics (the *_v7 queries) rather than cudnnFind*Ex: the choice then depends only on the
// shape and the cuDNN version, not on timings, so two runs pick the same algorithm and produce the
// same bits; and nothing is launched, so planning is cheap.
template <class Perf, class Algo, std::size_t Count, class WorkspaceQuery>
Choice<Algo> choose(const char* pass, const std::string& shape, const std::vector<Perf>& perfs,
                    const std::array<std::string_view, Count>& names, WorkspaceQuery query) {
  std::string rejected;
  for (const Perf& p : perfs) {
    std::string why;
    std::size_t bytes = 0;
    if (p.status != CUDNN_STATUS_SUCCESS) {
      why = cudnnGetErrorString(p.status);
    } else if (p.determinism != CUDNN_DETERMINISTIC) {
      why = "non-deterministic";
    } else if (p.mathType != CUDNN_FMA_MATH && p.mathType != CUDNN_DEFAULT_MATH) {
      why = "tensor-op math";
    } else if (const cudnnStatus_t st = query(p.algo, &bytes); st != CUDNN_STATUS_SUCCESS) {
      why = fmt::format("workspace query: {}", cudnnGetErrorString(st));
    } else if (bytes > kWorkspaceCap) {
      why = fmt::format("workspace {:.1f} MiB over the cap", static_cast<double>(bytes) / kMiB);
    } else {
      return {p.algo, bytes};
    }
    rejected +=
        fmt::format("{}{}: {}", rejected.empty() ? "" : "; ", algo_name(names, p.algo), why);
  }
  throw Error(fmt::format(
      "cudnn_conv: no deterministic FP32 {} algorithm exists for {} within the {:.0f} MiB "
      "workspace cap (cuDNN {} offered: {}); use octa's own convolution kernels (--conv fused) "
      "for this shape",
      pass, shape, static_cast<double>(kWorkspaceCap) / kMiB, cudnnGetVersion(),
      rejected.empty() ? "nothing" : rejected));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// One batch size's descriptors, algorithms and workspace.

struct CudnnConv3x3::Plan {
  TensorDesc x;     // (N, Cin, H, W): in, din
  TensorDesc y;     // (N, Cout, H, W): out, dout
  TensorDesc bias;  // (1, Cout, 1, 1): bias, dbias
  FilterDesc w;     // (Cout, Cin, 3, 3): weight, dweight
  ConvDesc conv;
  ActivationDesc relu;
  Choice<cudnnConvolutionFwdAlgo_t> fwd;
  Choice<cudnnConvolutionBwdDataAlgo_t> bwd_data;
  Choice<cudnnConvolutionBwdFilterAlgo_t> bwd_filter;
  cuda::DeviceBuffer<unsigned char> workspace;  // shared by the three passes (one stream)
};

CudnnConv3x3::CudnnConv3x3(cudnnHandle_t handle, int Cin, int Cout, int H, int W)
    : handle_(handle), cin_(Cin), cout_(Cout), h_(H), w_(W) {
  OCTA_CHECK(handle != nullptr,
             "CudnnConv3x3: no cuDNN handle (create an octa::cuda::CudnnHandle)");
  OCTA_CHECK(Cin > 0 && Cout > 0 && H > 0 && W > 0,
             "CudnnConv3x3: sizes must be positive (Cin = {}, Cout = {}, H = {}, W = {})", Cin,
             Cout, H, W);
}

CudnnConv3x3::~CudnnConv3x3() = default;

void CudnnConv3x3::plan(int N) {
  plan_for(N);
}

CudnnConv3x3::Plan& CudnnConv3x3::plan_for(int N) {
  if (const auto it = plans_.find(N); it != plans_.end()) return *it->second;

  OCTA_CHECK(N > 0, "CudnnConv3x3: batch size N = {} must be positive", N);
  const std::int64_t per_image = std::int64_t{std::max(cin_, cout_)} * h_ * w_;
  OCTA_CHECK(per_image * N <= INT_MAX,
             "CudnnConv3x3: N = {} images of {} values exceed cuDNN's 2^31-element tensor limit; "
             "use a smaller batch",
             N, per_image);
  const std::string shape =
      fmt::format("N = {}, Cin = {}, Cout = {}, {}x{}, 3x3 pad 1", N, cin_, cout_, h_, w_);

  auto p = std::make_unique<Plan>();
  p->x = cuda::make_tensor_desc(N, cin_, h_, w_);
  p->y = cuda::make_tensor_desc(N, cout_, h_, w_);
  p->bias = cuda::make_tensor_desc(1, cout_, 1, 1);
  p->w = make_filter(cout_, cin_);
  p->conv = make_conv();
  p->relu = make_relu();

  int on = 0, oc = 0, oh = 0, ow = 0;
  OCTA_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &on, &oc, &oh, &ow));
  OCTA_CHECK(on == N && oc == cout_ && oh == h_ && ow == w_,
             "CudnnConv3x3: cuDNN computes an output of {}x{}x{}x{} for {}, expected {}x{}x{}x{}",
             on, oc, oh, ow, shape, N, cout_, h_, w_);

  {  // forward
    int max_count = 0, returned = 0;
    OCTA_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(handle_, &max_count));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perfs(static_cast<std::size_t>(max_count));
    OCTA_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(handle_, p->x, p->w, p->conv, p->y,
                                                            max_count, &returned, perfs.data()));
    perfs.resize(static_cast<std::size_t>(std::clamp(returned, 0, max_count)));
    p->fwd = choose<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(
        "forward", shape, perfs, kFwdNames,
        [&](cudnnConvolutionFwdAlgo_t algo, std::size_t* bytes) {
          return cudnnGetConvolutionForwardWorkspaceSize(handle_, p->x, p->w, p->conv, p->y, algo,
                                                         bytes);
        });
  }
  {  // backward data
    int max_count = 0, returned = 0;
    OCTA_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(handle_, &max_count));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perfs(static_cast<std::size_t>(max_count));
    OCTA_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        handle_, p->w, p->y, p->conv, p->x, max_count, &returned, perfs.data()));
    perfs.resize(static_cast<std::size_t>(std::clamp(returned, 0, max_count)));
    p->bwd_data = choose<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
        "backward-data", shape, perfs, kBwdDataNames,
        [&](cudnnConvolutionBwdDataAlgo_t algo, std::size_t* bytes) {
          return cudnnGetConvolutionBackwardDataWorkspaceSize(handle_, p->w, p->y, p->conv, p->x,
                                                              algo, bytes);
        });
  }
  {  // backward filter
    int max_count = 0, returned = 0;
    OCTA_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(handle_, &max_count));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perfs(static_cast<std::size_t>(max_count));
    OCTA_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        handle_, p->x, p->y, p->conv, p->w, max_count, &returned, perfs.data()));
    perfs.resize(static_cast<std::size_t>(std::clamp(returned, 0, max_count)));
    p->bwd_filter = choose<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
        "backward-filter", shape, perfs, kBwdFilterNames,
        [&](cudnnConvolutionBwdFilterAlgo_t algo, std::size_t* bytes) {
          return cudnnGetConvolutionBackwardFilterWorkspaceSize(handle_, p->x, p->y, p->conv, p->w,
                                                                algo, bytes);
        });
  }

  const std::size_t bytes = std::max(
      {p->fwd.workspace_bytes, p->bwd_data.workspace_bytes, p->bwd_filter.workspace_bytes});
  p->workspace = cuda::DeviceBuffer<unsigned char>(bytes, "cuDNN convolution workspace");
  return *plans_.emplace(N, std::move(p)).first->second;
}

namespace {

// Planning allocates device memory, which must not happen inside a CUDA graph capture: there the
// plan has to exist already.
void check_planned(bool planned, int N, cudaStream_t stream, const char* op) {
  if (planned) return;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  OCTA_CUDA_CHECK(cudaStreamIsCapturing(stream, &capture));
  OCTA_CHECK(capture == cudaStreamCaptureStatusNone,
             "CudnnConv3x3::{}: batch size {} was not planned before CUDA graph capture; call "
             "plan({}) first",
             op, N, N);
}

}  // namespace

void CudnnConv3x3::forward(float* out, const float* in, const float* weight, const float* bias,
                           int N, Epilogue epilogue, cudaStream_t stream) {
  cuda::NvtxRange range("CudnnConv3x3::forward");
  OCTA_CHECK(out != nullptr && in != nullptr && weight != nullptr && bias != nullptr,
             "CudnnConv3x3::forward: out, in, weight and bias must all be device pointers");
  check_planned(plans_.count(N) != 0, N, stream, "forward");
  Plan& p = plan_for(N);
  OCTA_CUDNN_CHECK(cudnnSetStream(handle_, stream));  // the handle is shared
  const float one = 1.0f, zero = 0.0f;
  // beta = 0: cuDNN does not read `out`, so it may hold anything.
  OCTA_CUDNN_CHECK(cudnnConvolutionForward(handle_, &one, p.x, in, p.w, weight, p.conv, p.fwd.algo,
                                           p.workspace.data(), p.workspace.bytes(), &zero, p.y,
                                           out));
  // out += bias, broadcast over N, H, W. The fused cudnnConvolutionBiasActivationForward would
  // save two passes, but its identity epilogue only runs with IMPLICIT_PRECOMP_GEMM; simplest
  // correct first, fuse once measured.
  OCTA_CUDNN_CHECK(cudnnAddTensor(handle_, &one, p.bias, bias, &one, p.y, out));
  if (epilogue == Epilogue::kRelu) {
    // In place is allowed for cudnnActivationForward.
    OCTA_CUDNN_CHECK(cudnnActivationForward(handle_, p.relu, &one, p.y, out, &zero, p.y, out));
  }
}

void CudnnConv3x3::forward_bias_relu(float* out, const float* in, const float* weight,
                                     const float* bias, int N, cudaStream_t stream) {
  cuda::NvtxRange range("CudnnConv3x3::forward_bias_relu");
  OCTA_CHECK(out != nullptr && in != nullptr && weight != nullptr && bias != nullptr,
             "CudnnConv3x3::forward_bias_relu: out, in, weight and bias must all be device "
             "pointers");
  check_planned(plans_.count(N) != 0, N, stream, "forward_bias_relu");
  Plan& p = plan_for(N);
  OCTA_CUDNN_CHECK(cudnnSetStream(handle_, stream));
  // y = relu(1 * conv(x) + 0 * z + bias): z is `out` itself, scaled by zero (cuDNN allows z to
  // alias y); the forward's algorithm, whose ReLU form cuDNN supports for any algorithm.
  const float one = 1.0f, zero = 0.0f;
  OCTA_CUDNN_CHECK(cudnnConvolutionBiasActivationForward(
      handle_, &one, p.x, in, p.w, weight, p.conv, p.fwd.algo, p.workspace.data(),
      p.workspace.bytes(), &zero, p.y, out, p.bias, bias, p.relu, p.y, out));
}

void CudnnConv3x3::backward_data(float* din, const float* dout, const float* weight, int N,
                                 cudaStream_t stream) {
  cuda::NvtxRange range("CudnnConv3x3::backward_data");
  OCTA_CHECK(din != nullptr && dout != nullptr && weight != nullptr,
             "CudnnConv3x3::backward_data: din, dout and weight must all be device pointers");
  check_planned(plans_.count(N) != 0, N, stream, "backward_data");
  Plan& p = plan_for(N);
  OCTA_CUDNN_CHECK(cudnnSetStream(handle_, stream));
  const float one = 1.0f, zero = 0.0f;
  OCTA_CUDNN_CHECK(cudnnConvolutionBackwardData(handle_, &one, p.w, weight, p.y, dout, p.conv,
                                                p.bwd_data.algo, p.workspace.data(),
                                                p.workspace.bytes(), &zero, p.x, din));
}

void CudnnConv3x3::backward_filter(float* dweight, float* dbias, const float* dout, const float* in,
                                   int N, cudaStream_t stream) {
  cuda::NvtxRange range("CudnnConv3x3::backward_filter");
  OCTA_CHECK(dweight != nullptr && dbias != nullptr && dout != nullptr && in != nullptr,
             "CudnnConv3x3::backward_filter: dweight, dbias, dout and in must all be device "
             "pointers");
  check_planned(plans_.count(N) != 0, N, stream, "backward_filter");
  Plan& p = plan_for(N);
  OCTA_CUDNN_CHECK(cudnnSetStream(handle_, stream));
  const float one = 1.0f, zero = 0.0f;
  OCTA_CUDNN_CHECK(cudnnConvolutionBackwardFilter(handle_, &one, p.x, in, p.y, dout, p.conv,
                                                  p.bwd_filter.algo, p.workspace.data(),
                                                  p.workspace.bytes(), &zero, p.w, dweight));
  // dbias = sum of dout over N, H, W. cuDNN's reproducibility notes list the routines that use
  // atomics (backward filter ALGO_0/ALGO_3, backward data ALGO_0, max-pool backward, ...); the
  // bias gradient is not among them, and the determinism test checks it bit for bit.
  OCTA_CUDNN_CHECK(cudnnConvolutionBackwardBias(handle_, &one, p.y, dout, &zero, p.bias, dbias));
}

std::string CudnnConv3x3::describe(int N) {
  const Plan& p = plan_for(N);
  return fmt::format("fwd {}, bwd-data {}, bwd-filter {}, workspace {:.2f} MiB",
                     algo_name(kFwdNames, p.fwd.algo), algo_name(kBwdDataNames, p.bwd_data.algo),
                     algo_name(kBwdFilterNames, p.bwd_filter.algo),
                     static_cast<double>(p.workspace.bytes()) / kMiB);
}

}  // namespace octa::gpu

#pragma GCC diagnostic pop
