// engine/report/report_from_metrics.cpp: metrics JSON + checkpoint -> splits -> logits -> page (the
// binary task's or the K classes').
#include "engine/report/report_from_metrics.hpp"

#include <cmath>
#include <fstream>
#include <span>

#include <spdlog/spdlog.h>

#include "engine/core/error.hpp"
#include "engine/data/holdout.hpp"
#include "engine/data/mnist.hpp"
#include "engine/predict/inference.hpp"
#include "engine/report/class_report.hpp"
#include "engine/report/evaluation.hpp"
#include "engine/report/run_report.hpp"
#include "engine/train/trainer.hpp"

namespace octa::report {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot open the metrics JSON", path.string()));
  try {
    json j = json::parse(in);
    OCTA_CHECK(j.is_object(), "{}: not a JSON object", path.string());
    return j;
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: not valid JSON: {}", path.string(), e.what()));
  }
}

template <class T>
T config_value(const json& m, const fs::path& path, const char* key, T fallback) {
  if (!m.contains("config") || !m["config"].contains(key)) return fallback;
  try {
    return m["config"][key].get<T>();
  } catch (const json::exception&) {
    throw Error(fmt::format("{}: config.{} is not what train_gpu writes ({})", path.string(), key,
                            m["config"][key].dump()));
  }
}

// The figures of the file that a re-evaluation must reproduce, as (pointer, name): the binary
// task's and the K classes'.
constexpr std::pair<const char*, const char*> kChecked[] = {
    {"/test/accuracy", "test accuracy"},      {"/test/roc_auc", "test ROC-AUC"},
    {"/test/confusion_matrix/tp", "test TP"}, {"/test/confusion_matrix/fp", "test FP"},
    {"/test/confusion_matrix/tn", "test TN"}, {"/test/confusion_matrix/fn", "test FN"},
    {"/test/mean_loss", "test mean loss"},    {"/validation/accuracy", "validation accuracy"},
};
constexpr std::pair<const char*, const char*> kCheckedClasses[] = {
    {"/test/accuracy", "test accuracy"},
    {"/test/top2_accuracy", "test top-2 accuracy"},
    {"/test/macro_f1", "test macro-F1"},
    {"/test/confusion_matrix/counts", "the test confusion matrix"},
    {"/test/mean_loss", "test mean loss"},
    {"/validation/accuracy", "validation accuracy"},
};

}  // namespace

