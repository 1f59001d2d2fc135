// tests/support/compare.hpp: THE tolerance rule of octa's tests, in one place.
//
//   a value passes when |got - ref| <= atol + rtol * |ref|      (NaN or Inf in got never passes)
//
// Thresholds are named per comparison in kTolerances below, never written inline in a test. On
// failure the report names the tensor, the worst few mismatches and the largest errors.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <sstream>
#include <string>
#include <vector>

namespace octa::test {

struct Tolerance {
  double atol;
  double rtol;
};

// Per-comparison thresholds. float32 against a double reference of the same formula: rounding of a
// few thousand-term sums. Gradient checks: central differences in double, step 1e-6.
namespace tol {
inline constexpr Tolerance kFloatVsDouble{1e-5, 1e-4};    // float32 op vs double reference
inline constexpr Tolerance kGradCheck{1e-7, 1e-5};        // analytic vs numerical, in double
inline constexpr Tolerance kModelGradCheck{1e-6, 1e-4};   // whole-model gradient check, in double
inline constexpr Tolerance kGpuVsCpu{1e-5, 1e-4};         // a GPU kernel vs the CPU reference
inline constexpr Tolerance kGpuStepVsCpu{1e-4, 1e-3};     // training steps, GPU vs CPU
inline constexpr Tolerance kExact{0.0, 0.0};              // bit-identical (determinism, round trips)
}  // namespace tol

struct CompareResult {
  bool ok = true;
  std::size_t failures = 0;
  double max_abs_err = 0.0;
  double max_rel_err = 0.0;
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
  std::vector<Bad> bad;
  for (std::size_t i = 0; i < n; ++i) {
    const double g = static_cast<double>(got[i]), e = static_cast<double>(ref[i]);
    const double err = std::abs(g - e);
    const double limit = t.atol + t.rtol * std::abs(e);
    r.max_abs_err = std::max(r.max_abs_err, err);
    if (e != 0.0) r.max_rel_err = std::max(r.max_rel_err, err / std::abs(e));
    if (!std::isfinite(g) || !(err <= limit)) {
      ++r.failures;
      bad.push_back({i, g, e, std::isfinite(err) ? err - limit : INFINITY});
    }
  }
  r.ok = r.failures == 0;
  if (!r.ok) {
    std::sort(bad.begin(), bad.end(), [](const Bad& x, const Bad& y) { return x.excess > y.excess; });
    std::ostringstream os;
    os.precision(9);
    os << name << ": " << r.failures << " of " << n << " values outside atol " << t.atol
       << " + rtol " << t.rtol << " * |ref| (max abs err " << r.max_abs_err << ", max rel err "
       << r.max_rel_err << "); worst:";
    for (std::size_t k = 0; k < std::min(show, bad.size()); ++k) {
      os << "\n  [" << bad[k].i << "] got " << bad[k].got << " ref " << bad[k].ref;
    }
    r.report = os.str();
  }
  return r;
}

}  // namespace octa::test

// CHECK_CLOSE(name, got, ref, n, tolerance): one Catch2 assertion for a whole tensor.
#define OCTA_CHECK_CLOSE(name, got, ref, n, tolerance)                                   \
  do {                                                                                   \
    const auto octa_cmp_ = ::octa::test::compare((name), (got), (ref), (n), (tolerance)); \
    INFO(octa_cmp_.report);                                                              \
    CHECK(octa_cmp_.ok);                                                                 \
  } while (0)
