// engine/optim/optimizer.cpp: PyTorch's Adam and SGD update rules on the CPU.
#include "engine/optim/optimizer.hpp"

#include <cmath>

#include "engine/core/error.hpp"

namespace octa {

OptimizerKind parse_optimizer(std::string_view name) {
  if (name == "adam") return OptimizerKind::kAdam;
  if (name == "sgd") return OptimizerKind::kSgd;
  throw Error(fmt::format("--optimizer: unknown optimizer '{}' (use 'adam' or 'sgd')", name));
}

const char* optimizer_name(OptimizerKind kind) {
  return kind == OptimizerKind::kAdam ? "adam" : "sgd";
}

void OptimizerConfig::validate() const {
  OCTA_CHECK(std::isfinite(lr) && lr > 0.0, "--lr: must be a positive number, got {}", lr);
  OCTA_CHECK(beta1 >= 0.0 && beta1 < 1.0, "--beta1: must be in [0, 1), got {}", beta1);
  OCTA_CHECK(beta2 >= 0.0 && beta2 < 1.0, "--beta2: must be in [0, 1), got {}", beta2);
  OCTA_CHECK(eps > 0.0, "--adam-eps: must be positive, got {}", eps);
  OCTA_CHECK(weight_decay >= 0.0, "--weight-decay: must be >= 0, got {}", weight_decay);
  OCTA_CHECK(momentum >= 0.0, "--momentum: must be >= 0, got {}", momentum);
  OCTA_CHECK(dampening >= 0.0 && dampening <= 1.0, "--dampening: must be in [0, 1], got {}",
             dampening);
  OCTA_CHECK(!nesterov || (momentum > 0.0 && dampening == 0.0),
             "--nesterov: needs --momentum > 0 and --dampening 0 (as in PyTorch)");
}

void adam_update(float* params, const float* grads, float* m, float* v, std::size_t n,
                 const OptimizerConfig& cfg, std::int64_t step) {
  const double t = static_cast<double>(step);
  const double bias_correction1 = 1.0 - std::pow(cfg.beta1, t);
  const double bias_correction2 = 1.0 - std::pow(cfg.beta2, t);
  const auto step_size = static_cast<float>(cfg.lr / bias_correction1);
  const auto bc2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  const auto one_minus_b1 = static_cast<float>(1.0 - cfg.beta1);
  const auto one_minus_b2 = static_cast<float>(1.0 - cfg.beta2);
  const auto beta2 = static_cast<float>(cfg.beta2), eps = static_cast<float>(cfg.eps);
  const auto wd = static_cast<float>(cfg.weight_decay);
  for (std::size_t i = 0; i < n; ++i) {
    float g = grads[i];
    if (wd != 0.0f) g += wd * params[i];
    m[i] += one_minus_b1 * (g - m[i]);  // torch.lerp for weight < 0.5
    v[i] = beta2 * v[i] + one_minus_b2 * g * g;
    const float denom = std::sqrt(v[i]) / bc2_sqrt + eps;
    params[i] -= step_size * (m[i] / denom);
  }
}

void sgd_update(float* params, const float* grads, float* momentum_buf, std::size_t n,
                const OptimizerConfig& cfg, std::int64_t step) {
  const auto wd = static_cast<float>(cfg.weight_decay), mu = static_cast<float>(cfg.momentum);
  const auto one_minus_damp = static_cast<float>(1.0 - cfg.dampening);
  const auto lr = static_cast<float>(cfg.lr);
  for (std::size_t i = 0; i < n; ++i) {
    float g = grads[i];
    if (wd != 0.0f) g += wd * params[i];
    if (mu != 0.0f) {
      momentum_buf[i] = step == 1 ? g : mu * momentum_buf[i] + one_minus_damp * g;
      g = cfg.nesterov ? g + mu * momentum_buf[i] : momentum_buf[i];
    }
    params[i] -= lr * g;
  }
}

Optimizer::Optimizer(const OptimizerConfig& cfg, std::size_t num_params)
    : cfg_(cfg), n_(num_params) {
  cfg_.validate();
  state_.m.assign(n_, 0.0f);
  state_.v.assign(cfg_.kind == OptimizerKind::kAdam ? n_ : 0, 0.0f);
}

void Optimizer::set_lr(double lr) {
  OCTA_CHECK(std::isfinite(lr) && lr > 0.0, "optimizer: learning rate {} must be positive", lr);
  cfg_.lr = lr;
}

void Optimizer::step(float* params, const float* grads) {
  ++state_.step;
  if (cfg_.kind == OptimizerKind::kAdam) {
    adam_update(params, grads, state_.m.data(), state_.v.data(), n_, cfg_, state_.step);
  } else {
    sgd_update(params, grads, state_.m.data(), n_, cfg_, state_.step);
  }
}

}  // namespace octa
