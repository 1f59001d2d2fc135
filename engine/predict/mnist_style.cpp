// engine/predict/mnist_style.cpp: grayscale, polarity from the border, levels, crop to the ink,
// area-averaged scaling to a 20-pixel box, centre of mass on pixel (14, 14) of a 28x28 field.
#include "engine/predict/mnist_style.hpp"

#include <algorithm>
#include <cmath>

#include "engine/core/error.hpp"

namespace octa::predict {
namespace {

constexpr double kMinContrast = 40.0;   // levels between paper and the brightest ink
constexpr double kPaperFraction = 0.2;  // of the contrast: below it is paper, not ink
constexpr double kInkQuantile = 0.75;   // of the clearly-ink pixels: full ink (255) from here

std::uint8_t luma(std::uint8_t r, std::uint8_t g, std::uint8_t b) {
  return static_cast<std::uint8_t>((299 * r + 587 * g + 114 * b + 500) / 1000);
}

std::size_t index(int x, int y, int w) {
  return static_cast<std::size_t>(y) * static_cast<std::size_t>(w) + static_cast<std::size_t>(x);
}

// For each of the m output cells of an axis of n input cells: the input cells it covers and the
// share of each (summing to 1).
struct Tap {
  int first = 0;
  std::vector<float> weights;
};
std::vector<Tap> area_taps(int n, int m) {
  const double scale = static_cast<double>(n) / m;
  std::vector<Tap> taps(static_cast<std::size_t>(m));
  for (int o = 0; o < m; ++o) {
    const double lo = o * scale, hi = (o + 1) * scale;
    Tap& t = taps[static_cast<std::size_t>(o)];
    t.first = std::clamp(static_cast<int>(std::floor(lo)), 0, n - 1);
    const int last = std::clamp(static_cast<int>(std::ceil(hi)) - 1, t.first, n - 1);
    for (int i = t.first; i <= last; ++i) {
      const double overlap = std::min(hi, i + 1.0) - std::max(lo, static_cast<double>(i));
      t.weights.push_back(static_cast<float>(std::max(0.0, overlap) / scale));
    }
  }
  return taps;
}

}  // namespace

Image to_gray(const Image& image) {
  check_image(image, "to_gray");
  const int c = image.channels;
  if (c == 1) return image;
  const std::size_t n =
      static_cast<std::size_t>(image.width) * static_cast<std::size_t>(image.height);
  const bool alpha = c == 2 || c == 4;
  std::vector<std::uint8_t> lum(n), a(n, 255);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* p = image.pixels.data() + i * static_cast<std::size_t>(c);
    lum[i] = c >= 3 ? luma(p[0], p[1], p[2]) : p[0];
    if (alpha) a[i] = p[c - 1];
  }
  Image gray{image.width, image.height, 1, std::move(lum)};
  if (!alpha) return gray;
  double weighted = 0.0, coverage = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    weighted += static_cast<double>(a[i]) * gray.pixels[i];
    coverage += a[i];
  }
  const bool dark_ink = coverage == 0.0 || weighted / coverage < 127.5;
  const int background = dark_ink ? 255 : 0;
  for (std::size_t i = 0; i < n; ++i) {
    const int v = (gray.pixels[i] * a[i] + background * (255 - a[i]) + 127) / 255;
    gray.pixels[i] = static_cast<std::uint8_t>(v);
  }
  return gray;
}

std::vector<float> resize_area(const std::vector<float>& in, int w, int h, int out_w, int out_h) {
  OCTA_CHECK(w > 0 && h > 0 && out_w > 0 && out_h > 0 &&
                 in.size() == static_cast<std::size_t>(w) * static_cast<std::size_t>(h),
             "resize_area: {}x{} ({} values) to {}x{}", w, h, in.size(), out_w, out_h);
  const std::vector<Tap> tx = area_taps(w, out_w), ty = area_taps(h, out_h);
  std::vector<float> rows(static_cast<std::size_t>(out_w) * static_cast<std::size_t>(h));
  for (int y = 0; y < h; ++y) {
    for (int o = 0; o < out_w; ++o) {
      const Tap& t = tx[static_cast<std::size_t>(o)];
      float s = 0.0f;
      for (std::size_t k = 0; k < t.weights.size(); ++k) {
        s += t.weights[k] * in[index(t.first + static_cast<int>(k), y, w)];
      }
      rows[index(o, y, out_w)] = s;
    }
  }
  std::vector<float> out(static_cast<std::size_t>(out_w) * static_cast<std::size_t>(out_h));
  for (int o = 0; o < out_h; ++o) {
    const Tap& t = ty[static_cast<std::size_t>(o)];
    for (int x = 0; x < out_w; ++x) {
      float s = 0.0f;
      for (std::size_t k = 0; k < t.weights.size(); ++k) {
        s += t.weights[k] * rows[index(x, t.first + static_cast<int>(k), out_w)];
      }
      out[index(x, o, out_w)] = s;
    }
  }
  return out;
}

