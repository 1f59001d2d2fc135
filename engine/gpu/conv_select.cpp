// engine/gpu/conv_select.cpp: train_gpu's --conv choice (conv_select.hpp): the kernel cases of
// the model's shapes on each path, one timed training step per passing path, the decision.
#include "engine/gpu/conv_select.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "engine/core/error.hpp"
#include "engine/core/random_fill.hpp"
#include "engine/selfcheck/case_inputs.hpp"
#include "engine/selfcheck/case_table.hpp"
#include "engine/selfcheck/cuda_case_device.hpp"
#include "kernels/conv3x3_tc.hpp"

namespace octa {

namespace {

using selfcheck::ConvImpl;
using Clock = std::chrono::steady_clock;

constexpr int kWarmupSteps = 6;  // past the engine's eager warm-up and both graph captures
constexpr int kTimedSteps = 10;
constexpr unsigned kMaxCheckThreads = 8;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void tally(ConvCaseTally& t, const selfcheck::KernelCase& c, const selfcheck::CaseResult& r) {
  ++t.cases;
  if (r.passed()) return;
  ++t.failed;
  t.failures.push_back(fmt::format("case '{}': {}", c.name, r.failure()));
}

// Runs the cases on several threads, each with a CudaCaseDevice of its own (its own stream, cuDNN
// and cuBLAS handles), so that their host side (seeded inputs, CPU references: most of a case's
// time) runs on the machine's cores in parallel. Results in the cases' order.
std::vector<selfcheck::CaseResult> run_in_parallel(const std::vector<selfcheck::KernelCase>& cases,
                                                   int device) {
  const unsigned threads = std::clamp(std::thread::hardware_concurrency(), 1u, kMaxCheckThreads);
  std::vector<selfcheck::CaseResult> results(cases.size());
  std::vector<std::exception_ptr> errors(threads);
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      try {
        selfcheck::CudaCaseDevice dev(device);
        for (std::size_t i = next++; i < cases.size(); i = next++) {
          results[i] = selfcheck::run_case(cases[i], dev);
        }
      } catch (...) {
        errors[t] = std::current_exception();  // the device itself failed (run_case never throws)
      }
    });
  }
  for (std::thread& t : pool) t.join();
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  return results;
}

// The median of the step times, in ms, of a fresh engine on `path` at `batch` (random images):
// the graph-replayed steps that training runs, after the warm-up that captures them.
double time_training_step(const BackendConfig& config, ConvPath path,
                          const ConvCheckOptions& options) {
  BackendConfig c = config;
  c.max_batch = options.batch_size;
  CudaBackendOptions o;
  o.conv = path;
  o.device = options.device;
  const std::unique_ptr<TrainingBackend> engine = make_cuda_backend(c, o);
  const auto n = static_cast<std::size_t>(options.batch_size);
  const std::vector<float> images = random_vector<float>(n * kImageSize * kImageSize, 0x5e1f);
  const std::vector<float> targets = selfcheck::binary_targets(n, 0x5e20, 0.1);
  std::int64_t step = 0;
  for (; step < kWarmupSteps; ++step) {
    engine->train_step(images.data(), targets.data(), options.batch_size, step);
  }
  engine->take_loss_sum();  // waits for the warm-up
  std::vector<double> ms;
  for (int i = 0; i < kTimedSteps; ++i, ++step) {
    const Clock::time_point start = Clock::now();
    engine->train_step(images.data(), targets.data(), options.batch_size, step);
    engine->take_loss_sum();  // waits for the step
    ms.push_back(1e3 * seconds_since(start));
  }
  std::nth_element(ms.begin(), ms.begin() + kTimedSteps / 2, ms.end());
  return ms[kTimedSteps / 2];
}

