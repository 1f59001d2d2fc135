// tests/support/gradcheck.hpp: the finite-difference gradient checker (central differences, in
// double) that proves every CPU backward pass and whole-model gradients, with Caffe-style handling
// of kinks (ReLU at 0, max-pool switches), plus the seeded random fills and projected loss it uses.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <numeric>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/core/random_fill.hpp"
#include "tests/support/compare.hpp"

namespace octa::test {

// Seeded random numbers (engine/core/random_fill.hpp, shared with the kernel cases).
using ::octa::fill_uniform;
using ::octa::random_vector;
using ::octa::uniform01_53;

// ---------------------------------------------------------------------------------------------
// A scalar loss from a tensor output: loss = sum(out .* R) for a fixed random R, so every output
// element matters and d loss / d out = R is what the backward pass is fed.
class ProjectedLoss {
 public:
  ProjectedLoss(std::size_t n, std::uint64_t seed) : weights_(random_vector<double>(n, seed)) {}

  // R, the gradient of the loss with respect to the output: the `dout` of the backward pass.
  const std::vector<double>& weights() const { return weights_; }
  const double* dout() const { return weights_.data(); }
  std::size_t size() const { return weights_.size(); }

  template <class T>
  double operator()(const T* out) const {
    double s = 0.0;  // fixed order: the loss must be a deterministic function of out
    for (std::size_t i = 0; i < weights_.size(); ++i)
      s += static_cast<double>(out[i]) * weights_[i];
    return s;
  }

 private:
  std::vector<double> weights_;
};

// ---------------------------------------------------------------------------------------------
// Which entries to check.

// 0, 1, ..., n - 1.
inline std::vector<std::size_t> all_indices(std::size_t n) {
  std::vector<std::size_t> v(n);
  std::iota(v.begin(), v.end(), std::size_t{0});
  return v;
}

// min(count, n) distinct indices in [0, n), sorted, chosen by seed (for large parameter tensors).
inline std::vector<std::size_t> sample_indices(std::size_t n, std::size_t count,
                                               std::uint64_t seed) {
  std::vector<std::size_t> v = all_indices(n);
  if (count >= n) return v;
  PhiloxStream s(seed, 0x5a3b1e);
  for (std::size_t i = 0; i < count; ++i) {  // partial Fisher-Yates
    const auto j = i + s.next_below(static_cast<std::uint32_t>(n - i));
    std::swap(v[i], v[j]);
  }
  v.resize(count);
  std::sort(v.begin(), v.end());
  return v;
}

// ---------------------------------------------------------------------------------------------
// The checker.

struct GradCheckResult {
  std::size_t checked = 0;        // indices examined (kinks included)
  std::size_t kinks_skipped = 0;  // points whose +-h interval straddles a kink
  std::size_t failures = 0;       // points outside the tolerance that no kink explains
  double max_abs_err = 0.0;       // over the points not skipped
  double max_rel_err = 0.0;
  std::string report;  // the worst failures and a summary; empty when there are none

