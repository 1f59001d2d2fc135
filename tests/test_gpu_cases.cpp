// tests/test_gpu_cases.cpp: the [gpu] runner of octa's case table (engine/selfcheck/case_table.hpp:
// every kernel, cuDNN and cuBLAS case against the CPU reference), which runs each case twice on
// the device and requires the same bits (determinism); octa_selftest passing on the GPU; and
// train_gpu's --conv auto check (engine/gpu/conv_select.hpp) choosing a path, and rejecting one
// whose launcher is deliberately broken (the table's test-only fault hook, CaseOptions) for a path
// that passes. The device-free cases check the table itself, the --conv path rule, the decision
// from given check results, and the architecture report's reading of CMAKE_CUDA_ARCHITECTURES.
#include <catch2/catch.hpp>

#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/core/device_probe.hpp"
#include "engine/core/error.hpp"
#include "engine/cuda/check.hpp"
#include "engine/gpu/conv_select.hpp"
#include "engine/selfcheck/case_table.hpp"
#include "engine/selfcheck/cuda_case_device.hpp"
#include "engine/selfcheck/system_info.hpp"
#include "kernels/conv3x3_tc.hpp"
#include "tests/support/run_command.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/temp_dir.hpp"

namespace sc = octa::selfcheck;
using octa::ConvPath;

namespace {

// Every group of the table, each run by one [gpu] case below.
const std::vector<std::string> kGroups = {"conv3x3", "conv3x3_tc", "cudnn",
                                          "pool",    "batchnorm",  "elementwise",
                                          "loss",    "optimizer",  "linear"};

void run_group_on_gpu(const std::string& group) {
  sc::CudaCaseDevice dev;
  int ran = 0;
  for (const sc::KernelCase& c : sc::all_cases()) {
    if (c.group != group) continue;
    ++ran;
    INFO(c.name << " (" << c.launcher << ", " << c.shape << ")");
    const sc::CaseResult first = sc::run_case(c, dev);
    INFO(first.failure());
    CHECK(first.passed());
    const sc::CaseResult second = sc::run_case(c, dev);
    CHECK(second.passed());
    CHECK(second.digest == first.digest);  // bit-identical run to run
  }
  CHECK(ran > 0);
}

// The fault: the real tensor-core forward, then one output value zeroed on the device.
void broken_tc_forward(float* out, const float* in, const float* weight, const float* bias, int N,
                       int Cin, int Cout, int H, int W, octa::gpu::Epilogue epilogue,
                       cudaStream_t stream) {
  octa::gpu::conv3x3_tc_forward(out, in, weight, bias, N, Cin, Cout, H, W, epilogue, stream);
  OCTA_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(float), stream));
}

octa::BackendConfig model_config(octa::Arch arch) {
  octa::BackendConfig c;
  c.arch = arch;
  c.max_batch = 64;
  c.seed = 3;
  return c;
}

}  // namespace

// =============================================================================================
// The table, the --conv rule and the decision (no device)
// =============================================================================================

TEST_CASE("the case table: unique names, a body, a group the runner runs, models' shapes",
          "[selfcheck]") {
  std::set<std::string> names, groups;
  unsigned models = 0;
  for (const sc::KernelCase& c : sc::all_cases()) {
    INFO(c.name);
    CHECK(names.insert(c.name).second);
    CHECK(c.body);
    CHECK(std::string(c.tolerance.name) == "kGpuVsCpu");
    CHECK_FALSE(c.reference.empty());
    groups.insert(c.group);
    models |= c.models;
    CHECK(c.gpu_library == (c.group == "cudnn" || c.group == "linear"));
    CHECK((c.conv == sc::ConvImpl::kNone) ==
          (c.group != "conv3x3" && c.group != "conv3x3_tc" && c.group != "cudnn"));
  }
  CHECK(groups == std::set<std::string>(kGroups.begin(), kGroups.end()));
  CHECK(models == (sc::kModelA | sc::kModelB));
}

