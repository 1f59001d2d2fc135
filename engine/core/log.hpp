// engine/core/log.hpp: logging setup. octa logs through spdlog; apps call init_logging() once with
// the value of --log-level (trace, debug, info, warn, error, critical, off).
#pragma once

#include <string_view>

#include <spdlog/spdlog.h>

namespace octa {

// Parses a --log-level value; throws octa::Error naming the flag and the accepted values.
spdlog::level::level_enum parse_log_level(std::string_view name);

// Installs a coloured stderr logger as spdlog's default, at the given level.
void init_logging(spdlog::level::level_enum level);

}  // namespace octa
