// tests/test_report.cpp: the report's arithmetic and its page, without a browser: ROC/PR curves and
// their areas against independent computations, thresholds in logit space, the best-F1 cut, the
// validation hold-out, the threshold choice never touching the test split, the JSON blocks naming
// their split, and a rendered page whose every keyed figure equals the metrics JSON; a binary run
// of a named class (Fashion-MNIST's Bag) worded by its name; the K-class page (K = 3 and 10): its
// per-class rows and KxK confusion matrix in place and equal to the metrics JSON, its most
// confident mistakes.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <regex>
#include <set>

#include "engine/core/philox.hpp"
#include "engine/data/datasets.hpp"
#include "engine/data/holdout.hpp"
#include "engine/report/class_report.hpp"
#include "engine/report/curves.hpp"
#include "engine/report/evaluation.hpp"
#include "engine/report/html.hpp"
#include "engine/report/run_report.hpp"
#include "engine/train/metrics.hpp"
#include "engine/train/multiclass_metrics.hpp"
#include "tests/support/report_numbers.hpp"
#include "tests/support/synthetic.hpp"

namespace r = octa::report;

namespace {

// Logits that separate the classes imperfectly, with ties (rounded to 1/4).
void scored(int n, std::uint64_t seed, std::vector<float>& logits, std::vector<float>& targets) {
  octa::PhiloxStream rng(seed, 5);
  logits.clear();
  targets.clear();
  for (int i = 0; i < n; ++i) {
    const bool pos = rng.next_below(10) < 3;
    const double z = (pos ? 1.5 : -1.5) + 4.0 * (rng.next_uniform01() - 0.5);
    logits.push_back(static_cast<float>(std::round(z * 4.0) / 4.0));
    targets.push_back(pos ? 1.0f : 0.0f);
  }
}

// Logits for a split's images: +-margin for 8s and the rest, plus uniform noise of the given width.
std::vector<float> logits_for(const octa::data::Split& s, std::uint64_t seed, double margin,
                              double noise) {
  octa::PhiloxStream rng(seed, 1);
  std::vector<float> l;
  for (const auto label : s.labels) {
    l.push_back(
        static_cast<float>((label == 8 ? margin : -margin) + noise * (rng.next_uniform01() - 0.5)));
  }
  return l;
}

// A binary run's test and validation splits and their evaluations (scores from logits_for).
struct BinaryCase {
  octa::data::Split test_split, val_split;
  r::SplitEvaluation test, val;
};
BinaryCase binary_case(std::uint64_t seed) {
  BinaryCase c;
  c.test_split = octa::test::synthetic_split(600, seed);
  c.val_split = octa::test::synthetic_split(200, seed + 1);
  c.val = r::evaluate_split(r::kValidationSplit, logits_for(c.val_split, seed + 2, 1.5, 4.0),
                            c.val_split, 8);
  c.test = r::evaluate_split(r::kTestSplit, logits_for(c.test_split, seed + 3, 1.5, 4.0),
                             c.test_split, 8);
  return c;
}

// A binary run's page as HTML.
std::string render_binary(const nlohmann::json& m, const r::SplitEvaluation& test,
                          const r::SplitEvaluation& val, const octa::data::Split& test_images) {
  r::RunReportInputs in;
  in.metrics = &m;
  in.test = &test;
  in.validation = &val;
  in.test_images = &test_images;
  in.made_by = "test";
  return r::render_html(r::build_run_page(in));
}

// The metrics JSON of a binary run as train_gpu writes it, less the evaluation blocks.
nlohmann::json binary_run_json() {
  return {{"device", "cpu (2 threads)"},
          {"model", "A"},
          {"trainable_parameters", 420481},
          {"config",
           {{"epochs", 2},
            {"batch_size", 64},
            {"test_batch_size", 1000},
            {"lr", 0.001},
            {"optimizer", "adam"},
            {"seed", 3},
            {"target_digit", 8},
            {"pos_weight", 1.0},
            {"train_images", 5000},
            {"test_images", 600},
            {"val_size", 200},
            {"validation_images", 200},
            {"data_dir", "/data"},
            {"run_id", "abc"}}},
          {"epochs",
           {{{"epoch", 1},
             {"mean_loss", 0.21},
             {"seconds", 3.5},
             {"images_per_second", 1428.6},
             {"test_accuracy", 0.95}},
            {{"epoch", 2},
             {"mean_loss", 0.09},
             {"seconds", 3.25},
             {"images_per_second", 1538.5},
             {"test_accuracy", 0.97}}}},
          {"timings", {{"train_seconds", 6.75}, {"total_seconds", 9.0}}},
          {"checkpoint", "runs/model_a.safetensors"}};
}

// The text a reader sees: every text node of the page outside <style>, tags removed.
std::vector<std::string> visible_text(const std::string& html) {
  const std::size_t body = html.find("<body>");
  const std::string page = html.substr(body == std::string::npos ? 0 : body);
  std::vector<std::string> out;
  const std::regex node(">([^<]+)<");
  for (auto it = std::sregex_iterator(page.begin(), page.end(), node); it != std::sregex_iterator();
       ++it) {
    out.push_back((*it)[1].str());
  }
  return out;
}

// A split of K classes (labels 0..K-1) and logits for it: the true class leads by a margin, except
// that about one image in five is taken for the next class, with noise that lets a few be taken
// for any other.
void k_class_case(int k, int n, std::uint64_t seed, octa::data::Split& split,
                  std::vector<float>& logits, std::vector<float>& targets) {
  split = octa::test::synthetic_split(n, seed);
  octa::PhiloxStream rng(seed, 9);
  logits.assign(static_cast<std::size_t>(n) * static_cast<std::size_t>(k), 0.0f);
  targets.clear();
  for (int i = 0; i < n; ++i) {
    const int y = static_cast<int>(rng.next_below(static_cast<std::uint32_t>(k)));
    split.labels[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(y);
    targets.push_back(static_cast<float>(y));
    const int lead = rng.next_below(5) == 0 ? (y + 1) % k : y;
    for (int c = 0; c < k; ++c) {
      logits[static_cast<std::size_t>(i * k + c)] =
          static_cast<float>((c == lead ? 2.0 : 0.0) + 3.0 * (rng.next_uniform01() - 0.5));
    }
  }
}

nlohmann::json class_run_json(int k, const std::vector<std::string>& names, const char* dataset) {
  nlohmann::json m = binary_run_json();
  m["config"].erase("target_digit");
  m["config"].erase("pos_weight");
  m["config"]["task"] = "multiclass";
  m["config"]["dataset"] = dataset;
  m["config"]["num_classes"] = k;
  m["config"]["class_names"] = names;
  m["config"]["label_smoothing"] = 0.05;
  m["config"]["class_weights"] = std::vector<double>(static_cast<std::size_t>(k), 1.0);
  m["trainable_parameters"] = 420481 + 129 * (k - 1);
  return m;
}

}  // namespace

TEST_CASE("ROC-AUC by trapezoids equals the rank AUC of metrics.cpp, ties included",
          "[cpu][report]") {
  std::vector<float> logits, targets;
  scored(2000, 1, logits, targets);
  const auto roc = r::roc_curve(logits, targets);
  const auto m = octa::compute_binary_metrics(logits, targets);
  CHECK(roc.auc == Approx(m.roc_auc).epsilon(1e-12));
  CHECK(roc.points.front().x == 0.0);
  CHECK(roc.points.front().y == 0.0);
  CHECK(roc.points.back().x == 1.0);
  CHECK(roc.points.back().y == 1.0);
  for (std::size_t i = 1; i < roc.points.size(); ++i) {
    CHECK(roc.points[i].x >= roc.points[i - 1].x);
    CHECK(roc.points[i].y >= roc.points[i - 1].y);
  }
  CHECK_THROWS_WITH(r::roc_curve(std::vector<float>{1, 2}, std::vector<float>{1, 1}),
                    Catch::Contains("both classes"));
}

TEST_CASE("Average precision is sklearn's step sum, on a case worked by hand", "[cpu][report]") {
  // Scores 4 > 3 > 2 > 1 with labels 1 0 1 0: after each, (recall, precision) = (.5, 1), (.5, .5),
  // (1, 2/3), (1, .5); AP = .5 * 1 + 0 + .5 * 2/3 + 0.
  const std::vector<float> logits{4, 3, 2, 1}, targets{1, 0, 1, 0};
  const auto pr = r::pr_curve(logits, targets);
  CHECK(pr.average_precision == Approx(0.5 + 0.5 * 2.0 / 3.0));
  CHECK(pr.prevalence == 0.5);
  REQUIRE(pr.points.size() == 4);
  CHECK(pr.points[2].x == 1.0);
  CHECK(pr.points[2].y == Approx(2.0 / 3.0));
  // A perfect ranking has AP 1; ties between a positive and a negative count as one step.
  CHECK(r::pr_curve(std::vector<float>{3, 2, 1}, std::vector<float>{1, 1, 0}).average_precision ==
        1.0);
  CHECK(r::pr_curve(std::vector<float>{1, 1}, std::vector<float>{1, 0}).average_precision == 0.5);
}

TEST_CASE("Thresholds are compared as logits: 0.5 is exactly logit > 0", "[cpu][report]") {
  const float tiny = std::numeric_limits<float>::denorm_min();
  const std::vector<float> logits{0.0f, tiny, -tiny, 3.0f, -3.0f, 1e-30f};
  const std::vector<float> targets{1, 1, 0, 1, 0, 0};
  const auto row = r::at_threshold(logits, targets, 0.5);
  const auto m = octa::compute_binary_metrics(logits, targets);
  CHECK(row.tp == m.tp);
  CHECK(row.fp == m.fp);
  CHECK(row.tn == m.tn);
  CHECK(row.fn == m.fn);
  CHECK(r::threshold_logit(0.5) == 0.0);
  CHECK(r::threshold_logit(0.9) == Approx(std::log(9.0)));
  CHECK_THROWS_WITH(r::threshold_logit(1.0), Catch::Contains("strictly between 0 and 1"));
  // Raising the threshold never calls more images positive.
  std::vector<float> l, t;
  scored(500, 2, l, t);
  const auto table = r::threshold_table(l, t, r::default_thresholds());
  REQUIRE(table.size() == 21);
  CHECK(table.front().threshold == 0.01);
  CHECK(table[10].threshold == 0.5);
  for (std::size_t i = 1; i < table.size(); ++i) {
    CHECK(table[i].tp + table[i].fp <= table[i - 1].tp + table[i - 1].fp);
    CHECK(table[i].tp + table[i].fn == table[i - 1].tp + table[i - 1].fn);
  }
}

TEST_CASE("The best-F1 threshold beats every other cut and reproduces its own row",
          "[cpu][report]") {
  std::vector<float> l, t;
  scored(1500, 3, l, t);
  const auto best = r::best_f1_threshold(l, t);
  const auto again = r::at_threshold(l, t, best.threshold);
  CHECK(again.tp == best.tp);
  CHECK(again.fp == best.fp);
  CHECK(again.f1 == best.f1);
  // No threshold on a fine grid does better.
  for (int k = 1; k < 1000; ++k) CHECK(r::at_threshold(l, t, k / 1000.0).f1 <= best.f1 + 1e-12);
  CHECK(best.threshold > 0.0);
  CHECK(best.threshold < 1.0);
}

TEST_CASE("thin_curve keeps the ends and drops only points closer than the step", "[cpu][report]") {
  std::vector<r::CurvePoint> pts;
  for (int i = 0; i <= 10000; ++i) pts.push_back({i / 10000.0, std::sqrt(i / 10000.0)});
  const auto thin = r::thin_curve(pts, 0.01);
  CHECK(thin.front().x == 0.0);
  CHECK(thin.back().x == 1.0);
  CHECK(thin.size() < 250);
  for (std::size_t i = 1; i + 1 < thin.size(); ++i) {
    CHECK(std::max(thin[i].x - thin[i - 1].x, thin[i].y - thin[i - 1].y) >= 0.01);
  }
}

TEST_CASE("The validation split is seeded, disjoint from training, and independent of --max-train",
          "[cpu][report][holdout]") {
  const auto split = octa::test::synthetic_split(500, 9);
  const auto a = octa::data::hold_out(split, 120, 7);
  const auto b = octa::data::hold_out(split, 120, 7);
  const auto c = octa::data::hold_out(split, 120, 8);
  CHECK(a.validation.count == 120);
  CHECK(a.train.count == 380);
  CHECK(a.validation_indices == b.validation_indices);  // a resumed run holds out the same ones
  CHECK(a.validation_indices != c.validation_indices);
  CHECK(std::is_sorted(a.validation_indices.begin(), a.validation_indices.end()));
  const std::set<std::uint32_t> held(a.validation_indices.begin(), a.validation_indices.end());
  CHECK(held.size() == 120);
  // The pixels moved with their labels: validation image k is input image validation_indices[k].
  for (std::size_t k = 0; k < 120; ++k) {
    const std::size_t i = a.validation_indices[k];
    CHECK(a.validation.labels[k] == split.labels[i]);
    CHECK(std::equal(a.validation.pixels.begin() + static_cast<long>(k * 784),
                     a.validation.pixels.begin() + static_cast<long>((k + 1) * 784),
                     split.pixels.begin() + static_cast<long>(i * 784)));
  }
  // Training keeps the others in their order.
  std::size_t t = 0;
  for (std::uint32_t i = 0; i < 500; ++i) {
    if (held.count(i)) continue;
    CHECK(a.train.labels[t] == split.labels[i]);
    ++t;
  }
  CHECK_THROWS_WITH(octa::data::hold_out(split, 500, 1), Catch::Contains("--val-size"));
  CHECK_THROWS_WITH(octa::data::hold_out(split, -1, 1), Catch::Contains("--val-size"));
  // run_splits: the validation split comes from the whole training split first.
  octa::data::Mnist mnist;
  mnist.train = split;
  mnist.test = octa::test::synthetic_split(50, 10);
  const auto s1 = octa::data::run_splits(mnist, 120, 7, 0, 0);
  const auto s2 = octa::data::run_splits(mnist, 120, 7, 100, 20);
  CHECK(s1.validation.pixels == s2.validation.pixels);
  CHECK(s2.train.count == 100);
  CHECK(s2.test.count == 20);
  CHECK(s1.train.count == 380);
}

TEST_CASE("Thresholds are chosen on the validation split, never on the test split",
          "[cpu][report]") {
  const auto test_split = octa::test::synthetic_split(400, 11);
  const auto val_split = octa::test::synthetic_split(300, 12);
  const auto val =
      r::evaluate_split(r::kValidationSplit, logits_for(val_split, 1, 2.0, 5.0), val_split, 8);
  const auto test =
      r::evaluate_split(r::kTestSplit, logits_for(test_split, 2, 2.0, 5.0), test_split, 8);
  const auto other_test =
      r::evaluate_split(r::kTestSplit, logits_for(test_split, 3, 2.0, 5.0), test_split, 8);
  const auto j = r::evaluation_json(test, &val);
  CHECK(j["test"]["split"] == "test");
  CHECK(j["validation"]["split"] == "validation");
  CHECK(j["thresholds"]["split"] == "validation");
  CHECK(j["test_at_best_f1_threshold"]["split"] == "test");
  CHECK(j["test_at_best_f1_threshold"]["threshold_from"] == "validation");
  CHECK(j["thresholds"]["best_f1"]["threshold"] ==
        r::best_f1_threshold(val.logits, val.targets).threshold);
  // Other test scores change nothing in the choice, only the test figures at that threshold.
  const auto k = r::evaluation_json(other_test, &val);
  CHECK(k["thresholds"] == j["thresholds"]);
  CHECK(k["test_at_best_f1_threshold"] != j["test_at_best_f1_threshold"]);
  CHECK(j["test"]["accuracy"] == test.metrics.accuracy);
  CHECK(j["test"]["average_precision"] == test.pr.average_precision);
  // Without a validation split the table is on the test split and says what that costs.
  const auto n = r::evaluation_json(test, nullptr);
  CHECK(n["thresholds"]["split"] == "test");
  CHECK_THAT(n["thresholds"]["note"].get<std::string>(), Catch::Contains("optimistic"));
  CHECK_FALSE(n.contains("validation"));
}

TEST_CASE("html_escape and base64 are right", "[cpu][report]") {
  CHECK(r::html_escape("<a href=\"x\">'&'</a>") ==
        "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  const auto b64 = [](std::string s) {
    return r::base64(std::vector<std::uint8_t>(s.begin(), s.end()));
  };
  CHECK(b64("Man") == "TWFu");
  CHECK(b64("Ma") == "TWE=");
  CHECK(b64("M") == "TQ==");
  CHECK(b64("") == "");
  CHECK(r::with_commas(0) == "0");
  CHECK(r::with_commas(974) == "974");
  CHECK(r::with_commas(10000) == "10,000");
  CHECK(r::with_commas(-1234567) == "-1,234,567");
}

TEST_CASE("A run's page is self-contained and every figure on it equals the metrics JSON",
          "[cpu][report]") {
  const auto test_split = octa::test::synthetic_split(600, 21);
  const auto val_split = octa::test::synthetic_split(200, 22);
  const auto val =
      r::evaluate_split(r::kValidationSplit, logits_for(val_split, 4, 1.5, 4.0), val_split, 8);
  const auto test =
      r::evaluate_split(r::kTestSplit, logits_for(test_split, 5, 1.5, 4.0), test_split, 8);
  nlohmann::json m = binary_run_json();
  m.update(r::evaluation_json(test, &val));
  const std::string html = render_binary(m, test, val, test_split);

  // Self-contained: no script, nothing fetched, a policy that forbids fetching.
  CHECK_THAT(html, Catch::Contains("Content-Security-Policy") &&
                       Catch::Contains("default-src 'none'; img-src data:"));
  CHECK_THAT(html, !Catch::Contains("<script") && !Catch::Contains("http://") &&
                       !Catch::Contains("https://") && !Catch::Contains("url(http"));
  CHECK_THAT(html, Catch::Contains("<svg") && Catch::Contains("data:image/png;base64,"));
  // Which split every section is on.
  CHECK_THAT(html, Catch::Contains("On the validation split") &&
                       Catch::Contains("MNIST test split (600 images)"));
  // Every keyed figure equals the JSON, and the essential ones are all there.
  const auto figures = octa::test::keyed_figures_in_html(html);
  const auto bad = octa::test::check_figures(m, figures);
  for (const auto& b : bad) INFO(b);
  CHECK(bad.empty());
  std::set<std::string> keys;
  for (const auto& f : figures) keys.insert(f.first);
  for (const std::string& k : octa::test::required_report_keys(true)) {
    INFO(k);
    CHECK(keys.count(k) == 1);
  }
  // One tile per error shown (each kind up to half the limit of 120).
  std::size_t images = 0;
  for (std::size_t at = html.find("data:image/png"); at != std::string::npos;
       at = html.find("data:image/png", at + 1)) {
    ++images;
  }
  CHECK(images == std::min<std::size_t>(60, static_cast<std::size_t>(test.metrics.fn)) +
                      std::min<std::size_t>(60, static_cast<std::size_t>(test.metrics.fp)));
  // The checker itself catches a wrong figure.
  nlohmann::json wrong = m;
  wrong["test"]["accuracy"] = m["test"]["accuracy"].get<double>() + 0.001;
  CHECK_FALSE(octa::test::check_figures(wrong, figures).empty());
}

TEST_CASE("A binary run of a named class is worded by its name: Bag and not-Bag, never 8 or digit",
          "[cpu][report]") {
  const BinaryCase bag = binary_case(31);
  const auto &test = bag.test, &val = bag.val;
  const auto& test_split = bag.test_split;
  // Fashion-MNIST's class 8 against the rest, as train_gpu --target-class Bag records it.
  nlohmann::json m = binary_run_json();
  m["config"]["dataset"] = "fashion-mnist";
  m["config"]["task"] = "binary";
  m["config"]["target_class"] = "Bag";
  std::vector<std::string> names(octa::data::kFashionMnistClasses.begin(),
                                 octa::data::kFashionMnistClasses.end());
  m["config"]["class_names"] = names;
  m.update(r::evaluation_json(test, &val));
  const std::string html = render_binary(m, test, val, test_split);

  CHECK_THAT(html, Catch::Contains("<title>Is it a Bag?</title>"));
  for (const char* want :
       {"predicted Bag", "actual not-Bag", "predicted not-Bag", "Called a Bag, but are not",
        "Bag images the model missed", "calling a Bag", "Fashion-MNIST test split (600 images)",
        "of the images called Bag", "of the Bag images found", "Misclassified test images",
        "the image is a Bag", "target class"}) {
    INFO(want);
    CHECK_THAT(html, Catch::Contains(want));
  }
  // Every piece of text with a letter in it: no "digit", no 8 standing for the class ("an 8",
  // "not 8", "label 8", "8s", ...; figures such as 0.8123, "8 of 8" or #8 are numbers).
  const std::regex eight(
      R"((\b(a|an|not|label|predicted|actual|called|calling|digit)[ -]8\b)|\b8s\b|"8"|&quot;8&quot;)");
  std::size_t words = 0;
  for (const std::string& t : visible_text(html)) {
    if (std::none_of(t.begin(), t.end(),
                     [](char c) { return std::isalpha(static_cast<unsigned char>(c)); })) {
      continue;
    }
    ++words;
    INFO("text: '" << t << "'");
    CHECK_THAT(t, !Catch::Contains("digit", Catch::CaseSensitive::No));
    CHECK_THAT(t, !Catch::Contains("MNIST test") || Catch::Contains("Fashion-MNIST test"));
    CHECK_FALSE(std::regex_search(t, eight));
  }
  CHECK(words > 100);
  // The tiles name the image's class, not its label's number.
  CHECK_THAT(html, Catch::Contains("label Trouser") || Catch::Contains("label Sandal"));
  // Every figure still equals the JSON.
  const auto figures = octa::test::keyed_figures_in_html(html);
  const auto bad = octa::test::check_figures(m, figures);
  for (const auto& b : bad) INFO(b);
  CHECK(bad.empty());

  // The MNIST run keeps the tutorial's words (the regex catches them).
  nlohmann::json digits = binary_run_json();
  digits.update(r::evaluation_json(test, &val));
  const std::string mnist = render_binary(digits, test, val, test_split);
  CHECK_THAT(mnist,
             Catch::Contains("<title>Is it an 8?</title>") && Catch::Contains("predicted not 8") &&
                 Catch::Contains("8s the model missed") && Catch::Contains("MNIST test split"));
  bool seen_eight = false;
  for (const std::string& t : visible_text(mnist))
    seen_eight = seen_eight || std::regex_search(t, eight);
  CHECK(seen_eight);
}

TEST_CASE("r::most_confident_errors: argmax, softmax probability, most confident first",
          "[cpu][report][multiclass]") {
  // Three images of three classes: right; taken for class 2 with p = e^2 / (1 + 1 + e^2); taken
  // for class 0 with a smaller lead, so it comes second.
  const std::vector<float> logits{3, 0, 0, 0, 0, 2, 1, 0, 0};
  const std::vector<std::uint8_t> labels{0, 1, 2};
  const auto e = r::most_confident_errors(logits, labels, 3, 10);
  REQUIRE(e.size() == 2);
  CHECK(e[0].index == 1);
  CHECK(e[0].actual == 1);
  CHECK(e[0].predicted == 2);
  CHECK(e[0].probability == Approx(std::exp(2.0) / (2.0 + std::exp(2.0))));
  CHECK(e[1].index == 2);
  CHECK(e[1].predicted == 0);
  CHECK(e[1].probability == Approx(std::exp(1.0) / (std::exp(1.0) + 2.0)));
  CHECK(r::most_confident_errors(logits, labels, 3, 1).size() == 1);
  CHECK_THROWS_WITH(r::most_confident_errors(logits, labels, 4, 1), Catch::Contains("9 logits"));
  CHECK_THROWS_WITH(r::most_confident_errors(logits, std::vector<std::uint8_t>{0, 1, 3}, 3, 1),
                    Catch::Contains("label 3"));
}

TEST_CASE(
    "The K-class page (K = 3 and 10): per-class rows and the KxK confusion matrix in place "
    "and equal to the metrics JSON, the most confident mistakes shown",
    "[cpu][report][multiclass]") {
  for (const int k : {3, 10}) {
    INFO("K = " << k);
    std::vector<std::string> names;
    if (k == 10) {
      names.assign(octa::data::kFashionMnistClasses.begin(),
                   octa::data::kFashionMnistClasses.end());
    } else {
      names = {"0", "1", "2"};
    }
    octa::data::Split test_split, val_split;
    std::vector<float> logits, targets, val_logits, val_targets;
    k_class_case(k, 700, 40 + static_cast<std::uint64_t>(k), test_split, logits, targets);
    k_class_case(k, 200, 50 + static_cast<std::uint64_t>(k), val_split, val_logits, val_targets);
    nlohmann::json m = class_run_json(k, names, k == 10 ? "fashion-mnist" : "idx");
    const octa::MulticlassMetrics metrics =
        octa::compute_multiclass_metrics(logits, targets, k, names);
    m["test"] = octa::to_json(metrics);
    m["validation"] =
        octa::to_json(octa::compute_multiclass_metrics(val_logits, val_targets, k, names));
    r::ClassReportInputs in;
    in.metrics = &m;
    in.test_logits = logits;
    in.test_images = &test_split;
    in.made_by = "test";
    const std::string html = r::render_html(r::build_class_page(in));

    // Self-contained, like the binary page.
    CHECK_THAT(html, Catch::Contains("default-src 'none'; img-src data:") &&
                         !Catch::Contains("<script") && !Catch::Contains("http://") &&
                         !Catch::Contains("https://"));
    CHECK_THAT(html, Catch::Contains(k == 10 ? "<title>Which class is it?</title>"
                                             : "<title>Which class is it?</title>"));
    CHECK_THAT(html, Catch::Contains("Top-2 accuracy") && Catch::Contains("Macro-F1") &&
                         Catch::Contains("Training loss") &&
                         Catch::Contains("Test accuracy per epoch"));
    // Every keyed figure equals the JSON, each one a reader needs is on the page, the matrix has
    // the names along both axes and count (a, p) in row a and column p, the table per class one
    // row per class in order.
    const auto bad =
        octa::test::check_class_page(m, html, octa::test::keyed_figures_in_html(html), true);
    for (const auto& b : bad) INFO(b);
    CHECK(bad.empty());
    // The checks can fail: a matrix with two cells swapped, a class's recall changed.
    nlohmann::json wrong = m;
    std::swap(wrong["test"]["confusion_matrix"]["counts"][0][1],
              wrong["test"]["confusion_matrix"]["counts"][1][0]);
    REQUIRE(wrong != m);
    CHECK_FALSE(octa::test::check_confusion_grid(html, wrong).empty());
    nlohmann::json recall = m;
    recall["test"]["classes"][k - 1]["recall"] = metrics.per_class.back().recall + 0.01;
    CHECK_FALSE(octa::test::check_class_rows(html, recall).empty());
    CHECK(octa::test::check_confusion_grid(html, recall).empty());

    // The gallery: the mistakes, most confident first, with true and predicted class names,
    // found here independently (argmax, then softmax in double).
    struct Wrong {
      double p;
      int index, actual, predicted;
    };
    std::vector<Wrong> wrongs;
    for (int i = 0; i < test_split.count; ++i) {
      const float* z = logits.data() + static_cast<std::size_t>(i * k);
      const int top = static_cast<int>(std::max_element(z, z + k) - z);
      const int y = test_split.labels[static_cast<std::size_t>(i)];
      if (top == y) continue;
      double sum = 0;
      for (int c = 0; c < k; ++c) sum += std::exp(static_cast<double>(z[c]) - z[top]);
      wrongs.push_back({1.0 / sum, i, y, top});
    }
    REQUIRE(wrongs.size() > 20);
    std::stable_sort(wrongs.begin(), wrongs.end(),
                     [](const Wrong& a, const Wrong& b) { return a.p > b.p; });
    const std::regex tile(
        R"(<div class="tile"><img [^>]*><span class="p">p ([0-9.]+)</span><span class="b bad">([^<]*)</span><br><span class="d">true ([^<]*)</span><br><span class="n">#([0-9]+)</span></div>)");
    std::vector<std::smatch> tiles;
    for (auto it = std::sregex_iterator(html.begin(), html.end(), tile);
         it != std::sregex_iterator(); ++it) {
      tiles.push_back(*it);
    }
    REQUIRE(tiles.size() == std::min<std::size_t>(120, wrongs.size()));
    CHECK_THAT(html, Catch::Contains(fmt::format("{} in all", wrongs.size())));
    for (std::size_t t = 0; t < tiles.size(); t += 7) {
      INFO("tile " << t);
      const Wrong& w = wrongs[t];
      CHECK(std::stoi(tiles[t][4].str()) == w.index);
      CHECK(tiles[t][2].str() == r::html_escape(names[static_cast<std::size_t>(w.predicted)]));
      CHECK(tiles[t][3].str() == r::html_escape(names[static_cast<std::size_t>(w.actual)]));
      CHECK(std::stod(tiles[t][1].str()) == Approx(w.p).margin(0.0005));
    }
  }
}
