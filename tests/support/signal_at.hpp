// tests/support/signal_at.hpp: a TrainingBackend wrapper that requests an interrupt, as the signal
// handler would, while running a given global step: a run stopped mid-epoch, in one process.
#pragma once

#include <signal.h>

#include <cstdint>
#include <memory>
#include <utility>

#include "engine/train/interrupt.hpp"
#include "tests/support/forwarding_backend.hpp"

namespace octa::test {

class SignalAt final : public ForwardingBackend {
 public:
  SignalAt(std::unique_ptr<TrainingBackend> inner, std::int64_t at, int sig = SIGINT)
      : ForwardingBackend(std::move(inner)), at_(at), sig_(sig) {}
  void train_step(const float* x, const float* y, int n, std::int64_t step) override {
    ForwardingBackend::train_step(x, y, n, step);
    if (step == at_) request_interrupt(sig_);
  }

 private:
  std::int64_t at_;
  int sig_;
};

}  // namespace octa::test
