// engine/data/transform.hpp: the tutorial's input transform and binary target, bit-exact with
// torchvision: ToTensor (x / 255) then Normalize((0.5,), (0.5,)), in float32.
#pragma once

#include <array>
#include <cstdint>

#include "engine/core/error.hpp"

namespace octa::data {

inline constexpr int kDefaultTargetDigit = 8;

// The same float32 operations in the same order as torchvision, so results match bit for bit:
// 0 -> -1, 255 -> 1.
inline float normalize_pixel(std::uint8_t x) {
  return (static_cast<float>(x) / 255.0f - 0.5f) / 0.5f;
}

// normalize_pixel for every byte value, for loops that transform whole images.
inline std::array<float, 256> normalize_table() {
  std::array<float, 256> t{};
  for (int v = 0; v < 256; ++v) t[v] = normalize_pixel(static_cast<std::uint8_t>(v));
  return t;
}

// Throws octa::Error unless digit is a label MNIST can have.
inline int validate_target_digit(int digit) {
  OCTA_CHECK(digit >= 0 && digit <= 9, "target digit must be in 0..9, got {}", digit);
  return digit;
}

// The loader's target for the multi-class task: each image's class index itself (as a float),
// where any other target (0..255) gives the binary "is it this class?" target.
inline constexpr int kClassIndexTarget = -1;

// Throws octa::Error unless target is kClassIndexTarget or a class an IDX label can name (0..255;
// whether the dataset has that class is the caller's to check, data::resolve_class).
inline int validate_target(int target) {
  OCTA_CHECK(target == kClassIndexTarget || (target >= 0 && target <= 255),
             "target class must be in 0..255 (or every class, for the multi-class task), got {}",
             target);
  return target;
}

// The binary target of "is this digit a <target_digit>?": 1.0f or 0.0f.
inline float binary_target(std::uint8_t label, int target_digit) {
  return static_cast<int>(label) == target_digit ? 1.0f : 0.0f;
}

// The target of a label: its class index (as a float) for kClassIndexTarget, else the binary
// target of "is this digit a <target>?".
inline float label_target(std::uint8_t label, int target) {
  return target == kClassIndexTarget ? static_cast<float>(label) : binary_target(label, target);
}

}  // namespace octa::data
