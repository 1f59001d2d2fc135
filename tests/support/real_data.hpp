// tests/support/real_data.hpp: where the tests find the real MNIST (../shared/data/mnist beside the
// checkout, the repo's own data/ as the setup script lays it out, or $OCTA_MNIST_DIR).
#pragma once

#include <filesystem>
#include <optional>

namespace octa::test {

// A directory that octa::find_mnist() accepts, or nullopt (the caller then OCTA_SKIPs).
std::optional<std::filesystem::path> real_mnist_dir();

// The message to skip with when real_mnist_dir() is empty.
const char* real_mnist_missing_reason();

}  // namespace octa::test
