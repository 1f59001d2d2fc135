// engine/train/cpu_backend.cpp: the training step on the CPU reference path.
#include "engine/train/cpu_backend.hpp"

#include <algorithm>
#include <vector>

#include <omp.h>

#include "engine/core/error.hpp"
#include "engine/core/philox.hpp"
#include "engine/cpu/blas.hpp"
#include "engine/cpu/ops.hpp"
#include "engine/model/cpu_model.hpp"

namespace octa {
namespace {

class CpuBackend final : public TrainingBackend {
 public:
  explicit CpuBackend(const BackendConfig& cfg)
      : cfg_(cfg),
        table_(ParamTable::for_arch(cfg.arch)),
        net_(table_, cfg.activation_batch()),
        optimizer_(cfg.optimizer, table_.num_trainable()),
        grads_(table_.num_trainable()),
        logits_(static_cast<std::size_t>(cfg.activation_batch())),
        dlogits_(static_cast<std::size_t>(cfg.activation_batch())) {
    model_.values.assign(table_.num_total(), 0.0f);
    init_parameters(table_, model_.values.data(), cfg.seed);
  }

  std::string description() const override {
    return fmt::format("cpu reference ({} OpenBLAS threads)", omp_get_max_threads());
  }
  const ParamTable& table() const override { return table_; }

  void train_step(const float* images, const float* targets, int n, std::int64_t step) override {
    cpu::set_blas_threads(omp_get_max_threads());  // OpenBLAS's threads are the only parallelism
    net_.forward(model_.values.data(), images, n, /*train=*/true, cfg_.seed,
                 rng_stream(RngStream::kDropout, static_cast<std::uint64_t>(step)), logits_.data());
    if (!table_.batchnorm_layers().empty()) ++model_.num_batches_tracked;
    const double loss =
        cpu::bce_with_logits(dlogits_.data(), logits_.data(), targets, n, cfg_.pos_weight);
    loss_sum_ += loss * n;
    net_.backward(model_.values.data(), dlogits_.data(), grads_.data());
    optimizer_.step(model_.values.data(), grads_.data());
  }

  double take_loss_sum() override {
    const double s = loss_sum_;
    loss_sum_ = 0.0;
    return s;
  }

  // In pieces of the activations' batch: eval mode treats every image on its own.
  void predict(const float* images, int n, float* logits) override {
    cpu::set_blas_threads(omp_get_max_threads());
    const int piece = net_.max_batch();
    for (int i = 0; i < n; i += piece) {
      const int m = std::min(piece, n - i);
      net_.forward(model_.values.data(),
                   images + static_cast<std::size_t>(i) * kImageSize * kImageSize, m,
                   /*train=*/false, 0, 0, logits + i);
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

 private:
  BackendConfig cfg_;
  ParamTable table_;
  CpuModel<float> net_;
  Optimizer optimizer_;
  ModelState model_;
  std::vector<float> grads_, logits_, dlogits_;
  double loss_sum_ = 0.0;
};

}  // namespace

void set_cpu_threads(int n) {
  OCTA_CHECK(n > 0, "--threads: must be positive, got {}", n);
  omp_set_num_threads(n);  // each backend sets OpenBLAS's own count from it (cpu::set_blas_threads)
}

std::unique_ptr<TrainingBackend> make_cpu_backend(const BackendConfig& config) {
  return std::make_unique<CpuBackend>(config);
}

}  // namespace octa
