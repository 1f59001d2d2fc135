// tests/emulation/emul.hpp: the runtime of octa's CUDA kernel emulator, which runs the real kernels
// of kernels/*.cu on the CPU so that tests can check them against the CPU reference on machines
// without a GPU (every development and CI machine so far).
//
// How it fits together. tests/emulation/rewrite_cu.py turns each kernels/<name>.cu into host C++
// at build time (emulation/<name>.cu.cpp in the build tree, #line-mapped back to the .cu):
//   k<<<grid, block, smem, stream>>>(args)   ->  ::emul::launch(site, Cfg(grid, ...), k, args)
//   __shared__ T a[N];                       ->  auto& a = ::emul::shared<T[N]>(id, align);
//   threadIdx, blockIdx, blockDim, gridDim   ->  the calling CUDA thread's context (::emul::tl)
//   __syncthreads()                          ->  ::emul::syncthreads(file, line)
//   cudaGetLastError(), cudaMemsetAsync(...) ->  ::emul::cudaGetLastError(), ... (below)
// and emul_cuda.hpp supplies the rest of the CUDA dialect (keywords, intrinsics, atomics) and
// octa's engine/cuda/check.hpp and nvtx.hpp without libcudart. This file is the runtime: plain
// C++20, includable from tests (which use the options and launch records below).
//
// The execution model. A launch runs its grid's blocks one after another (or `blocks_in_flight`
// at a time) in a chosen order: forward, reverse or shuffled, so that a kernel whose result
// depends on the order of its blocks is caught. Every CUDA thread of a block is a real std::thread
// (from a persistent pool), so __syncthreads is a real barrier and ThreadSanitizer sees the real
// concurrency of a block (and of blocks in flight together).
//
// What it checks, beyond the numbers a test compares:
//   - __syncthreads reached by only part of a block, or at different __syncthreads calls: reported
//     as a divergent barrier (the launch throws KernelFault), never a hang. A block that makes no
//     progress at all for OCTA_EMUL_WATCHDOG_S seconds (default 120: an endless loop) aborts the
//     process with the kernel's name;
//   - shared memory is fresh for every block and poisoned with 0xFF bytes (NaN in every float and
//     double), so a read before a write, or of another block's data, shows up as NaN. Each
//     variable sits at exactly its declared alignment and no more (a float array on 4 bytes but
//     not 8), so a float4 access to an array declared without __align__(16) is misaligned, which
//     UBSan reports;
//   - the launch configuration: grid and block limits as on the GPU (an invalid one sets the
//     sticky error that cudaGetLastError returns, as CUDA does), __launch_bounds__, and 48 KiB of
//     static plus dynamic shared memory per block;
//   - every launch must be followed by cudaGetLastError() (octa's OCTA_CUDA_CHECK_LAUNCH):
//     unchecked_launches() lists those that were not;
//   - an exception in any CUDA thread (a failed check of this emulator, for instance) fails the
//     launch cleanly: the other threads of the block are released from their barriers.
// A fault inside a kernel makes the launch throw KernelFault at once (on a GPU it would surface
// asynchronously), naming the kernel, the .cu line of the launch and the block.
//
// What it does not model: warps (the rewriter refuses __shfl*, __ballot*, warpSize and other
// warp-synchronous code rather than emulate it wrongly; the one warp-wide API it does model is
// WMMA's TF32 fragments, in emul_wmma.hpp, whose contract hides which lane holds what), memory
// spaces (device pointers are host pointers; the tests allocate "device" buffers of exactly the
// right size so that AddressSanitizer sees any access outside them), streams and asynchrony
// (everything runs in order, at once), nvcc's contraction of a * b + c into FMAs and its
// approximate math (see tests/CMakeLists.txt), occupancy and timing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <cuda_runtime_api.h>  // dim3, uint3, cudaError_t, cudaStream_t: types only, no libcudart

namespace emul {

// =============================================================================================
// Options, launch records, faults (what tests use)
// =============================================================================================

enum class BlockOrder { kForward, kReverse, kShuffled };

struct Options {
  BlockOrder order = BlockOrder::kForward;
  std::uint64_t shuffle_seed = 1;
  // Blocks run at the same time (each with its own threads and shared memory). 1 by default;
  // OCTA_EMUL_BLOCKS_IN_FLIGHT sets the default (tests/emulation/run_sanitized.sh thread uses 2, so
  // that ThreadSanitizer also sees races between blocks).
  unsigned blocks_in_flight = 1;
};

Options& options();

// Sets options for a scope and restores the previous ones after it.
class ScopedOptions {
 public:
  explicit ScopedOptions(const Options& o) : saved_(options()) { options() = o; }
  ~ScopedOptions() { options() = saved_; }
  ScopedOptions(const ScopedOptions&) = delete;
  ScopedOptions& operator=(const ScopedOptions&) = delete;

