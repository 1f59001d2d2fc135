// tests/support/alloc_watch.hpp: watching heap allocations, for tests that promise "no allocation
// here" or "no huge allocation from a lying header". It REPLACES the global operator new/delete, so
// include it from exactly one file per test executable.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace octa::test::alloc_detail {
inline std::atomic<bool> watching{false};
inline std::atomic<long> count{0};
inline std::atomic<std::size_t> largest{0};
inline std::atomic<std::size_t> total{0};
}  // namespace octa::test::alloc_detail

// noinline (new and delete): once inlined, GCC pairs malloc/free with new/delete and warns
// (-Wmismatched-new-delete).
[[gnu::noinline]] void* operator new(std::size_t n) {
  namespace d = octa::test::alloc_detail;
  if (d::watching.load(std::memory_order_relaxed)) {
    d::count.fetch_add(1, std::memory_order_relaxed);
    d::total.fetch_add(n, std::memory_order_relaxed);
    std::size_t seen = d::largest.load(std::memory_order_relaxed);
    while (n > seen && !d::largest.compare_exchange_weak(seen, n)) {
    }
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
// Every other form that pairs with the ones above, so that nothing allocated by the runtime's own
// operator new is freed by this free() (AddressSanitizer found Catch2's new(std::nothrow) freed
// here: alloc-dealloc-mismatch). The aligned forms stay the runtime's, new and delete alike.
[[gnu::noinline]] void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return ::operator new(n);
  } catch (...) {
    return nullptr;
  }
}
[[gnu::noinline]] void* operator new[](std::size_t n) {
  return ::operator new(n);
}
[[gnu::noinline]] void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept {
  return ::operator new(n, t);
}
[[gnu::noinline]] void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}

namespace octa::test {

struct AllocStats {
  long count = 0;           // allocations made
  std::size_t largest = 0;  // the largest single allocation, in bytes
  std::size_t total = 0;    // all allocations together, in bytes (frees not subtracted)
};

// Runs f() and reports the allocations it made (exceptions from f propagate; watching stops).
template <class F>
AllocStats watch_allocations(F&& f) {
  namespace d = alloc_detail;
  d::count = 0;
  d::largest = 0;
  d::total = 0;
  d::watching = true;
  try {
    f();
  } catch (...) {
    d::watching = false;
    throw;
  }
  d::watching = false;
  return {d::count.load(), d::largest.load(), d::total.load()};
}

}  // namespace octa::test
