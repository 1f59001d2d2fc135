// tests/test_gpu_kernels.cpp: every non-convolution CUDA kernel (kernels/pool, batchnorm,
// elementwise, loss, logit_head, optimizer) against the CPU reference (engine/cpu/ops.hpp,
// engine/optim) on random inputs at the models' shapes, with poisoned outputs, plus determinism of
// the reductions.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "engine/core/device_probe.hpp"
#include "engine/core/error.hpp"
#include "engine/core/philox.hpp"
#include "engine/cpu/ops.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/raii.hpp"
#include "engine/optim/optimizer.hpp"
#include "kernels/batchnorm.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/logit_head.hpp"
#include "kernels/loss.hpp"
#include "kernels/optimizer.hpp"
#include "kernels/pool.hpp"
#include "tests/support/batchnorm_inputs.hpp"
#include "tests/support/compare.hpp"
#include "tests/support/gradcheck.hpp"
#include "tests/support/logit_head_case.hpp"
#include "tests/support/optimizer_cases.hpp"
#include "tests/support/skip.hpp"

namespace cpu = octa::cpu;
namespace gpu = octa::gpu;
namespace tol = octa::test::tol;
using octa::cuda::DeviceBuffer;
using octa::gpu::Epilogue;
using octa::test::random_vector;

namespace {

// Batch sizes: one image, a few, a block-friendly size and one that is not.
constexpr int kBatchSizes[] = {1, 3, 64, 67};

std::size_t sz(int v) {
  return static_cast<std::size_t>(v);
}

// The test's stream and the copies to and from it. Every download synchronises the stream.
class Device {
 public:
  cudaStream_t stream() const { return stream_; }

  template <class T>
  void put(T* dst, const std::vector<T>& h) {
    OCTA_CUDA_CHECK(
        cudaMemcpyAsync(dst, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice, stream_));
    OCTA_CUDA_CHECK(cudaStreamSynchronize(stream_));  // h may die right after
  }
  template <class T>
  std::vector<T> get(const T* src, std::size_t n) {
    std::vector<T> h(n);
    OCTA_CUDA_CHECK(cudaMemcpyAsync(h.data(), src, n * sizeof(T), cudaMemcpyDeviceToHost, stream_));
    OCTA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return h;
  }
  template <class T>
  DeviceBuffer<T> upload(const std::vector<T>& h) {
    DeviceBuffer<T> d(h.size());
    put(d.data(), h);
    return d;
  }
  template <class T>
  std::vector<T> download(const DeviceBuffer<T>& d) {
    return get(d.data(), d.size());
  }
  // 0xFF bytes: NaN in every float (and 0xFF in every mask byte), so an element that a kernel
  // fails to write cannot pass a comparison.
  template <class T>
  void poison(T* p, std::size_t n) {
    OCTA_CUDA_CHECK(cudaMemsetAsync(p, 0xFF, n * sizeof(T), stream_));
  }
  template <class T>
  DeviceBuffer<T> poisoned(std::size_t n) {
    DeviceBuffer<T> d(n);
    poison(d.data(), n);
    return d;
  }

 private:
  octa::cuda::Stream stream_;
};

std::vector<float> relu(std::vector<float> v) {
  cpu::relu_forward(v.data(), v.data(), v.size());
  return v;
}

// Rounds to multiples of 1/4, so that many 2x2 windows hold ties and the first-maximum rule
// decides where the pooling gradient goes.
std::vector<float> with_ties(std::vector<float> v) {
  for (float& x : v) x = std::round(x * 4.0f) / 4.0f;
  return v;
}

// Targets 0 or 1, about a third positive.
std::vector<float> binary_targets(std::size_t n, std::uint64_t seed) {
  std::vector<float> t = random_vector<float>(n, seed, 0.0, 1.0);
  for (float& y : t) y = y < 1.0f / 3.0f ? 1.0f : 0.0f;
  return t;
}

const char* epilogue_name(Epilogue e) {
  return e == Epilogue::kRelu ? "relu" : "none";
}

}  // namespace

// =============================================================================================
// Argument validation (no device needed: every launcher checks before it touches the GPU)
// =============================================================================================

