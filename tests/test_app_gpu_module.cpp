// tests/test_app_gpu_module.cpp: the GPU module (engine/core/gpu_module.hpp) is opened only when a
// GPU is about to be used. train_gpu --help and a --device cpu run never load the CUDA libraries
// (read from the dynamic loader's own record of every object it loaded, LD_DEBUG=files); without a
// CUDA driver --device auto loads none either; a missing libocta_gpu.so is said plainly, the run
// goes on on the CPU path, and --device cuda stops naming the reason. And the module a CUDA build
// writes beside libocta.so has the entry point and table the loader expects.
#include <catch2/catch.hpp>

#include <dlfcn.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine/core/device_probe.hpp"
#include "engine/core/gpu_module.hpp"
#include "tests/support/idx_files.hpp"
#include "tests/support/run_command.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using octa::test::CommandResult;
using octa::test::shell_quoted;

// What the CPU path must never load: the module, the CUDA runtime, cuBLAS(Lt), cuDNN, the driver.
const std::vector<std::string> kCudaLibraries = {"libocta_gpu", "libcudart", "libcublas",
                                                 "libcudnn", "libcuda.so"};

// A small MNIST-shaped dataset (uncompressed IDX files) in dir.
void write_small_mnist(const fs::path& dir) {
  const auto labels = [](std::uint32_t n) {
    std::vector<std::uint8_t> l(n);
    for (std::uint32_t i = 0; i < n; ++i) l[i] = static_cast<std::uint8_t>(i % 10);
    return l;
  };
  octa::test::write_bytes(dir / "train-images-idx3-ubyte", octa::test::idx_images_file(256));
  octa::test::write_bytes(dir / "train-labels-idx1-ubyte",
                          octa::test::idx_labels_file(labels(256)));
  octa::test::write_bytes(dir / "t10k-images-idx3-ubyte", octa::test::idx_images_file(100));
  octa::test::write_bytes(dir / "t10k-labels-idx1-ubyte", octa::test::idx_labels_file(labels(100)));
}

struct LoadedRun {
  CommandResult result;
  std::set<std::string> loaded;  // every object the dynamic loader mapped
};

// Runs train_gpu with `args` under LD_DEBUG=files (the loader's log goes to log_dir/ld.<pid>; a
// re-exec keeps the pid and appends), with `env` (VAR=value ...) before it.
LoadedRun train_gpu_loading(const fs::path& log_dir, const std::string& env,
                            const std::string& args) {
  fs::create_directories(log_dir);
  LoadedRun r;
  r.result = octa::test::run_command(
      "env", fmt::format("LD_DEBUG=files LD_DEBUG_OUTPUT={} {} {} {}", shell_quoted(log_dir / "ld"),
                         env, shell_quoted(OCTA_TRAIN_GPU_EXE), args));
  // "file=NAME [0];  generating link map": NAME mapped into the process. (Its "dynamically loaded
  // by" lines are attempts, which a missing or already-loaded object also makes.)
  const std::regex file_entry(R"(\bfile=(\S+) \[[0-9]+\];\s+generating link map)");
  for (const auto& entry : fs::directory_iterator(log_dir)) {
    std::ifstream in(entry.path());
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (std::sregex_iterator it(text.begin(), text.end(), file_entry), end; it != end; ++it) {
      r.loaded.insert((*it)[1].str());
    }
  }
  return r;
}

// The loaded objects whose names contain one of `names`, for the failure message.
std::vector<std::string> loaded_matching(const std::set<std::string>& loaded,
                                         const std::vector<std::string>& names) {
  std::vector<std::string> found;
  for (const std::string& object : loaded) {
    for (const std::string& name : names) {
      if (object.find(name) != std::string::npos) found.push_back(object);
    }
  }
  return found;
}

bool loaded_libocta(const std::set<std::string>& loaded) {
  return !loaded_matching(loaded, {"libocta.so"}).empty();
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// The run arguments of a short CPU-path run on the small dataset.
std::string short_run(const fs::path& data, const std::string& device) {
  return fmt::format(
      "--device {} --data-dir {} --no-download --epochs 1 --batch-size 64 --test-batch-size 50 "
      "--no-checkpoint --no-report",
      device, shell_quoted(data));
}

}  // namespace

TEST_CASE("train_gpu --help and a --device cpu run load no CUDA library", "[cpu][app]") {
  const octa::test::TempDir dir("gpu-module");
  write_small_mnist(dir / "data");

  const LoadedRun help = train_gpu_loading(dir / "help", "", "--help");
  INFO(help.result.output);
  REQUIRE(help.result.exit_code == 0);
  // The loader's log is there and names octa's own library: the check below can see a load.
  REQUIRE(loaded_libocta(help.loaded));
  CHECK(joined(loaded_matching(help.loaded, kCudaLibraries)) == "");

  const LoadedRun cpu = train_gpu_loading(dir / "cpu", "", short_run(dir / "data", "cpu"));
  INFO(cpu.result.output);
  REQUIRE(cpu.result.exit_code == 0);
  CHECK_THAT(cpu.result.output, Catch::Contains("confusion matrix"));
  REQUIRE(loaded_libocta(cpu.loaded));
  CHECK(joined(loaded_matching(cpu.loaded, kCudaLibraries)) == "");
}

