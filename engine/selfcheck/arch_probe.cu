// engine/selfcheck/arch_probe.cu: an empty kernel compiled like every kernel of octa (the same
// CMAKE_CUDA_ARCHITECTURES, the same fat binary), whose attributes say which of this binary's code
// the device runs (system_info.cpp): cudaFuncGetAttributes gives the machine code's and the PTX's
// architecture, or fails with "no kernel image" when the binary has nothing the device can run.
#include <cuda_runtime_api.h>

namespace octa::selfcheck {

namespace {
__global__ void arch_probe_kernel() {}
}  // namespace

cudaError_t probe_kernel_attributes(cudaFuncAttributes* attributes) {
  return cudaFuncGetAttributes(attributes, arch_probe_kernel);
}

}  // namespace octa::selfcheck
