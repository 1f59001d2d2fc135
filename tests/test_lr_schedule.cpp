// tests/test_lr_schedule.cpp: the learning-rate schedules (engine/optim/lr_schedule.hpp) against
// the lrs PyTorch's schedulers give, bit for bit, and against the closed forms computed here.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/optim/lr_schedule.hpp"

namespace {

using octa::LrSchedule;
using octa::LrScheduleKind;

LrSchedule step(int step_size, double gamma) {
  return LrSchedule::step_lr(step_size, gamma);
}
LrSchedule cosine(int t_max, double eta_min) {
  return LrSchedule::cosine(t_max, eta_min);
}

// The lrs of epochs 0, 1, ... as octa computes them.
std::vector<double> lrs(const LrSchedule& s, double base_lr, int epochs) {
  std::vector<double> out;
  for (int e = 0; e < epochs; ++e) out.push_back(octa::scheduled_lr(s, base_lr, e));
  return out;
}

// The closed forms (torch's _get_closed_form_lr), written independently of the engine.
double closed_step(double base, int step_size, double gamma, int e) {
  return base * std::pow(gamma, e / step_size);
}
double closed_cosine(double base, int t_max, double eta_min, int e) {
  return eta_min + (base - eta_min) * (1 + std::cos(M_PI * e / t_max)) / 2;
}

// Recursive form and closed form agree up to rounding: a few ulps of the larger.
void check_near_closed(const std::vector<double>& got, const std::vector<double>& closed) {
  REQUIRE(got.size() == closed.size());
  for (std::size_t e = 0; e < got.size(); ++e) {
    INFO("epoch " << e << ": " << got[e] << " vs closed form " << closed[e]);
    CHECK(std::abs(got[e] - closed[e]) <= 1e-18 + 4e-16 * std::abs(closed[e]));
  }
}

}  // namespace

// The expected values are what PyTorch 2.15.0 printed (float.hex of optimizer.param_groups[0]["lr"]
// before each epoch, scheduler.step() after it, in a plain Adam loop): the recursive form its
// step() uses, which octa matches exactly.
TEST_CASE("CosineAnnealingLR: PyTorch's lrs bit for bit, the closed form to rounding",
          "[lr_schedule]") {
  SECTION("base 1e-3, T_max 5, eta_min 0, and on past T_max (the lr rises again)") {
    const std::vector<double> torch = {
        0x1.0624dd2f1a9fcp-10, 0x1.da391350a37a2p-11, 0x1.5726a4b9162a4p-11,
        0x1.6a462b4a3e2a9p-12, 0x1.9085386c8e2b4p-14, 0x0.0p+0,
        0x1.9085386c8e2b0p-14, 0x1.6a462b4a3e2aap-12, 0x1.5726a4b9162a6p-11,
        0x1.da391350a37a6p-11, 0x1.0624dd2f1a9fep-10, 0x1.da391350a37a9p-11};
    const std::vector<double> got = lrs(cosine(5, 0.0), 1e-3, 12);
    CHECK(got == torch);
    std::vector<double> closed;
    for (int e = 0; e < 12; ++e) closed.push_back(closed_cosine(1e-3, 5, 0.0, e));
    check_near_closed(got, closed);
  }
  SECTION("base 1e-3, T_max 3: epoch 2 is 0.0002500000000000001 (both forms)") {
    const std::vector<double> got = lrs(cosine(3, 0.0), 1e-3, 3);
    CHECK(got ==
          std::vector<double>{0x1.0624dd2f1a9fcp-10, 0x1.89374bc6a7efap-11, 0x1.0624dd2f1a9fep-12});
    check_near_closed(got, {closed_cosine(1e-3, 3, 0.0, 0), closed_cosine(1e-3, 3, 0.0, 1),
                            closed_cosine(1e-3, 3, 0.0, 2)});
  }
  SECTION("base 1e-2, T_max 7, eta_min 1e-4") {
    const std::vector<double> got = lrs(cosine(7, 1e-4), 1e-2, 7);
    CHECK(got == std::vector<double>{0x1.47ae147ae147bp-7, 0x1.379df32ec74f0p-7,
                                     0x1.0a9c047c51c3cp-7, 0x1.9324af8218993p-8,
                                     0x1.02c5322e7106fp-8, 0x1.0163b16fcc313p-9,
                                     0x1.356fda97d810fp-11});
    std::vector<double> closed;
    for (int e = 0; e < 7; ++e) closed.push_back(closed_cosine(1e-2, 7, 1e-4, e));
    check_near_closed(got, closed);
    CHECK(got[2] != closed[2]);  // where the two forms round apart: PyTorch's is the recursive
    CHECK(got[6] != closed[6]);
  }
}

