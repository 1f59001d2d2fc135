// tests/test_image.cpp: PNG and JPEG through libpng and libjpeg-turbo: every 8-bit layout a
// person's file may have round-trips, and every bad file (empty, not an image, truncated, corrupt,
// 16-bit, a header that lies about its size) is an error naming the file, with no allocation for
// the lie.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <numeric>

#include "engine/core/error.hpp"
#include "engine/predict/image.hpp"
#include "tests/support/alloc_watch.hpp"
#include "tests/support/files.hpp"
#include "tests/support/png_craft.hpp"
#include "tests/support/temp_dir.hpp"

using octa::predict::decode_image;
using octa::predict::Image;

namespace {

Image pattern(int w, int h, int channels) {
  Image img{w, h, channels, std::vector<std::uint8_t>(static_cast<std::size_t>(w * h * channels))};
  for (std::size_t i = 0; i < img.pixels.size(); ++i) {
    img.pixels[i] = static_cast<std::uint8_t>((i * 37 + i / 7) % 256);
  }
  return img;
}

// A smooth picture (JPEG's kind of content): a dark disc on light paper.
Image disc(int w, int h, int channels) {
  Image img{w, h, channels, std::vector<std::uint8_t>(static_cast<std::size_t>(w * h * channels))};
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const double r = std::hypot(x - w / 2.0, y - h / 2.0) / (w / 3.0);
      const auto v = static_cast<std::uint8_t>(r < 1 ? 40 : 220);
      for (int c = 0; c < channels; ++c) {
        img.pixels[static_cast<std::size_t>((y * w + x) * channels + c)] =
            static_cast<std::uint8_t>(v + 10 * c);
      }
    }
  }
  return img;
}

std::vector<std::uint8_t> rows_of(std::uint32_t w, std::uint32_t h, std::size_t bytes_per_row,
                                  std::uint8_t fill) {
  std::vector<std::uint8_t> rows;
  for (std::uint32_t y = 0; y < h; ++y) {
    rows.push_back(0);
    for (std::size_t i = 0; i < bytes_per_row; ++i) {
      rows.push_back(static_cast<std::uint8_t>(fill + y + i));
    }
  }
  (void)w;
  return rows;
}

}  // namespace

TEST_CASE("8-bit PNGs of every layout round-trip exactly", "[cpu][image]") {
  for (const int channels : {1, 2, 3, 4}) {
    INFO("channels " << channels);
    const Image img = pattern(37, 23, channels);
    octa::predict::ImageFormat f = octa::predict::ImageFormat::kJpeg;
    const Image back = decode_image(octa::predict::encode_png(img), "p.png", {}, &f);
    CHECK(f == octa::predict::ImageFormat::kPng);
    CHECK(back.width == 37);
    CHECK(back.height == 23);
    CHECK(back.channels == channels);
    CHECK(back.pixels == img.pixels);
  }
}

TEST_CASE("Palette, transparency and 1-bit PNGs are expanded to 8-bit pixels", "[cpu][image]") {
  octa::test::PngSpec s;
  s.width = 3;
  s.height = 2;
  s.bit_depth = 8;
  s.color_type = 3;  // palette
  s.rows = {0, 0, 1, 2, 0, 2, 1, 0};
  s.before_idat = {{"PLTE", {255, 0, 0, 0, 255, 0, 0, 0, 255}}};
  const Image rgb = decode_image(octa::test::craft_png(s), "palette.png");
  CHECK(rgb.channels == 3);
  CHECK(rgb.pixels == std::vector<std::uint8_t>{255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 255, 0, 255,
                                                0, 255, 0, 0});
  s.before_idat.push_back({"tRNS", {0, 128}});  // entry 0 transparent, 1 half, 2 opaque
  const Image rgba = decode_image(octa::test::craft_png(s), "palette_alpha.png");
  CHECK(rgba.channels == 4);
  CHECK(rgba.pixels[3] == 0);
  CHECK(rgba.pixels[7] == 128);
  CHECK(rgba.pixels[11] == 255);

  octa::test::PngSpec bits;  // 1-bit gray: 8 pixels in one byte per row
  bits.width = 8;
  bits.height = 1;
  bits.bit_depth = 1;
  bits.rows = {0, 0b10110000};
  const Image g = decode_image(octa::test::craft_png(bits), "bits.png");
  CHECK(g.channels == 1);
  CHECK(g.pixels == std::vector<std::uint8_t>{255, 0, 255, 255, 0, 0, 0, 0});
}

TEST_CASE("JPEGs decode to gray or RGB close to what was encoded", "[cpu][image]") {
  for (const int channels : {1, 3}) {
    INFO("channels " << channels);
    const Image img = disc(64, 48, channels);
    octa::predict::ImageFormat f = octa::predict::ImageFormat::kPng;
    const Image back = decode_image(octa::predict::encode_jpeg(img, 95), "d.jpg", {}, &f);
    CHECK(f == octa::predict::ImageFormat::kJpeg);
    CHECK(back.width == 64);
    CHECK(back.height == 48);
    CHECK(back.channels == channels);
    double err = 0;
    for (std::size_t i = 0; i < img.pixels.size(); ++i) {
      err += std::abs(static_cast<double>(img.pixels[i]) - back.pixels[i]);
    }
    CHECK(err / static_cast<double>(img.pixels.size()) < 3.0);  // levels of 255
  }
  CHECK_THROWS_WITH(octa::predict::encode_jpeg(pattern(4, 4, 4)), Catch::Contains("gray or RGB"));
}