  bool ok() const { return failures == 0; }
};

// A point straddles a kink when the one-sided differences disagree by more than this many
// tolerances. Away from kinks they differ by about h * |f''|, far below it.
inline constexpr double kKinkFactor = 10.0;

// Checks analytic[i] against the central difference (f(x+h) - f(x-h)) / (2h) for each i in
// indices, perturbing x[i] in place (and restoring it exactly). `loss` must be a pure function of
// x: it recomputes the forward pass from scratch each call (reset any state it mutates, such as
// BatchNorm running statistics). The numerical derivative is the reference of the tolerance rule:
// |analytic - numeric| <= tol.atol + tol.rtol * |numeric|.
//
// Kinks (Caffe's "kink" allowance, decided from the function itself): a point that fails is
// skipped, and counted in kinks_skipped, when the forward and backward differences
// (f(x+h) - f(x)) / h and (f(x) - f(x-h)) / h disagree by more than kKinkFactor tolerances and the
// analytic value lies between them (as a one-sided derivative at a kink does). Callers should
// require kinks_skipped to be a small fraction of checked.
inline GradCheckResult gradcheck(const std::function<double()>& loss, double* x,
                                 const double* analytic, std::span<const std::size_t> indices,
                                 double h, Tolerance tol, std::string_view name = "gradcheck") {
  struct Bad {
    std::size_t i;
    double analytic, numeric, forward, backward, excess;
  };
  GradCheckResult r;
  std::vector<Bad> bad;
  const double f0 = loss();
  for (const std::size_t i : indices) {
    const double saved = x[i];
    x[i] = saved + h;
    const double fp = loss();
    x[i] = saved - h;
    const double fm = loss();
    x[i] = saved;
    ++r.checked;

    const double numeric = (fp - fm) / (2.0 * h);
    const double fwd = (fp - f0) / h, bwd = (f0 - fm) / h;
    const double a = analytic[i];
    const double err = std::abs(a - numeric);
    const double limit = tol.atol + tol.rtol * std::abs(numeric);
    if (std::isfinite(a) && err <= limit) {
      r.max_abs_err = std::max(r.max_abs_err, err);
      if (numeric != 0.0) r.max_rel_err = std::max(r.max_rel_err, err / std::abs(numeric));
      continue;
    }
    const bool straddles = std::abs(fwd - bwd) > kKinkFactor * limit;
    const bool between = a >= std::min(fwd, bwd) - limit && a <= std::max(fwd, bwd) + limit;
    if (std::isfinite(a) && straddles && between) {
      ++r.kinks_skipped;
      continue;
    }
    ++r.failures;
    r.max_abs_err = std::max(r.max_abs_err, err);
    if (numeric != 0.0) r.max_rel_err = std::max(r.max_rel_err, err / std::abs(numeric));
    bad.push_back({i, a, numeric, fwd, bwd, std::isfinite(err) ? err - limit : INFINITY});
  }
  if (r.failures > 0) {
    std::sort(bad.begin(), bad.end(),
              [](const Bad& p, const Bad& q) { return p.excess > q.excess; });
    std::ostringstream os;
    os.precision(9);
    os << name << ": " << r.failures << " of " << r.checked << " gradients outside atol "
       << tol.atol << " + rtol " << tol.rtol << " * |numeric| (h " << h << ", max abs err "
       << r.max_abs_err << ", max rel err " << r.max_rel_err << ", kinks skipped "
       << r.kinks_skipped << "); worst:";
    for (std::size_t k = 0; k < std::min<std::size_t>(5, bad.size()); ++k) {
      os << "\n  [" << bad[k].i << "] analytic " << bad[k].analytic << " numeric " << bad[k].numeric
         << " (forward " << bad[k].forward << ", backward " << bad[k].backward << ")";
    }
    r.report = os.str();
  }
  return r;
}

}  // namespace octa::test

// OCTA_CHECK_GRADCHECK(result, max_kink_fraction): Catch2 assertions that a gradcheck passed and
// skipped at most that fraction of its points as kinks.
#define OCTA_CHECK_GRADCHECK(result, max_kink_fraction)                                 \
  do {                                                                                  \
    const ::octa::test::GradCheckResult& octa_gc_ = (result);                           \
    INFO(octa_gc_.report);                                                              \
    INFO("checked " << octa_gc_.checked << ", kinks skipped " << octa_gc_.kinks_skipped \
                    << ", max abs err " << octa_gc_.max_abs_err << ", max rel err "     \
                    << octa_gc_.max_rel_err);                                           \
    CHECK(octa_gc_.checked > 0);                                                        \
    CHECK(octa_gc_.failures == 0);                                                      \
    CHECK(static_cast<double>(octa_gc_.kinks_skipped) <=                                \
          (max_kink_fraction) * static_cast<double>(octa_gc_.checked));                 \
  } while (0)
