// tests/test_output_guard.cpp: recognising the files octa wrote (engine/io/output_guard.hpp) and
// refusing to replace any other, naming the flag and the file.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/core/atomic_file.hpp"
#include "engine/core/error.hpp"
#include "engine/io/checkpoint.hpp"
#include "engine/io/output_guard.hpp"
#include "engine/io/safetensors.hpp"
#include "engine/report/run_report.hpp"
#include "engine/train/exports.hpp"
#include "tests/support/synthetic.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using octa::OutputKind;
using octa::test::TempDir;

void write_text(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

}  // namespace

TEST_CASE("output guard: octa's own outputs are recognised, by content, per kind",
          "[io][overwrite]") {
  TempDir dir("guard");
  const auto table = octa::ParamTable::for_arch(octa::Arch::kB);
  octa::ModelState m;
  m.values.assign(table.num_total(), 0.5f);
  octa::save_weights(dir / "w.safetensors", table, m);
  octa::export_batch_order(dir / "order.safetensors", octa::test::synthetic_split(10, 1), 3, 0, 1);
  octa::export_step_losses(dir / "losses.json", {0.5, 0.25});
  nlohmann::json metrics = {{"test", {{"accuracy", 0.9}}}};
  octa::mark_octa_json(metrics, "metrics-1");
  octa::write_file_atomically(dir / "metrics.json", metrics.dump(2));
  write_text(dir / "report.html",
             fmt::format("<!doctype html><html><head>{}<title>r</title></head></html>",
                         octa::kHtmlMarker));
  CHECK(octa::written_by_octa(dir / "w.safetensors", OutputKind::kSafetensors));
  CHECK(octa::written_by_octa(dir / "order.safetensors", OutputKind::kSafetensors));
  CHECK(octa::written_by_octa(dir / "losses.json", OutputKind::kJson));
  CHECK(octa::written_by_octa(dir / "metrics.json", OutputKind::kJson));
  CHECK(octa::written_by_octa(dir / "report.html", OutputKind::kHtml));
  octa::report::Page page;
  page.title = "a run";
  octa::report::write_report(dir / "run.report.html", page);  // what train_gpu --report writes
  CHECK(octa::written_by_octa(dir / "run.report.html", OutputKind::kHtml));

  // Not octa's: a safetensors file from elsewhere (no octa.format), JSON without the marker or
  // with it nested or not a string, other bytes, an empty file, a missing one.
  const float w = 1.0f;
  octa::io::write_safetensors(dir / "torch.safetensors",
                              {{"fc.weight", octa::io::DType::kF32, {1}, &w}}, {{"format", "pt"}});
  write_text(dir / "plain.json", R"({"accuracy": 0.9})");
  write_text(dir / "nested.json", R"({"x": {"octa_format": "metrics-1"}})");
  write_text(dir / "number.json", R"({"octa_format": 1})");
  write_text(dir / "array.json", R"([{"octa_format": "metrics-1"}])");
  write_text(dir / "broken.json", R"({"octa_format": "metrics-1")");
  write_text(dir / "notes.txt", "octa.format octa_format");
  write_text(dir / "empty", "");
  write_text(dir / "page.html", "<html><head><title>mine</title></head></html>");
  for (const char* f : {"torch.safetensors", "notes.txt", "empty", "metrics.json"}) {
    INFO(f);
    CHECK_FALSE(octa::written_by_octa(dir / f, OutputKind::kSafetensors));
  }
  for (const char* f : {"plain.json", "nested.json", "number.json", "array.json", "broken.json",
                        "notes.txt", "empty", "w.safetensors"}) {
    INFO(f);
    CHECK_FALSE(octa::written_by_octa(dir / f, OutputKind::kJson));
  }
  CHECK_FALSE(octa::written_by_octa(dir / "page.html", OutputKind::kHtml));
  CHECK_FALSE(octa::written_by_octa(dir / "absent.json", OutputKind::kJson));
  CHECK_FALSE(octa::written_by_octa(dir.path(), OutputKind::kJson));
}

TEST_CASE(
    "output guard: check_output_path refuses foreign files unless overwrite, and "
    "non-regular files always",
    "[io][overwrite]") {
  TempDir dir("guard");
  write_text(dir / "notes.json", "mine");
  nlohmann::json ours;
  octa::mark_octa_json(ours, "metrics-1");
  write_text(dir / "ours.json", ours.dump());

  CHECK_NOTHROW(
      octa::check_output_path(dir / "new.json", OutputKind::kJson, "--metrics-out", false));
  CHECK_NOTHROW(
      octa::check_output_path(dir / "ours.json", OutputKind::kJson, "--metrics-out", false));
  CHECK_THROWS_WITH(
      octa::check_output_path(dir / "notes.json", OutputKind::kJson, "--metrics-out", false),
      Catch::Contains("--metrics-out") && Catch::Contains("notes.json") &&
          Catch::Contains("octa did not write it") && Catch::Contains("--overwrite"));
  CHECK_NOTHROW(
      octa::check_output_path(dir / "notes.json", OutputKind::kJson, "--metrics-out", true));
  // An octa file of another kind is not one this flag may replace (metrics over a checkpoint).
  CHECK_THROWS_WITH(
      octa::check_output_path(dir / "ours.json", OutputKind::kSafetensors, "--checkpoint", false),
      Catch::Contains("not an octa safetensors file"));
  for (const bool overwrite : {false, true}) {
    CHECK_THROWS_WITH(octa::check_output_path(dir.path(), OutputKind::kJson, "--report", overwrite),
                      Catch::Contains("--report") && Catch::Contains("a directory"));
    CHECK_THROWS_WITH(
        octa::check_output_path("/dev/null", OutputKind::kJson, "--metrics-out", overwrite),
        Catch::Contains("not a regular file"));
  }
}

TEST_CASE("safetensors: the metadata alone is read from the header, however large the file",
          "[io][safetensors]") {
  TempDir dir("meta");
  std::vector<float> big(1 << 20, 1.0f);
  octa::io::write_safetensors(dir / "big.safetensors",
                              {{"x", octa::io::DType::kF32, {1 << 20}, big.data()}},
                              {{"octa.format", "octa-1"}, {"k", "v"}});
  const auto meta = octa::io::read_safetensors_metadata(dir / "big.safetensors");
  CHECK(meta.size() == 2);
  CHECK(meta.at("k") == "v");
  write_text(dir / "short", "1234");
  CHECK_THROWS_WITH(octa::io::read_safetensors_metadata(dir / "short"),
                    Catch::Contains("short") && Catch::Contains("too short"));
  std::string lying(8, '\0');
  lying[0] = 100;  // a 100-byte header in a 12-byte file
  write_text(dir / "lying", lying + "{}  ");
  CHECK_THROWS_WITH(octa::io::read_safetensors_metadata(dir / "lying"),
                    Catch::Contains("larger than the file"));
}
