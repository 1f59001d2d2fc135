// engine/optim/lr_schedule.cpp: StepLR and CosineAnnealingLR, replayed epoch by epoch as
// torch.optim.lr_scheduler's get_lr computes them (the recursive form; see the header).
#include "engine/optim/lr_schedule.hpp"

#include <cmath>
#include <numbers>

#include <fmt/format.h>

#include "engine/core/error.hpp"

namespace octa {

LrScheduleKind parse_lr_schedule(std::string_view name) {
  if (name == "constant") return LrScheduleKind::kConstant;
  if (name == "step") return LrScheduleKind::kStep;
  if (name == "cosine") return LrScheduleKind::kCosine;
  throw Error(fmt::format(
      "--lr-schedule: unknown schedule '{}' (use 'constant', 'step' or 'cosine')", name));
}

const char* lr_schedule_name(LrScheduleKind kind) {
  switch (kind) {
    case LrScheduleKind::kStep:
      return "step";
    case LrScheduleKind::kCosine:
      return "cosine";
    case LrScheduleKind::kConstant:
      break;
  }
  return "constant";
}

LrSchedule LrSchedule::step_lr(int step_size, double gamma) {
  LrSchedule s;
  s.kind = LrScheduleKind::kStep;
  s.step_size = step_size;
  s.gamma = gamma;
  return s;
}

LrSchedule LrSchedule::cosine(int t_max, double eta_min) {
  LrSchedule s;
  s.kind = LrScheduleKind::kCosine;
  s.t_max = t_max;
  s.eta_min = eta_min;
  return s;
}

void LrSchedule::validate(double base_lr) const {
  if (kind == LrScheduleKind::kStep) {
    OCTA_CHECK(step_size > 0,
               "--lr-step-size: --lr-schedule step needs a positive step size, got {}", step_size);
    OCTA_CHECK(std::isfinite(gamma) && gamma > 0.0, "--lr-gamma: must be a positive number, got {}",
               gamma);
  } else if (kind == LrScheduleKind::kCosine) {
    OCTA_CHECK(t_max > 0, "--epochs: the cosine schedule anneals over T_max = --epochs, got {}",
               t_max);
    OCTA_CHECK(std::isfinite(eta_min) && eta_min >= 0.0 && eta_min < base_lr,
               "--lr-min: must be in [0, --lr) = [0, {}), got {}", base_lr, eta_min);
  }
}

double scheduled_lr(const LrSchedule& s, double base_lr, int epoch) {
  OCTA_CHECK(epoch >= 0, "scheduled_lr: epoch {} is negative", epoch);
  double lr = base_lr;  // epoch 0: the optimiser's own lr
  if (s.kind == LrScheduleKind::kStep) {
    OCTA_CHECK(s.step_size > 0, "scheduled_lr: step size {} must be positive", s.step_size);
    // StepLR.get_lr: the previous lr times gamma at every non-zero multiple of step_size.
    for (int k = 1; k <= epoch; ++k) {
      if (k % s.step_size == 0) lr = lr * s.gamma;
    }
  } else if (s.kind == LrScheduleKind::kCosine) {
    OCTA_CHECK(s.t_max > 0, "scheduled_lr: T_max {} must be positive", s.t_max);
    // CosineAnnealingLR.get_lr, operation for operation in Python's order (double, libm's cos).
    const double pi = std::numbers::pi;
    const auto t_max = static_cast<double>(s.t_max);
    for (int k = 1; k <= epoch; ++k) {
      if ((k - 1 - s.t_max) % (2 * s.t_max) == 0) {
        lr = lr + (base_lr - s.eta_min) * (1.0 - std::cos(pi / t_max)) / 2.0;
      } else {
        lr = (1.0 + std::cos(pi * static_cast<double>(k) / t_max)) /
                 (1.0 + std::cos(pi * static_cast<double>(k - 1) / t_max)) * (lr - s.eta_min) +
             s.eta_min;
      }
    }
  }
  return lr;
}

std::string describe(const LrSchedule& s) {
  switch (s.kind) {
    case LrScheduleKind::kStep:
      return fmt::format("step (step_size {}, gamma {})", s.step_size, s.gamma);
    case LrScheduleKind::kCosine:
      return fmt::format("cosine (T_max {}, eta_min {})", s.t_max, s.eta_min);
    case LrScheduleKind::kConstant:
      break;
  }
  return "constant";
}

}  // namespace octa
