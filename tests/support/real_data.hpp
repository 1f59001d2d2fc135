// tests/support/real_data.hpp: where the tests find the real MNIST (../shared/data/mnist beside the
// checkout, the repo's own data/ as the setup script lays it out, or $OCTA_MNIST_DIR) and the real
// Fashion-MNIST (../shared/data/fashion-mnist, data/FashionMNIST/raw or $OCTA_FASHION_MNIST_DIR).
#pragma once

#include <filesystem>
#include <optional>

namespace octa::test {

// A directory that octa::find_mnist() accepts, or nullopt (the caller then OCTA_SKIPs).
std::optional<std::filesystem::path> real_mnist_dir();

// The message to skip with when real_mnist_dir() is empty.
const char* real_mnist_missing_reason();

// The same for Fashion-MNIST.
std::optional<std::filesystem::path> real_fashion_mnist_dir();
const char* real_fashion_mnist_missing_reason();

}  // namespace octa::test
