// engine/gpu/cuda_backend.cpp: the training step of models A and B on the GPU.
//
// Step (model A, --conv fused):
//   H2D copy of the batch (pinned staging) -> conv1+ReLU+pool -> conv2+ReLU+pool -> fc1+ReLU -> fc2
//   -> BCE (loss and dlogits in one kernel) -> fc2/fc1 backward (cuBLAS) -> pool+ReLU backward ->
//   conv backward (filter, data) -> ... -> one fused Adam over the whole parameter buffer.
// Model B inserts BatchNorm (ReLU fused into it, forward and backward), global average pooling and
// dropout (Philox keyed by the device-side step counter, so graph replays draw fresh masks that
// equal the CPU reference's). With --conv cudnn the convolutions go through cuDNN instead.
#include "engine/gpu/cuda_backend.hpp"

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "engine/core/error.hpp"
#include "engine/core/philox.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/nvtx.hpp"
#include "engine/cuda/raii.hpp"
#include "engine/gpu/cudnn_conv.hpp"
#include "engine/gpu/linear.hpp"
#include "engine/model/cpu_model.hpp"
#include "kernels/batchnorm.hpp"
#include "kernels/conv3x3.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/loss.hpp"
#include "kernels/optimizer.hpp"
#include "kernels/pool.hpp"

namespace octa {

ConvPath parse_conv_path(std::string_view name) {
  if (name == "fused") return ConvPath::kFused;
  if (name == "cudnn") return ConvPath::kCudnn;
  throw Error(
      fmt::format("--conv: unknown convolution path '{}' (use 'fused' for octa's own "
                  "kernels or 'cudnn')",
                  name));
}

const char* conv_path_name(ConvPath path) {
  return path == ConvPath::kFused ? "fused" : "cudnn";
}

namespace {

using cuda::DeviceBuffer;
using cuda::NvtxRange;
using gpu::Epilogue;

constexpr int kC1 = 32, kC2 = 64, kH1 = 28, kH2 = 14, kH3 = 7, kHidden = 128;
constexpr float kBnEps = 1e-5f, kBnMomentum = 0.1f;
constexpr int kWarmupSteps = 3;  // eager steps before the graph is captured
constexpr std::size_t kPixels = kImageSize * kImageSize;
constexpr std::size_t kCublasWorkspaceBytes = 32u << 20;  // NVIDIA's advice for Hopper

// One feature stage (conv3x3 [-> BatchNorm] -> ReLU -> maxpool) and its device buffers.
struct Stage {
  int cin, cout, size;
  std::size_t w, b, bn_w = 0, bn_b = 0, bn_mean = 0, bn_var = 0;
  bool bn = false;
  DeviceBuffer<float> conv;  // conv output before BatchNorm (model B only)
  DeviceBuffer<float> act;   // after (BatchNorm and) ReLU: (N, cout, size, size)
  DeviceBuffer<float> pool;  // (N, cout, size/2, size/2)
  DeviceBuffer<float> save_mean, save_invstd;
  DeviceBuffer<float> dact;   // gradient w.r.t. act (then w.r.t. the conv output, model A)
  DeviceBuffer<float> dconv;  // gradient w.r.t. the conv output (model B)
  std::optional<gpu::CudnnConv3x3> cudnn;
};

class CudaBackend final : public TrainingBackend {
 public:
  CudaBackend(const BackendConfig& cfg, const CudaBackendOptions& opt)
      : cfg_(cfg), opt_(opt), table_(ParamTable::for_arch(cfg.arch)) {
    OCTA_CUDA_CHECK(cudaSetDevice(opt.device));
    cudaDeviceProp prop{};
    OCTA_CUDA_CHECK(cudaGetDeviceProperties(&prop, opt.device));
    device_name_ = prop.name;
    check_memory();
    allocate();
    std::vector<float> init(table_.num_total());
    init_parameters(table_, init.data(), cfg.seed);
    ModelState m;
    m.values = std::move(init);
    load(m, nullptr);
  }

  std::string description() const override {
    return fmt::format("cuda:{} {} (--conv {})", opt_.device, device_name_,
                       conv_path_name(opt_.conv));
  }
  const ParamTable& table() const override { return table_; }

