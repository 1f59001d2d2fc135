// tests/support/log_capture.hpp: the default logger's messages sent to a ring buffer while a test
// looks at them.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

namespace octa::test {

// Sends the default logger's output (at `level` at least) to `sink` alone while it lives.
class LogCapture {
 public:
  explicit LogCapture(spdlog::sink_ptr sink, spdlog::level::level_enum level = spdlog::level::warn)
      : logger_(spdlog::default_logger()), level_(logger_->level()), saved_(logger_->sinks()) {
    logger_->sinks() = {std::move(sink)};
    if (level_ > level) logger_->set_level(level);
  }
  ~LogCapture() {
    logger_->sinks() = saved_;
    logger_->set_level(level_);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

 private:
  std::shared_ptr<spdlog::logger> logger_;
  spdlog::level::level_enum level_;
  std::vector<spdlog::sink_ptr> saved_;
};

// The messages logged at `level` or above while f() ran, formatted ("[warning] ...").
template <class F>
std::vector<std::string> logged_during(F&& f, spdlog::level::level_enum level) {
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64);
  sink->set_level(level);
  {
    LogCapture capture(sink, level);
    std::forward<F>(f)();
  }
  return sink->last_formatted();
}

}  // namespace octa::test
