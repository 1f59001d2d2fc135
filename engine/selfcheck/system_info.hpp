// engine/selfcheck/system_info.hpp: what octa_selftest reports before it runs a case: the device
// (name, compute capability, memory), the driver and the CUDA runtime, cuDNN's and cuBLAS's
// versions (compiled against and loaded), and the GPU architectures this binary carries (machine
// code, SASS, and PTX, from the CMAKE_CUDA_ARCHITECTURES it was configured with) against the
// device's, with the runtime's own answer (an empty kernel's attributes) and, when the binary has
// no code the device can run, how to rebuild.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace octa::selfcheck {

// One entry of CMAKE_CUDA_ARCHITECTURES: "90" (sm_90 SASS and compute_90 PTX), "90-real" (SASS
// only), "90-virtual" (PTX only), "90a" (architecture-specific: that exact device only).
struct ArchEntry {
  int arch = 0;        // 90
  std::string suffix;  // "", "a" or "f"
  bool sass = false, ptx = false;
};
// Entries it cannot read ("native", "all", "all-major") are left out; `understood` says whether
// every entry was read.
std::vector<ArchEntry> parse_cuda_architectures(const std::string& configured, bool* understood);

// Which code of `arches` a device of compute capability major.minor runs.
struct CodeForDevice {
  enum class Kind { kSass, kPtxJit, kNone, kUnknown } kind = Kind::kUnknown;
  int arch = 0;      // the entry used (kSass, kPtxJit)
  std::string text;  // one plain sentence, with the rebuild command where there is no SASS
};
CodeForDevice code_for_device(const std::vector<ArchEntry>& arches, bool understood, int major,
                              int minor);

struct SystemInfo {
  // The build, known without a device.
  std::string cuda_architectures;  // as configured
  std::vector<ArchEntry> arches;
  bool arches_understood = false;
  int runtime_version = 0;  // the CUDA runtime octa links (statically): 13000 = 13.0
  int cudnn_compiled = 0, cudnn_loaded = 0;    // 91900 = 9.19.0
  int cublas_compiled = 0, cublas_loaded = 0;  // 130100 = 13.1.0
  int driver_version = 0;                      // 0: no driver
  // The device.
  bool device_available = false;
  std::string device_reason;  // why not
  int device = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0, sms = 0;
  std::size_t memory_total = 0, memory_free = 0;
  CodeForDevice code;                       // from the configured architectures
  bool probe_ran = false;                   // the empty kernel's attributes were read
  std::string probe_error;                  // or why not (e.g. cudaErrorNoKernelImageForDevice)
  int binary_version = 0, ptx_version = 0;  // of the code the runtime picked
  std::vector<std::string> warnings;        // version mismatches and the like

  // Whether octa's kernels can run on the device at all.
  bool device_runs_code() const { return device_available && probe_ran; }
};

SystemInfo system_info(int device);

// The report's lines, for the terminal.
std::vector<std::string> describe(const SystemInfo& info);
nlohmann::json to_json(const SystemInfo& info);

// "13.0" from 13000; "9.19.0" from 91900 (cuDNN 9 and cuBLAS 13 use major*10000 + minor*100 +
// patch).
std::string cuda_version_string(int v);
std::string library_version_string(int v);

}  // namespace octa::selfcheck
