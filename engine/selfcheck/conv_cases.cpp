// engine/selfcheck/conv_cases.cpp: the convolution cases of the case table for octa's own kernels,
// on the CUDA cores (kernels/conv3x3.hpp) and on the tensor cores (kernels/conv3x3_tc.hpp), which
// take the same arguments and must give the same results within the same tolerance: each
// implementation runs every shape (forward with each epilogue, the fused ReLU + max-pool forward,
// backward data, backward filter), plus the CUDA cores' filter gradient straight from the
// max-pool's gradient. The bodies (inputs, CPU reference, comparisons) are conv_bodies.hpp's.
//
// Shapes. The models' two convolutions (conv1: Cin = 1, the single-input-channel filter-gradient
// path; conv2: Cin = 32, four chunks of 8 input channels, and --conv fused's tensor-core stage)
// at batch 64, at one image and three, and at batches that are multiples of nothing (67, 37); then
// small shapes that reach what the model shapes do not: odd H and W (partial 2x2 patches),
// channel counts that leave partial channel tiles (Cin 9 = 8 + 1, Cout 33 = 2 x 16 + 1; for the
// tensor cores Cin 12 or 40 against chunks of 8, Cout 70 or 72 against 64-wide blocks, 20 against
// 32-wide ones), widths over one 32-column chunk (W 35, 37), one input channel with a wide image
// (Cin 1, W 37), and pixel counts that leave a partial last 64-pixel block (3 x 6 x 6 = 108). The
// fused max-pool needs even H and W: it runs the even shapes and even counterparts of the odd ones.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/random_fill.hpp"
#include "engine/cpu/ops.hpp"
#include "engine/selfcheck/case_inputs.hpp"
#include "engine/selfcheck/conv_bodies.hpp"
#include "engine/selfcheck/kernel_cases.hpp"
#include "kernels/conv3x3.hpp"
#include "kernels/pool.hpp"

