// engine/gpu/cuda_backend.cpp: the training step of models A and B on the GPU.
//
// Step (model A, --conv fused):
//   H2D copy of the batch (pinned, on the copy stream) -> conv1+ReLU+pool -> conv2+ReLU+pool ->
//   fc1+ReLU (cuBLAS) -> the head, one kernel: fc2, BCE (loss, dlogits), fc2's gradients and the
//   gradient back through fc1's ReLU -> fc1 backward (cuBLAS) -> pool2+ReLU backward ->
//   conv2 backward (filter, data) -> conv1's filter gradient straight from pool1's gradient (the
//   pool's and ReLU's backward folded in) -> one fused Adam over the whole parameter buffer.
// Model B inserts BatchNorm, global average pooling and dropout (Philox keyed by the device-side
// step counter, so graph replays draw fresh masks that equal the CPU reference's; its backward is
// folded into the head). Evaluation runs fc2 on its own (cuBLAS) for the logits. With K classes
// (BackendConfig::num_classes > 1) fc2 has K outputs and the head is softmax_head_train (softmax
// cross-entropy with the class weights and label smoothing) in place of logit_head_train.
//
// Model B's BatchNorm on octa's kernels (kernels/batchnorm_fused.hpp; CudaBackendOptions::
// fuse_batchnorm, on by default): in training each stage is the convolution with BatchNorm's
// statistics from its epilogue, then one kernel for BatchNorm + ReLU + pool (which saves window
// codes, not the activation), and backward one launcher for the pool's, ReLU's and BatchNorm's
// backward before the convolution's (conv1, whose input gradient is not needed: folded into its
// filter gradient's staging, so its dconv is never written); in evaluation BatchNorm is folded into
// the convolution's weights and bias (folded_w/folded_b, recomputed before the first prediction
// after any training step or load: the checkpointed parameters stay PyTorch's) and the stage is one
// kernel, conv + BatchNorm + ReLU + pool. Unfused (and on cuDNN's path): the convolution, BatchNorm
// with the ReLU fused into it (forward and backward), the pool.
//
// Convolutions (--conv): fused runs conv2's three passes (Cin = 32: long reductions) on the tensor
// cores in 3xTF32 (kernels/conv3x3_tc.hpp) and conv1 (Cin = 1) on the CUDA cores
// (kernels/conv3x3.hpp); fused-fp32 runs every pass on the CUDA cores; both are octa's kernels,
// with the same fusions and the same filter-gradient workspace. cudnn goes through cuDNN instead.
//
// Streams: batches come in pinned HostBatch slots (filled by the trainer's loader thread) and are
// copied on copy_stream_ into one of two device input slots; compute_stream waits for the copy by
// event, and the copy into a slot waits for the step that last read it, so the copy of batch k+1
// overlaps the compute of batch k. The step is captured once per device input slot.
#include "engine/gpu/cuda_backend.hpp"

#include <algorithm>
#include <array>
#include <cmath>
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
#include "engine/gpu/nccl_gradients.hpp"
#include "engine/model/cpu_model.hpp"
#include "kernels/batchnorm.hpp"
#include "kernels/batchnorm_fused.hpp"
#include "kernels/batchnorm_sync.hpp"
#include "kernels/conv3x3.hpp"
#include "kernels/conv3x3_tc.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/logit_head.hpp"
#include "kernels/optimizer.hpp"
#include "kernels/pool.hpp"