TEST_CASE("StepLR: PyTorch's lrs bit for bit, the closed form to rounding", "[lr_schedule]") {
  SECTION("base 1e-3, step 2, gamma 0.1") {
    const std::vector<double> got = lrs(step(2, 0.1), 1e-3, 7);
    CHECK(got == std::vector<double>{0x1.0624dd2f1a9fcp-10, 0x1.0624dd2f1a9fcp-10,
                                     0x1.a36e2eb1c432dp-14, 0x1.a36e2eb1c432dp-14,
                                     0x1.4f8b588e368f1p-17, 0x1.4f8b588e368f1p-17,
                                     0x1.0c6f7a0b5ed8ep-20});
    std::vector<double> closed;
    for (int e = 0; e < 7; ++e) closed.push_back(closed_step(1e-3, 2, 0.1, e));
    check_near_closed(got, closed);
  }
  SECTION("base 3e-3, step 1, gamma 0.7") {
    const std::vector<double> got = lrs(step(1, 0.7), 3e-3, 6);
    CHECK(got == std::vector<double>{0x1.89374bc6a7efap-9, 0x1.13404ea4a8c15p-9,
                                     0x1.815a07b352a83p-10, 0x1.0dbf0563ed0f5p-10,
                                     0x1.79a5078be57bdp-11, 0x1.0859ebaeba3d1p-11});
    std::vector<double> closed;
    for (int e = 0; e < 6; ++e) closed.push_back(closed_step(3e-3, 1, 0.7, e));
    check_near_closed(got, closed);
    CHECK(got[4] != closed[4]);  // 3e-3 * 0.7 * 0.7 * 0.7 * 0.7 is not 3e-3 * 0.7^4 in double
  }
}

TEST_CASE("constant schedule: the base lr in every epoch", "[lr_schedule]") {
  for (int e = 0; e < 20; ++e) CHECK(octa::scheduled_lr(LrSchedule{}, 1e-3, e) == 1e-3);
}

TEST_CASE("lr schedule flags: names, validation errors name the flag", "[lr_schedule]") {
  CHECK(octa::parse_lr_schedule("cosine") == LrScheduleKind::kCosine);
  CHECK(octa::parse_lr_schedule("step") == LrScheduleKind::kStep);
  CHECK(octa::parse_lr_schedule("constant") == LrScheduleKind::kConstant);
  CHECK(std::string(octa::lr_schedule_name(LrScheduleKind::kCosine)) == "cosine");
  CHECK_THROWS_WITH(octa::parse_lr_schedule("linear"),
                    Catch::Contains("--lr-schedule") && Catch::Contains("'linear'"));
  CHECK_THROWS_WITH(step(0, 0.1).validate(1e-3), Catch::Contains("--lr-step-size"));
  CHECK_THROWS_WITH(step(2, 0.0).validate(1e-3), Catch::Contains("--lr-gamma"));
  CHECK_THROWS_WITH(step(2, NAN).validate(1e-3), Catch::Contains("--lr-gamma"));
  CHECK_NOTHROW(step(2, 0.5).validate(1e-3));
  CHECK_THROWS_WITH(cosine(0, 0.0).validate(1e-3), Catch::Contains("--epochs"));
  CHECK_THROWS_WITH(cosine(5, -1e-5).validate(1e-3), Catch::Contains("--lr-min"));
  CHECK_THROWS_WITH(cosine(5, 1e-3).validate(1e-3), Catch::Contains("--lr-min"));
  CHECK_NOTHROW(cosine(5, 1e-5).validate(1e-3));
  CHECK_NOTHROW(LrSchedule{}.validate(1e-3));
  CHECK(octa::describe(cosine(5, 0.0)) == "cosine (T_max 5, eta_min 0)");
  CHECK(octa::describe(step(2, 0.1)) == "step (step_size 2, gamma 0.1)");
  CHECK_THROWS_AS(octa::scheduled_lr(cosine(5, 0.0), 1e-3, -1), octa::Error);
}