TEST_CASE("the --conv paths run the convolutions train_gpu's engine runs for them", "[selfcheck]") {
  for (const sc::KernelCase& c : sc::all_cases()) {
    INFO(c.name);
    const bool fused = octa::conv_path_uses(ConvPath::kFused, c);
    const bool fp32 = octa::conv_path_uses(ConvPath::kFusedFp32, c);
    const bool dnn = octa::conv_path_uses(ConvPath::kCudnn, c);
    switch (c.conv) {
      case sc::ConvImpl::kNone:
        CHECK((fused && fp32 && dnn));
        break;
      case sc::ConvImpl::kCudaCore:  // conv1 (Cin 1) is fused's too; conv2 (32) is not
        CHECK((fp32 && !dnn));
        CHECK(fused == (c.conv_cin < octa::gpu::kTensorCoreMinCin));
        break;
      case sc::ConvImpl::kTensorCore:
        CHECK((!fp32 && !dnn));
        CHECK(fused == (c.conv_cin >= octa::gpu::kTensorCoreMinCin));
        break;
      case sc::ConvImpl::kCudnn:
        CHECK((dnn && !fused && !fp32));
        break;
    }
  }
}

TEST_CASE("conv auto takes the fastest path whose cases pass, and a named failing path stops",
          "[selfcheck][conv]") {
  octa::ConvChoice base;
  base.requested = "auto";
  base.model = "A";
  base.checked = true;
  base.shared.cases = 13;
  for (const ConvPath p : octa::kConvPaths) {
    octa::ConvPathCheck check;
    check.path = p;
    check.cases.cases = 9;
    base.paths.push_back(check);
  }
  base.paths[0].step_ms = 0.30;  // fused
  base.paths[1].step_ms = 0.20;  // fused-fp32
  base.paths[2].step_ms = 0.25;  // cudnn

  SECTION("all pass: the fastest") {
    octa::ConvChoice c = base;
    octa::decide_conv_path(c);
    CHECK(c.path == ConvPath::kFusedFp32);
    CHECK_THAT(c.why, Catch::Contains("chose fused-fp32") && Catch::Contains("0.200 ms"));
  }
  SECTION("the fastest fails a case: the next fastest, and the log names the case") {
    octa::ConvChoice c = base;
    c.paths[1].cases.failed = 1;
    c.paths[1].cases.failures.push_back("case 'conv3x3_forward N64 32>64 14x14': out: 1 of 8");
    c.paths[1].step_ms.reset();
    octa::decide_conv_path(c);
    CHECK(c.path == ConvPath::kCudnn);
    CHECK_THAT(c.why, Catch::Contains("fused-fp32: rejected") &&
                          Catch::Contains("conv3x3_forward N64 32>64 14x14"));
  }
  SECTION("a path whose training step failed is not taken") {
    octa::ConvChoice c = base;
    c.paths[1].step_error = "CUDNN_STATUS_NOT_SUPPORTED";
    c.paths[1].step_ms.reset();
    octa::decide_conv_path(c);
    CHECK(c.path == ConvPath::kCudnn);
    CHECK_THAT(c.why, Catch::Contains("training step failed: CUDNN_STATUS_NOT_SUPPORTED"));
  }
  SECTION("a shared case fails: no path, an error naming it") {
    octa::ConvChoice c = base;
    c.shared.failed = 1;
    c.shared.failures.push_back("case 'adam_update n420481': params: 3 of 420481");
    CHECK_THROWS_WITH(octa::decide_conv_path(c), Catch::Contains("no convolution path passed") &&
                                                     Catch::Contains("adam_update n420481") &&
                                                     Catch::Contains("octa_selftest"));
  }
  SECTION("a named path that fails stops the run with the case; one that passes is taken") {
    octa::ConvChoice c = base;
    c.requested = "fused";
    c.paths = {base.paths[0]};
    c.paths[0].cases.failed = 2;
    c.paths[0].cases.failures.push_back("case 'conv3x3_tc_forward N64 32>64 14x14': out: wrong");
    CHECK_THROWS_WITH(octa::decide_conv_path(c),
                      Catch::Contains("--conv fused") &&
                          Catch::Contains("conv3x3_tc_forward N64 32>64 14x14") &&
                          Catch::Contains("--conv auto") && Catch::Contains("--no-check"));
    c.paths[0].cases.failed = 0;
    octa::decide_conv_path(c);
    CHECK(c.path == ConvPath::kFused);
    CHECK_THAT(c.why, Catch::Contains("--conv fused: its 9 convolution cases"));
  }
}

