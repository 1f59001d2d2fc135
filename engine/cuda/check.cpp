// engine/cuda/check.cpp: builds the error messages of the OCTA_*_CHECK macros.
#include "engine/cuda/check.hpp"

#include <array>
#include <string>

#include "engine/cuda/raii.hpp"

#include <spdlog/spdlog.h>

namespace octa::cuda_detail {

void throw_cuda(cudaError_t status, const char* expr, const char* file, int line) {
  throw CudaError(fmt::format("CUDA error {} ({}) in {} at {}:{}", cudaGetErrorName(status),
                              cudaGetErrorString(status), expr, file, line));
}

void throw_cudnn(cudnnStatus_t status, const char* expr, const char* file, int line) {
  std::array<char, 1024> detail{};
  cudnnGetLastErrorString(detail.data(), detail.size());
  throw CudaError(fmt::format("cuDNN error {} in {} at {}:{}{}{}", cudnnGetErrorString(status),
                              expr, file, line, detail[0] != '\0' ? ": " : "", detail.data()));
}

void throw_cublas(cublasStatus_t status, const char* expr, const char* file, int line) {
  throw CudaError(fmt::format("cuBLAS error {} ({}) in {} at {}:{}", cublasGetStatusName(status),
                              cublasGetStatusString(status), expr, file, line));
}

void log_cuda(cudaError_t status, const char* expr, const char* file, int line) noexcept {
  try {
    spdlog::error("CUDA error {} ({}) in {} at {}:{}", cudaGetErrorName(status),
                  cudaGetErrorString(status), expr, file, line);
  } catch (...) {
    // Logging must never throw out of a destructor.
  }
}

}  // namespace octa::cuda_detail

namespace octa::cuda {

void throw_out_of_memory(std::size_t bytes, const char* what, cudaError_t status) {
  cudaGetLastError();  // an allocation failure is not sticky; clear it before querying
  std::size_t free_bytes = 0, total_bytes = 0;
  const bool have_info = cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess;
  constexpr double kMiB = 1024.0 * 1024.0;
  throw CudaError(fmt::format(
      "cannot allocate {} ({:.1f} MiB) on the GPU: {} ({}){}", what,
      static_cast<double>(bytes) / kMiB, cudaGetErrorName(status), cudaGetErrorString(status),
      have_info ? fmt::format("; the device has {:.1f} MiB free of {:.1f} MiB",
                              static_cast<double>(free_bytes) / kMiB,
                              static_cast<double>(total_bytes) / kMiB)
                : std::string()));
}

}  // namespace octa::cuda