std::string path_summary(const ConvPathCheck& p, const ConvCaseTally& shared) {
  const std::string name = conv_path_name(p.path);
  if (!shared.passed()) return fmt::format("{}: rejected with the shared cases", name);
  if (!p.cases.passed()) {
    return fmt::format("{}: rejected, {} of its {} convolution cases fail: {}", name,
                       p.cases.failed, p.cases.cases, p.cases.failures.front());
  }
  if (!p.step_error.empty()) {
    return fmt::format("{}: rejected, its training step failed: {}", name, p.step_error);
  }
  if (p.step_ms) return fmt::format("{} {:.3f} ms", name, *p.step_ms);
  return fmt::format("{}: its {} cases pass", name, p.cases.cases);
}

std::string shared_summary(const ConvCaseTally& shared) {
  return fmt::format("{} of the {} cases every path uses fail: {}", shared.failed, shared.cases,
                     shared.failures.front());
}

}  // namespace

bool conv_path_uses(ConvPath path, const selfcheck::KernelCase& c) {
  switch (c.conv) {
    case ConvImpl::kNone:
      return true;
    case ConvImpl::kCudaCore:
      return path == ConvPath::kFusedFp32 ||
             (path == ConvPath::kFused && c.conv_cin < gpu::kTensorCoreMinCin);
    case ConvImpl::kTensorCore:
      return path == ConvPath::kFused && c.conv_cin >= gpu::kTensorCoreMinCin;
    case ConvImpl::kCudnn:
      return path == ConvPath::kCudnn;
  }
  return false;
}

void decide_conv_path(ConvChoice& choice) {
  const bool automatic = choice.requested == "auto";
  if (!automatic) {
    OCTA_CHECK(choice.paths.size() == 1, "decide_conv_path: --conv {} needs its own check",
               choice.requested);
    const ConvPathCheck& p = choice.paths.front();
    choice.path = p.path;
    if (!choice.shared.passed() || !p.cases.passed()) {
      throw Error(fmt::format(
          "--conv {}: octa's kernel self-check failed on this GPU for model {}: {}. Use --conv "
          "auto to train on a path whose cases pass, run octa_selftest for the whole table, or "
          "pass --no-check to skip the check (benchmarking only)",
          choice.requested, choice.model,
          choice.shared.passed()
              ? fmt::format("{} of its {} convolution cases fail: {}", p.cases.failed,
                            p.cases.cases, p.cases.failures.front())
              : shared_summary(choice.shared)));
    }
    choice.why = fmt::format(
        "--conv {}: its {} convolution cases and the {} shared ones pass on this GPU (model {}'s "
        "shapes, against the CPU reference)",
        choice.requested, p.cases.cases, choice.shared.cases, choice.model);
    return;
  }
  const ConvPathCheck* best = nullptr;
  std::vector<std::string> passing, rejected;
  for (const ConvPathCheck& p : choice.paths) {
    if (p.usable(choice.shared) && p.step_ms) {
      passing.push_back(path_summary(p, choice.shared));
      if (best == nullptr || *p.step_ms < *best->step_ms) best = &p;
    } else {
      rejected.push_back(path_summary(p, choice.shared));
    }
  }
  if (best == nullptr) {
    std::string reasons;
    for (const std::string& r : rejected) reasons += "\n  " + r;
    if (!choice.shared.passed()) reasons = "\n  " + shared_summary(choice.shared) + reasons;
    throw Error(fmt::format(
        "--conv auto: no convolution path passed octa's kernel self-check on this GPU (model "
        "{}):{}\nA CUDA error in one case can leave the device unusable for the rest of the "
        "process, so the first failure is the one to read (--conv NAME checks one path alone). "
        "Run octa_selftest for the whole table; --device cpu trains on the CPU reference path",
        choice.model, reasons));
  }
  choice.path = best->path;
  std::string why = fmt::format(
      "--conv auto: chose {} ({:.3f} ms per training step, the fastest of the paths whose kernel "
      "cases pass for model {}: {})",
      conv_path_name(best->path), *best->step_ms, choice.model, fmt::join(passing, ", "));
  if (!rejected.empty()) why += fmt::format("; {}", fmt::join(rejected, "; "));
  choice.why = why;
}