TEST_CASE("without a CUDA driver, --device auto trains on the CPU path and loads no CUDA library",
          "[cpu][app]") {
  const octa::test::TempDir dir("gpu-module");
  write_small_mnist(dir / "data");
  const LoadedRun run = train_gpu_loading(dir / "auto", "", short_run(dir / "data", "auto"));
  INFO(run.result.output);
  REQUIRE(run.result.exit_code == 0);
  CHECK_THAT(run.result.output, Catch::Contains("confusion matrix"));
  REQUIRE(loaded_libocta(run.loaded));
  if (!loaded_matching(run.loaded, {"libcuda.so"}).empty()) {
    OCTA_SKIP("a CUDA driver is installed here: --device auto loads the GPU module to ask it");
  }
  CHECK_THAT(run.result.output, Catch::Contains("No GPU: ") && Catch::Contains("on the CPU"));
  CHECK(joined(loaded_matching(run.loaded, kCudaLibraries)) == "");
}

TEST_CASE("a missing GPU module is said plainly: the CPU path, and --device cuda names it",
          "[cpu][app]") {
#if !defined(OCTA_HAVE_CUDA)
  const CommandResult cuda = octa::test::run_command(OCTA_TRAIN_GPU_EXE, "--device cuda");
  INFO(cuda.output);
  CHECK(cuda.exit_code == 1);
  CHECK_THAT(cuda.output, Catch::Contains("--device cuda: octa was built without CUDA"));
  OCTA_SKIP("a build without CUDA has no GPU module to miss (its --device cuda message checked)");
#else
  // libocta.so copied alone into a folder and preloaded: the executable uses that copy, which looks
  // for libocta_gpu.so beside itself, where there is none.
  const octa::test::TempDir dir("gpu-module");
  write_small_mnist(dir / "data");
  fs::create_directories(dir / "lib");
  fs::copy_file(OCTA_LIBOCTA_FILE, dir / "lib" / "libocta.so");
  const fs::path missing = dir / "lib" / "libocta_gpu.so";
  const std::string preload =
      fmt::format("LD_PRELOAD={}", shell_quoted(dir / "lib" / "libocta.so"));

  const LoadedRun run = train_gpu_loading(dir / "auto", preload, short_run(dir / "data", "auto"));
  INFO(run.result.output);
  REQUIRE(run.result.exit_code == 0);
  CHECK_THAT(run.result.output, Catch::Contains(fmt::format(
                                    "No GPU: octa's GPU module {} is missing", missing.string())) &&
                                    Catch::Contains("Training on the CPU"));
  CHECK_THAT(run.result.output, Catch::Contains("confusion matrix"));
  CHECK(joined(loaded_matching(run.loaded, kCudaLibraries)) == "");

  const LoadedRun cuda = train_gpu_loading(dir / "cuda", preload, short_run(dir / "data", "cuda"));
  INFO(cuda.result.output);
  CHECK(cuda.result.exit_code == 1);
  CHECK_THAT(cuda.result.output,
             Catch::Contains(fmt::format("train_gpu: error: --device cuda: octa's GPU module {} is "
                                         "missing",
                                         missing.string())));
  CHECK_THAT(cuda.result.output, !Catch::Contains("confusion matrix"));
#endif
}

TEST_CASE("the module loader maps the CUDA libraries only when it loads the module", "[cpu]") {
  // This process links libocta.so only (not libocta_gpu.so), as train_gpu does.
  const octa::DeviceProbe probe = octa::probe_cuda_device();
  std::string why;
  const bool loaded = octa::gpu_module(&why) != nullptr;
  INFO("probe: " << (probe.available ? probe.name : probe.reason));
  std::ifstream in("/proc/self/maps");
  const std::string maps((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE_THAT(maps, Catch::Contains("libocta.so"));
  if (loaded) {
    CHECK_THAT(maps, Catch::Contains("libocta_gpu.so") && Catch::Contains("libcublas"));
  } else {
    CHECK_FALSE(probe.available);
    CHECK(probe.reason == why);
    for (const char* name : {"libocta_gpu", "libcudart", "libcublas", "libcudnn"}) {
      INFO(name);
      CHECK_THAT(maps, !Catch::Contains(name));
    }
  }
}

TEST_CASE("the GPU module beside libocta.so has this build's entry point and table", "[cpu]") {
#if !defined(OCTA_HAVE_CUDA)
  OCTA_SKIP("a build without CUDA has no GPU module");
#else
  // What the loader opens once the driver has said it sees a device (which it cannot say here):
  // opened directly, so that a machine without a GPU checks the contract too.
  const fs::path path = fs::path(OCTA_LIBOCTA_FILE).parent_path() / octa::kGpuModuleFile;
  INFO(path.string());
  REQUIRE(fs::exists(path));
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  INFO((handle == nullptr ? ::dlerror() : "opened"));
  REQUIRE(handle != nullptr);
  using Entry = const octa::GpuModuleTable* (*)();
  const auto entry = reinterpret_cast<Entry>(::dlsym(handle, octa::kGpuModuleEntry));
  REQUIRE(entry != nullptr);
  const octa::GpuModuleTable* table = entry();
  REQUIRE(table != nullptr);
  CHECK(table->version == octa::kGpuModuleVersion);
  CHECK(table->size == sizeof(octa::GpuModuleTable));
  REQUIRE(table->probe != nullptr);
  CHECK(table->make_backend != nullptr);
  // The CUDA runtime's own answer: a device, or why not in its words.
  const octa::DeviceProbe probe = table->probe();
  INFO(probe.reason);
  CHECK((probe.available ? !probe.name.empty() : !probe.reason.empty()));
  // Opened once more through the loader's name, it is the same object (never loaded twice).
  CHECK(::dlopen(octa::kGpuModuleFile, RTLD_NOW | RTLD_NOLOAD) == handle);
#endif
}
