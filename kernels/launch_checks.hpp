// kernels/launch_checks.hpp: argument checks shared by the kernel launchers (host code, run before
// any CUDA call, so a bad call fails the same way with or without a device). Each message names
// the launcher and the argument, so it says what to change.
#pragma once

#include <string>

#include "engine/core/error.hpp"

namespace octa::gpu {

inline void require(bool ok, const char* op, const std::string& what) {
  OCTA_CHECK(ok, "{}: {}", op, what);
}

inline void require_positive(const char* op, const char* name, long long value) {
  OCTA_CHECK(value > 0, "{}: {} = {} must be positive", op, name, value);
}

inline void require_pointer(const char* op, const char* name, const void* p) {
  OCTA_CHECK(p != nullptr, "{}: {} must not be null", op, name);
}

}  // namespace octa::gpu