TEST_CASE("conv check: --no-check skips a named path's check and is refused with --conv auto",
          "[selfcheck][conv]") {
  octa::ConvCheckOptions o;
  o.check = false;
  const octa::ConvChoice c = octa::choose_conv_path(model_config(octa::Arch::kA), "cudnn", o);
  CHECK(c.path == ConvPath::kCudnn);
  CHECK_FALSE(c.checked);
  CHECK_THAT(c.why, Catch::Contains("skipped (--no-check)"));
  CHECK(octa::to_json(c)["chosen"] == "cudnn");
  CHECK_THROWS_WITH(octa::choose_conv_path(model_config(octa::Arch::kA), "auto", o),
                    Catch::Contains("--no-check") && Catch::Contains("name a path"));
  CHECK_THROWS_WITH(octa::choose_conv_path(model_config(octa::Arch::kA), "fp32", o),
                    Catch::Contains("--conv") && Catch::Contains("'fp32'"));
}

TEST_CASE("the architecture report reads CMAKE_CUDA_ARCHITECTURES and says what a device runs",
          "[selfcheck]") {
  using Kind = sc::CodeForDevice::Kind;
  bool understood = false;
  const std::vector<sc::ArchEntry> plain = sc::parse_cuda_architectures("90", &understood);
  REQUIRE(understood);
  REQUIRE(plain.size() == 1);
  CHECK((plain[0].arch == 90 && plain[0].sass && plain[0].ptx));
  CHECK(sc::code_for_device(plain, true, 9, 0).kind == Kind::kSass);
  // An sm_80 device has no code in a 90-only build: said plainly, with the rebuild command.
  const sc::CodeForDevice a100 = sc::code_for_device(plain, true, 8, 0);
  CHECK(a100.kind == Kind::kNone);
  CHECK_THAT(a100.text, Catch::Contains("NO CODE FOR THIS DEVICE") &&
                            Catch::Contains("-DCMAKE_CUDA_ARCHITECTURES=80"));
  // A newer device runs compute_90 PTX through the driver's compiler.
  const sc::CodeForDevice blackwell = sc::code_for_device(plain, true, 10, 0);
  CHECK(blackwell.kind == Kind::kPtxJit);
  CHECK_THAT(blackwell.text, Catch::Contains("compute_90 PTX") &&
                                 Catch::Contains("-DCMAKE_CUDA_ARCHITECTURES=100"));
  // SASS only: no PTX to fall back on; within a major version a newer minor runs it.
  const auto real = sc::parse_cuda_architectures("80-real;90-real", &understood);
  CHECK(understood);
  CHECK(sc::code_for_device(real, true, 8, 6).kind == Kind::kSass);
  CHECK(sc::code_for_device(real, true, 8, 6).arch == 80);
  CHECK(sc::code_for_device(real, true, 10, 0).kind == Kind::kNone);
  // Architecture-specific code runs on that architecture only.
  const auto specific = sc::parse_cuda_architectures("90a-real", &understood);
  CHECK(sc::code_for_device(specific, true, 9, 0).kind == Kind::kSass);
  CHECK(sc::code_for_device(specific, true, 10, 0).kind == Kind::kNone);
  // What it cannot read, it says it cannot.
  CHECK(sc::parse_cuda_architectures("native", &understood).empty());
  CHECK_FALSE(understood);
  CHECK(sc::code_for_device({}, false, 9, 0).kind == Kind::kUnknown);
  CHECK(sc::library_version_string(91900) == "9.19.0");
  CHECK(sc::cuda_version_string(13000) == "13.0");
}

