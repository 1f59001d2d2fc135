// tests/support/run_command.hpp: runs an executable as a user would, through the shell, and
// returns its exit status and everything it printed (stdout and stderr together).
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

#include <catch2/catch.hpp>

namespace octa::test {

struct CommandResult {
  int exit_code = -1;  // -1: killed by a signal
  std::string output;
};

// `command` is a shell command line, already quoted as needed.
inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) r.output += buf;
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace octa::test
