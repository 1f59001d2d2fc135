// engine/train/cpu_backend.cpp: the training step on the CPU reference path.
#include "engine/train/cpu_backend.hpp"

#include <omp.h>

#include <cmath>

#include "engine/cpu/blas.hpp"
#include "engine/model/cpu_model.hpp"
#include "engine/train/cpu_backend_base.hpp"

namespace octa {
namespace {

class CpuBackend final : public CpuBackendBase<CpuModel<float>> {
 public:
  using CpuBackendBase::CpuBackendBase;

  std::string description() const override {
    return fmt::format("cpu reference ({} OpenBLAS threads)", omp_get_max_threads());
  }

 private:
  // OpenBLAS's threads are the reference's only parallelism.
  void use_threads() override { cpu::set_blas_threads(omp_get_max_threads()); }
};

}  // namespace

void BackendConfig::validate_loss() const {
  OCTA_CHECK(num_classes >= 1 && num_classes <= kMaxClasses,
             "{} classes: the models have 1 output (binary) or 2..{} (one per class)", num_classes,
             kMaxClasses);
  OCTA_CHECK(std::isfinite(label_smoothing) && label_smoothing >= 0.0f && label_smoothing <= 1.0f,
             "--label-smoothing: must be in [0, 1], got {}", label_smoothing);
  OCTA_CHECK(num_classes > 1 || (class_weights.empty() && label_smoothing == 0.0f),
             "--class-weights and --label-smoothing belong to the multi-class task (--task "
             "multiclass); the binary task has --pos-weight");
  OCTA_CHECK(class_weights.empty() || class_weights.size() == static_cast<std::size_t>(num_classes),
             "--class-weights: {} weights for {} classes (give one per class, in class order)",
             class_weights.size(), num_classes);
  for (std::size_t c = 0; c < class_weights.size(); ++c) {
    OCTA_CHECK(std::isfinite(class_weights[c]) && class_weights[c] >= 0.0f,
               "--class-weights: the weight of class {} is {} (each must be finite and >= 0)", c,
               class_weights[c]);
  }
}

void set_cpu_threads(int n) {
  OCTA_CHECK(n > 0, "--threads: must be positive, got {}", n);
  omp_set_num_threads(n);  // each backend sets OpenBLAS's own count from it (cpu::set_blas_threads)
}

std::unique_ptr<TrainingBackend> make_cpu_backend(const BackendConfig& config) {
  return std::make_unique<CpuBackend>(config);
}

}  // namespace octa
