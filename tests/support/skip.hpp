// tests/support/skip.hpp: skipping a test case with a visible reason. Catch2 2.x has no SKIP, so a
// case prints "SKIPPED: <reason>" (ctest's SKIP_REGULAR_EXPRESSION turns that into "Skipped") and
// returns. scripts/test.sh lists every reason after the run.
#pragma once

#include <iostream>

#include <catch2/catch.hpp>

#define OCTA_SKIP(reason)                                  \
  do {                                                     \
    std::cout << "SKIPPED: " << (reason) << std::endl;     \
    WARN("SKIPPED: " << (reason));                         \
    return;                                                \
  } while (0)

// For [gpu] cases: skip unless a CUDA device is usable. Needs engine/core/device_probe.hpp.
#define OCTA_REQUIRE_GPU()                                                        \
  do {                                                                            \
    const auto octa_probe_ = ::octa::probe_cuda_device();                         \
    if (!octa_probe_.available) OCTA_SKIP("[gpu] test: " + octa_probe_.reason);   \
  } while (0)
