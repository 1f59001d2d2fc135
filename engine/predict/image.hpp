// engine/predict/image.hpp: 8-bit images in memory, and PNG/JPEG files to and from them, through
// Debian's libpng (simplified API) and libjpeg-turbo (TurboJPEG API). No decoder is written here:
// this file only checks what a file claims before either library is asked to decode it.
//
// Every read failure is an octa::Error that names the file and says what is wrong: an empty file,
// a file that is neither PNG nor JPEG, a truncated or corrupt stream (the library's own words), a
// 16-bit PNG, a PNG chunk that claims more bytes than the file holds, a header that claims more
// pixels than ImageLimits allows, or a PNG whose image data is too short to inflate to the pixels
// its header claims. These last checks run on the headers alone, before libpng or TurboJPEG
// allocates anything for them or octa allocates the pixels, so a PNG that lies about its size costs
// nothing. (JPEG gets no such bound: an arithmetic-coded JPEG compresses far beyond deflate's
// limit, so a JPEG within ImageLimits gets its pixel buffer before its data is read.)
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace octa::predict {

// channels: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA; 8 bits each, interleaved, row-major, no padding.
// Alpha is straight (not premultiplied), as PNG stores it.
struct Image {
  int width = 0, height = 0, channels = 0;
  std::vector<std::uint8_t> pixels;  // width * height * channels
  std::uint8_t at(int x, int y, int c = 0) const {
    return pixels[(static_cast<std::size_t>(y) * static_cast<std::size_t>(width) +
                   static_cast<std::size_t>(x)) *
                      static_cast<std::size_t>(channels) +
                  static_cast<std::size_t>(c)];
  }
};

// Throws octa::Error unless 1 <= channels <= 4 and pixels.size() matches the dimensions.
void check_image(const Image& image, const std::string& what);

enum class ImageFormat { kPng, kJpeg };
const char* image_format_name(ImageFormat f);  // "PNG", "JPEG"

// From the first bytes (the PNG signature, or JPEG's SOI marker FF D8 FF); nullopt for neither.
std::optional<ImageFormat> sniff_image_format(std::span<const std::uint8_t> bytes);

struct ImageLimits {
  // 50 megapixels: a modern phone photo fits; a header claiming 100000 x 100000 does not.
  std::uint64_t max_pixels = 50'000'000;
  std::uint64_t max_file_bytes = std::uint64_t{256} << 20;  // 256 MiB
};

// Decodes a PNG or JPEG held in memory. `name` (usually the path) starts every error message.
// PNG: gray, gray+alpha, RGB, RGBA, palette (expanded to RGB or RGBA), 1..8 bits per channel;
// 16-bit PNGs are refused. JPEG: grayscale or colour (YCbCr/RGB); CMYK is refused. Any libjpeg
// warning (e.g. "premature end of data") is an error: a truncated JPEG is never half-decoded.
// format, when not null, receives the format the bytes were decoded as.
Image decode_image(std::span<const std::uint8_t> bytes, const std::string& name,
                   const ImageLimits& limits = {}, ImageFormat* format = nullptr);

// Reads and decodes a file (size checked against the limit before it is read).
Image read_image(const std::filesystem::path& path, const ImageLimits& limits = {},
                 ImageFormat* format = nullptr);

// PNG of any Image (gray, gray+alpha, RGB, RGBA), losslessly.
std::vector<std::uint8_t> encode_png(const Image& image);
// JPEG of a gray or RGB Image at quality 1..100 (4:2:0 for colour).
std::vector<std::uint8_t> encode_jpeg(const Image& image, int quality = 90);

// encode_png written atomically (engine/core/atomic_file.hpp).
void write_png(const std::filesystem::path& path, const Image& image);

}  // namespace octa::predict
