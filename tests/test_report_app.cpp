// tests/test_report_app.cpp: the HTML report as users get it: written by train_gpu beside the
// checkpoint with every split named (--val-size held out, the same on --resume), remade later by
// octa_report from the metrics JSON and checkpoint with the same figures, and opened in a real
// headless Chromium: no console errors, no request leaving the page, a screenshot that is not
// blank, and every figure shown equal to the metrics JSON. The same for the K-class report of
// --task multiclass: a synthetic three-class IDX dataset the test writes, and MNIST's ten digits.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/io/safetensors.hpp"
#include "engine/predict/image.hpp"
#include "tests/support/real_data.hpp"
#include "tests/support/report_numbers.hpp"
#include "tests/support/run_command.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/three_classes.hpp"

namespace fs = std::filesystem;
using octa::test::run_command;
using octa::test::shell_quoted;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

nlohmann::json read_json(const fs::path& p) {
  return nlohmann::json::parse(read_text(p));
}

// A short real run on the CPU path: its arguments, data and output paths filled in.
octa::test::CommandResult train(const fs::path& data, const octa::test::TempDir& dir,
                                const std::string& extra) {
  return run_command(
      OCTA_TRAIN_GPU_EXE,
      fmt::format("--device cpu --no-download --data-dir {} --max-test 1000 --seed 5 "
                  "--checkpoint {} --metrics-out {} {}",
                  shell_quoted(data), shell_quoted(dir / "m.safetensors"),
                  shell_quoted(dir / "metrics.json"), extra));
}

void check_page_figures(const nlohmann::json& metrics,
                        const std::vector<octa::test::ShownFigure>& figures, bool validation) {
  const auto bad = octa::test::check_figures(metrics, figures);
  for (const auto& b : bad) INFO(b);
  CHECK(bad.empty());
  std::set<std::string> keys;
  for (const auto& f : figures) keys.insert(f.first);
  for (const std::string& k : octa::test::required_report_keys(validation)) {
    INFO("required on the page: " << k);
    CHECK(keys.count(k) == 1);
  }
}

// Debian's chromium (installed by scripts/setup.sh), another Chromium on PATH, or $OCTA_CHROMIUM.
std::string find_chromium() {
  if (const char* env = std::getenv("OCTA_CHROMIUM"); env && *env) return env;
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  for (std::string d; std::getline(dirs, d, ':');) {
    for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
      std::error_code ec;
      if (fs::exists(fs::path(d) / name, ec)) return (fs::path(d) / name).string();
    }
  }
  return "";
}

// What headless Chromium saw of a page (tests/python/report_browser.py's result), its screenshot
// beside it as <tag>.png.
nlohmann::json open_in_browser(const std::string& chromium, const fs::path& html,
                               const fs::path& dir, const std::string& tag) {
  const std::string driver = std::string(OCTA_SOURCE_DIR) + "/tests/python/report_browser.py";
  const fs::path shot = dir / (tag + ".png"), result = dir / (tag + ".json");
  const auto b = run_command(
      OCTA_PYTHON, fmt::format("{} --chromium {} --html {} --screenshot {} "
                               "--result {}",
                               shell_quoted(driver), shell_quoted(chromium), shell_quoted(html),
                               shell_quoted(shot), shell_quoted(result)));
  INFO(b.output);
  REQUIRE(b.exit_code == 0);
  return read_json(result);
}

// The page loaded cleanly (no console message, no uncaught exception, no error logged: a CSP
// violation would be one), asked for nothing but itself and its data: images, and decoded them.
void check_loaded_cleanly(const nlohmann::json& seen, const fs::path& page) {
  CHECK(seen["console"].empty());
  CHECK(seen["exceptions"].empty());
  for (const auto& e : seen["log"]) CHECK(e["level"] != "error");
  const std::string self = "file://" + fs::absolute(page).string();
  for (const auto& url : seen["requests"]) {
    const std::string u = url.get<std::string>();
    INFO(u.substr(0, 80));
    CHECK((u == self || u.starts_with("data:")));
  }
  CHECK(seen["images_total"].get<int>() > 0);
  CHECK(seen["images_loaded"] == seen["images_total"]);
}

