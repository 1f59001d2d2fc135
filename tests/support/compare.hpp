// tests/support/compare.hpp: the tests' include of octa's one tolerance rule and table
// (engine/core/tolerance.hpp, where the thresholds live), under the names the tests use
// (octa::test::tol::kGpuVsCpu, octa::test::compare, ...), and the Catch2 assertion over it.
#pragma once

#include "engine/core/tolerance.hpp"

namespace octa::test {

using ::octa::compare;
using ::octa::CompareResult;
using ::octa::Tolerance;
namespace tol {
using namespace ::octa::tol;  // NOLINT(google-build-using-namespace): the table, by its names
}  // namespace tol

}  // namespace octa::test

// CHECK_CLOSE(name, got, ref, n, tolerance): one Catch2 assertion for a whole tensor.
#define OCTA_CHECK_CLOSE(name, got, ref, n, tolerance)                                    \
  do {                                                                                    \
    const auto octa_cmp_ = ::octa::test::compare((name), (got), (ref), (n), (tolerance)); \
    INFO(octa_cmp_.report);                                                               \
    CHECK(octa_cmp_.ok);                                                                  \
  } while (0)
