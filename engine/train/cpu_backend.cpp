// engine/train/cpu_backend.cpp: the training step on the CPU reference path.
#include "engine/train/cpu_backend.hpp"

#include <omp.h>

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

void set_cpu_threads(int n) {
  OCTA_CHECK(n > 0, "--threads: must be positive, got {}", n);
  omp_set_num_threads(n);  // each backend sets OpenBLAS's own count from it (cpu::set_blas_threads)
}

std::unique_ptr<TrainingBackend> make_cpu_backend(const BackendConfig& config) {
  return std::make_unique<CpuBackend>(config);
}

}  // namespace octa
