// engine/train/cpu_backend_base.hpp: what the two CPU backends (cpu_backend.cpp, the reference;
// fast_cpu_backend.cpp) share around their models: the model and optimiser state, the training
// step (forward, the loss: BCE with logits or softmax cross-entropy, backward, update), the loss
// bookkeeping, evaluation in pieces of the activations' batch, and loading state. Net is
// CpuModel<float> or cpu_fast::FastModel (the same forward/backward contract).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/core/philox.hpp"
#include "engine/cpu/ops.hpp"
#include "engine/optim/optimizer.hpp"
#include "engine/train/backend.hpp"
#include "engine/train/cpu_backend.hpp"

namespace octa {

template <class Net>
class CpuBackendBase : public TrainingBackend {
 public:
  explicit CpuBackendBase(const BackendConfig& cfg)
      : cfg_(cfg),
        table_(ParamTable::for_arch(cfg.arch, cfg.num_classes)),
        net_(table_, cfg.activation_batch()),
        optimizer_(cfg.optimizer, table_.num_trainable()),
        grads_(table_.num_trainable()),
        logits_(static_cast<std::size_t>(cfg.activation_batch()) * cfg.num_classes),
        dlogits_(logits_.size()) {
    cfg.validate_loss();
    model_.values.assign(table_.num_total(), 0.0f);
    init_parameters(table_, model_.values.data(), cfg.seed);
  }

  const ParamTable& table() const override { return table_; }

  void train_step(const float* images, const float* targets, int n, std::int64_t step) override {
    use_threads();
    net_.set_dropout_first_image(reducer_ != nullptr ? reducer_->first_image() : 0);
    const bool sync_bn = reducer_ != nullptr && reducer_->sync_batchnorm();
    if (sync_bn) bn_ranks_.weight = reducer_->share_weight();
    net_.set_batchnorm_ranks(sync_bn ? &bn_ranks_ : nullptr);
    net_.forward(model_.values.data(), images, n, /*train=*/true, cfg_.seed,
                 rng_stream(RngStream::kDropout, static_cast<std::uint64_t>(step)), logits_.data());
    if (!table_.batchnorm_layers().empty()) ++model_.num_batches_tracked;
    const double loss =
        table_.multiclass()
            ? cpu::softmax_cross_entropy(
                  dlogits_.data(), logits_.data(), targets, n, table_.num_classes(),
                  cfg_.class_weights.empty() ? nullptr : cfg_.class_weights.data(),
                  cfg_.label_smoothing)
            : cpu::bce_with_logits(dlogits_.data(), logits_.data(), targets, n, cfg_.pos_weight);
    loss_sum_ += loss * n;
    net_.backward(model_.values.data(), dlogits_.data(), grads_.data());
    if (reducer_ != nullptr) reducer_->reduce(grads_.data(), grads_.size());
    update();
    if (reducer_ != nullptr && table_.num_total() > table_.num_trainable()) {
      reducer_->sync_buffers(model_.values.data() + table_.num_trainable(),
                             table_.num_total() - table_.num_trainable());
    }
  }

  void set_gradient_reducer(GradientReducer* reducer) override {
    reducer_ = reducer;
    bn_ranks_.allreduce_sum = [reducer](double* values, std::size_t count) {
      reducer->allreduce_batchnorm(values, count);
    };
  }
  void set_learning_rate(double lr) override { optimizer_.set_lr(lr); }

  double take_loss_sum() override {
    const double s = loss_sum_;
    loss_sum_ = 0.0;
    return s;
  }

  // In pieces of the activations' batch: eval mode treats every image on its own.
  void predict(const float* images, int n, float* logits) override {
    use_threads();
    const int piece = cfg_.activation_batch();
    for (int i = 0; i < n; i += piece) {
      const int m = std::min(piece, n - i);
      net_.forward(
          model_.values.data(), images + static_cast<std::size_t>(i) * kImageSize * kImageSize, m,
          /*train=*/false, 0, 0, logits + static_cast<std::size_t>(i) * table_.num_classes());
    }
  }

  ModelState model_state() override { return model_; }
  OptimizerState optimizer_state() override { return optimizer_.state(); }

  void load(const ModelState& model, const OptimizerState* optimizer) override {
    OCTA_CHECK(model.values.size() == table_.num_total(), "model state has {} values, expected {}",
               model.values.size(), table_.num_total());
    model_ = model;
    if (optimizer) optimizer_.state() = *optimizer;
  }

 protected:
  // Sets the threading this backend computes with, before each step or evaluation.
  virtual void use_threads() = 0;
  // One optimiser update of model_ from grads_.
  virtual void update() { optimizer_.step(model_.values.data(), grads_.data()); }

  BackendConfig cfg_;
  ParamTable table_;
  Net net_;
  Optimizer optimizer_;
  ModelState model_;
  std::vector<float> grads_, logits_, dlogits_;
  double loss_sum_ = 0.0;
  GradientReducer* reducer_ = nullptr;  // data-parallel training: engine/dist/
  cpu::BatchNormRanks bn_ranks_;        // --sync-bn: through reducer_
};

}  // namespace octa
