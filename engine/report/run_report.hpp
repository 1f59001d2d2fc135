// engine/report/run_report.hpp: the report of one binary training run ("is it an 8?", or any
// class against the rest): the page built from the run's metrics JSON (every figure on it points
// at its value there, see page.hpp) and its evaluations (curves, misclassified images), and
// writing it (either kind of page: a K-class run's is class_report.hpp's). train_gpu writes it
// after training; octa_report (report_from_metrics.hpp) rebuilds it later from the metrics JSON
// and the checkpoint.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/data/mnist.hpp"
#include "engine/report/evaluation.hpp"
#include "engine/report/page.hpp"

namespace octa::report {

struct RunReportInputs {
  // The metrics JSON as train_gpu writes it, evaluation_json() blocks included ("test",
  // "validation", "thresholds", "test_at_best_f1_threshold"), plus "config", "epochs", "device",
  // "model", "timings" where known.
  const nlohmann::json* metrics = nullptr;
  const SplitEvaluation* test = nullptr;        // required
  const SplitEvaluation* validation = nullptr;  // may be null
  const data::Split* test_images = nullptr;     // the test split itself, for the gallery
  std::string made_by;                          // footer: e.g. "train_gpu" or "octa_report"
  std::vector<std::string> warnings;            // shown at the top, e.g. figures that differ
  std::size_t max_misclassified = 120;          // tiles in the gallery at most
};

Page build_run_page(const RunReportInputs& in);

// runs/model_a.safetensors -> runs/model_a.report.html
std::filesystem::path default_report_path(const std::filesystem::path& checkpoint);

// render_html(page) written atomically (engine/core/atomic_file.hpp).
void write_report(const std::filesystem::path& path, const Page& page);

}  // namespace octa::report
