// tests/support/scan.hpp: an MNIST digit drawn as a person's scan or photo of it would look: dark
// ink on light, slightly noisy paper, four times larger (smoothly interpolated), off-centre on a
// wider canvas. For the tests that predict must undo all of that (preprocessing back to MNIST).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/core/philox.hpp"
#include "engine/predict/image.hpp"

namespace octa::test {

struct ScanLook {
  int scale = 4;                  // the digit's 28x28 field becomes 112x112
  int width = 200, height = 150;  // the canvas, wider than tall
  int x = 0, y = 0;               // where the 112x112 field goes (off-centre)
  int paper = 236, ink = 28;      // levels
  int noise = 6;                  // +- uniform noise on every pixel
  bool rgb = false;               // a colour image (bluish ink) instead of gray
  std::uint64_t seed = 1;
};

// Bilinear sample of a 28x28 MNIST image at continuous pixel coordinates (pixel centres at +0.5).
inline double mnist_bilinear(const std::uint8_t* d, double x, double y) {
  x -= 0.5;
  y -= 0.5;
  const int x0 = static_cast<int>(std::floor(x)), y0 = static_cast<int>(std::floor(y));
  const double fx = x - x0, fy = y - y0;
  const auto at = [&](int xi, int yi) -> double {
    if (xi < 0 || yi < 0 || xi >= 28 || yi >= 28) return 0.0;
    return d[yi * 28 + xi];
  };
  return (1 - fy) * ((1 - fx) * at(x0, y0) + fx * at(x0 + 1, y0)) +
         fy * ((1 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1));
}

inline predict::Image scan_of(const std::uint8_t* mnist28, const ScanLook& look) {
  predict::Image img;
  img.width = look.width;
  img.height = look.height;
  img.channels = look.rgb ? 3 : 1;
  img.pixels.assign(static_cast<std::size_t>(look.width) * look.height * img.channels, 0);
  PhiloxStream rng(look.seed, 77);
  const int side = 28 * look.scale;
  for (int y = 0; y < look.height; ++y) {
    for (int x = 0; x < look.width; ++x) {
      double v = 0.0;  // ink coverage 0..1
      const int dx = x - look.x, dy = y - look.y;
      if (dx >= 0 && dy >= 0 && dx < side && dy < side) {
        v = mnist_bilinear(mnist28, (dx + 0.5) / look.scale, (dy + 0.5) / look.scale) / 255.0;
      }
      const double noise =
          static_cast<double>(rng.next_below(static_cast<std::uint32_t>(2 * look.noise + 1))) -
          look.noise;
      const double level = look.paper + (look.ink - look.paper) * v + noise;
      const auto g = static_cast<std::uint8_t>(std::clamp(std::lround(level), 0L, 255L));
      const std::size_t i = (static_cast<std::size_t>(y) * look.width + x) * img.channels;
      if (look.rgb) {
        // Blue-black ink on warm paper: the channels differ, their luma is `level`.
        img.pixels[i + 0] = static_cast<std::uint8_t>(std::clamp(g + 6, 0, 255));
        img.pixels[i + 1] = g;
        img.pixels[i + 2] =
            static_cast<std::uint8_t>(std::clamp(g + 20 - static_cast<int>(30 * v), 0, 255));
      } else {
        img.pixels[i] = g;
      }
    }
  }
  return img;
}

}  // namespace octa::test
