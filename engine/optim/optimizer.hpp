// engine/optim/optimizer.hpp: Adam and SGD with PyTorch's update rules, over the flat buffer of
// trainable parameters laid out by the ParamTable (one call updates the whole model).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace octa {

enum class OptimizerKind { kAdam, kSgd };

OptimizerKind parse_optimizer(std::string_view name);  // "adam" | "sgd"; error names --optimizer
const char* optimizer_name(OptimizerKind kind);

// Hyperparameters are doubles, as Python's floats are in PyTorch: derived constants such as
// 1 - beta1 are computed in double and only then rounded to float, exactly as torch.optim does.
struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kAdam;
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam
  double weight_decay = 0.0;                      // L2 added to the gradient (Adam, not AdamW)
  double momentum = 0.0, dampening = 0.0;         // SGD
  bool nesterov = false;                          // SGD
  void validate() const;                          // errors name the flag at fault
};

// Optimiser state, same layout as the trainable prefix of the parameter buffer.
//   Adam: m = exp_avg, v = exp_avg_sq.   SGD with momentum: m = momentum_buffer (v unused).
struct OptimizerState {
  std::int64_t step = 0;  // number of updates taken
  std::vector<float> m, v;
};

// One Adam update (PyTorch's torch.optim.Adam, bias-corrected, in float32 as PyTorch does for
// float32 parameters; the bias corrections are computed in double, as Python does):
//   g = grad + weight_decay * p
//   m = lerp(m, g, 1 - beta1)             v = beta2 * v + (1 - beta2) * g * g
//   p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// `step` is t, the 1-based index of this update.
void adam_update(float* params, const float* grads, float* m, float* v, std::size_t n,
                 const OptimizerConfig& cfg, std::int64_t step);

// One SGD update (torch.optim.SGD): g = grad + weight_decay * p; with momentum, the buffer is g at
// the first update and momentum * buf + (1 - dampening) * g after; nesterov uses g + momentum *
// buf.
void sgd_update(float* params, const float* grads, float* momentum_buf, std::size_t n,
                const OptimizerConfig& cfg, std::int64_t step);

class Optimizer {
 public:
  Optimizer(const OptimizerConfig& cfg, std::size_t num_params);
  void step(float* params, const float* grads);  // applies one update, increments state().step
  void set_lr(double lr);                        // from the next step on (a schedule's)
  const OptimizerConfig& config() const { return cfg_; }
  OptimizerState& state() { return state_; }
  const OptimizerState& state() const { return state_; }

 private:
  OptimizerConfig cfg_;
  std::size_t n_;
  OptimizerState state_;
};

}  // namespace octa
