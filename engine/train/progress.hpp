// engine/train/progress.hpp: progress of long work, with rate and ETA. On a terminal it redraws one
// line in place; otherwise (logs, CI) it writes a plain log line every few seconds.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace octa {

// Formats seconds as H:MM:SS or M:SS.
std::string format_duration(double seconds);

class Progress {
 public:
  // label: e.g. "epoch 2/5"; total: images to process. Off a terminal, a log line is written at
  // most every log_interval_s seconds.
  Progress(std::string label, std::int64_t total, bool interactive, double log_interval_s = 10.0);
  // done: items processed so far; loss: running mean loss (NaN to omit).
  void update(std::int64_t done, double loss);
  // Ends the line (terminal) and returns the elapsed seconds.
  double finish();

 private:
  using Clock = std::chrono::steady_clock;
  std::string line(std::int64_t done, double loss) const;
  std::string label_;
  std::int64_t total_;
  bool interactive_;
  double log_interval_s_;
  Clock::time_point start_, last_draw_;
};

// True when stderr is a terminal (progress redraws in place there).
bool stderr_is_terminal();

}  // namespace octa
