// engine/train/fast_cpu_backend.cpp: the training step on the fast CPU backend: FastModel, the
// reference's loss, and the optimiser's update rule applied in fixed parallel pieces.
#include "engine/train/fast_cpu_backend.hpp"

#include "engine/cpu/blas.hpp"
#include "engine/cpu_fast/fast_model.hpp"
#include "engine/cpu_fast/parallel.hpp"
#include "engine/train/cpu_backend_base.hpp"

namespace octa {
namespace {

constexpr int kUpdateBlock = 1 << 15;  // parameters per task of the optimiser step

class FastCpuBackend final : public CpuBackendBase<cpu_fast::FastModel> {
 public:
  using CpuBackendBase::CpuBackendBase;

  std::string description() const override {
    return fmt::format("cpu ({} threads)", cpu_fast::thread_count());
  }

 private:
  // BLAS runs single-threaded inside this backend's own threads.
  void use_threads() override { cpu::set_blas_threads(1); }

  // Optimizer::step, with the element-wise update rule run on fixed pieces of the parameters.
  void update() override {
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
};

}  // namespace

std::unique_ptr<TrainingBackend> make_fast_cpu_backend(const BackendConfig& config) {
  return std::make_unique<FastCpuBackend>(config);
}

}  // namespace octa
