// kernels/optimizer.cu: the fused Adam and SGD updates over the flat parameter buffer
// (kernels/optimizer.hpp), with the step counter in device memory so a CUDA graph can replay them.
//
// Each update is two launches on one stream: the update kernel, which reads t = *step + 1 and has
// one thread per block derive the bias corrections from it (in double, into shared memory), then a
// one-thread kernel that stores *step = t. No global scratch, so two optimisers with their own
// counters never interfere, and nothing is allocated (graph-capture friendly). With a device lr
// (AdamParams::device_lr) the same thread reads it; SGD's threads each read it and round it to
// float, as the host rounds a host lr.
//
// The per-element arithmetic is octa::adam_update's / octa::sgd_update's, operation for operation,
// with explicitly rounded intrinsics: nvcc would otherwise contract a * b + c into one FMA, which
// the CPU reference (g++, ISO C++, no contraction) never does.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "engine/core/error.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/nvtx.hpp"
#include "kernels/launch_checks.hpp"
#include "kernels/optimizer.hpp"

namespace octa::gpu {

namespace {

using cuda::NvtxRange;

constexpr unsigned int kThreads = 256;

bool aligned16(const void* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

// Hyperparameters as the CPU reference rounds them: derived constants (1 - beta1, ...) computed in
// double and only then rounded to float; lr and the betas stay double for the bias corrections.
struct AdamArgs {
  double lr, beta1, beta2;
  float one_minus_b1, beta2f, one_minus_b2, eps, wd;
  const double* device_lr;  // null: lr
};

struct SgdArgs {
  float lr, wd, mu, one_minus_damp;
  bool nesterov;
  const double* device_lr;  // null: lr
};

// Splits n elements into n_vec float4 groups plus a scalar tail, or all scalar when a pointer is
// not 16-byte aligned (a caller's offset into a larger buffer).
struct VecSplit {
  std::size_t n_vec, n;
  std::size_t items() const { return std::max(n_vec, n - 4 * n_vec); }
};

__device__ __forceinline__ void adam_one(float& p, float grad, float& m, float& v,
                                         const AdamArgs& a, float step_size, float bc2_sqrt) {
  float g = grad;
  if (a.wd != 0.0f) g = __fadd_rn(g, __fmul_rn(a.wd, p));
  m = __fadd_rn(m, __fmul_rn(a.one_minus_b1, __fsub_rn(g, m)));  // torch.lerp for weight < 0.5
  v = __fadd_rn(__fmul_rn(a.beta2f, v), __fmul_rn(__fmul_rn(a.one_minus_b2, g), g));
  const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), bc2_sqrt), a.eps);
  p = __fsub_rn(p, __fmul_rn(step_size, __fdiv_rn(m, denom)));
}

__device__ __forceinline__ void sgd_one(float& p, float grad, float* buf, const SgdArgs& a,
                                        float lr, bool first) {
  float g = grad;
  if (a.wd != 0.0f) g = __fadd_rn(g, __fmul_rn(a.wd, p));
  if (a.mu != 0.0f) {
    *buf = first ? g : __fadd_rn(__fmul_rn(a.mu, *buf), __fmul_rn(a.one_minus_damp, g));
    g = a.nesterov ? __fadd_rn(g, __fmul_rn(a.mu, *buf)) : *buf;
  }
  p = __fsub_rn(p, __fmul_rn(lr, g));
}

__global__ void adam_update_kernel(float* params, const float* grads, float* m, float* v,
                                   VecSplit split, AdamArgs a, const std::int64_t* step) {
  __shared__ float s_step_size, s_bc2_sqrt;
  if (threadIdx.x == 0) {
    // As octa::adam_update: bias corrections in double, rounded to float once.
    const double t = static_cast<double>(*step + 1);
    const double bias_correction1 = 1.0 - pow(a.beta1, t);
    const double bias_correction2 = 1.0 - pow(a.beta2, t);
    const double lr = a.device_lr != nullptr ? *a.device_lr : a.lr;
    s_step_size = static_cast<float>(lr / bias_correction1);
    s_bc2_sqrt = static_cast<float>(sqrt(bias_correction2));
  }
  __syncthreads();
  const float step_size = s_step_size, bc2_sqrt = s_bc2_sqrt;
  const std::size_t first = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;

  auto* p4 = reinterpret_cast<float4*>(params);
  const auto* g4 = reinterpret_cast<const float4*>(grads);
  auto* m4 = reinterpret_cast<float4*>(m);
  auto* v4 = reinterpret_cast<float4*>(v);
  for (std::size_t k = first; k < split.n_vec; k += stride) {
    float4 pk = p4[k], mk = m4[k], vk = v4[k];
    const float4 gk = g4[k];
    adam_one(pk.x, gk.x, mk.x, vk.x, a, step_size, bc2_sqrt);
    adam_one(pk.y, gk.y, mk.y, vk.y, a, step_size, bc2_sqrt);
    adam_one(pk.z, gk.z, mk.z, vk.z, a, step_size, bc2_sqrt);
    adam_one(pk.w, gk.w, mk.w, vk.w, a, step_size, bc2_sqrt);
    p4[k] = pk;
    m4[k] = mk;
    v4[k] = vk;
  }
  for (std::size_t i = 4 * split.n_vec + first; i < split.n; i += stride) {
    adam_one(params[i], grads[i], m[i], v[i], a, step_size, bc2_sqrt);
  }
}

