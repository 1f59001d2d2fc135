// engine/data/loader.hpp: batches of transformed images and their targets in a reproducible
// order: the epoch's shuffle is a pure function of (seed, epoch), so a resumed run sees exactly
// the batches an uninterrupted one would.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "engine/data/mnist.hpp"

namespace octa::data {

class BatchLoader {
 public:
  // Keeps a reference to split, which must outlive the loader. Throws octa::Error for
  // batch_size <= 0, a target that validate_target refuses (transform.hpp), or a split whose
  // buffers disagree with count.
  // The order is set for epoch 0; call start_epoch at the start of each epoch.
  BatchLoader(const Split& split, int batch_size, bool shuffle, bool drop_last, std::uint64_t seed,
              int target_digit = 8);
  // A temporary split would be gone before the first batch.
  BatchLoader(Split&&, int, bool, bool, std::uint64_t, int = 8) = delete;

  std::size_t size() const { return static_cast<std::size_t>(split_->count); }
  std::size_t num_batches() const;
  // The largest value fill can return: min(batch_size, number of images).
  std::size_t max_batch_size() const;
  // Floats per image (1 x rows x cols).
  std::size_t image_floats() const { return image_size_; }

  // Sets this epoch's order: the identity without shuffle, else a Fisher-Yates permutation drawn
  // from PhiloxStream(seed, rng_stream(RngStream::kShuffle, epoch)): for i = n-1 down to 1, swap
  // element i with element next_below(i + 1). Depends on nothing but seed and epoch.
  void start_epoch(std::uint64_t epoch);
  std::span<const std::uint32_t> order() const { return order_; }

  // Writes batch batch_index of the current epoch: images (b x 1 x rows x cols, normalised as
  // normalize_pixel), targets (b floats, 1 where label == target digit; the label itself for
  // kClassIndexTarget) and, when not null, the raw labels (b bytes). Returns b: batch_size, or
  // fewer for a last partial batch. Buffers must hold max_batch_size() images. Does not allocate
  // and changes no state, so prefetch threads may fill different batches at once. Throws
  // octa::Error for an index past the end.
  int fill(std::size_t batch_index, float* images, float* targets, std::uint8_t* labels) const;

 private:
  const Split* split_;
  std::size_t batch_size_;
  bool shuffle_;
  bool drop_last_;
  std::uint64_t seed_;
  int target_digit_;
  std::size_t image_size_;
  std::array<float, 256> table_;
  std::vector<std::uint32_t> order_;
};

}  // namespace octa::data
