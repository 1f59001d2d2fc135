// tests/support/png_craft.hpp: PNG files put together byte by byte (chunks with their CRCs, image
// data in stored, uncompressed deflate blocks), for the inputs no PNG writer makes on purpose: a
// header that lies about the size, 1-bit gray, palettes, 16-bit channels, broken checksums.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "tests/support/big_endian.hpp"

namespace octa::test {

inline std::uint32_t crc32_of(const std::uint8_t* p, std::size_t n,
                              std::uint32_t crc = 0xffffffffu) {
  for (std::size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return crc;
}

inline void png_chunk(std::vector<std::uint8_t>& out, const char* type,
                      const std::vector<std::uint8_t>& data) {
  put_be32(out, static_cast<std::uint32_t>(data.size()));
  std::vector<std::uint8_t> body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  out.insert(out.end(), body.begin(), body.end());
  put_be32(out, crc32_of(body.data(), body.size()) ^ 0xffffffffu);
}

// A zlib stream of stored (uncompressed) deflate blocks.
inline std::vector<std::uint8_t> zlib_stored(const std::vector<std::uint8_t>& data) {
  std::vector<std::uint8_t> z{0x78, 0x01};
  std::size_t at = 0;
  do {
    const std::size_t n = std::min<std::size_t>(65535, data.size() - at);
    z.push_back(at + n == data.size() ? 1 : 0);
    z.push_back(static_cast<std::uint8_t>(n));
    z.push_back(static_cast<std::uint8_t>(n >> 8));
    z.push_back(static_cast<std::uint8_t>(~n));
    z.push_back(static_cast<std::uint8_t>(~n >> 8));
    z.insert(z.end(), data.begin() + static_cast<std::ptrdiff_t>(at),
             data.begin() + static_cast<std::ptrdiff_t>(at + n));
    at += n;
  } while (at < data.size());
  std::uint32_t a = 1, b = 0;
  for (const std::uint8_t c : data) {
    a = (a + c) % 65521;
    b = (b + a) % 65521;
  }
  put_be32(z, (b << 16) | a);
  return z;
}

struct PngSpec {
  std::uint32_t width = 1, height = 1;
  std::uint8_t bit_depth = 8;
  std::uint8_t color_type = 0;     // 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA
  std::vector<std::uint8_t> rows;  // filtered scanlines (a 0 filter byte before each row)
  std::vector<std::pair<std::string, std::vector<std::uint8_t>>> before_idat;  // PLTE, tRNS
};

inline std::vector<std::uint8_t> craft_png(const PngSpec& s) {
  std::vector<std::uint8_t> out{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<std::uint8_t> ihdr;
  put_be32(ihdr, s.width);
  put_be32(ihdr, s.height);
  ihdr.insert(ihdr.end(), {s.bit_depth, s.color_type, 0, 0, 0});
  png_chunk(out, "IHDR", ihdr);
  for (const auto& [type, data] : s.before_idat) png_chunk(out, type.c_str(), data);
  png_chunk(out, "IDAT", zlib_stored(s.rows));
  png_chunk(out, "IEND", {});
  return out;
}

}  // namespace octa::test
