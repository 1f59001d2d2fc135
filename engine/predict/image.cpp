// engine/predict/image.cpp: PNG and JPEG through libpng's simplified API and the TurboJPEG API,
// both of which report errors by return value (no setjmp/longjmp in octa's code). Header first,
// limits checked, then the pixels.
#include "engine/predict/image.hpp"

#include <png.h>
#include <turbojpeg.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <system_error>

#include <spdlog/spdlog.h>

#include "engine/core/atomic_file.hpp"
#include "engine/core/error.hpp"

namespace octa::predict {
namespace fs = std::filesystem;

namespace {

constexpr std::uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

void check_pixels(std::uint64_t width, std::uint64_t height, const ImageLimits& limits,
                  const std::string& name, const char* format) {
  if (width == 0 || height == 0) {
    throw Error(
        fmt::format("{}: {} header claims an empty image ({}x{})", name, format, width, height));
  }
  const std::uint64_t pixels = width * height;  // both < 2^32: no overflow
  if (pixels > limits.max_pixels) {
    throw Error(fmt::format(
        "{}: {} header claims {}x{} pixels ({} megapixels), more than the limit of {} "
        "megapixels; not decoded (scale the image down first)",
        name, format, width, height, pixels / 1'000'000, limits.max_pixels / 1'000'000));
  }
}

// ---------------------------------------------------------------------------------------------
// PNG

struct PngImageFree {
  png_image* image;
  ~PngImageFree() { png_image_free(image); }  // safe when already freed (opaque is then null)
};

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

// What check_png_chunks learns on the way: the compressed image data's size, and the bits per
// pixel of the IHDR (0 when the first chunk is no well-formed IHDR: libpng then refuses the file).
struct PngChunks {
  std::uint64_t idat_bytes = 0;
  unsigned bits_per_pixel = 0;
};

// libpng allocates some chunks' buffers at the length the chunk declares before reading it
// (fuzzing found an eXIf chunk claiming 1 GB in a 111-byte file: libpng asked for 1 GB), so every
// chunk up to IEND must fit in the bytes that follow its header, before libpng sees the file. A
// valid PNG always passes; no chunk can then cost more memory than the file's own size.
PngChunks check_png_chunks(std::span<const std::uint8_t> bytes, const std::string& name) {
  PngChunks found;
  std::size_t at = sizeof kPngSignature;
  while (bytes.size() - at >= 8) {
    const std::uint32_t length = be32(bytes.data() + at);
    const std::uint8_t* type = bytes.data() + at + 4;
    const std::size_t left = bytes.size() - at - 8;  // data and CRC of this chunk, and what follows
    if (length > left || left - length < 4) {
      std::string shown;
      for (int i = 0; i < 4; ++i) {
        const bool letter =
            (type[i] >= 'A' && type[i] <= 'Z') || (type[i] >= 'a' && type[i] <= 'z');
        shown +=
            letter ? std::string(1, static_cast<char>(type[i])) : fmt::format("\\x{:02x}", type[i]);
      }
      throw Error(fmt::format(
          "{}: corrupt or truncated PNG (its chunk '{}' at byte {} claims {} bytes of data and a "
          "CRC; only {} bytes follow the chunk's header)",
          name, shown, at, length, left));
    }
    if (at == sizeof kPngSignature && std::memcmp(type, "IHDR", 4) == 0 && length == 13) {
      const unsigned depth = type[4 + 8], colour = type[4 + 9];
      const unsigned channels = colour == 0 || colour == 3 ? 1
                                : colour == 4              ? 2
                                : colour == 2              ? 3
                                : colour == 6              ? 4
                                                           : 0;
      found.bits_per_pixel = depth <= 16 ? depth * channels : 0;
    }
    if (std::memcmp(type, "IDAT", 4) == 0) found.idat_bytes += length;
    if (std::memcmp(type, "IEND", 4) == 0) break;
    at += 12 + length;
  }
  return found;
}

// Deflate expands at most 1032-fold (a 258-byte match in two bits), so image data too short for
// the size the header claims is known before the pixel buffer is allocated: a 69-byte PNG
// claiming 7000x7000 RGBA pixels would otherwise cost 196 MB before libpng found the data
// missing. The bytes needed are counted without the row filter bytes, a lower bound for every
// layout, interlaced or not; the slack keeps the bound safe for tiny files.
void check_png_data_size(const PngChunks& chunks, std::uint64_t width, std::uint64_t height,
                         const std::string& name) {
  constexpr std::uint64_t kDeflateMaxRatio = 1032, kSlack = 1024;
  if (chunks.bits_per_pixel == 0) return;
  const std::uint64_t need = width * height * chunks.bits_per_pixel / 8;  // <= 50 MP x 64 bits
  const std::uint64_t most = chunks.idat_bytes * kDeflateMaxRatio + kSlack;
  if (need > most) {
    throw Error(fmt::format(
        "{}: corrupt or truncated PNG (its header claims {}x{} pixels, at least {} bytes of image "
        "data, but its IDAT chunks hold {} compressed bytes, which inflate to at most {}); not "
        "decoded",
        name, width, height, need, chunks.idat_bytes, most));
  }
}

Image decode_png(std::span<const std::uint8_t> bytes, const std::string& name,
                 const ImageLimits& limits) {
  const PngChunks chunks = check_png_chunks(bytes, name);
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  const PngImageFree guard{&png};
  if (!png_image_begin_read_from_memory(&png, bytes.data(), bytes.size())) {
    throw Error(fmt::format("{}: corrupt or truncated PNG (libpng: {})", name, png.message));
  }
  check_pixels(png.width, png.height, limits, name, "PNG");
  if ((png.format & PNG_FORMAT_FLAG_LINEAR) != 0) {
    throw Error(fmt::format(
        "{}: a 16-bit PNG (16 bits per channel); octa reads 8-bit images only: save it with 8 "
        "bits per channel",
        name));
  }
  check_png_data_size(chunks, png.width, png.height, name);
  // Keep gray/colour and alpha as the file has them; expand palettes; 8 bits, sRGB as stored.
  png.format &= PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA;
  Image image;
  image.width = static_cast<int>(png.width);
  image.height = static_cast<int>(png.height);
  image.channels = static_cast<int>(PNG_IMAGE_SAMPLE_CHANNELS(png.format));
  image.pixels.resize(PNG_IMAGE_SIZE(png));
  if (!png_image_finish_read(&png, nullptr, image.pixels.data(), 0, nullptr)) {
    throw Error(fmt::format("{}: corrupt or truncated PNG (libpng: {})", name, png.message));
  }
  if ((png.warning_or_error & PNG_IMAGE_WARNING) != 0) {
    spdlog::warn("{}: libpng warning: {}", name, png.message);
  }
  return image;
}

// ---------------------------------------------------------------------------------------------
// JPEG

struct TjFree {
  void operator()(void* handle) const { tjDestroy(handle); }
};
using TjHandle = std::unique_ptr<void, TjFree>;

std::string tj_message(void* handle) {
  return tjGetErrorStr2(handle);
}

Image decode_jpeg(std::span<const std::uint8_t> bytes, const std::string& name,
                  const ImageLimits& limits) {
  const TjHandle tj(tjInitDecompress());
  if (!tj)
    throw Error(fmt::format("{}: cannot start the JPEG decoder: {}", name, tj_message(nullptr)));
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(tj.get(), bytes.data(), static_cast<unsigned long>(bytes.size()), &width,
                          &height, &subsamp, &colorspace) != 0) {
    throw Error(fmt::format("{}: corrupt or truncated JPEG (libjpeg-turbo: {})", name,
                            tj_message(tj.get())));
  }
  if (width <= 0 || height <= 0) {
    throw Error(
        fmt::format("{}: corrupt or truncated JPEG (no frame header with the image size)", name));
  }
  check_pixels(static_cast<std::uint64_t>(width), static_cast<std::uint64_t>(height), limits, name,
               "JPEG");
  if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) {
    throw Error(
        fmt::format("{}: a CMYK JPEG; octa reads grayscale and RGB JPEGs: save it as RGB", name));
  }
  Image image;
  image.width = width;
  image.height = height;
  image.channels = colorspace == TJCS_GRAY ? 1 : 3;
  image.pixels.resize(static_cast<std::size_t>(width) * static_cast<std::size_t>(height) *
                      static_cast<std::size_t>(image.channels));
  // Warnings (a truncated stream is one) stop decoding; progressive JPEGs with absurd numbers of
  // scans are refused rather than decoded for minutes.
  if (tjDecompress2(tj.get(), bytes.data(), static_cast<unsigned long>(bytes.size()),
                    image.pixels.data(), width, 0, height,
                    image.channels == 1 ? TJPF_GRAY : TJPF_RGB,
                    TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS | TJFLAG_ACCURATEDCT) != 0) {
    throw Error(fmt::format("{}: corrupt or truncated JPEG (libjpeg-turbo: {})", name,
                            tj_message(tj.get())));
  }
  return image;
}