  void train_step(const float* images, const float* targets, int n, std::int64_t step) override {
    NvtxRange range("train_step");
    OCTA_CHECK(n > 0 && n <= cfg_.max_batch, "train_step: batch of {} (allowed 1..{})", n,
               cfg_.max_batch);
    (void)step;  // the device-side counter (optimiser updates so far) keys the dropout stream
    upload(images, targets, n);
    // The first batch size seen is the run's batch size: after kWarmupSteps eager steps at that
    // size (which also let cuDNN and cuBLAS set themselves up), the step is captured once and
    // replayed; other sizes (the last, partial batch) run eagerly.
    if (train_batch_ == 0) train_batch_ = n;
    if (graph_ && n == graph_batch_) {
      NvtxRange replay("graph_replay");
      OCTA_CUDA_CHECK(cudaGraphLaunch(graph_.get(), stream_));
    } else if (opt_.use_graph && n == train_batch_ && ++eager_steps_ > kWarmupSteps) {
      capture(n);
      OCTA_CUDA_CHECK(cudaGraphLaunch(graph_.get(), stream_));
    } else {
      step_body(n);
    }
    if (!table_.batchnorm_layers().empty()) ++num_batches_tracked_;
  }

  double take_loss_sum() override {
    NvtxRange range("take_loss_sum");
    double sum = 0.0;
    OCTA_CUDA_CHECK(
        cudaMemcpyAsync(&sum, loss_sum_.data(), sizeof(double), cudaMemcpyDeviceToHost, stream_));
    OCTA_CUDA_CHECK(cudaMemsetAsync(loss_sum_.data(), 0, sizeof(double), stream_));
    OCTA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return sum;
  }

  void predict(const float* images, int n, float* logits) override {
    NvtxRange range("predict");
    OCTA_CHECK(n > 0 && n <= cfg_.max_batch, "predict: batch of {} (allowed 1..{})", n,
               cfg_.max_batch);
    upload(images, nullptr, n);
    forward(n, /*train=*/false);
    OCTA_CUDA_CHECK(cudaMemcpyAsync(staging_logits_.data(), logits_.data(), n * sizeof(float),
                                    cudaMemcpyDeviceToHost, stream_));
    OCTA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::memcpy(logits, staging_logits_.data(), static_cast<std::size_t>(n) * sizeof(float));
  }

  ModelState model_state() override {
    ModelState m;
    m.values.resize(table_.num_total());
    copy(m.values.data(), params_.data(), m.values.size() * sizeof(float));
    m.num_batches_tracked = num_batches_tracked_;
    return m;
  }

  OptimizerState optimizer_state() override {
    OptimizerState s;
    s.m.resize(table_.num_trainable());
    copy(s.m.data(), m_.data(), s.m.size() * sizeof(float));
    if (cfg_.optimizer.kind == OptimizerKind::kAdam) {
      s.v.resize(table_.num_trainable());
      copy(s.v.data(), v_.data(), s.v.size() * sizeof(float));
    }
    copy(&s.step, step_.data(), sizeof s.step);
    return s;
  }

  void load(const ModelState& model, const OptimizerState* optimizer) override {
    OCTA_CHECK(model.values.size() == table_.num_total(), "model state has {} values, expected {}",
               model.values.size(), table_.num_total());
    copy(params_.data(), model.values.data(), model.values.size() * sizeof(float));
    num_batches_tracked_ = model.num_batches_tracked;
    const std::size_t n = table_.num_trainable();
    const bool adam = cfg_.optimizer.kind == OptimizerKind::kAdam;
    std::int64_t step = 0;
    if (optimizer) {
      OCTA_CHECK(optimizer->m.size() == n && (!adam || optimizer->v.size() == n),
                 "optimiser state has {} and {} values, expected {} each", optimizer->m.size(),
                 optimizer->v.size(), n);
      copy(m_.data(), optimizer->m.data(), n * sizeof(float));
      if (adam) copy(v_.data(), optimizer->v.data(), n * sizeof(float));
      step = optimizer->step;
    } else {
      zero(m_.data(), n * sizeof(float));
      if (adam) zero(v_.data(), n * sizeof(float));
    }
    copy(step_.data(), &step, sizeof step);
  }

 private:
  // ---------------------------------------------------------------------------------------------
  // Memory: everything is allocated here, once; nothing is allocated while training.

  std::size_t activation_floats() const {
    const auto n = static_cast<std::size_t>(cfg_.max_batch);
    const std::size_t s1 = n * kC1 * kH1 * kH1, s2 = n * kC2 * kH2 * kH2;
    const bool bn = cfg_.arch == Arch::kB;
    // conv (B), act, dact, dconv (B) per stage; pools; the head's buffers; images and targets.
    return (bn ? 4 : 2) * (s1 + s2) + (s1 + s2) / 4 + 2 * (s2 / 4) + 8 * n * kHidden +
           n * (kPixels + 8);
  }