// A short --task multiclass run on the CPU path with its report: K = 3 on the synthetic shapes
// (written into dir), K = 10 on the real MNIST at `mnist`. Files: dir/k<K>.{safetensors,json,
// report.html}.
octa::test::CommandResult train_classes(const octa::test::TempDir& dir, int k,
                                        const fs::path& mnist = {}) {
  std::string data;
  if (k == 3) {
    fs::create_directories(dir / "shapes");
    octa::test::write_three_classes(dir / "shapes", 640, 200);
    data = fmt::format("--dataset idx --data-dir {}", shell_quoted(dir / "shapes"));
  } else {
    data = fmt::format("--data-dir {} --max-train 640 --max-test 500", shell_quoted(mnist));
  }
  return run_command(OCTA_TRAIN_GPU_EXE,
                     fmt::format("--device cpu --no-download {} --task multiclass --epochs 1 "
                                 "--val-size 100 --seed 5 --checkpoint {} --metrics-out {}",
                                 data, shell_quoted(dir / fmt::format("k{}.safetensors", k)),
                                 shell_quoted(dir / fmt::format("k{}.json", k))));
}

// The K-class page against its metrics JSON (report_numbers.hpp's check_class_page).
void check_class_page(const nlohmann::json& m, const std::string& html,
                      const std::vector<octa::test::ShownFigure>& figures) {
  const auto bad = octa::test::check_class_page(m, html, figures, true);
  for (const auto& b : bad) INFO(b);
  CHECK(bad.empty());
}

// train_gpu writes the K-class report beside the checkpoint; octa_report remakes it with the same
// figures.
void check_class_report_app(int k, const fs::path& mnist = {}) {
  octa::test::TempDir dir("classreport");
  const auto r = train_classes(dir, k, mnist);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const fs::path page = dir / fmt::format("k{}.report.html", k);
  REQUIRE(fs::exists(page));
  CHECK_THAT(r.output, Catch::Contains("report: " + page.string()));
  const auto m = read_json(dir / fmt::format("k{}.json", k));
  REQUIRE(m["test"]["num_classes"] == k);
  CHECK(m["report"] == page.string());
  CHECK(m["epochs"][0].contains("test_accuracy"));
  CHECK(m["validation"]["count"] == 100);
  const std::string html = read_text(page);
  CHECK_THAT(html, Catch::Contains(fmt::format("{} x {} confusion matrix", k, k)) &&
                       Catch::Contains(k == 10 ? "Which digit is it?" : "Which class is it?") &&
                       Catch::Contains("The most confident mistakes"));
  check_class_page(m, html, octa::test::keyed_figures_in_html(html));

  const auto again =
      run_command(OCTA_REPORT_EXE, fmt::format("{} -o {} --device cpu",
                                               shell_quoted(dir / fmt::format("k{}.json", k)),
                                               shell_quoted(dir / "again.html")));
  INFO(again.output);
  REQUIRE(again.exit_code == 0);
  CHECK_THAT(again.output, !Catch::Contains("Re-evaluated"));  // the same device: no drift
  const std::string remade = read_text(dir / "again.html");
  CHECK(octa::test::keyed_figures_in_html(remade) == octa::test::keyed_figures_in_html(html));
  check_class_page(m, remade, octa::test::keyed_figures_in_html(remade));
}