namespace octa {

ConvPath parse_conv_path(std::string_view name) {
  for (const ConvPath path : kConvPaths) {
    if (name == conv_path_name(path)) return path;
  }
  throw Error(
      fmt::format("--conv: unknown convolution path '{}' (use 'fused' for octa's kernels with "
                  "tensor cores, 'fused-fp32' for octa's kernels on the CUDA cores only, or "
                  "'cudnn')",
                  name));
}

const char* conv_path_name(ConvPath path) {
  switch (path) {
    case ConvPath::kFused:
      return "fused";
    case ConvPath::kFusedFp32:
      return "fused-fp32";
    case ConvPath::kCudnn:
      return "cudnn";
  }
  return "unknown";
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
constexpr int kMaxTimedPhases = 64;                       // per step, with time_phases

// Batch memory the engine copies from asynchronously: pinned, with an event recorded on the copy
// stream after the last copy out of it.
class PinnedHostBatch final : public data::HostBatch {
 public:
  explicit PinnedHostBatch(int capacity)
      : HostBatch(capacity, kPixels),
        images_(static_cast<std::size_t>(capacity) * kPixels, "pinned batch images"),
        targets_(static_cast<std::size_t>(capacity), "pinned batch targets") {}
  ~PinnedHostBatch() override { OCTA_CUDA_CHECK_NOTHROW(cudaEventSynchronize(read_done_)); }
  float* images() override { return images_.data(); }
  float* targets() override { return targets_.data(); }
  void wait_reusable() override { OCTA_CUDA_CHECK(cudaEventSynchronize(read_done_)); }
  cudaEvent_t read_done() const { return read_done_; }

 private:
  cuda::PinnedBuffer<float> images_, targets_;
  cuda::Event read_done_;
};

// Phase names of a feature stage (NVTX ranges and phase_times()); the last six: model B's fused
// BatchNorm.
struct StageNames {
  const char *conv_relu_pool, *conv, *bn, *pool, *pool_backward, *bn_backward, *conv_filter,
      *conv_data, *pool_conv_filter, *conv_bn_stats, *bn_relu_pool, *bn_relu_pool_backward, *fold,
      *bn_pool_conv_filter, *folded;
};
constexpr StageNames kStage1Names{"conv1+relu+pool1",
                                  "conv1",
                                  "bn1+relu",
                                  "pool1",
                                  "pool1.backward",
                                  "bn1+relu.backward",
                                  "conv1.backward_filter",
                                  "conv1.backward_data",
                                  "pool1+relu+conv1.backward_filter",
                                  "conv1+bn1_stats",
                                  "bn1+relu+pool1",
                                  "pool1+relu+bn1.backward",
                                  "bn1_fold",
                                  "pool1+relu+bn1+conv1.backward_filter",
                                  "conv1+bn1+relu+pool1 (folded)"};
constexpr StageNames kStage2Names{"conv2+relu+pool2",
                                  "conv2",
                                  "bn2+relu",
                                  "pool2",
                                  "pool2.backward",
                                  "bn2+relu.backward",
                                  "conv2.backward_filter",
                                  "conv2.backward_data",
                                  "pool2+relu+conv2.backward_filter",
                                  "conv2+bn2_stats",
                                  "bn2+relu+pool2",
                                  "pool2+relu+bn2.backward",
                                  "bn2_fold",
                                  "pool2+relu+bn2+conv2.backward_filter",
                                  "conv2+bn2+relu+pool2 (folded)"};

// One feature stage (conv3x3 [-> BatchNorm] -> ReLU -> maxpool) and its device buffers.
struct Stage {
  StageNames names{};
  int cin = 0, cout = 0, size = 0;
  std::size_t w, b, bn_w = 0, bn_b = 0, bn_mean = 0, bn_var = 0;
  bool bn = false;
  // --conv fused and Cin >= gpu::kTensorCoreMinCin (conv2): the conv3x3_tc_* launchers (tensor
  // cores) in place of conv3x3_* (CUDA cores), same arguments, same workspace.
  bool tensor_cores = false;
  // Model A, octa's kernels, a stage whose input gradient is not needed (conv1): the pool's and
  // ReLU's backward are folded into the filter gradient's kernel (CUDA cores only), so dact is
  // never materialised.
  bool pool_into_filter = false;
  // Model B, octa's kernels, CudaBackendOptions::fuse_batchnorm: kernels/batchnorm_fused.hpp.
  bool fused_bn = false;
  // fused_bn, a stage whose input gradient is not needed (conv1): BatchNorm's and the pool's
  // backward folded into the filter gradient's kernel (CUDA cores), so dconv is never written.
  bool bn_into_filter = false;
  DeviceBuffer<float> conv;  // conv output before BatchNorm (model B only)
  DeviceBuffer<float> act;   // after (BatchNorm and) ReLU: (N, cout, size, size)
  DeviceBuffer<float> pool;  // (N, cout, size/2, size/2)
  DeviceBuffer<float> save_mean, save_invstd;
  DeviceBuffer<float> dact;   // gradient w.r.t. act (then w.r.t. the conv output, model A)
  DeviceBuffer<float> dconv;  // gradient w.r.t. the conv output (model B)
  // fused_bn: the convolution's per-tile statistics, the pool's window codes, the backward's
  // workspace, and the conv's weights and bias with eval-mode BatchNorm folded in.
  DeviceBuffer<double> bn_stats, bn_backward_ws;
  DeviceBuffer<std::uint8_t> window;
  DeviceBuffer<float> folded_w, folded_b;
  // --sync-bn (fused_bn only): the all-gathers' slots (ranks x 3C doubles forward, 2C backward)
  // and the ranks' statistics as a workspace of one tile per rank (kernels/batchnorm_sync.hpp).
  DeviceBuffer<double> sync_gathered, sync_stats;
  std::optional<gpu::CudnnConv3x3> cudnn;
};

class CudaBackend final : public TrainingBackend {
 public:
  CudaBackend(const BackendConfig& cfg, const CudaBackendOptions& opt)
      : cfg_(cfg), opt_(opt), table_(ParamTable::for_arch(cfg.arch, cfg.num_classes)) {
    cfg.validate_loss();
    OCTA_CUDA_CHECK(cudaSetDevice(opt.device));
    cudaDeviceProp prop{};
    OCTA_CUDA_CHECK(cudaGetDeviceProperties(&prop, opt.device));
    device_name_ = prop.name;
    if (opt_.time_phases) {
      opt_.use_graph = false;
      for (int i = 0; i < 2 * kMaxTimedPhases; ++i) timing_events_.emplace_back(/*timing=*/true);
      pending_phases_.reserve(kMaxTimedPhases);
    }
    check_memory();
    allocate();
    std::vector<float> init(table_.num_total());
    init_parameters(table_, init.data(), cfg.seed);
    ModelState m;
    m.values = std::move(init);
    load(m, nullptr);
  }

  std::string description() const override {
    return fmt::format("cuda:{} {} (--conv {}{})", opt_.device, device_name_,
                       conv_path_name(opt_.conv),
                       s1_.bn && !s1_.fused_bn ? ", BatchNorm unfused" : "");
  }
  const ParamTable& table() const override { return table_; }

  std::unique_ptr<data::HostBatch> make_host_batch(int capacity) override {
    return std::make_unique<PinnedHostBatch>(capacity);
  }

  void train_step_staged(data::HostBatch& batch, int n, std::int64_t step) override {
    auto* pinned = dynamic_cast<PinnedHostBatch*>(&batch);
    if (pinned == nullptr) {  // not ours: take the copying path
      train_step(batch.images(), batch.targets(), n, step);
      return;
    }
    OCTA_CHECK(n <= batch.capacity(), "train_step: batch of {} in a slot of {}", n,
               batch.capacity());
    run_step(*pinned, n);
  }

  void train_step(const float* images, const float* targets, int n, std::int64_t step) override {
    (void)step;  // the device-side counter (optimiser updates so far) keys the dropout stream
    PinnedHostBatch& staged = stage_on_host(images, targets, n);
    run_step(staged, n);
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
    PinnedHostBatch& staged = stage_on_host(images, nullptr, n);
    slot_ = copy_in(staged, n, /*with_targets=*/false);
    if (folded_stale_) fold_batchnorm();
    forward(n, /*train=*/false);
    OCTA_CUDA_CHECK(cudaEventRecord(input_free_[slot_], stream_));
    const std::size_t bytes = static_cast<std::size_t>(n) * classes() * sizeof(float);
    OCTA_CUDA_CHECK(cudaMemcpyAsync(staging_logits_.data(), logits_.data(), bytes,
                                    cudaMemcpyDeviceToHost, stream_));
    OCTA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::memcpy(logits, staging_logits_.data(), bytes);
  }

  std::vector<PhaseTimes> phase_times() const override { return phase_times_; }

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
    folded_stale_ = true;
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

  // fc2's outputs: 1 (binary) or K.
  std::size_t classes() const { return static_cast<std::size_t>(table_.num_classes()); }

  std::size_t activation_floats() const {
    const auto n = static_cast<std::size_t>(cfg_.max_batch);
    const std::size_t s1 = n * kC1 * kH1 * kH1, s2 = n * kC2 * kH2 * kH2;
    const bool bn = cfg_.arch == Arch::kB;
    // conv (B), act, dact, dconv (B) per stage; pools; the head's buffers; two input slots of
    // images and targets; logits, their gradient and their pinned copy (n, K) and the weights.
    return (bn ? 4 : 2) * (s1 + s2) + (s1 + s2) / 4 + 2 * (s2 / 4) + 8 * n * kHidden +
           2 * n * (kPixels + 1) + 5 * n + 3 * n * classes() + classes();
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
                  int size, const StageNames& names, bool needs_input_gradient) {
    const auto n = static_cast<std::size_t>(cfg_.max_batch);
    const std::size_t full = n * cout * size * size;
    s.names = names;
    s.tensor_cores = opt_.conv == ConvPath::kFused && cin >= gpu::kTensorCoreMinCin;
    s.pool_into_filter =
        cfg_.arch == Arch::kA && octa_kernels() && !needs_input_gradient && !s.tensor_cores;
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
      s.save_mean = DeviceBuffer<float>(static_cast<std::size_t>(cout), "BatchNorm mean");
      s.save_invstd = DeviceBuffer<float>(static_cast<std::size_t>(cout), "BatchNorm invstd");
      s.fused_bn = octa_kernels() && opt_.fuse_batchnorm;
      s.bn_into_filter = s.fused_bn && !needs_input_gradient && !s.tensor_cores;
      if (!s.bn_into_filter) s.dconv = DeviceBuffer<float>(full, "conv output gradient");
    }
    if (s.fused_bn) {
      const auto c = static_cast<std::size_t>(cout);
      s.bn_stats =
          DeviceBuffer<double>(3 * c * static_cast<std::size_t>(stats_tiles(s, cfg_.max_batch)),
                               "BatchNorm tile statistics");
      s.bn_backward_ws = DeviceBuffer<double>(
          gpu::batchnorm_relu_maxpool_backward_workspace(cfg_.max_batch, cout, size, size),
          "BatchNorm backward workspace");
      s.window = DeviceBuffer<std::uint8_t>(full / 4, "max-pool window codes");
      s.folded_w = DeviceBuffer<float>(c * static_cast<std::size_t>(cin) * 9, "folded conv weight");
      s.folded_b = DeviceBuffer<float>(c, "folded conv bias");
    }
    // The fused stage keeps no activation for backward; its eval form writes one (the fused
    // conv + ReLU + pool kernels' contract), so the buffer stays.
    s.act = DeviceBuffer<float>(full, "activation");
    if (!s.pool_into_filter && !s.fused_bn) {
      s.dact = DeviceBuffer<float>(full, "activation gradient");
    }
    s.pool = DeviceBuffer<float>(full / 4, "pooled activation");
    if (!octa_kernels()) s.cudnn.emplace(cudnn_.get(), cin, cout, size, size);
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
    lr_ = DeviceBuffer<double>(1, "learning rate");
    copy(lr_.data(), &cfg_.optimizer.lr, sizeof(double));
    loss_sum_ = DeviceBuffer<double>(1, "loss sum");
    batch_loss_ = DeviceBuffer<float>(1, "batch loss");
    zero(loss_sum_.data(), sizeof(double));
    // cuBLAS gets its workspace up front, so it never allocates while a graph is being captured.
    cublas_ws_ = DeviceBuffer<std::uint8_t>(kCublasWorkspaceBytes, "cuBLAS workspace");
    OCTA_CUBLAS_CHECK(cublasSetWorkspace(cublas_.get(), cublas_ws_.data(), cublas_ws_.size()));
    for (int i = 0; i < 2; ++i) {
      x_[i] = DeviceBuffer<float>(n * kPixels, "images");
      y_[i] = DeviceBuffer<float>(n, "targets");
      staging_[i] = std::make_unique<PinnedHostBatch>(cfg_.max_batch);
    }
    staging_logits_ = cuda::PinnedBuffer<float>(n * classes(), "pinned logits");
    make_stage(s1_, "conv1", "bn1", 1, kC1, kH1, kStage1Names, /*needs_input_gradient=*/false);
    make_stage(s2_, "conv2", "bn2", kC1, kC2, kH2, kStage2Names, /*needs_input_gradient=*/true);
    dpool1_ = DeviceBuffer<float>(n * kC1 * kH2 * kH2, "pool1 gradient");
    dflat_ = DeviceBuffer<float>(n * kC2 * kH3 * kH3, "flatten gradient");
    h_ = DeviceBuffer<float>(n * kHidden, "fc1 output");
    dh_ = DeviceBuffer<float>(n * kHidden, "fc1 gradient");
    logits_ = DeviceBuffer<float>(n * classes(), "logits");
    dlogits_ = DeviceBuffer<float>(n * classes(), "logit gradient");
    if (!cfg_.class_weights.empty()) {  // validated (BackendConfig::validate_loss)
      class_weights_ = DeviceBuffer<float>(classes(), "class weights");
      copy(class_weights_.data(), cfg_.class_weights.data(), classes() * sizeof(float));
    }
    if (cfg_.arch == Arch::kB) {
      g_ = DeviceBuffer<float>(n * kC2, "global average pool");
      dg_ = DeviceBuffer<float>(n * kC2, "global average pool gradient");
      d_ = DeviceBuffer<float>(n * kHidden, "dropout output");
      mask_ = DeviceBuffer<std::uint8_t>(n * kHidden, "dropout mask");
    }
    if (octa_kernels()) {  // conv3x3_backward_filter's and conv3x3_tc_backward_filter's
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

  // A named phase of the step: an NVTX range and, with time_phases during a training step, a
  // pair of CUDA events on `stream`.
  class Phase {
   public:
    Phase(CudaBackend& b, const char* name, cudaStream_t stream)
        : b_(b), range_(name), stream_(stream), index_(b.begin_phase(name, stream)) {}
    Phase(CudaBackend& b, const char* name) : Phase(b, name, b.stream_) {}
    ~Phase() { b_.end_phase(index_, stream_); }
    Phase(const Phase&) = delete;
    Phase& operator=(const Phase&) = delete;

   private:
    CudaBackend& b_;
    NvtxRange range_;
    cudaStream_t stream_;
    int index_;
  };

  int begin_phase(const char* name, cudaStream_t stream) {
    if (!timing_step_) return -1;
    const int i = static_cast<int>(pending_phases_.size());
    OCTA_CHECK(i < kMaxTimedPhases, "time_phases: more than {} phases in a step", kMaxTimedPhases);
    pending_phases_.push_back(name);
    OCTA_CUDA_CHECK(cudaEventRecord(timing_events_[static_cast<std::size_t>(2 * i)], stream));
    return i;
  }
  // Runs in a destructor: a failure loses the timing only (and is logged); the step's own
  // calls report errors.
  void end_phase(int i, cudaStream_t stream) noexcept {
    if (i < 0) return;
    OCTA_CUDA_CHECK_NOTHROW(
        cudaEventRecord(timing_events_[static_cast<std::size_t>(2 * i + 1)], stream));
  }
  // Waits for the step and appends each phase's time to phase_times_ (by name, in step order).
  void collect_phases() {
    for (std::size_t i = 0; i < pending_phases_.size(); ++i) {
      OCTA_CUDA_CHECK(cudaEventSynchronize(timing_events_[2 * i + 1]));
      float ms = 0.0f;
      OCTA_CUDA_CHECK(cudaEventElapsedTime(&ms, timing_events_[2 * i], timing_events_[2 * i + 1]));
      const std::string name = pending_phases_[i];
      auto it = std::find_if(phase_times_.begin(), phase_times_.end(),
                             [&](const PhaseTimes& p) { return p.name == name; });
      if (it == phase_times_.end()) it = phase_times_.insert(phase_times_.end(), {name, {}});
      it->ms.push_back(ms);
    }
    pending_phases_.clear();
  }

  // Copies a batch from pageable memory into the next of the engine's own two pinned slots. The
  // host waits only for the device copy that last read that slot (two batches ago).
  PinnedHostBatch& stage_on_host(const float* images, const float* targets, int n) {
    OCTA_CHECK(n > 0 && n <= cfg_.max_batch, "batch of {} (allowed 1..{})", n, cfg_.max_batch);
    PinnedHostBatch& staged = *staging_[static_cast<std::size_t>(next_staging_)];
    next_staging_ ^= 1;
    staged.wait_reusable();
    const auto count = static_cast<std::size_t>(n);
    std::memcpy(staged.images(), images, count * kPixels * sizeof(float));
    if (targets) std::memcpy(staged.targets(), targets, count * sizeof(float));
    return staged;
  }

  // Copies a pinned batch into the next device input slot on the copy stream, after the work that
  // last read that slot, and makes the compute stream wait for the copy. Returns the slot; the
  // caller records input_free_[slot] on the compute stream after its last use of the slot.
  int copy_in(PinnedHostBatch& batch, int n, bool with_targets) {
    const int slot = next_input_;
    next_input_ ^= 1;
    const auto count = static_cast<std::size_t>(n);
    OCTA_CUDA_CHECK(cudaStreamWaitEvent(copy_stream_, input_free_[slot], 0));
    {
      Phase phase(*this, "h2d_copy", copy_stream_);
      OCTA_CUDA_CHECK(cudaMemcpyAsync(x_[slot].data(), batch.images(),
                                      count * kPixels * sizeof(float), cudaMemcpyHostToDevice,
                                      copy_stream_));
      if (with_targets) {
        OCTA_CUDA_CHECK(cudaMemcpyAsync(y_[slot].data(), batch.targets(), count * sizeof(float),
                                        cudaMemcpyHostToDevice, copy_stream_));
      }
    }
    OCTA_CUDA_CHECK(cudaEventRecord(batch.read_done(), copy_stream_));
    OCTA_CUDA_CHECK(cudaEventRecord(input_ready_[slot], copy_stream_));
    OCTA_CUDA_CHECK(cudaStreamWaitEvent(stream_, input_ready_[slot], 0));
    return slot;
  }

  // One training step on a pinned batch: the copy, then the step, replayed as a graph when one is
  // captured for this input slot and batch size.
  void run_step(PinnedHostBatch& batch, int n) {
    NvtxRange range("train_step");
    OCTA_CHECK(n > 0 && n <= cfg_.max_batch, "train_step: batch of {} (allowed 1..{})", n,
               cfg_.max_batch);
    timing_step_ = opt_.time_phases;
    pending_phases_.clear();
    slot_ = copy_in(batch, n, /*with_targets=*/true);
    // The first batch size seen is the run's batch size: after kWarmupSteps eager steps at that
    // size (which also let cuDNN and cuBLAS set themselves up), the step is captured, once per
    // input slot, and replayed; other sizes (the last, partial batch) run eagerly.
    // Data-parallel: the share's place and weight in the global batch are baked into the graph
    // too (dropout's offset, the gradients' scale), so a share that differs in them runs eagerly.
    if (train_batch_ == 0) {
      train_batch_ = n;
      train_share_ = share();
    }
    cuda::GraphExec& graph = graph_[static_cast<std::size_t>(slot_)];
    const bool graph_size = opt_.use_graph && n == train_batch_ && share() == train_share_;
    if (graph_size && !graph && eager_steps_ >= kWarmupSteps) capture(n, graph);
    if (graph_size && graph) {
      NvtxRange replay("graph_replay");
      OCTA_CUDA_CHECK(cudaGraphLaunch(graph.get(), stream_));
    } else {
      if (graph_size) ++eager_steps_;
      step_body(n);
    }
    OCTA_CUDA_CHECK(cudaEventRecord(input_free_[slot_], stream_));
    folded_stale_ = true;  // parameters and running statistics have moved
    if (!table_.batchnorm_layers().empty()) ++num_batches_tracked_;
    if (timing_step_) {
      timing_step_ = false;
      collect_phases();
    }
  }

  // This step's share of a data-parallel global batch: where it starts and its weight (a plain
  // run: 0 and 1).
  struct ShareKey {
    int first_image = 0;
    float weight = 1.0f;
    bool operator==(const ShareKey&) const = default;
  };
  ShareKey share() const {
    return reducer_ != nullptr ? ShareKey{reducer_->first_image(), reducer_->share_weight()}
                               : ShareKey{};
  }

  const float* X() const { return x_[static_cast<std::size_t>(slot_)].data(); }
  const float* Y() const { return y_[static_cast<std::size_t>(slot_)].data(); }

  float* P(std::size_t offset) const { return params_.data() + offset; }
  float* G(std::size_t offset) const { return grads_.data() + offset; }

  // octa's own convolution kernels (--conv fused or fused-fp32), not cuDNN's.
  bool octa_kernels() const { return opt_.conv != ConvPath::kCudnn; }

  // Tiles of BatchNorm statistics the stage's convolution writes at batch n (fused_bn).
  static int stats_tiles(const Stage& s, int n) {
    return s.tensor_cores ? gpu::conv3x3_tc_bn_stats_tiles(n, s.size, s.size)
                          : gpu::conv3x3_bn_stats_tiles(n, s.size, s.size);
  }

  // Model B's fused stage forward: training, the convolution with BatchNorm's statistics, then
  // BatchNorm + ReLU + pool; evaluation, conv + ReLU + pool over the folded weights.
  void fused_stage_forward(Stage& s, const float* in, int n, bool train) {
    if (!train) {
      Phase phase(*this, s.names.folded);
      const auto conv_relu_pool = s.tensor_cores ? &gpu::conv3x3_tc_relu_maxpool_forward
                                                 : &gpu::conv3x3_relu_maxpool_forward;
      conv_relu_pool(s.pool.data(), s.act.data(), in, s.folded_w.data(), s.folded_b.data(), n,
                     s.cin, s.cout, s.size, s.size, stream_);
      return;
    }
    {
      Phase phase(*this, s.names.conv_bn_stats);
      const auto conv =
          s.tensor_cores ? &gpu::conv3x3_tc_forward_bn_stats : &gpu::conv3x3_forward_bn_stats;
      conv(s.conv.data(), s.bn_stats.data(), in, P(s.w), P(s.b), n, s.cin, s.cout, s.size, s.size,
           stream_);
    }
    const double* stats = s.bn_stats.data();
    int tiles = stats_tiles(s, n);
    if (sync_bn_) {
      sync_statistics(s, tiles);
      stats = s.sync_stats.data();
      tiles = reducer_->ranks();
    }
    Phase phase(*this, s.names.bn_relu_pool);
    gpu::batchnorm_relu_maxpool_forward_train(s.pool.data(), s.window.data(), s.save_mean.data(),
                                              s.save_invstd.data(), P(s.bn_mean), P(s.bn_var),
                                              s.conv.data(), stats, tiles, P(s.bn_w), P(s.bn_b), n,
                                              s.cout, s.size, s.size, kBnEps, kBnMomentum, stream_);
  }

  // --sync-bn, training forward: this rank's `tiles` tiles of statistics merged into one per
  // channel, all-gathered over NCCL, and laid out as one tile per rank in s.sync_stats, which the
  // BatchNorm kernel merges in rank order (kernels/batchnorm_sync.hpp).
  void sync_statistics(Stage& s, int tiles) {
    Phase phase(*this, "nccl_sync_bn_forward");
    const std::size_t slot = 3 * static_cast<std::size_t>(s.cout);
    gpu::batchnorm_sync_pack_stats(
        s.sync_gathered.data() + static_cast<std::size_t>(reducer_->rank()) * slot,
        s.bn_stats.data(), s.cout, tiles, stream_);
    nccl_->all_gather_in_place(s.sync_gathered.data(), slot, stream_);
    gpu::batchnorm_sync_unpack_stats(s.sync_stats.data(), s.sync_gathered.data(), s.cout,
                                     reducer_->ranks(), stream_);
  }

  // --sync-bn, training backward: this rank's block sums of dy and dy * xhat, weighted by its
  // share, all-gathered over NCCL and added in rank order into the workspace's first block, which
  // the input gradient's kernel then reads (kernels/batchnorm_sync.hpp).
  void sync_backward_sums(Stage& s, int n) {
    Phase phase(*this, "nccl_sync_bn_backward");
    const int blocks = gpu::batchnorm_relu_maxpool_backward_blocks(n, s.size, s.size);
    const std::size_t slot = 2 * static_cast<std::size_t>(s.cout);
    gpu::batchnorm_sync_pack_sums(
        s.sync_gathered.data() + static_cast<std::size_t>(reducer_->rank()) * slot,
        s.bn_backward_ws.data(), s.cout, blocks, static_cast<double>(reducer_->share_weight()),
        stream_);
    nccl_->all_gather_in_place(s.sync_gathered.data(), slot, stream_);
    gpu::batchnorm_sync_unpack_sums(s.bn_backward_ws.data(), s.sync_gathered.data(), s.cout, blocks,
                                    reducer_->ranks(), stream_);
  }

  // Eval-mode BatchNorm folded into both stages' convolutions (fused_bn), from the current
  // parameters and running statistics.
  void fold_batchnorm() {
    for (Stage* s : {&s1_, &s2_}) {
      if (!s->fused_bn) continue;
      Phase phase(*this, s->names.fold);
      gpu::batchnorm_fold_conv3x3(s->folded_w.data(), s->folded_b.data(), P(s->w), P(s->b),
                                  P(s->bn_w), P(s->bn_b), P(s->bn_mean), P(s->bn_var), s->cin,
                                  s->cout, kBnEps, stream_);
    }
    folded_stale_ = false;
  }

  void stage_forward(Stage& s, const float* in, int n, bool train) {
    if (s.fused_bn) {
      fused_stage_forward(s, in, n, train);
      return;
    }
    const bool fused_pool = !s.bn && octa_kernels();
    if (fused_pool) {
      Phase phase(*this, s.names.conv_relu_pool);
      const auto conv_relu_pool = s.tensor_cores ? &gpu::conv3x3_tc_relu_maxpool_forward
                                                 : &gpu::conv3x3_relu_maxpool_forward;
      conv_relu_pool(s.pool.data(), s.act.data(), in, P(s.w), P(s.b), n, s.cin, s.cout, s.size,
                     s.size, stream_);
      return;
    }
    float* conv_out = s.bn ? s.conv.data() : s.act.data();
    const Epilogue ep = s.bn ? Epilogue::kNone : Epilogue::kRelu;
    {
      Phase phase(*this, s.names.conv);
      if (octa_kernels()) {
        const auto conv = s.tensor_cores ? &gpu::conv3x3_tc_forward : &gpu::conv3x3_forward;
        conv(conv_out, in, P(s.w), P(s.b), n, s.cin, s.cout, s.size, s.size, ep, stream_);
      } else {
        s.cudnn->forward(conv_out, in, P(s.w), P(s.b), n, ep, stream_);
      }
    }
    if (s.bn) {
      Phase phase(*this, s.names.bn);
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
    Phase phase(*this, s.names.pool);
    gpu::maxpool2x2_forward(s.pool.data(), s.act.data(), n, s.cout, s.size, s.size, stream_);
  }

  // dpool: gradient w.r.t. the stage's pooled output; din: w.r.t. its input (null: not needed).
  void stage_backward(Stage& s, const float* dpool, const float* in, float* din, int n) {
    if (s.pool_into_filter) {
      OCTA_CHECK(din == nullptr,
                 "stage_backward: {} folds the pool into the filter gradient and "
                 "computes no input gradient",
                 s.names.pool_conv_filter);
      Phase phase(*this, s.names.pool_conv_filter);
      gpu::conv3x3_backward_filter_from_maxpool(G(s.w), G(s.b), dpool, s.act.data(), in, n, s.cin,
                                                s.cout, s.size, s.size, filter_ws_.data(), stream_);
      return;
    }
    if (s.bn_into_filter) {
      OCTA_CHECK(din == nullptr,
                 "stage_backward: {} folds BatchNorm and the pool into the filter gradient and "
                 "computes no input gradient",
                 s.names.bn_pool_conv_filter);
      Phase phase(*this, s.names.bn_pool_conv_filter);
      gpu::conv3x3_backward_filter_from_bn_maxpool(
          G(s.w), G(s.b), G(s.bn_w), G(s.bn_b), dpool, s.window.data(), s.conv.data(),
          s.save_mean.data(), s.save_invstd.data(), P(s.bn_w), in, n, s.cin, s.cout, s.size, s.size,
          s.bn_backward_ws.data(), filter_ws_.data(), stream_);
      return;
    }
    const float* dconv = s.dact.data();
    if (s.fused_bn && sync_bn_) {
      {
        Phase phase(*this, s.names.bn_relu_pool_backward);
        gpu::batchnorm_relu_maxpool_backward_sums(
            s.bn_backward_ws.data(), dpool, s.window.data(), s.conv.data(), s.save_mean.data(),
            s.save_invstd.data(), n, s.cout, s.size, s.size, stream_);
      }
      sync_backward_sums(s, n);
      Phase phase(*this, s.names.bn_relu_pool_backward);
      gpu::batchnorm_relu_maxpool_backward_data(
          s.dconv.data(), G(s.bn_w), G(s.bn_b), s.bn_backward_ws.data(), dpool, s.window.data(),
          s.conv.data(), s.save_mean.data(), s.save_invstd.data(), P(s.bn_w), n, s.cout, s.size,
          s.size, stream_);
      dconv = s.dconv.data();
    } else if (s.fused_bn) {
      Phase phase(*this, s.names.bn_relu_pool_backward);
      gpu::batchnorm_relu_maxpool_backward(s.dconv.data(), G(s.bn_w), G(s.bn_b), dpool,
                                           s.window.data(), s.conv.data(), s.save_mean.data(),
                                           s.save_invstd.data(), P(s.bn_w), n, s.cout, s.size,
                                           s.size, s.bn_backward_ws.data(), stream_);
      dconv = s.dconv.data();
    } else {
      // Model A: the ReLU's backward is fused into the pool's. Model B: into BatchNorm's.
      Phase phase(*this, s.names.pool_backward);
      gpu::maxpool2x2_backward(s.dact.data(), dpool, s.act.data(), n, s.cout, s.size, s.size,
                               /*relu_before=*/!s.bn, stream_);
    }
    if (s.bn && !s.fused_bn) {
      Phase phase(*this, s.names.bn_backward);
      gpu::batchnorm_backward(s.dconv.data(), G(s.bn_w), G(s.bn_b), s.dact.data(), s.act.data(),
                              s.conv.data(), s.save_mean.data(), s.save_invstd.data(), P(s.bn_w), n,
                              s.cout, s.size * s.size, stream_);
      dconv = s.dconv.data();
    }
    {
      Phase phase(*this, s.names.conv_filter);
      if (octa_kernels()) {
        const auto filter =
            s.tensor_cores ? &gpu::conv3x3_tc_backward_filter : &gpu::conv3x3_backward_filter;
        filter(G(s.w), G(s.b), dconv, in, n, s.cin, s.cout, s.size, s.size, filter_ws_.data(),
               stream_);
      } else {
        s.cudnn->backward_filter(G(s.w), G(s.b), dconv, in, n, stream_);
      }
    }
    if (din) {
      Phase phase(*this, s.names.conv_data);
      if (octa_kernels()) {
        const auto data =
            s.tensor_cores ? &gpu::conv3x3_tc_backward_data : &gpu::conv3x3_backward_data;
        data(din, dconv, P(s.w), n, s.cin, s.cout, s.size, s.size, stream_);
      } else {
        s.cudnn->backward_data(din, dconv, P(s.w), n, stream_);
      }
    }
  }

  // The layers up to fc2's input. Training stops there (the fused head does fc2 and the loss);
  // evaluation adds fc2 for the logits.
  void forward(int n, bool train) {
    NvtxRange range(train ? "forward" : "forward_eval");
    stage_forward(s1_, X(), n, train);
    stage_forward(s2_, s1_.pool.data(), n, train);
    if (cfg_.arch == Arch::kA) {
      Phase phase(*this, "fc1+relu");
      gpu::linear_forward(h_.data(), s2_.pool.data(), P(f1w_), P(f1b_), n, kC2 * kH3 * kH3, kHidden,
                          Epilogue::kRelu, cublas_.get(), stream_);
    } else {
      {
        Phase phase(*this, "gap");
        gpu::global_avgpool_forward(g_.data(), s2_.pool.data(), n, kC2, kH3 * kH3, stream_);
      }
      Phase phase(*this, "fc1+relu");
      gpu::linear_forward(h_.data(), g_.data(), P(f1w_), P(f1b_), n, kC2, kHidden, Epilogue::kRelu,
                          cublas_.get(), stream_);
    }
    if (train) {
      if (cfg_.arch == Arch::kB) {
        Phase phase(*this, "dropout");
        // A data-parallel rank's share draws the masks of its images' places in the global batch.
        gpu::dropout_forward(d_.data(), mask_.data(), h_.data(),
                             static_cast<std::size_t>(n) * kHidden, kDropoutP, cfg_.seed,
                             rng_stream(RngStream::kDropout, 0), step_.data(), stream_,
                             static_cast<std::uint64_t>(share().first_image) * kHidden);
      }
      return;
    }
    Phase phase(*this, "fc2");
    gpu::linear_forward(logits_.data(), h_.data(), P(f2w_), P(f2b_), n, kHidden,
                        table_.num_classes(), Epilogue::kNone, cublas_.get(), stream_);
  }

  // fc2, the loss and the gradient back to fc1's output (through the dropout and the ReLU) in one
  // kernel: dh_ = d(loss) / d(fc1's output before its ReLU).
  void head(int n) {
    const bool dropout = cfg_.arch == Arch::kB;
    if (table_.multiclass()) {
      Phase phase(*this, "fc2+softmax_ce_loss+backward");
      gpu::softmax_head_train(
          {logits_.data(), dlogits_.data(), batch_loss_.data(), loss_sum_.data(), G(f2w_), G(f2b_),
           dh_.data()},
          {dropout ? d_.data() : h_.data(), h_.data(), dropout ? mask_.data() : nullptr, kDropoutP,
           P(f2w_), P(f2b_), Y(), cfg_.class_weights.empty() ? nullptr : class_weights_.data(),
           cfg_.label_smoothing},
          n, kHidden, table_.num_classes(), stream_);
      return;
    }
    Phase phase(*this, "fc2+bce_loss+backward");
    gpu::logit_head_train({logits_.data(), dlogits_.data(), batch_loss_.data(), loss_sum_.data(),
                           G(f2w_), G(f2b_), dh_.data()},
                          {dropout ? d_.data() : h_.data(), h_.data(),
                           dropout ? mask_.data() : nullptr, kDropoutP, P(f2w_), P(f2b_), Y()},
                          n, kHidden, cfg_.pos_weight, stream_);
  }

  // From fc1's output gradient (dh_, the head's) back to the input.
  void backward(int n) {
    NvtxRange range("backward");
    if (cfg_.arch == Arch::kA) {
      Phase phase(*this, "fc1.backward");
      gpu::linear_backward(dflat_.data(), G(f1w_), G(f1b_), dh_.data(), s2_.pool.data(), P(f1w_), n,
                           kC2 * kH3 * kH3, kHidden, cublas_.get(), stream_);
    } else {
      {
        Phase phase(*this, "fc1.backward");
        gpu::linear_backward(dg_.data(), G(f1w_), G(f1b_), dh_.data(), g_.data(), P(f1w_), n, kC2,
                             kHidden, cublas_.get(), stream_);
      }
      Phase phase(*this, "gap.backward");
      gpu::global_avgpool_backward(dflat_.data(), dg_.data(), n, kC2, kH3 * kH3, stream_);
    }
    stage_backward(s2_, dflat_.data(), s1_.pool.data(), dpool1_.data(), n);
    stage_backward(s1_, dpool1_.data(), X(), nullptr, n);
  }

  void optimizer_step() {
    const OptimizerConfig& c = cfg_.optimizer;
    if (c.kind == OptimizerKind::kAdam) {
      Phase phase(*this, "adam");
      gpu::adam_update(params_.data(), grads_.data(), m_.data(), v_.data(), table_.num_trainable(),
                       gpu::AdamParams{c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, lr_.data()},
                       step_.data(), stream_);
    } else {
      Phase phase(*this, "sgd");
      gpu::sgd_update(
          params_.data(), grads_.data(), m_.data(), table_.num_trainable(),
          gpu::SgdParams{c.lr, c.momentum, c.dampening, c.weight_decay, c.nesterov, lr_.data()},
          step_.data(), stream_);
    }
  }

  // Everything of a training step after the input copy: what the CUDA graph holds.
  void step_body(int n) {
    forward(n, /*train=*/true);
    head(n);
    backward(n);
    if (nccl_) {
      Phase phase(*this, "nccl_allreduce");
      nccl_->reduce(grads_.data(), table_.num_trainable(), cublas_.get(), stream_);
    }
    optimizer_step();
    // --sync-bn: every rank updated its running statistics from the same global figures, so
    // they are equal already (the replica check proves it) and need no broadcast.
    if (nccl_ && !sync_bn_ && table_.num_total() > table_.num_trainable()) {
      Phase phase(*this, "nccl_broadcast_bn");
      nccl_->broadcast_from_rank0(P(table_.num_trainable()),
                                  table_.num_total() - table_.num_trainable(), stream_);
    }
  }

  // Data-parallel training (engine/dist/): the gradients summed between the ranks' GPUs by NCCL
  // inside the step (and its graph). Before the first step, so that no graph lacks the sum.
  void set_gradient_reducer(GradientReducer* reducer) override {
    OCTA_CHECK(train_batch_ == 0, "{}: data-parallel training must be set up before the first step",
               description());
    const bool sync = reducer != nullptr && reducer->sync_batchnorm();
    OCTA_CHECK(!sync || (s1_.fused_bn && s2_.fused_bn),
               "--sync-bn on the GPU needs octa's fused BatchNorm kernels (model B with --conv "
               "fused or fused-fp32, the default); this run uses {}: train without --sync-bn, with "
               "the default --conv, or with --device cpu",
               s1_.bn ? (octa_kernels() ? "unfused BatchNorm" : "cuDNN's convolutions")
                      : "a model without BatchNorm");
    nccl_.reset();
    sync_bn_ = false;
    reducer_ = reducer;
    if (reducer != nullptr) nccl_ = std::make_unique<gpu::NcclGradients>(*reducer);
    if (sync) enable_sync_batchnorm(reducer->ranks());
  }

  // --sync-bn: each stage's all-gather slots and per-rank statistics; conv1's backward no longer
  // folds BatchNorm into its filter gradient (the input gradient's sums must be reduced between
  // the two), so it writes dconv as conv2's does. A run without --sync-bn allocates none of it.
  void enable_sync_batchnorm(int ranks) {
    for (Stage* s : {&s1_, &s2_}) {
      const std::size_t slots =
          3 * static_cast<std::size_t>(s->cout) * static_cast<std::size_t>(ranks);
      s->sync_gathered = DeviceBuffer<double>(slots, "--sync-bn all-gather slots");
      s->sync_stats = DeviceBuffer<double>(slots, "--sync-bn per-rank statistics");
      if (s->bn_into_filter) {
        s->bn_into_filter = false;
        s->dconv = DeviceBuffer<float>(
            static_cast<std::size_t>(cfg_.max_batch) * s->cout * s->size * s->size,
            "conv output gradient");
      }
    }
    sync_bn_ = true;
  }

  // The optimiser reads its lr from lr_ at every step, eager or replayed from a graph, so a new lr
  // needs no new graph: the write is ordered on the stream after the steps already queued.
  void set_learning_rate(double lr) override {
    OCTA_CHECK(std::isfinite(lr) && lr > 0.0, "{}: learning rate {} must be positive",
               description(), lr);
    copy(lr_.data(), &lr, sizeof lr);
    cfg_.optimizer.lr = lr;
  }

  // Captures step_body for the current input slot into `out`.
  void capture(int n, cuda::GraphExec& out) {
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
    out = cuda::GraphExec(exec);
    spdlog::debug("training step captured as a CUDA graph (batch {}, input slot {})", n, slot_);
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
  cuda::Stream stream_;       // compute
  cuda::Stream copy_stream_;  // host-to-device batch copies
  cuda::CublasHandle cublas_;
  cuda::CudnnHandle cudnn_;
  DeviceBuffer<float> params_, grads_, m_, v_;
  DeviceBuffer<std::int64_t> step_;
  DeviceBuffer<double> lr_;  // the optimiser's learning rate (set_learning_rate)
  DeviceBuffer<double> loss_sum_;
  DeviceBuffer<float> batch_loss_;
  // Two device input slots: the copy of the next batch fills one while a step reads the other.
  std::array<DeviceBuffer<float>, 2> x_, y_;
  std::array<cuda::Event, 2> input_ready_, input_free_;
  std::array<cuda::GraphExec, 2> graph_;  // the step, captured per input slot
  int slot_ = 0;                          // the input slot of the step being built
  int next_input_ = 0;
  // The engine's own pinned slots, for batches handed over in pageable memory.
  std::array<std::unique_ptr<PinnedHostBatch>, 2> staging_;
  int next_staging_ = 0;
  cuda::PinnedBuffer<float> staging_logits_;
  Stage s1_, s2_;
  DeviceBuffer<float> dpool1_, dflat_, h_, dh_, g_, dg_, d_, logits_, dlogits_, filter_ws_;
  DeviceBuffer<float> class_weights_;  // K classes with --class-weights: (K)
  DeviceBuffer<std::uint8_t> mask_, cublas_ws_;
  std::size_t f1w_ = 0, f1b_ = 0, f2w_ = 0, f2b_ = 0;
  std::int64_t num_batches_tracked_ = 0;
  bool folded_stale_ = true;  // fold_batchnorm() is due before the next prediction
  int train_batch_ = 0;
  ShareKey train_share_;                      // share() of the graph's steps
  GradientReducer* reducer_ = nullptr;        // data-parallel runs only
  std::unique_ptr<gpu::NcclGradients> nccl_;  // data-parallel runs only
  bool sync_bn_ = false;                      // --sync-bn: enable_sync_batchnorm
  int eager_steps_ = 0;
  // time_phases: an event pair per phase of the step being timed, and the times so far.
  std::vector<cuda::Event> timing_events_;
  std::vector<const char*> pending_phases_;
  std::vector<PhaseTimes> phase_times_;
  bool timing_step_ = false;
};

}  // namespace

std::unique_ptr<TrainingBackend> make_cuda_backend(const BackendConfig& config,
                                                   const CudaBackendOptions& options) {
  return std::make_unique<CudaBackend>(config, options);
}

}  // namespace octa
