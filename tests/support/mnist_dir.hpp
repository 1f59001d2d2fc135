// tests/support/mnist_dir.hpp: a directory holding the four MNIST IDX files (uncompressed) made
// from synthetic splits, for tests that run train_gpu without depending on the real MNIST.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/data/idx.hpp"
#include "tests/support/synthetic.hpp"

namespace octa::test {

namespace mnist_dir_detail {

inline void write_idx(const std::filesystem::path& path, std::uint32_t magic,
                      const std::vector<std::uint32_t>& dims,
                      const std::vector<std::uint8_t>& data) {
  std::vector<std::uint8_t> bytes;
  const auto be32 = [&](std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) bytes.push_back(static_cast<std::uint8_t>(v >> s));
  };
  be32(magic);
  for (const std::uint32_t d : dims) be32(d);
  bytes.insert(bytes.end(), data.begin(), data.end());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

}  // namespace mnist_dir_detail

// Writes train-images-idx3-ubyte etc. into dir: `train` and `test` random 28x28 images.
inline void write_synthetic_mnist(const std::filesystem::path& dir, int train, int test,
                                  std::uint64_t seed = 1) {
  namespace d = mnist_dir_detail;
  std::filesystem::create_directories(dir);
  const auto put = [&](const std::string& prefix, const data::Split& s) {
    const auto n = static_cast<std::uint32_t>(s.count);
    d::write_idx(dir / (prefix + "-images-idx3-ubyte"), data::kIdxImagesMagic, {n, 28, 28},
                 s.pixels);
    d::write_idx(dir / (prefix + "-labels-idx1-ubyte"), data::kIdxLabelsMagic, {n}, s.labels);
  };
  put("train", synthetic_split(train, seed));
  put("t10k", synthetic_split(test, seed + 1));
}

}  // namespace octa::test
