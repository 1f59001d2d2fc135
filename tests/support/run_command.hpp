// tests/support/run_command.hpp: running one of octa's executables as a user would, capturing what
// it printed (stdout and stderr together) and its exit status.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include <fmt/format.h>

namespace octa::test {

struct CommandResult {
  int exit_code = -1;  // -1: killed by a signal
  std::string output;  // stdout and stderr together
};

// Runs `exe args` through the shell (args already quoted as needed).
inline CommandResult run_command(const std::string& exe, const std::string& args) {
  const std::string cmd = fmt::format("'{}' {} 2>&1", exe, args);
  CommandResult r;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) r.output += buf;
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

inline std::string shell_quoted(const std::filesystem::path& p) {
  return fmt::format("'{}'", p.string());
}

}  // namespace octa::test
