// engine/selfcheck/library_cases.cpp: the cases of the case table that run NVIDIA's libraries, so
// only a GPU: cuDNN's convolutions (the --conv cudnn path, engine/gpu/cudnn_conv.hpp) at the
// models' two convolutions, with the same inputs, references and tolerances as octa's own
// (conv_bodies.hpp), and the cuBLAS linear layers (engine/gpu/linear.hpp) at the models' fc1 and
// fc2, against cpu::linear_forward / linear_backward. Each runs on the CudaCaseDevice's own cuDNN
// or cuBLAS handle; a plan cuDNN cannot make ("no execution plan") fails the case with cuDNN's
// message.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine/core/random_fill.hpp"
#include "engine/cpu/ops.hpp"
#include "engine/gpu/cudnn_conv.hpp"
#include "engine/gpu/linear.hpp"
#include "engine/selfcheck/case_inputs.hpp"
#include "engine/selfcheck/case_table.hpp"
#include "engine/selfcheck/conv_bodies.hpp"
#include "engine/selfcheck/cuda_case_device.hpp"

namespace octa::selfcheck {

namespace {

using gpu::Epilogue;

KernelCase cudnn_case(const char* pass, ConvPass p, const std::string& variants, const ConvShape& s,
                      const char* reference) {
  KernelCase c = conv_case(std::string("CudnnConv3x3::") + pass, "cudnn", ConvImpl::kCudnn, p,
                           variants, s, reference);
  c.gpu_library = true;
  return c;
}

// The convolution planned for the case's batch before anything is timed.
std::unique_ptr<gpu::CudnnConv3x3> planned(CaseRun& r, const ConvShape& s) {
  auto conv = std::make_unique<gpu::CudnnConv3x3>(cuda_device_of(r.device()).cudnn(), s.Cin, s.Cout,
                                                  s.H, s.W);
  conv->plan(s.N);
  return conv;
}

std::vector<KernelCase> cudnn_cases() {
  std::vector<KernelCase> cases;
  for (const ConvShape& s : model_conv_shapes()) {
    KernelCase c =
        cudnn_case("forward", ConvPass::kForward, " (kNone, kRelu)", s, kForwardReference);
    c.body = [s](CaseRun& r) {
      const auto conv = planned(r, s);
      forward_body(
          r, s,
          [&](float* out, const float* in, const float* w, const float* b, Epilogue epilogue) {
            conv->forward(out, in, w, b, s.N, epilogue, r.stream());
          });
    };
    cases.push_back(std::move(c));
  }
  // cuDNN's fused conv + bias + ReLU (bench_kernels' counterpart of the folded eval form), into a
  // poisoned output that it must not read (it is also the z input, scaled by zero).
  for (const ConvShape& s : model_conv_shapes()) {
    KernelCase c =
        cudnn_case("forward_bias_relu", ConvPass::kBatchNormEval, "", s, kForwardReference);
    c.body = [s](CaseRun& r) {
      const auto conv = planned(r, s);
      const ConvInputs x = conv_inputs(s, seed_of("conv forward " + s.tag()));
      std::vector<float> ref(s.out_size());
      cpu::conv3x3_forward(ref.data(), x.in.data(), x.weight.data(), x.bias.data(), s.N, s.Cin,
                           s.Cout, s.H, s.W);
      cpu::relu_forward(ref.data(), ref.data(), ref.size());
      const auto in = r.upload(x.in), weight = r.upload(x.weight), bias = r.upload(x.bias);
      auto out = r.alloc<float>(s.out_size());
      r.launch([&] {
        conv->forward_bias_relu(out.data(), in.data(), weight.data(), bias.data(), s.N, r.stream());
      });
      r.check("out (relu)", r.download(out), ref, tol::kGpuVsCpu);
    };
    cases.push_back(std::move(c));
  }
  for (const ConvShape& s : model_conv_shapes()) {
    KernelCase c =
        cudnn_case("backward_data", ConvPass::kBackwardData, "", s, kBackwardDataReference);
    c.body = [s](CaseRun& r) {
      const auto conv = planned(r, s);
      backward_data_body(r, s, [&](float* din, const float* dout, const float* w) {
        conv->backward_data(din, dout, w, s.N, r.stream());
      });
    };
    cases.push_back(std::move(c));
  }
  for (const ConvShape& s : model_conv_shapes()) {
    KernelCase c =
        cudnn_case("backward_filter", ConvPass::kBackwardFilter, "", s, kBackwardFilterReference);
    c.body = [s](CaseRun& r) {
      const auto conv = planned(r, s);
      backward_filter_body(r, s, [&](float* dw, float* db, const float* dout, const float* in) {
        conv->backward_filter(dw, db, dout, in, s.N, r.stream());
      });
    };
    cases.push_back(std::move(c));
  }
  return cases;
}

// ---------------------------------------------------------------------------------------------
// Linear layers: fc1 of model A (3136 -> 128), fc1 of model B (64 -> 128), fc2 (128 -> 1), at
// batch 64, one image, three and 67. Weights and bias at PyTorch's initial scale; output
// gradients at 1e-2, the model's own scale (the loss is a batch mean): at |dout| ~ 1 the float
// rounding of fc1's weight gradient alone would reach kGpuVsCpu's atol where a sum cancels.

struct LinearShape {
  int N, In, Out;
  const char* layer;
  CaseSize size = CaseSize::kSmall;
  unsigned models = 0;
  std::string tag() const { return fmt::format("{} N{} {}>{}", layer, N, In, Out); }
  std::string str() const { return fmt::format("{}: N={} In={} Out={}", layer, N, In, Out); }
};

std::vector<LinearShape> linear_shapes() {
  struct Layer {
    int in, out;
    const char* name;
    unsigned models;
  };
  const Layer layers[] = {{3136, 128, "fc1 (A)", kModelA},
                          {64, 128, "fc1 (B)", kModelB},
                          {128, 1, "fc2", kModelA | kModelB}};
  std::vector<LinearShape> shapes;
  for (const Layer& l : layers) {
    for (const int N : {64, 1, 3, 67}) {
      const CaseSize size = N == 64   ? CaseSize::kModel
                            : N == 67 ? CaseSize::kLarge
                                      : CaseSize::kSmall;
      shapes.push_back({N, l.in, l.out, l.name, size, N == 64 ? l.models : 0u});
    }
  }
  return shapes;
}

struct LinearData {
  std::vector<float> in, weight, bias, dout;
  explicit LinearData(const LinearShape& s) {
    const std::uint64_t seed = seed_of("linear " + s.tag());
    const double bound = 1.0 / std::sqrt(static_cast<double>(s.In));
    in = random_vector<float>(count(s.N, s.In), seed);
    weight = random_vector<float>(count(s.Out, s.In), seed + 1, -bound, bound);
    bias = random_vector<float>(count(s.Out), seed + 2, -bound, bound);
    dout = random_vector<float>(count(s.N, s.Out), seed + 3, -1e-2, 1e-2);
  }
};

KernelCase linear_case(const char* launcher, const std::string& variants, const LinearShape& s,
                       const char* reference) {
  KernelCase c;
  c.name = std::string(launcher) + " " + s.tag();
  c.group = "linear";
  c.launcher = std::string("gpu::") + launcher + variants;
  c.shape = s.str();
  c.reference = reference;
  c.tolerance = tol::kGpuVsCpu;
  c.size = s.size;
  c.models = s.models;
  c.gpu_library = true;
  return c;
}

std::vector<KernelCase> linear_cases() {
  std::vector<KernelCase> cases;
  for (const LinearShape& s : linear_shapes()) {
    KernelCase c = linear_case("linear_forward", " (cuBLAS SGEMM + bias_forward; kNone, kRelu)", s,
                               "cpu::linear_forward, cpu::relu_forward");
    c.body = [s](CaseRun& r) {
      const LinearData d(s);
      std::vector<float> ref(count(s.N, s.Out));
      cpu::linear_forward(ref.data(), d.in.data(), d.weight.data(), d.bias.data(), s.N, s.In,
                          s.Out);
      const std::vector<float> ref_relu = relu_of(ref);
      cublasHandle_t blas = cuda_device_of(r.device()).cublas();
      const auto in = r.upload(d.in), weight = r.upload(d.weight), bias = r.upload(d.bias);
      auto out = r.alloc<float>(ref.size());
      for (const Epilogue epilogue : {Epilogue::kNone, Epilogue::kRelu}) {
        const bool relu = epilogue == Epilogue::kRelu;
        out.poison();
        r.launch([&] {
          gpu::linear_forward(out.data(), in.data(), weight.data(), bias.data(), s.N, s.In, s.Out,
                              epilogue, blas, r.stream());
        });
        r.check(relu ? "out (kRelu)" : "out (kNone)", r.download(out), relu ? ref_relu : ref,
                tol::kGpuVsCpu);
      }
    };
    cases.push_back(std::move(c));
  }
  for (const LinearShape& s : linear_shapes()) {
    KernelCase c =
        linear_case("linear_backward", " (cuBLAS SGEMMs + bias_backward; with, without din)", s,
                    "cpu::linear_backward");
    c.body = [s](CaseRun& r) {
      const LinearData d(s);
      std::vector<float> din_ref(count(s.N, s.In)), dw_ref(count(s.Out, s.In)),
          db_ref(count(s.Out));
      cpu::linear_backward(din_ref.data(), dw_ref.data(), db_ref.data(), d.dout.data(), d.in.data(),
                           d.weight.data(), s.N, s.In, s.Out);
      cublasHandle_t blas = cuda_device_of(r.device()).cublas();
      const auto in = r.upload(d.in), weight = r.upload(d.weight), dout = r.upload(d.dout);
      auto din = r.alloc<float>(din_ref.size()), dw = r.alloc<float>(dw_ref.size()),
           db = r.alloc<float>(db_ref.size());
      for (const bool want_din : {true, false}) {
        din.poison();
        dw.poison();
        db.poison();
        r.launch([&] {
          gpu::linear_backward(want_din ? din.data() : nullptr, dw.data(), db.data(), dout.data(),
                               in.data(), weight.data(), s.N, s.In, s.Out, blas, r.stream());
        });
        const std::string v = want_din ? "" : " (without din)";
        if (want_din) r.check("din", r.download(din), din_ref, tol::kGpuVsCpu);
        r.check("dweight" + v, r.download(dw), dw_ref, tol::kGpuVsCpu);
        r.check("dbias" + v, r.download(db), db_ref, tol::kGpuVsCpu);
      }
    };
    cases.push_back(std::move(c));
  }
  return cases;
}

}  // namespace

std::vector<KernelCase> library_cases() {
  std::vector<KernelCase> cases = cudnn_cases();
  for (KernelCase& c : linear_cases()) cases.push_back(std::move(c));
  return cases;
}

}  // namespace octa::selfcheck