std::string first_bytes(std::span<const std::uint8_t> bytes) {
  std::string s;
  for (std::size_t i = 0; i < std::min<std::size_t>(bytes.size(), 8); ++i) {
    s += fmt::format("{}{:02x}", i ? " " : "", bytes[i]);
  }
  return s;
}

}  // namespace

void check_image(const Image& image, const std::string& what) {
  OCTA_CHECK(image.channels >= 1 && image.channels <= 4, "{}: {} channels (1 to 4 expected)", what,
             image.channels);
  OCTA_CHECK(image.width > 0 && image.height > 0, "{}: empty image ({}x{})", what, image.width,
             image.height);
  const std::size_t expect = static_cast<std::size_t>(image.width) *
                             static_cast<std::size_t>(image.height) *
                             static_cast<std::size_t>(image.channels);
  OCTA_CHECK(image.pixels.size() == expect, "{}: {} bytes of pixels for {}x{}x{} (expected {})",
             what, image.pixels.size(), image.width, image.height, image.channels, expect);
}

const char* image_format_name(ImageFormat f) {
  return f == ImageFormat::kPng ? "PNG" : "JPEG";
}

std::optional<ImageFormat> sniff_image_format(std::span<const std::uint8_t> bytes) {
  if (bytes.size() >= sizeof kPngSignature &&
      std::memcmp(bytes.data(), kPngSignature, sizeof kPngSignature) == 0) {
    return ImageFormat::kPng;
  }
  if (bytes.size() >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff) {
    return ImageFormat::kJpeg;
  }
  return std::nullopt;
}