  void check_memory() const {
    const std::size_t n_params = table_.num_total(), n_train = table_.num_trainable();
    const std::size_t filter_ws =
        gpu::conv3x3_backward_filter_workspace(cfg_.max_batch, kC1, kC2, kH2, kH2);
    const std::size_t bytes =
        sizeof(float) * (n_params + 3 * n_train + activation_floats() + filter_ws) +
        kCublasWorkspaceBytes;
    std::size_t free_bytes = 0, total_bytes = 0;
    OCTA_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    constexpr double kMiB = 1024.0 * 1024.0;
    OCTA_CHECK(bytes < free_bytes,
               "not enough GPU memory: model {} at batch {} needs about {:.0f} MiB, the device has "
               "{:.0f} MiB free of {:.0f} MiB (lower --batch-size or --test-batch-size)",
               arch_name(table_.arch()), cfg_.max_batch, static_cast<double>(bytes) / kMiB,
               static_cast<double>(free_bytes) / kMiB, static_cast<double>(total_bytes) / kMiB);
    spdlog::debug("GPU memory: about {:.1f} MiB for model {} at batch {}",
                  static_cast<double>(bytes) / kMiB, arch_name(table_.arch()), cfg_.max_batch);
  }

  void make_stage(Stage& s, const std::string& conv, const std::string& bn, int cin, int cout,
                  int size) {
    const auto n = static_cast<std::size_t>(cfg_.max_batch);
    const std::size_t full = n * cout * size * size;
    s.cin = cin;
    s.cout = cout;
    s.size = size;
    s.w = table_.at(conv + ".weight").offset;
    s.b = table_.at(conv + ".bias").offset;
    s.bn = cfg_.arch == Arch::kB;
    if (s.bn) {
      s.bn_w = table_.at(bn + ".weight").offset;
      s.bn_b = table_.at(bn + ".bias").offset;
      s.bn_mean = table_.at(bn + ".running_mean").offset;
      s.bn_var = table_.at(bn + ".running_var").offset;
      s.conv = DeviceBuffer<float>(full, "conv output");
      s.dconv = DeviceBuffer<float>(full, "conv output gradient");
      s.save_mean = DeviceBuffer<float>(static_cast<std::size_t>(cout), "BatchNorm mean");
      s.save_invstd = DeviceBuffer<float>(static_cast<std::size_t>(cout), "BatchNorm invstd");
    }
    s.act = DeviceBuffer<float>(full, "activation");
    s.dact = DeviceBuffer<float>(full, "activation gradient");
    s.pool = DeviceBuffer<float>(full / 4, "pooled activation");
    if (opt_.conv == ConvPath::kCudnn) s.cudnn.emplace(cudnn_.get(), cin, cout, size, size);
  }