TEST_CASE("GPU launchers reject bad arguments with a message, before touching the device",
          "[gpu][kernels][args]") {
  CHECK_THROWS_WITH(gpu::maxpool2x2_forward(nullptr, nullptr, 1, 1, 3, 4, nullptr),
                    Catch::Contains("maxpool2x2_forward") && Catch::Contains("must both be even"));
  CHECK_THROWS_WITH(gpu::maxpool2x2_backward(nullptr, nullptr, nullptr, 0, 1, 2, 2, false, nullptr),
                    Catch::Contains("N = 0 must be positive"));
  CHECK_THROWS_WITH(gpu::global_avgpool_forward(nullptr, nullptr, 1, 1, 0, nullptr),
                    Catch::Contains("HW = 0 must be positive"));
  // PyTorch's rule: one value per channel has no unbiased variance.
  CHECK_THROWS_WITH(
      gpu::batchnorm_forward_train(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                   nullptr, 1, 4, 1, 1e-5f, 0.1f, Epilogue::kNone, nullptr),
      Catch::Contains("batchnorm_forward_train") && Catch::Contains("must exceed 1"));
  CHECK_THROWS_WITH(
      gpu::batchnorm_forward_train(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                   nullptr, 2, 4, 1, 1e-5f, 1.5f, Epilogue::kNone, nullptr),
      Catch::Contains("momentum"));
  CHECK_THROWS_WITH(gpu::batchnorm_forward_eval(nullptr, nullptr, nullptr, nullptr, nullptr,
                                                nullptr, 1, 4, 4, -1.0f, Epilogue::kNone, nullptr),
                    Catch::Contains("eps"));
  CHECK_THROWS_WITH(gpu::bias_backward(nullptr, nullptr, 4, 0, nullptr),
                    Catch::Contains("C = 0 must be positive"));
  CHECK_THROWS_WITH(
      gpu::dropout_forward(nullptr, nullptr, nullptr, 10, 1.0f, 1, 2, nullptr, nullptr),
      Catch::Contains("dropout_forward") && Catch::Contains("[0, 1)"));
  CHECK_THROWS_WITH(gpu::bce_with_logits(nullptr, nullptr, nullptr, nullptr, nullptr, 4,
                                         std::numeric_limits<float>::infinity(), nullptr),
                    Catch::Contains("pos_weight"));
  CHECK_THROWS_WITH(
      gpu::bce_with_logits(nullptr, nullptr, nullptr, nullptr, nullptr, 0, 1.0f, nullptr),
      Catch::Contains("N = 0 must be positive"));
  const gpu::AdamParams bad_adam{0.0, 0.9, 0.999, 1e-8, 0.0};
  CHECK_THROWS_WITH(
      gpu::adam_update(nullptr, nullptr, nullptr, nullptr, 16, bad_adam, nullptr, nullptr),
      Catch::Contains("adam_update") && Catch::Contains("lr"));
  const gpu::AdamParams bad_beta{1e-3, 1.0, 0.999, 1e-8, 0.0};
  CHECK_THROWS_WITH(
      gpu::adam_update(nullptr, nullptr, nullptr, nullptr, 16, bad_beta, nullptr, nullptr),
      Catch::Contains("beta1"));
  const gpu::SgdParams bad_sgd{0.1, 0.0, 0.0, 0.0, true};
  CHECK_THROWS_WITH(gpu::sgd_update(nullptr, nullptr, nullptr, 16, bad_sgd, nullptr, nullptr),
                    Catch::Contains("nesterov"));
  // Valid sizes with a missing buffer: named, not a crash on the device.
  const gpu::AdamParams ok_adam{1e-3, 0.9, 0.999, 1e-8, 0.0};
  CHECK_THROWS_WITH(
      gpu::adam_update(nullptr, nullptr, nullptr, nullptr, 16, ok_adam, nullptr, nullptr),
      Catch::Contains("params must not be null"));
}

// =============================================================================================
// Pooling
// =============================================================================================

TEST_CASE("maxpool2x2 forward and backward (plain and with the fused ReLU) match the CPU",
          "[gpu][kernels][pool]") {
  OCTA_REQUIRE_GPU();
  Device dev;
  struct Shape {
    int C, H, W;
  };
  // Model A's and B's two pools: after conv1 and after conv2.
  for (const Shape s : {Shape{32, 28, 28}, Shape{64, 14, 14}}) {
    for (const int N : kBatchSizes) {
      INFO("N " << N << " C " << s.C << " H " << s.H << " W " << s.W);
      const std::size_t n_in = sz(N) * sz(s.C) * sz(s.H) * sz(s.W), n_out = n_in / 4;
      const std::vector<float> x = with_ties(random_vector<float>(n_in, 11 + sz(N)));
      const std::vector<float> dout = random_vector<float>(n_out, 12 + sz(N));

      std::vector<float> out_ref(n_out);
      cpu::maxpool2x2_forward(out_ref.data(), x.data(), N, s.C, s.H, s.W);
      auto d_x = dev.upload(x);
      auto d_out = dev.poisoned<float>(n_out);
      gpu::maxpool2x2_forward(d_out.data(), d_x.data(), N, s.C, s.H, s.W, dev.stream());
      OCTA_CHECK_CLOSE("maxpool forward", dev.download(d_out).data(), out_ref.data(), n_out,
                       tol::kGpuVsCpu);

      // Backward: din is poisoned, so every element (zeros included) must be written.
      std::vector<float> din_ref(n_in);
      cpu::maxpool2x2_backward(din_ref.data(), dout.data(), x.data(), N, s.C, s.H, s.W);
      auto d_dout = dev.upload(dout);
      auto d_din = dev.poisoned<float>(n_in);
      gpu::maxpool2x2_backward(d_din.data(), d_dout.data(), d_x.data(), N, s.C, s.H, s.W, false,
                               dev.stream());
      OCTA_CHECK_CLOSE("maxpool backward", dev.download(d_din).data(), din_ref.data(), n_in,
                       tol::kGpuVsCpu);

      // Fused ReLU backward: the pool's input is a ReLU output (many all-zero windows); the
      // reference is the pool's backward followed by the ReLU's.
      const std::vector<float> xr = relu(x);
      cpu::maxpool2x2_backward(din_ref.data(), dout.data(), xr.data(), N, s.C, s.H, s.W);
      cpu::relu_backward(din_ref.data(), din_ref.data(), xr.data(), n_in);
      auto d_xr = dev.upload(xr);
      dev.poison(d_din.data(), n_in);
      gpu::maxpool2x2_backward(d_din.data(), d_dout.data(), d_xr.data(), N, s.C, s.H, s.W, true,
                               dev.stream());
      OCTA_CHECK_CLOSE("maxpool backward, relu_before", dev.download(d_din).data(), din_ref.data(),
                       n_in, tol::kGpuVsCpu);
    }
  }
}

