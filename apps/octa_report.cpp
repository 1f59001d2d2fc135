// apps/octa_report.cpp: a training run's HTML report, made afterwards without retraining, from the
// run's metrics JSON (train_gpu --metrics-out) and its checkpoint. train_gpu writes the same page
// itself after training (--report); this is for runs whose report is missing or out of date.
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "engine/core/log.hpp"
#include "engine/cpu/blas.hpp"
#include "engine/io/output_guard.hpp"
#include "engine/report/report_from_metrics.hpp"
#include "engine/report/run_report.hpp"

namespace {

namespace fs = std::filesystem;

const char* kExamples = R"(
Examples:
  octa_report runs/metrics.json                  writes runs/model_a.report.html (beside the
                                                 checkpoint the metrics file names)
  octa_report runs/metrics.json -o report.html --checkpoint runs/model_a.safetensors
  octa_report runs/metrics.json --data-dir ~/mnist --device cpu
The checkpoint is evaluated again on the run's test split (and its validation split, rebuilt from
the recorded seed and --val-size); figures that differ from the metrics file are flagged on the page.
)";

}  // namespace

int main(int argc, char** argv) {
  octa::cpu::reexec_with_tuned_blas(argv);
  std::string metrics, output, checkpoint, data_dir, device = "auto", log_level = "info";
  bool download = false, overwrite = false;
  CLI::App app{
      "octa_report: the HTML report of a train_gpu run, from its metrics JSON and checkpoint "
      "(no retraining)."};
  app.footer(kExamples);
  app.get_formatter()->column_width(34);
  app.add_option("metrics", metrics, "The run's metrics JSON (train_gpu --metrics-out)")
      ->required();
  app.add_option("-o,--output", output,
                 "The HTML file [beside the checkpoint: <checkpoint>.report.html]");
  app.add_option("--checkpoint", checkpoint, "The run's weights [the one the metrics file names]");
  app.add_option("--data-dir", data_dir, "MNIST [the run's recorded data directory]");
  app.add_flag("--download", download, "Download MNIST if it is missing");
  app.add_option("--device", device, "auto (GPU if usable, else CPU), cuda or cpu")
      ->check(CLI::IsMember({"auto", "cuda", "cpu"}))
      ->capture_default_str();
  app.add_flag("--overwrite", overwrite,
               "Let --output replace an existing file that octa did not write");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  try {
    octa::init_logging(octa::parse_log_level(log_level));
    octa::report::ReportFromMetricsOptions o;
    o.metrics = metrics;
    if (!checkpoint.empty()) o.checkpoint = fs::path(checkpoint);
    if (!data_dir.empty()) o.data_dir = fs::path(data_dir);
    o.allow_download = download;
    o.device = device;
    if (!output.empty()) {
      octa::check_output_path(output, octa::OutputKind::kHtml, "--output", overwrite);
    }
    const octa::report::RebuiltReport r = octa::report::report_from_metrics(o);
    const fs::path out =
        output.empty() ? octa::report::default_report_path(r.checkpoint) : fs::path(output);
    // Never replace a file octa did not write (engine/io/output_guard.hpp).
    if (output.empty())
      octa::check_output_path(out, octa::OutputKind::kHtml, "--output", overwrite);
    octa::report::write_report(out, r.page);
    spdlog::info("report: {}", out.string());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "octa_report: error: %s\n", e.what());
    return 1;
  }
}
