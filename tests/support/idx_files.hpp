// tests/support/idx_files.hpp: the bytes of IDX files (MNIST's format) for tests that write their
// own datasets: big-endian headers, images from a pixel pattern or given pixels, labels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "tests/support/big_endian.hpp"
#include "tests/support/files.hpp"

namespace octa::test {

// The pixel of image i at position p in idx_images_file: a pattern that differs between images and
// positions.
inline std::uint8_t idx_pixel(std::size_t i, std::size_t p) {
  return static_cast<std::uint8_t>((i * 37 + p * 11 + (p >> 5)) & 0xff);
}

// An IDX images file of `count` images of rows x cols holding `pixels` (count x rows x cols).
inline Bytes idx_images(const std::vector<std::uint8_t>& pixels, std::uint32_t count,
                        std::uint32_t rows = 28, std::uint32_t cols = 28,
                        std::uint32_t magic = 2051) {
  Bytes b;
  put_be32(b, magic);
  put_be32(b, count);
  put_be32(b, rows);
  put_be32(b, cols);
  b.insert(b.end(), pixels.begin(), pixels.end());
  return b;
}

// An IDX images file whose pixels follow idx_pixel.
inline Bytes idx_images_file(std::uint32_t count, std::uint32_t rows = 28, std::uint32_t cols = 28,
                             std::uint32_t magic = 2051) {
  const std::size_t per = std::size_t{rows} * cols;
  std::vector<std::uint8_t> pixels(count * per);
  for (std::size_t i = 0; i < count; ++i) {
    for (std::size_t p = 0; p < per; ++p) pixels[i * per + p] = idx_pixel(i, p);
  }
  return idx_images(pixels, count, rows, cols, magic);
}

inline Bytes idx_labels_file(const std::vector<std::uint8_t>& labels, std::uint32_t magic = 2049) {
  Bytes b;
  put_be32(b, magic);
  put_be32(b, static_cast<std::uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

}  // namespace octa::test
