// tests/test_optimizer.cpp: Adam and SGD against their formulas, computed by hand and in double.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/optim/optimizer.hpp"
#include "tests/support/compare.hpp"

using octa::OptimizerConfig;
using octa::OptimizerKind;

TEST_CASE("Adam: one step matches the bias-corrected formula by hand", "[cpu][optim]") {
  // Step 1 with m = v = 0: m = (1-b1) g, v = (1-b2) g^2, so m_hat = g, v_hat = g^2 and the update
  // is lr * g / (|g| + eps): almost exactly lr * sign(g), whatever |g|.
  OptimizerConfig cfg;  // lr 1e-3, betas (0.9, 0.999), eps 1e-8
  std::vector<float> p = {1.0f, -2.0f, 0.5f}, g = {0.5f, -3.0f, 1e-3f}, m(3, 0.0f), v(3, 0.0f);
  octa::adam_update(p.data(), g.data(), m.data(), v.data(), 3, cfg, 1);
  CHECK(m[0] == Approx(0.05).epsilon(1e-6));
  CHECK(v[0] == Approx(0.001 * 0.25).epsilon(1e-5));
  CHECK(p[0] == Approx(1.0 - 1e-3 * 0.5 / (0.5 + 1e-8)).epsilon(1e-7));
  CHECK(p[1] == Approx(-2.0 + 1e-3 * 3.0 / (3.0 + 1e-8)).epsilon(1e-7));
  CHECK(p[2] == Approx(0.5 - 1e-3 * 1e-3 / (1e-3 + 1e-8)).epsilon(1e-7));
}

TEST_CASE("Adam: many steps with weight decay against a double-precision reference",
          "[cpu][optim]") {
  OptimizerConfig cfg;
  cfg.lr = 3e-3;
  cfg.weight_decay = 0.01;
  const std::size_t n = 64;
  std::vector<float> p(n), m(n, 0.0f), v(n, 0.0f), g(n);
  std::vector<double> pd(n), md(n, 0.0), vd(n, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    pd[i] = std::sin(0.7 * static_cast<double>(i)) + 0.1;
    p[i] = static_cast<float>(pd[i]);
  }
  for (int t = 1; t <= 20; ++t) {
    for (std::size_t i = 0; i < n; ++i) {
      g[i] = static_cast<float>(std::cos(0.3 * static_cast<double>(i) * t) * 0.2);
    }
    octa::adam_update(p.data(), g.data(), m.data(), v.data(), n, cfg, t);
    for (std::size_t i = 0; i < n; ++i) {
      const double gi = static_cast<double>(g[i]) + cfg.weight_decay * pd[i];
      md[i] = cfg.beta1 * md[i] + (1 - cfg.beta1) * gi;
      vd[i] = cfg.beta2 * vd[i] + (1 - cfg.beta2) * gi * gi;
      const double mhat = md[i] / (1 - std::pow(cfg.beta1, t));
      const double vhat = vd[i] / (1 - std::pow(cfg.beta2, t));
      pd[i] -= cfg.lr * mhat / (std::sqrt(vhat) + cfg.eps);
    }
  }
  OCTA_CHECK_CLOSE("adam params", p.data(), pd.data(), n, octa::test::tol::kFloatVsDouble);
  OCTA_CHECK_CLOSE("adam exp_avg", m.data(), md.data(), n, octa::test::tol::kFloatVsDouble);
}

TEST_CASE("SGD: plain, momentum (buffer = g at the first step) and Nesterov", "[cpu][optim]") {
  OptimizerConfig cfg;
  cfg.kind = OptimizerKind::kSgd;
  cfg.lr = 0.1;
  std::vector<float> p = {1.0f}, g = {2.0f}, buf = {123.0f};
  octa::sgd_update(p.data(), g.data(), buf.data(), 1, cfg, 1);
  CHECK(p[0] == Approx(0.8));

  cfg.momentum = 0.9;
  p = {1.0f};
  octa::sgd_update(p.data(), g.data(), buf.data(), 1, cfg, 1);  // buf := g (stale 123 ignored)
  CHECK(buf[0] == Approx(2.0));
  CHECK(p[0] == Approx(0.8));
  octa::sgd_update(p.data(), g.data(), buf.data(), 1, cfg, 2);  // buf = 0.9 * 2 + 2
  CHECK(buf[0] == Approx(3.8));
  CHECK(p[0] == Approx(0.8 - 0.38));

  cfg.nesterov = true;
  p = {1.0f};
  octa::sgd_update(p.data(), g.data(), buf.data(), 1, cfg, 1);  // buf = 2; step g + 0.9 buf
  CHECK(p[0] == Approx(1.0 - 0.1 * (2.0 + 0.9 * 2.0)));
}

TEST_CASE("Optimizer: step counts and dispatches, bad hyperparameters name their flag",
          "[cpu][optim]") {
  OptimizerConfig cfg;
  octa::Optimizer opt(cfg, 2);
  std::vector<float> p = {0.0f, 0.0f}, g = {1.0f, -1.0f};
  opt.step(p.data(), g.data());
  opt.step(p.data(), g.data());
  CHECK(opt.state().step == 2);
  CHECK(p[0] < 0.0f);
  CHECK(p[1] > 0.0f);

  OptimizerConfig bad;
  bad.lr = -1;
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("--lr"));
  bad = OptimizerConfig{};
  bad.beta2 = 1.0;
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("--beta2"));
  bad = OptimizerConfig{};
  bad.kind = OptimizerKind::kSgd;
  bad.nesterov = true;
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("--nesterov"));
  CHECK_THROWS_WITH(octa::parse_optimizer("rmsprop"), Catch::Contains("--optimizer"));
}
