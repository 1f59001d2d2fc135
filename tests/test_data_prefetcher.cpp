// tests/test_data_prefetcher.cpp: the loader thread (engine/data/prefetcher.hpp): the same batches
// in the same order as BatchLoader across epochs, never more than the ring ahead, every refill
// behind the slot's wait_reusable(), errors surfaced in the consumer, and a clean stop mid-run.
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/core/error.hpp"
#include "engine/data/loader.hpp"
#include "engine/data/prefetcher.hpp"
#include "tests/support/synthetic.hpp"

namespace {

using octa::data::HostBatch;
using octa::data::PageableHostBatch;
using octa::data::Prefetcher;
using octa::data::PrefetchOptions;

constexpr std::size_t kFloats = 28 * 28;

// A slot that counts how often the thread waited on it, and can fail or block on demand.
class ProbeBatch final : public HostBatch {
 public:
  ProbeBatch(int capacity, std::atomic<int>* waits, int fail_at = -1)
      : HostBatch(capacity, kFloats),
        images_(static_cast<std::size_t>(capacity) * kFloats),
        targets_(static_cast<std::size_t>(capacity)),
        waits_(waits),
        fail_at_(fail_at) {}
  float* images() override { return images_.data(); }
  float* targets() override { return targets_.data(); }
  void wait_reusable() override {
    const int k = waits_->fetch_add(1);
    if (k == fail_at_) throw std::runtime_error("device copy failed (injected)");
  }

 private:
  std::vector<float> images_, targets_;
  std::atomic<int>* waits_;
  int fail_at_;
};

std::vector<std::unique_ptr<HostBatch>> pageable_ring(int slots, int capacity) {
  std::vector<std::unique_ptr<HostBatch>> ring;
  for (int i = 0; i < slots; ++i)
    ring.push_back(std::make_unique<PageableHostBatch>(capacity, kFloats));
  return ring;
}

std::vector<std::unique_ptr<HostBatch>> probe_ring(int slots, int capacity, std::atomic<int>* waits,
                                                   int fail_at = -1) {
  std::vector<std::unique_ptr<HostBatch>> ring;
  for (int i = 0; i < slots; ++i)
    ring.push_back(std::make_unique<ProbeBatch>(capacity, waits, fail_at));
  return ring;
}

// Waits (up to 10 s) for the loader thread to stop changing `count`, and returns it.
int settled(const std::atomic<int>& count) {
  int last = -1;
  for (int i = 0; i < 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const int now = count.load();
    if (now == last) return now;
    last = now;
  }
  return count.load();
}

}  // namespace

TEST_CASE("prefetcher: the same batches in the same order as BatchLoader, across epochs",
          "[data]") {
  const auto split = octa::test::synthetic_split(203, 7);  // 203 = 3 * 64 + 11: a partial batch
  const int slots = GENERATE(1, 2, 4);
  const bool drop_last = GENERATE(false, true);
  PrefetchOptions po;
  po.batch_size = 64;
  po.drop_last = drop_last;
  po.seed = 99;
  po.target_digit = 3;
  po.first_epoch = 2;  // as after a resume
  po.last_epoch = 5;
  Prefetcher pf(split, po, pageable_ring(slots, 64));
  octa::data::BatchLoader loader(split, 64, /*shuffle=*/true, drop_last, 99, 3);
  REQUIRE(pf.batches_per_epoch() == loader.num_batches());
  REQUIRE(pf.total_batches() == 3 * loader.num_batches());
  std::vector<float> images(64 * kFloats), targets(64);
  for (std::uint64_t epoch = 2; epoch < 5; ++epoch) {
    loader.start_epoch(epoch);
    for (std::size_t b = 0; b < loader.num_batches(); ++b) {
      const Prefetcher::Item item = pf.next();
      const int n = loader.fill(b, images.data(), targets.data(), nullptr);
      REQUIRE(item.epoch == epoch);
      REQUIRE(item.index == b);
      REQUIRE(item.n == n);
      REQUIRE(std::memcmp(item.batch->images(), images.data(), n * kFloats * sizeof(float)) == 0);
      REQUIRE(std::memcmp(item.batch->targets(), targets.data(), n * sizeof(float)) == 0);
    }
  }
  REQUIRE_THROWS_WITH(pf.next(), Catch::Contains("all") && Catch::Contains("were taken"));
}

TEST_CASE("prefetcher: runs ahead by the ring and no further, waiting on each slot first",
          "[data]") {
  const auto split = octa::test::synthetic_split(640, 1);  // 10 batches
  std::atomic<int> waits{0};
  PrefetchOptions po;
  po.batch_size = 64;
  Prefetcher pf(split, po, probe_ring(3, 64, &waits));
  // Nothing taken: the thread fills all three slots, then stops.
  CHECK(settled(waits) == 3);
  // Holding batch 0 keeps its slot; batches 1 and 2 are ready.
  (void)pf.next();
  CHECK(settled(waits) == 3);
  // Taking batch 1 hands back slot 0, which the thread waits on and refills with batch 3.
  (void)pf.next();
  CHECK(settled(waits) == 4);
  for (int k = 2; k < 10; ++k) REQUIRE(pf.next().index == static_cast<std::size_t>(k));
  // Every batch was filled after waiting on its slot, once.
  CHECK(settled(waits) == 10);
}

TEST_CASE("prefetcher: an error in the loader thread reaches the consumer at that batch",
          "[data]") {
  const auto split = octa::test::synthetic_split(640, 1);
  std::atomic<int> waits{0};
  PrefetchOptions po;
  po.batch_size = 64;
  Prefetcher pf(split, po, probe_ring(2, 64, &waits, /*fail_at=*/3));
  for (int k = 0; k < 3; ++k) REQUIRE(pf.next().index == static_cast<std::size_t>(k));
  REQUIRE_THROWS_WITH(pf.next(), Catch::Contains("device copy failed (injected)"));
}

TEST_CASE("prefetcher: stops cleanly when dropped mid-run", "[data]") {
  const auto split = octa::test::synthetic_split(6400, 2);
  PrefetchOptions po;
  po.batch_size = 64;
  po.last_epoch = 50;
  const auto start = std::chrono::steady_clock::now();
  {
    Prefetcher pf(split, po, pageable_ring(4, 64));
    (void)pf.next();
    (void)pf.next();
  }  // the thread is blocked on a full ring here; the destructor must wake and join it
  {
    Prefetcher pf(split, po, pageable_ring(4, 64));  // dropped before anything was taken
  }
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
}

TEST_CASE("prefetcher: refuses a ring it cannot fill", "[data]") {
  const auto split = octa::test::synthetic_split(100, 1);
  PrefetchOptions po;
  po.batch_size = 64;
  REQUIRE_THROWS_WITH(Prefetcher(split, po, {}), Catch::Contains("no slots"));
  REQUIRE_THROWS_WITH(Prefetcher(split, po, pageable_ring(2, 32)),
                      Catch::Contains("holds 32 images") && Catch::Contains("need 64"));
  // A batch larger than the split needs only split-sized slots.
  po.batch_size = 1000;
  Prefetcher pf(split, po, pageable_ring(2, 100));
  REQUIRE(pf.next().n == 100);
  po.batch_size = 0;
  REQUIRE_THROWS_WITH(Prefetcher(split, po, pageable_ring(2, 100)),
                      Catch::Contains("batch size must be positive"));
}
