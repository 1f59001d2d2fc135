// fuzz/fuzz_idx_gzip.cpp: the IDX reader behind a valid gzip stream: the input is compressed
// first, so the fuzzer's mutations reach the IDX header and size checks of the gzip path (claims
// against the deflate ratio and the gzip trailer's size hint) instead of dying in zlib's CRC.
#include <cstdint>
#include <span>

#include "engine/core/error.hpp"
#include "engine/data/idx.hpp"
#include "fuzz/fuzz_files.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using octa::fuzz::require;
  const std::vector<std::uint8_t> gz =
      octa::data::gzip_compress(std::span<const std::uint8_t>(data, size), size % 10);
  const auto path = octa::fuzz::write_input("input.idx.gz", gz.data(), gz.size());
  try {
    const octa::data::IdxImages im = octa::data::read_idx_images(path);
    require(16 + im.pixels.size() == size, "a gzip IDX file is the input, every byte of it");
    require(im.pixels.size() == static_cast<std::size_t>(im.count) *
                                    static_cast<std::size_t>(im.rows) *
                                    static_cast<std::size_t>(im.cols),
            "pixels match the header");
  } catch (const octa::Error&) {
  }
  try {
    const octa::data::IdxLabels lb = octa::data::read_idx_labels(path);
    require(8 + lb.labels.size() == size, "a gzip IDX file is the input, every byte of it");
    for (const std::uint8_t l : lb.labels) require(l <= 9, "labels are digits");
  } catch (const octa::Error&) {
  }
  return 0;
}
