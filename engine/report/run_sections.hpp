// engine/report/run_sections.hpp: what the binary run's page (run_report.hpp) and the K-class
// run's page (class_report.hpp) share: how the run names its data, the training curves (mean loss
// and test accuracy per epoch), the configuration and timings, and the footer. Each reads the
// metrics JSON and keys its figures to it.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/report/page.hpp"

namespace octa::report {

// True for a run of --task multiclass (config.task; older files have none: binary).
bool is_multiclass_run(const nlohmann::json& m);

// The dataset's title ("MNIST", "Fashion-MNIST"; config.dataset, MNIST for older files), or ""
// for --dataset idx, whose files have no title.
std::string dataset_title(const nlohmann::json& m);

// "MNIST test split (10,000 images)", "validation split (held out of training, 500 images)".
std::string split_phrase(const nlohmann::json& m, const std::string& split);

// "an 8", "a Bag", "an Ankle boot".
std::string with_article(const std::string& name);

// The mean training loss and the test accuracy after each epoch, side by side.
Section training_section(const nlohmann::json& m);

// The configuration (the task's own settings included) and the timings of each epoch.
Section run_section(const nlohmann::json& m);

// The chips beside the heading: the device, the model and its trainable parameters.
std::vector<Cell> page_badges(const nlohmann::json& m);

// The page's footer, naming what made it.
std::string page_footer(const std::string& made_by);

}  // namespace octa::report
