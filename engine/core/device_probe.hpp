// engine/core/device_probe.hpp: is there a usable CUDA device? Answered the same way whether or
// not octa was built with CUDA, so apps can decide between the GPU and CPU paths and say why.
// Asking loads the GPU module where a device may be there (gpu_module.hpp): apps ask only when the
// user has not chosen the CPU.
#pragma once

#include <string>

namespace octa {

struct DeviceProbe {
  bool available = false;  // a CUDA device can be used
  int device_count = 0;
  std::string name;  // first device's name, e.g. "NVIDIA H100 80GB HBM3"
  int cc_major = 0, cc_minor = 0;
  std::string reason;  // why not: no toolkit at build time, no GPU module, no driver, no device
};

DeviceProbe probe_cuda_device();

}  // namespace octa
