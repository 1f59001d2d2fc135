// engine/core/device_probe.cpp: CUDA device discovery (or, in a CPU-only build, the reason why not).
#include "engine/core/device_probe.hpp"

#include <fmt/format.h>

#if defined(OCTA_HAVE_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace octa {

DeviceProbe probe_cuda_device() {
  DeviceProbe p;
#if defined(OCTA_HAVE_CUDA)
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
#else
  p.reason = "octa was built without CUDA (no CUDA toolkit at configure time)";
#endif
  return p;
}

}  // namespace octa
