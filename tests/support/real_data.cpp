// tests/support/real_data.cpp: locating the real MNIST and Fashion-MNIST for tests, without the
// network.
#include "tests/support/real_data.hpp"

#include <cstdlib>
#include <system_error>

namespace octa::test {
namespace fs = std::filesystem;

namespace {

// $env (or its <folder>/raw), then ../shared/data/<shared> beside the checkout, then the checkout's
// data/<folder>/raw: the first that holds the training images.
std::optional<fs::path> find_real(const char* env_name, const char* shared, const char* folder) {
  const auto has_files = [](const fs::path& dir) {
    std::error_code ec;
    return fs::exists(dir / "train-images-idx3-ubyte.gz", ec) ||
           fs::exists(dir / "train-images-idx3-ubyte", ec);
  };
  if (const char* env = std::getenv(env_name); env && *env) {
    if (has_files(env)) return fs::path(env);
    if (has_files(fs::path(env) / folder / "raw")) return fs::path(env) / folder / "raw";
  }
  const fs::path source(OCTA_SOURCE_DIR);
  for (const fs::path& dir :
       {source / ".." / "shared" / "data" / shared, source / "data" / folder / "raw"}) {
    if (has_files(dir)) return fs::weakly_canonical(dir);
  }
  return std::nullopt;
}

}  // namespace

std::optional<fs::path> real_mnist_dir() {
  return find_real("OCTA_MNIST_DIR", "mnist", "MNIST");
}

const char* real_mnist_missing_reason() {
  return "real MNIST not found (looked in $OCTA_MNIST_DIR, ../shared/data/mnist and "
         "data/MNIST/raw; run scripts/setup.sh)";
}

std::optional<fs::path> real_fashion_mnist_dir() {
  return find_real("OCTA_FASHION_MNIST_DIR", "fashion-mnist", "FashionMNIST");
}

const char* real_fashion_mnist_missing_reason() {
  return "real Fashion-MNIST not found (looked in $OCTA_FASHION_MNIST_DIR, "
         "../shared/data/fashion-mnist and data/FashionMNIST/raw; run scripts/setup.sh)";
}

}  // namespace octa::test
