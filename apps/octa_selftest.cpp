// apps/octa_selftest.cpp: prove octa's kernels on this machine's GPU before trusting them. Prints
// the device, driver, CUDA runtime, cuDNN and cuBLAS versions and the GPU code this binary carries
// against the device's (saying plainly when there is none and how to rebuild), then runs every
// case of octa's case table (engine/selfcheck/case_table.hpp: every kernel of every convolution
// path, fused tensor-core, fused-fp32 CUDA-core and cuDNN, and the kernels all paths share, at the
// models' shapes at batch 64 and at odd shapes) against the CPU reference, one row per case. Exit
// status 0 only when every case passes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "engine/core/atomic_file.hpp"
#include "engine/core/log.hpp"
#include "engine/cpu/blas.hpp"
#include "engine/gpu/conv_select.hpp"
#include "engine/selfcheck/case_table.hpp"
#include "engine/selfcheck/cuda_case_device.hpp"
#include "engine/selfcheck/report.hpp"
#include "engine/selfcheck/system_info.hpp"

namespace {

namespace sc = octa::selfcheck;

constexpr int kExitFailed = 1;    // a case failed, or an error
constexpr int kExitNoDevice = 2;  // no usable GPU, or no code for it in this binary

struct Args {
  bool list = false;
  std::string json;
  std::string filter;
  int device = 0;
};

const char* kExamples = R"(
Examples:
  octa_selftest                          every case on GPU 0: the device report, then one row per case
  octa_selftest --json runs/selftest.json
                                         the same, and everything as JSON (written atomically)
  octa_selftest --filter conv3x3_tc      only the cases whose name or group contains the text
  octa_selftest --list                   the cases, without running them (no GPU needed)
  octa_selftest --list --json cases.json the list as JSON
Exit status: 0 every case passed (--list: listed); 1 a case failed, or an error; 2 no usable CUDA
device, or this binary has no code for it (the message says how to rebuild).
)";

// The --conv paths that run what a case checks: "all", "fused", "fused,fused-fp32", "-" (none).
std::string paths_of(const sc::KernelCase& c) {
  std::vector<std::string> names;
  for (const octa::ConvPath p : octa::kConvPaths) {
    if (octa::conv_path_uses(p, c)) names.emplace_back(octa::conv_path_name(p));
  }
  if (names.size() == std::size(octa::kConvPaths)) return "all";
  return names.empty() ? "-" : fmt::format("{}", fmt::join(names, ","));
}

std::vector<sc::KernelCase> selected_cases(const Args& a) {
  std::vector<sc::KernelCase> cases;
  for (sc::KernelCase& c : sc::all_cases()) {
    if (a.filter.empty() || c.name.find(a.filter) != std::string::npos ||
        c.group.find(a.filter) != std::string::npos) {
      cases.push_back(std::move(c));
    }
  }
  OCTA_CHECK(!cases.empty(),
             "--filter '{}': no case's name or group contains it (--list shows "
             "them)",
             a.filter);
  return cases;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char date[32] = {};
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return date;
}

void write_json(const Args& a, const nlohmann::json& j) {
  if (a.json.empty()) return;
  octa::write_file_atomically(a.json, j.dump(2) + "\n");
  fmt::print("wrote {}\n", a.json);
}

int list(const Args& a, const nlohmann::json& header) {
  const std::vector<sc::KernelCase> cases = selected_cases(a);
  std::size_t width = 4;
  for (const sc::KernelCase& c : cases) width = std::max(width, c.name.size());
  int emulated = 0;
  fmt::print("{:<{}}  {:<17} {:<6} {:<33} {:<10} {}\n", "case", width, "--conv paths", "size",
             "runners", "tolerance", "reference");
  nlohmann::json j = header;
  j["cases"] = nlohmann::json::array();
  for (const sc::KernelCase& c : cases) {
    emulated += c.emulated() ? 1 : 0;
    fmt::print("{:<{}}  {:<17} {:<6} {:<33} {:<10} {}\n", c.name, width, paths_of(c),
               sc::case_size_name(c.size), c.runners(), c.tolerance.name, c.reference);
    nlohmann::json cj = sc::to_json(c);
    cj["conv_paths"] = paths_of(c);
    j["cases"].push_back(std::move(cj));
  }
  fmt::print(
      "{} cases; the kernel emulator runs {} of them (tests/emulation), the GPU runners all\n",
      cases.size(), emulated);
  write_json(a, j);
  return 0;
}