Image decode_image(std::span<const std::uint8_t> bytes, const std::string& name,
                   const ImageLimits& limits, ImageFormat* format_out) {
  if (bytes.empty()) throw Error(fmt::format("{}: empty file (0 bytes), not an image", name));
  const auto format = sniff_image_format(bytes);
  if (!format) {
    throw Error(fmt::format("{}: not a PNG or JPEG image (it starts with bytes {})", name,
                            first_bytes(bytes)));
  }
  if (format_out) *format_out = *format;
  return *format == ImageFormat::kPng ? decode_png(bytes, name, limits)
                                      : decode_jpeg(bytes, name, limits);
}

Image read_image(const fs::path& path, const ImageLimits& limits, ImageFormat* format) {
  const std::string name = path.string();
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    throw Error(
        fmt::format("{}: cannot open: {}", name, ec ? ec.message() : std::string("no such file")));
  }
  if (!fs::is_regular_file(status)) throw Error(fmt::format("{}: not a regular file", name));
  const std::uint64_t size = fs::file_size(path, ec);
  if (ec) throw Error(fmt::format("{}: cannot read its size: {}", name, ec.message()));
  if (size > limits.max_file_bytes) {
    throw Error(fmt::format("{}: {} MiB, more than the limit of {} MiB for one image", name,
                            size >> 20, limits.max_file_bytes >> 20));
  }
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open: {}", name, std::strerror(errno)));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (in.gcount() != static_cast<std::streamsize>(bytes.size())) {
    throw Error(fmt::format("{}: read {} of its {} bytes", name, in.gcount(), size));
  }
  return decode_image(bytes, name, limits, format);
}

std::vector<std::uint8_t> encode_png(const Image& image) {
  check_image(image, "encode_png");
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(image.width);
  png.height = static_cast<png_uint_32>(image.height);
  png.format = (image.channels >= 3 ? PNG_FORMAT_FLAG_COLOR : 0u) |
               (image.channels % 2 == 0 ? PNG_FORMAT_FLAG_ALPHA : 0u);
  png_alloc_size_t size = 0;
  if (!png_image_write_get_memory_size(png, size, 0, image.pixels.data(), 0, nullptr)) {
    throw Error(fmt::format("encode_png: libpng: {}", png.message));
  }
  std::vector<std::uint8_t> out(size);
  if (!png_image_write_to_memory(&png, out.data(), &size, 0, image.pixels.data(), 0, nullptr)) {
    throw Error(fmt::format("encode_png: libpng: {}", png.message));
  }
  out.resize(size);
  return out;
}

std::vector<std::uint8_t> encode_jpeg(const Image& image, int quality) {
  check_image(image, "encode_jpeg");
  OCTA_CHECK(image.channels == 1 || image.channels == 3,
             "encode_jpeg: {} channels; JPEG holds gray or RGB", image.channels);
  OCTA_CHECK(quality >= 1 && quality <= 100, "encode_jpeg: quality {} (1..100)", quality);
  const TjHandle tj(tjInitCompress());
  if (!tj) throw Error(fmt::format("encode_jpeg: {}", tj_message(nullptr)));
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  const bool gray = image.channels == 1;
  const int rc = tjCompress2(tj.get(), image.pixels.data(), image.width, 0, image.height,
                             gray ? TJPF_GRAY : TJPF_RGB, &buf, &size,
                             gray ? TJSAMP_GRAY : TJSAMP_420, quality, TJFLAG_ACCURATEDCT);
  const std::unique_ptr<unsigned char, void (*)(unsigned char*)> owned(buf, tjFree);
  if (rc != 0) throw Error(fmt::format("encode_jpeg: libjpeg-turbo: {}", tj_message(tj.get())));
  return std::vector<std::uint8_t>(buf, buf + size);
}

void write_png(const fs::path& path, const Image& image) {
  const std::vector<std::uint8_t> bytes = encode_png(image);
  write_file_atomically(
      path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace octa::predict
