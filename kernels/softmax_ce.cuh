// kernels/softmax_ce.cuh: softmax cross-entropy for one row of logits, device side, in double:
// the stable arrangement of cpu::softmax_cross_entropy (engine/cpu/ops.cpp): the first maximum a,
// rest = sum of exp(z[c] - z[a]) over c != a, log s = log1p(rest), -log p[c] = (z[a] - z[c]) +
// log s, and p[y] - 1 = -rest / s where y is the maximum. Used by the fused multi-class training
// head (logit_head.cu). Included by .cu files only.
#pragma once

namespace octa::gpu {

// The class index a target holds, or -1 when it is none (not an integer in [0, C)); the kernel
// turns that into a NaN loss, as it cannot throw.
__device__ __forceinline__ int softmax_ce_class(float target, int C) {
  const bool ok = target >= 0.0f && target < static_cast<float>(C) && target == floorf(target);
  return ok ? static_cast<int>(target) : -1;
}

// The weight of class c: 1 without class weights.
__device__ __forceinline__ double softmax_ce_weight(const float* class_weight, int c) {
  return class_weight != nullptr ? static_cast<double>(class_weight[c]) : 1.0;
}

struct SoftmaxRow {
  int argmax;    // the first maximum (a NaN wins, so that it reaches the loss)
  double max;    // z[argmax]
  double rest;   // sum of exp(z[c] - max) over c != argmax
  double log_s;  // log1p(rest): log of the softmax's denominator after subtracting max
};

__device__ __forceinline__ SoftmaxRow softmax_row(const float* z, int C) {
  SoftmaxRow r{0, static_cast<double>(z[0]), 0.0, 0.0};
  for (int c = 1; c < C; ++c) {
    const double v = static_cast<double>(z[c]);
    if (!(v <= r.max) && r.max == r.max) {
      r.argmax = c;
      r.max = v;
    }
  }
  for (int c = 0; c < C; ++c) {
    if (c != r.argmax) r.rest += exp(static_cast<double>(z[c]) - r.max);
  }
  r.log_s = log1p(r.rest);
  return r;
}

// This row's term of the loss's numerator: (1 - eps) w[y] (-log p[y]) + (eps / C) sum_c w[c]
// (-log p[c]). The mean divides the batch's sum of these by sum_n w[y_n].
__device__ __forceinline__ double softmax_ce_row_loss(const float* z, const SoftmaxRow& r, int y,
                                                      int C, const float* class_weight,
                                                      double eps) {
  double loss = (1.0 - eps) * softmax_ce_weight(class_weight, y) *
                ((r.max - static_cast<double>(z[y])) + r.log_s);
  if (eps > 0.0) {
    double smooth = 0.0;
    for (int c = 0; c < C; ++c) {
      smooth +=
          softmax_ce_weight(class_weight, c) * ((r.max - static_cast<double>(z[c])) + r.log_s);
    }
    loss += eps / static_cast<double>(C) * smooth;
  }
  return loss;
}

// d(row loss)/dz[j], before the division by sum_n w[y_n]: (1 - eps) w[y] (p[j] - [j == y]) +
// (eps / C) (sum_c w[c] p[j] - w[j]). weight_total: sum_c w[c].
__device__ __forceinline__ double softmax_ce_row_grad(const float* z, const SoftmaxRow& r, int y,
                                                      int j, int C, const float* class_weight,
                                                      double eps, double weight_total) {
  const double s = 1.0 + r.rest;
  const double p = j == r.argmax ? 1.0 / s : exp(static_cast<double>(z[j]) - r.max) / s;
  const double onehot_term = j != y ? p : (y == r.argmax ? -r.rest / s : p - 1.0);
  return (1.0 - eps) * softmax_ce_weight(class_weight, y) * onehot_term +
         eps / static_cast<double>(C) * (weight_total * p - softmax_ce_weight(class_weight, j));
}

}  // namespace octa::gpu
