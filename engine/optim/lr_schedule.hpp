// engine/optim/lr_schedule.hpp: learning-rate schedules as torch.optim.lr_scheduler has them
// (StepLR, CosineAnnealingLR), stepped once per epoch: the lr of epoch e (0-based) is the lr a
// PyTorch loop trains epoch e with after e calls of scheduler.step(), one after each epoch.
//
// PyTorch's step() updates the lr recursively (get_lr: from the previous epoch's lr), not by its
// closed form (_get_closed_form_lr, used only when an epoch is passed to step()); the two agree up
// to rounding. octa matches the recursive form bit for bit: scheduled_lr replays it from epoch 0,
// so the lr of an epoch is still a function of the epoch index and the flags alone (a resumed run
// continues the schedule exactly).
#pragma once

#include <string>
#include <string_view>

namespace octa {

enum class LrScheduleKind { kConstant, kStep, kCosine };

LrScheduleKind parse_lr_schedule(std::string_view name);  // constant|step|cosine; names the flag
const char* lr_schedule_name(LrScheduleKind kind);

struct LrSchedule {
  LrScheduleKind kind = LrScheduleKind::kConstant;
  int step_size = 0;     // StepLR: epochs between decays (--lr-step-size)
  double gamma = 0.1;    // StepLR: the decay factor (--lr-gamma)
  int t_max = 0;         // CosineAnnealingLR: epochs of the half cosine (--epochs of the run)
  double eta_min = 0.0;  // CosineAnnealingLR: the lr it anneals to (--lr-min)
  // Errors name the flag at fault; base_lr is --lr (eta_min must lie below it).
  void validate(double base_lr) const;
  bool operator==(const LrSchedule&) const = default;

  static LrSchedule step_lr(int step_size, double gamma);  // StepLR
  static LrSchedule cosine(int t_max, double eta_min);     // CosineAnnealingLR
};

// The lr of epoch `epoch` (0-based) for a run whose initial lr is base_lr: PyTorch's
// group["lr"] after `epoch` scheduler.step() calls, in double as Python computes it.
double scheduled_lr(const LrSchedule& schedule, double base_lr, int epoch);

// e.g. "constant", "step (step_size 2, gamma 0.1)", "cosine (T_max 5, eta_min 0)".
std::string describe(const LrSchedule& schedule);

}  // namespace octa
