// tests/support/three_classes.hpp: a small synthetic IDX dataset of three classes that tests
// write (horizontal bars, vertical bars, diagonals on low noise, each at a random position), with
// prefixed file names as --dataset idx finds them: easy to learn to near-perfect accuracy.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/core/philox.hpp"
#include "tests/support/files.hpp"
#include "tests/support/idx_files.hpp"

namespace octa::test {

// A 28x28 image of class c of three: a bright horizontal bar (0), a vertical bar (1) or a
// diagonal (2), each at a position of its own, on low noise. Easy to tell apart, not trivially:
// the bars move and the noise differs between images.
inline void draw_three_class_image(std::uint8_t* img, int c, octa::PhiloxStream& rng) {
  for (int p = 0; p < 28 * 28; ++p) img[p] = static_cast<std::uint8_t>(rng.next_below(60));
  const int at = 6 + static_cast<int>(rng.next_below(16));
  const auto light = [&](int y, int x) {
    img[y * 28 + x] = static_cast<std::uint8_t>(200 + rng.next_below(56));
  };
  for (int i = 2; i < 26; ++i) {
    for (int t = 0; t < 2; ++t) {
      if (c == 0) light(at + t, i);
      if (c == 1) light(i, at + t);
      if (c == 2) light(i, (i + at + t) % 28);
    }
  }
}

// Writes a three-class IDX dataset (prefixed names, as --dataset idx finds them) into dir.
inline void write_three_classes(const std::filesystem::path& dir, std::uint32_t n_train,
                                std::uint32_t n_test) {
  octa::PhiloxStream rng(77, 3);
  const auto split = [&](std::uint32_t n, const std::string& images, const std::string& labels) {
    std::vector<std::uint8_t> pixels(std::size_t{n} * 784), y(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      y[i] = static_cast<std::uint8_t>(rng.next_below(3));
      draw_three_class_image(pixels.data() + std::size_t{i} * 784, y[i], rng);
    }
    octa::test::write_bytes(dir / images, octa::test::idx_images(pixels, n));
    octa::test::write_bytes(dir / labels, octa::test::idx_labels_file(y));
  };
  split(n_train, "shapes-train-images-idx3-ubyte", "shapes-train-labels-idx1-ubyte");
  split(n_test, "shapes-test-images-idx3-ubyte", "shapes-test-labels-idx1-ubyte");
}

}  // namespace octa::test
