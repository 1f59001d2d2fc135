// tests/test_app_selfcheck.cpp: the kernel self-check as a user meets it, through the real
// executables: train_gpu's --conv auto on the CPU path (a no-op that says the CPU path is in use,
// recorded in the metrics JSON), and, in CUDA builds, octa_selftest's --help, --list (no GPU
// needed) and its no-device message and exit status. The GPU side is in test_gpu_cases.cpp.
#include <catch2/catch.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/core/device_probe.hpp"
#include "tests/support/run_command.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using octa::test::CommandResult;
using octa::test::run_command;
using octa::test::shell_quoted;

// A tiny MNIST in IDX form (uncompressed): `count` images of varied pixels, digits 0..9.
void write_idx_set(const fs::path& dir, const std::string& prefix, std::uint32_t count) {
  const auto be32 = [](std::vector<char>& b, std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<char>((v >> s) & 0xff));
  };
  std::vector<char> images, labels;
  be32(images, 2051);
  be32(images, count);
  be32(images, 28);
  be32(images, 28);
  for (std::uint32_t i = 0; i < count * 784; ++i)
    images.push_back(static_cast<char>((i * 37) % 251));
  be32(labels, 2049);
  be32(labels, count);
  for (std::uint32_t i = 0; i < count; ++i) labels.push_back(static_cast<char>((i * 7 + 3) % 10));
  std::ofstream(dir / (prefix + "-images-idx3-ubyte"), std::ios::binary)
      .write(images.data(), static_cast<std::streamsize>(images.size()));
  std::ofstream(dir / (prefix + "-labels-idx1-ubyte"), std::ios::binary)
      .write(labels.data(), static_cast<std::streamsize>(labels.size()));
}

}  // namespace

TEST_CASE("train_gpu --conv auto on the CPU path is a no-op that says the CPU path is in use",
          "[cpu][app][conv]") {
  const octa::test::TempDir dir("conv-auto");
  write_idx_set(dir.path(), "train", 70);
  write_idx_set(dir.path(), "t10k", 20);
  const CommandResult r =
      run_command(OCTA_TRAIN_GPU_EXE,
                  fmt::format("--device cpu --conv auto --no-download --data-dir {} --epochs 1 "
                              "--no-checkpoint --metrics-out {}",
                              shell_quoted(dir.path()), shell_quoted(dir / "metrics.json")));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("--conv auto: the CPU path is in use"));
  CHECK_THAT(r.output, !Catch::Contains("kernel self-check"));
  std::ifstream in(dir / "metrics.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  CHECK(j["conv"]["requested"] == "auto");
  CHECK(j["conv"]["chosen"].is_null());
  CHECK_THAT(j["conv"]["why"].get<std::string>(), Catch::Contains("CPU path"));
}

TEST_CASE("train_gpu --help offers --conv auto and --no-check", "[cpu][app][conv]") {
  const CommandResult r = run_command(OCTA_TRAIN_GPU_EXE, "--help");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("--no-check") && Catch::Contains("auto (the fastest") &&
                           Catch::Contains("--conv fused --no-check"));
}

#if defined(OCTA_SELFTEST_EXE)

TEST_CASE("octa_selftest --help says what it does, with examples and exit statuses",
          "[cpu][app][selftest]") {
  const CommandResult r = run_command(OCTA_SELFTEST_EXE, "--help");
  INFO(r.output);
  CHECK(r.exit_code == 0);
  for (const char* flag :
       {"--list", "--json", "--filter", "--device", "Examples:", "Exit status"}) {
    CHECK_THAT(r.output, Catch::Contains(flag));
  }
}

TEST_CASE("octa_selftest --list lists the cases on any machine, with who runs each",
          "[cpu][app][selftest]") {
  const octa::test::TempDir dir("selftest-list");
  const CommandResult r = run_command(
      OCTA_SELFTEST_EXE, fmt::format("--list --json {}", shell_quoted(dir / "list.json")));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("conv3x3_tc_forward N64 32>64 14x14") &&
                           Catch::Contains("CudnnConv3x3::backward_filter N64 1>32 28x28") &&
                           Catch::Contains("adam_update n420481") &&
                           Catch::Contains("the kernel emulator runs"));
  std::ifstream in(dir / "list.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  REQUIRE(j["cases"].size() > 300);
  for (const nlohmann::json& c : j["cases"]) {
    INFO(c.dump());
    CHECK(c["tolerance"]["name"] == "kGpuVsCpu");
    CHECK_FALSE(c["reference"].get<std::string>().empty());
    CHECK_FALSE(c["conv_paths"].get<std::string>().empty());
  }
  const CommandResult none = run_command(OCTA_SELFTEST_EXE, "--list --filter no-such-case");
  CHECK(none.exit_code == 1);
  CHECK_THAT(none.output, Catch::Contains("--filter 'no-such-case'"));
}

TEST_CASE("octa_selftest without a GPU says so and exits 2, with the report in its JSON",
          "[cpu][app][selftest]") {
  if (octa::probe_cuda_device().available) {
    OCTA_SKIP("a CUDA device is present: the no-device message cannot be seen here");
  }
  const octa::test::TempDir dir("selftest-nogpu");
  const CommandResult r =
      run_command(OCTA_SELFTEST_EXE, fmt::format("--json {}", shell_quoted(dir / "s.json")));
  INFO(r.output);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.output, Catch::Contains("octa_selftest: ") &&
                           Catch::Contains("octa_selftest checks octa's kernels on a GPU") &&
                           Catch::Contains("--list shows the cases"));
  // What it can tell without a device: the build's libraries and architectures.
  CHECK_THAT(r.output, Catch::Contains("cuDNN") && Catch::Contains("CMAKE_CUDA_ARCHITECTURES=") &&
                           Catch::Contains("device: none usable"));
  std::ifstream in(dir / "s.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  CHECK(j["passed"] == false);
  CHECK(j["system"]["device"]["available"] == false);
  CHECK_THAT(j["error"].get<std::string>(), Catch::Contains("no usable CUDA device"));
}

#endif
