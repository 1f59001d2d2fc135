// kernels/logit_head.cu: the fused training heads of kernels/logit_head.hpp, binary (BCE) and
// multi-class (softmax cross-entropy): one block of 1024 threads each, phases separated by
// __syncthreads, every reduction in a fixed order.
#include "kernels/logit_head.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>

#include "engine/core/error.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/nvtx.hpp"
#include "kernels/bce.cuh"
#include "kernels/launch_checks.hpp"
#include "kernels/softmax_ce.cuh"

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

// The multi-class head. Where the binary head splits each logit's dot product among 8 threads
// (there are only N logits), here N * C logits, C * K weight gradients and N * K hidden gradients
// each give every thread whole sums of their own.
__global__ void __launch_bounds__(kHeadThreads)
    softmax_head_train_kernel(SoftmaxHeadOutputs out, SoftmaxHeadInputs in, int N, int K, int C,
                              float dropout_scale) {
  __shared__ double tree[kHeadThreads];
  const int t = static_cast<int>(threadIdx.x);
  const auto row_len = static_cast<std::size_t>(K), classes = static_cast<std::size_t>(C);
  const auto rows = static_cast<std::size_t>(N);
  const auto first = static_cast<std::size_t>(t);
  const double eps = static_cast<double>(in.label_smoothing);
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

  // 1. The logits: thread per (row, class), x[row] . w[class] in k order, then the bias.
  for (std::size_t o = first; o < rows * classes; o += kHeadThreads) {
    const std::size_t r = o / classes, c = o % classes;
    const float* xr = in.x + r * row_len;
    const float* wc = in.weight + c * row_len;
    float s = 0.0f;
    for (std::size_t k = 0; k < row_len; ++k) s = fmaf(xr[k], wc[k], s);
    out.logits[o] = s + in.bias[c];
  }

  // 2. W = sum over the batch of the targets' class weights, the mean's denominator (a target
  //    that is no class index makes it NaN); and sum_c w[c] for the smoothing term's gradient.
  double w_part = 0.0;
  for (std::size_t r = first; r < rows; r += kHeadThreads) {
    const int y = softmax_ce_class(in.targets[r], C);
    w_part += y >= 0 ? softmax_ce_weight(in.class_weight, y) : kNaN;
  }
  tree[t] = w_part;
  __syncthreads();  // also publishes the logits
  for (int s = kHeadThreads / 2; s > 0; s >>= 1) {
    if (t < s) tree[t] += tree[t + s];
    __syncthreads();
  }
  const double W = tree[0];
  double weight_total = 0.0;
  for (int c = 0; c < C; ++c) weight_total += softmax_ce_weight(in.class_weight, c);
  __syncthreads();  // every thread has read W before the tree is reused

  // 3. The loss and dlogits: thread per row, in double (kernels/softmax_ce.cuh).
  double loss_part = 0.0;
  for (std::size_t r = first; r < rows; r += kHeadThreads) {
    const float* z = out.logits + r * classes;
    float* g = out.dlogits + r * classes;
    const int y = softmax_ce_class(in.targets[r], C);
    if (y < 0 || !(W > 0.0)) {
      loss_part += kNaN;
      for (int j = 0; j < C; ++j) g[j] = static_cast<float>(kNaN);
      continue;
    }
    const SoftmaxRow row = softmax_row(z, C);
    loss_part += softmax_ce_row_loss(z, row, y, C, in.class_weight, eps);
    for (int j = 0; j < C; ++j) {
      g[j] = static_cast<float>(
          softmax_ce_row_grad(z, row, y, j, C, in.class_weight, eps, weight_total) / W);
    }
  }
  tree[t] = loss_part;
  __syncthreads();
  for (int s = kHeadThreads / 2; s > 0; s >>= 1) {
    if (t < s) tree[t] += tree[t + s];
    __syncthreads();  // the last one also publishes dlogits to the whole block
  }
  if (t == 0) {
    const double loss = W > 0.0 ? tree[0] / W : kNaN;
    *out.batch_loss = static_cast<float>(loss);
    *out.loss_sum += loss * static_cast<double>(N);
  }

  // 4. fc2's gradients: dweight[c][k] = sum over rows of dlogits[row][c] * x[row][k], a thread per
  //    weight (consecutive threads read consecutive k of a row), rows in order; dbias[c] the sum of
  //    dlogits[.][c] in row order.
  for (std::size_t o = first; o < classes * row_len; o += kHeadThreads) {
    const std::size_t c = o / row_len, k = o % row_len;
    float s = 0.0f;
    for (std::size_t r = 0; r < rows; ++r) {
      s = fmaf(out.dlogits[r * classes + c], in.x[r * row_len + k], s);
    }
    out.dweight[o] = s;
  }
  for (std::size_t c = first; c < classes; c += kHeadThreads) {
    float d = 0.0f;
    for (std::size_t r = 0; r < rows; ++r) d += out.dlogits[r * classes + c];
    out.dbias[c] = d;
  }

  // 5. Back through fc2 (dlogits[row] . w[.][k], classes in order), the dropout (kept: times the
  //    scale) and the ReLU (where its output was positive), in the CPU reference's order.
  for (std::size_t e = first; e < rows * row_len; e += kHeadThreads) {
    const std::size_t r = e / row_len, k = e % row_len;
    const float* gr = out.dlogits + r * classes;
    float v = 0.0f;
    for (std::size_t c = 0; c < classes; ++c) v = fmaf(gr[c], in.weight[c * row_len + k], v);
    if (in.mask != nullptr) v = in.mask[e] != 0 ? v * dropout_scale : 0.0f;
    out.dhidden[e] = in.relu_out[e] > 0.0f ? v : 0.0f;
  }
}

