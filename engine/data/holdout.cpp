// engine/data/holdout.cpp: a seeded partial Fisher-Yates over the training indices.
#include "engine/data/holdout.hpp"

#include <algorithm>
#include <numeric>

#include "engine/core/error.hpp"
#include "engine/core/philox.hpp"

namespace octa::data {
namespace {

void append_image(Split& to, const Split& from, std::uint32_t i) {
  const std::size_t image =
      static_cast<std::size_t>(from.rows) * static_cast<std::size_t>(from.cols);
  const auto begin = from.pixels.begin() + static_cast<std::ptrdiff_t>(i * image);
  to.pixels.insert(to.pixels.end(), begin, begin + static_cast<std::ptrdiff_t>(image));
  to.labels.push_back(from.labels[i]);
  to.count += 1;
}

}  // namespace

HeldOut hold_out(const Split& split, int n, std::uint64_t seed) {
  OCTA_CHECK(n >= 0 && n < split.count,
             "--val-size: {} validation images out of {} training images (must be 0 or more, and "
             "leave some to train on)",
             n, split.count);
  const auto count = static_cast<std::uint32_t>(split.count);
  std::vector<std::uint32_t> order(count);
  std::iota(order.begin(), order.end(), 0u);
  PhiloxStream rng(seed, rng_stream(RngStream::kHoldOut, 0));
  for (std::uint32_t i = 0; i < static_cast<std::uint32_t>(n); ++i) {
    std::swap(order[i], order[i + rng.next_below(count - i)]);
  }
  HeldOut h;
  h.validation_indices.assign(order.begin(), order.begin() + n);
  std::sort(h.validation_indices.begin(), h.validation_indices.end());
  std::vector<bool> held(count, false);
  for (const std::uint32_t i : h.validation_indices) held[i] = true;
  for (Split* s : {&h.train, &h.validation}) {
    s->rows = split.rows;
    s->cols = split.cols;
  }
  for (std::uint32_t i = 0; i < count; ++i)
    append_image(held[i] ? h.validation : h.train, split, i);
  return h;
}

RunSplits run_splits(Mnist mnist, int val_size, std::uint64_t seed, std::size_t max_train,
                     std::size_t max_test) {
  RunSplits r;
  if (val_size > 0) {
    HeldOut h = hold_out(mnist.train, val_size, seed);
    r.train = max_train > 0 ? take_first(h.train, max_train) : std::move(h.train);
    r.validation = std::move(h.validation);
  } else {
    r.train = max_train > 0 ? take_first(mnist.train, max_train) : std::move(mnist.train);
  }
  r.test = max_test > 0 ? take_first(mnist.test, max_test) : std::move(mnist.test);
  return r;
}

}  // namespace octa::data
