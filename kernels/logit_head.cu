// kernels/logit_head.cu: the fused training head of kernels/logit_head.hpp: one block of 1024
// threads, four phases separated by __syncthreads, every reduction in a fixed order.
#include "kernels/logit_head.hpp"

#include <climits>
#include <cmath>

#include "engine/core/error.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/nvtx.hpp"
#include "kernels/bce.cuh"
#include "kernels/launch_checks.hpp"

namespace octa::gpu {

namespace {

using cuda::NvtxRange;

// As bce_with_logits's kernel (a power of two, for the tree): with the same threads and the same
// loop, the loss and its gradient come out with the same bits.
constexpr int kHeadThreads = 1024;
constexpr int kSegments = 8;                            // threads per logit's dot product
constexpr int kRowsPerPass = kHeadThreads / kSegments;  // logits per pass
constexpr int kColumns = 128;                           // fc2 weights per pass of the gradient
constexpr int kRowGroups = kHeadThreads / kColumns;     // rows split among this many threads

__global__ void __launch_bounds__(kHeadThreads)
    logit_head_train_kernel(LogitHeadOutputs out, LogitHeadInputs in, int N, int K,
                            float pos_weight, float dropout_scale) {
  __shared__ double loss_tree[kHeadThreads];
  __shared__ float partial[kHeadThreads];
  const int t = static_cast<int>(threadIdx.x);
  const std::size_t row_len = static_cast<std::size_t>(K);

  // 1. The logits. Thread (row, segment) sums x[row][k] * w[k] over its segment's k in order; a
  //    row's segments are then added in order, and the bias last.
  {
    const int seg = t % kSegments, row_in_pass = t / kSegments;
    const int seg_len = (K + kSegments - 1) / kSegments;
    const int k_begin = seg * seg_len;
    const int k_end = k_begin + seg_len < K ? k_begin + seg_len : K;
    for (int r0 = 0; r0 < N; r0 += kRowsPerPass) {
      const int r = r0 + row_in_pass;
      float s = 0.0f;
      if (r < N) {
        const float* xr = in.x + static_cast<std::size_t>(r) * row_len;
        for (int k = k_begin; k < k_end; ++k) s = fmaf(xr[k], in.weight[k], s);
      }
      partial[t] = s;
      __syncthreads();
      if (t < kRowsPerPass && r0 + t < N) {
        float z = 0.0f;
        for (int q = 0; q < kSegments; ++q) z += partial[t * kSegments + q];
        out.logits[r0 + t] = z + in.bias[0];
      }
      __syncthreads();  // the logits are visible to the whole block; partial may be reused
    }
  }

  // 2. The loss and dlogits: bce_with_logits's loop and tree, line for line.
  {
    const double pw = static_cast<double>(pos_weight), count = static_cast<double>(N);
    double sum = 0.0;
    for (std::size_t i = static_cast<std::size_t>(t); i < static_cast<std::size_t>(N);
         i += kHeadThreads) {
      const double z = static_cast<double>(out.logits[i]), y = static_cast<double>(in.targets[i]);
      sum += bce_loss(z, y, pw);
      out.dlogits[i] = static_cast<float>(bce_grad(z, y, pw) / count);
    }
    loss_tree[t] = sum;
    __syncthreads();
    for (int s = kHeadThreads / 2; s > 0; s >>= 1) {
      if (t < s) loss_tree[t] += loss_tree[t + s];
      __syncthreads();  // the last one also publishes dlogits to the whole block
    }
    if (t == 0) {
      const double mean = loss_tree[0] / count;
      *out.batch_loss = static_cast<float>(mean);
      *out.loss_sum += mean * count;
    }
  }

  // 3. fc2's gradients: dweight[k] = sum over rows of dlogits[i] * x[i][k], thread (k, group g)
  //    taking the rows g, g + kRowGroups, ... in order, the groups then added in order (consecutive
  //    threads read consecutive k of a row); dbias = the sum of dlogits in row order.
  for (int k0 = 0; k0 < K; k0 += kColumns) {
    const int k = k0 + t % kColumns, g = t / kColumns;
    float s = 0.0f;
    if (k < K) {
      for (int i = g; i < N; i += kRowGroups) {
        s = fmaf(out.dlogits[i], in.x[static_cast<std::size_t>(i) * row_len + k], s);
      }
    }
    partial[t] = s;
    __syncthreads();
    if (t < kColumns && k0 + t < K) {
      float d = 0.0f;
      for (int q = 0; q < kRowGroups; ++q) d += partial[q * kColumns + t];
      out.dweight[k0 + t] = d;
    }
    __syncthreads();  // partial is reused by the next pass
  }
  if (t == 0) {
    float d = 0.0f;
    for (int i = 0; i < N; ++i) d += out.dlogits[i];
    *out.dbias = d;
  }

  // 4. Back through fc2 (one product per element), the dropout (kept: times the scale) and the
  //    ReLU (where its output was positive), in the CPU reference's order of operations.
  const std::size_t total = static_cast<std::size_t>(N) * row_len;
  for (std::size_t e = static_cast<std::size_t>(t); e < total; e += kHeadThreads) {
    const std::size_t i = e / row_len, k = e % row_len;
    float v = out.dlogits[i] * in.weight[k];
    if (in.mask != nullptr) v = in.mask[e] != 0 ? v * dropout_scale : 0.0f;
    out.dhidden[e] = in.relu_out[e] > 0.0f ? v : 0.0f;
  }
}

}  // namespace

void logit_head_train(const LogitHeadOutputs& out, const LogitHeadInputs& in, int N, int K,
                      float pos_weight, cudaStream_t stream) {
  const char* op = "logit_head_train";
  require_positive(op, "N", N);
  require_positive(op, "K", K);
  OCTA_CHECK(static_cast<long long>(N) * K <= INT_MAX,
             "{}: N * K = {} is too large (at most {}): use a smaller batch", op,
             static_cast<long long>(N) * K, INT_MAX);
  OCTA_CHECK(std::isfinite(pos_weight), "{}: pos_weight = {} must be finite", op, pos_weight);
  require_pointer(op, "logits", out.logits);
  require_pointer(op, "dlogits", out.dlogits);
  require_pointer(op, "batch_loss", out.batch_loss);
  require_pointer(op, "loss_sum", out.loss_sum);
  require_pointer(op, "dweight", out.dweight);
  require_pointer(op, "dbias", out.dbias);
  require_pointer(op, "dhidden", out.dhidden);
  require_pointer(op, "x", in.x);
  require_pointer(op, "relu_out", in.relu_out);
  require_pointer(op, "weight", in.weight);
  require_pointer(op, "bias", in.bias);
  require_pointer(op, "targets", in.targets);
  float scale = 1.0f;
  if (in.mask != nullptr) {
    OCTA_CHECK(in.dropout_p >= 0.0f && in.dropout_p < 1.0f,
               "{}: drop probability p = {} must be in [0, 1)", op, in.dropout_p);
    scale = 1.0f / (1.0f - in.dropout_p);  // as cpu::dropout_backward (float arithmetic)
  }
  NvtxRange range(op);
  logit_head_train_kernel<<<1, kHeadThreads, 0, stream>>>(out, in, N, K, pos_weight, scale);
  OCTA_CUDA_CHECK_LAUNCH();
}

}  // namespace octa::gpu
