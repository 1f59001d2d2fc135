// tests/support/real_data.cpp: locating the real MNIST for tests, without the network.
#include "tests/support/real_data.hpp"

#include <cstdlib>
#include <system_error>

namespace octa::test {
namespace fs = std::filesystem;

std::optional<fs::path> real_mnist_dir() {
  const auto has_files = [](const fs::path& dir) {
    std::error_code ec;
    return fs::exists(dir / "train-images-idx3-ubyte.gz", ec) ||
           fs::exists(dir / "train-images-idx3-ubyte", ec);
  };
  if (const char* env = std::getenv("OCTA_MNIST_DIR"); env && *env) {
    if (has_files(env)) return fs::path(env);
    if (has_files(fs::path(env) / "MNIST" / "raw")) return fs::path(env) / "MNIST" / "raw";
  }
  const fs::path source(OCTA_SOURCE_DIR);
  for (const fs::path& dir : {source / ".." / "shared" / "data" / "mnist",
                              source / "data" / "MNIST" / "raw"}) {
    if (has_files(dir)) return fs::weakly_canonical(dir);
  }
  return std::nullopt;
}

const char* real_mnist_missing_reason() {
  return "real MNIST not found (looked in $OCTA_MNIST_DIR, ../shared/data/mnist and "
         "data/MNIST/raw; run scripts/setup.sh)";
}

}  // namespace octa::test
