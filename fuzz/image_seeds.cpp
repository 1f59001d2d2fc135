// fuzz/image_seeds.cpp: tiny PNG and JPEG files of every layout predict reads (gray, gray + alpha,
// RGB, RGBA, palette with and without transparency, 1-bit, Adam7-interlaced, 28x28 MNIST-style for
// --raw; baseline gray, 4:2:0 colour and progressive JPEG) and the bad files of
// tests/test_image.cpp (truncated, a broken CRC, 16-bit, headers claiming 100000x100000 and
// 60000x60000 pixels). Each is well under libFuzzer's 4 KiB default input size.
#include "fuzz/image_seeds.hpp"

#include <turbojpeg.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "engine/predict/image.hpp"
#include "tests/support/png_craft.hpp"

namespace octa::fuzz {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;
using predict::Image;

// A dark ring (a zero, roughly) on light paper, or light on dark; each channel a little apart.
Image digit(int w, int h, int channels, bool light_on_dark) {
  Image img{w, h, channels, Bytes(static_cast<std::size_t>(w * h * channels))};
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const double r = std::hypot(x - w / 2.0, y - h / 2.0) / (std::min(w, h) / 3.0);
      const bool ink = r > 0.55 && r < 1.0;
      const int v = ink == light_on_dark ? 230 : 25;
      for (int c = 0; c < channels; ++c) {
        const bool alpha = c == channels - 1 && channels % 2 == 0;
        img.pixels[static_cast<std::size_t>((y * w + x) * channels + c)] =
            static_cast<std::uint8_t>(alpha ? (ink ? 255 : 40) : v + 8 * c);
      }
    }
  }
  return img;
}

// Filtered scanlines (filter 0) of a gray 8-bit w x h image, Adam7-interlaced: the seven passes,
// each a sub-image of its own rows.
Bytes adam7_scanlines(const Bytes& gray, std::uint32_t w, std::uint32_t h) {
  struct Pass {
    std::uint32_t x0, y0, dx, dy;
  };
  const Pass passes[] = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4},
                         {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
  Bytes rows;
  for (const Pass& p : passes) {
    if (p.x0 >= w || p.y0 >= h) continue;  // an empty pass has no rows at all
    for (std::uint32_t y = p.y0; y < h; y += p.dy) {
      rows.push_back(0);
      for (std::uint32_t x = p.x0; x < w; x += p.dx) rows.push_back(gray[y * w + x]);
    }
  }
  return rows;
}

// A crafted PNG with its IHDR's interlace byte set (and the IHDR's CRC made right again).
Bytes interlaced(Bytes png) {
  png[8 + 8 + 12] = 1;  // signature, IHDR length + type, width, height, depth, colour, compression,
                        // filter
  const std::uint32_t crc = test::crc32_of(png.data() + 12, 17) ^ 0xffffffffu;
  for (int k = 0; k < 4; ++k) png[29 + k] = static_cast<std::uint8_t>(crc >> (24 - 8 * k));
  return png;
}

Bytes progressive_jpeg(const Image& img) {
  const std::unique_ptr<void, int (*)(void*)> tj(tjInitCompress(), tjDestroy);
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  if (!tj || tjCompress2(tj.get(), img.pixels.data(), img.width, 0, img.height, TJPF_RGB, &buf,
                         &size, TJSAMP_444, 85, TJFLAG_PROGRESSIVE) != 0) {
    std::abort();
  }
  const Bytes out(buf, buf + size);
  tjFree(buf);
  return out;
}

void write(const fs::path& p, const Bytes& b) {
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

}  // namespace

