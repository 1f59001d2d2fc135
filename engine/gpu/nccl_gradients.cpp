// engine/gpu/nccl_gradients.cpp: NCCL's communicator, all-reduce and broadcast for the CUDA
// engine's data-parallel steps (nccl_gradients.hpp), and --sync-bn's all-gathers. Every NCCL call's
// status is checked.
#include "engine/gpu/nccl_gradients.hpp"

#include <cstdint>

#include <fmt/format.h>

#include "engine/core/error.hpp"
#include "engine/cuda/check.hpp"

#if OCTA_HAVE_NCCL
#include <nccl.h>
#endif

namespace octa::gpu {

bool nccl_built_in() {
  return OCTA_HAVE_NCCL != 0;
}

#if OCTA_HAVE_NCCL
namespace {

void check_nccl(ncclResult_t r, const char* call) {
  if (r == ncclSuccess) return;
  throw Error(
      fmt::format("{} failed: {} ({})", call, ncclGetErrorString(r), ncclGetLastError(nullptr)));
}
#define OCTA_NCCL_CHECK(call) check_nccl((call), #call)

}  // namespace

NcclGradients::NcclGradients(GradientReducer& reducer) : reducer_(reducer) {
  ncclUniqueId id{};
  if (reducer_.rank() == 0) OCTA_NCCL_CHECK(ncclGetUniqueId(&id));
  reducer_.broadcast_from_rank0(&id, sizeof id);
  OCTA_NCCL_CHECK(ncclCommInitRank(&comm_, reducer_.ranks(), id, reducer_.rank()));
}

NcclGradients::~NcclGradients() {
  if (comm_ != nullptr) ncclCommDestroy(comm_);
}

void NcclGradients::reduce(float* grads, std::size_t count, cublasHandle_t cublas,
                           cudaStream_t stream) {
  const float weight = reducer_.share_weight();
  if (weight != 1.0f) {
    OCTA_CHECK(count <= static_cast<std::size_t>(INT32_MAX), "NCCL reduce: {} gradients", count);
    OCTA_CUBLAS_CHECK(cublasSetStream(cublas, stream));
    OCTA_CUBLAS_CHECK(cublasSscal(cublas, static_cast<int>(count), &weight, grads, 1));
  }
  OCTA_NCCL_CHECK(ncclAllReduce(grads, grads, count, ncclFloat, ncclSum, comm_, stream));
}

void NcclGradients::broadcast_from_rank0(float* values, std::size_t count, cudaStream_t stream) {
  OCTA_NCCL_CHECK(ncclBroadcast(values, values, count, ncclFloat, 0, comm_, stream));
}

void NcclGradients::all_gather_in_place(double* gathered, std::size_t count, cudaStream_t stream) {
  const double* mine = gathered + static_cast<std::size_t>(reducer_.rank()) * count;
  OCTA_NCCL_CHECK(ncclAllGather(mine, gathered, count, ncclDouble, comm_, stream));
}

#else

NcclGradients::NcclGradients(GradientReducer& reducer) : reducer_(reducer) {
  throw Error(
      "data-parallel training on the GPU needs NCCL, and this build found none (nccl.h and "
      "libnccl.so in the CUDA toolkit); train with --device cpu under mpirun");
}
NcclGradients::~NcclGradients() = default;
void NcclGradients::reduce(float*, std::size_t, cublasHandle_t, cudaStream_t) {}
void NcclGradients::broadcast_from_rank0(float*, std::size_t, cudaStream_t) {}
void NcclGradients::all_gather_in_place(double*, std::size_t, cudaStream_t) {}

#endif

}  // namespace octa::gpu
