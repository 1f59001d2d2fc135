// engine/data/prefetcher.cpp: the loader threads and their hand-over with the training loop.
#include "engine/data/prefetcher.hpp"

#include <limits>
#include <utility>

#include "engine/core/error.hpp"

namespace octa::data {

namespace {
constexpr std::size_t kEmpty = std::numeric_limits<std::size_t>::max();
}  // namespace

Prefetcher::Prefetcher(const Split& split, const PrefetchOptions& options,
                       std::vector<std::unique_ptr<HostBatch>> ring)
    : options_(options), ring_(std::move(ring)) {
  OCTA_CHECK(options.threads >= 1, "Prefetcher: {} loader threads (at least 1)", options.threads);
  OCTA_CHECK(!ring_.empty(), "Prefetcher: the ring has no slots");
  OCTA_CHECK(options.first_epoch <= options.last_epoch,
             "Prefetcher: first epoch {} is after the last {}", options.first_epoch,
             options.last_epoch);
  for (int w = 0; w < options.threads; ++w) {
    loaders_.push_back(std::make_unique<BatchLoader>(split, options.batch_size, options.shuffle,
                                                     options.drop_last, options.seed,
                                                     options.target_digit));
  }
  const BatchLoader& loader = *loaders_.front();
  for (const auto& slot : ring_) {
    OCTA_CHECK(slot != nullptr, "Prefetcher: a ring slot is null");
    OCTA_CHECK(static_cast<std::size_t>(slot->capacity()) >= loader.max_batch_size() &&
                   slot->image_floats() == loader.image_floats(),
               "Prefetcher: a ring slot holds {} images of {} floats, batches need {} of {}",
               slot->capacity(), slot->image_floats(), loader.max_batch_size(),
               loader.image_floats());
  }
  batches_per_epoch_ = loader.num_batches();
  total_ = static_cast<std::size_t>(options.last_epoch - options.first_epoch) * batches_per_epoch_;
  OCTA_CHECK(options.first_batch == 0 || (options.first_batch < batches_per_epoch_ && total_ > 0),
             "Prefetcher: first batch {} is past the {} batches of epoch {}", options.first_batch,
             batches_per_epoch_, options.first_epoch);
  total_ -= options.first_batch;
  items_.resize(ring_.size());
  seq_.assign(ring_.size(), kEmpty);
  for (std::size_t w = 0; w < loaders_.size(); ++w) threads_.emplace_back([this, w] { run(w); });
}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void Prefetcher::run(std::size_t worker) noexcept {
  const std::size_t slots = ring_.size();
  BatchLoader& loader = *loaders_[worker];
  std::uint64_t loader_epoch = std::numeric_limits<std::uint64_t>::max();
  for (std::size_t k = worker; k < total_; k += loaders_.size()) {
    {
      // Slot k % slots last held batch k - slots, which the consumer must have handed back.
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || k - released_ < slots; });
      if (stop_) return;
    }
    try {
      HostBatch& slot = *ring_[k % slots];
      slot.wait_reusable();
      Item item;
      item.batch = &slot;
      const std::size_t run_index = options_.first_batch + k;  // counted from first_epoch's start
      item.epoch = options_.first_epoch + run_index / batches_per_epoch_;
      item.index = run_index % batches_per_epoch_;
      if (item.epoch != loader_epoch) {
        loader.start_epoch(item.epoch);
        loader_epoch = item.epoch;
      }
      item.n = loader.fill(item.index, slot.images(), slot.targets(), nullptr);
      std::lock_guard lock(mutex_);
      items_[k % slots] = item;
      seq_[k % slots] = k;
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!error_ || k < error_at_) {
        error_ = std::current_exception();
        error_at_ = k;
      }
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
  const std::size_t i = taken_ % ring_.size();
  cv_.wait(lock, [&] { return seq_[i] == taken_ || (error_ && error_at_ <= taken_); });
  if (seq_[i] != taken_) std::rethrow_exception(error_);
  ++taken_;
  return items_[i];
}

}  // namespace octa::data