// The checks both launchers share (their structs have the same member names): every buffer but
// the mask present, and the dropout's probability. Returns the dropout's scale 1 / (1 - p), as
// cpu::dropout_backward computes it (float arithmetic); 1 without a mask.
template <class Outputs, class Inputs>
float check_head_buffers(const char* op, const Outputs& out, const Inputs& in) {
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
  if (in.mask == nullptr) return 1.0f;
  OCTA_CHECK(in.dropout_p >= 0.0f && in.dropout_p < 1.0f,
             "{}: drop probability p = {} must be in [0, 1)", op, in.dropout_p);
  return 1.0f / (1.0f - in.dropout_p);
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
  const float scale = check_head_buffers(op, out, in);
  NvtxRange range(op);
  logit_head_train_kernel<<<1, kHeadThreads, 0, stream>>>(out, in, N, K, pos_weight, scale);
  OCTA_CUDA_CHECK_LAUNCH();
}

void softmax_head_train(const SoftmaxHeadOutputs& out, const SoftmaxHeadInputs& in, int N, int K,
                        int C, cudaStream_t stream) {
  const char* op = "softmax_head_train";
  require_positive(op, "N", N);
  require_positive(op, "K", K);
  OCTA_CHECK(C >= 2 && C <= kMaxHeadClasses,
             "{}: C = {} classes; the fused head takes 2 to {} classes", op, C, kMaxHeadClasses);
  OCTA_CHECK(static_cast<long long>(N) * std::max(K, C) <= INT_MAX,
             "{}: N * max(K, C) = {} is too large (at most {}): use a smaller batch", op,
             static_cast<long long>(N) * std::max(K, C), INT_MAX);
  OCTA_CHECK(in.label_smoothing >= 0.0f && in.label_smoothing <= 1.0f,
             "{}: label_smoothing = {} must be in [0, 1]", op, in.label_smoothing);
  const float scale = check_head_buffers(op, out, in);
  NvtxRange range(op);
  softmax_head_train_kernel<<<1, kHeadThreads, 0, stream>>>(out, in, N, K, C, scale);
  OCTA_CUDA_CHECK_LAUNCH();
}

}  // namespace octa::gpu
