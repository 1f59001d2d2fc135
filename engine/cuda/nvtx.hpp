// engine/cuda/nvtx.hpp: a scoped NVTX range, so Nsight Systems and Nsight Compute show the phases
// of a training step and each launcher by name.
#pragma once

#include <nvtx3/nvToolsExt.h>

namespace octa::cuda {

class NvtxRange {
 public:
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace octa::cuda