TEST_CASE("global average pool forward and backward match the CPU", "[gpu][kernels][pool]") {
  OCTA_REQUIRE_GPU();
  Device dev;
  const int C = 64, HW = 49;  // model B: 64x7x7 -> 64
  for (const int N : kBatchSizes) {
    INFO("N " << N);
    const std::size_t n_in = sz(N) * sz(C) * sz(HW), n_out = sz(N) * sz(C);
    const std::vector<float> x = random_vector<float>(n_in, 21 + sz(N));
    const std::vector<float> dout = random_vector<float>(n_out, 22 + sz(N));

    std::vector<float> out_ref(n_out), din_ref(n_in);
    cpu::global_avgpool_forward(out_ref.data(), x.data(), N, C, HW);
    cpu::global_avgpool_backward(din_ref.data(), dout.data(), N, C, HW);

    auto d_x = dev.upload(x);
    auto d_dout = dev.upload(dout);
    auto d_out = dev.poisoned<float>(n_out);
    auto d_din = dev.poisoned<float>(n_in);
    gpu::global_avgpool_forward(d_out.data(), d_x.data(), N, C, HW, dev.stream());
    gpu::global_avgpool_backward(d_din.data(), d_dout.data(), N, C, HW, dev.stream());
    OCTA_CHECK_CLOSE("gap forward", dev.download(d_out).data(), out_ref.data(), n_out,
                     tol::kGpuVsCpu);
    OCTA_CHECK_CLOSE("gap backward", dev.download(d_din).data(), din_ref.data(), n_in,
                     tol::kGpuVsCpu);
  }
}

// =============================================================================================
// BatchNorm
// =============================================================================================

namespace {

using octa::test::BnInputs;

constexpr float kBnEps = 1e-5f, kBnMomentum = 0.1f;

// The GPU side of one BatchNorm configuration: inputs uploaded, outputs poisoned.
struct BnDevice {
  DeviceBuffer<float> x, gamma, beta, running_mean, running_var, dout;
  DeviceBuffer<float> out, save_mean, save_invstd, din, dgamma, dbeta;

  BnDevice(Device& dev, const BnInputs& in)
      : x(dev.upload(in.x)),
        gamma(dev.upload(in.gamma)),
        beta(dev.upload(in.beta)),
        running_mean(dev.upload(in.running_mean)),
        running_var(dev.upload(in.running_var)),
        dout(dev.upload(in.dout)),
        out(dev.poisoned<float>(in.size())),
        save_mean(dev.poisoned<float>(sz(in.C))),
        save_invstd(dev.poisoned<float>(sz(in.C))),
        din(dev.poisoned<float>(in.size())),
        dgamma(dev.poisoned<float>(sz(in.C))),
        dbeta(dev.poisoned<float>(sz(in.C))) {}

  void forward_train(Device& dev, const BnInputs& in, Epilogue epilogue) {
    gpu::batchnorm_forward_train(out.data(), save_mean.data(), save_invstd.data(),
                                 running_mean.data(), running_var.data(), x.data(), gamma.data(),
                                 beta.data(), in.N, in.C, in.HW, kBnEps, kBnMomentum, epilogue,
                                 dev.stream());
  }
  // relu_out: the forward's ReLU output, or null.
  void backward(Device& dev, const BnInputs& in, const float* relu_out) {
    gpu::batchnorm_backward(din.data(), dgamma.data(), dbeta.data(), dout.data(), relu_out,
                            x.data(), save_mean.data(), save_invstd.data(), gamma.data(), in.N,
                            in.C, in.HW, dev.stream());
  }
};

struct BnShape {
  int C, HW;
};
// bn1 (32 x 28x28) and bn2 (64 x 14x14) of model B.
constexpr BnShape kBnShapes[] = {{32, 784}, {64, 196}};

}  // namespace

