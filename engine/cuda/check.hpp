// engine/cuda/check.hpp: checked calls into CUDA, cuDNN and cuBLAS.
//
//   OCTA_CUDA_CHECK(cudaMemcpyAsync(...));   // throws octa::CudaError on failure
//   OCTA_CUDNN_CHECK(cudnnConvolutionForward(...));
//   OCTA_CUBLAS_CHECK(cublasSgemm(...));
//   my_kernel<<<grid, block, 0, stream>>>(...); OCTA_CUDA_CHECK_LAUNCH();
//
// Each error message carries the failing expression, file:line, the library's status name and its
// own description (for cuDNN also cudnnGetLastErrorString's detail). The _NOTHROW variants log
// instead of throwing, for destructors.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "engine/core/error.hpp"

namespace octa {

class CudaError : public Error {
 public:
  using Error::Error;
};

namespace cuda_detail {
[[noreturn]] void throw_cuda(cudaError_t status, const char* expr, const char* file, int line);
[[noreturn]] void throw_cudnn(cudnnStatus_t status, const char* expr, const char* file, int line);
[[noreturn]] void throw_cublas(cublasStatus_t status, const char* expr, const char* file, int line);
void log_cuda(cudaError_t status, const char* expr, const char* file, int line) noexcept;
}  // namespace cuda_detail

}  // namespace octa

#define OCTA_CUDA_CHECK(expr)                                                              \
  do {                                                                                     \
    const cudaError_t octa_status_ = (expr);                                               \
    if (octa_status_ != cudaSuccess)                                                       \
      ::octa::cuda_detail::throw_cuda(octa_status_, #expr, __FILE__, __LINE__);            \
  } while (0)

#define OCTA_CUDA_CHECK_NOTHROW(expr)                                                      \
  do {                                                                                     \
    const cudaError_t octa_status_ = (expr);                                               \
    if (octa_status_ != cudaSuccess)                                                       \
      ::octa::cuda_detail::log_cuda(octa_status_, #expr, __FILE__, __LINE__);              \
  } while (0)

// After every kernel launch: catches bad launch configurations at the launch site.
#define OCTA_CUDA_CHECK_LAUNCH() OCTA_CUDA_CHECK(cudaGetLastError())

#define OCTA_CUDNN_CHECK(expr)                                                             \
  do {                                                                                     \
    const cudnnStatus_t octa_status_ = (expr);                                             \
    if (octa_status_ != CUDNN_STATUS_SUCCESS)                                              \
      ::octa::cuda_detail::throw_cudnn(octa_status_, #expr, __FILE__, __LINE__);           \
  } while (0)

#define OCTA_CUBLAS_CHECK(expr)                                                            \
  do {                                                                                     \
    const cublasStatus_t octa_status_ = (expr);                                            \
    if (octa_status_ != CUBLAS_STATUS_SUCCESS)                                             \
      ::octa::cuda_detail::throw_cublas(octa_status_, #expr, __FILE__, __LINE__);          \
  } while (0)