__global__ void sgd_update_kernel(float* params, const float* grads, float* momentum_buf,
                                  VecSplit split, SgdArgs a, const std::int64_t* step) {
  // The momentum buffer is g itself at the first update (t = 1).
  const bool first_update = *step + 1 == 1;
  const float lr = a.device_lr != nullptr ? static_cast<float>(*a.device_lr) : a.lr;
  const std::size_t first = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;

  auto* p4 = reinterpret_cast<float4*>(params);
  const auto* g4 = reinterpret_cast<const float4*>(grads);
  auto* b4 = reinterpret_cast<float4*>(momentum_buf);
  const bool has_buf = a.mu != 0.0f;
  for (std::size_t k = first; k < split.n_vec; k += stride) {
    float4 pk = p4[k];
    const float4 gk = g4[k];
    float4 bk = has_buf ? b4[k] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    sgd_one(pk.x, gk.x, &bk.x, a, lr, first_update);
    sgd_one(pk.y, gk.y, &bk.y, a, lr, first_update);
    sgd_one(pk.z, gk.z, &bk.z, a, lr, first_update);
    sgd_one(pk.w, gk.w, &bk.w, a, lr, first_update);
    p4[k] = pk;
    if (has_buf) b4[k] = bk;
  }
  for (std::size_t i = 4 * split.n_vec + first; i < split.n; i += stride) {
    float unused = 0.0f;
    sgd_one(params[i], grads[i], has_buf ? &momentum_buf[i] : &unused, a, lr, first_update);
  }
}

// Runs after the update on the same stream, so the update saw the old value.
__global__ void increment_step_kernel(std::int64_t* step) {
  *step += 1;
}

VecSplit split_for(std::size_t n, bool all_aligned) {
  return VecSplit{all_aligned ? n / 4 : 0, n};
}

}  // namespace

void adam_update(float* params, const float* grads, float* m, float* v, std::size_t n,
                 const AdamParams& hp, std::int64_t* step, cudaStream_t stream) {
  const char* op = "adam_update";
  NvtxRange range(op);
  require(n > 0, op, "n = 0: the parameter buffer is empty");
  OCTA_CHECK(std::isfinite(hp.lr) && hp.lr > 0.0, "{}: lr = {} must be positive", op, hp.lr);
  OCTA_CHECK(hp.beta1 >= 0.0 && hp.beta1 < 1.0, "{}: beta1 = {} must be in [0, 1)", op, hp.beta1);
  OCTA_CHECK(hp.beta2 >= 0.0 && hp.beta2 < 1.0, "{}: beta2 = {} must be in [0, 1)", op, hp.beta2);
  OCTA_CHECK(hp.eps > 0.0, "{}: eps = {} must be positive", op, hp.eps);
  OCTA_CHECK(hp.weight_decay >= 0.0, "{}: weight_decay = {} must be non-negative", op,
             hp.weight_decay);
  require_pointer(op, "params", params);
  require_pointer(op, "grads", grads);
  require_pointer(op, "m", m);
  require_pointer(op, "v", v);
  require_pointer(op, "step (the device step counter)", step);

  const AdamArgs a{hp.lr,
                   hp.beta1,
                   hp.beta2,
                   static_cast<float>(1.0 - hp.beta1),
                   static_cast<float>(hp.beta2),
                   static_cast<float>(1.0 - hp.beta2),
                   static_cast<float>(hp.eps),
                   static_cast<float>(hp.weight_decay),
                   hp.device_lr};
  const VecSplit split =
      split_for(n, aligned16(params) && aligned16(grads) && aligned16(m) && aligned16(v));
  adam_update_kernel<<<grid_stride_blocks(split.items(), kThreads), kThreads, 0, stream>>>(
      params, grads, m, v, split, a, step);
  OCTA_CUDA_CHECK_LAUNCH();
  increment_step_kernel<<<1, 1, 0, stream>>>(step);
  OCTA_CUDA_CHECK_LAUNCH();
}

void sgd_update(float* params, const float* grads, float* momentum_buf, std::size_t n,
                const SgdParams& hp, std::int64_t* step, cudaStream_t stream) {
  const char* op = "sgd_update";
  NvtxRange range(op);
  require(n > 0, op, "n = 0: the parameter buffer is empty");
  OCTA_CHECK(std::isfinite(hp.lr) && hp.lr > 0.0, "{}: lr = {} must be positive", op, hp.lr);
  OCTA_CHECK(hp.momentum >= 0.0, "{}: momentum = {} must be non-negative", op, hp.momentum);
  OCTA_CHECK(hp.dampening >= 0.0 && hp.dampening <= 1.0, "{}: dampening = {} must be in [0, 1]", op,
             hp.dampening);
  OCTA_CHECK(hp.weight_decay >= 0.0, "{}: weight_decay = {} must be non-negative", op,
             hp.weight_decay);
  require(!hp.nesterov || (hp.momentum > 0.0 && hp.dampening == 0.0), op,
          "nesterov needs momentum > 0 and dampening 0 (as in PyTorch)");
  require_pointer(op, "params", params);
  require_pointer(op, "grads", grads);
  require_pointer(op, "step (the device step counter)", step);

  const SgdArgs a{static_cast<float>(hp.lr),
                  static_cast<float>(hp.weight_decay),
                  static_cast<float>(hp.momentum),
                  static_cast<float>(1.0 - hp.dampening),
                  hp.nesterov,
                  hp.device_lr};
  const bool has_buf = a.mu != 0.0f;
  if (has_buf) require_pointer(op, "momentum_buf (momentum > 0)", momentum_buf);
  const VecSplit split =
      split_for(n, aligned16(params) && aligned16(grads) && (!has_buf || aligned16(momentum_buf)));
  sgd_update_kernel<<<grid_stride_blocks(split.items(), kThreads), kThreads, 0, stream>>>(
      params, grads, momentum_buf, split, a, step);
  OCTA_CUDA_CHECK_LAUNCH();
  increment_step_kernel<<<1, 1, 0, stream>>>(step);
  OCTA_CUDA_CHECK_LAUNCH();
}

}  // namespace octa::gpu
