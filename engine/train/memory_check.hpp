// engine/train/memory_check.hpp: a batch size whose buffers cannot fit in this machine's memory is
// refused before anything is allocated, with the flag and the memory it would need, instead of
// ending in std::bad_alloc (or the OOM killer) later.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "engine/model/param_table.hpp"

namespace octa {

// Host bytes a backend and its loader ring allocate for batches of `batch` images: the CPU
// reference model's buffers (cpu_model; the GPU keeps those on the device, checked there), the
// ring's `ring_slots` batch buffers and, for the GPU, its two pinned staging batches.
std::uint64_t host_bytes_for_batch(const ParamTable& table, std::int64_t batch, bool cpu_model,
                                   int ring_slots);

// The memory this process may use: physical RAM, or the cgroup's memory.max when lower.
std::uint64_t usable_host_memory();

// "512 B", "1.5 KiB", "3.2 GiB", ...
std::string format_bytes(std::uint64_t bytes);

// Throws octa::Error naming `flag` and the memory needed when host_bytes_for_batch exceeds
// `limit` (usable_host_memory() by default).
void check_batch_memory(std::string_view flag, std::int64_t batch, const ParamTable& table,
                        bool cpu_model, int ring_slots, std::uint64_t limit = 0);

}  // namespace octa
