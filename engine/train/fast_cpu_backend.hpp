// engine/train/fast_cpu_backend.hpp: the fast CPU backend (engine/cpu_fast/) as a TrainingBackend:
// what `train_gpu --device cpu` (and `auto` without a GPU) trains on. Same loss, optimiser and
// results as the reference (cpu_backend.hpp) up to float rounding, checked against it in
// tests/test_cpu_fast.cpp; bit-identical for any thread count.
#pragma once

#include <memory>

#include "engine/train/cpu_backend.hpp"

namespace octa {

std::unique_ptr<TrainingBackend> make_fast_cpu_backend(const BackendConfig& config);

}  // namespace octa