  void allocate() {
    const auto n = static_cast<std::size_t>(cfg_.max_batch);
    params_ = DeviceBuffer<float>(table_.num_total(), "parameters");
    grads_ = DeviceBuffer<float>(table_.num_trainable(), "gradients");
    m_ = DeviceBuffer<float>(table_.num_trainable(), "optimiser state");
    if (cfg_.optimizer.kind == OptimizerKind::kAdam) {
      v_ = DeviceBuffer<float>(table_.num_trainable(), "optimiser state");
    }
    step_ = DeviceBuffer<std::int64_t>(1, "step counter");
    loss_sum_ = DeviceBuffer<double>(1, "loss sum");
    batch_loss_ = DeviceBuffer<float>(1, "batch loss");
    zero(loss_sum_.data(), sizeof(double));
    // cuBLAS gets its workspace up front, so it never allocates while a graph is being captured.
    cublas_ws_ = DeviceBuffer<std::uint8_t>(kCublasWorkspaceBytes, "cuBLAS workspace");
    OCTA_CUBLAS_CHECK(cublasSetWorkspace(cublas_.get(), cublas_ws_.data(), cublas_ws_.size()));
    x_ = DeviceBuffer<float>(n * kPixels, "images");
    y_ = DeviceBuffer<float>(n, "targets");
    staging_x_ = cuda::PinnedBuffer<float>(2 * n * kPixels, "pinned images");
    staging_y_ = cuda::PinnedBuffer<float>(2 * n, "pinned targets");
    staging_logits_ = cuda::PinnedBuffer<float>(n, "pinned logits");
    make_stage(s1_, "conv1", "bn1", 1, kC1, kH1);
    make_stage(s2_, "conv2", "bn2", kC1, kC2, kH2);
    dpool1_ = DeviceBuffer<float>(n * kC1 * kH2 * kH2, "pool1 gradient");
    dflat_ = DeviceBuffer<float>(n * kC2 * kH3 * kH3, "flatten gradient");
    h_ = DeviceBuffer<float>(n * kHidden, "fc1 output");
    dh_ = DeviceBuffer<float>(n * kHidden, "fc1 gradient");
    logits_ = DeviceBuffer<float>(n, "logits");
    dlogits_ = DeviceBuffer<float>(n, "logit gradient");
    if (cfg_.arch == Arch::kB) {
      g_ = DeviceBuffer<float>(n * kC2, "global average pool");
      dg_ = DeviceBuffer<float>(n * kC2, "global average pool gradient");
      d_ = DeviceBuffer<float>(n * kHidden, "dropout output");
      dd_ = DeviceBuffer<float>(n * kHidden, "dropout gradient");
      mask_ = DeviceBuffer<std::uint8_t>(n * kHidden, "dropout mask");
    }
    if (opt_.conv == ConvPath::kFused) {
      const std::size_t ws =
          std::max(gpu::conv3x3_backward_filter_workspace(cfg_.max_batch, 1, kC1, kH1, kH1),
                   gpu::conv3x3_backward_filter_workspace(cfg_.max_batch, kC1, kC2, kH2, kH2));
      filter_ws_ = DeviceBuffer<float>(ws, "conv filter-gradient workspace");
    }
    f1w_ = table_.at("fc1.weight").offset;
    f1b_ = table_.at("fc1.bias").offset;
    f2w_ = table_.at("fc2.weight").offset;
    f2b_ = table_.at("fc2.bias").offset;
  }

  // ---------------------------------------------------------------------------------------------
  // The step.

  // Copies a batch into the next of two pinned staging slots and from there to the device. The
  // host only waits for the copy that last used the slot (two steps ago), not for the GPU's
  // compute, so preparing batch i+1 overlaps the GPU working on batch i.
  void upload(const float* images, const float* targets, int n) {
    NvtxRange range("upload");
    const auto count = static_cast<std::size_t>(n);
    const int slot = next_slot_;
    next_slot_ ^= 1;
    OCTA_CUDA_CHECK(cudaEventSynchronize(slot_free_[slot]));
    float* sx = staging_x_.data() + static_cast<std::size_t>(slot) * cfg_.max_batch * kPixels;
    float* sy = staging_y_.data() + static_cast<std::size_t>(slot) * cfg_.max_batch;
    std::memcpy(sx, images, count * kPixels * sizeof(float));
    OCTA_CUDA_CHECK(cudaMemcpyAsync(x_.data(), sx, count * kPixels * sizeof(float),
                                    cudaMemcpyHostToDevice, stream_));
    if (targets) {
      std::memcpy(sy, targets, count * sizeof(float));
      OCTA_CUDA_CHECK(
          cudaMemcpyAsync(y_.data(), sy, count * sizeof(float), cudaMemcpyHostToDevice, stream_));
    }
    OCTA_CUDA_CHECK(cudaEventRecord(slot_free_[slot], stream_));
  }

  float* P(std::size_t offset) const { return params_.data() + offset; }
  float* G(std::size_t offset) const { return grads_.data() + offset; }

  void stage_forward(Stage& s, const float* in, int n, bool train) {
    const bool fused_pool = !s.bn && opt_.conv == ConvPath::kFused;
    if (fused_pool) {
      gpu::conv3x3_relu_maxpool_forward(s.pool.data(), s.act.data(), in, P(s.w), P(s.b), n, s.cin,
                                        s.cout, s.size, s.size, stream_);
      return;
    }
    float* conv_out = s.bn ? s.conv.data() : s.act.data();
    const Epilogue ep = s.bn ? Epilogue::kNone : Epilogue::kRelu;
    if (opt_.conv == ConvPath::kFused) {
      gpu::conv3x3_forward(conv_out, in, P(s.w), P(s.b), n, s.cin, s.cout, s.size, s.size, ep,
                           stream_);
    } else {
      s.cudnn->forward(conv_out, in, P(s.w), P(s.b), n, ep, stream_);
    }
    if (s.bn) {
      const int hw = s.size * s.size;
      if (train) {
        gpu::batchnorm_forward_train(s.act.data(), s.save_mean.data(), s.save_invstd.data(),
                                     P(s.bn_mean), P(s.bn_var), s.conv.data(), P(s.bn_w), P(s.bn_b),
                                     n, s.cout, hw, kBnEps, kBnMomentum, Epilogue::kRelu, stream_);
      } else {
        gpu::batchnorm_forward_eval(s.act.data(), s.conv.data(), P(s.bn_w), P(s.bn_b), P(s.bn_mean),
                                    P(s.bn_var), n, s.cout, hw, kBnEps, Epilogue::kRelu, stream_);
      }
    }
    gpu::maxpool2x2_forward(s.pool.data(), s.act.data(), n, s.cout, s.size, s.size, stream_);
  }

