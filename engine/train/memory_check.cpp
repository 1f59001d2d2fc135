// engine/train/memory_check.cpp: what a batch size costs in host memory, against what there is.
#include "engine/train/memory_check.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <string>

#include "engine/core/error.hpp"
#include "engine/cpu_fast/fast_model.hpp"
#include "engine/model/cpu_model.hpp"

namespace octa {

std::uint64_t fast_model_bytes(const ParamTable& table, std::int64_t capacity) {
  const std::uint64_t one = cpu_fast::FastModel(table, 1).activation_bytes();
  const std::uint64_t per_image = cpu_fast::FastModel(table, 2).activation_bytes() - one;
  return one - per_image +
         per_image * static_cast<std::uint64_t>(std::max<std::int64_t>(capacity, 0));
}

std::uint64_t host_bytes_for_batch(const ParamTable& table, std::int64_t batch, HostModel model,
                                   int ring_slots) {
  const auto n = static_cast<std::uint64_t>(std::max<std::int64_t>(batch, 0));
  const std::uint64_t batch_buffer = n * (kImageSize * kImageSize + 1) * sizeof(float);
  const std::uint64_t staging =
      static_cast<std::uint64_t>(ring_slots) + (model == HostModel::kNone ? 2 : 0);
  std::uint64_t model_bytes = 0;
  if (model == HostModel::kReference) model_bytes = CpuModel<float>::buffer_bytes(table, batch);
  if (model == HostModel::kFast) model_bytes = fast_model_bytes(table, batch);
  return model_bytes + staging * batch_buffer;
}

std::uint64_t usable_host_memory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  std::uint64_t limit = pages > 0 && page > 0
                            ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page)
                            : UINT64_MAX;
  // cgroup v2 (a container's limit); "max" or an absent file means none.
  std::ifstream in("/sys/fs/cgroup/memory.max");
  std::string value;
  if (in >> value && !value.empty() && value != "max" &&
      value.find_first_not_of("0123456789") == std::string::npos && value.size() < 20) {
    limit = std::min<std::uint64_t>(limit, std::stoull(value));
  }
  return limit;
}

std::string format_bytes(std::uint64_t bytes) {
  constexpr std::array<const char*, 7> kUnits{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  auto value = static_cast<double>(bytes);
  std::size_t unit = 0;
  while (value >= 1024.0 && unit + 1 < kUnits.size()) {
    value /= 1024.0;
    ++unit;
  }
  return unit == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.1f} {}", value, kUnits[unit]);
}

void check_batch_memory(std::string_view flag, std::int64_t batch, const ParamTable& table,
                        HostModel model, int ring_slots, std::uint64_t limit) {
  if (limit == 0) limit = usable_host_memory();
  const std::uint64_t need = host_bytes_for_batch(table, batch, model, ring_slots);
  if (need <= limit) return;
  const std::uint64_t per_image = host_bytes_for_batch(table, 2, model, ring_slots) -
                                  host_bytes_for_batch(table, 1, model, ring_slots);
  throw Error(fmt::format(
      "{} {}: a batch this large needs about {} of memory ({} per image: model {}'s {}batch "
      "buffers), more than the {} this machine has; choose a smaller {}",
      flag, batch, format_bytes(need), format_bytes(per_image), arch_name(table.arch()),
      model == HostModel::kNone ? "" : "activations, gradients and ", format_bytes(limit), flag));
}

}  // namespace octa