 private:
  Options saved_;
};

// One record per launch, in launch order, since the last reset().
struct LaunchRecord {
  std::string kernel;  // as written at the launch, e.g. "conv3x3_direct_kernel<kFwdBX, ...>"
  std::string range;   // the innermost NVTX range open at the launch (octa: the launcher's name)
  std::string site;    // file:line of the launch in the .cu
  dim3 grid, block;
  std::size_t dynamic_smem = 0;
  std::size_t static_smem = 0;  // the most static shared memory one block used
  bool ran = false;             // false: rejected configuration (sticky error set)
  bool checked = false;         // followed by cudaGetLastError / cudaPeekAtLastError
  unsigned long long blocks() const { return 1ull * grid.x * grid.y * grid.z; }
};

const std::vector<LaunchRecord>& launches();
// Launches never followed by cudaGetLastError() (or cudaPeekAtLastError()), described.
std::vector<std::string> unchecked_launches();
// Forgets the launch records and the sticky error.
void reset();

// A kernel failed while running (divergent __syncthreads, an exception in a CUDA thread, a
// violated launch bound, too much shared memory). Thrown by the launch.
class KernelFault : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// =============================================================================================
// What generated code calls
// =============================================================================================

struct Lane;  // a block in flight (emul.cpp)

// The calling CUDA thread's built-in variables.
struct Ctx {
  uint3 tid{0, 0, 0}, bid{0, 0, 0};
  dim3 bdim{1, 1, 1}, gdim{1, 1, 1};
  Lane* lane = nullptr;
};
inline thread_local Ctx tl;

// Where a launch is written: the kernel expression and the .cu file and line.
struct Site {
  const char* kernel;
  const char* file;
  int line;
};

// The <<<grid, block, dynamic shared bytes, stream>>> configuration. The stream is ignored:
// every launch runs to completion, in order.
struct Cfg {
  dim3 grid, block;
  std::size_t smem;
  Cfg(dim3 g, dim3 b, std::size_t s = 0, cudaStream_t = nullptr) : grid(g), block(b), smem(s) {}
};

void syncthreads(const char* file, int line);
void* shared_storage(std::uint64_t id, std::size_t bytes, std::size_t align);
void* dynamic_shared_storage();
void launch_bounds(long long max_threads, long long min_blocks = 0);

// A __shared__ variable of type T (an array type for arrays): one per block, poisoned.
template <class T>
T& shared(std::uint64_t id, std::size_t align) {
  using Elem = std::remove_all_extents_t<T>;
  const std::size_t a = align != 0 ? align : alignof(Elem);
  return *static_cast<T*>(shared_storage(id, sizeof(T), a));
}

// The block's dynamic shared memory (extern __shared__ T name[]), launch's smem bytes, poisoned.
template <class T>
T* dynamic_shared() {
  return static_cast<T*>(dynamic_shared_storage());
}

void run_grid(const Site& site, const Cfg& cfg, const std::function<void()>& body);

// k<<<cfg>>>(args...): the arguments are converted to the kernel's parameter types once, as CUDA
// does, and every CUDA thread calls the kernel with its own copy of them.
template <class... P, class... A>
void launch(const Site& site, const Cfg& cfg, void (*kernel)(P...), A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
  const auto params = std::tuple<std::decay_t<P>...>(std::forward<A>(args)...);
  run_grid(site, cfg, [&] { std::apply(kernel, params); });
}

// The __global__ kernels of each rewritten .cu (registered by the generated code at start-up).
struct KernelInfo {
  std::string file, name;
};
bool register_kernels(const char* file, std::initializer_list<const char*> names);
const std::vector<KernelInfo>& kernels();

// NVTX ranges, kept only to name the launcher in launch records.
void push_range(const char* name);
void pop_range();

// =============================================================================================
// The CUDA runtime calls a launcher may make (the rewriter maps cudaX( to ::emul::cudaX( and
// refuses any other). Device memory is host memory; everything is synchronous.
// =============================================================================================

cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* dst, int value, std::size_t bytes);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream = nullptr);
cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaDeviceSynchronize();

// The name of an error code and the emulator's explanation of the last one set.
const char* error_name(cudaError_t status);
const std::string& last_error_detail();

}  // namespace emul
