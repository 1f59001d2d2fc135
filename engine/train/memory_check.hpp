// engine/train/memory_check.hpp: a batch size whose buffers cannot fit in this machine's memory is
// refused before anything is allocated, with the flag and the memory it would need, instead of
// ending in std::bad_alloc (or the OOM killer) later.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/model/param_table.hpp"

namespace octa {

// Which model's buffers a backend keeps in host memory.
enum class HostModel {
  kNone,       // the GPU engine: its buffers are on the device (checked there); two pinned batches
  kReference,  // CpuModel<float> (--device cpu-ref)
  kFast,       // cpu_fast::FastModel (--device cpu)
};

// Host bytes a backend and its loader ring allocate for training batches of `batch` images: the
// model's buffers, the ring's `ring_slots` batch buffers and, for the GPU, its two pinned staging
// batches. (The CPU backends evaluate in pieces of the training batch, so the test batch adds only
// its ring there; on the GPU the staging and device buffers are sized for the larger of the two.)
std::uint64_t host_bytes_for_batch(const ParamTable& table, std::int64_t batch, HostModel model,
                                   int ring_slots);

// The memory this process may use: physical RAM, or the cgroup's memory.max when lower.
std::uint64_t usable_host_memory();

// "512 B", "1.5 KiB", "3.2 GiB", ...
std::string format_bytes(std::uint64_t bytes);

// Throws octa::Error naming `flag` and the memory needed when host_bytes_for_batch exceeds
// `limit` (usable_host_memory() by default).
void check_batch_memory(std::string_view flag, std::int64_t batch, const ParamTable& table,
                        HostModel model, int ring_slots, std::uint64_t limit = 0);

// The fast CPU model's buffers for `capacity` images, without allocating them for it: they grow
// linearly with the capacity (FastModel::activation_bytes), measured at capacities 1 and 2.
std::uint64_t fast_model_bytes(const ParamTable& table, std::int64_t capacity);

}  // namespace octa
