// tests/support/forwarding_backend.hpp: a TrainingBackend that hands every call to a real one, for
// tests that change one behaviour of it (a NaN loss, no pinned batches). The staging hooks
// (make_host_batch, train_step_staged) are not forwarded: a wrapper stages in pageable memory
// through the base class's defaults, so a test can also use it to keep the pinned path out.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "engine/train/backend.hpp"

namespace octa::test {

class ForwardingBackend : public TrainingBackend {
 public:
  explicit ForwardingBackend(std::unique_ptr<TrainingBackend> inner) : inner_(std::move(inner)) {}
  std::string description() const override { return inner_->description(); }
  const ParamTable& table() const override { return inner_->table(); }
  void train_step(const float* x, const float* y, int n, std::int64_t step) override {
    inner_->train_step(x, y, n, step);
  }
  double take_loss_sum() override { return inner_->take_loss_sum(); }
  void predict(const float* x, int n, float* z) override { inner_->predict(x, n, z); }
  ModelState model_state() override { return inner_->model_state(); }
  OptimizerState optimizer_state() override { return inner_->optimizer_state(); }
  void load(const ModelState& m, const OptimizerState* o) override { inner_->load(m, o); }
  void set_learning_rate(double lr) override { inner_->set_learning_rate(lr); }

 private:
  std::unique_ptr<TrainingBackend> inner_;
};

}  // namespace octa::test
