// engine/report/report_from_metrics.hpp: a run's report made afterwards, without retraining, from
// its metrics JSON (train_gpu --metrics-out) and its checkpoint: the splits are rebuilt from the
// recorded configuration (data directory, seed, --val-size, test images), the checkpoint is
// evaluated on them in eval mode, and the page (binary or K classes, as the run's config.task) is
// built exactly as train_gpu builds it. Where a
// re-evaluated figure differs from the file's (another device rounds differently), the page shows
// the re-evaluated one and says so at the top.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/report/page.hpp"

namespace octa::report {

struct ReportFromMetricsOptions {
  std::filesystem::path metrics;                    // the metrics JSON
  std::optional<std::filesystem::path> checkpoint;  // default: the file's "checkpoint"
  std::optional<std::filesystem::path> data_dir;    // default: its config's "data_dir", else ./data
  bool allow_download = false;
  std::string device = "auto";  // as --device
  int batch_size = 1000;
};

struct RebuiltReport {
  Page page;
  nlohmann::json metrics;             // the file's, with the evaluation blocks re-computed
  std::vector<std::string> warnings;  // also shown on the page
  std::filesystem::path checkpoint;
};

// Throws octa::Error naming the file or setting at fault (unreadable JSON, no checkpoint recorded
// or given, data not found, a checkpoint of another model).
RebuiltReport report_from_metrics(const ReportFromMetricsOptions& options);

}  // namespace octa::report
