// engine/core/log.cpp: spdlog setup for apps and tests.
#include "engine/core/log.hpp"

#include <array>

#include <spdlog/sinks/stdout_color_sinks.h>

#include "engine/core/error.hpp"

namespace octa {

spdlog::level::level_enum parse_log_level(std::string_view name) {
  static constexpr std::array<std::string_view, 7> kNames = {"trace", "debug", "info",    "warn",
                                                             "error", "critical", "off"};
  for (std::size_t i = 0; i < kNames.size(); ++i) {
    if (name == kNames[i]) return static_cast<spdlog::level::level_enum>(i);
  }
  throw Error(fmt::format("--log-level: unknown level '{}' (use one of: {})", name,
                          fmt::join(kNames, ", ")));
}

void init_logging(spdlog::level::level_enum level) {
  auto logger = spdlog::get("octa");
  if (!logger) logger = spdlog::stderr_color_mt("octa");
  logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(level);
}

}  // namespace octa
