// engine/data/idx.hpp: reading IDX files (the MNIST format: big-endian header, then unsigned
// bytes), plain or gzip-compressed (recognised by the gzip magic bytes 1f 8b, not by the file
// name).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace octa::data {

inline constexpr std::uint32_t kIdxImagesMagic = 2051;  // 00 00 08 03: unsigned bytes, 3 dims
inline constexpr std::uint32_t kIdxLabelsMagic = 2049;  // 00 00 08 01: unsigned bytes, 1 dim

// The most data (bytes after the header) one IDX file may claim. MNIST's largest file holds 47 MB;
// the cap turns a header that claims 10^9 images into an error instead of an allocation attempt.
inline constexpr std::uint64_t kMaxIdxDataBytes = std::uint64_t{1} << 30;

struct IdxImages {
  int count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  // count x rows x cols, row-major
  std::string sha256;                // of the whole decompressed file content (header included)
};

struct IdxLabels {
  int count = 0;
  std::vector<std::uint8_t> labels;  // each in 0..max_label
  std::string sha256;                // of the whole decompressed file content (header included)
};

// Both throw octa::Error naming the file and the problem: unreadable or empty file, wrong magic or
// number of dimensions, data shorter or longer than the header implies, a claim over
// kMaxIdxDataBytes, a truncated or corrupt gzip stream (CRC included), a label outside
// 0..max_label (MNIST's 0..9 by default; 255 accepts every byte).
// Memory grows with the data actually decompressed, never with what the header merely claims.
IdxImages read_idx_images(const std::filesystem::path& path);
IdxLabels read_idx_labels(const std::filesystem::path& path, int max_label = 9);

// True when the file starts with the gzip magic bytes 1f 8b. Throws octa::Error when unreadable.
bool is_gzip_file(const std::filesystem::path& path);

// A single-member gzip stream of `bytes` (for tests and tools that write IDX files).
std::vector<std::uint8_t> gzip_compress(std::span<const std::uint8_t> bytes, int level = 6);

}  // namespace octa::data