int run(const Args& a, nlohmann::json j) {
  const sc::SystemInfo info = sc::system_info(a.device);
  for (const std::string& line : sc::describe(info)) fmt::print("{}\n", line);
  j["system"] = sc::to_json(info);
  if (!info.device_available || !info.device_runs_code()) {
    const std::string why =
        !info.device_available
            ? fmt::format(
                  "{}. octa_selftest checks octa's kernels on a GPU, so there is "
                  "nothing to run here (train_gpu trains on the CPU reference path on "
                  "such a machine; --list shows the cases)",
                  info.device_reason)
            : fmt::format("this binary has no code that device {} can run ({}); {}", a.device,
                          info.probe_error, info.code.text);
    std::fprintf(stderr, "octa_selftest: %s\n", why.c_str());
    j["passed"] = false;
    j["error"] = why;
    write_json(a, j);
    return kExitNoDevice;
  }

  const std::vector<sc::KernelCase> cases = selected_cases(a);
  sc::CudaCaseDevice dev(a.device);
  std::size_t width = 4;
  for (const sc::KernelCase& c : cases) width = std::max(width, c.name.size());
  fmt::print("\n{:<4}  {:<{}}  {:<16} {:<26} {:>9} {:>9} {:>9} {:<10} {:>9} {:>9}\n", "", "case",
             width, "--conv paths", "worst check", "max abs", "max rel", "/allowed", "tolerance",
             "kernel ms", "total ms");
  const auto start = std::chrono::steady_clock::now();
  int failed = 0;
  std::vector<std::string> failures;
  j["cases"] = nlohmann::json::array();
  // Per --conv path: whether every case it uses passed.
  std::vector<int> path_failed(std::size(octa::kConvPaths), 0), path_cases(path_failed);
  for (const sc::KernelCase& c : cases) {
    const sc::CaseResult r = sc::run_case(c, dev);
    const sc::CheckResult* w = r.worst();
    const bool ok = r.passed();
    fmt::print("{:<4}  {:<{}}  {:<16} {:<26} {:>9} {:>9} {:>9} {:<10} {:>9.3f} {:>9.1f}\n",
               ok ? "ok" : "FAIL", c.name, width, paths_of(c), w ? w->what.substr(0, 26) : "-",
               w ? sc::short_number(w->cmp.max_abs_err) : "-",
               w ? sc::short_number(w->cmp.max_rel_err) : "-",
               w ? sc::short_number(w->cmp.worst_ratio) : "-", w ? w->tolerance.name : "-",
               r.kernel_ms, r.wall_ms);
    std::fflush(stdout);
    for (std::size_t p = 0; p < std::size(octa::kConvPaths); ++p) {
      if (!octa::conv_path_uses(octa::kConvPaths[p], c)) continue;
      ++path_cases[p];
      path_failed[p] += ok ? 0 : 1;
    }
    if (!ok) {
      ++failed;
      failures.push_back(fmt::format("{} ({}, {}):\n{}", c.name, c.launcher, c.shape, r.failure()));
    }
    nlohmann::json cj = sc::to_json(c);
    cj["conv_paths"] = paths_of(c);
    cj["passed"] = ok;  // also in "result", with the rest; here for readers that scan the cases
    cj["result"] = sc::to_json(r);
    j["cases"].push_back(std::move(cj));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  for (const std::string& f : failures) fmt::print("\nFAIL {}\n", f);
  std::vector<std::string> by_path;
  j["paths"] = nlohmann::json::object();
  for (std::size_t p = 0; p < std::size(octa::kConvPaths); ++p) {
    const char* name = octa::conv_path_name(octa::kConvPaths[p]);
    by_path.push_back(path_cases[p] == 0 ? fmt::format("{}: no case selected", name)
                      : path_failed[p] == 0
                          ? fmt::format("{}: all {} pass", name, path_cases[p])
                          : fmt::format("{}: {} of {} FAIL", name, path_failed[p], path_cases[p]));
    j["paths"][name] = {{"cases", path_cases[p]}, {"failed", path_failed[p]}};
  }
  fmt::print("\n{} of {} cases pass on {} ({:.1f} s). By --conv path: {}.\n",
             cases.size() - static_cast<std::size_t>(failed), cases.size(), dev.name(), seconds,
             fmt::join(by_path, "; "));
  if (failed > 0) {
    fmt::print(
        "A --conv path with a failing case gives wrong numbers on this machine: train_gpu's "
        "--conv auto (the default) avoids it; report the rows above.\n");
  }
  j["passed"] = failed == 0;
  j["summary"] = {{"cases", cases.size()}, {"failed", failed}, {"seconds", seconds}};
  write_json(a, j);
  return failed == 0 ? 0 : kExitFailed;
}

}  // namespace

int main(int argc, char** argv) {
  octa::cpu::reexec_with_tuned_blas(argv);
  Args a;
  CLI::App app{
      "octa_selftest: octa's CUDA kernels, cuDNN and cuBLAS paths checked on this machine's GPU "
      "against the CPU reference, one row per case of octa's case table, after a report of the "
      "device, driver, libraries and the GPU code this binary carries."};
  app.footer(kExamples);
  app.add_flag("--list", a.list, "List the cases without running them (no GPU needed)");
  app.add_option("--json", a.json, "Also write the report (or the list) as JSON to this file");
  app.add_option("--filter", a.filter, "Only the cases whose name or group contains this text");
  app.add_option("--device", a.device, "CUDA device index")
      ->check(CLI::Range(0, 1023))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    octa::init_logging(spdlog::level::warn);
    std::string command;
    for (int i = 0; i < argc; ++i) command += (i > 0 ? " " : "") + std::string(argv[i]);
    const nlohmann::json header = {
        {"tool", "octa_selftest"}, {"command", command}, {"date", utc_now()}};
    return a.list ? list(a, header) : run(a, header);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "octa_selftest: error: %s\n", e.what());
    return kExitFailed;
  }
}
