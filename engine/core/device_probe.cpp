// engine/core/device_probe.cpp: CUDA device discovery: the GPU module's answer (the CUDA runtime's,
// engine/gpu/gpu_module.cpp), or why there is no module to ask (gpu_module.hpp).
#include "engine/core/device_probe.hpp"

#include "engine/core/gpu_module.hpp"

namespace octa {

DeviceProbe probe_cuda_device() {
  std::string why;
  const GpuModuleTable* module = gpu_module(&why);
  if (module == nullptr) {
    DeviceProbe p;
    p.reason = why;
    return p;
  }
  return module->probe();
}

}  // namespace octa
