// engine/selfcheck/cuda_case_device.cpp: the CaseDevice of a real GPU.
#include "engine/selfcheck/cuda_case_device.hpp"

#include <fmt/format.h>

#include "engine/core/error.hpp"
#include "engine/cuda/check.hpp"

namespace octa::selfcheck {

namespace {

constexpr std::size_t kCublasWorkspaceBytes = 32u << 20;  // as the training engine's

int selected(int device) {
  OCTA_CUDA_CHECK(cudaSetDevice(device));
  return device;
}

std::string device_name(int device) {
  cudaDeviceProp prop{};
  OCTA_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  return fmt::format("cuda:{} {}", device, prop.name);
}

}  // namespace

CudaCaseDevice::CudaCaseDevice(int device) : name_(device_name(selected(device))) {}

void* CudaCaseDevice::allocate(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  const cudaError_t st = cudaMalloc(&p, bytes);
  if (st != cudaSuccess) cuda::throw_out_of_memory(bytes, "a kernel case's buffer", st);
  poison(p, bytes);
  return p;
}

void CudaCaseDevice::release(void* p) noexcept {
  OCTA_CUDA_CHECK_NOTHROW(cudaFree(p));
}

void CudaCaseDevice::upload(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  OCTA_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  OCTA_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaCaseDevice::download(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  OCTA_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  OCTA_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaCaseDevice::poison(void* p, std::size_t bytes) {
  if (bytes == 0) return;
  OCTA_CUDA_CHECK(cudaMemsetAsync(p, 0xFF, bytes, stream_));
}

void CudaCaseDevice::timer_start() {
  OCTA_CUDA_CHECK(cudaEventRecord(start_, stream_));
}

double CudaCaseDevice::timer_stop_ms() {
  OCTA_CUDA_CHECK(cudaEventRecord(stop_, stream_));
  OCTA_CUDA_CHECK(cudaEventSynchronize(stop_));
  float ms = 0.0f;
  OCTA_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
  return ms;
}

cudnnHandle_t CudaCaseDevice::cudnn() {
  if (!cudnn_) {
    cudnn_.emplace();
    OCTA_CUDNN_CHECK(cudnnSetStream(*cudnn_, stream_));
  }
  return *cudnn_;
}

cublasHandle_t CudaCaseDevice::cublas() {
  if (!cublas_) {
    cublas_.emplace();
    // Its workspace up front, as in the training engine, so cuBLAS never allocates mid-case.
    cublas_workspace_ = cuda::DeviceBuffer<std::uint8_t>(kCublasWorkspaceBytes, "cuBLAS workspace");
    OCTA_CUBLAS_CHECK(
        cublasSetWorkspace(*cublas_, cublas_workspace_.data(), cublas_workspace_.size()));
  }
  return *cublas_;
}

CudaCaseDevice& cuda_device_of(CaseDevice& dev) {
  auto* cuda = dynamic_cast<CudaCaseDevice*>(&dev);
  OCTA_CHECK(cuda != nullptr,
             "this case calls cuDNN or cuBLAS, which only a GPU runs; runner '{}' cannot",
             dev.name());
  return *cuda;
}

}  // namespace octa::selfcheck
