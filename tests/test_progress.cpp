// tests/test_progress.cpp: the progress line's duration format and its plain-log mode.
#include <catch2/catch.hpp>

#include <cmath>

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "engine/train/progress.hpp"

TEST_CASE("Durations print as M:SS or H:MM:SS, unknown as ?", "[cpu][progress]") {
  CHECK(octa::format_duration(0) == "0:00");
  CHECK(octa::format_duration(59.4) == "0:59");
  CHECK(octa::format_duration(61) == "1:01");
  CHECK(octa::format_duration(3600 + 2 * 60 + 3) == "1:02:03");
  CHECK(octa::format_duration(NAN) == "?");
  CHECK(octa::format_duration(-1) == "?");
}

TEST_CASE("Off a terminal, progress goes to the log with rate and ETA, not redrawn",
          "[cpu][progress]") {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(16);
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>("progress-test", sink));
  spdlog::set_level(spdlog::level::info);
  {
    octa::Progress p("epoch 1/2", 1000, /*interactive=*/false);
    p.update(10, 0.5);  // too soon after the start: nothing (one line per 10 s at most)
    CHECK(p.finish() >= 0.0);
  }
  const auto before = sink->last_formatted();
  {
    octa::Progress p("epoch 2/2", 1000, /*interactive=*/false, /*log_interval_s=*/0.0);
    p.update(250, 0.125);
    p.finish();
  }
  spdlog::set_default_logger(previous);
  CHECK(before.empty());
  const auto lines = sink->last_formatted();
  REQUIRE(lines.size() == 1);
  CHECK_THAT(lines[0], Catch::Contains("epoch 2/2") && Catch::Contains("25%") &&
                           Catch::Contains("250/1000 img") && Catch::Contains("img/s") &&
                           Catch::Contains("ETA") && Catch::Contains("loss 0.1250"));
}
