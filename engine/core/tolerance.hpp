// engine/core/tolerance.hpp: THE tolerance rule of octa and its one table of thresholds.
//
//   a value passes when |got - ref| <= atol + rtol * |ref|      (NaN or Inf in got never passes)
//
// Every comparison of a computed tensor with a reference uses it: the tests (through
// tests/support/compare.hpp), the kernel cases that the emulator, the [gpu] tests, octa_selftest
// and train_gpu's --conv auto check all run (engine/selfcheck/). Thresholds are named per kind of
// comparison in octa::tol below, never written inline. A failed comparison's report names the
// tensor, the worst few mismatches and the largest errors.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace octa {

struct Tolerance {
  double atol;
  double rtol;
  const char* name = "custom";  // its entry in octa::tol, for reports
};

// Per-comparison thresholds. float32 against a double reference of the same formula: rounding of a
// few thousand-term sums. Gradient checks: central differences in double, step 1e-6.
namespace tol {
inline constexpr Tolerance kFloatVsDouble{1e-5, 1e-4, "kFloatVsDouble"};  // float32 vs double
inline constexpr Tolerance kGradCheck{1e-7, 1e-5, "kGradCheck"};  // analytic vs numerical, double
inline constexpr Tolerance kModelGradCheck{1e-6, 1e-4, "kModelGradCheck"};  // whole-model, double
inline constexpr Tolerance kGpuVsCpu{1e-5, 1e-4, "kGpuVsCpu"};  // a GPU kernel vs the CPU reference
inline constexpr Tolerance kGpuStepVsCpu{1e-4, 1e-3, "kGpuStepVsCpu"};  // training steps, GPU/CPU
// N data-parallel ranks vs one process (engine/dist/): the same float math, each gradient summed
// over the ranks' shares in another order, through Adam steps.
inline constexpr Tolerance kDataParallel{1e-5, 1e-4, "kDataParallel"};
inline constexpr Tolerance kExact{0.0, 0.0, "kExact"};  // bit-identical (determinism, round trips)
}  // namespace tol

struct CompareResult {
  bool ok = true;
  std::size_t failures = 0;
  double max_abs_err = 0.0;
  double max_rel_err = 0.0;
  // The largest |got - ref| / (atol + rtol * |ref|): at most 1 when every value passes (0 / 0
  // counts as 0; an error where nothing is allowed, or a NaN, as infinity).
  double worst_ratio = 0.0;
  std::string report;  // empty when ok
};

template <class A, class B>
CompareResult compare(const std::string& name, const A* got, const B* ref, std::size_t n,
                      Tolerance t, std::size_t show = 5) {
  CompareResult r;
  struct Bad {
    std::size_t i;
    double got, ref, excess;
  };
  constexpr double kInf = std::numeric_limits<double>::infinity();
  std::vector<Bad> bad;
  for (std::size_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(got[i]), e = static_cast<double>(ref[i]);
    const double err = std::abs(g - e);
    const double limit = t.atol + t.rtol * std::abs(e);
    r.max_abs_err = std::max(r.max_abs_err, err);
    if (e != 0.0) r.max_rel_err = std::max(r.max_rel_err, err / std::abs(e));
    const bool pass = std::isfinite(g) && err <= limit;
    r.worst_ratio =
        std::max(r.worst_ratio, !pass ? (limit > 0.0 && std::isfinite(err) ? err / limit : kInf)
                                      : (limit > 0.0 ? err / limit : 0.0));
    if (!pass) {
      ++r.failures;
      bad.push_back({i, g, e, std::isfinite(err) ? err - limit : kInf});
    }
  }
  r.ok = r.failures == 0;
  if (!r.ok) {
    std::sort(bad.begin(), bad.end(),
              [](const Bad& x, const Bad& y) { return x.excess > y.excess; });
    std::ostringstream os;
    os.precision(9);
    os << name << ": " << r.failures << " of " << n << " values outside atol " << t.atol
       << " + rtol " << t.rtol << " * |ref| (" << t.name << "; max abs err " << r.max_abs_err
       << ", max rel err " << r.max_rel_err << "); worst:";
    for (std::size_t k = 0; k < std::min(show, bad.size()); ++k) {
      os << "\n  [" << bad[k].i << "] got " << bad[k].got << " ref " << bad[k].ref;
    }
    r.report = os.str();
  }
  return r;
}

}  // namespace octa