  // dpool: gradient w.r.t. the stage's pooled output; din: w.r.t. its input (null: not needed).
  void stage_backward(Stage& s, const float* dpool, const float* in, float* din, int n) {
    // Model A: the ReLU's backward is fused into the pool's. Model B: into BatchNorm's.
    gpu::maxpool2x2_backward(s.dact.data(), dpool, s.act.data(), n, s.cout, s.size, s.size,
                             /*relu_before=*/!s.bn, stream_);
    const float* dconv = s.dact.data();
    if (s.bn) {
      gpu::batchnorm_backward(s.dconv.data(), G(s.bn_w), G(s.bn_b), s.dact.data(), s.act.data(),
                              s.conv.data(), s.save_mean.data(), s.save_invstd.data(), P(s.bn_w), n,
                              s.cout, s.size * s.size, stream_);
      dconv = s.dconv.data();
    }
    if (opt_.conv == ConvPath::kFused) {
      gpu::conv3x3_backward_filter(G(s.w), G(s.b), dconv, in, n, s.cin, s.cout, s.size, s.size,
                                   filter_ws_.data(), stream_);
      if (din) {
        gpu::conv3x3_backward_data(din, dconv, P(s.w), n, s.cin, s.cout, s.size, s.size, stream_);
      }
    } else {
      s.cudnn->backward_filter(G(s.w), G(s.b), dconv, in, n, stream_);
      if (din) s.cudnn->backward_data(din, dconv, P(s.w), n, stream_);
    }
  }

  void forward(int n, bool train) {
    NvtxRange range(train ? "forward" : "forward_eval");
    stage_forward(s1_, x_.data(), n, train);
    stage_forward(s2_, s1_.pool.data(), n, train);
    if (cfg_.arch == Arch::kA) {
      gpu::linear_forward(h_.data(), s2_.pool.data(), P(f1w_), P(f1b_), n, kC2 * kH3 * kH3, kHidden,
                          Epilogue::kRelu, cublas_.get(), stream_);
      gpu::linear_forward(logits_.data(), h_.data(), P(f2w_), P(f2b_), n, kHidden, 1,
                          Epilogue::kNone, cublas_.get(), stream_);
      return;
    }
    gpu::global_avgpool_forward(g_.data(), s2_.pool.data(), n, kC2, kH3 * kH3, stream_);
    gpu::linear_forward(h_.data(), g_.data(), P(f1w_), P(f1b_), n, kC2, kHidden, Epilogue::kRelu,
                        cublas_.get(), stream_);
    const float* fc2_in = h_.data();
    if (train) {
      gpu::dropout_forward(d_.data(), mask_.data(), h_.data(),
                           static_cast<std::size_t>(n) * kHidden, kDropoutP, cfg_.seed,
                           rng_stream(RngStream::kDropout, 0), step_.data(), stream_);
      fc2_in = d_.data();
    }
    gpu::linear_forward(logits_.data(), fc2_in, P(f2w_), P(f2b_), n, kHidden, 1, Epilogue::kNone,
                        cublas_.get(), stream_);
  }

