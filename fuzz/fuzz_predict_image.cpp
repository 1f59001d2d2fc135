// fuzz/fuzz_predict_image.cpp: predict's image path on arbitrary file content: the file read,
// decoded (PNG through libpng, JPEG through TurboJPEG: engine/predict/image.hpp) and preprocessed
// MNIST-style or --raw (engine/predict/mnist_style.hpp), as `predict FILE` does
// (read_image_input, engine/predict/inputs.hpp), with predict's default limits. Every rejection
// must be an octa::Error naming the file; every accepted image must be consistent with its format
// and give a 28x28 input.
//
// libpng checks every chunk's CRC, so most mutations of a PNG would only ever reach that check.
// A PNG input is therefore also decoded with its chunk CRCs made right (from memory, the same
// decoder), so that mutations reach the chunk parsers, inflate and the row filters.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/predict/image.hpp"
#include "engine/predict/inputs.hpp"
#include "engine/predict/mnist_style.hpp"
#include "fuzz/fuzz_files.hpp"
#include "tests/support/png_craft.hpp"

namespace {

using octa::fuzz::require;
namespace predict = octa::predict;

// The bytes with the CRC of every complete chunk after the signature recomputed; chunk lengths
// are left as they are (a chunk running past the end stops the walk).
std::vector<std::uint8_t> with_png_crcs_fixed(std::span<const std::uint8_t> bytes) {
  std::vector<std::uint8_t> out(bytes.begin(), bytes.end());
  std::size_t at = 8;
  while (at + 12 <= out.size()) {
    const std::size_t length = (std::size_t{out[at]} << 24) | (std::size_t{out[at + 1]} << 16) |
                               (std::size_t{out[at + 2]} << 8) | std::size_t{out[at + 3]};
    if (length > out.size() - at - 12) break;
    const std::uint32_t crc = octa::test::crc32_of(out.data() + at + 4, 4 + length) ^ 0xffffffffu;
    for (int k = 0; k < 4; ++k) {
      out[at + 8 + length + static_cast<std::size_t>(k)] =
          static_cast<std::uint8_t>(crc >> (24 - 8 * k));
    }
    at += 12 + length;
  }
  return out;
}

void require_names(const octa::Error& e, const std::string& name) {
  require(std::string(e.what()).starts_with(name + ": "), "every error starts with the file name");
}

void check_mnist_style(const predict::MnistStyle& m, const predict::Image& image) {
  require(m.pixels.size() == predict::kDigitSide * predict::kDigitSide, "28x28 pixels");
  require(m.crop_x >= 0 && m.crop_y >= 0 && m.crop_w >= 1 && m.crop_h >= 1 &&
              m.crop_x + m.crop_w <= image.width && m.crop_y + m.crop_h <= image.height,
          "the ink's box lies inside the image");
  require(m.scaled_w >= 1 && m.scaled_h >= 1 && m.scaled_w <= predict::kDigitBox &&
              m.scaled_h <= predict::kDigitBox &&
              (m.scaled_w == predict::kDigitBox || m.scaled_h == predict::kDigitBox),
          "the longer side is scaled to 20");
  require(m.background >= 0 && m.ink <= 255 && m.ink > m.background, "levels in order");
}

// Decodes from memory and preprocesses both ways, checking what is accepted.
void decode_and_preprocess(std::span<const std::uint8_t> bytes, const std::string& name) {
  predict::ImageFormat format = predict::ImageFormat::kPng;
  predict::Image image;
  try {
    image = predict::decode_image(bytes, name, {}, &format);
  } catch (const octa::Error& e) {
    require_names(e, name);
    return;
  }
  require(predict::sniff_image_format(bytes) == format, "decoded as the format sniffed");
  try {
    predict::check_image(image, name);
  } catch (const octa::Error&) {
    require(false, "a decoded image is consistent");
  }
  require(format == predict::ImageFormat::kPng || image.channels == 1 || image.channels == 3,
          "a JPEG decodes to gray or RGB");
  try {
    check_mnist_style(predict::preprocess_mnist_style(image, name), image);
  } catch (const octa::Error& e) {
    require_names(e, name);
  }
  try {
    const std::vector<std::uint8_t> raw = predict::preprocess_raw(image, name);
    require(raw.size() == predict::kDigitSide * predict::kDigitSide, "--raw gives 28x28 pixels");
  } catch (const octa::Error& e) {
    require_names(e, name);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // As predict reads a file: the path, its size checked, read, decoded, preprocessed.
  const auto path = octa::fuzz::write_input("input.img", data, size);
  for (const bool raw : {false, true}) {
    predict::InputOptions options;
    options.raw = raw;
    try {
      const predict::PredictInput in = predict::read_image_input(path, options);
      require(in.ok() && in.pixels.size() == predict::kDigitSide * predict::kDigitSide,
              "an accepted file gives 28x28 pixels");
      require(in.kind == predict::InputKind::kPng || in.kind == predict::InputKind::kJpeg,
              "an accepted file is a PNG or a JPEG");
    } catch (const octa::Error& e) {
      require_names(e, path.string());
    }
  }
  // The same from memory, with the invariants of what was accepted; a PNG with its CRCs made
  // right too.
  const std::span<const std::uint8_t> bytes(data, size);
  decode_and_preprocess(bytes, "input.img");
  if (predict::sniff_image_format(bytes) == predict::ImageFormat::kPng) {
    const std::vector<std::uint8_t> fixed = with_png_crcs_fixed(bytes);
    if (fixed != std::vector<std::uint8_t>(bytes.begin(), bytes.end())) {
      decode_and_preprocess(fixed, "fixed.png");
    }
  }
  return 0;
}