// =============================================================================================
// On the GPU
// =============================================================================================

TEST_CASE("GPU cases: every group of the table passes, bit-identical run to run", "[gpu][cases]") {
  OCTA_REQUIRE_GPU();
  for (const std::string& group : kGroups) {
    INFO("group " << group);
    run_group_on_gpu(group);
  }
}

TEST_CASE("GPU: octa_selftest passes every case and writes its JSON", "[gpu][selftest]") {
  OCTA_REQUIRE_GPU();
  const octa::test::TempDir dir("selftest");
  const octa::test::CommandResult r = octa::test::run_command(
      OCTA_SELFTEST_EXE, fmt::format("--json {}", octa::test::shell_quoted(dir / "s.json")));
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.output, Catch::Contains("compute capability") && Catch::Contains("cuDNN") &&
                           Catch::Contains("runs the sm_") && !Catch::Contains("FAIL"));
  std::ifstream in(dir / "s.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  CHECK(j["passed"] == true);
  CHECK(j["summary"]["failed"] == 0);
  CHECK(j["cases"].size() == sc::all_cases().size());
  CHECK(j["system"]["device"]["runs_octa_code"] == true);
}

TEST_CASE("GPU: --conv auto checks every path for each model and picks one, well under a second",
          "[gpu][conv]") {
  OCTA_REQUIRE_GPU();
  for (const octa::Arch arch : {octa::Arch::kA, octa::Arch::kB}) {
    INFO("model " << octa::arch_name(arch));
    const octa::ConvChoice c = octa::choose_conv_path(model_config(arch), "auto", {});
    INFO(c.why);
    CHECK(c.checked);
    CHECK(c.paths.size() == 3);
    CHECK(c.shared.cases > 5);
    for (const octa::ConvPathCheck& p : c.paths) {
      INFO(octa::conv_path_name(p.path));
      CHECK(p.cases.cases > 0);
      CHECK(p.usable(c.shared));
      CHECK(p.step_ms.has_value());
    }
    WARN("--conv auto check, model " << octa::arch_name(arch) << ": " << c.check_seconds << " s");
    CHECK(c.check_seconds < 1.0);
    const nlohmann::json j = octa::to_json(c);
    CHECK(j["chosen"] == octa::conv_path_name(c.path));
    CHECK(j["paths"].size() == 3);
  }
}

TEST_CASE(
    "GPU: --conv auto rejects a path with a broken launcher and falls back to one that passes",
    "[gpu][conv][fault]") {
  OCTA_REQUIRE_GPU();
  octa::ConvCheckOptions broken;
  broken.cases.tensor_core.forward = &broken_tc_forward;  // conv2 of --conv fused, model B
  const octa::BackendConfig config = model_config(octa::Arch::kB);
  const octa::ConvChoice c = octa::choose_conv_path(config, "auto", broken);
  INFO(c.why);
  CHECK(c.path != ConvPath::kFused);
  REQUIRE(c.paths[0].path == ConvPath::kFused);
  CHECK_FALSE(c.paths[0].usable(c.shared));
  REQUIRE_FALSE(c.paths[0].cases.failures.empty());
  CHECK_THAT(c.paths[0].cases.failures.front(), Catch::Contains("conv3x3_tc_forward N64 32>64"));
  CHECK_THAT(c.why, Catch::Contains("fused: rejected") && Catch::Contains("conv3x3_tc_forward"));
  CHECK(c.paths[1].usable(c.shared));
  // Named, the broken path stops the run with the case; --no-check would take it unchecked.
  CHECK_THROWS_WITH(octa::choose_conv_path(config, "fused", broken),
                    Catch::Contains("--conv fused") && Catch::Contains("conv3x3_tc_forward"));
  CHECK(octa::choose_conv_path(config, "fused-fp32", broken).path == ConvPath::kFusedFp32);
}
