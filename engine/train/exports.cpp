// engine/train/exports.cpp: exporting a run's batch order and per-step losses.
#include "engine/train/exports.hpp"

#include <nlohmann/json.hpp>

#include "engine/core/atomic_file.hpp"
#include "engine/core/error.hpp"
#include "engine/data/loader.hpp"
#include "engine/io/output_guard.hpp"
#include "engine/io/safetensors.hpp"

namespace octa {

void export_batch_order(const std::filesystem::path& path, const data::Split& split,
                        std::uint64_t seed, int epochs_begin, int epochs_end) {
  OCTA_CHECK(epochs_end > epochs_begin && epochs_begin >= 0, "{}: no epochs to export ({}..{})",
             path.string(), epochs_begin, epochs_end);
  // The order does not depend on the batch size; the loader's own shuffle is the one exported.
  data::BatchLoader loader(split, 1, /*shuffle=*/true, /*drop_last=*/false, seed, 8);
  const auto n = static_cast<std::size_t>(split.count);
  std::vector<std::int64_t> order;
  order.reserve(static_cast<std::size_t>(epochs_end - epochs_begin) * n);
  for (int e = epochs_begin; e < epochs_end; ++e) {
    loader.start_epoch(static_cast<std::uint64_t>(e));
    for (const std::uint32_t i : loader.order()) order.push_back(i);
  }
  io::write_safetensors(path,
                        {{"order",
                          io::DType::kI64,
                          {epochs_end - epochs_begin, static_cast<std::int64_t>(n)},
                          order.data()}},
                        {{kSafetensorsMarkerKey, kSafetensorsFormat},
                         {"octa.first_epoch", std::to_string(epochs_begin)},
                         {"octa.seed", std::to_string(seed)}});
}

void export_step_losses(const std::filesystem::path& path, const std::vector<double>& losses) {
  nlohmann::json j{{"step_losses", losses}};
  mark_octa_json(j, "losses-1");
  write_file_atomically(path, j.dump() + "\n");
}

}  // namespace octa
