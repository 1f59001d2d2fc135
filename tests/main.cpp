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
  Catch::Session session;
  if (const int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
  // ctest runs one case per invocation by name: a name that matches nothing must fail, not pass.
  auto& config = session.configData();
  config.warnings =
      static_cast<Catch::WarnAbout::What>(config.warnings | Catch::WarnAbout::NoTests);
  return session.run();
}