TEST_CASE("BatchNorm training forward, running statistics and backward match the CPU",
          "[gpu][kernels][batchnorm]") {
  OCTA_REQUIRE_GPU();
  Device dev;
  for (const BnShape s : kBnShapes) {
    for (const int N : kBatchSizes) {
      for (const Epilogue epilogue : {Epilogue::kNone, Epilogue::kRelu}) {
        INFO("N " << N << " C " << s.C << " HW " << s.HW << " epilogue "
                  << epilogue_name(epilogue));
        const BnInputs in(N, s.C, s.HW, 31 + sz(N) + sz(s.C));
        const std::size_t n = in.size(), C = sz(s.C);
        const bool fused_relu = epilogue == Epilogue::kRelu;

        // CPU: the training forward (then the ReLU, if fused), its running statistics update.
        std::vector<float> out_ref(n), mean_ref(C), invstd_ref(C);
        std::vector<float> rm_ref = in.running_mean, rv_ref = in.running_var;
        cpu::batchnorm_forward_train(out_ref.data(), mean_ref.data(), invstd_ref.data(),
                                     rm_ref.data(), rv_ref.data(), in.x.data(), in.gamma.data(),
                                     in.beta.data(), N, s.C, s.HW, kBnEps, kBnMomentum);
        if (fused_relu) out_ref = relu(out_ref);

        BnDevice d(dev, in);
        d.forward_train(dev, in, epilogue);
        OCTA_CHECK_CLOSE("bn out", dev.download(d.out).data(), out_ref.data(), n, tol::kGpuVsCpu);
        OCTA_CHECK_CLOSE("bn save_mean", dev.download(d.save_mean).data(), mean_ref.data(), C,
                         tol::kGpuVsCpu);
        OCTA_CHECK_CLOSE("bn save_invstd", dev.download(d.save_invstd).data(), invstd_ref.data(), C,
                         tol::kGpuVsCpu);
        OCTA_CHECK_CLOSE("bn running_mean", dev.download(d.running_mean).data(), rm_ref.data(), C,
                         tol::kGpuVsCpu);
        OCTA_CHECK_CLOSE("bn running_var", dev.download(d.running_var).data(), rv_ref.data(), C,
                         tol::kGpuVsCpu);

        // Backward from the CPU's saved statistics on both sides, so only the backward is under
        // test. With the fused ReLU the reference masks dout by the ReLU output first.
        std::vector<float> dy = in.dout;
        if (fused_relu) cpu::relu_backward(dy.data(), dy.data(), out_ref.data(), n);
        std::vector<float> din_ref(n), dgamma_ref(C), dbeta_ref(C);
        cpu::batchnorm_backward(din_ref.data(), dgamma_ref.data(), dbeta_ref.data(), dy.data(),
                                in.x.data(), mean_ref.data(), invstd_ref.data(), in.gamma.data(), N,
                                s.C, s.HW);
        dev.put(d.save_mean.data(), mean_ref);
        dev.put(d.save_invstd.data(), invstd_ref);
        auto d_relu_out = dev.upload(out_ref);
        d.backward(dev, in, fused_relu ? d_relu_out.data() : nullptr);
        OCTA_CHECK_CLOSE("bn din", dev.download(d.din).data(), din_ref.data(), n, tol::kGpuVsCpu);
        OCTA_CHECK_CLOSE("bn dgamma", dev.download(d.dgamma).data(), dgamma_ref.data(), C,
                         tol::kGpuVsCpu);
        OCTA_CHECK_CLOSE("bn dbeta", dev.download(d.dbeta).data(), dbeta_ref.data(), C,
                         tol::kGpuVsCpu);
      }
    }
  }
}

TEST_CASE("BatchNorm running statistics follow the CPU over several training forwards",
          "[gpu][kernels][batchnorm]") {
  OCTA_REQUIRE_GPU();
  Device dev;
  BnInputs in(3, 32, 784, 41);
  BnDevice d(dev, in);
  std::vector<float> out_ref(in.size()), mean_ref(32), invstd_ref(32);
  std::vector<float> rm_ref = in.running_mean, rv_ref = in.running_var;
  for (int it = 0; it < 5; ++it) {
    // A fresh batch each time, as in training.
    in.x = random_vector<float>(in.size(), 42 + sz(it), -1.0 + it, 2.0 + it);
    dev.put(d.x.data(), in.x);
    cpu::batchnorm_forward_train(out_ref.data(), mean_ref.data(), invstd_ref.data(), rm_ref.data(),
                                 rv_ref.data(), in.x.data(), in.gamma.data(), in.beta.data(), in.N,
                                 in.C, in.HW, kBnEps, kBnMomentum);
    d.forward_train(dev, in, Epilogue::kNone);
  }
  OCTA_CHECK_CLOSE("running_mean after 5", dev.download(d.running_mean).data(), rm_ref.data(), 32,
                   tol::kGpuVsCpu);
  OCTA_CHECK_CLOSE("running_var after 5", dev.download(d.running_var).data(), rv_ref.data(), 32,
                   tol::kGpuVsCpu);
}

TEST_CASE("BatchNorm eval forward matches the CPU", "[gpu][kernels][batchnorm]") {
  OCTA_REQUIRE_GPU();
  Device dev;
  for (const BnShape s : kBnShapes) {
    for (const int N : kBatchSizes) {
      for (const Epilogue epilogue : {Epilogue::kNone, Epilogue::kRelu}) {
        INFO("N " << N << " C " << s.C << " HW " << s.HW << " epilogue "
                  << epilogue_name(epilogue));
        const BnInputs in(N, s.C, s.HW, 51 + sz(N) + sz(s.C));
        std::vector<float> out_ref(in.size());
        cpu::batchnorm_forward_eval(out_ref.data(), in.x.data(), in.gamma.data(), in.beta.data(),
                                    in.running_mean.data(), in.running_var.data(), N, s.C, s.HW,
                                    kBnEps);
        if (epilogue == Epilogue::kRelu) out_ref = relu(out_ref);

        BnDevice d(dev, in);
        gpu::batchnorm_forward_eval(d.out.data(), d.x.data(), d.gamma.data(), d.beta.data(),
                                    d.running_mean.data(), d.running_var.data(), N, s.C, s.HW,
                                    kBnEps, epilogue, dev.stream());
        OCTA_CHECK_CLOSE("bn eval out", dev.download(d.out).data(), out_ref.data(), in.size(),
                         tol::kGpuVsCpu);
      }
    }
  }
}