int write_image_seeds(const fs::path& dir) {
  fs::create_directories(dir);
  std::vector<std::pair<std::string, Bytes>> seeds;
  const Image gray = digit(12, 12, 1, false);
  seeds.emplace_back("gray.png", predict::encode_png(gray));
  seeds.emplace_back("gray_alpha.png", predict::encode_png(digit(10, 10, 2, true)));
  seeds.emplace_back("rgb.png", predict::encode_png(digit(12, 9, 3, false)));
  seeds.emplace_back("rgba.png", predict::encode_png(digit(9, 12, 4, false)));
  seeds.emplace_back("mnist_28x28.png", predict::encode_png(digit(28, 28, 1, true)));

  test::PngSpec palette;
  palette.width = 4;
  palette.height = 3;
  palette.color_type = 3;
  palette.rows = {0, 0, 1, 1, 0, 0, 1, 2, 1, 0, 0, 0, 1, 1, 0};
  palette.before_idat = {{"PLTE", {250, 250, 240, 20, 20, 30, 128, 0, 64}}};
  seeds.emplace_back("palette.png", test::craft_png(palette));
  palette.before_idat.push_back({"tRNS", {0, 200}});
  seeds.emplace_back("palette_trns.png", test::craft_png(palette));

  test::PngSpec bits;
  bits.width = 8;
  bits.height = 3;
  bits.bit_depth = 1;
  bits.rows = {0, 0b00111100, 0, 0b01000010, 0, 0b00111100};
  seeds.emplace_back("gray_1bit.png", test::craft_png(bits));

  test::PngSpec adam7;
  adam7.width = 9;
  adam7.height = 10;
  adam7.rows = adam7_scanlines(digit(9, 10, 1, false).pixels, 9, 10);
  seeds.emplace_back("interlaced.png", interlaced(test::craft_png(adam7)));

  test::PngSpec sixteen;
  sixteen.width = 2;
  sixteen.height = 2;
  sixteen.bit_depth = 16;
  sixteen.rows = {0, 1, 2, 3, 4, 0, 5, 6, 7, 8};
  seeds.emplace_back("gray_16bit.png", test::craft_png(sixteen));

  test::PngSpec liar;  // claims 100000 x 100000, holds two rows of four
  liar.width = 100000;
  liar.height = 100000;
  liar.rows = {0, 1, 2, 3, 4, 0, 5, 6, 7, 8};
  seeds.emplace_back("huge_claim.png", test::craft_png(liar));

  Bytes png = predict::encode_png(digit(12, 12, 3, false));
  seeds.emplace_back("truncated.png",
                     Bytes(png.begin(), png.begin() + static_cast<long>(png.size() / 2)));
  png[png.size() - 20] ^= 0x5a;  // inside the image data: the IDAT's CRC fails
  seeds.emplace_back("bad_crc.png", png);

  const Bytes jpeg_gray = predict::encode_jpeg(digit(16, 16, 1, false), 90);
  seeds.emplace_back("gray.jpg", jpeg_gray);
  seeds.emplace_back("rgb_420.jpg", predict::encode_jpeg(digit(16, 12, 3, false), 90));
  seeds.emplace_back("mnist_28x28.jpg", predict::encode_jpeg(digit(28, 28, 1, true), 80));
  seeds.emplace_back("progressive.jpg", progressive_jpeg(digit(16, 16, 3, false)));
  seeds.emplace_back(
      "truncated.jpg",
      Bytes(jpeg_gray.begin(), jpeg_gray.begin() + static_cast<long>(jpeg_gray.size() * 2 / 3)));
  Bytes huge = jpeg_gray;  // the frame header (SOF0) claims 60000 x 60000
  for (std::size_t i = 2; i + 9 < huge.size(); ++i) {
    if (huge[i] == 0xff && huge[i + 1] == 0xc0) {
      for (std::size_t k = 5; k < 9; ++k) huge[i + k] = k % 2 ? 0xea : 0x60;
      break;
    }
  }
  seeds.emplace_back("huge_claim.jpg", huge);

  for (const auto& [name, bytes] : seeds) write(dir / name, bytes);
  return static_cast<int>(seeds.size());
}

}  // namespace octa::fuzz
