// engine/dist/communicator.hpp: what data-parallel training needs from the processes it runs on:
// this process's rank among size() ranks, and a few collectives over host buffers. Two
// implementations: one process alone (a plain run: every collective is a copy or nothing), and MPI
// (mpi_communicator.cpp, in builds that found MPI, chosen when the program was started by mpirun).
//
// Determinism: allreduce_sum gives the same bits on every rank and in every run with the same
// ranks, whatever the timing: each element is summed in rank order (((r0 + r1) + r2) + ...). MPI's
// own MPI_Allreduce promises no order (the standard leaves it to the implementation, which may pick
// its algorithm by message size and timing), so the MPI implementation builds the sum from
// collectives that only move data: a reduce-scatter by MPI_Alltoallv (rank r receives every rank's
// piece r and sums it in rank order), then MPI_Allgatherv of the summed pieces. That moves
// 2 (N-1)/N of the buffer per rank, as a ring all-reduce does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace octa::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // e.g. "1 process" or "MPI, 3 ranks (Open MPI v4.1.4)"
  virtual std::string description() const = 0;

  // Element-wise sum over the ranks, in place, summed in rank order (see above).
  virtual void allreduce_sum(float* data, std::size_t count) = 0;
  virtual void allreduce_sum(double* data, std::size_t count) = 0;
  // Rank r's `counts[r]` bytes, concatenated in rank order into out (the sum of counts bytes);
  // `in` holds this rank's counts[rank()] bytes.
  virtual void allgatherv(const void* in, void* out, const std::vector<std::size_t>& counts) = 0;
  // root's `bytes` bytes into every rank's data.
  virtual void broadcast(void* data, std::size_t bytes, int root) = 0;
  // Ends every rank at once (MPI_Abort) after an error on this one, so that no rank waits forever
  // in a collective the failed one will never reach. The single process just returns.
  virtual void abort_all(int exit_code) = 0;
};

// One process alone: rank 0 of 1.
std::unique_ptr<Communicator> make_single_process_communicator();

// Whether this build has MPI (CMake found it), and whether this process was started by an MPI
// launcher (mpirun/mpiexec set OMPI_COMM_WORLD_SIZE or PMI_SIZE / PMIX_RANK).
bool mpi_built_in();
bool launched_by_mpi();

// The communicator for this process: MPI when launched by mpirun in a build with MPI (MPI_Init
// here, MPI_Finalize when the returned object is destroyed: keep it for the whole run), else the
// single process. Under mpirun in a build without MPI it throws octa::Error: N copies of a plain
// run would each train alone and overwrite each other's files.
std::unique_ptr<Communicator> make_communicator();

// Rank-order concatenation of one 64-bit value per rank.
std::vector<std::uint64_t> allgather_u64(Communicator& comm, std::uint64_t value);

// 64-bit FNV-1a of bytes: the parameter check's hash (not cryptographic; it tells replicas apart).
std::uint64_t fnv1a64(const void* data, std::size_t bytes,
                      std::uint64_t h = 14695981039346656037ull);

// The contiguous share [begin, end) of n items that rank r of `ranks` takes: rank r gets items
// floor(r n / ranks) .. floor((r+1) n / ranks) - 1, so the shares differ in size by at most one
// and follow each other in rank order.
struct Share {
  int begin = 0, end = 0;
  int count() const { return end - begin; }
};
Share share_of(int n, int rank, int ranks);

}  // namespace octa::dist
