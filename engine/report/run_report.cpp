// engine/report/run_report.cpp: a training run's page: headline figures, training curves, ROC and
// precision-recall, the confusion matrix, the threshold table from the split it was chosen on, the
// misclassified test digits, configuration and timings. Numbers are read from the metrics JSON and
// keyed to it; curves and digits come from the evaluations.
#include "engine/report/run_report.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "engine/core/atomic_file.hpp"
#include "engine/core/error.hpp"
#include "engine/report/html.hpp"

namespace octa::report {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kTestColor = "#2f6fed";
constexpr const char* kValidationColor = "#e8590c";
constexpr const char* kLossColor = "#0f9d8a";
constexpr const char* kReferenceColor = "#98a2b3";

// The value at a JSON pointer, or NaN when it is absent or not a number.
double number_at(const json& j, const std::string& pointer) {
  const json::json_pointer p(pointer);
  if (!j.contains(p) || !j.at(p).is_number()) return std::numeric_limits<double>::quiet_NaN();
  return j.at(p).get<double>();
}

std::string text_at(const json& j, const std::string& pointer, const std::string& fallback = "") {
  const json::json_pointer p(pointer);
  if (!j.contains(p)) return fallback;
  const json& v = j.at(p);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return fallback;
  return v.dump();
}

// Formatted figures keyed to their place in the metrics JSON.
Cell pct(const json& j, const std::string& ptr, int decimals = 2) {
  const double v = number_at(j, ptr);
  if (std::isnan(v)) return {"n/a", "", true};
  return {fmt::format("{:.{}f}%", v * 100.0, decimals), ptr, true};
}
Cell fix(const json& j, const std::string& ptr, int decimals = 4) {
  const double v = number_at(j, ptr);
  if (std::isnan(v)) return {"n/a", "", true};
  return {fmt::format("{:.{}f}", v, decimals), ptr, true};
}
Cell count(const json& j, const std::string& ptr) {
  const double v = number_at(j, ptr);
  if (std::isnan(v)) return {"n/a", "", true};
  return {with_commas(static_cast<std::int64_t>(std::llround(v))), ptr, true};
}
Cell plain(const json& j, const std::string& ptr, const std::string& fallback = "n/a") {
  const std::string s = text_at(j, ptr);
  return {s.empty() ? fallback : s, s.empty() ? "" : ptr, false};
}
Cell text(std::string s) {
  return {std::move(s), "", false};
}

// "an 8", "a 3".
std::string a_digit(int digit) {
  return fmt::format("{} {}", digit == 8 ? "an" : "a", digit);
}

std::string split_phrase(const json& m, const std::string& split) {
  const double n = number_at(m, "/" + split + "/count");
  const std::string images =
      std::isnan(n) ? "" : fmt::format(", {} images", with_commas(std::llround(n)));
  if (split == kValidationSplit) return "validation split (held out of training" + images + ")";
  return "MNIST test split" + (images.empty() ? "" : " (" + images.substr(2) + ")");
}

// ---------------------------------------------------------------------------------------------

std::vector<Kpi> headline(const json& m) {
  return {
      {"Accuracy", pct(m, "/test/accuracy"), "majority baseline ",
       pct(m, "/test/baseline_accuracy")},
      {"Precision", fix(m, "/test/precision"), "of the images called the target digit", {}},
      {"Recall", fix(m, "/test/recall"), "of the target digits found", {}},
      {"F1", fix(m, "/test/f1"), "harmonic mean of the two", {}},
      {"ROC-AUC", fix(m, "/test/roc_auc"), "ranking, any threshold", {}},
      {"Avg. precision", fix(m, "/test/average_precision"), "area under precision-recall", {}},
  };
}

Section training_section(const json& m) {
  Section s{"training", "Training", "", 2, {}};
  s.intro =
      "Mean BCE-with-logits loss over every training image of each epoch (not the last batch's), "
      "and accuracy on the test split after each epoch (monitoring only: nothing is chosen with "
      "it).";
  Chart loss{"Training loss",
             "mean over the epoch's images",
             "epoch",
             "loss",
             0,
             1,
             0,
             1,
             true,
             false,
             {},
             "No epochs were trained in this run."};
  Chart acc{"Test accuracy per epoch",
            "at threshold 0.5",
            "epoch",
            "accuracy",
            0,
            1,
            0,
            1,
            true,
            true,
            {},
            "Not recorded: train with --eval-every-epoch (on whenever a report is written)."};
  Series loss_series{"training loss", {}, {}, kLossColor, true, false};
  Series acc_series{"test accuracy", {}, {}, kTestColor, true, false};
  double max_loss = 0, min_acc = 1, first = 0, last = 0;
  if (m.contains("epochs") && m["epochs"].is_array()) {
    const json& epochs = m["epochs"];
    for (std::size_t i = 0; i < epochs.size(); ++i) {
      const std::string base = fmt::format("/epochs/{}", i);
      const double e = number_at(m, base + "/epoch");
      const double l = number_at(m, base + "/mean_loss");
      const double a = number_at(m, base + "/test_accuracy");
      if (i == 0) first = e;
      last = e;
      if (std::isfinite(l)) {
        loss_series.points.push_back({e, l});
        max_loss = std::max(max_loss, l);
      }
      if (std::isfinite(a)) {
        acc_series.points.push_back({e, a});
        min_acc = std::min(min_acc, a);
      }
    }
  }
  const double x0 = last > first ? first : first - 1, x1 = last > first ? last : first + 1;
  loss.x_min = acc.x_min = std::max(0.0, x0);
  loss.x_max = acc.x_max = x1;
  loss.y_max = max_loss > 0 ? max_loss * 1.15 : 1.0;
  const double baseline = number_at(m, "/test/baseline_accuracy");
  if (std::isfinite(baseline)) min_acc = std::min(min_acc, baseline);
  acc.y_min = std::max(0.0, std::floor((min_acc - 0.01) * 100.0) / 100.0);
  acc.y_max = 1.0;
  if (!loss_series.points.empty()) {
    loss_series.stat = fix(m, fmt::format("/epochs/{}/mean_loss", loss_series.points.size() - 1));
  }
  loss.series.push_back(loss_series);
  if (!acc_series.points.empty()) {
    acc_series.stat = pct(m, fmt::format("/epochs/{}/test_accuracy", m["epochs"].size() - 1));
    acc.series.push_back(acc_series);
    if (std::isfinite(baseline)) {
      acc.series.push_back({"majority baseline",
                            pct(m, "/test/baseline_accuracy"),
                            {{acc.x_min, baseline}, {acc.x_max, baseline}},
                            kReferenceColor,
                            false,
                            true});
    }
  }
  s.blocks.push_back(loss);
  s.blocks.push_back(acc);
  return s;
}

Section ranking_section(const json& m, const SplitEvaluation& test, const SplitEvaluation* val) {
  Section s{"ranking", "ROC and precision-recall", "", 2, {}};
  s.intro =
      "How well the scores rank the target digit above the rest, whatever the threshold. The "
      "test split is the headline; the validation split, where there is one, is drawn beside "
      "it.";
  Chart roc{"ROC curve",
            "true positive rate against false positive rate",
            "false positive rate",
            "true positive rate",
            0,
            1,
            0,
            1,
            false,
            false,
            {},
            "Needs both classes in the split."};
  Chart pr{"Precision-recall curve",
           "precision against recall, one point per distinct score",
           "recall",
           "precision",
           0,
           1,
           0,
           1.0,
           false,
           false,
           {},
           "Needs both classes in the split."};
  for (const SplitEvaluation* e : {&test, val}) {
    if (e == nullptr || e->roc.points.empty()) continue;
    const std::string color = e == &test ? kTestColor : kValidationColor;
    roc.series.push_back({e->split, fix(m, "/" + e->split + "/roc_auc"), thin_curve(e->roc.points),
                          color, false, false});
    roc.series.back().stat.text = "AUC " + roc.series.back().stat.text;
    // Drawn from recall 0 at the first point's precision: a step plot of the same curve.
    std::vector<CurvePoint> pr_points = thin_curve(e->pr.points);
    pr_points.insert(pr_points.begin(), {0.0, pr_points.front().y});
    pr.series.push_back({e->split, fix(m, "/" + e->split + "/average_precision"),
                         std::move(pr_points), color, false, false});
    pr.series.back().stat.text = "AP " + pr.series.back().stat.text;
  }
  if (!roc.series.empty()) {
    roc.series.push_back({"chance", {}, {{0, 0}, {1, 1}}, kReferenceColor, false, true});
    const double prevalence = test.pr.prevalence;
    pr.series.push_back({"chance: the test prevalence",
                         pct(m, "/test/prevalence"),
                         {{0, prevalence}, {1, prevalence}},
                         kReferenceColor,
                         false,
                         true});
  }
  s.blocks.push_back(roc);
  s.blocks.push_back(pr);
  return s;
}

Section decisions_section(const json& m, int target_digit) {
  Section s{"decisions", "Decisions", "", 2, {}};
  const std::string pos = std::to_string(target_digit), neg = "not " + pos;
  s.intro = fmt::format(
      "The model answers \"{}\" when sigmoid(logit) > threshold. The confusion matrix is on the "
      "test split at the default threshold 0.5; the best-F1 threshold is chosen on the split "
      "named beside it.",
      pos);
  Confusion c;
  c.title = "Confusion matrix";
  c.caption = split_phrase(m, kTestSplit) + ", threshold 0.5";
  c.labels = {pos, neg};
  const auto n = [&](const char* k) {
    return static_cast<std::int64_t>(number_at(m, std::string("/test/confusion_matrix/") + k));
  };
  c.counts = {{n("tp"), n("fn")}, {n("fp"), n("tn")}};
  c.keys = {{"/test/confusion_matrix/tp", "/test/confusion_matrix/fn"},
            {"/test/confusion_matrix/fp", "/test/confusion_matrix/tn"}};
  s.blocks.push_back(c);

  const std::string from = text_at(m, "/thresholds/split", kTestSplit);
  Table chosen;
  chosen.title = "The best-F1 threshold, applied to the test split";
  chosen.caption =
      fmt::format("Chosen on the {}: {}.", split_phrase(m, from), text_at(m, "/thresholds/note"));
  chosen.header = {"", "threshold", "precision", "recall", "F1", "accuracy"};
  const auto figures = [&](const std::string& base, Cell threshold) {
    return std::vector<Cell>{threshold, fix(m, base + "/precision"), fix(m, base + "/recall"),
                             fix(m, base + "/f1"), pct(m, base + "/accuracy")};
  };
  const auto labelled = [&](std::string label, std::vector<Cell> cells) {
    cells.insert(cells.begin(), text(std::move(label)));
    return cells;
  };
  chosen.rows.push_back(labelled(
      from + " (chosen)", figures("/thresholds/best_f1", fix(m, "/thresholds/best_f1/threshold"))));
  chosen.rows.push_back(labelled(
      "test, same threshold",
      figures("/test_at_best_f1_threshold", fix(m, "/test_at_best_f1_threshold/threshold"))));
  chosen.rows.push_back(labelled("test at 0.5", figures("/test", {"0.5", "", true})));
  chosen.row_tags = {"best", "", "muted"};
  s.blocks.push_back(chosen);
  return s;
}

Section threshold_section(const json& m, int target_digit) {
  const std::string from = text_at(m, "/thresholds/split", kTestSplit);
  Table t;
  t.title = fmt::format("On the {}", split_phrase(m, from));
  t.caption =
      fmt::format("{}. Green: the best F1; blue: the default 0.5.", text_at(m, "/thresholds/note"));
  if (!t.caption.empty()) t.caption[0] = static_cast<char>(std::toupper(t.caption[0]));
  t.header = {"threshold", "precision", "recall", "F1", "accuracy", "TP", "FP", "FN", "TN"};
  const auto row = [&](const std::string& base, int decimals) {
    return std::vector<Cell>{fix(m, base + "/threshold", decimals),
                             fix(m, base + "/precision"),
                             fix(m, base + "/recall"),
                             fix(m, base + "/f1"),
                             pct(m, base + "/accuracy"),
                             count(m, base + "/tp"),
                             count(m, base + "/fp"),
                             count(m, base + "/fn"),
                             count(m, base + "/tn")};
  };
  const double best = number_at(m, "/thresholds/best_f1/threshold");
  bool best_placed = false;
  const json::json_pointer rows_at("/thresholds/rows");
  const std::size_t rows = m.contains(rows_at) ? m.at(rows_at).size() : 0;
  for (std::size_t i = 0; i < rows; ++i) {
    const std::string base = fmt::format("/thresholds/rows/{}", i);
    const double th = number_at(m, base + "/threshold");
    if (!best_placed && std::isfinite(best) && best < th) {
      t.rows.push_back(row("/thresholds/best_f1", 4));
      t.row_tags.push_back("best");
      best_placed = true;
    }
    t.rows.push_back(row(base, 2));
    t.row_tags.push_back(th == 0.5 ? "highlight" : "");
  }
  if (!best_placed && std::isfinite(best)) {
    t.rows.push_back(row("/thresholds/best_f1", 4));
    t.row_tags.push_back("best");
  }
  return Section{"thresholds",
                 "Threshold table",
                 fmt::format("Precision, recall and F1 of calling {} at each threshold.",
                             a_digit(target_digit)),
                 1,
                 {t}};
}

// The errors of one kind (false positives or false negatives), the most confident first.
Gallery error_gallery(const SplitEvaluation& test, const data::Split& images, std::size_t limit,
                      bool false_positives, int target_digit) {
  std::vector<Misclassified> wrong = misclassified(test, test.logits.size());
  std::erase_if(wrong, [&](const Misclassified& w) { return w.false_positive != false_positives; });
  const std::size_t total = wrong.size();
  if (wrong.size() > limit) wrong.resize(limit);
  Gallery g;
  g.title = false_positives
                ? fmt::format("Called {}, but are not (false positives)", a_digit(target_digit))
                : fmt::format("{}s the model missed (false negatives)", target_digit);
  g.caption = fmt::format("{} of {}, the most confident mistakes first.",
                          with_commas(static_cast<std::int64_t>(wrong.size())),
                          with_commas(static_cast<std::int64_t>(total)));
  g.empty_note = "None.";
  const std::size_t side =
      static_cast<std::size_t>(images.rows) * static_cast<std::size_t>(images.cols);
  for (const Misclassified& w : wrong) {
    Tile t;
    t.side = images.rows;
    const auto begin = images.pixels.begin() + static_cast<std::ptrdiff_t>(w.index * side);
    t.pixels.assign(begin, begin + static_cast<std::ptrdiff_t>(side));
    t.caption = fmt::format("p {:.3f}", w.probability);
    t.detail = {fmt::format("label {}", w.label), "", false};
    t.badge = w.false_positive ? "FP" : "FN";
    t.badge_tag = w.false_positive ? "warn" : "bad";
    t.note = fmt::format("#{}", w.index);
    g.tiles.push_back(std::move(t));
  }
  return g;
}

Section gallery_section(const SplitEvaluation& test, const data::Split& images, std::size_t limit,
                        int target_digit) {
  Section s{"misclassified", "Misclassified test digits", "", 1, {}};
  s.intro = fmt::format(
      "Every mistake on the test split at threshold 0.5 is one of these two kinds ({} in all). p "
      "is the model's probability that the digit is {}; # is the image's index in the test "
      "split.",
      with_commas(test.metrics.fp + test.metrics.fn), a_digit(target_digit));
  s.blocks.push_back(error_gallery(test, images, limit / 2, false, target_digit));
  s.blocks.push_back(error_gallery(test, images, limit / 2, true, target_digit));
  return s;
}

Section run_section(const json& m) {
  Section s{"run", "Run", "", 2, {}};
  Table cfg;
  cfg.title = "Configuration";
  cfg.header = {"setting", "value"};
  const auto add = [&](const std::string& name, Cell v) {
    v.numeric = false;
    cfg.rows.push_back({text(name), v});
  };
  add("model", plain(m, "/model"));
  add("trainable parameters", count(m, "/trainable_parameters"));
  add("target digit", plain(m, "/config/target_digit"));
  add("optimizer", plain(m, "/config/optimizer"));
  add("learning rate", plain(m, "/config/lr"));
  add("batch size (train / test)",
      text(fmt::format("{} / {}", text_at(m, "/config/batch_size", "?"),
                       text_at(m, "/config/test_batch_size", "?"))));
  add("epochs", plain(m, "/config/epochs"));
  add("seed", plain(m, "/config/seed"));
  add("pos_weight", plain(m, "/config/pos_weight"));
  add("training images", count(m, "/config/train_images"));
  add("validation images", count(m, "/config/validation_images"));
  add("test images", count(m, "/config/test_images"));
  add("data", plain(m, "/config/data_dir"));
  add("checkpoint", plain(m, "/checkpoint", "none"));
  add("run id", plain(m, "/config/run_id"));
  s.blocks.push_back(cfg);

  Table tim;
  tim.title = "Timings";
  tim.caption = "Wall-clock seconds on " + text_at(m, "/device", "the device") + ".";
  tim.header = {"epoch", "seconds", "images/s", "mean loss", "test accuracy"};
  const std::size_t n = m.contains("epochs") && m["epochs"].is_array() ? m["epochs"].size() : 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string b = fmt::format("/epochs/{}", i);
    tim.rows.push_back({count(m, b + "/epoch"), fix(m, b + "/seconds", 2),
                        count(m, b + "/images_per_second"), fix(m, b + "/mean_loss"),
                        pct(m, b + "/test_accuracy")});
  }
  for (const auto& [label, key] :
       {std::pair<const char*, const char*>{"training", "/timings/train_seconds"},
        {"evaluation", "/timings/evaluation_seconds"},
        {"whole run", "/timings/total_seconds"}}) {
    if (std::isnan(number_at(m, key))) continue;
    tim.rows.push_back({text(label), fix(m, key, 2), text(""), text(""), text("")});
    tim.row_tags.resize(tim.rows.size() - 1);
    tim.row_tags.push_back("muted");
  }
  s.blocks.push_back(tim);
  return s;
}

}  // namespace