// The K-class report in headless Chromium.
void check_class_report_browser(int k, const fs::path& mnist = {}) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) {
    OCTA_SKIP(
        "no Chromium on PATH (scripts/setup.sh installs Debian's chromium; or set "
        "$OCTA_CHROMIUM)");
  }
  if (std::string(OCTA_PYTHON).empty()) {
    OCTA_SKIP("no Python 3 found at configure time (it drives Chromium)");
  }
  octa::test::TempDir dir("classbrowser");
  const auto r = train_classes(dir, k, mnist);
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  const fs::path page = dir / fmt::format("k{}.report.html", k);
  const auto seen = open_in_browser(chromium, page, dir.path(), "report");
  INFO(seen.dump(1).substr(0, 4000));
  check_loaded_cleanly(seen, page);
  CHECK(seen["title"] == (k == 10 ? "Which digit is it?" : "Which class is it?"));
  const auto shot = octa::predict::read_image(dir / "report.png");
  CHECK(shot.width == 1280);
  CHECK(shot.height > 2000);
  // What the browser shows (its DOM text) equals the metrics JSON, figure by figure.
  std::vector<octa::test::ShownFigure> figures;
  for (const auto& kv : seen["keys"]) figures.emplace_back(kv[0], kv[1]);
  check_class_page(read_json(dir / fmt::format("k{}.json", k)), "", figures);
}

}  // namespace

TEST_CASE(
    "train_gpu --task multiclass writes the K-class report and octa_report remakes it: "
    "three synthetic classes",
    "[cpu][app][report][multiclass]") {
  check_class_report_app(3);
}

TEST_CASE(
    "train_gpu --task multiclass writes the K-class report and octa_report remakes it: "
    "MNIST's ten digits",
    "[cpu][app][report][multiclass][real]") {
  const auto data = octa::test::real_mnist_dir();
  if (!data) OCTA_SKIP(octa::test::real_mnist_missing_reason());
  check_class_report_app(10, *data);
}

TEST_CASE("The K-class report in headless Chromium: three synthetic classes",
          "[cpu][app][report][multiclass][browser]") {
  check_class_report_browser(3);
}

TEST_CASE("The K-class report in headless Chromium: MNIST's ten digits",
          "[cpu][app][report][multiclass][real][browser]") {
  const auto data = octa::test::real_mnist_dir();
  if (!data) OCTA_SKIP(octa::test::real_mnist_missing_reason());
  check_class_report_browser(10, *data);
}

