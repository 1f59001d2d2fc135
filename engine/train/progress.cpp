// engine/train/progress.cpp: a progress line with images/s and ETA.
#include "engine/train/progress.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace octa {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<long long>(std::llround(seconds));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

bool stderr_is_terminal() {
  return ::isatty(STDERR_FILENO) == 1;
}

Progress::Progress(std::string label, std::int64_t total, bool interactive, double log_interval_s)
    : label_(std::move(label)),
      total_(total),
      interactive_(interactive),
      log_interval_s_(log_interval_s),
      start_(Clock::now()),
      last_draw_(start_) {}

std::string Progress::line(std::int64_t done, double loss) const {
  const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : NAN;
  const double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(frac * kWidth);
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.resize(kWidth, '.');
  std::string s = fmt::format("{} [{}] {:3.0f}% {}/{} img, {:.0f} img/s, ETA {}", label_, bar,
                              100.0 * frac, done, total_, rate, format_duration(eta));
  if (std::isfinite(loss)) s += fmt::format(", loss {:.4f}", loss);
  return s;
}

void Progress::update(std::int64_t done, double loss) {
  const auto now = Clock::now();
  const double since = std::chrono::duration<double>(now - last_draw_).count();
  if (interactive_) {
    if (since < 0.1 && done < total_) return;
    std::fprintf(stderr, "\r%s\033[K", line(done, loss).c_str());
    std::fflush(stderr);
  } else {
    if (since < log_interval_s_) return;
    spdlog::info("{}", line(done, loss));
  }
  last_draw_ = now;
}

double Progress::finish() {
  if (interactive_) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }
  return std::chrono::duration<double>(Clock::now() - start_).count();
}

}  // namespace octa
