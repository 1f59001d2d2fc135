// engine/cpu_fast/parallel.cpp: parallel_for over OpenMP, dynamically scheduled (a shared machine
// slows one core at a time; tasks are independent, so the schedule changes no result).
#include "engine/cpu_fast/parallel.hpp"

#include <omp.h>

namespace octa::cpu_fast {

void parallel_for_impl(int tasks, void (*call)(void*, int), void* context) {
  if (tasks <= 0) return;
  if (tasks == 1 || omp_get_max_threads() == 1) {
    for (int t = 0; t < tasks; ++t) call(context, t);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int t = 0; t < tasks; ++t) call(context, t);
}

int thread_count() {
  return omp_get_max_threads();
}

}  // namespace octa::cpu_fast