  void backward(int n) {
    NvtxRange range("backward");
    const std::size_t hidden = static_cast<std::size_t>(n) * kHidden;
    if (cfg_.arch == Arch::kA) {
      gpu::linear_backward(dh_.data(), G(f2w_), G(f2b_), dlogits_.data(), h_.data(), P(f2w_), n,
                           kHidden, 1, cublas_.get(), stream_);
      gpu::relu_backward(dh_.data(), dh_.data(), h_.data(), hidden, stream_);
      gpu::linear_backward(dflat_.data(), G(f1w_), G(f1b_), dh_.data(), s2_.pool.data(), P(f1w_), n,
                           kC2 * kH3 * kH3, kHidden, cublas_.get(), stream_);
    } else {
      gpu::linear_backward(dd_.data(), G(f2w_), G(f2b_), dlogits_.data(), d_.data(), P(f2w_), n,
                           kHidden, 1, cublas_.get(), stream_);
      gpu::dropout_backward(dh_.data(), dd_.data(), mask_.data(), hidden, kDropoutP, stream_);
      gpu::relu_backward(dh_.data(), dh_.data(), h_.data(), hidden, stream_);
      gpu::linear_backward(dg_.data(), G(f1w_), G(f1b_), dh_.data(), g_.data(), P(f1w_), n, kC2,
                           kHidden, cublas_.get(), stream_);
      gpu::global_avgpool_backward(dflat_.data(), dg_.data(), n, kC2, kH3 * kH3, stream_);
    }
    stage_backward(s2_, dflat_.data(), s1_.pool.data(), dpool1_.data(), n);
    stage_backward(s1_, dpool1_.data(), x_.data(), nullptr, n);
  }

  void optimizer_step() {
    NvtxRange range("optimizer");
    const OptimizerConfig& c = cfg_.optimizer;
    if (c.kind == OptimizerKind::kAdam) {
      gpu::adam_update(params_.data(), grads_.data(), m_.data(), v_.data(), table_.num_trainable(),
                       gpu::AdamParams{c.lr, c.beta1, c.beta2, c.eps, c.weight_decay}, step_.data(),
                       stream_);
    } else {
      gpu::sgd_update(params_.data(), grads_.data(), m_.data(), table_.num_trainable(),
                      gpu::SgdParams{c.lr, c.momentum, c.dampening, c.weight_decay, c.nesterov},
                      step_.data(), stream_);
    }
  }

  // Everything of a training step after the upload: what the CUDA graph holds.
  void step_body(int n) {
    forward(n, /*train=*/true);
    {
      NvtxRange range("loss");
      gpu::bce_with_logits(dlogits_.data(), batch_loss_.data(), loss_sum_.data(), logits_.data(),
                           y_.data(), n, cfg_.pos_weight, stream_);
    }
    backward(n);
    optimizer_step();
  }

  void capture(int n) {
    NvtxRange range("graph_capture");
    cudaGraph_t graph = nullptr;
    OCTA_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    try {
      step_body(n);
    } catch (...) {
      cudaStreamEndCapture(stream_, &graph);
      if (graph) cudaGraphDestroy(graph);
      throw;
    }
    OCTA_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t st = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    OCTA_CUDA_CHECK(st);
    graph_ = cuda::GraphExec(exec);
    graph_batch_ = n;
    spdlog::debug("training step captured as a CUDA graph (batch {})", n);
  }

  // Copies on the engine's own stream and waits: the stream is non-blocking, so the legacy
  // synchronous cudaMemcpy/cudaMemset would not be ordered with its kernels.
  void copy(void* dst, const void* src, std::size_t bytes) {
    OCTA_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_));
    OCTA_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void zero(void* dst, std::size_t bytes) {
    OCTA_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream_));
    OCTA_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  BackendConfig cfg_;
  CudaBackendOptions opt_;
  ParamTable table_;
  std::string device_name_;
  cuda::Stream stream_;
  cuda::CublasHandle cublas_;
  cuda::CudnnHandle cudnn_;
  DeviceBuffer<float> params_, grads_, m_, v_;
  DeviceBuffer<std::int64_t> step_;
  DeviceBuffer<double> loss_sum_;
  DeviceBuffer<float> batch_loss_;
  DeviceBuffer<float> x_, y_;
  cuda::PinnedBuffer<float> staging_x_, staging_y_, staging_logits_;
  Stage s1_, s2_;
  DeviceBuffer<float> dpool1_, dflat_, h_, dh_, g_, dg_, d_, dd_, logits_, dlogits_, filter_ws_;
  DeviceBuffer<std::uint8_t> mask_, cublas_ws_;
  std::size_t f1w_ = 0, f1b_ = 0, f2w_ = 0, f2b_ = 0;
  std::int64_t num_batches_tracked_ = 0;
  cuda::Event slot_free_[2];
  int next_slot_ = 0;
  cuda::GraphExec graph_;
  int graph_batch_ = 0;
  int train_batch_ = 0;
  int eager_steps_ = 0;
};

}  // namespace

std::unique_ptr<TrainingBackend> make_cuda_backend(const BackendConfig& config,
                                                   const CudaBackendOptions& options) {
  return std::make_unique<CudaBackend>(config, options);
}

}  // namespace octa