ConvChoice choose_conv_path(const BackendConfig& config, std::string_view requested,
                            const ConvCheckOptions& options) {
  ConvChoice choice;
  choice.requested = std::string(requested);
  choice.model = arch_name(config.arch);
  const bool automatic = requested == "auto";
  if (!automatic) choice.path = parse_conv_path(requested);
  if (!options.check) {
    OCTA_CHECK(!automatic,
               "--no-check: --conv auto chooses a path by running the kernel self-check; name a "
               "path to skip it (--conv fused, fused-fp32 or cudnn)");
    choice.why = fmt::format("--conv {}: the kernel self-check is skipped (--no-check)", requested);
    spdlog::warn("{}", choice.why);
    return choice;
  }

  const Clock::time_point start = Clock::now();
  std::vector<ConvPath> paths;
  if (automatic) {
    paths.assign(std::begin(kConvPaths), std::end(kConvPaths));
  } else {
    paths.push_back(choice.path);
  }
  for (const ConvPath p : paths) choice.paths.push_back(ConvPathCheck{p, {}, std::nullopt, {}});

  // The model's shapes; a case two paths share (conv1 on the CUDA cores) runs once.
  const unsigned model = config.arch == Arch::kA ? selfcheck::kModelA : selfcheck::kModelB;
  std::vector<selfcheck::KernelCase> cases;
  for (selfcheck::KernelCase& c : selfcheck::all_cases(options.cases)) {
    if ((c.models & model) != 0 &&
        std::any_of(paths.begin(), paths.end(), [&](ConvPath p) { return conv_path_uses(p, c); })) {
      cases.push_back(std::move(c));
    }
  }
  const std::vector<selfcheck::CaseResult> results = run_in_parallel(cases, options.device);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const selfcheck::KernelCase& c = cases[i];
    const selfcheck::CaseResult& r = results[i];
    if (!r.passed()) spdlog::warn("kernel self-check: case '{}' failed: {}", c.name, r.failure());
    if (c.conv == ConvImpl::kNone) {
      tally(choice.shared, c, r);
      continue;
    }
    for (ConvPathCheck& p : choice.paths) {
      if (conv_path_uses(p.path, c)) tally(p.cases, c, r);
    }
  }
  choice.checked = true;
  if (automatic) {
    for (ConvPathCheck& p : choice.paths) {
      if (!p.usable(choice.shared)) continue;
      try {
        p.step_ms = time_training_step(config, p.path, options);
      } catch (const std::exception& e) {
        p.step_error = e.what();
        spdlog::warn("--conv auto: a training step on {} failed: {}", conv_path_name(p.path),
                     e.what());
      }
    }
  }
  choice.check_seconds = seconds_since(start);
  decide_conv_path(choice);
  spdlog::info("{} [check {:.2f} s]", choice.why, choice.check_seconds);
  return choice;
}

nlohmann::json to_json(const ConvChoice& choice) {
  const auto tally_json = [](const ConvCaseTally& t) {
    return nlohmann::json{{"cases", t.cases}, {"failed", t.failed}, {"failures", t.failures}};
  };
  nlohmann::json paths = nlohmann::json::array();
  for (const ConvPathCheck& p : choice.paths) {
    nlohmann::json j = tally_json(p.cases);
    j["path"] = conv_path_name(p.path);
    j["passed"] = p.usable(choice.shared);
    j["step_ms"] = p.step_ms ? nlohmann::json(*p.step_ms) : nlohmann::json(nullptr);
    if (!p.step_error.empty()) j["step_error"] = p.step_error;
    paths.push_back(std::move(j));
  }
  return {{"requested", choice.requested},
          {"chosen", conv_path_name(choice.path)},
          {"model", choice.model},
          {"checked", choice.checked},
          {"why", choice.why},
          {"check_seconds", choice.check_seconds},
          {"shared", tally_json(choice.shared)},
          {"paths", paths}};
}

}  // namespace octa
