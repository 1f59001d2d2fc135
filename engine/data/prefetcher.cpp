// engine/data/prefetcher.cpp: the loader thread and its hand-over with the training loop.
#include "engine/data/prefetcher.hpp"

#include <utility>

#include "engine/core/error.hpp"

namespace octa::data {

Prefetcher::Prefetcher(const Split& split, const PrefetchOptions& options,
                       std::vector<std::unique_ptr<HostBatch>> ring)
    : loader_(split, options.batch_size, options.shuffle, options.drop_last, options.seed,
              options.target_digit),
      options_(options),
      ring_(std::move(ring)) {
  OCTA_CHECK(!ring_.empty(), "Prefetcher: the ring has no slots");
  for (const auto& slot : ring_) {
    OCTA_CHECK(slot != nullptr, "Prefetcher: a ring slot is null");
    OCTA_CHECK(static_cast<std::size_t>(slot->capacity()) >= loader_.max_batch_size() &&
                   slot->image_floats() == loader_.image_floats(),
               "Prefetcher: a ring slot holds {} images of {} floats, batches need {} of {}",
               slot->capacity(), slot->image_floats(), loader_.max_batch_size(),
               loader_.image_floats());
  }
  OCTA_CHECK(options.first_epoch <= options.last_epoch,
             "Prefetcher: first epoch {} is after the last {}", options.first_epoch,
             options.last_epoch);
  batches_per_epoch_ = loader_.num_batches();
  total_ = static_cast<std::size_t>(options.last_epoch - options.first_epoch) * batches_per_epoch_;
  items_.resize(ring_.size());
  thread_ = std::thread([this] { run(); });
}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Prefetcher::run() noexcept {
  const std::size_t slots = ring_.size();
  for (std::size_t k = 0; k < total_; ++k) {
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || k - released_ < slots; });
      if (stop_) return;
    }
    try {
      HostBatch& slot = *ring_[k % slots];
      slot.wait_reusable();
      Item item;
      item.batch = &slot;
      item.epoch = options_.first_epoch + k / batches_per_epoch_;
      item.index = k % batches_per_epoch_;
      if (item.index == 0) loader_.start_epoch(item.epoch);
      item.n = loader_.fill(item.index, slot.images(), slot.targets(), nullptr);
      std::lock_guard lock(mutex_);
      items_[k % slots] = item;
      filled_ = k + 1;
    } catch (...) {
      std::lock_guard lock(mutex_);
      error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
    cv_.notify_all();
  }
}

Prefetcher::Item Prefetcher::next() {
  std::unique_lock lock(mutex_);
  if (released_ < taken_) {
    released_ = taken_;
    cv_.notify_all();
  }
  OCTA_CHECK(taken_ < total_, "Prefetcher: all {} batches were taken", total_);
  cv_.wait(lock, [&] { return filled_ > taken_ || error_; });
  if (filled_ == taken_) std::rethrow_exception(error_);
  return items_[taken_++ % ring_.size()];
}

}  // namespace octa::data
