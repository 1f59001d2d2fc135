// engine/cuda/raii.hpp: owning wrappers for CUDA resources. Each is move-only, acquires in its
// constructor (checked, throwing) and releases in its destructor (checked, logging).
//
//   DeviceBuffer<float>  cudaMalloc / cudaFree         (out-of-memory errors say what was asked)
//   PinnedBuffer<T>      cudaMallocHost / cudaFreeHost (page-locked host memory for async copies)
//   Stream, Event        cudaStreamCreateWithFlags / cudaEventCreateWithFlags
//   CublasHandle, CudnnHandle
#pragma once

#include <cstddef>
#include <utility>

#include "engine/cuda/check.hpp"

namespace octa::cuda {

// Throws CudaError for an allocation of `bytes` that failed, with the device's free/total memory.
[[noreturn]] void throw_out_of_memory(std::size_t bytes, const char* what, cudaError_t status);

// A move-only handle: Traits::release(h) frees a non-null handle.
template <class Handle, class Traits>
class UniqueHandle {
 public:
  UniqueHandle() = default;
  explicit UniqueHandle(Handle h) : h_(h) {}
  UniqueHandle(UniqueHandle&& o) noexcept : h_(std::exchange(o.h_, Handle{})) {}
  UniqueHandle& operator=(UniqueHandle&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, Handle{});
    }
    return *this;
  }
  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;
  ~UniqueHandle() { reset(); }

  Handle get() const { return h_; }
  operator Handle() const { return h_; }  // NOLINT: pass straight to CUDA calls
  void reset() {
    if (h_) Traits::release(h_);
    h_ = Handle{};
  }

 private:
  Handle h_{};
};

struct StreamTraits {
  static void release(cudaStream_t s) { OCTA_CUDA_CHECK_NOTHROW(cudaStreamDestroy(s)); }
};
struct EventTraits {
  static void release(cudaEvent_t e) { OCTA_CUDA_CHECK_NOTHROW(cudaEventDestroy(e)); }
};
struct CublasTraits {
  static void release(cublasHandle_t h) { cublasDestroy(h); }
};
struct CudnnTraits {
  static void release(cudnnHandle_t h) { cudnnDestroy(h); }
};
struct GraphExecTraits {
  static void release(cudaGraphExec_t g) { OCTA_CUDA_CHECK_NOTHROW(cudaGraphExecDestroy(g)); }
};

class Stream : public UniqueHandle<cudaStream_t, StreamTraits> {
 public:
  Stream() : UniqueHandle(create()) {}

 private:
  static cudaStream_t create() {
    cudaStream_t s{};
    OCTA_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return s;
  }
};

class Event : public UniqueHandle<cudaEvent_t, EventTraits> {
 public:
  // Timing events record timestamps; sync-only events (timing = false) are cheaper.
  explicit Event(bool timing = false) : UniqueHandle(create(timing)) {}

 private:
  static cudaEvent_t create(bool timing) {
    cudaEvent_t e{};
    OCTA_CUDA_CHECK(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming));
    return e;
  }
};

class CublasHandle : public UniqueHandle<cublasHandle_t, CublasTraits> {
 public:
  CublasHandle() : UniqueHandle(create()) {}

 private:
  static cublasHandle_t create() {
    cublasHandle_t h{};
    OCTA_CUBLAS_CHECK(cublasCreate(&h));
    return h;
  }
};

class CudnnHandle : public UniqueHandle<cudnnHandle_t, CudnnTraits> {
 public:
  CudnnHandle() : UniqueHandle(create()) {}

 private:
  static cudnnHandle_t create() {
    cudnnHandle_t h{};
    OCTA_CUDNN_CHECK(cudnnCreate(&h));
    return h;
  }
};

using GraphExec = UniqueHandle<cudaGraphExec_t, GraphExecTraits>;

// Typed device memory. Contents are uninitialised.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t count, const char* what = "device buffer") : count_(count) {
    if (count == 0) return;
    void* p = nullptr;
    const cudaError_t st = cudaMalloc(&p, count * sizeof(T));
    if (st != cudaSuccess) throw_out_of_memory(count * sizeof(T), what, st);
    ptr_ = static_cast<T*>(p);
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { release(); }

  T* data() const { return ptr_; }
  std::size_t size() const { return count_; }
  std::size_t bytes() const { return count_ * sizeof(T); }

 private:
  void release() {
    if (ptr_) OCTA_CUDA_CHECK_NOTHROW(cudaFree(ptr_));
    ptr_ = nullptr;
  }
  T* ptr_ = nullptr;
  std::size_t count_ = 0;
};

// Page-locked host memory, so cudaMemcpyAsync really is asynchronous.
template <class T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(std::size_t count, const char* what = "pinned host buffer")
      : count_(count) {
    if (count == 0) return;
    void* p = nullptr;
    const cudaError_t st = cudaMallocHost(&p, count * sizeof(T));
    if (st != cudaSuccess) throw_out_of_memory(count * sizeof(T), what, st);
    ptr_ = static_cast<T*>(p);
  }
  PinnedBuffer(PinnedBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer() { release(); }

  T* data() const { return ptr_; }
  std::size_t size() const { return count_; }
  T& operator[](std::size_t i) const { return ptr_[i]; }

 private:
  void release() {
    if (ptr_) OCTA_CUDA_CHECK_NOTHROW(cudaFreeHost(ptr_));
    ptr_ = nullptr;
  }
  T* ptr_ = nullptr;
  std::size_t count_ = 0;
};

}  // namespace octa::cuda
