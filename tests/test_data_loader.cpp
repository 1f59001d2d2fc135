// tests/test_data_loader.cpp: BatchLoader: the epoch order (reproducible from seed and epoch, a
// permutation, different across epochs and seeds), batch counts, and the transformed batches.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <numeric>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/core/error.hpp"
#include "engine/core/philox.hpp"
#include "engine/data/loader.hpp"
#include "engine/data/transform.hpp"
#include "tests/support/alloc_watch.hpp"

namespace {

using Catch::Contains;
using octa::data::BatchLoader;
using octa::data::Split;

// n images of rows x cols; image i is filled with a pattern of its own; labels cycle 0..9.
Split make_split(int n, int rows = 28, int cols = 28) {
  Split s;
  s.count = n;
  s.rows = rows;
  s.cols = cols;
  const std::size_t per = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
  s.pixels.resize(static_cast<std::size_t>(n) * per);
  for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
    for (std::size_t p = 0; p < per; ++p) {
      s.pixels[i * per + p] = static_cast<std::uint8_t>((i * 13 + p * 7) & 0xff);
    }
    s.labels.push_back(static_cast<std::uint8_t>(i % 10));
  }
  return s;
}

std::vector<std::uint32_t> order_of(const BatchLoader& l) {
  return {l.order().begin(), l.order().end()};
}

bool is_permutation_of_iota(std::vector<std::uint32_t> v) {
  std::sort(v.begin(), v.end());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i] != i) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("loader: the shuffle is reproducible from seed and epoch alone", "[data][loader]") {
  const Split s = make_split(1000, 2, 2);
  BatchLoader a(s, 64, true, false, 1234, 8);
  BatchLoader b(s, 64, true, false, 1234, 8);
  CHECK(order_of(a) == order_of(b));  // epoch 0 at construction
  a.start_epoch(5);
  const auto epoch5 = order_of(a);
  // b reaches epoch 5 through other epochs: no dependence on history, so resuming is exact.
  b.start_epoch(1);
  b.start_epoch(2);
  b.start_epoch(5);
  CHECK(order_of(b) == epoch5);
  a.start_epoch(0);
  a.start_epoch(5);
  CHECK(order_of(a) == epoch5);
}

TEST_CASE("loader: the shuffle differs across epochs and seeds, and is a permutation",
          "[data][loader]") {
  const Split s = make_split(1000, 1, 1);
  BatchLoader a(s, 64, true, false, 1234, 8);
  BatchLoader other_seed(s, 64, true, false, 1235, 8);
  std::vector<std::vector<std::uint32_t>> seen;
  for (std::uint64_t epoch = 0; epoch < 5; ++epoch) {
    a.start_epoch(epoch);
    other_seed.start_epoch(epoch);
    const auto o = order_of(a);
    CHECK(is_permutation_of_iota(o));
    CHECK(is_permutation_of_iota(order_of(other_seed)));
    CHECK(o != order_of(other_seed));
    for (const auto& earlier : seen) CHECK(o != earlier);
    seen.push_back(o);
    // Actually shuffled: few elements stay in place (about 1 expected for a random permutation).
    std::size_t fixed = 0;
    for (std::size_t i = 0; i < o.size(); ++i) fixed += o[i] == i ? 1 : 0;
    CHECK(fixed < 10);
  }
}

TEST_CASE("loader: the shuffle is Fisher-Yates over the kShuffle Philox stream", "[data][loader]") {
  // The documented draw, which a GPU-side or external reimplementation can rely on.
  const Split s = make_split(257, 1, 1);
  BatchLoader l(s, 32, true, false, 99, 8);
  l.start_epoch(3);
  std::vector<std::uint32_t> ref(257);
  std::iota(ref.begin(), ref.end(), 0u);
  octa::PhiloxStream rng(99, octa::rng_stream(octa::RngStream::kShuffle, 3));
  for (std::size_t i = ref.size() - 1; i > 0; --i) {
    std::swap(ref[i], ref[rng.next_below(static_cast<std::uint32_t>(i + 1))]);
  }
  CHECK(order_of(l) == ref);
}

