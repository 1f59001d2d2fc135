// engine/model/param_table.cpp: the parameter layouts of models A and B, and their initialisation.
#include "engine/model/param_table.hpp"

#include <cctype>
#include <cmath>

#include "engine/core/error.hpp"
#include "engine/core/philox.hpp"

namespace octa {

Arch parse_arch(std::string_view name) {
  if (name.size() == 1) {
    const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(name[0])));
    if (c == 'a') return Arch::kA;
    if (c == 'b') return Arch::kB;
  }
  throw Error(
      fmt::format("--model: unknown model '{}' (use 'a', the tutorial's CNN, or 'b', its "
                  "BatchNorm + global-average-pool + dropout version)",
                  name));
}

const char* arch_name(Arch arch) {
  return arch == Arch::kA ? "A" : "B";
}

void ParamTable::add(std::string name, std::vector<std::int64_t> shape, ParamKind kind,
                     int fan_in) {
  ParamEntry e;
  e.name = std::move(name);
  e.numel = 1;
  for (const auto d : shape) e.numel *= static_cast<std::size_t>(d);
  e.shape = std::move(shape);
  e.kind = kind;
  e.fan_in = fan_in;
  e.offset = num_total_;
  num_total_ += e.numel;
  if (e.trainable()) {
    // Trainable entries must all precede the buffers: gradients cover the prefix only.
    OCTA_CHECK(num_trainable_ == e.offset, "ParamTable: trainable '{}' after a buffer", e.name);
    num_trainable_ = num_total_;
  }
  entries_.push_back(std::move(e));
}

ParamTable ParamTable::for_arch(Arch arch, int num_classes) {
  OCTA_CHECK(num_classes >= 1 && num_classes <= kMaxClasses,
             "model {}: {} classes (fc2 has 1 output for the binary task, 2..{} for classes)",
             arch_name(arch), num_classes, kMaxClasses);
  ParamTable t;
  t.arch_ = arch;
  t.num_classes_ = num_classes;
  const auto conv = [&t](const std::string& n, int cin, int cout) {
    t.add(n + ".weight", {cout, cin, 3, 3}, ParamKind::kWeight, cin * 9);
    t.add(n + ".bias", {cout}, ParamKind::kBias, cin * 9);
  };
  const auto linear = [&t](const std::string& n, int in, int out) {
    t.add(n + ".weight", {out, in}, ParamKind::kWeight, in);
    t.add(n + ".bias", {out}, ParamKind::kBias, in);
  };
  conv("conv1", 1, 32);
  conv("conv2", 32, 64);
  if (arch == Arch::kA) {
    linear("fc1", 64 * 7 * 7, 128);
    linear("fc2", 128, num_classes);
  } else {
    linear("fc1", 64, 128);
    linear("fc2", 128, num_classes);
    for (const auto& [bn, c] : {std::pair<std::string, int>{"bn1", 32}, {"bn2", 64}}) {
      t.add(bn + ".weight", {c}, ParamKind::kBnWeight, 0);
      t.add(bn + ".bias", {c}, ParamKind::kBnBias, 0);
      t.bn_layers_.push_back(bn);
    }
    for (const auto& [bn, c] : {std::pair<std::string, int>{"bn1", 32}, {"bn2", 64}}) {
      t.add(bn + ".running_mean", {c}, ParamKind::kRunningMean, 0);
      t.add(bn + ".running_var", {c}, ParamKind::kRunningVar, 0);
    }
  }
  return t;
}

const ParamEntry& ParamTable::at(std::string_view name) const {
  for (const auto& e : entries_) {
    if (e.name == name) return e;
  }
  throw Error(fmt::format("model {} has no parameter '{}'", arch_name(arch_), name));
}

bool ParamTable::contains(std::string_view name) const {
  for (const auto& e : entries_) {
    if (e.name == name) return true;
  }
  return false;
}

void init_parameters(const ParamTable& table, float* state, std::uint64_t seed) {
  for (std::size_t k = 0; k < table.entries().size(); ++k) {
    const ParamEntry& e = table.entries()[k];
    float* p = state + e.offset;
    switch (e.kind) {
      case ParamKind::kWeight:
      case ParamKind::kBias: {
        const float bound = 1.0f / std::sqrt(static_cast<float>(e.fan_in));
        PhiloxStream rng(seed, rng_stream(RngStream::kInit, k));
        for (std::size_t i = 0; i < e.numel; ++i) {
          p[i] = (2.0f * rng.next_uniform01() - 1.0f) * bound;
        }
        break;
      }
      case ParamKind::kBnWeight:
      case ParamKind::kRunningVar:
        for (std::size_t i = 0; i < e.numel; ++i) p[i] = 1.0f;
        break;
      case ParamKind::kBnBias:
      case ParamKind::kRunningMean:
        for (std::size_t i = 0; i < e.numel; ++i) p[i] = 0.0f;
        break;
    }
  }
}

}  // namespace octa
