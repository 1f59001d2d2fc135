// tests/test_model.cpp: the parameter tables of models A and B (PyTorch's names, shapes and
// counts), PyTorch-style initialisation, and the CPU models' forward behaviour in train and eval
// mode.
#include <catch2/catch.hpp>

#include <cmath>
#include <set>
#include <vector>

#include "engine/core/philox.hpp"
#include "engine/model/cpu_model.hpp"
#include "engine/model/param_table.hpp"

using octa::Arch;
using octa::ParamTable;

namespace {

std::vector<float> random_images(int n, std::uint64_t seed) {
  std::vector<float> x(static_cast<std::size_t>(n) * 28 * 28);
  octa::PhiloxStream rng(seed, 99);
  for (auto& v : x) v = 2.0f * rng.next_uniform01() - 1.0f;
  return x;
}

}  // namespace

TEST_CASE("Model A has the tutorial's 420,481 parameters under PyTorch's names", "[cpu][model]") {
  const ParamTable t = ParamTable::for_arch(Arch::kA);
  CHECK(t.num_trainable() == 420481);
  CHECK(t.num_total() == 420481);
  // conv1 on one grayscale channel: 3*3*1*32 + 32 = 320 (the tutorial's 896 is for 3 channels).
  CHECK(t.at("conv1.weight").numel + t.at("conv1.bias").numel == 320);
  CHECK(t.at("conv2.weight").numel + t.at("conv2.bias").numel == 18496);
  CHECK(t.at("fc1.weight").numel + t.at("fc1.bias").numel == 401536);
  CHECK(t.at("fc2.weight").numel + t.at("fc2.bias").numel == 129);
  CHECK(t.at("conv1.weight").shape == std::vector<std::int64_t>{32, 1, 3, 3});
  CHECK(t.at("fc1.weight").shape == std::vector<std::int64_t>{128, 3136});
  CHECK(t.at("fc2.bias").shape == std::vector<std::int64_t>{1});
  std::vector<std::string> names;
  for (const auto& e : t.entries()) names.push_back(e.name);
  CHECK(names == std::vector<std::string>{"conv1.weight", "conv1.bias", "conv2.weight",
                                          "conv2.bias", "fc1.weight", "fc1.bias", "fc2.weight",
                                          "fc2.bias"});
  CHECK(t.batchnorm_layers().empty());
  CHECK_THROWS_WITH(t.at("bn1.weight"), Catch::Contains("bn1.weight"));
}

TEST_CASE("Model B has 27,457 trainable parameters and BatchNorm buffers after them",
          "[cpu][model]") {
  const ParamTable t = ParamTable::for_arch(Arch::kB);
  CHECK(t.num_trainable() == 27457);
  CHECK(t.num_total() == 27457 + 2 * (32 + 64));
  CHECK(t.at("fc1.weight").shape == std::vector<std::int64_t>{128, 64});
  CHECK(t.at("bn2.running_var").shape == std::vector<std::int64_t>{64});
  CHECK(t.batchnorm_layers() == std::vector<std::string>{"bn1", "bn2"});
  // Contiguous, non-overlapping, trainable prefix then buffers.
  std::size_t offset = 0;
  bool in_buffers = false;
  for (const auto& e : t.entries()) {
    CHECK(e.offset == offset);
    offset += e.numel;
    if (!e.trainable()) in_buffers = true;
    CHECK(e.trainable() != in_buffers);
  }
  CHECK(offset == t.num_total());
}

TEST_CASE("parse_arch accepts a/b and names --model otherwise", "[cpu][model]") {
  CHECK(octa::parse_arch("a") == Arch::kA);
  CHECK(octa::parse_arch("B") == Arch::kB);
  CHECK_THROWS_WITH(octa::parse_arch("c"), Catch::Contains("--model"));
}