TEST_CASE("Bad image files are errors that name the file and say what is wrong", "[cpu][image]") {
  const auto png = octa::predict::encode_png(disc(64, 64, 3));
  const auto jpeg = octa::predict::encode_jpeg(disc(64, 64, 3), 90);
  struct Case {
    std::string name;
    std::vector<std::uint8_t> bytes;
    std::string expect;
  };
  std::vector<Case> cases;
  cases.push_back({"empty.png", {}, "empty file (0 bytes)"});
  cases.push_back({"notes.png", {'h', 'e', 'l', 'l', 'o', '\n'}, "not a PNG or JPEG image"});
  cases.push_back({"truncated.png",
                   {png.begin(), png.begin() + static_cast<long>(png.size() / 2)},
                   "corrupt or truncated PNG"});
  cases.push_back(
      {"only_signature.png", {png.begin(), png.begin() + 8}, "corrupt or truncated PNG"});
  auto corrupt = png;
  for (std::size_t i = 60; i < 80; ++i) corrupt[i] ^= 0x5a;  // inside IDAT: its CRC fails
  cases.push_back({"corrupt.png", corrupt, "corrupt or truncated PNG"});
  cases.push_back({"truncated.jpg",
                   {jpeg.begin(), jpeg.begin() + static_cast<long>(jpeg.size() * 2 / 3)},
                   "corrupt or truncated JPEG"});
  cases.push_back(
      {"header_only.jpg", {jpeg.begin(), jpeg.begin() + 20}, "corrupt or truncated JPEG"});
  octa::test::PngSpec sixteen;
  sixteen.width = 2;
  sixteen.height = 2;
  sixteen.bit_depth = 16;
  sixteen.rows = rows_of(2, 2, 4, 10);
  cases.push_back({"deep.png", octa::test::craft_png(sixteen), "16-bit PNG"});
  for (const Case& c : cases) {
    INFO(c.name);
    CHECK_THROWS_AS(decode_image(c.bytes, c.name), octa::Error);
    CHECK_THROWS_WITH(decode_image(c.bytes, c.name),
                      Catch::StartsWith(c.name + ": ") && Catch::Contains(c.expect));
  }
}

TEST_CASE("A header that claims 100000x100000 pixels is refused before any pixel memory",
          "[cpu][image]") {
  octa::test::PngSpec liar;
  liar.width = 100000;
  liar.height = 100000;
  liar.rows = rows_of(4, 2, 4, 0);  // far less data than claimed
  const auto png = octa::test::craft_png(liar);
  // JPEG: the same kind of lie in a real JPEG's frame header (SOF0: FF C0, length, precision,
  // height, width): 60000 x 60000 (libjpeg-turbo itself refuses sides over 65500).
  auto jpeg = octa::predict::encode_jpeg(disc(16, 16, 1), 90);
  bool patched = false;
  for (std::size_t i = 2; i + 9 < jpeg.size(); ++i) {
    if (jpeg[i] == 0xff && jpeg[i + 1] == 0xc0) {
      for (std::size_t k = 5; k < 9; k += 2) {
        jpeg[i + k] = 0xea;  // 0xea60 = 60000
        jpeg[i + k + 1] = 0x60;
      }
      patched = true;
      break;
    }
  }
  REQUIRE(patched);
  for (const auto& [name, bytes, claim] :
       {std::tuple{std::string("huge.png"), png, std::string("100000x100000")},
        std::tuple{std::string("huge.jpg"), jpeg, std::string("60000x60000")}}) {
    INFO(name);
    std::string message;
    const auto stats = octa::test::watch_allocations([&] {
      try {
        decode_image(bytes, name);
      } catch (const octa::Error& e) {
        message = e.what();
      }
    });
    CHECK_THAT(message, Catch::StartsWith(name) && Catch::Contains(claim) &&
                            Catch::Contains("more than the limit of 50 megapixels"));
    CHECK(stats.largest < (std::size_t{1} << 20));  // nothing near the 10^10 bytes claimed
  }
  // The limit is a setting: a small one refuses a small image too.
  octa::predict::ImageLimits tight;
  tight.max_pixels = 100;
  CHECK_THROWS_WITH(decode_image(octa::predict::encode_png(disc(20, 20, 1)), "x.png", tight),
                    Catch::Contains("20x20"));
}

TEST_CASE("read_image names the path for a missing file, a folder and an oversized file",
          "[cpu][image]") {
  octa::test::TempDir dir("image");
  CHECK_THROWS_WITH(
      octa::predict::read_image(dir / "missing.png"),
      Catch::Contains("missing.png") && Catch::Contains("no such file", Catch::CaseSensitive::No));
  CHECK_THROWS_WITH(octa::predict::read_image(dir.path()), Catch::Contains("not a regular file"));
  const auto path =
      octa::test::write_bytes(dir / "big.png", octa::predict::encode_png(disc(64, 64, 1)));
  octa::predict::ImageLimits small;
  small.max_file_bytes = 16;
  CHECK_THROWS_WITH(octa::predict::read_image(path, small),
                    Catch::Contains("big.png") && Catch::Contains("limit"));
  const Image ok = octa::predict::read_image(path);
  CHECK(ok.width == 64);
  const auto zero = octa::test::write_bytes(dir / "zero.jpg", {});
  CHECK_THROWS_WITH(octa::predict::read_image(zero),
                    Catch::Contains("zero.jpg") && Catch::Contains("empty file"));
}

TEST_CASE("write_png writes atomically what encode_png makes", "[cpu][image]") {
  octa::test::TempDir dir("image");
  const Image img = pattern(28, 28, 1);
  octa::predict::write_png(dir / "sub" / "x.png", img);
  CHECK(octa::predict::read_image(dir / "sub" / "x.png").pixels == img.pixels);
}
