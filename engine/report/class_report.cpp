// engine/report/class_report.cpp: the K-class run's page, from the metrics JSON and the test
// logits.
#include "engine/report/class_report.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "engine/core/error.hpp"
#include "engine/report/evaluation.hpp"
#include "engine/report/html.hpp"
#include "engine/report/json_cells.hpp"
#include "engine/report/run_sections.hpp"

namespace octa::report {
using nlohmann::json;

std::vector<ClassError> most_confident_errors(std::span<const float> logits,
                                              std::span<const std::uint8_t> labels, int num_classes,
                                              std::size_t limit) {
  OCTA_CHECK(num_classes >= 2, "most_confident_errors: {} classes", num_classes);
  const auto K = static_cast<std::size_t>(num_classes);
  OCTA_CHECK(logits.size() == labels.size() * K,
             "most_confident_errors: {} logits for {} images of {} classes", logits.size(),
             labels.size(), num_classes);
  std::vector<ClassError> out;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    OCTA_CHECK(labels[i] < K, "most_confident_errors: image {} has label {}, not a class 0..{}", i,
               labels[i], num_classes - 1);
    const float* row = logits.data() + i * K;
    std::size_t top = 0;
    for (std::size_t k = 1; k < K; ++k) {
      if (row[k] > row[top]) top = k;
    }
    if (top == labels[i]) continue;
    // softmax(row)[top] = 1 / sum_k exp(row[k] - row[top]), every term <= 1.
    double sum = 0;
    for (std::size_t k = 0; k < K; ++k) {
      sum += std::exp(static_cast<double>(row[k]) - static_cast<double>(row[top]));
    }
    out.push_back({i, labels[i], static_cast<int>(top), 1.0 / sum});
  }
  std::stable_sort(out.begin(), out.end(), [](const ClassError& a, const ClassError& b) {
    return a.probability > b.probability;
  });
  if (out.size() > limit) out.resize(limit);
  return out;
}

namespace {

struct Classes {
  int k = 0;
  std::vector<std::string> names;

