// engine/core/gpu_module.cpp: finding, vetting and opening the GPU module (gpu_module.hpp): the
// driver's quick answer first, then dlopen of libocta_gpu.so from beside libocta.so, its entry
// point and its table's version; every way of failing becomes a reason a user can act on.
#include "engine/core/gpu_module.hpp"

#include <dlfcn.h>

#include <filesystem>

#include <fmt/format.h>

#include "engine/core/error.hpp"
#include "engine/train/backend.hpp"

namespace octa {
namespace {

namespace fs = std::filesystem;

struct Loaded {
  const GpuModuleTable* table = nullptr;
  std::string why;  // when table is null
};

#if defined(OCTA_HAVE_CUDA)

std::string dl_error() {
  const char* e = ::dlerror();
  return e != nullptr ? e : "no reason given";
}

// Any address inside libocta.so, for dladdr.
const char kInsideLibocta = 0;

// Where the module is: beside the libocta.so this code runs in.
fs::path module_path() {
  Dl_info info{};
  if (::dladdr(&kInsideLibocta, &info) == 0 || info.dli_fname == nullptr ||
      *info.dli_fname == '\0') {
    return {};
  }
  return fs::absolute(fs::path(info.dli_fname)).parent_path() / kGpuModuleFile;
}

// Whether the CUDA driver sees a device, asked through the driver's own library (libcuda.so.1,
// installed with the driver) so that machines without a GPU never map the module's libraries.
// Empty when it does; else why not. cudart asks the same driver again, authoritatively, once the
// module is loaded. The driver library stays loaded (cudart uses it; unloading it after cuInit is
// not safe).
std::string driver_reason() {
  void* driver = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (driver == nullptr) return fmt::format("no CUDA driver ({})", dl_error());
  // The driver API's stable C entry points; CUresult is an int-sized enum, 0 = CUDA_SUCCESS.
  using CuInit = int (*)(unsigned int);
  using CuDeviceGetCount = int (*)(int*);
  using CuGetErrorName = int (*)(int, const char**);
  const auto cu_init = reinterpret_cast<CuInit>(::dlsym(driver, "cuInit"));
  const auto cu_count = reinterpret_cast<CuDeviceGetCount>(::dlsym(driver, "cuDeviceGetCount"));
  const auto cu_name = reinterpret_cast<CuGetErrorName>(::dlsym(driver, "cuGetErrorName"));
  if (cu_init == nullptr || cu_count == nullptr) {
    return "the CUDA driver's libcuda.so.1 lacks cuInit or cuDeviceGetCount";
  }
  const auto name = [&](int status) {
    const char* text = nullptr;
    if (cu_name != nullptr && cu_name(status, &text) == 0 && text != nullptr)
      return std::string(text);
    return fmt::format("CUresult {}", status);
  };
  constexpr int kNoDevice = 100;  // CUDA_ERROR_NO_DEVICE
  const int init = cu_init(0);
  if (init == kNoDevice) return "no CUDA device found (the driver sees none)";
  if (init != 0) return fmt::format("the CUDA driver failed to start (cuInit: {})", name(init));
  int count = 0;
  const int counted = cu_count(&count);
  if (counted != 0)
    return fmt::format("no usable CUDA device (cuDeviceGetCount: {})", name(counted));
  if (count == 0) return "no CUDA device found (the driver sees none)";
  return {};
}

Loaded load() {
  Loaded r;
  // Already there: an executable linked with the module (octa_selftest, the GPU tests), or a
  // module that asks (engine/selfcheck's report probes the device through here).
  void* handle = ::dlopen(kGpuModuleFile, RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) {
    const fs::path path = module_path();
    if (path.empty()) {
      r.why = "cannot tell where libocta.so is (dladdr failed), so not where octa's GPU module is";
      return r;
    }
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      r.why = fmt::format(
          "octa's GPU module {} is missing (a CUDA build writes it beside libocta.so: build the "
          "target octa_gpu, or copy it there)",
          path.string());
      return r;
    }
    r.why = driver_reason();
    if (!r.why.empty()) return r;
    handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      r.why = fmt::format("octa's GPU module {} cannot be loaded: {}", path.string(), dl_error());
      return r;
    }
  }
  using Entry = const GpuModuleTable* (*)();
  const auto entry = reinterpret_cast<Entry>(::dlsym(handle, kGpuModuleEntry));
  if (entry == nullptr) {
    r.why = fmt::format(
        "octa's GPU module has no entry point {} ({}): it is from another build "
        "of octa; rebuild",
        kGpuModuleEntry, dl_error());
    return r;
  }
  const GpuModuleTable* table = entry();
  if (table == nullptr || table->version != kGpuModuleVersion ||
      table->size != sizeof(GpuModuleTable) || table->probe == nullptr ||
      table->make_backend == nullptr) {
    r.why = fmt::format(
        "octa's GPU module is from another build of octa (interface version {}, {} bytes; this "
        "libocta.so expects {}, {} bytes): rebuild",
        table != nullptr ? table->version : 0, table != nullptr ? table->size : 0,
        kGpuModuleVersion, sizeof(GpuModuleTable));
    return r;
  }
  r.table = table;
  return r;
}

#else

Loaded load() {
  Loaded r;
  r.why = "octa was built without CUDA (no CUDA toolkit at configure time)";
  return r;
}

#endif

}  // namespace

const GpuModuleTable* gpu_module(std::string* why) {
  static const Loaded loaded = load();
  if (loaded.table == nullptr && why != nullptr) *why = loaded.why;
  return loaded.table;
}

std::unique_ptr<TrainingBackend> make_gpu_backend(const BackendConfig& config,
                                                  const GpuBackendRequest& request,
                                                  nlohmann::json* conv_choice) {
  std::string why;
  const GpuModuleTable* module = gpu_module(&why);
  OCTA_CHECK(module != nullptr, "the CUDA engine cannot be used: {}", why);
  return module->make_backend(config, request, conv_choice);
}

}  // namespace octa
