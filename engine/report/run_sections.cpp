// engine/report/run_sections.cpp: the sections and phrases both run pages share.
#include "engine/report/run_sections.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "engine/data/datasets.hpp"
#include "engine/report/evaluation.hpp"
#include "engine/report/html.hpp"
#include "engine/report/json_cells.hpp"

namespace octa::report {
using nlohmann::json;

namespace {

constexpr const char* kTestColor = "#2f6fed";
constexpr const char* kLossColor = "#0f9d8a";
constexpr const char* kReferenceColor = "#98a2b3";

}  // namespace

bool is_multiclass_run(const json& m) {
  return text_at(m, "/config/task", "binary") == "multiclass";
}

std::string dataset_title(const json& m) {
  const std::string id = text_at(m, "/config/dataset", "mnist");
  for (const data::DatasetSpec* d : data::kDatasets) {
    if (d->id == id) return d == &data::kIdxDataset ? std::string() : std::string(d->title);
  }
  return id;
}

std::string split_phrase(const json& m, const std::string& split) {
  const double n = number_at(m, "/" + split + "/count");
  const std::string images =
      std::isnan(n) ? "" : fmt::format(", {} images", with_commas(std::llround(n)));
  if (split == kValidationSplit) return "validation split (held out of training" + images + ")";
  const std::string title = dataset_title(m);
  return (title.empty() ? "" : title + " ") + "test split" +
         (images.empty() ? "" : " (" + images.substr(2) + ")");
}

std::string with_article(const std::string& name) {
  // Numbers by their sound (8, 11, 18, 80..89: "an"), words by their first letter.
  const bool number = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) != 0;
  });
  const char first =
      name.empty() ? 'x' : static_cast<char>(std::tolower(static_cast<unsigned char>(name[0])));
  const bool an = number ? first == '8' || name == "11" || name == "18"
                         : std::string_view("aeiou").find(first) != std::string_view::npos;
  return fmt::format("{} {}", an ? "an" : "a", name);
}

Section training_section(const json& m) {
  const bool classes = is_multiclass_run(m);
  Section s{"training", "Training", "", 2, {}};
  s.intro = fmt::format(
      "Mean {} loss over every training image of each epoch (not the last batch's), and accuracy "
      "on the test split after each epoch (monitoring only: nothing is chosen with it).",
      classes ? "softmax cross-entropy" : "BCE-with-logits");
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
            classes ? "prediction by argmax" : "at threshold 0.5",
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

Section run_section(const json& m) {
  const bool classes = is_multiclass_run(m);
  const std::string dataset = text_at(m, "/config/dataset", "mnist");
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
  if (!classes && dataset == "mnist") {
    add("target digit", plain(m, "/config/target_digit"));
  } else {
    const std::string title = dataset_title(m);
    add("dataset", text(title.empty() ? "IDX files" : title));
    if (classes) {
      add("classes", count(m, "/config/num_classes"));
    } else {
      add("target class", plain(m, "/config/target_class"));
    }
  }
  add("optimizer", plain(m, "/config/optimizer"));
  add("learning rate", plain(m, "/config/lr"));
  add("batch size (train / test)",
      text(fmt::format("{} / {}", text_at(m, "/config/batch_size", "?"),
                       text_at(m, "/config/test_batch_size", "?"))));
  add("epochs", plain(m, "/config/epochs"));
  add("seed", plain(m, "/config/seed"));
  if (classes) {
    add("label smoothing", fix(m, "/config/label_smoothing", 2));
    const json::json_pointer w("/config/class_weights");
    std::string weights;
    if (m.contains(w) && m.at(w).is_array()) {
      for (const json& v : m.at(w)) {
        weights += fmt::format("{}{:g}", weights.empty() ? "" : ", ",
                               v.is_number() ? v.get<double>() : std::nan(""));
      }
    }
    add("class weights", text(weights.empty() ? "none" : weights));
  } else {
    add("pos_weight", plain(m, "/config/pos_weight"));
  }
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

std::vector<Cell> page_badges(const json& m) {
  return {plain(m, "/device", "device not recorded"),
          text(fmt::format(
              "model {} · {} parameters", text_at(m, "/model", "?"),
              with_commas(std::llround(std::max(0.0, number_at(m, "/trainable_parameters"))))))};
}

std::string page_footer(const std::string& made_by) {
  return fmt::format(
      "Made by octa ({}). One self-contained file: no network, no script; every figure is read "
      "from the run's metrics JSON (data-key attributes give its place there).",
      made_by.empty() ? "report" : made_by);
}

}  // namespace octa::report
