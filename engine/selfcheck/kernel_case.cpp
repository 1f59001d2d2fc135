// engine/selfcheck/kernel_case.cpp: running one kernel case (kernel_case.hpp) and summarising its
// result; the same code in the octa library and in the kernel emulator's test.
#include "engine/selfcheck/kernel_case.hpp"

#include <chrono>
#include <exception>
#include <limits>

#include <fmt/format.h>

namespace octa::selfcheck {

const char* conv_impl_name(ConvImpl impl) {
  switch (impl) {
    case ConvImpl::kNone:
      return "-";
    case ConvImpl::kCudaCore:
      return "cuda-core";
    case ConvImpl::kTensorCore:
      return "tensor-core";
    case ConvImpl::kCudnn:
      return "cudnn";
  }
  return "?";
}

const char* case_size_name(CaseSize size) {
  switch (size) {
    case CaseSize::kSmall:
      return "small";
    case CaseSize::kModel:
      return "model";
    case CaseSize::kLarge:
      return "large";
  }
  return "?";
}

std::string KernelCase::runners() const {
  if (gpu_library) return "gpu (cuDNN/cuBLAS: not emulated)";
  if (size == CaseSize::kLarge) return "gpu (large: not emulated)";
  return "emulator, gpu";
}

bool CaseResult::passed() const {
  if (!error.empty() || checks.empty()) return false;
  for (const CheckResult& c : checks) {
    if (!c.cmp.ok) return false;
  }
  return true;
}

const CheckResult* CaseResult::worst() const {
  const CheckResult* worst = nullptr;
  for (const CheckResult& c : checks) {
    if (worst == nullptr || c.cmp.worst_ratio > worst->cmp.worst_ratio) worst = &c;
  }
  return worst;
}

std::string CaseResult::failure() const {
  if (!error.empty()) return error;
  if (checks.empty()) return "the case compared nothing";
  std::string text;
  for (const CheckResult& c : checks) {
    if (c.cmp.ok) continue;
    if (!text.empty()) text += "\n";
    text += c.cmp.report;
  }
  return text;
}

void CaseRun::require(const std::string& what, bool ok) {
  CheckResult c{what, tol::kExact, {}};
  c.cmp.ok = ok;
  if (!ok) {
    c.cmp.failures = 1;
    c.cmp.worst_ratio = std::numeric_limits<double>::infinity();
    c.cmp.report = what + ": does not hold";
  }
  result_.checks.push_back(std::move(c));
}

// FNV-1a, continued over every download.
void CaseRun::fold(const void* bytes, std::size_t n) {
  if (result_.digest == 0) result_.digest = 1469598103934665603ull;
  const auto* p = static_cast<const unsigned char*>(bytes);
  for (std::size_t i = 0; i < n; ++i) {
    result_.digest ^= p[i];
    result_.digest *= 1099511628211ull;
  }
}

CaseResult run_case(const KernelCase& c, CaseDevice& dev) {
  const auto start = std::chrono::steady_clock::now();
  CaseRun run(dev);
  try {
    OCTA_CHECK(static_cast<bool>(c.body), "case '{}' has no body", c.name);
    c.body(run);
  } catch (const std::exception& e) {
    run.result().error = fmt::format("{} threw: {}", c.launcher, e.what());
  }
  CaseResult r = std::move(run.result());
  r.wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace octa::selfcheck