// =============================================================================================
// Bias, ReLU, dropout
// =============================================================================================

TEST_CASE("bias_forward (with epilogue) and bias_backward match the CPU",
          "[gpu][kernels][elementwise]") {
  OCTA_REQUIRE_GPU();
  Device dev;
  // fc1 (128 outputs) and fc2 (1 output); 1000 rows span several row groups of the reduction.
  for (const int C : {128, 1}) {
    for (const int N : {1, 3, 64, 67, 1000}) {
      INFO("N " << N << " C " << C);
      const std::size_t n = sz(N) * sz(C);
      const std::vector<float> x = random_vector<float>(n, 61 + sz(N) + sz(C));
      const std::vector<float> bias = random_vector<float>(sz(C), 62 + sz(C));
      auto d_bias = dev.upload(bias);

      for (const Epilogue epilogue : {Epilogue::kNone, Epilogue::kRelu}) {
        INFO("epilogue " << epilogue_name(epilogue));
        std::vector<float> ref(n);
        for (std::size_t i = 0; i < n; ++i) ref[i] = x[i] + bias[i % sz(C)];
        if (epilogue == Epilogue::kRelu) ref = relu(ref);
        auto d_x = dev.upload(x);
        gpu::bias_forward(d_x.data(), d_bias.data(), N, C, epilogue, dev.stream());
        OCTA_CHECK_CLOSE("bias forward", dev.download(d_x).data(), ref.data(), n, tol::kGpuVsCpu);
      }

      // The reference dbias is cpu::linear_backward's (with a dummy one-input layer).
      const std::vector<float> dout = random_vector<float>(n, 63 + sz(N));
      const std::vector<float> in1(sz(N), 1.0f), w1(sz(C), 1.0f);
      std::vector<float> dw_ref(sz(C)), dbias_ref(sz(C));
      cpu::linear_backward<float>(nullptr, dw_ref.data(), dbias_ref.data(), dout.data(), in1.data(),
                                  w1.data(), N, 1, C);
      auto d_dout = dev.upload(dout);
      auto d_dbias = dev.poisoned<float>(sz(C));
      gpu::bias_backward(d_dbias.data(), d_dout.data(), N, C, dev.stream());
      OCTA_CHECK_CLOSE("bias backward", dev.download(d_dbias).data(), dbias_ref.data(), sz(C),
                       tol::kGpuVsCpu);
    }
  }
}

TEST_CASE("relu_backward matches the CPU, out of place and in place",
          "[gpu][kernels][elementwise]") {
  OCTA_REQUIRE_GPU();
  Device dev;
  for (const int N : kBatchSizes) {
    INFO("N " << N);
    const std::size_t n = sz(N) * 128;
    const std::vector<float> out = relu(random_vector<float>(n, 71 + sz(N)));  // about half 0
    const std::vector<float> dout = random_vector<float>(n, 72 + sz(N));
    std::vector<float> ref(n);
    cpu::relu_backward(ref.data(), dout.data(), out.data(), n);

    auto d_out = dev.upload(out);
    auto d_dout = dev.upload(dout);
    auto d_din = dev.poisoned<float>(n);
    gpu::relu_backward(d_din.data(), d_dout.data(), d_out.data(), n, dev.stream());
    OCTA_CHECK_CLOSE("relu backward", dev.download(d_din).data(), ref.data(), n, tol::kGpuVsCpu);
    gpu::relu_backward(d_dout.data(), d_dout.data(), d_out.data(), n, dev.stream());
    OCTA_CHECK_CLOSE("relu backward in place", dev.download(d_dout).data(), ref.data(), n,
                     tol::kGpuVsCpu);
  }
}

