// engine/selfcheck/case_device.hpp: the memory operations a kernel case needs (allocate, upload,
// download, poison, synchronise, time its launches), behind one small interface that each runner
// of the case table provides: CudaCaseDevice (engine/selfcheck/cuda_case_device.hpp: real device
// memory, one stream, CUDA events) for octa_selftest, the [gpu] tests and --conv auto, and the
// kernel emulator's host memory (tests/emulation/emul_kernels_test.cpp). The cases themselves
// (engine/selfcheck/kernel_case.hpp) never call the CUDA runtime.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include <cuda_runtime_api.h>  // cudaStream_t: a type only

#include "engine/core/error.hpp"

namespace octa::selfcheck {

class CaseDevice {
 public:
  virtual ~CaseDevice() = default;

  // "emulator", "cuda:0 NVIDIA H200", ...
  virtual std::string name() const = 0;
  // Exactly `bytes` of device memory (null for 0), every byte 0xFF: a NaN in every float, so an
  // element a kernel fails to write cannot pass a comparison.
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void release(void* p) noexcept = 0;
  // Copies, finished when they return (the host side may go away after).
  virtual void upload(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void download(void* dst, const void* src, std::size_t bytes) = 0;
  // Sets every byte to 0xFF again, in order with the launches.
  virtual void poison(void* p, std::size_t bytes) = 0;
  // The stream every launch of a case goes to.
  virtual cudaStream_t stream() const = 0;
  // Times the launches between the two calls; stop waits for them and returns milliseconds.
  virtual void timer_start() = 0;
  virtual double timer_stop_ms() = 0;
};

// n elements of T in a CaseDevice's memory, created poisoned, released with the array.
template <class T>
class DeviceArray {
 public:
  DeviceArray(CaseDevice& dev, std::size_t n)
      : dev_(&dev), n_(n), p_(static_cast<T*>(dev.allocate(n * sizeof(T)))) {}
  DeviceArray(CaseDevice& dev, const std::vector<T>& host) : DeviceArray(dev, host.size()) {
    put(host);
  }
  ~DeviceArray() {
    if (p_ != nullptr) dev_->release(p_);
  }
  DeviceArray(DeviceArray&& o) noexcept
      : dev_(o.dev_), n_(std::exchange(o.n_, 0)), p_(std::exchange(o.p_, nullptr)) {}
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray& operator=(DeviceArray&&) = delete;

  T* data() const { return p_; }
  std::size_t size() const { return n_; }
  std::size_t bytes() const { return n_ * sizeof(T); }
  void poison() { dev_->poison(p_, bytes()); }
  void put(const std::vector<T>& host) {
    OCTA_CHECK(host.size() == n_, "DeviceArray::put: {} values into an array of {}", host.size(),
               n_);
    dev_->upload(p_, host.data(), bytes());
  }

 private:
  CaseDevice* dev_;
  std::size_t n_;
  T* p_;
};

}  // namespace octa::selfcheck
