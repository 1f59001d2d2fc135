// engine/core/gpu_module.hpp: the CUDA engine as a module, opened only when a GPU is about to be
// used. A CUDA build puts the GPU side (engine/gpu, engine/cuda, engine/selfcheck, kernels/, with
// cudart, cuBLAS and cuDNN) in libocta_gpu.so, beside libocta.so; train_gpu, predict and
// octa_report reach it only through this interface. So a run on the CPU path never maps cuBLAS
// and cuDNN (libcublasLt alone makes about 200 MB resident on loading), and a CUDA-built binary
// still runs, on the CPU path and saying why, on a machine without CUDA's libraries.
//
// The module is loaded (dlopen) by the first call of gpu_module(), which probe_cuda_device()
// (device_probe.hpp) and make_gpu_backend() make; before mapping the module's libraries it asks the
// CUDA driver (libcuda.so.1, when there is one) whether it sees any device, so that `--device
// auto` without a GPU costs no more than `--device cpu`. Executables that link libocta_gpu.so
// themselves (octa_selftest, the GPU tests and benchmarks) use that copy: it is never loaded twice.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "engine/core/device_probe.hpp"

namespace octa {

struct BackendConfig;   // engine/train/cpu_backend.hpp
class TrainingBackend;  // engine/train/backend.hpp

// How an app wants its GPU backend made.
struct GpuBackendRequest {
  // train_gpu's --conv: "auto" or a path's name (fused, fused-fp32, cudnn), checked on the GPU
  // before training (engine/gpu/conv_select.hpp: the choice, and errors naming failing cases).
  // Empty (predict, octa_report): the default path, unchecked.
  std::string conv;
  bool check = true;    // false: --no-check
  int batch_size = 64;  // the training step that --conv auto times
  int device = 0;       // the CUDA device (data-parallel ranks: one each)
};

// What libocta_gpu.so's one entry point returns. Both sides are compiled from this declaration in
// one build; version and size refuse a module from another build. Change kGpuModuleVersion (and
// the entry point's name with it) whenever the table changes.
inline constexpr std::uint32_t kGpuModuleVersion = 1;
inline constexpr char kGpuModuleFile[] = "libocta_gpu.so";
inline constexpr char kGpuModuleEntry[] = "octa_gpu_module_v1";

struct GpuModuleTable {
  std::uint32_t version = 0;  // kGpuModuleVersion of the module's build
  std::uint32_t size = 0;     // sizeof(GpuModuleTable) there
  // The CUDA runtime's answer to "is there a usable device?".
  DeviceProbe (*probe)() = nullptr;
  // The CUDA engine for `config`; with request.conv set, the --conv check and choice first, and
  // the choice as JSON (the metrics' "conv") into *conv_choice when given. Throws octa::Error.
  std::unique_ptr<TrainingBackend> (*make_backend)(const BackendConfig& config,
                                                   const GpuBackendRequest& request,
                                                   nlohmann::json* conv_choice) = nullptr;
};

// The GPU module, loaded on the first call (thread-safe; the answer is kept for the process).
// nullptr where there is none to use, with the reason in *why: a build without CUDA, no
// libocta_gpu.so beside libocta.so, no CUDA driver or no device the driver sees, or the module
// failing to load (dlerror's text: e.g. a CUDA library it needs is not installed).
const GpuModuleTable* gpu_module(std::string* why);

// The CUDA engine through the module; throws octa::Error with gpu_module's reason when it cannot
// be had. Call it after probe_cuda_device() says a device is available.
std::unique_ptr<TrainingBackend> make_gpu_backend(const BackendConfig& config,
                                                  const GpuBackendRequest& request,
                                                  nlohmann::json* conv_choice = nullptr);

}  // namespace octa

// libocta_gpu.so's entry point (engine/gpu/gpu_module.cpp), found by name: kGpuModuleEntry.
extern "C" const octa::GpuModuleTable* octa_gpu_module_v1();