TEST_CASE("Dropout draws the CPU's mask bit for bit and a fresh one at each step",
          "[gpu][kernels][elementwise][dropout]") {
  OCTA_REQUIRE_GPU();
  Device dev;
  const std::uint64_t seed = 20240607;
  const std::uint64_t base = octa::rng_stream(octa::RngStream::kDropout, 0);
  std::vector<std::size_t> sizes;
  for (const int N : kBatchSizes) sizes.push_back(sz(N) * 128);        // model B's fc1 output
  for (const std::size_t odd : {1, 3, 5, 1001}) sizes.push_back(odd);  // partial Philox blocks
  for (const std::size_t n : sizes) {
    for (const float p : {0.5f, 0.3f}) {
      INFO("n " << n << " p " << p);
      const std::vector<float> in = random_vector<float>(n, 81 + n);
      const std::vector<float> dout = random_vector<float>(n, 82 + n);
      auto d_in = dev.upload(in);
      auto d_dout = dev.upload(dout);
      auto d_out = dev.poisoned<float>(n);
      auto d_mask = dev.poisoned<std::uint8_t>(n);
      auto d_din = dev.poisoned<float>(n);
      auto d_step = dev.upload(std::vector<std::int64_t>{7});

      std::vector<std::uint8_t> prev_mask;
      for (const std::int64_t step : {7, 8}) {
        INFO("step " << step);
        dev.put(d_step.data(), std::vector<std::int64_t>{step});
        std::vector<float> out_ref(n), din_ref(n);
        std::vector<std::uint8_t> mask_ref(n);
        cpu::dropout_forward(out_ref.data(), mask_ref.data(), in.data(), n, p, seed,
                             base + static_cast<std::uint64_t>(step));
        cpu::dropout_backward(din_ref.data(), dout.data(), mask_ref.data(), n, p);

        dev.poison(d_mask.data(), n);
        gpu::dropout_forward(d_out.data(), d_mask.data(), d_in.data(), n, p, seed, base,
                             d_step.data(), dev.stream());
        const std::vector<std::uint8_t> mask = dev.download(d_mask);
        CHECK(mask == mask_ref);
        OCTA_CHECK_CLOSE("dropout out", dev.download(d_out).data(), out_ref.data(), n,
                         tol::kGpuVsCpu);
        gpu::dropout_backward(d_din.data(), d_dout.data(), d_mask.data(), n, p, dev.stream());
        OCTA_CHECK_CLOSE("dropout din", dev.download(d_din).data(), din_ref.data(), n,
                         tol::kGpuVsCpu);
        // The step read from device memory changes the draw (a replayed graph gets a new mask).
        if (!prev_mask.empty() && n >= 128) CHECK(mask != prev_mask);
        prev_mask = mask;
      }
    }
  }
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

// One GPU launch with poisoned outputs and loss_sum starting at `loss_sum0`.
BceResult run_bce(Device& dev, const std::vector<float>& logits, const std::vector<float>& targets,
                  float pos_weight, double loss_sum0, bool want_grad) {
  const std::size_t n = logits.size();
  auto d_logits = dev.upload(logits);
  auto d_targets = dev.upload(targets);
  auto d_dlogits = dev.poisoned<float>(n);
  auto d_batch_loss = dev.poisoned<float>(1);
  auto d_loss_sum = dev.upload(std::vector<double>{loss_sum0});
  gpu::bce_with_logits(want_grad ? d_dlogits.data() : nullptr, d_batch_loss.data(),
                       d_loss_sum.data(), d_logits.data(), d_targets.data(), static_cast<int>(n),
                       pos_weight, dev.stream());
  return BceResult{dev.download(d_dlogits), dev.download(d_batch_loss)[0],
                   dev.download(d_loss_sum)[0]};
}

}  // namespace

TEST_CASE("BCE with logits: loss, gradient and the running sum match the CPU",
          "[gpu][kernels][loss]") {
  OCTA_REQUIRE_GPU();
  Device dev;
  // 1000 (the test batch) and 5000 exceed one thread per sample.
  for (const int N : {1, 3, 64, 67, 1000, 5000}) {
    for (const float pos_weight : {1.0f, 3.5f}) {
      INFO("N " << N << " pos_weight " << pos_weight);
      std::vector<float> logits = random_vector<float>(sz(N), 91 + sz(N), -8.0, 8.0);
      for (std::size_t i = 0; i < logits.size(); i += 7) logits[i] = (i / 7) % 2 ? 100.f : -100.f;
      const std::vector<float> targets = binary_targets(sz(N), 92 + sz(N));

      std::vector<float> dlogits_ref(sz(N));
      const double mean_ref =
          cpu::bce_with_logits(dlogits_ref.data(), logits.data(), targets.data(), N, pos_weight);
      const float batch_ref = static_cast<float>(mean_ref);
      const double sum_ref = 2.5 + mean_ref * N;

      const BceResult r = run_bce(dev, logits, targets, pos_weight, 2.5, true);
      OCTA_CHECK_CLOSE("bce dlogits", r.dlogits.data(), dlogits_ref.data(), sz(N), tol::kGpuVsCpu);
      OCTA_CHECK_CLOSE("bce batch_loss", &r.batch_loss, &batch_ref, 1, tol::kGpuVsCpu);
      OCTA_CHECK_CLOSE("bce loss_sum", &r.loss_sum, &sum_ref, 1, tol::kGpuVsCpu);

      // Without the gradient (evaluation): the same loss.
      const BceResult e = run_bce(dev, logits, targets, pos_weight, 0.0, false);
      OCTA_CHECK_CLOSE("bce batch_loss, no grad", &e.batch_loss, &batch_ref, 1, tol::kGpuVsCpu);
    }
  }
}

TEST_CASE("BCE with logits stays finite and right at logits of +-100", "[gpu][kernels][loss]") {
  OCTA_REQUIRE_GPU();
  Device dev;
  // Confidently wrong (loss 100 each) and confidently right (loss ~0): mean 50.
  const std::vector<float> logits = {100.0f, -100.0f, 100.0f, -100.0f};
  const std::vector<float> targets = {0.0f, 1.0f, 1.0f, 0.0f};
  const BceResult r = run_bce(dev, logits, targets, 1.0f, 0.0, true);
  CHECK(std::isfinite(r.batch_loss));
  CHECK(r.batch_loss == Approx(50.0f).epsilon(1e-6));
  CHECK(r.loss_sum == Approx(200.0).epsilon(1e-6));
  // d(mean)/dz = (sigmoid(z) - y) / N: +1/4, -1/4, ~0, ~0.
  const std::vector<float> expected = {0.25f, -0.25f, 0.0f, 0.0f};
  OCTA_CHECK_CLOSE("bce dlogits at +-100", r.dlogits.data(), expected.data(), 4, tol::kGpuVsCpu);
}

