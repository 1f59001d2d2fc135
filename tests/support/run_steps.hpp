// tests/support/run_steps.hpp: training steps of a backend over shuffled batches of a split, for
// the tests that hold one backend to another step for step (GPU vs CPU, fast CPU vs reference).
#pragma once

#include <cstddef>
#include <vector>

#include "engine/data/loader.hpp"
#include "engine/data/mnist.hpp"
#include "engine/train/backend.hpp"

namespace octa::test {

// Runs `steps` training steps of a backend over the same batches (epoch 0's order from seed 9,
// wrapping around); returns each step's mean loss. target: the loader's (8: "is it an 8?";
// data::kClassIndexTarget for a backend of K classes).
inline std::vector<double> run_steps(TrainingBackend& b, const data::Split& split, int batch,
                                     int steps, int target = 8) {
  data::BatchLoader loader(split, batch, /*shuffle=*/true, /*drop_last=*/false, 9, target);
  loader.start_epoch(0);
  std::vector<float> x(static_cast<std::size_t>(batch) * 784), y(static_cast<std::size_t>(batch));
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    const auto bi = static_cast<std::size_t>(s) % loader.num_batches();
    const int n = loader.fill(bi, x.data(), y.data(), nullptr);
    b.train_step(x.data(), y.data(), n, s);
    losses.push_back(b.take_loss_sum() / n);
  }
  return losses;
}

}  // namespace octa::test
