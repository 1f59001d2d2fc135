// kernels/maxpool_window.cuh: the 2x2 max-pool window rule, device side, shared by the pool kernels
// (pool.cu) and the convolution kernel that rebuilds a pool's gradient on the fly (conv3x3.cu), so
// both decide the window's winner identically. Included by .cu files only.
#pragma once

namespace octa::gpu {

// The first maximum of a 2x2 window: its index (0..3, row-major) and value, decided exactly as the
// CPU reference does: a later value wins only if strictly greater, and a NaN (the first one) wins,
// so a diverged value propagates as in PyTorch. Returning the value too keeps v in registers
// (indexing it with the runtime k would put it in local memory).
struct WindowMax {
  int k;
  float value;
};

__device__ __forceinline__ WindowMax window_argmax(const float (&v)[4]) {
  WindowMax best{0, v[0]};
  for (int k = 1; k < 4; ++k) {  // a constant trip count: unrolled by the compiler
    const bool take = !(v[k] <= best.value) && best.value == best.value;
    best.k = take ? k : best.k;
    best.value = take ? v[k] : best.value;
  }
  return best;
}

// The gradient that maxpool2x2_backward with relu_before = true writes at (y, x) of one plane:
// dpool's value of the window if (y, x) is the window's first maximum and that maximum (a ReLU
// output) is positive, else 0. act: the plane's H x W ReLU outputs (W even); dpool: its
// (H/2) x (W/2) pooled gradient.
__device__ __forceinline__ float maxpool2x2_relu_grad_at(const float* act, const float* dpool,
                                                         int y, int x, int W) {
  const int wy = y & ~1, wx = x & ~1;
  const float* top = act + wy * W + wx;
  const float v[4] = {top[0], top[1], top[W], top[W + 1]};
  const WindowMax best = window_argmax(v);
  if (best.k != (y - wy) * 2 + (x - wx) || !(best.value > 0.0f)) return 0.0f;
  return dpool[(wy / 2) * (W / 2) + wx / 2];
}

}  // namespace octa::gpu
