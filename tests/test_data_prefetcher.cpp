// tests/test_data_prefetcher.cpp: the loader threads (engine/data/prefetcher.hpp): the same batches
// in the same order as BatchLoader across epochs, with one thread or several, never more than the
// ring ahead, every refill behind the slot's wait_reusable(), errors surfaced in the consumer, and
// a clean stop mid-run.
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

// A slot that counts how often a thread waited on it (in a counter shared by the ring), and fails
// on its fail_on_use-th wait (0-based): slot j of a ring of R holds batches j, j + R, ..., so that
// is the batch j + fail_on_use * R, whichever thread fills it.
class ProbeBatch final : public HostBatch {
 public:
  ProbeBatch(int capacity, std::atomic<int>* waits, int fail_on_use = -1)
      : HostBatch(capacity, kFloats),
        images_(static_cast<std::size_t>(capacity) * kFloats),
        targets_(static_cast<std::size_t>(capacity)),
        waits_(waits),
        fail_on_use_(fail_on_use) {}
  float* images() override { return images_.data(); }
  float* targets() override { return targets_.data(); }
  void wait_reusable() override {
    waits_->fetch_add(1);
    if (uses_++ == fail_on_use_) throw std::runtime_error("device copy failed (injected)");
  }

 private:
  std::vector<float> images_, targets_;
  std::atomic<int>* waits_;
  int fail_on_use_;
  int uses_ = 0;  // only the thread filling this slot's current batch touches it
};

std::vector<std::unique_ptr<HostBatch>> pageable_ring(int slots, int capacity) {
  std::vector<std::unique_ptr<HostBatch>> ring;
  for (int i = 0; i < slots; ++i)
    ring.push_back(std::make_unique<PageableHostBatch>(capacity, kFloats));
  return ring;
}

// fail_slot fails on its fail_on_use-th wait; the other slots never fail.
std::vector<std::unique_ptr<HostBatch>> probe_ring(int slots, int capacity, std::atomic<int>* waits,
                                                   int fail_slot = -1, int fail_on_use = -1) {
  std::vector<std::unique_ptr<HostBatch>> ring;
  for (int i = 0; i < slots; ++i) {
    ring.push_back(
        std::make_unique<ProbeBatch>(capacity, waits, i == fail_slot ? fail_on_use : -1));
  }
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

// The prefetcher's item is batch b of `epoch` as the loader fills it.
void require_batch(const Prefetcher::Item& item, octa::data::BatchLoader& loader,
                   std::uint64_t epoch, std::size_t b) {
  std::vector<float> images(64 * kFloats), targets(64);
  loader.start_epoch(epoch);
  const int n = loader.fill(b, images.data(), targets.data(), nullptr);
  REQUIRE(item.epoch == epoch);
  REQUIRE(item.index == b);
  REQUIRE(item.n == n);
  REQUIRE(std::memcmp(item.batch->images(), images.data(), n * kFloats * sizeof(float)) == 0);
  REQUIRE(std::memcmp(item.batch->targets(), targets.data(), n * sizeof(float)) == 0);
}

}  // namespace

TEST_CASE("prefetcher: the same batches in the same order as BatchLoader, across epochs",
          "[data]") {
  const auto split = octa::test::synthetic_split(203, 7);  // 203 = 3 * 64 + 11: a partial batch
  const int slots = GENERATE(1, 2, 4);
  const int threads = GENERATE(1, 3);
  const bool drop_last = GENERATE(false, true);
  PrefetchOptions po;
  po.threads = threads;
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
  for (std::uint64_t epoch = 2; epoch < 5; ++epoch) {
    for (std::size_t b = 0; b < loader.num_batches(); ++b)
      require_batch(pf.next(), loader, epoch, b);
  }
  REQUIRE_THROWS_WITH(pf.next(), Catch::Contains("all") && Catch::Contains("were taken"));
}

TEST_CASE("prefetcher: runs ahead by the ring and no further, waiting on each slot first",
          "[data]") {
  const auto split = octa::test::synthetic_split(640, 1);  // 10 batches
  std::atomic<int> waits{0};
  PrefetchOptions po;
  po.batch_size = 64;
  po.threads = GENERATE(1, 2);
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
  // Slot 1's third use is batch 1 + 2 * 2 = 5.
  Prefetcher pf(split, po, probe_ring(2, 64, &waits, /*fail_slot=*/1, /*fail_on_use=*/2));
  for (int k = 0; k < 5; ++k) REQUIRE(pf.next().index == static_cast<std::size_t>(k));
  REQUIRE_THROWS_WITH(pf.next(), Catch::Contains("device copy failed (injected)"));
}

TEST_CASE("prefetcher: with several threads, an error still surfaces, after in-order batches",
          "[data]") {
  const auto split = octa::test::synthetic_split(64 * 40, 1);
  std::atomic<int> waits{0};
  PrefetchOptions po;
  po.batch_size = 64;
  po.threads = 3;
  // Slot 1's third use is batch 1 + 2 * 6 = 13, filled by thread 13 % 3 = 1; the other threads
  // go on filling later batches, which must not be handed out past the failed one.
  Prefetcher pf(split, po, probe_ring(6, 64, &waits, /*fail_slot=*/1, /*fail_on_use=*/2));
  std::size_t expected = 0;
  try {
    for (; expected < 40; ++expected) {
      const Prefetcher::Item item = pf.next();  // throws the thread's error, not a test failure
      REQUIRE(item.index == expected);
    }
    FAIL("the injected error never surfaced");
  } catch (const std::runtime_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("device copy failed (injected)"));
  }
  CHECK(expected == 13);
}

TEST_CASE("prefetcher: stops cleanly when dropped mid-run", "[data]") {
  const auto split = octa::test::synthetic_split(6400, 2);
  PrefetchOptions po;
  po.batch_size = 64;
  po.last_epoch = 50;
  po.threads = GENERATE(1, 4);
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
  po.batch_size = 10;
  po.threads = 0;
  REQUIRE_THROWS_WITH(Prefetcher(split, po, pageable_ring(2, 100)),
                      Catch::Contains("0 loader threads"));
}

TEST_CASE("prefetcher: first_batch starts a resumed run mid-epoch, at exactly that batch",
          "[data][resume]") {
  const auto split = octa::test::synthetic_split(203, 8);  // 4 batches of 64 per epoch
  const int threads = GENERATE(1, 2);
  PrefetchOptions po;
  po.threads = threads;
  po.batch_size = 64;
  po.seed = 5;
  po.first_epoch = 1;
  po.last_epoch = 3;
  po.first_batch = 3;
  Prefetcher pf(split, po, pageable_ring(4, 64));
  REQUIRE(pf.total_batches() == 2 * 4 - 3);
  octa::data::BatchLoader loader(split, 64, /*shuffle=*/true, false, 5, 8);
  for (const auto& [epoch, b] :
       {std::pair<std::uint64_t, std::size_t>{1, 3}, {2, 0}, {2, 1}, {2, 2}, {2, 3}}) {
    require_batch(pf.next(), loader, epoch, b);
  }
  po.first_batch = 4;  // past the epoch's last batch
  CHECK_THROWS_WITH(Prefetcher(split, po, pageable_ring(4, 64)), Catch::Contains("first batch 4"));
}