MnistStyle preprocess_mnist_style(const Image& image, const std::string& name) {
  const Image gray = to_gray(image);
  const int w = gray.width, h = gray.height;
  MnistStyle r;

  // Polarity and paper level from the border: the median of a ring a twenty-fifth of the shorter
  // side wide (one pixel for a 28x28 image), robust to ink that touches the edge here and there.
  const int ring = std::max(1, std::min(w, h) / 25);
  std::vector<std::uint8_t> border;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      if (x < ring || y < ring || x >= w - ring || y >= h - ring) {
        border.push_back(gray.pixels[index(x, y, w)]);
      }
    }
  }
  std::nth_element(border.begin(), border.begin() + static_cast<std::ptrdiff_t>(border.size() / 2),
                   border.end());
  double paper = border[border.size() / 2];
  r.inverted = paper > 127.5;
  std::vector<float> v(gray.pixels.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    v[i] = r.inverted ? 255.0f - gray.pixels[i] : static_cast<float>(gray.pixels[i]);
  }
  if (r.inverted) paper = 255.0 - paper;
  const double brightest = *std::max_element(v.begin(), v.end());
  if (brightest - paper < kMinContrast) {
    throw Error(fmt::format(
        "{}: no digit found: the image is nearly uniform (background level {:.0f}, brightest "
        "ink {:.0f} of 255 after polarity{})",
        name, paper, brightest, r.inverted ? " inversion" : ""));
  }
  // Full ink: the upper quartile of the pixels that are clearly ink (past halfway), not the one
  // brightest pixel, so that noise and JPEG overshoot do not dim every stroke. (MNIST's strokes
  // are saturated in their cores: a third of its ink pixels are 250 or more.)
  std::vector<float> strong;
  for (const float p : v) {
    if (p > paper + 0.5 * (brightest - paper)) strong.push_back(p);
  }
  const auto q = strong.begin() +
                 static_cast<std::ptrdiff_t>(static_cast<double>(strong.size() - 1) * kInkQuantile);
  std::nth_element(strong.begin(), q, strong.end());
  const double ink = *q;
  r.background = paper;
  r.ink = ink;

  // Levels: paper (and what is within kPaperFraction of the contrast of it) -> 0, ink -> 1.
  const double lo = paper + kPaperFraction * (ink - paper);
  const double span = ink - lo;
  int x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      float& p = v[index(x, y, w)];
      p = static_cast<float>(std::clamp((p - lo) / span, 0.0, 1.0));
      if (p > 0.0f) {
        x0 = std::min(x0, x);
        y0 = std::min(y0, y);
        x1 = std::max(x1, x);
        y1 = std::max(y1, y);
      }
    }
  }
  // ink - lo >= 0.8 * 0.5 * kMinContrast > 0, so the brightest pixel is inside the box.
  r.crop_x = x0;
  r.crop_y = y0;
  r.crop_w = x1 - x0 + 1;
  r.crop_h = y1 - y0 + 1;
  std::vector<float> crop(static_cast<std::size_t>(r.crop_w) * static_cast<std::size_t>(r.crop_h));
  for (int y = 0; y < r.crop_h; ++y) {
    for (int x = 0; x < r.crop_w; ++x) crop[index(x, y, r.crop_w)] = v[index(x0 + x, y0 + y, w)];
  }

  // Longer side to 20, the other in proportion (at least one pixel).
  const double scale = static_cast<double>(kDigitBox) / std::max(r.crop_w, r.crop_h);
  r.scaled_w = std::clamp(static_cast<int>(std::lround(r.crop_w * scale)), 1, kDigitBox);
  r.scaled_h = std::clamp(static_cast<int>(std::lround(r.crop_h * scale)), 1, kDigitBox);
  const std::vector<float> box = resize_area(crop, r.crop_w, r.crop_h, r.scaled_w, r.scaled_h);

  // Centre of mass of the box, then the integer shift that puts it on pixel (14, 14).
  double mass = 0.0, mx = 0.0, my = 0.0;
  for (int y = 0; y < r.scaled_h; ++y) {
    for (int x = 0; x < r.scaled_w; ++x) {
      const double p = box[index(x, y, r.scaled_w)];
      mass += p;
      mx += p * x;
      my += p * y;
    }
  }
  const int centre = kDigitSide / 2;
  const int ox = static_cast<int>(std::lround(centre - mx / mass));
  const int oy = static_cast<int>(std::lround(centre - my / mass));
  r.pixels.assign(static_cast<std::size_t>(kDigitSide) * kDigitSide, 0);
  for (int y = 0; y < r.scaled_h; ++y) {
    for (int x = 0; x < r.scaled_w; ++x) {
      const int tx = ox + x, ty = oy + y;
      if (tx < 0 || ty < 0 || tx >= kDigitSide || ty >= kDigitSide) continue;
      const double p = std::clamp(static_cast<double>(box[index(x, y, r.scaled_w)]), 0.0, 1.0);
      r.pixels[index(tx, ty, kDigitSide)] = static_cast<std::uint8_t>(std::lround(p * 255.0));
    }
  }
  return r;
}

std::vector<std::uint8_t> preprocess_raw(const Image& image, const std::string& name) {
  if (image.width != kDigitSide || image.height != kDigitSide) {
    throw Error(fmt::format(
        "{}: --raw needs a 28x28 MNIST-style image (light digit on black), this one is {}x{}; "
        "without --raw it is preprocessed as MNIST was",
        name, image.width, image.height));
  }
  return to_gray(image).pixels;
}

}  // namespace octa::predict