  const std::string& name(int c) const { return names[static_cast<std::size_t>(c)]; }
};

// K and the class names, from the test block (what the figures are of), else the config.
Classes classes_of(const json& m) {
  Classes c;
  const double k = number_at(m, "/test/num_classes");
  OCTA_CHECK(std::isfinite(k) && k >= 2,
             "the metrics JSON has no K-class test block (test.num_classes): not a --task "
             "multiclass run");
  c.k = static_cast<int>(std::lround(k));
  for (int i = 0; i < c.k; ++i) {
    c.names.push_back(text_at(m, fmt::format("/test/classes/{}/name", i), std::to_string(i)));
  }
  return c;
}

std::string class_key(int c, const char* field) {
  return fmt::format("/test/classes/{}/{}", c, field);
}

std::string count_key(int actual, int predicted) {
  return fmt::format("/test/confusion_matrix/counts/{}/{}", actual, predicted);
}

std::int64_t count_at(const json& m, int actual, int predicted) {
  const double v = number_at(m, count_key(actual, predicted));
  return std::isfinite(v) ? std::llround(v) : 0;
}

std::vector<Kpi> headline(const json& m) {
  return {
      {"Accuracy", pct(m, "/test/accuracy"), "majority baseline ",
       pct(m, "/test/baseline_accuracy")},
      {"Top-2 accuracy", pct(m, "/test/top2_accuracy"), "the true class among the two highest", {}},
      {"Macro-F1", fix(m, "/test/macro_f1"), "mean of the classes' F1", {}},
      {"Macro precision", fix(m, "/test/macro_precision"), "mean over the classes", {}},
      {"Macro recall", fix(m, "/test/macro_recall"), "mean over the classes", {}},
      {"Cross-entropy", fix(m, "/test/mean_loss"), "mean on the test split", {}},
  };
}

Section classes_section(const json& m, const Classes& c) {
  Section s{"classes", "Per class", "", 1, {}};
  s.intro =
      "Precision: of the images predicted as the class, the share that are; recall: of the "
      "class's images, the share found; F1: their harmonic mean. The macro averages weigh every "
      "class alike.";
  Table t;
  t.title = "Precision, recall and F1 of each class";
  t.caption =
      fmt::format("On the {}. Blue: the class of the lowest F1.", split_phrase(m, kTestSplit));
  t.header = {"#", "class", "support", "predicted", "precision", "recall", "F1"};
  int weakest = 0;
  for (int k = 0; k < c.k; ++k) {
    if (number_at(m, class_key(k, "f1")) < number_at(m, class_key(weakest, "f1"))) weakest = k;
    Cell name = plain(m, class_key(k, "name"), c.name(k));
    t.rows.push_back({count(m, class_key(k, "index")), name, count(m, class_key(k, "support")),
                      count(m, class_key(k, "predicted")), fix(m, class_key(k, "precision")),
                      fix(m, class_key(k, "recall")), fix(m, class_key(k, "f1"))});
  }
  t.row_tags.assign(static_cast<std::size_t>(c.k), "");
  t.row_tags[static_cast<std::size_t>(weakest)] = "highlight";
  const Cell blank{"", "", true};  // keeps its column numeric (right-aligned)
  t.rows.push_back({blank, text("macro average"), count(m, "/test/count"), blank,
                    fix(m, "/test/macro_precision"), fix(m, "/test/macro_recall"),
                    fix(m, "/test/macro_f1")});
  t.row_tags.push_back("muted");
  s.blocks.push_back(t);

  if (m.contains("validation")) {
    Table v;
    v.title = "Test and validation splits";
    v.caption =
        "The validation split is held out of training (--val-size); nothing is chosen on the test "
        "split.";
    v.header = {"split", "images", "accuracy", "top-2", "macro-F1", "cross-entropy"};
    for (const char* split : {kTestSplit, kValidationSplit}) {
      const std::string b = std::string("/") + split;
      v.rows.push_back({text(split), count(m, b + "/count"), pct(m, b + "/accuracy"),
                        pct(m, b + "/top2_accuracy"), fix(m, b + "/macro_f1"),
                        fix(m, b + "/mean_loss")});
    }
    s.blocks.push_back(v);
  }
  return s;
}

Section confusion_section(const json& m, const Classes& c) {
  Section s{"confusion", "Confusion matrix", "", 1, {}};
  s.intro =
      "Rows are the true class, columns the prediction (argmax); each cell is shaded by its share "
      "of the row: blue on the diagonal (right), red off it (wrong), darker for a larger share.";
  Confusion cm;
  cm.title = fmt::format("{} x {} confusion matrix", c.k, c.k);
  cm.caption = split_phrase(m, kTestSplit) + ", prediction by argmax";
  cm.labels = c.names;
  for (int a = 0; a < c.k; ++a) {
    cm.label_keys.push_back(class_key(a, "name"));
    cm.counts.emplace_back();
    cm.keys.emplace_back();
    for (int p = 0; p < c.k; ++p) {
      cm.counts.back().push_back(count_at(m, a, p));
      cm.keys.back().push_back(count_key(a, p));
    }
  }
  s.blocks.push_back(cm);

  // The off-diagonal cells by count: which classes are taken for which.
  struct Pair {
    int actual, predicted;
    std::int64_t n;
  };
  std::vector<Pair> pairs;
  for (int a = 0; a < c.k; ++a) {
    for (int p = 0; p < c.k; ++p) {
      if (a != p && count_at(m, a, p) > 0) pairs.push_back({a, p, count_at(m, a, p)});
    }
  }
  std::stable_sort(pairs.begin(), pairs.end(),
                   [](const Pair& x, const Pair& y) { return x.n > y.n; });
  Table t;
  t.title = "Most often confused";
  t.caption = fmt::format(
      "The {} largest off-diagonal cells: true class, the class it was taken "
      "for, and that share of the true class's images.",
      std::min<std::size_t>(pairs.size(), 10));
  t.header = {"true class", "predicted as", "images", "share of the class"};
  for (std::size_t i = 0; i < pairs.size() && i < 10; ++i) {
    const Pair& q = pairs[i];
    const double support = number_at(m, class_key(q.actual, "support"));
    t.rows.push_back(
        {plain(m, class_key(q.actual, "name"), c.name(q.actual)),
         plain(m, class_key(q.predicted, "name"), c.name(q.predicted)),
         count(m, count_key(q.actual, q.predicted)),
         {support > 0 ? fmt::format("{:.1f}%", 100.0 * static_cast<double>(q.n) / support) : "n/a",
          "", true}});
  }
  if (pairs.empty())
    t.rows.push_back(
        {text("none: every test image is on the diagonal"), text(""), text(""), text("")});
  s.blocks.push_back(t);
  return s;
}

Section gallery_section(const ClassReportInputs& in, const Classes& c) {
  const data::Split& images = *in.test_images;
  const std::vector<ClassError> all =
      most_confident_errors(in.test_logits, images.labels, c.k, images.labels.size());
  Section s{"misclassified", "Misclassified test images", "", 1, {}};
  s.intro = fmt::format(
      "The test images whose highest-scoring class is not theirs ({} in all), the most "
      "confident mistakes first. p is the model's softmax probability of the class it "
      "predicted (the red badge); below it the true class; # is the image's index in the test "
      "split.",
      with_commas(static_cast<std::int64_t>(all.size())));
  Gallery g;
  const std::size_t shown = std::min(all.size(), in.max_misclassified);
  g.title = "The most confident mistakes";
  g.caption = fmt::format("{} of {}: predicted class (badge), true class below.",
                          with_commas(static_cast<std::int64_t>(shown)),
                          with_commas(static_cast<std::int64_t>(all.size())));
  g.empty_note = "None: every test image is classified right.";
  const std::size_t side =
      static_cast<std::size_t>(images.rows) * static_cast<std::size_t>(images.cols);
  for (std::size_t i = 0; i < shown; ++i) {
    const ClassError& e = all[i];
    Tile t;
    t.side = images.rows;
    const auto begin = images.pixels.begin() + static_cast<std::ptrdiff_t>(e.index * side);
    t.pixels.assign(begin, begin + static_cast<std::ptrdiff_t>(side));
    t.caption = fmt::format("p {:.3f}", e.probability);
    t.badge = c.name(e.predicted);
    t.badge_tag = "bad";
    t.detail = {"true " + c.name(e.actual), "", false};
    t.note = fmt::format("#{}", e.index);
    g.tiles.push_back(std::move(t));
  }
  s.blocks.push_back(std::move(g));
  return s;
}

}  // namespace

