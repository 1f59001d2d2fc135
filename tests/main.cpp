// tests/main.cpp: the Catch2 entry point shared by every test executable. Logging is quiet (warn)
// unless OCTA_TEST_LOG_LEVEL says otherwise; OpenBLAS gets its tuned kernels as in the apps.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdlib>

#include "engine/core/log.hpp"
#include "engine/cpu/blas.hpp"

int main(int argc, char* argv[]) {
  octa::cpu::reexec_with_tuned_blas(argv);
  const char* level = std::getenv("OCTA_TEST_LOG_LEVEL");
  octa::init_logging(octa::parse_log_level(level ? level : "warn"));
  return Catch::Session().run(argc, argv);
}
