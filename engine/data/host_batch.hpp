// engine/data/host_batch.hpp: host memory that one batch is staged in on its way to a backend.
// The plain kind is pageable memory; the CUDA engine hands out pinned memory that it copies from
// asynchronously, and says through wait_reusable() when the copy is done, so a loader thread never
// refills a slot the device is still reading.
#pragma once

#include <cstddef>
#include <vector>

namespace octa::data {

class HostBatch {
 public:
  virtual ~HostBatch() = default;
  HostBatch(const HostBatch&) = delete;
  HostBatch& operator=(const HostBatch&) = delete;

  // Room for capacity() images of image_floats() floats each, and capacity() targets.
  virtual float* images() = 0;
  virtual float* targets() = 0;
  int capacity() const { return capacity_; }
  std::size_t image_floats() const { return image_floats_; }

  // Blocks until nothing reads this memory any more (the last copy from it finished). May be
  // called from another thread than the one that handed the batch to the backend.
  virtual void wait_reusable() {}

 protected:
  HostBatch(int capacity, std::size_t image_floats)
      : capacity_(capacity), image_floats_(image_floats) {}

 private:
  int capacity_;
  std::size_t image_floats_;
};

// Pageable memory; reusable as soon as the backend's train_step returns.
class PageableHostBatch final : public HostBatch {
 public:
  PageableHostBatch(int capacity, std::size_t image_floats)
      : HostBatch(capacity, image_floats),
        images_(static_cast<std::size_t>(capacity) * image_floats),
        targets_(static_cast<std::size_t>(capacity)) {}
  float* images() override { return images_.data(); }
  float* targets() override { return targets_.data(); }

 private:
  std::vector<float> images_, targets_;
};

}  // namespace octa::data