TEST_CASE("loader: without shuffle the order is the identity in every epoch", "[data][loader]") {
  const Split s = make_split(50, 1, 1);
  BatchLoader l(s, 8, false, false, 1234, 8);
  for (std::uint64_t epoch : {0u, 1u, 7u}) {
    l.start_epoch(epoch);
    const auto o = order_of(l);
    for (std::size_t i = 0; i < o.size(); ++i) REQUIRE(o[i] == i);
  }
}

TEST_CASE("loader: batch counts with and without drop_last", "[data][loader]") {
  const Split s = make_split(10, 28, 28);
  CHECK(BatchLoader(s, 4, false, false, 0, 8).num_batches() == 3);
  CHECK(BatchLoader(s, 4, false, true, 0, 8).num_batches() == 2);
  CHECK(BatchLoader(s, 5, false, false, 0, 8).num_batches() == 2);
  CHECK(BatchLoader(s, 5, false, true, 0, 8).num_batches() == 2);
  CHECK(BatchLoader(s, 1, false, false, 0, 8).num_batches() == 10);
  CHECK(BatchLoader(s, 64, false, false, 0, 8).num_batches() == 1);
  CHECK(BatchLoader(s, 64, false, true, 0, 8).num_batches() == 0);
  CHECK(BatchLoader(s, 4, false, false, 0, 8).max_batch_size() == 4);
  CHECK(BatchLoader(s, 64, false, false, 0, 8).max_batch_size() == 10);
  CHECK(BatchLoader(s, 4, false, false, 0, 8).image_floats() == 784);
  // MNIST's own sizes: 938 training batches of 64 (the last holds 32), 10 test batches of 1000.
  const Split mnist_sized = make_split(60000, 1, 1);
  CHECK(BatchLoader(mnist_sized, 64, true, false, 0, 8).num_batches() == 938);
  CHECK(BatchLoader(mnist_sized, 64, true, true, 0, 8).num_batches() == 937);
  BatchLoader train(mnist_sized, 64, true, false, 0, 8);
  std::vector<float> images(64), targets(64);
  CHECK(train.fill(937, images.data(), targets.data(), nullptr) == 32);
  CHECK(train.fill(936, images.data(), targets.data(), nullptr) == 64);
  const Split test_sized = make_split(10000, 1, 1);
  CHECK(BatchLoader(test_sized, 1000, false, false, 0, 8).num_batches() == 10);
}

TEST_CASE("loader: fill writes normalised images, targets and labels", "[data][loader]") {
  const Split s = make_split(10, 28, 28);
  const int digit = GENERATE(8, 3);
  BatchLoader l(s, 4, false, false, 0, digit);
  std::vector<float> images(l.max_batch_size() * 784, 99.0f), targets(l.max_batch_size(), 99.0f);
  std::vector<std::uint8_t> labels(l.max_batch_size(), 99);

  for (std::size_t batch = 0; batch < l.num_batches(); ++batch) {
    const int n = l.fill(batch, images.data(), targets.data(), labels.data());
    CHECK(n == (batch < 2 ? 4 : 2));  // 10 images in batches of 4: the last holds 2
    for (int b = 0; b < n; ++b) {
      const std::size_t idx = batch * 4 + static_cast<std::size_t>(b);
      CHECK(labels[b] == s.labels[idx]);
      CHECK(targets[b] == (s.labels[idx] == digit ? 1.0f : 0.0f));
      for (std::size_t p = 0; p < 784; ++p) {
        const float want = (static_cast<float>(s.pixels[idx * 784 + p]) / 255.0f - 0.5f) / 0.5f;
        if (images[static_cast<std::size_t>(b) * 784 + p] != want) {
          FAIL("batch " << batch << " image " << b << " pixel " << p << ": got "
                        << images[static_cast<std::size_t>(b) * 784 + p] << ", want " << want);
        }
      }
    }
  }
  // The positive targets are where the target digit is: labels 8 and 3 sit at index 8 and 3.
  l.fill(digit == 8 ? 2 : 0, images.data(), targets.data(), nullptr);
  CHECK(targets[digit == 8 ? 0 : 3] == 1.0f);
  // The extreme pixel values map to exactly -1 and 1.
  Split extremes = make_split(2, 1, 2);
  extremes.pixels = {0, 255, 255, 0};
  BatchLoader e(extremes, 2, false, false, 0, 8);
  std::vector<float> ev(4);
  std::vector<float> et(2);
  CHECK(e.fill(0, ev.data(), et.data(), nullptr) == 2);
  CHECK(ev == std::vector<float>{-1.0f, 1.0f, 1.0f, -1.0f});
}

