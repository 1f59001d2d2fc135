// engine/selfcheck/system_info.cpp: the device, driver, library and architecture report of
// octa_selftest (system_info.hpp).
#include "engine/selfcheck/system_info.hpp"

#include <algorithm>
#include <regex>
#include <sstream>

#include <cublas_api.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <fmt/format.h>

#include "engine/core/device_probe.hpp"

#ifndef OCTA_CUDA_ARCHITECTURES
#error "OCTA_CUDA_ARCHITECTURES (CMAKE_CUDA_ARCHITECTURES) must be defined by the build"
#endif

namespace octa::selfcheck {

cudaError_t probe_kernel_attributes(cudaFuncAttributes* attributes);  // arch_probe.cu

namespace {

std::string error_text(cudaError_t st) {
  return fmt::format("{}: {}", cudaGetErrorName(st), cudaGetErrorString(st));
}

std::string arches_text(const std::vector<ArchEntry>& arches) {
  std::string s;
  for (const ArchEntry& a : arches) {
    if (a.sass) s += fmt::format("{}sm_{}{} SASS", s.empty() ? "" : ", ", a.arch, a.suffix);
    if (a.ptx) s += fmt::format("{}compute_{}{} PTX", s.empty() ? "" : ", ", a.arch, a.suffix);
  }
  return s.empty() ? "no architecture it can name" : s;
}

// Whether code built for `a` runs on a device of architecture `dev` (major * 10 + minor): machine
// code within one major version from an equal or lower minor; PTX on anything at least as new
// (the driver compiles it); "a" only on that exact architecture, "f" within its family.
bool runs(const ArchEntry& a, bool as_ptx, int dev) {
  if (a.suffix == "a") return a.arch == dev;
  if (a.suffix == "f" || !as_ptx) return a.arch / 10 == dev / 10 && a.arch % 10 <= dev % 10;
  return a.arch <= dev;
}

}  // namespace

std::vector<ArchEntry> parse_cuda_architectures(const std::string& configured, bool* understood) {
  std::vector<ArchEntry> arches;
  bool all = true;
  const std::regex entry(R"(\s*([0-9]+)([af]?)(-real|-virtual)?\s*)");
  std::stringstream in(configured);
  std::string item;
  while (std::getline(in, item, ';')) {
    std::smatch m;
    if (!std::regex_match(item, m, entry)) {
      all = false;
      continue;
    }
    ArchEntry a;
    a.arch = std::stoi(m[1].str());
    a.suffix = m[2].str();
    a.sass = m[3].str() != "-virtual";
    a.ptx = m[3].str() != "-real";
    arches.push_back(a);
  }
  if (understood != nullptr) *understood = all && !arches.empty();
  return arches;
}

CodeForDevice code_for_device(const std::vector<ArchEntry>& arches, bool understood, int major,
                              int minor) {
  const int dev = major * 10 + minor;
  CodeForDevice c;
  for (const bool ptx : {false, true}) {
    for (const ArchEntry& a : arches) {
      if ((ptx ? a.ptx : a.sass) && runs(a, ptx, dev) && a.arch > c.arch) c.arch = a.arch;
    }
    if (c.arch != 0) {
      c.kind = ptx ? CodeForDevice::Kind::kPtxJit : CodeForDevice::Kind::kSass;
      break;
    }
  }
  const std::string rebuild =
      fmt::format("cmake -S . -B build -DCMAKE_CUDA_ARCHITECTURES={} && cmake --build build", dev);
  switch (c.kind) {
    case CodeForDevice::Kind::kSass:
      c.text = fmt::format("runs the sm_{} machine code this binary carries", c.arch);
      break;
    case CodeForDevice::Kind::kPtxJit:
      c.text = fmt::format(
          "no machine code for sm_{}: the driver compiles the compute_{} PTX when the kernels "
          "are first loaded (a slower start, code tuned for an older GPU); for native code, "
          "rebuild: {}",
          dev, c.arch, rebuild);
      break;
    default:
      if (!understood) {
        c.kind = CodeForDevice::Kind::kUnknown;
        c.text =
            "the configured architectures cannot be read here: the runtime's answer below "
            "says whether the device runs this binary";
      } else {
        c.kind = CodeForDevice::Kind::kNone;
        c.text = fmt::format(
            "NO CODE FOR THIS DEVICE: the binary carries {} but the device is sm_{} (compute "
            "capability {}.{}), so every kernel launch would fail ('no kernel image is available "
            "for execution on the device', the 'invalid device function' of older CUDA). Rebuild "
            "for it: {}",
            arches_text(arches), dev, major, minor, rebuild);
      }
  }
  return c;
}

std::string cuda_version_string(int v) {
  if (v <= 0) return "none";
  return fmt::format("{}.{}", v / 1000, (v % 1000) / 10);
}

std::string library_version_string(int v) {
  if (v <= 0) return "unknown";
  return fmt::format("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100);
}

SystemInfo system_info(int device) {
  SystemInfo s;
  s.cuda_architectures = OCTA_CUDA_ARCHITECTURES;
  s.arches = parse_cuda_architectures(s.cuda_architectures, &s.arches_understood);
  if (cudaRuntimeGetVersion(&s.runtime_version) != cudaSuccess) s.runtime_version = 0;
  if (cudaDriverGetVersion(&s.driver_version) != cudaSuccess) s.driver_version = 0;
  s.cudnn_compiled = CUDNN_VERSION;
  s.cudnn_loaded = static_cast<int>(cudnnGetVersion());
  s.cublas_compiled = CUBLAS_VERSION;
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS) {
    s.cublas_loaded = major * 10000 + minor * 100 + patch;
  }
  if (s.cudnn_loaded / 10000 != s.cudnn_compiled / 10000) {
    s.warnings.push_back(fmt::format(
        "cuDNN {} is loaded but octa was compiled against {}: a different major version; "
        "rebuild, or put the matching libcudnn first on the library path",
        library_version_string(s.cudnn_loaded), library_version_string(s.cudnn_compiled)));
  }
  if (s.cublas_loaded / 10000 != s.cublas_compiled / 10000) {
    s.warnings.push_back(fmt::format(
        "cuBLAS {} is loaded but octa was compiled against {}: a different major version",
        library_version_string(s.cublas_loaded), library_version_string(s.cublas_compiled)));
  }

  s.device = device;
  const DeviceProbe probe = probe_cuda_device();
  if (!probe.available) {
    s.device_reason = probe.reason;
    return s;
  }
  if (device < 0 || device >= probe.device_count) {
    s.device_reason =
        fmt::format("--device {}: this machine has {} CUDA device(s)", device, probe.device_count);
    return s;
  }
  cudaDeviceProp prop{};
  cudaError_t st = cudaGetDeviceProperties(&prop, device);
  if (st == cudaSuccess) st = cudaSetDevice(device);
  if (st == cudaSuccess) st = cudaMemGetInfo(&s.memory_free, &s.memory_total);
  if (st != cudaSuccess) {
    s.device_reason = fmt::format("device {} cannot be used ({})", device, error_text(st));
    cudaGetLastError();
    return s;
  }
  s.device_available = true;
  s.name = prop.name;
  s.cc_major = prop.major;
  s.cc_minor = prop.minor;
  s.sms = prop.multiProcessorCount;
  s.code = code_for_device(s.arches, s.arches_understood, s.cc_major, s.cc_minor);
  cudaFuncAttributes attributes{};
  st = probe_kernel_attributes(&attributes);
  if (st == cudaSuccess) {
    s.probe_ran = true;
    s.binary_version = attributes.binaryVersion;
    s.ptx_version = attributes.ptxVersion;
  } else {
    s.probe_error = error_text(st);
    cudaGetLastError();  // not sticky, but leave nothing behind
  }
  if (s.probe_ran == (s.code.kind == CodeForDevice::Kind::kNone)) {
    s.warnings.push_back(fmt::format(
        "the configured architectures ({}) and the runtime disagree about whether this binary "
        "runs on the device ({}); the runtime is right",
        s.cuda_architectures, s.probe_ran ? "it does" : s.probe_error));
  }
  if (s.driver_version > 0 && s.driver_version < s.runtime_version) {
    s.warnings.push_back(fmt::format(
        "the driver supports CUDA {}, older than the runtime octa links (CUDA {}): update the "
        "NVIDIA driver if kernels fail to load",
        cuda_version_string(s.driver_version), cuda_version_string(s.runtime_version)));
  }
  return s;
}

std::vector<std::string> describe(const SystemInfo& s) {
  std::vector<std::string> lines;
  lines.push_back(fmt::format(
      "build: CUDA runtime {} (linked statically); cuDNN {} compiled, {} loaded; cuBLAS {} "
      "compiled, {} loaded",
      cuda_version_string(s.runtime_version), library_version_string(s.cudnn_compiled),
      library_version_string(s.cudnn_loaded), library_version_string(s.cublas_compiled),
      library_version_string(s.cublas_loaded)));
  lines.push_back(fmt::format("code in this binary: {} (CMAKE_CUDA_ARCHITECTURES={})",
                              arches_text(s.arches), s.cuda_architectures));
  lines.push_back(
      s.driver_version > 0
          ? fmt::format("driver: supports CUDA {}", cuda_version_string(s.driver_version))
          : std::string("driver: none found (no NVIDIA driver is loaded)"));
  if (!s.device_available) {
    lines.push_back("device: none usable: " + s.device_reason);
  } else {
    constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
    lines.push_back(fmt::format(
        "device {}: {}, compute capability {}.{}, {} SMs, {:.1f} GiB ({:.1f} GiB free)", s.device,
        s.name, s.cc_major, s.cc_minor, s.sms, static_cast<double>(s.memory_total) / kGiB,
        static_cast<double>(s.memory_free) / kGiB));
    lines.push_back("  code for this device: " + s.code.text);
    lines.push_back(
        s.probe_ran ? fmt::format("  the runtime loads it: binary sm_{}, PTX {} (an empty "
                                  "kernel's attributes)",
                                  s.binary_version, s.ptx_version)
                    : fmt::format("  the runtime cannot load octa's kernels: {}", s.probe_error));
  }
  for (const std::string& w : s.warnings) lines.push_back("warning: " + w);
  return lines;
}

nlohmann::json to_json(const SystemInfo& s) {
  nlohmann::json arches = nlohmann::json::array();
  for (const ArchEntry& a : s.arches) {
    arches.push_back({{"arch", a.arch}, {"suffix", a.suffix}, {"sass", a.sass}, {"ptx", a.ptx}});
  }
  nlohmann::json j = {
      {"build",
       {{"cuda_architectures", s.cuda_architectures},
        {"architectures", arches},
        {"cuda_runtime", cuda_version_string(s.runtime_version)},
        {"cudnn_compiled", library_version_string(s.cudnn_compiled)},
        {"cudnn_loaded", library_version_string(s.cudnn_loaded)},
        {"cublas_compiled", library_version_string(s.cublas_compiled)},
        {"cublas_loaded", library_version_string(s.cublas_loaded)}}},
      {"driver_cuda", s.driver_version > 0 ? nlohmann::json(cuda_version_string(s.driver_version))
                                           : nlohmann::json(nullptr)},
      {"warnings", s.warnings}};
  if (!s.device_available) {
    j["device"] = {{"available", false}, {"reason", s.device_reason}};
    return j;
  }
  j["device"] = {{"available", true},
                 {"index", s.device},
                 {"name", s.name},
                 {"compute_capability", fmt::format("{}.{}", s.cc_major, s.cc_minor)},
                 {"sms", s.sms},
                 {"memory_bytes", s.memory_total},
                 {"memory_free_bytes", s.memory_free},
                 {"code", s.code.text},
                 {"runs_octa_code", s.probe_ran},
                 {"binary_version", s.binary_version},
                 {"ptx_version", s.ptx_version}};
  if (!s.probe_ran) j["device"]["load_error"] = s.probe_error;
  return j;
}

}  // namespace octa::selfcheck
