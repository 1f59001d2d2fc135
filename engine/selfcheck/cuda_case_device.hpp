// engine/selfcheck/cuda_case_device.hpp: the CaseDevice of a real GPU (case_device.hpp), used by
// every runner of the case table that has one: octa_selftest, the [gpu] tests and train_gpu's
// --conv auto check. Device memory from cudaMalloc, poisoned with cudaMemsetAsync; one
// non-blocking stream for every copy and launch (each copy waits for the stream, so the host side
// may go away after it); CUDA events around the launches under test; cuDNN and cuBLAS handles,
// made on first use, for the cases that need them (library_cases.cpp).
#pragma once

#include <optional>
#include <string>

#include "engine/cuda/raii.hpp"
#include "engine/selfcheck/case_device.hpp"

namespace octa::selfcheck {

class CudaCaseDevice final : public CaseDevice {
 public:
  // Selects the device (cudaSetDevice) and makes the stream and events: throws CudaError when
  // there is no usable device.
  explicit CudaCaseDevice(int device = 0);

  std::string name() const override { return name_; }
  void* allocate(std::size_t bytes) override;
  void release(void* p) noexcept override;
  void upload(void* dst, const void* src, std::size_t bytes) override;
  void download(void* dst, const void* src, std::size_t bytes) override;
  void poison(void* p, std::size_t bytes) override;
  cudaStream_t stream() const override { return stream_.get(); }
  void timer_start() override;
  double timer_stop_ms() override;

  cudnnHandle_t cudnn();
  cublasHandle_t cublas();

 private:
  std::string name_;
  cuda::Stream stream_;
  cuda::Event start_{true}, stop_{true};
  std::optional<cuda::CudnnHandle> cudnn_;
  cuda::DeviceBuffer<std::uint8_t> cublas_workspace_;  // outlives the handle that uses it
  std::optional<cuda::CublasHandle> cublas_;
};

// The GPU behind a case's device, for the cases that call cuDNN or cuBLAS; throws octa::Error
// naming the runner when it is not one (the emulator never runs those cases).
CudaCaseDevice& cuda_device_of(CaseDevice& dev);

}  // namespace octa::selfcheck
