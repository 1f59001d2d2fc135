// engine/train/fast_cpu_backend.cpp: the training step on the fast CPU backend: FastModel, the
// reference's loss, and the optimiser's update rule applied in fixed parallel pieces.
#include "engine/train/fast_cpu_backend.hpp"

#include <algorithm>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/core/philox.hpp"
#include "engine/cpu/blas.hpp"
#include "engine/cpu/ops.hpp"
#include "engine/cpu_fast/fast_model.hpp"
#include "engine/cpu_fast/parallel.hpp"

namespace octa {
namespace {

constexpr int kUpdateBlock = 1 << 15;  // parameters per task of the optimiser step

class FastCpuBackend final : public TrainingBackend {
 public:
  explicit FastCpuBackend(const BackendConfig& cfg)
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
    return fmt::format("cpu ({} threads)", cpu_fast::thread_count());
  }
  const ParamTable& table() const override { return table_; }

  void train_step(const float* images, const float* targets, int n, std::int64_t step) override {
    cpu::set_blas_threads(1);  // BLAS runs inside this backend's own threads
    net_.forward(model_.values.data(), images, n, /*train=*/true, cfg_.seed,
                 rng_stream(RngStream::kDropout, static_cast<std::uint64_t>(step)), logits_.data());
    if (!table_.batchnorm_layers().empty()) ++model_.num_batches_tracked;
    const double loss =
        cpu::bce_with_logits(dlogits_.data(), logits_.data(), targets, n, cfg_.pos_weight);
    loss_sum_ += loss * n;
    net_.backward(model_.values.data(), dlogits_.data(), grads_.data());
    update();
  }

  double take_loss_sum() override {
    const double s = loss_sum_;
    loss_sum_ = 0.0;
    return s;
  }

  // In pieces of the activations' batch: eval mode treats every image on its own.
  void predict(const float* images, int n, float* logits) override {
    cpu::set_blas_threads(1);
    const int piece = net_.capacity();
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
  // Optimizer::step, with the element-wise update rule run on fixed pieces of the parameters.
  void update() {
    OptimizerState& st = optimizer_.state();
    ++st.step;
    const OptimizerConfig& oc = optimizer_.config();
    const cpu_fast::Blocks blocks{static_cast<int>(table_.num_trainable()), kUpdateBlock};
    cpu_fast::parallel_for(blocks.count(), [&](int b) {
      const auto i = static_cast<std::size_t>(blocks.begin(b));
      const auto len = static_cast<std::size_t>(blocks.size(b));
      float* p = model_.values.data() + i;
      if (oc.kind == OptimizerKind::kAdam) {
        adam_update(p, grads_.data() + i, st.m.data() + i, st.v.data() + i, len, oc, st.step);
      } else {
        sgd_update(p, grads_.data() + i, st.m.data() + i, len, oc, st.step);
      }
    });
  }

  BackendConfig cfg_;
  ParamTable table_;
  cpu_fast::FastModel net_;
  Optimizer optimizer_;
  ModelState model_;
  std::vector<float> grads_, logits_, dlogits_;
  double loss_sum_ = 0.0;
};

}  // namespace

std::unique_ptr<TrainingBackend> make_fast_cpu_backend(const BackendConfig& config) {
  return std::make_unique<FastCpuBackend>(config);
}

}  // namespace octa