TEST_CASE("Fused training head matches fc2, BCE and fc2/dropout/ReLU backward on the CPU",
          "[gpu][kernels][loss]") {
  OCTA_REQUIRE_GPU();
  Device dev;
  for (const octa::test::LogitHeadCase& c : octa::test::logit_head_cases()) {
    const auto n = sz(c.N);
    auto x = dev.upload(c.x), relu_out = dev.upload(c.relu_out), weight = dev.upload(c.weight),
         bias = dev.upload(c.bias), targets = dev.upload(c.targets);
    auto mask = dev.upload(c.dropout ? c.mask : std::vector<std::uint8_t>(1));
    auto logits = dev.poisoned<float>(n), dlogits = dev.poisoned<float>(n);
    auto batch_loss = dev.poisoned<float>(1), dbias = dev.poisoned<float>(1);
    auto dweight = dev.poisoned<float>(sz(c.K)), dhidden = dev.poisoned<float>(c.size());
    auto loss_sum = dev.upload(std::vector<double>{octa::test::LogitHeadCase::kLossSumBefore});
    gpu::logit_head_train(
        {logits.data(), dlogits.data(), batch_loss.data(), loss_sum.data(), dweight.data(),
         dbias.data(), dhidden.data()},
        {x.data(), relu_out.data(), c.dropout ? mask.data() : nullptr,
         octa::test::LogitHeadCase::kDropoutP, weight.data(), bias.data(), targets.data()},
        c.N, c.K, c.pos_weight, dev.stream());
    const octa::test::LogitHeadResult got{dev.download(logits),        dev.download(dlogits),
                                          dev.download(dweight),       dev.download(dhidden),
                                          dev.download(batch_loss)[0], dev.download(dbias)[0],
                                          dev.download(loss_sum)[0]};
    c.check(got, tol::kGpuVsCpu);
    // The loss and its gradient are bce_with_logits's, bit for bit, from the same logits.
    const BceResult bce = run_bce(dev, got.logits, c.targets, c.pos_weight,
                                  octa::test::LogitHeadCase::kLossSumBefore, true);
    OCTA_CHECK_CLOSE("head dlogits vs bce_with_logits", got.dlogits.data(), bce.dlogits.data(), n,
                     tol::kExact);
    CHECK(std::memcmp(&got.batch_loss, &bce.batch_loss, sizeof(float)) == 0);
    CHECK(std::memcmp(&got.loss_sum, &bce.loss_sum, sizeof(double)) == 0);
  }
}

// =============================================================================================
// Optimisers
// =============================================================================================

namespace {

constexpr std::size_t kModelAParams = 420481;
constexpr int kOptimizerSteps = 20;

// Sizes: model A's buffer (float4 body + tail), tiny buffers (tail only), and `offset` 1 makes
// every pointer 4 bytes past a 16-byte boundary (the scalar path).
struct OptimCase {
  std::size_t n, offset;
};
constexpr OptimCase kOptimCases[] = {{kModelAParams, 0}, {1, 0}, {3, 0}, {7, 0}, {1001, 1}};

}  // namespace

TEST_CASE("Adam: 20 device steps match octa::adam_update, and the step counter reaches 20",
          "[gpu][kernels][optimizer]") {
  OCTA_REQUIRE_GPU();
  Device dev;
  for (const OptimCase oc : kOptimCases) {
    for (const double weight_decay : {0.0, 0.01}) {
      INFO("n " << oc.n << " offset " << oc.offset << " weight_decay " << weight_decay);
      const octa::OptimizerConfig cfg = octa::test::adam_config(weight_decay);
      const gpu::AdamParams hp{cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay};
      const std::size_t n = oc.n, total = n + oc.offset;

      std::vector<float> p_ref = random_vector<float>(n, 101 + n, -0.5, 0.5);
      std::vector<float> m_ref(n, 0.0f), v_ref(n, 0.0f);
      DeviceBuffer<float> d_p(total), d_g(total), d_m(total), d_v(total);
      float* p = d_p.data() + oc.offset;
      float* g = d_g.data() + oc.offset;
      float* m = d_m.data() + oc.offset;
      float* v = d_v.data() + oc.offset;
      dev.put(p, p_ref);
      dev.put(m, m_ref);
      dev.put(v, v_ref);
      auto d_step = dev.upload(std::vector<std::int64_t>{0});

      for (int t = 1; t <= kOptimizerSteps; ++t) {
        const std::vector<float> grads = random_vector<float>(n, 102 + sz(t) * 1000 + n);
        dev.put(g, grads);
        gpu::adam_update(p, g, m, v, n, hp, d_step.data(), dev.stream());
        octa::adam_update(p_ref.data(), grads.data(), m_ref.data(), v_ref.data(), n, cfg, t);
      }
      OCTA_CHECK_CLOSE("adam params", dev.get(p, n).data(), p_ref.data(), n, tol::kGpuVsCpu);
      OCTA_CHECK_CLOSE("adam m", dev.get(m, n).data(), m_ref.data(), n, tol::kGpuVsCpu);
      OCTA_CHECK_CLOSE("adam v", dev.get(v, n).data(), v_ref.data(), n, tol::kGpuVsCpu);
      CHECK(dev.download(d_step)[0] == kOptimizerSteps);
    }
  }
}

