// engine/selfcheck/conv_bodies.hpp: the bodies of the convolution cases, shared by every
// implementation's cases (octa's, conv_cases.cpp; cuDNN's, library_cases.cpp): the shape, the
// seeded inputs, the CPU reference and the comparisons, around a callable that runs the pass
// under test. Seeds come from the pass and the shape, not the implementation, so every
// implementation sees the same inputs at the same shape.
//
// Inputs are in [-1, 1] and the parameters at PyTorch's initial scale, +-1/sqrt(fan_in). The
// filter gradient's output gradient is at the scale of a real one (the loss is a batch mean, so
// |dout| ~ 1/64): each dweight sums N*H*W products (50,176 for conv1 at N = 64), and with O(1)
// dout float rounding alone, the CPU reference's as much as the kernel's, reaches ~1e-5 absolute,
// kGpuVsCpu's atol, for the few weights whose sum cancels to near zero.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "engine/core/random_fill.hpp"
#include "engine/cpu/ops.hpp"
#include "engine/selfcheck/case_inputs.hpp"
#include "engine/selfcheck/kernel_case.hpp"
#include "kernels/common.hpp"
#include "kernels/conv3x3_tc.hpp"

namespace octa::selfcheck {

struct ConvShape {
  int N, Cin, Cout, H, W;
  CaseSize size = CaseSize::kSmall;
  unsigned models = 0;

