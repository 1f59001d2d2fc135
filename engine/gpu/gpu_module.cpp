// engine/gpu/gpu_module.cpp: libocta_gpu.so's entry point, the table engine/core/gpu_module.hpp
// describes, and what stands behind it: the CUDA runtime's device probe, and the CUDA engine made
// as the apps ask for it (train_gpu's --conv check and choice first).
#include "engine/core/gpu_module.hpp"

#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/cuda/check.hpp"
#include "engine/gpu/conv_select.hpp"
#include "engine/gpu/cuda_backend.hpp"

namespace octa {
namespace {

DeviceProbe probe_runtime() {
  DeviceProbe p;
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    p.reason = fmt::format("no usable CUDA device ({}: {})", cudaGetErrorName(err),
                           cudaGetErrorString(err));
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return p;
  }
  if (count == 0) {
    p.reason = "no CUDA device found";
    return p;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
    p.reason = "cudaGetDeviceProperties failed for device 0";
    cudaGetLastError();
    return p;
  }
  p.available = true;
  p.device_count = count;
  p.name = prop.name;
  p.cc_major = prop.major;
  p.cc_minor = prop.minor;
  return p;
}

std::unique_ptr<TrainingBackend> make_backend(const BackendConfig& config,
                                              const GpuBackendRequest& request,
                                              nlohmann::json* conv_choice) {
  CudaBackendOptions options;
  options.device = request.device;
  OCTA_CUDA_CHECK(cudaSetDevice(request.device));  // the --conv check's engines too
  if (!request.conv.empty()) {
    ConvCheckOptions check;
    check.check = request.check;
    check.batch_size = request.batch_size;
    const ConvChoice choice = choose_conv_path(config, request.conv, check);
    if (conv_choice != nullptr) *conv_choice = to_json(choice);
    options.conv = choice.path;
  }
  return make_cuda_backend(config, options);
}

// Constant-initialised: ready before any code of the module runs.
constexpr GpuModuleTable kTable{kGpuModuleVersion, sizeof(GpuModuleTable), &probe_runtime,
                                &make_backend};

}  // namespace
}  // namespace octa

const octa::GpuModuleTable* octa_gpu_module_v1() {
  return &octa::kTable;
}
