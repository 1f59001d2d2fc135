// fuzz/fuzz_idx.cpp: the IDX reader on arbitrary file content: plain IDX, or a gzip stream when
// the input starts with 1f 8b (engine/data/idx.hpp). Every rejection must be an octa::Error;
// every accepted file must hold exactly what its header claims.
#include <cstdint>

#include "engine/core/error.hpp"
#include "engine/data/idx.hpp"
#include "fuzz/fuzz_files.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using octa::fuzz::require;
  const auto path = octa::fuzz::write_input("input.idx", data, size);
  try {
    const octa::data::IdxImages im = octa::data::read_idx_images(path);
    require(im.rows > 0 && im.cols > 0 && im.count >= 0, "image dimensions");
    require(im.pixels.size() == static_cast<std::size_t>(im.count) *
                                    static_cast<std::size_t>(im.rows) *
                                    static_cast<std::size_t>(im.cols),
            "pixels match the header");
    require(im.sha256.size() == 64, "sha256 of the content");
  } catch (const octa::Error&) {
  }
  try {
    const octa::data::IdxLabels lb = octa::data::read_idx_labels(path);
    require(lb.labels.size() == static_cast<std::size_t>(lb.count), "labels match the header");
    for (const std::uint8_t l : lb.labels) require(l <= 9, "labels are digits");
  } catch (const octa::Error&) {
  }
  try {
    require(octa::data::is_gzip_file(path) == (size >= 2 && data[0] == 0x1f && data[1] == 0x8b),
            "gzip detection by magic");
  } catch (const octa::Error&) {
  }
  return 0;
}