  std::size_t in_size() const { return count(N, Cin, H, W); }
  std::size_t out_size() const { return count(N, Cout, H, W); }
  std::size_t weight_size() const { return count(Cout, Cin, 3, 3); }
  std::size_t pooled_size() const { return count(N, Cout, H / 2, W / 2); }
  bool even() const { return H % 2 == 0 && W % 2 == 0; }
  std::string str() const {
    return fmt::format("N={} Cin={} Cout={} H={} W={}", N, Cin, Cout, H, W);
  }
  std::string tag() const { return fmt::format("N{} {}>{} {}x{}", N, Cin, Cout, H, W); }
};

// The models' two convolutions (conv1 1 -> 32 at 28x28, conv2 32 -> 64 at 14x14) at batch 64, at
// one image and three, and at batches that are multiples of nothing (67, 37): every
// implementation's cases run these (octa's add small odd shapes).
inline std::vector<ConvShape> model_conv_shapes() {
  using enum CaseSize;
  constexpr unsigned kBoth = kModelA | kModelB;  // narrowed per pass by pass_models
  return {{64, 1, 32, 28, 28, kModel, kBoth},
          {64, 32, 64, 14, 14, kModel, kBoth},
          {1, 1, 32, 28, 28},
          {3, 1, 32, 28, 28},
          {1, 32, 64, 14, 14},
          {3, 32, 64, 14, 14},
          {67, 1, 32, 28, 28, kLarge},
          {67, 32, 64, 14, 14, kLarge},
          {37, 32, 64, 14, 14, kLarge}};
}

struct ConvInputs {
  std::vector<float> in, weight, bias;
};

inline ConvInputs conv_inputs(const ConvShape& s, std::uint64_t seed) {
  const double bound = 1.0 / std::sqrt(9.0 * s.Cin);
  return {random_vector<float>(s.in_size(), seed),
          random_vector<float>(s.weight_size(), seed + 1, -bound, bound),
          random_vector<float>(count(s.Cout), seed + 2, -bound, bound)};
}

// The passes of a convolution case (kBatchNormTrain, kBatchNormEval, kFromBnMaxpool: model B's
// fused BatchNorm, fused_bn_cases.cpp: the forward with statistics, the folded eval form, conv1's
// filter gradient with BatchNorm's backward in its staging).
enum class ConvPass {
  kForward,
  kReluMaxpool,
  kBackwardData,
  kBackwardFilter,
  kFromMaxpool,
  kBatchNormTrain,
  kBatchNormEval,
  kFromBnMaxpool
};

// Which models' training steps run `pass` at a model shape (conv1: Cin 1; conv2), which is what
// train_gpu's --conv auto check runs: model A fuses the ReLU and the max-pool into the forward
// (relu_maxpool) and, on octa's kernels, conv1's filter gradient into the pool's backward
// (from_maxpool), where cuDNN's path runs the plain passes; model B runs the forward with
// BatchNorm's statistics in training and the folded form in evaluation on octa's kernels (the plain
// forward on cuDNN's path, and on octa's when BatchNorm's fusion is turned off), and every filter
// gradient; neither needs conv1's input gradient; the tensor cores never run conv1 (Cin below
// gpu::kTensorCoreMinCin).
inline unsigned pass_models(ConvPass pass, const ConvShape& s, ConvImpl impl) {
  if (s.size != CaseSize::kModel) return 0;
  const bool conv1 = s.Cin < gpu::kTensorCoreMinCin, octa_kernels = impl != ConvImpl::kCudnn;
  if (impl == ConvImpl::kTensorCore && conv1) return 0;
  switch (pass) {
    case ConvPass::kForward:
      return octa_kernels ? kModelB : kModelA | kModelB;
    case ConvPass::kReluMaxpool:
      return kModelA;
    case ConvPass::kBackwardData:
      return conv1 ? 0 : kModelA | kModelB;
    case ConvPass::kBackwardFilter:
      return conv1 && octa_kernels ? kModelB : kModelA | kModelB;
    case ConvPass::kFromMaxpool:
      return conv1 ? kModelA : 0;
    case ConvPass::kBatchNormTrain:
    case ConvPass::kBatchNormEval:
      return octa_kernels ? kModelB : 0;
    case ConvPass::kFromBnMaxpool:
      return conv1 && octa_kernels ? kModelB : 0;
  }
  return 0;
}

// The fields of a convolution case that follow from its implementation, pass and shape. A model
// shape no model runs that way is a large case: the GPU runners check it, the emulator does not.
inline KernelCase conv_case(const std::string& launcher, const std::string& group, ConvImpl impl,
                            ConvPass pass, const std::string& variants, const ConvShape& s,
                            std::string reference) {
  KernelCase c;
  c.name = launcher + " " + s.tag();
  c.group = group;
  c.launcher = "gpu::" + launcher + variants;
  c.shape = s.str();
  c.reference = std::move(reference);
  c.tolerance = tol::kGpuVsCpu;
  c.models = pass_models(pass, s, impl);
  c.size = s.size == CaseSize::kModel && c.models == 0 ? CaseSize::kLarge : s.size;
  c.conv = impl;
  c.conv_cin = s.Cin;
  return c;
}

inline constexpr const char* kForwardReference = "cpu::conv3x3_forward, cpu::relu_forward";
inline constexpr const char* kReluMaxpoolReference =
    "cpu::conv3x3_forward, relu_forward, maxpool2x2_forward";
inline constexpr const char* kBackwardDataReference = "cpu::conv3x3_backward (input gradient)";
inline constexpr const char* kBackwardFilterReference =
    "cpu::conv3x3_backward (weight and bias gradients)";

// launch(out, in, weight, bias, epilogue): the forward, with each epilogue.
template <class Launch>
void forward_body(CaseRun& r, const ConvShape& s, Launch&& launch) {
  const ConvInputs x = conv_inputs(s, seed_of("conv forward " + s.tag()));
  std::vector<float> ref(s.out_size()), ref_relu(s.out_size());
  cpu::conv3x3_forward(ref.data(), x.in.data(), x.weight.data(), x.bias.data(), s.N, s.Cin, s.Cout,
                       s.H, s.W);
  cpu::relu_forward(ref_relu.data(), ref.data(), ref.size());
  const auto in = r.upload(x.in), weight = r.upload(x.weight), bias = r.upload(x.bias);
  auto out = r.alloc<float>(s.out_size());
  for (const gpu::Epilogue epilogue : {gpu::Epilogue::kNone, gpu::Epilogue::kRelu}) {
    const bool relu = epilogue == gpu::Epilogue::kRelu;
    out.poison();
    r.launch([&] { launch(out.data(), in.data(), weight.data(), bias.data(), epilogue); });
    r.check(relu ? "out (kRelu)" : "out (kNone)", r.download(out), relu ? ref_relu : ref,
            tol::kGpuVsCpu);
  }
}

// launch(pooled, act, in, weight, bias): ReLU and the 2x2 max-pool fused into the forward.
template <class Launch>
void relu_maxpool_body(CaseRun& r, const ConvShape& s, Launch&& launch) {
  const ConvInputs x = conv_inputs(s, seed_of("conv relu_maxpool " + s.tag()));
  std::vector<float> conv(s.out_size()), act(s.out_size()), pooled(s.pooled_size());
  cpu::conv3x3_forward(conv.data(), x.in.data(), x.weight.data(), x.bias.data(), s.N, s.Cin, s.Cout,
                       s.H, s.W);
  cpu::relu_forward(act.data(), conv.data(), act.size());
  cpu::maxpool2x2_forward(pooled.data(), act.data(), s.N, s.Cout, s.H, s.W);
  const auto in = r.upload(x.in), weight = r.upload(x.weight), bias = r.upload(x.bias);
  auto d_act = r.alloc<float>(s.out_size());
  auto d_pooled = r.alloc<float>(s.pooled_size());
  r.launch([&] { launch(d_pooled.data(), d_act.data(), in.data(), weight.data(), bias.data()); });
  r.check("act", r.download(d_act), act, tol::kGpuVsCpu);
  r.check("pooled", r.download(d_pooled), pooled, tol::kGpuVsCpu);
}

// launch(din, dout, weight): the input gradient.
template <class Launch>
void backward_data_body(CaseRun& r, const ConvShape& s, Launch&& launch) {
  const std::uint64_t seed = seed_of("conv backward_data " + s.tag());
  const ConvInputs x = conv_inputs(s, seed);
  const std::vector<float> dout = random_vector<float>(s.out_size(), seed + 5);
  std::vector<float> din(s.in_size()), dweight(s.weight_size()), dbias(count(s.Cout));
  cpu::conv3x3_backward(din.data(), dweight.data(), dbias.data(), dout.data(), x.in.data(),
                        x.weight.data(), s.N, s.Cin, s.Cout, s.H, s.W);
  const auto d_dout = r.upload(dout), weight = r.upload(x.weight);
  auto d_din = r.alloc<float>(s.in_size());
  r.launch([&] { launch(d_din.data(), d_dout.data(), weight.data()); });
  r.check("din", r.download(d_din), din, tol::kGpuVsCpu);
}

// launch(dweight, dbias, dout, in): the weight and bias gradients.
template <class Launch>
void backward_filter_body(CaseRun& r, const ConvShape& s, Launch&& launch) {
  const std::uint64_t seed = seed_of("conv backward_filter " + s.tag());
  const ConvInputs x = conv_inputs(s, seed);
  const std::vector<float> dout = random_vector<float>(s.out_size(), seed + 5, -1.0 / 64, 1.0 / 64);
  std::vector<float> din(s.in_size()), dweight(s.weight_size()), dbias(count(s.Cout));
  cpu::conv3x3_backward(din.data(), dweight.data(), dbias.data(), dout.data(), x.in.data(),
                        x.weight.data(), s.N, s.Cin, s.Cout, s.H, s.W);
  const auto d_dout = r.upload(dout), in = r.upload(x.in);
  auto d_dw = r.alloc<float>(s.weight_size());
  auto d_db = r.alloc<float>(count(s.Cout));
  r.launch([&] { launch(d_dw.data(), d_db.data(), d_dout.data(), in.data()); });
  r.check("dweight", r.download(d_dw), dweight, tol::kGpuVsCpu);
  r.check("dbias", r.download(d_db), dbias, tol::kGpuVsCpu);
}

}  // namespace octa::selfcheck