RebuiltReport report_from_metrics(const ReportFromMetricsOptions& o) {
  RebuiltReport r;
  const json original = read_json(o.metrics);
  r.metrics = original;
  const std::string where = o.metrics.string();

  if (o.checkpoint) {
    r.checkpoint = *o.checkpoint;
  } else {
    OCTA_CHECK(original.contains("checkpoint") && original["checkpoint"].is_string(),
               "{}: records no checkpoint (the run had --no-checkpoint?): give one with "
               "--checkpoint",
               where);
    r.checkpoint = original["checkpoint"].get<std::string>();
    // A relative path in the file is relative to where train_gpu ran; also try beside the JSON.
    std::error_code ec;
    if (r.checkpoint.is_relative() && !fs::exists(r.checkpoint, ec)) {
      const fs::path beside = o.metrics.parent_path() / r.checkpoint.filename();
      if (fs::exists(beside, ec)) r.checkpoint = beside;
    }
  }
  const std::string model = original.value("model", std::string("A"));
  const Arch arch = parse_arch(model);
  // The binary task's page (thresholds, ROC) or the K classes' (per class, the KxK confusion
  // matrix). The dataset: what the run trained on (files before --dataset: MNIST).
  const std::string task = config_value<std::string>(original, o.metrics, "task", "binary");
  OCTA_CHECK(task == "binary" || task == "multiclass", "{}: config.task '{}' is no task", where,
             task);
  const bool multiclass = task == "multiclass";
  const int num_classes = multiclass ? config_value<int>(original, o.metrics, "num_classes", 0) : 1;
  OCTA_CHECK(!multiclass || num_classes >= 2,
             "{}: a multi-class run that records no config.num_classes (at least 2)", where);
  const data::DatasetSpec& dataset =
      data::dataset_by_id(config_value<std::string>(original, o.metrics, "dataset", "mnist"));
  const int digit = config_value<int>(original, o.metrics, "target_digit", 8);
  const int val_size = config_value<int>(original, o.metrics, "val_size", 0);
  const auto seed = config_value<std::uint64_t>(original, o.metrics, "seed", 0);
  const auto test_images = config_value<std::size_t>(original, o.metrics, "test_images", 0);
  const fs::path data_dir =
      o.data_dir ? *o.data_dir
                 : fs::path(config_value<std::string>(original, o.metrics, "data_dir", "./data"));

  const predict::ModelFile file = predict::load_model_file(r.checkpoint, arch, num_classes);
  auto backend = predict::make_inference_backend(o.device, file.arch, o.batch_size, num_classes);
  backend->load(file.state, nullptr);

  data::FindOptions find;
  find.allow_download = o.allow_download;
  const data::Dataset mnist = data::load_dataset(dataset, data_dir, find);
  OCTA_CHECK(!multiclass || mnist.num_classes == num_classes,
             "{}: the run learnt {} classes, the data in {} has {}", where, num_classes,
             data_dir.string(), mnist.num_classes);
  const std::vector<std::string> class_names = mnist.class_names;
  const data::RunSplits splits = data::run_splits(mnist, val_size, seed, 0, test_images);
  const auto compare = [&](std::span<const std::pair<const char*, const char*>> checked) {
    for (const auto& [pointer, name] : checked) {
      const json::json_pointer p(pointer);
      if (!original.contains(p) || !r.metrics.contains(p)) continue;
      if (original.at(p) != r.metrics.at(p)) {
        r.warnings.push_back(fmt::format(
            "Re-evaluated on {}: {} is {}, the metrics file says {} (a different device or build "
            "rounds differently). The page shows the re-evaluated figures.",
            backend->description(), name, r.metrics.at(p).dump(), original.at(p).dump()));
      }
    }
    for (const std::string& w : r.warnings) spdlog::warn("{}", w);
  };
  const std::string made_by =
      fmt::format("octa_report, from {} and {}", o.metrics.string(), r.checkpoint.string());

  if (multiclass) {
    std::vector<float> logits;
    r.metrics["test"] =
        to_json(evaluate_classes(*backend, splits.test, o.batch_size, class_names, &logits));
    if (splits.validation.count > 0) {
      r.metrics["validation"] =
          to_json(evaluate_classes(*backend, splits.validation, o.batch_size, class_names));
    }
    compare(kCheckedClasses);
    ClassReportInputs in;
    in.metrics = &r.metrics;
    in.test_logits = logits;
    in.test_images = &splits.test;
    in.made_by = made_by;
    in.warnings = r.warnings;
    r.page = build_class_page(in);
    return r;
  }

  std::vector<float> logits;
  evaluate(*backend, splits.test, o.batch_size, digit, &logits);
  const SplitEvaluation test = evaluate_split(kTestSplit, std::move(logits), splits.test, digit);
  std::optional<SplitEvaluation> validation;
  if (splits.validation.count > 0) {
    std::vector<float> vl;
    evaluate(*backend, splits.validation, o.batch_size, digit, &vl);
    validation = evaluate_split(kValidationSplit, std::move(vl), splits.validation, digit);
  }
  const json fresh = evaluation_json(test, validation ? &*validation : nullptr);
  for (auto it = fresh.begin(); it != fresh.end(); ++it) r.metrics[it.key()] = it.value();

  compare(kChecked);

  RunReportInputs in;
  in.metrics = &r.metrics;
  in.test = &test;
  in.validation = validation ? &*validation : nullptr;
  in.test_images = &splits.test;
  in.made_by = made_by;
  in.warnings = r.warnings;
  r.page = build_run_page(in);
  return r;
}

}  // namespace octa::report