TEST_CASE("train_gpu --val-size writes a report and metrics JSON that name every split",
          "[cpu][app][report][real]") {
  const auto data = octa::test::real_mnist_dir();
  if (!data) OCTA_SKIP(octa::test::real_mnist_missing_reason());
  octa::test::TempDir dir("report");
  const auto first = train(*data, dir, "--max-train 1280 --epochs 1 --val-size 500");
  INFO(first.output);
  REQUIRE(first.exit_code == 0);
  CHECK_THAT(first.output, Catch::Contains("best-F1 threshold on the validation split"));
  const fs::path page = dir / "m.report.html";  // beside the checkpoint, by default
  REQUIRE(fs::exists(page));
  const auto m = read_json(dir / "metrics.json");
  CHECK(m["config"]["val_size"] == 500);
  CHECK(m["config"]["validation_images"] == 500);
  CHECK(m["config"]["train_images"] == 1280);
  CHECK(m["test"]["split"] == "test");
  CHECK(m["test"]["count"] == 1000);
  CHECK(m["validation"]["split"] == "validation");
  CHECK(m["validation"]["count"] == 500);
  CHECK(m["thresholds"]["split"] == "validation");
  CHECK(m["thresholds"]["rows"].size() == 21);
  CHECK(m["test_at_best_f1_threshold"]["split"] == "test");
  CHECK(m["epochs"][0].contains("test_accuracy"));  // the report's curve needs it
  CHECK(m["report"] == page.string());
  const std::string html = read_text(page);
  CHECK_THAT(html, Catch::Contains("On the validation split") &&
                       Catch::Contains("test split played no part"));
  check_page_figures(m, octa::test::keyed_figures_in_html(html), true);
  // The checkpoint records what a resumed run and predict need.
  const auto ck = octa::io::read_safetensors(dir / "m.safetensors");
  CHECK(ck.metadata.at("octa.val_size") == "500");
  CHECK(ck.metadata.at("octa.target_digit") == "8");

  // octa_report remakes the page from the metrics JSON and checkpoint, with the same figures.
  {
    const auto again = run_command(
        OCTA_REPORT_EXE, fmt::format("{} -o {} --device cpu", shell_quoted(dir / "metrics.json"),
                                     shell_quoted(dir / "again.html")));
    INFO(again.output);
    REQUIRE(again.exit_code == 0);
    CHECK_THAT(again.output, !Catch::Contains("Re-evaluated"));  // the same device: no drift
    const auto before = octa::test::keyed_figures_in_html(html);
    const auto after = octa::test::keyed_figures_in_html(read_text(dir / "again.html"));
    CHECK(before == after);
    check_page_figures(m, after, true);
  }
  // A resumed run holds out the same validation images, and refuses other ones.
  {
    const auto other = train(*data, dir,
                             fmt::format("--max-train 1280 --epochs 2 --val-size 100 --resume {}",
                                         shell_quoted(dir / "m.safetensors")));
    INFO(other.output);
    CHECK(other.exit_code == 1);
    CHECK_THAT(other.output, Catch::Contains("--val-size 100") && Catch::Contains("held out 500"));
    const auto resumed = train(*data, dir,
                               fmt::format("--max-train 1280 --epochs 2 --resume {}",
                                           shell_quoted(dir / "m.safetensors")));
    INFO(resumed.output);
    REQUIRE(resumed.exit_code == 0);
    CHECK_THAT(resumed.output, Catch::Contains("holding out the checkpoint's 500 validation"));
    const auto r = read_json(dir / "metrics.json");
    CHECK(r["config"]["val_size"] == 500);
    CHECK(r["validation"]["count"] == 500);
    CHECK(r["epochs"][0]["epoch"] == 2);
  }
}

TEST_CASE("Without --val-size the thresholds are on the test split, and the page says so",
          "[cpu][app][report][real]") {
  const auto data = octa::test::real_mnist_dir();
  if (!data) OCTA_SKIP(octa::test::real_mnist_missing_reason());
  octa::test::TempDir dir("report");
  const auto r = train(*data, dir, "--max-train 640 --epochs 1 --no-report");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK_FALSE(fs::exists(dir / "m.report.html"));
  const auto m = read_json(dir / "metrics.json");
  CHECK_FALSE(m.contains("validation"));
  CHECK(m["thresholds"]["split"] == "test");
  CHECK_THAT(r.output, Catch::Contains("best-F1 threshold on the test split"));
  const auto made = run_command(OCTA_REPORT_EXE,
                                fmt::format("{} --device cpu", shell_quoted(dir / "metrics.json")));
  INFO(made.output);
  REQUIRE(made.exit_code == 0);
  const std::string html = read_text(dir / "m.report.html");
  CHECK_THAT(html, Catch::Contains("On the MNIST test split") && Catch::Contains("optimistic"));
  CHECK_THAT(html, Catch::Contains("Not recorded: train with --eval-every-epoch"));
  check_page_figures(m, octa::test::keyed_figures_in_html(html), false);

  // octa_report's own errors name what is missing.
  const auto missing = run_command(OCTA_REPORT_EXE, shell_quoted(dir / "none.json"));
  CHECK(missing.exit_code == 1);
  CHECK_THAT(missing.output, Catch::Contains("none.json"));
  nlohmann::json no_ck = m;
  no_ck.erase("checkpoint");
  std::ofstream(dir / "no_ck.json") << no_ck.dump();
  const auto nock = run_command(OCTA_REPORT_EXE, shell_quoted(dir / "no_ck.json"));
  CHECK(nock.exit_code == 1);
  CHECK_THAT(nock.output, Catch::Contains("no_ck.json") && Catch::Contains("--checkpoint"));
}

