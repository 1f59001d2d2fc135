// tests/test_memory_check.cpp: the memory a batch size implies (engine/train/memory_check.hpp) is
// what the CPU model really allocates, and an impossible batch is refused naming its flag.
#include <catch2/catch.hpp>

#include <cstdint>

#include "engine/cpu_fast/fast_model.hpp"
#include "engine/model/cpu_model.hpp"
#include "engine/train/memory_check.hpp"
#include "tests/support/alloc_watch.hpp"

using octa::Arch;
using octa::ParamTable;

TEST_CASE("memory check: CpuModel::buffer_bytes is what its constructor allocates",
          "[cpu][limits]") {
  for (const Arch arch : {Arch::kA, Arch::kB}) {
    const ParamTable table = ParamTable::for_arch(arch);
    for (const int batch : {1, 7, 64}) {
      INFO("model " << octa::arch_name(arch) << ", batch " << batch);
      const auto stats =
          octa::test::watch_allocations([&] { octa::CpuModel<float> m(table, batch); });
      const std::uint64_t expect = octa::CpuModel<float>::buffer_bytes(table, batch);
      // The constructor also copies the ParamTable (names and shapes): a few KiB.
      CHECK(stats.total >= expect);
      CHECK(stats.total <= expect + 16 * 1024);
      CHECK(octa::CpuModel<double>::buffer_bytes(table, batch) > expect);
      // The fast CPU model (--device cpu): its own count, extrapolated from capacities 1 and 2.
      CHECK(octa::fast_model_bytes(table, batch) ==
            octa::cpu_fast::FastModel(table, batch).activation_bytes());
    }
  }
}

TEST_CASE("memory check: an impossible batch is refused with the flag and the memory it needs",
          "[cpu][limits]") {
  using octa::HostModel;
  const ParamTable a = ParamTable::for_arch(Arch::kA);
  const std::uint64_t per_image = octa::host_bytes_for_batch(a, 1, HostModel::kReference, 4);
  CHECK(octa::host_bytes_for_batch(a, 1000, HostModel::kReference, 4) == 1000 * per_image);
  CHECK(octa::host_bytes_for_batch(a, 1000, HostModel::kNone, 4) <
        octa::host_bytes_for_batch(a, 1000, HostModel::kFast, 4));
  CHECK(octa::host_bytes_for_batch(a, 1000, HostModel::kFast, 4) <
        octa::host_bytes_for_batch(a, 1000, HostModel::kReference, 4));
  CHECK_NOTHROW(octa::check_batch_memory("--batch-size", 64, a, HostModel::kFast, 4));
  CHECK_THROWS_WITH(
      octa::check_batch_memory("--batch-size", 2'000'000'000, a, HostModel::kReference, 4),
      Catch::Contains("--batch-size 2000000000: a batch this large needs about") &&
          Catch::Contains("988.7 TiB") && Catch::Contains("530.8 KiB per image") &&
          Catch::Contains("choose a smaller --batch-size"));
  CHECK_THROWS_WITH(
      octa::check_batch_memory("--test-batch-size", 1000, a, HostModel::kNone, 4, 1 << 20),
      Catch::Contains("--test-batch-size 1000") && Catch::Contains("1.0 MiB"));
  CHECK(octa::usable_host_memory() > (std::uint64_t{64} << 20));
  CHECK(octa::format_bytes(512) == "512 B");
  CHECK(octa::format_bytes(1536) == "1.5 KiB");
  CHECK(octa::format_bytes(std::uint64_t{3} << 40) == "3.0 TiB");
}
