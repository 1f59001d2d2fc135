// engine/data/loader.cpp: the epoch order and the batch transform.
#include "engine/data/loader.hpp"

#include <algorithm>
#include <limits>
#include <numeric>

#include "engine/core/error.hpp"
#include "engine/core/philox.hpp"
#include "engine/data/transform.hpp"

namespace octa::data {

BatchLoader::BatchLoader(const Split& split, int batch_size, bool shuffle, bool drop_last,
                         std::uint64_t seed, int target_digit)
    : split_(&split),
      batch_size_(0),
      shuffle_(shuffle),
      drop_last_(drop_last),
      seed_(seed),
      target_digit_(validate_target(target_digit)),
      image_size_(0),
      table_(normalize_table()) {
  OCTA_CHECK(batch_size > 0, "batch size must be positive, got {}", batch_size);
  batch_size_ = static_cast<std::size_t>(batch_size);
  OCTA_CHECK(split.count >= 0 && split.rows > 0 && split.cols > 0,
             "BatchLoader: invalid split ({} images of {}x{})", split.count, split.rows,
             split.cols);
  // Order entries are 32-bit and next_below takes a 32-bit bound.
  OCTA_CHECK(static_cast<std::uint64_t>(split.count) <= std::numeric_limits<std::uint32_t>::max(),
             "BatchLoader: {} images is more than 2^32 - 1", split.count);
  image_size_ = static_cast<std::size_t>(split.rows) * static_cast<std::size_t>(split.cols);
  OCTA_CHECK(split.pixels.size() == size() * image_size_ && split.labels.size() == size(),
             "BatchLoader: split of {} images of {}x{} has {} pixels and {} labels", split.count,
             split.rows, split.cols, split.pixels.size(), split.labels.size());
  order_.resize(size());
  start_epoch(0);
}

std::size_t BatchLoader::num_batches() const {
  return drop_last_ ? size() / batch_size_ : (size() + batch_size_ - 1) / batch_size_;
}

std::size_t BatchLoader::max_batch_size() const {
  return std::min(batch_size_, size());
}

void BatchLoader::start_epoch(std::uint64_t epoch) {
  std::iota(order_.begin(), order_.end(), std::uint32_t{0});
  if (!shuffle_ || order_.size() < 2) return;
  PhiloxStream rng(seed_, rng_stream(RngStream::kShuffle, epoch));
  for (std::size_t i = order_.size() - 1; i > 0; --i) {
    const std::uint32_t j = rng.next_below(static_cast<std::uint32_t>(i + 1));
    std::swap(order_[i], order_[j]);
  }
}

int BatchLoader::fill(std::size_t batch_index, float* images, float* targets,
                      std::uint8_t* labels) const {
  OCTA_CHECK(batch_index < num_batches(), "batch index {} is past the last batch ({} batches)",
             batch_index, num_batches());
  const std::size_t first = batch_index * batch_size_;
  const std::size_t count = std::min(batch_size_, size() - first);
  const std::uint8_t* pixels = split_->pixels.data();
  for (std::size_t b = 0; b < count; ++b) {
    const std::size_t idx = order_[first + b];
    const std::uint8_t* src = pixels + idx * image_size_;
    float* dst = images + b * image_size_;
    for (std::size_t p = 0; p < image_size_; ++p) dst[p] = table_[src[p]];
    const std::uint8_t label = split_->labels[idx];
    targets[b] = label_target(label, target_digit_);
    if (labels != nullptr) labels[b] = label;
  }
  return static_cast<int>(count);
}

}  // namespace octa::data
