// engine/report/run_report.cpp: a binary training run's page: headline figures, training curves,
// ROC and precision-recall, the confusion matrix, the threshold table from the split it was chosen
// on, the misclassified test images, configuration and timings (the last two and the curves shared
// with the K-class page: run_sections.hpp). Numbers are read from the metrics JSON and keyed to it;
// curves and images come from the evaluations.
#include "engine/report/run_report.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "engine/core/atomic_file.hpp"
#include "engine/core/error.hpp"
#include "engine/report/html.hpp"
#include "engine/report/json_cells.hpp"
#include "engine/report/run_sections.hpp"

namespace octa::report {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kTestColor = "#2f6fed";
constexpr const char* kValidationColor = "#e8590c";
constexpr const char* kReferenceColor = "#98a2b3";

// What the page calls the positive class: MNIST's runs keep the tutorial's words ("the target
// digit", "8s"); any other dataset's class goes by its name ("Bag", "not-Bag", "Bag images").
struct Positive {
  std::string name;                      // "8", "Bag"
  std::string negative;                  // "not 8", "not-Bag"
  bool digit = true;                     // an MNIST digit
  std::vector<std::string> class_names;  // the dataset's (labels in the gallery); may be empty

  std::string label_name(int label) const {
    const auto k = static_cast<std::size_t>(label);
    return k < class_names.size() ? class_names[k] : std::to_string(label);
  }
};

Positive positive_class(const json& m) {
  Positive p;
  const double digit = number_at(m, "/config/target_digit");
  const int index = static_cast<int>(std::lround(std::isnan(digit) ? 8.0 : digit));
  const json::json_pointer names("/config/class_names");
  if (m.contains(names) && m.at(names).is_array()) {
    for (const json& n : m.at(names))
      p.class_names.push_back(n.is_string() ? n.get<std::string>() : n.dump());
  }
  p.digit = text_at(m, "/config/dataset", "mnist") == "mnist";
  p.name =
      p.digit ? std::to_string(index) : text_at(m, "/config/target_class", p.label_name(index));
  p.negative = p.digit ? "not " + p.name : "not-" + p.name;
  return p;
}

// ---------------------------------------------------------------------------------------------

std::vector<Kpi> headline(const json& m, const Positive& pos) {
  return {
      {"Accuracy", pct(m, "/test/accuracy"), "majority baseline ",
       pct(m, "/test/baseline_accuracy")},
      {"Precision",
       fix(m, "/test/precision"),
       pos.digit ? "of the images called the target digit" : "of the images called " + pos.name,
       {}},
      {"Recall",
       fix(m, "/test/recall"),
       pos.digit ? "of the target digits found" : "of the " + pos.name + " images found",
       {}},
      {"F1", fix(m, "/test/f1"), "harmonic mean of the two", {}},
      {"ROC-AUC", fix(m, "/test/roc_auc"), "ranking, any threshold", {}},
      {"Avg. precision", fix(m, "/test/average_precision"), "area under precision-recall", {}},
  };
}

Section ranking_section(const json& m, const SplitEvaluation& test, const SplitEvaluation* val,
                        const Positive& pos) {
  Section s{"ranking", "ROC and precision-recall", "", 2, {}};
  s.intro = fmt::format(
      "How well the scores rank {} above the rest, whatever the threshold. The test split is the "
      "headline; the validation split, where there is one, is drawn beside it.",
      pos.digit ? "the target digit" : pos.name + " images");
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

Section decisions_section(const json& m, const Positive& positive) {
  Section s{"decisions", "Decisions", "", 2, {}};
  const std::string &pos = positive.name, &neg = positive.negative;
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

Section threshold_section(const json& m, const Positive& pos) {
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
                             with_article(pos.name)),
                 1,
                 {t}};
}

// The errors of one kind (false positives or false negatives), the most confident first.
Gallery error_gallery(const SplitEvaluation& test, const data::Split& images, std::size_t limit,
                      bool false_positives, const Positive& pos) {
  std::vector<Misclassified> wrong = misclassified(test, test.logits.size());
  std::erase_if(wrong, [&](const Misclassified& w) { return w.false_positive != false_positives; });
  const std::size_t total = wrong.size();
  if (wrong.size() > limit) wrong.resize(limit);
  Gallery g;
  g.title = false_positives
                ? fmt::format("Called {}, but are not (false positives)", with_article(pos.name))
                : fmt::format("{}{} the model missed (false negatives)", pos.name,
                              pos.digit ? "s" : " images");
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
    t.detail = {fmt::format("label {}", pos.label_name(w.label)), "", false};
    t.badge = w.false_positive ? "FP" : "FN";
    t.badge_tag = w.false_positive ? "warn" : "bad";
    t.note = fmt::format("#{}", w.index);
    g.tiles.push_back(std::move(t));
  }
  return g;
}

Section gallery_section(const SplitEvaluation& test, const data::Split& images, std::size_t limit,
                        const Positive& pos) {
  Section s{"misclassified",
            pos.digit ? "Misclassified test digits" : "Misclassified test images",
            "",
            1,
            {}};
  s.intro = fmt::format(
      "Every mistake on the test split at threshold 0.5 is one of these two kinds ({} in all). p "
      "is the model's probability that the {} is {}; # is the image's index in the test "
      "split.",
      with_commas(test.metrics.fp + test.metrics.fn), pos.digit ? "digit" : "image",
      with_article(pos.name));
  s.blocks.push_back(error_gallery(test, images, limit / 2, false, pos));
  s.blocks.push_back(error_gallery(test, images, limit / 2, true, pos));
  return s;
}

}  // namespace

Page build_run_page(const RunReportInputs& in) {
  OCTA_CHECK(in.metrics && in.test && in.test_images,
             "build_run_page: metrics, test evaluation "
             "and test images are required");
  const json& m = *in.metrics;
  OCTA_CHECK(!is_multiclass_run(m),
             "build_run_page: a run of {} classes has its own page (build_class_page)",
             text_at(m, "/config/num_classes", "K"));
  const Positive pos = positive_class(m);
  Page p;
  p.title = fmt::format("Is it {}?", with_article(pos.name));
  const std::string model = text_at(m, "/model", "?");
  p.subtitle = fmt::format(
      "Model {} · {} epochs · trained on {} images · {}", model, text_at(m, "/config/epochs", "?"),
      with_commas(std::llround(std::max(0.0, number_at(m, "/config/train_images")))),
      text_at(m, "/finished_at", "time not recorded"));
  p.badges = page_badges(m);
  p.kpis = headline(m, pos);
  p.kpi_caption =
      fmt::format("On the {}, at the default threshold 0.5 ({} when sigmoid(logit) > 0.5).",
                  split_phrase(m, kTestSplit), pos.digit ? "the target digit" : pos.name);

  if (!in.warnings.empty()) {
    Section w{"warnings", "Notes", "", 1, {}};
    for (const std::string& text : in.warnings) w.blocks.push_back(Note{text, "warn"});
    p.sections.push_back(w);
  }
  p.sections.push_back(training_section(m));
  p.sections.push_back(ranking_section(m, *in.test, in.validation, pos));
  p.sections.push_back(decisions_section(m, pos));
  p.sections.push_back(threshold_section(m, pos));
  p.sections.push_back(gallery_section(*in.test, *in.test_images, in.max_misclassified, pos));
  p.sections.push_back(run_section(m));
  p.footer = page_footer(in.made_by);
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
