// engine/gpu/nccl_gradients.hpp: the CUDA engine's data-parallel sums between GPUs, with NCCL (one
// GPU per rank): the communicator made from a unique id that rank 0 draws and the ranks' host
// communicator (MPI) broadcasts, the gradients' all-reduce on the engine's stream (inside the
// captured step, as NCCL allows), and rank 0's BatchNorm running statistics broadcast after the
// update; and --sync-bn's all-gathers of BatchNorm's per-channel figures. NCCL's ring and tree
// orders are fixed for a given number of ranks and topology, so the sum has the same bits on every
// rank and in every run there. In a build whose CUDA toolkit has no NCCL (nccl.h, libnccl.so) the
// constructor throws, saying so.
#pragma once

#include <cstddef>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "engine/train/backend.hpp"

struct ncclComm;  // nccl.h's ncclComm_t is a ncclComm*

namespace octa::gpu {

// Whether this build has NCCL.
bool nccl_built_in();

class NcclGradients {
 public:
  // Collective over the reducer's ranks: every rank makes one, on its own device (current).
  explicit NcclGradients(GradientReducer& reducer);
  ~NcclGradients();
  NcclGradients(const NcclGradients&) = delete;
  NcclGradients& operator=(const NcclGradients&) = delete;

  // grads: `count` device floats, the gradient of the mean loss over this rank's share; made the
  // gradient of the mean over the whole batch on every rank: scaled by the share's weight (cuBLAS
  // on `stream`), then summed by ncclAllReduce on `stream`.
  void reduce(float* grads, std::size_t count, cublasHandle_t cublas, cudaStream_t stream);
  // values: `count` device floats, made rank 0's (ncclBroadcast on `stream`).
  void broadcast_from_rank0(float* values, std::size_t count, cudaStream_t stream);
  // --sync-bn: gathered holds ranks() slots of `count` device doubles; this rank's slot (at
  // rank() * count) is sent, every other rank's slot received (ncclAllGather in place, on
  // `stream`), so every rank ends with all of them in rank order.
  void all_gather_in_place(double* gathered, std::size_t count, cudaStream_t stream);

 private:
  GradientReducer& reducer_;
  ncclComm* comm_ = nullptr;
};

}  // namespace octa::gpu
