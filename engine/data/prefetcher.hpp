// engine/data/prefetcher.hpp: the loader threads. They shuffle and transform the batches of epochs
// [first_epoch, last_epoch) into a ring of HostBatch slots (pinned memory on the GPU path), at
// most ring-size batches ahead of the training loop, which takes them strictly in order. With W
// threads, thread w fills batches w, w + W, w + 2W, ... with a BatchLoader of its own (each one
// computes the epoch's order itself, from the seed). The order and contents are exactly
// BatchLoader's, whatever W, so a run sees the same batches with or without the threads.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "engine/data/host_batch.hpp"
#include "engine/data/loader.hpp"

namespace octa::data {

struct PrefetchOptions {
  int batch_size = 64;
  bool shuffle = true;
  bool drop_last = false;
  std::uint64_t seed = 0;
  int target_digit = 8;
  std::uint64_t first_epoch = 0;
  std::uint64_t last_epoch = 1;  // exclusive
  std::size_t first_batch = 0;   // batches of first_epoch to skip (a run resumed mid-epoch)
  int threads = 1;               // loader threads (at most the ring's size is useful)
};

class Prefetcher {
 public:
  struct Item {
    HostBatch* batch = nullptr;  // filled: images and targets of n samples
    int n = 0;
    std::uint64_t epoch = 0;
    std::size_t index = 0;  // the batch's index within its epoch
  };

  // Starts the threads. `split` must outlive the prefetcher. Throws octa::Error for no slots, a
  // slot smaller than a batch, threads < 1, or the loader's own argument errors.
  Prefetcher(const Split& split, const PrefetchOptions& options,
             std::vector<std::unique_ptr<HostBatch>> ring);
  Prefetcher(Split&&, const PrefetchOptions&, std::vector<std::unique_ptr<HostBatch>>) = delete;
  // Stops the threads (each finishes at most the batch it is filling) and joins them.
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  std::size_t batches_per_epoch() const { return batches_per_epoch_; }
  std::size_t total_batches() const { return total_; }

  // The next batch in order; blocks until the thread has filled it. The batch returned before
  // is handed back to the thread by this call, so a caller must be done handing it to the
  // backend (the backend itself may go on reading it until its wait_reusable() returns).
  // Rethrows, in the caller's thread, an error a loader thread met at this batch. Throws
  // octa::Error past the last batch.
  Item next();

 private:
  void run(std::size_t worker) noexcept;

  PrefetchOptions options_;
  std::vector<std::unique_ptr<HostBatch>> ring_;
  std::vector<std::unique_ptr<BatchLoader>> loaders_;  // one per thread
  std::size_t batches_per_epoch_ = 0;
  std::size_t total_ = 0;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Item> items_;       // items_[k % ring size]: batch k, once filled
  std::vector<std::size_t> seq_;  // seq_[k % ring size] == k once batch k is filled
  std::size_t released_ = 0;      // batches the consumer handed back
  std::size_t taken_ = 0;         // batches next() returned
  bool stop_ = false;
  std::exception_ptr error_;  // the first failure, at batch error_at_
  std::size_t error_at_ = 0;
  std::vector<std::thread> threads_;
};

}  // namespace octa::data