TEST_CASE("SGD: 20 device steps match octa::sgd_update (plain, momentum, dampening, Nesterov)",
          "[gpu][kernels][optimizer]") {
  OCTA_REQUIRE_GPU();
  Device dev;
  for (const OptimCase oc : kOptimCases) {
    for (const octa::test::SgdCase& sc : octa::test::kSgdCases) {
      INFO("n " << oc.n << " offset " << oc.offset << " momentum " << sc.momentum << " dampening "
                << sc.dampening << " weight_decay " << sc.weight_decay << " nesterov "
                << sc.nesterov);
      const octa::OptimizerConfig cfg = octa::test::sgd_config(sc);
      const gpu::SgdParams hp{cfg.lr, cfg.momentum, cfg.dampening, cfg.weight_decay, cfg.nesterov};
      const std::size_t n = oc.n, total = n + oc.offset;
      const bool with_momentum = sc.momentum != 0.0;

      std::vector<float> p_ref = random_vector<float>(n, 111 + n, -0.5, 0.5);
      // Poisoned on purpose: the first update must overwrite the buffer with g, never read it.
      std::vector<float> buf_ref(n, std::numeric_limits<float>::quiet_NaN());
      DeviceBuffer<float> d_p(total), d_g(total), d_buf(with_momentum ? total : 0);
      float* p = d_p.data() + oc.offset;
      float* g = d_g.data() + oc.offset;
      float* buf = with_momentum ? d_buf.data() + oc.offset : nullptr;
      dev.put(p, p_ref);
      if (with_momentum) dev.put(buf, buf_ref);
      auto d_step = dev.upload(std::vector<std::int64_t>{0});

      for (int t = 1; t <= kOptimizerSteps; ++t) {
        const std::vector<float> grads = random_vector<float>(n, 112 + sz(t) * 1000 + n);
        dev.put(g, grads);
        gpu::sgd_update(p, g, buf, n, hp, d_step.data(), dev.stream());
        octa::sgd_update(p_ref.data(), grads.data(), buf_ref.data(), n, cfg, t);
      }
      OCTA_CHECK_CLOSE("sgd params", dev.get(p, n).data(), p_ref.data(), n, tol::kGpuVsCpu);
      if (with_momentum) {
        OCTA_CHECK_CLOSE("sgd momentum buffer", dev.get(buf, n).data(), buf_ref.data(), n,
                         tol::kGpuVsCpu);
      }
      CHECK(dev.download(d_step)[0] == kOptimizerSteps);
    }
  }
}

// =============================================================================================
// Determinism of the reductions
// =============================================================================================

TEST_CASE("BatchNorm, bias_backward and BCE are bit-identical from run to run",
          "[gpu][kernels][determinism]") {
  OCTA_REQUIRE_GPU();
  Device dev;

  SECTION("BatchNorm forward (statistics, running estimates) and backward") {
    const BnInputs in(64, 32, 784, 121);
    std::vector<std::vector<float>> first;
    for (int run = 0; run < 2; ++run) {
      BnDevice d(dev, in);  // fresh running statistics and poisoned outputs each run
      d.forward_train(dev, in, Epilogue::kRelu);
      d.backward(dev, in, d.out.data());
      const std::vector<std::vector<float>> got = {
          dev.download(d.out),          dev.download(d.save_mean),   dev.download(d.save_invstd),
          dev.download(d.running_mean), dev.download(d.running_var), dev.download(d.din),
          dev.download(d.dgamma),       dev.download(d.dbeta)};
      if (run == 0) {
        first = got;
        continue;
      }
      const char* names[] = {"out",         "save_mean", "save_invstd", "running_mean",
                             "running_var", "din",       "dgamma",      "dbeta"};
      for (std::size_t k = 0; k < got.size(); ++k) {
        REQUIRE(got[k].size() == first[k].size());
        OCTA_CHECK_CLOSE(names[k], got[k].data(), first[k].data(), got[k].size(), tol::kExact);
      }
    }
  }

  SECTION("bias_backward") {
    const int N = 1024, C = 128;
    auto d_dout = dev.upload(random_vector<float>(sz(N) * sz(C), 122));
    auto d_dbias = dev.poisoned<float>(sz(C));
    gpu::bias_backward(d_dbias.data(), d_dout.data(), N, C, dev.stream());
    const std::vector<float> a = dev.download(d_dbias);
    dev.poison(d_dbias.data(), sz(C));
    gpu::bias_backward(d_dbias.data(), d_dout.data(), N, C, dev.stream());
    const std::vector<float> b = dev.download(d_dbias);
    OCTA_CHECK_CLOSE("bias_backward rerun", b.data(), a.data(), sz(C), tol::kExact);
  }

  SECTION("BCE with logits") {
    const std::size_t N = 5000;
    const std::vector<float> logits = random_vector<float>(N, 123, -8.0, 8.0);
    const std::vector<float> targets = binary_targets(N, 124);
    const BceResult a = run_bce(dev, logits, targets, 2.0f, 0.0, true);
    const BceResult b = run_bce(dev, logits, targets, 2.0f, 0.0, true);
    OCTA_CHECK_CLOSE("bce dlogits rerun", b.dlogits.data(), a.dlogits.data(), N, tol::kExact);
    CHECK(std::memcmp(&a.batch_loss, &b.batch_loss, sizeof(float)) == 0);
    CHECK(std::memcmp(&a.loss_sum, &b.loss_sum, sizeof(double)) == 0);
  }
}
