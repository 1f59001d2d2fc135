// engine/cpu_fast/parallel.hpp: the fast CPU backend's one threading layer. Work is cut into a
// fixed list of tasks that depends only on the sizes (never on the thread count), each task is
// computed by one thread with single-threaded BLAS, and reductions over tasks are summed in task
// order afterwards. So results are bit-identical for any number of threads.
#pragma once

#include <cstddef>

namespace octa::cpu_fast {

// Runs task(t) for t in [0, tasks) on the OpenMP threads (omp_set_num_threads, --threads), each
// task on one thread, in no particular order. task must not throw.
void parallel_for_impl(int tasks, void (*call)(void*, int), void* context);

template <class F>
void parallel_for(int tasks, F&& task) {
  parallel_for_impl(
      tasks, [](void* c, int t) { (*static_cast<F*>(c))(t); }, &task);
}

// The threads parallel_for runs on.
int thread_count();

// A fixed partition of n items into kSlots contiguous ranges (some empty when n < kSlots), for
// reductions whose order must not depend on the thread count: slot s is [begin(s), begin(s + 1)).
struct Slots {
  static constexpr int kSlots = 16;  // enough for 16 threads; more threads gain nothing
  int n = 0;
  int begin(int s) const { return static_cast<int>(static_cast<long long>(n) * s / kSlots); }
};

// [begin, end) of block b when n items are cut into blocks of `block` items (the last shorter).
struct Blocks {
  int n = 0, block = 1;
  int count() const { return (n + block - 1) / block; }
  int begin(int b) const { return b * block; }
  int size(int b) const { return (b + 1) * block <= n ? block : n - b * block; }
};

}  // namespace octa::cpu_fast
