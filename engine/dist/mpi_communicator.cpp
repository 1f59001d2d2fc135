// engine/dist/mpi_communicator.cpp: the Communicator over MPI (MPI_COMM_WORLD), compiled only in
// builds where CMake found MPI. Only the thread that made it calls MPI (MPI_THREAD_FUNNELED); every
// call's status is checked (errors return rather than abort, and throw octa::Error naming the
// call). The deterministic all-reduce is described in communicator.hpp.
#include <mpi.h>

#include <climits>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/dist/communicator.hpp"

namespace octa::dist {
namespace {

void check_mpi(int status, const char* call) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(status, text, &len);
  throw Error(fmt::format("{} failed: {}", call, std::string(text, static_cast<std::size_t>(len))));
}
#define OCTA_MPI_CHECK(call) check_mpi((call), #call)

int as_int(std::size_t n, const char* what) {
  OCTA_CHECK(n <= static_cast<std::size_t>(INT_MAX), "MPI: {} of {} exceeds MPI's int counts", what,
             n);
  return static_cast<int>(n);
}

template <class T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() {
  return MPI_FLOAT;
}
template <>
MPI_Datatype mpi_type<double>() {
  return MPI_DOUBLE;
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int initialized = 0;
    OCTA_MPI_CHECK(MPI_Initialized(&initialized));
    if (!initialized) {
      int provided = 0;
      OCTA_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
      owns_ = true;
    }
    OCTA_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    OCTA_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    OCTA_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    OCTA_MPI_CHECK(MPI_Get_library_version(version, &len));
    library_ = std::string(version, static_cast<std::size_t>(len));
    if (const auto comma = library_.find(','); comma != std::string::npos) library_.resize(comma);
  }
  ~MpiCommunicator() override {
    if (owns_) MPI_Finalize();
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string description() const override {
    return fmt::format("MPI, {} rank{} ({})", size_, size_ == 1 ? "" : "s", library_);
  }

  void allreduce_sum(float* data, std::size_t count) override { reduce(data, count); }
  void allreduce_sum(double* data, std::size_t count) override { reduce(data, count); }

  void allgatherv(const void* in, void* out, const std::vector<std::size_t>& counts) override {
    OCTA_CHECK(counts.size() == static_cast<std::size_t>(size_),
               "allgatherv: {} counts for {} ranks", counts.size(), size_);
    std::vector<int> c(counts.size()), displs(counts.size());
    std::size_t at = 0;
    for (std::size_t r = 0; r < counts.size(); ++r) {
      c[r] = as_int(counts[r], "an all-gather's piece");
      displs[r] = as_int(at, "an all-gather's total");
      at += counts[r];
    }
    OCTA_MPI_CHECK(MPI_Allgatherv(in, c[static_cast<std::size_t>(rank_)], MPI_BYTE, out, c.data(),
                                  displs.data(), MPI_BYTE, MPI_COMM_WORLD));
  }

  void broadcast(void* data, std::size_t bytes, int root) override {
    OCTA_CHECK(root >= 0 && root < size_, "broadcast: root {} of {} ranks", root, size_);
    OCTA_MPI_CHECK(MPI_Bcast(data, as_int(bytes, "a broadcast"), MPI_BYTE, root, MPI_COMM_WORLD));
  }

  void abort_all(int exit_code) override {
    if (size_ > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
  }

 private:
  // Reduce-scatter by MPI_Alltoallv (rank r gets every rank's piece r, share_of's split) and a sum
  // in rank order, then MPI_Allgatherv of the summed pieces into place.
  template <class T>
  void reduce(T* data, std::size_t count) {
    if (size_ == 1 || count == 0) return;
    const int n = as_int(count, "an all-reduce");
    const auto ranks = static_cast<std::size_t>(size_);
    const Share mine = share_of(n, rank_, size_);
    std::vector<int> send_counts(ranks), send_displs(ranks), recv_counts(ranks), recv_displs(ranks);
    for (std::size_t q = 0; q < ranks; ++q) {
      const Share piece = share_of(n, static_cast<int>(q), size_);
      send_counts[q] = piece.count();
      send_displs[q] = piece.begin;
      recv_counts[q] = mine.count();
      recv_displs[q] = static_cast<int>(q) * mine.count();
    }
    const auto m = static_cast<std::size_t>(mine.count());
    recv_.resize(ranks * m * sizeof(T));
    T* pieces = reinterpret_cast<T*>(recv_.data());
    OCTA_MPI_CHECK(MPI_Alltoallv(data, send_counts.data(), send_displs.data(), mpi_type<T>(),
                                 pieces, recv_counts.data(), recv_displs.data(), mpi_type<T>(),
                                 MPI_COMM_WORLD));
    T* out = data + mine.begin;
    for (std::size_t i = 0; i < m; ++i) out[i] = pieces[i];
    for (std::size_t q = 1; q < ranks; ++q) {
      const T* from = pieces + q * m;
      for (std::size_t i = 0; i < m; ++i) out[i] += from[i];
    }
    OCTA_MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, send_counts.data(),
                                  send_displs.data(), mpi_type<T>(), MPI_COMM_WORLD));
  }

  int rank_ = 0, size_ = 1;
  bool owns_ = false;
  std::string library_;
  std::vector<unsigned char> recv_;  // the received pieces, kept between calls
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() {
  return std::make_unique<MpiCommunicator>();
}

}  // namespace octa::dist
