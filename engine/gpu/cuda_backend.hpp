// engine/gpu/cuda_backend.hpp: the CUDA engine as a TrainingBackend. Parameters, gradients and
// optimiser state live in single device buffers laid out by the ParamTable; every activation is
// allocated up front for the largest batch; batches arrive in pinned memory and are copied on a
// stream of their own, ordered with the compute stream by events; after warm-up the whole training
// step (forward, loss, backward, optimiser) is captured as a CUDA graph and replayed.
#pragma once

#include <memory>
#include <string_view>

#include "engine/train/cpu_backend.hpp"

namespace octa {

// Which convolution implementation the GPU engine uses (--conv):
//   kFused      "fused":      octa's own kernels; the stages with Cin >= 8 (conv2 of both models)
//                             on the tensor cores in 3xTF32 (kernels/conv3x3_tc.hpp), conv1 on the
//                             CUDA cores (kernels/conv3x3.hpp)
//   kFusedFp32  "fused-fp32": octa's own kernels, every stage on the CUDA cores in FP32
//   kCudnn      "cudnn":      cuDNN's convolutions (engine/gpu/cudnn_conv.hpp)
enum class ConvPath { kFused, kFusedFp32, kCudnn };
inline constexpr ConvPath kConvPaths[] = {ConvPath::kFused, ConvPath::kFusedFp32, ConvPath::kCudnn};
ConvPath parse_conv_path(std::string_view name);  // the names above; errors name --conv
const char* conv_path_name(ConvPath path);

struct CudaBackendOptions {
  ConvPath conv = ConvPath::kFused;
  bool use_graph = true;  // capture the step as a CUDA graph after warm-up
  int device = 0;
  // Time every phase of every training step with CUDA events (TrainingBackend::phase_times).
  // Steps then run eagerly, one at a time (no graph, no overlap): for profiling, not for speed.
  bool time_phases = false;
  // Model B on octa's kernels (fused, fused-fp32): BatchNorm fused with the convolution before it
  // and the ReLU and pool after it (kernels/batchnorm_fused.hpp; in evaluation folded into the
  // convolution's weights). false: the separate BatchNorm and pool kernels, for comparison. The
  // cudnn path always runs them separately.
  bool fuse_batchnorm = true;
};

// Throws octa::Error (CudaError) with what the run needed when device memory runs out.
std::unique_ptr<TrainingBackend> make_cuda_backend(const BackendConfig& config,
                                                   const CudaBackendOptions& options);

}  // namespace octa