TEST_CASE("Initialisation follows PyTorch's defaults and is reproducible from the seed",
          "[cpu][model]") {
  const ParamTable t = ParamTable::for_arch(Arch::kB);
  std::vector<float> s1(t.num_total()), s2(t.num_total()), s3(t.num_total());
  octa::init_parameters(t, s1.data(), 7);
  octa::init_parameters(t, s2.data(), 7);
  octa::init_parameters(t, s3.data(), 8);
  CHECK(s1 == s2);
  CHECK(s1 != s3);
  for (const auto& e : t.entries()) {
    const float* p = s1.data() + e.offset;
    INFO(e.name);
    if (e.kind == octa::ParamKind::kWeight || e.kind == octa::ParamKind::kBias) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(e.fan_in));
      double lo = 1e9, hi = -1e9, sum = 0;
      for (std::size_t i = 0; i < e.numel; ++i) {
        lo = std::min(lo, static_cast<double>(p[i]));
        hi = std::max(hi, static_cast<double>(p[i]));
        sum += p[i];
      }
      CHECK(lo >= -bound);
      CHECK(hi <= bound);
      if (e.numel >= 1000) {  // a uniform sample spans its range and is centred
        CHECK(hi - lo > 1.9 * bound);
        CHECK(std::abs(sum / static_cast<double>(e.numel)) < 0.05 * bound);
      }
    } else {
      const float want =
          (e.kind == octa::ParamKind::kBnWeight || e.kind == octa::ParamKind::kRunningVar) ? 1.0f
                                                                                           : 0.0f;
      for (std::size_t i = 0; i < e.numel; ++i) CHECK(p[i] == want);
    }
  }
  // Distinct tensors draw from distinct streams.
  CHECK(s1[t.at("conv1.bias").offset] != s1[t.at("conv2.bias").offset]);
}

TEST_CASE("Model B: train mode updates running statistics and uses dropout, eval does neither",
          "[cpu][model]") {
  const ParamTable t = ParamTable::for_arch(Arch::kB);
  std::vector<float> state(t.num_total());
  octa::init_parameters(t, state.data(), 1);
  octa::CpuModel<float> net(t, 8);
  const auto x = random_images(8, 3);
  std::vector<float> z1(8), z2(8), z3(8);

  const std::vector<float> before = state;
  net.forward(state.data(), x.data(), 8, false, 0, 0, z1.data());
  CHECK(state == before);  // eval changes nothing
  net.forward(state.data(), x.data(), 8, false, 0, 0, z2.data());
  CHECK(z1 == z2);  // and is deterministic

  net.forward(state.data(), x.data(), 8, true, 5, 100, z2.data());
  const auto& rm = t.at("bn1.running_mean");
  const auto& rv = t.at("bn1.running_var");
  bool mean_moved = false, var_moved = false;
  for (std::size_t i = 0; i < rm.numel; ++i) {
    mean_moved |= state[rm.offset + i] != 0.0f;
    var_moved |= state[rv.offset + i] != 1.0f;
  }
  CHECK(mean_moved);
  CHECK(var_moved);
  // Train-mode logits depend on the dropout stream.
  std::vector<float> s2 = before;
  net.forward(s2.data(), x.data(), 8, true, 5, 100, z3.data());
  CHECK(z2 == z3);
  net.forward(s2.data(), x.data(), 8, true, 5, 101, z3.data());
  CHECK(z2 != z3);
}

TEST_CASE("Model A: float and double forward agree, batch rows are independent in eval",
          "[cpu][model]") {
  const ParamTable t = ParamTable::for_arch(Arch::kA);
  std::vector<float> state(t.num_total());
  octa::init_parameters(t, state.data(), 2);
  std::vector<double> state_d(state.begin(), state.end());
  const auto x = random_images(4, 9);
  std::vector<double> xd(x.begin(), x.end());
  octa::CpuModel<float> net(t, 4);
  octa::CpuModel<double> net_d(t, 4);
  std::vector<float> z(4), z_one(1);
  std::vector<double> zd(4);
  net.forward(state.data(), x.data(), 4, false, 0, 0, z.data());
  net_d.forward(state_d.data(), xd.data(), 4, false, 0, 0, zd.data());
  for (int i = 0; i < 4; ++i) CHECK(z[i] == Approx(zd[i]).margin(1e-5).epsilon(1e-4));
  // The third image alone gives the same logit as inside the batch.
  net.forward(state.data(), x.data() + 2 * 784, 1, false, 0, 0, z_one.data());
  CHECK(z_one[0] == Approx(z[2]).margin(1e-6).epsilon(1e-5));
  CHECK_THROWS(net.forward(state.data(), x.data(), 5, false, 0, 0, z.data()));
}
