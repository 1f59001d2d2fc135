// engine/core/error.hpp: octa's exception type and the OCTA_CHECK precondition macro.
// Library code never exits: every failure is an octa::Error whose message says what is wrong and,
// where there is one, which file or flag caused it.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace octa {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace octa

// OCTA_CHECK(cond, "format {}", args...): throws octa::Error with the formatted message when false.
#define OCTA_CHECK(cond, ...)                                 \
  do {                                                        \
    if (!(cond)) throw ::octa::Error(::fmt::format(__VA_ARGS__)); \
  } while (0)