Page build_run_page(const RunReportInputs& in) {
  OCTA_CHECK(in.metrics && in.test && in.test_images,
             "build_run_page: metrics, test evaluation "
             "and test images are required");
  const json& m = *in.metrics;
  const int digit = static_cast<int>(std::lround(std::isnan(number_at(m, "/config/target_digit"))
                                                     ? 8.0
                                                     : number_at(m, "/config/target_digit")));
  Page p;
  p.title = fmt::format("Is it a{} {}?", digit == 8 ? "n" : "", digit);
  const std::string model = text_at(m, "/model", "?");
  p.subtitle = fmt::format(
      "Model {} · {} epochs · trained on {} images · {}", model, text_at(m, "/config/epochs", "?"),
      with_commas(std::llround(std::max(0.0, number_at(m, "/config/train_images")))),
      text_at(m, "/finished_at", "time not recorded"));
  p.badges = {
      plain(m, "/device", "device not recorded"),
      text(fmt::format(
          "model {} · {} parameters", model,
          with_commas(std::llround(std::max(0.0, number_at(m, "/trainable_parameters"))))))};
  p.kpis = headline(m);
  p.kpi_caption = "On the " + split_phrase(m, kTestSplit) +
                  ", at the default threshold 0.5 (the target digit when sigmoid(logit) > 0.5).";

  if (!in.warnings.empty()) {
    Section w{"warnings", "Notes", "", 1, {}};
    for (const std::string& text : in.warnings) w.blocks.push_back(Note{text, "warn"});
    p.sections.push_back(w);
  }
  p.sections.push_back(training_section(m));
  p.sections.push_back(ranking_section(m, *in.test, in.validation));
  p.sections.push_back(decisions_section(m, digit));
  p.sections.push_back(threshold_section(m, digit));
  p.sections.push_back(gallery_section(*in.test, *in.test_images, in.max_misclassified, digit));
  p.sections.push_back(run_section(m));
  p.footer = fmt::format(
      "Made by octa ({}). One self-contained file: no network, no script; every figure is read "
      "from the run's metrics JSON (data-key attributes give its place there).",
      in.made_by.empty() ? "report" : in.made_by);
  return p;
}

fs::path default_report_path(const fs::path& checkpoint) {
  fs::path p = checkpoint;
  if (p.extension() == ".safetensors") p.replace_extension();
  p += ".report.html";
  return p;
}

void write_report(const fs::path& path, const Page& page) {
  // The apps check the path with octa::check_output_path (engine/io/output_guard.hpp) before any
  // work; the page carries octa::kHtmlMarker, so a later run may replace it.
  write_file_atomically(path, render_html(page));
}

}  // namespace octa::report