Page build_class_page(const ClassReportInputs& in) {
  OCTA_CHECK(in.metrics && in.test_images,
             "build_class_page: metrics and test images are required");
  const json& m = *in.metrics;
  const Classes c = classes_of(m);
  OCTA_CHECK(in.test_logits.size() ==
                 static_cast<std::size_t>(in.test_images->count) * static_cast<std::size_t>(c.k),
             "build_class_page: {} test logits for {} images of {} classes", in.test_logits.size(),
             in.test_images->count, c.k);
  const std::string dataset = dataset_title(m);
  const std::string model = text_at(m, "/model", "?");
  Page p;
  p.title = dataset == "MNIST" ? "Which digit is it?" : "Which class is it?";
  p.subtitle =
      fmt::format("{} classes of {} · model {} · {} epochs · trained on {} images · {}", c.k,
                  dataset.empty() ? "IDX files" : dataset, model, text_at(m, "/config/epochs", "?"),
                  with_commas(std::llround(std::max(0.0, number_at(m, "/config/train_images")))),
                  text_at(m, "/finished_at", "time not recorded"));
  p.badges = page_badges(m);
  p.kpis = headline(m);
  const double majority = number_at(m, "/test/majority_class");
  p.kpi_caption = fmt::format(
      "On the {}, the prediction being the class of the highest logit (argmax over {}); the "
      "majority baseline always answers \"{}\".",
      split_phrase(m, kTestSplit), c.k,
      std::isfinite(majority) && majority >= 0 && majority < c.k
          ? c.name(static_cast<int>(majority))
          : "?");
  if (!in.warnings.empty()) {
    Section w{"warnings", "Notes", "", 1, {}};
    for (const std::string& t : in.warnings) w.blocks.push_back(Note{t, "warn"});
    p.sections.push_back(w);
  }
  p.sections.push_back(training_section(m));
  p.sections.push_back(classes_section(m, c));
  p.sections.push_back(confusion_section(m, c));
  p.sections.push_back(gallery_section(in, c));
  p.sections.push_back(run_section(m));
  p.footer = page_footer(in.made_by);
  return p;
}

}  // namespace octa::report