TEST_CASE("loader: a shuffled epoch delivers every image once, in order()'s order",
          "[data][loader]") {
  const Split s = make_split(23, 3, 3);
  BatchLoader l(s, 5, true, false, 42, 8);
  l.start_epoch(2);
  const auto o = order_of(l);
  std::vector<float> images(5 * 9), targets(5);
  std::vector<std::uint8_t> labels(5);
  std::vector<int> seen(23, 0);
  std::size_t position = 0;
  for (std::size_t batch = 0; batch < l.num_batches(); ++batch) {
    const int n = l.fill(batch, images.data(), targets.data(), labels.data());
    for (int b = 0; b < n; ++b, ++position) {
      const std::uint32_t idx = o[position];
      ++seen[idx];
      CHECK(labels[b] == s.labels[idx]);
      for (std::size_t p = 0; p < 9; ++p) {
        CHECK(images[static_cast<std::size_t>(b) * 9 + p] ==
              octa::data::normalize_pixel(s.pixels[idx * 9 + p]));
      }
    }
  }
  CHECK(position == 23);
  CHECK(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }));
}

TEST_CASE("loader: drop_last skips the partial batch", "[data][loader]") {
  const Split s = make_split(10, 2, 2);
  BatchLoader l(s, 4, true, true, 7, 8);
  std::vector<float> images(16), targets(4);
  CHECK(l.fill(1, images.data(), targets.data(), nullptr) == 4);
  REQUIRE_THROWS_WITH(l.fill(2, images.data(), targets.data(), nullptr),
                      Contains("batch index 2 is past the last batch (2 batches)"));
}

TEST_CASE("loader: fill does not allocate", "[data][loader]") {
  const Split s = make_split(300, 28, 28);
  BatchLoader l(s, 64, true, false, 5, 8);
  l.start_epoch(1);
  std::vector<float> images, targets;
  std::vector<std::uint8_t> labels;
  const auto setup = octa::test::watch_allocations([&] {
    images.resize(l.max_batch_size() * 784);
    targets.resize(l.max_batch_size());
    labels.resize(l.max_batch_size());
  });
  REQUIRE(setup.count >= 3);  // the watch does see allocations
  int total = 0;
  const auto filling = octa::test::watch_allocations([&] {
    for (std::size_t batch = 0; batch < l.num_batches(); ++batch) {
      total += l.fill(batch, images.data(), targets.data(), labels.data());
    }
  });
  CHECK(total == 300);
  CHECK(filling.count == 0);
}

TEST_CASE("loader: invalid arguments are refused with a clear message", "[data][loader]") {
  const Split s = make_split(10, 2, 2);
  REQUIRE_THROWS_WITH(BatchLoader(s, 0, false, false, 0, 8),
                      Contains("batch size must be positive, got 0"));
  REQUIRE_THROWS_WITH(BatchLoader(s, -3, false, false, 0, 8), Contains("got -3"));
  REQUIRE_THROWS_WITH(BatchLoader(s, 4, false, false, 0, 256),
                      Contains("target class must be in 0..255"));
  REQUIRE_THROWS_WITH(BatchLoader(s, 4, false, false, 0, -2), Contains("got -2"));
  Split broken = s;
  broken.labels.pop_back();
  REQUIRE_THROWS_WITH(BatchLoader(broken, 4, false, false, 0, 8),
                      Contains("10 images of 2x2 has 40 pixels and 9 labels"));
  // An empty split has no batches and is not an error.
  const Split empty = make_split(0, 28, 28);
  BatchLoader e(empty, 4, true, false, 0, 8);
  CHECK(e.num_batches() == 0);
  CHECK(e.order().empty());
}
