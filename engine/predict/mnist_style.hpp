// engine/predict/mnist_style.hpp: turning a photo or scan of a digit into what MNIST's images are,
// the way MNIST itself was made (LeCun et al.): grayscale; light ink on a black field (the polarity
// of the input is read from its border, so dark ink on light paper is inverted); cropped to the
// ink; the longer side scaled to 20 pixels keeping the aspect ratio, with anti-aliasing (area
// averaging); placed in a 28x28 field with its centre of mass on pixel (14, 14), as in MNIST.
// The result is 28x28 bytes; data::normalize_pixel (engine/data/transform.hpp) then gives the
// model's input, exactly as for the IDX files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/predict/image.hpp"

namespace octa::predict {

inline constexpr int kDigitSide = 28;  // MNIST's field
inline constexpr int kDigitBox = 20;   // the longer side of the digit inside it

// Gray of any Image: BT.601 luma (299 R + 587 G + 114 B) / 1000, rounded, as PIL's convert("L").
// Alpha is composited over a background that contrasts with the ink: white when the visible
// (alpha-weighted) pixels are dark on average, black when they are light, so a digit drawn on a
// transparent canvas keeps its strokes whatever their colour. An opaque image is unchanged.
Image to_gray(const Image& image);

struct MnistStyle {
  std::vector<std::uint8_t> pixels;  // 28 x 28, MNIST polarity (ink high, background 0)
  bool inverted = false;             // the input was dark ink on a light background
  int crop_x = 0, crop_y = 0, crop_w = 0, crop_h = 0;  // the ink's box in the input
  int scaled_w = 0, scaled_h = 0;                      // its size after scaling (longer side 20)
  double background = 0, ink = 0;  // levels 0..255 after any inversion (paper, full ink)
};

// The whole pipeline above. Levels are stretched so the paper (the border's median) becomes 0 and
// full ink (the upper quartile of the clearly inked pixels) 255; what is within a fifth of the
// contrast of the paper counts as paper (scanner noise, JPEG ringing) and becomes 0. Throws
// octa::Error naming `name` when the image holds no ink (contrast under 40 of 255 levels).
MnistStyle preprocess_mnist_style(const Image& image, const std::string& name);

// --raw: an image that is already MNIST-style (28x28, light on dark) is only turned gray; its bytes
// are used as they are. Throws octa::Error naming `name` for any other size.
std::vector<std::uint8_t> preprocess_raw(const Image& image, const std::string& name);

// Area-averaging resize of a gray image (each output pixel is the mean of the input area it covers:
// anti-aliased when shrinking). in: w x h floats; returns out_w x out_h floats.
std::vector<float> resize_area(const std::vector<float>& in, int w, int h, int out_w, int out_h);

}  // namespace octa::predict
