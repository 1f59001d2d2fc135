// engine/core/device_probe.hpp: is there a usable CUDA device? Answered the same way whether or
// not octa was built with CUDA, so apps can decide between the GPU and CPU paths and say why.
#pragma once

#include <string>

namespace octa {

struct DeviceProbe {
  bool available = false;  // a CUDA device can be used
  int device_count = 0;
  std::string name;        // first device's name, e.g. "NVIDIA H100 80GB HBM3"
  int cc_major = 0, cc_minor = 0;
  std::string reason;      // why not available: no toolkit at build time, no driver, no device
};

DeviceProbe probe_cuda_device();

}  // namespace octa