TEST_CASE(
    "The report in headless Chromium: no console errors, nothing fetched, not blank, same "
    "figures as the metrics JSON",
    "[cpu][app][report][real][browser]") {
  const auto data = octa::test::real_mnist_dir();
  if (!data) OCTA_SKIP(octa::test::real_mnist_missing_reason());
  const std::string chromium = find_chromium();
  if (chromium.empty()) {
    OCTA_SKIP(
        "no Chromium on PATH (scripts/setup.sh installs Debian's chromium; or set "
        "$OCTA_CHROMIUM)");
  }
  const std::string python = OCTA_PYTHON;
  if (python.empty()) OCTA_SKIP("no Python 3 found at configure time (it drives Chromium)");
  octa::test::TempDir dir("browser");
  const auto r = train(*data, dir, "--max-train 640 --epochs 2 --val-size 300");
  INFO(r.output);
  REQUIRE(r.exit_code == 0);

  const fs::path page = dir / "m.report.html";
  const auto seen = open_in_browser(chromium, page, dir.path(), "report");
  INFO(seen.dump(1).substr(0, 4000));
  check_loaded_cleanly(seen, page);
  CHECK(seen["title"] == "Is it an 8?");
  // The screenshot is a page, not a blank: many colours, light background, real contrast.
  const auto shot = octa::predict::read_image(dir / "report.png");
  CHECK(shot.width == 1280);
  CHECK(shot.height > 2000);
  std::set<std::uint32_t> colours;
  double lum_sum = 0, lum_sq = 0;
  const std::size_t n = static_cast<std::size_t>(shot.width) * shot.height;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* p = shot.pixels.data() + i * static_cast<std::size_t>(shot.channels);
    const std::uint32_t c = shot.channels >= 3 ? (p[0] << 16 | p[1] << 8 | p[2]) : p[0];
    if (colours.size() < 100000) colours.insert(c);
    const double l = shot.channels >= 3 ? (p[0] + p[1] + p[2]) / 3.0 : p[0];
    lum_sum += l;
    lum_sq += l * l;
  }
  const double mean = lum_sum / static_cast<double>(n);
  const double sd = std::sqrt(lum_sq / static_cast<double>(n) - mean * mean);
  WARN("screenshot " << shot.width << "x" << shot.height << ": " << colours.size()
                     << " colours, mean luminance " << mean << ", sd " << sd);
  CHECK(colours.size() > 200);
  CHECK(mean > 200);  // a light page
  CHECK(sd > 10);
  // What the browser shows (its DOM text) equals the metrics JSON, figure by figure.
  std::vector<octa::test::ShownFigure> figures;
  for (const auto& kv : seen["keys"]) figures.emplace_back(kv[0], kv[1]);
  check_page_figures(read_json(dir / "metrics.json"), figures, true);

  // The checks can fail: a page that reaches out is caught, with its CSP and without one.
  std::ofstream(dir / "leaky_csp.html")
      << "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" "
         "content=\"default-src 'none'; img-src data:\"><title>t</title></head><body>"
         "<img src=\"http://127.0.0.1:9/x.png\"></body></html>";
  const auto csp = open_in_browser(chromium, dir / "leaky_csp.html", dir.path(), "leaky_csp");
  bool reported = false;
  for (const auto& e : csp["log"]) reported = reported || e["level"] == "error";
  for (const auto& e : csp["console"]) reported = reported || e["type"] == "error";
  CHECK(reported);
  std::ofstream(dir / "leaky.html") << "<!DOCTYPE html><html><head><title>t</title></head><body>"
                                       "<img src=\"http://127.0.0.1:9/x.png\"></body></html>";
  const auto leaky = open_in_browser(chromium, dir / "leaky.html", dir.path(), "leaky");
  bool requested = false;
  for (const auto& url : leaky["requests"]) {
    requested = requested || url.get<std::string>().starts_with("http://127.0.0.1:9/");
  }
  CHECK(requested);
}
