// engine/dist/communicator.cpp: the single-process communicator, the choice of communicator, and
// the helpers built on the interface (the 64-bit all-gather, the hash, a rank's share of a batch).
#include "engine/dist/communicator.hpp"

#include <cstdlib>
#include <cstring>

#include "engine/core/error.hpp"

namespace octa::dist {

#if OCTA_HAVE_MPI
std::unique_ptr<Communicator> make_mpi_communicator();  // mpi_communicator.cpp
#endif

namespace {

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string description() const override { return "1 process"; }
  void allreduce_sum(float*, std::size_t) override {}
  void allreduce_sum(double*, std::size_t) override {}
  void allgatherv(const void* in, void* out, const std::vector<std::size_t>& counts) override {
    OCTA_CHECK(counts.size() == 1, "allgatherv: {} counts for 1 rank", counts.size());
    if (counts[0] > 0) std::memmove(out, in, counts[0]);
  }
  void broadcast(void*, std::size_t, int root) override {
    OCTA_CHECK(root == 0, "broadcast: root {} of 1 rank", root);
  }
  void abort_all(int) override {}
};

}  // namespace

std::unique_ptr<Communicator> make_single_process_communicator() {
  return std::make_unique<SingleProcess>();
}

bool mpi_built_in() {
  return OCTA_HAVE_MPI != 0;
}

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"}) {
    if (std::getenv(v) != nullptr) return true;
  }
  return false;
}

std::unique_ptr<Communicator> make_communicator() {
  if (!launched_by_mpi()) return make_single_process_communicator();
#if OCTA_HAVE_MPI
  return make_mpi_communicator();
#else
  throw Error(
      "started by mpirun, but this build has no MPI (CMake found none: install libopenmpi-dev, "
      "scripts/setup.sh does, and rebuild); each rank would train alone");
#endif
}

std::vector<std::uint64_t> allgather_u64(Communicator& comm, std::uint64_t value) {
  std::vector<std::uint64_t> all(static_cast<std::size_t>(comm.size()));
  comm.allgatherv(&value, all.data(), std::vector<std::size_t>(all.size(), sizeof(std::uint64_t)));
  return all;
}

std::uint64_t fnv1a64(const void* data, std::size_t bytes, std::uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

Share share_of(int n, int rank, int ranks) {
  OCTA_CHECK(ranks > 0 && rank >= 0 && rank < ranks && n >= 0, "share_of: rank {} of {}, n {}",
             rank, ranks, n);
  const auto at = [&](int r) { return static_cast<int>(static_cast<std::int64_t>(r) * n / ranks); };
  return {at(rank), at(rank + 1)};
}

}  // namespace octa::dist