namespace octa::selfcheck {

namespace {

using gpu::Epilogue;

std::vector<ConvShape> conv_shapes() {
  std::vector<ConvShape> shapes = model_conv_shapes();
  for (const ConvShape& s : std::vector<ConvShape>{{3, 3, 5, 6, 6},
                                                   {3, 3, 5, 7, 7},
                                                   {2, 3, 5, 5, 7},
                                                   {2, 9, 33, 5, 35},
                                                   {3, 1, 3, 11, 37},
                                                   {2, 12, 70, 6, 10},
                                                   {1, 40, 20, 5, 7},
                                                   {3, 8, 16, 9, 7},
                                                   {37, 8, 16, 9, 7},
                                                   {3, 12, 20, 11, 13},
                                                   {2, 40, 72, 5, 9}}) {
    shapes.push_back(s);
  }
  return shapes;
}

std::vector<ConvShape> even_shapes() {
  std::vector<ConvShape> shapes;
  for (const ConvShape& s : conv_shapes()) {
    if (s.even()) shapes.push_back(s);
  }
  for (const ConvShape& s : std::vector<ConvShape>{{2, 3, 5, 6, 8},
                                                   {2, 9, 33, 6, 34},
                                                   {3, 1, 3, 10, 36},
                                                   {3, 8, 16, 10, 8},
                                                   {37, 12, 20, 6, 10},
                                                   {2, 40, 72, 4, 6}}) {
    shapes.push_back(s);
  }
  return shapes;
}

KernelCase octa_case(const ConvLaunchers& L, ConvImpl impl, const char* pass, ConvPass p,
                     const std::string& variants, const ConvShape& s, const char* reference) {
  return conv_case(L.name(pass), L.prefix, impl, p, variants, s, reference);
}

KernelCase forward_case(const ConvLaunchers& L, ConvImpl impl, const ConvShape& s) {
  KernelCase c =
      octa_case(L, impl, "forward", ConvPass::kForward, " (kNone, kRelu)", s, kForwardReference);
  c.body = [L, s](CaseRun& r) {
    forward_body(
        r, s, [&](float* out, const float* in, const float* w, const float* b, Epilogue epilogue) {
          L.forward(out, in, w, b, s.N, s.Cin, s.Cout, s.H, s.W, epilogue, r.stream());
        });
  };
  return c;
}

KernelCase relu_maxpool_case(const ConvLaunchers& L, ConvImpl impl, const ConvShape& s) {
  KernelCase c = octa_case(L, impl, "relu_maxpool_forward", ConvPass::kReluMaxpool, "", s,
                           kReluMaxpoolReference);
  c.body = [L, s](CaseRun& r) {
    relu_maxpool_body(
        r, s, [&](float* pooled, float* act, const float* in, const float* w, const float* b) {
          L.relu_maxpool_forward(pooled, act, in, w, b, s.N, s.Cin, s.Cout, s.H, s.W, r.stream());
        });
  };
  return c;
}

KernelCase backward_data_case(const ConvLaunchers& L, ConvImpl impl, const ConvShape& s) {
  KernelCase c =
      octa_case(L, impl, "backward_data", ConvPass::kBackwardData, "", s, kBackwardDataReference);
  c.body = [L, s](CaseRun& r) {
    backward_data_body(r, s, [&](float* din, const float* dout, const float* w) {
      L.backward_data(din, dout, w, s.N, s.Cin, s.Cout, s.H, s.W, r.stream());
    });
  };
  return c;
}

// Both implementations reduce through conv3x3_backward_filter_workspace's floats, poisoned too:
// every partial must be written before it is summed.
KernelCase backward_filter_case(const ConvLaunchers& L, ConvImpl impl, const ConvShape& s) {
  KernelCase c = octa_case(L, impl, "backward_filter", ConvPass::kBackwardFilter, "", s,
                           kBackwardFilterReference);
  c.body = [L, s](CaseRun& r) {
    auto ws = r.alloc<float>(gpu::conv3x3_backward_filter_workspace(s.N, s.Cin, s.Cout, s.H, s.W));
    backward_filter_body(r, s, [&](float* dw, float* db, const float* dout, const float* in) {
      L.backward_filter(dw, db, dout, in, s.N, s.Cin, s.Cout, s.H, s.W, ws.data(), r.stream());
    });
  };
  return c;
}

// Model A's first stage backward in one pass, against the CPU and, bit for bit, against the two
// passes it replaces (maxpool2x2_backward with the ReLU, then conv3x3_backward_filter).
KernelCase from_maxpool_case(const ConvLaunchers& L, const ConvShape& s) {
  KernelCase c = octa_case(
      L, ConvImpl::kCudaCore, "backward_filter_from_maxpool", ConvPass::kFromMaxpool, "", s,
      "cpu::maxpool2x2_backward, relu_backward, conv3x3_backward; and the two GPU passes");
  c.body = [L, s](CaseRun& r) {
    const std::uint64_t seed = seed_of("conv backward_filter_from_maxpool " + s.tag());
    const ConvInputs x = conv_inputs(s, seed);
    // The pool's input is a ReLU output with many ties (the first-maximum rule decides) and zeros
    // (no gradient through the ReLU); its gradient at the scale of a real one.
    const std::vector<float> act = relu_of(with_ties(random_vector<float>(s.out_size(), seed + 3)));
    const std::vector<float> dpool =
        random_vector<float>(s.pooled_size(), seed + 4, -1.0 / 64, 1.0 / 64);
    std::vector<float> dconv(s.out_size());
    cpu::maxpool2x2_backward(dconv.data(), dpool.data(), act.data(), s.N, s.Cout, s.H, s.W);
    cpu::relu_backward(dconv.data(), dconv.data(), act.data(), dconv.size());
    std::vector<float> din(s.in_size()), dweight(s.weight_size()), dbias(count(s.Cout));
    cpu::conv3x3_backward(din.data(), dweight.data(), dbias.data(), dconv.data(), x.in.data(),
                          x.weight.data(), s.N, s.Cin, s.Cout, s.H, s.W);

    const auto d_act = r.upload(act), d_dpool = r.upload(dpool), in = r.upload(x.in);
    auto ws = r.alloc<float>(gpu::conv3x3_backward_filter_workspace(s.N, s.Cin, s.Cout, s.H, s.W));
    auto d_dconv = r.alloc<float>(s.out_size());
    auto d_dw = r.alloc<float>(s.weight_size());
    auto d_db = r.alloc<float>(count(s.Cout));
    gpu::maxpool2x2_backward(d_dconv.data(), d_dpool.data(), d_act.data(), s.N, s.Cout, s.H, s.W,
                             /*relu_before=*/true, r.stream());
    L.backward_filter(d_dw.data(), d_db.data(), d_dconv.data(), in.data(), s.N, s.Cin, s.Cout, s.H,
                      s.W, ws.data(), r.stream());
    const std::vector<float> two_dw = r.download(d_dw), two_db = r.download(d_db);
    ws.poison();
    d_dw.poison();
    d_db.poison();
    r.launch([&] {
      gpu::conv3x3_backward_filter_from_maxpool(d_dw.data(), d_db.data(), d_dpool.data(),
                                                d_act.data(), in.data(), s.N, s.Cin, s.Cout, s.H,
                                                s.W, ws.data(), r.stream());
    });
    const std::vector<float> got_dw = r.download(d_dw), got_db = r.download(d_db);
    r.check("dweight", got_dw, dweight, tol::kGpuVsCpu);
    r.check("dbias", got_db, dbias, tol::kGpuVsCpu);
    r.check("dweight vs the two passes", got_dw, two_dw, tol::kExact);
    r.check("dbias vs the two passes", got_db, two_db, tol::kExact);
  };
  return c;
}

}  // namespace

std::vector<KernelCase> conv_cases(const CaseOptions& options) {
  std::vector<KernelCase> cases;
  const std::pair<const ConvLaunchers*, ConvImpl> impls[] = {
      {&options.cuda_core, ConvImpl::kCudaCore}, {&options.tensor_core, ConvImpl::kTensorCore}};
  for (const auto& [launchers, impl] : impls) {
    for (const ConvShape& s : conv_shapes()) cases.push_back(forward_case(*launchers, impl, s));
    for (const ConvShape& s : even_shapes()) {
      cases.push_back(relu_maxpool_case(*launchers, impl, s));
    }
    for (const ConvShape& s : conv_shapes()) {
      cases.push_back(backward_data_case(*launchers, impl, s));
    }
    for (const ConvShape& s : conv_shapes()) {
      cases.push_back(backward_filter_case(*launchers, impl, s));
    }
  }
  for (const ConvShape& s : even_shapes()) cases.push_back(from_maxpool_case(options.cuda_core, s));
  return cases;
}

std::vector<KernelCase> kernel_cases(const CaseOptions& options) {
  std::vector<KernelCase> cases = conv_cases(options);
  for (KernelCase& c : layer_cases()) cases.push_back(std::move(c));
  for (KernelCase& c : fused_bn_cases(options)) cases.push_back(std::move(c));
  for (KernelCase& c : fused_bn_step_cases(options)) cases.push_back(std::move(c));
  return cases;
}

}  // namespace octa::selfcheck
