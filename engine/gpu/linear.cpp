// engine/gpu/linear.cpp: linear layers through cuBLAS SGEMM (FP32) plus octa's bias kernels.
// cuBLAS is column-major and our tensors are row-major; the mapping is worked out once below.
#include "engine/gpu/linear.hpp"

#include "engine/core/error.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/nvtx.hpp"
#include "kernels/elementwise.hpp"

namespace octa::gpu {

// Row-major versus column-major, the one fact everything below rests on: a row-major (R, C)
// matrix X with leading dimension C is, read by cuBLAS, the column-major (C x R) matrix X^T with
// ld = C. So a row-major product Z = X * Y is computed as the column-major product Z^T = Y^T * X^T,
// with each operand passed as it lies in memory and CUBLAS_OP_T where the row-major formula
// itself has a transpose.
//
//   forward   out (N, Out) = in (N, In) * W^T            W: (Out, In)
//             column-major: out^T (Out x N) = W (Out x In) * in^T (In x N)
//             W in memory is W^T (In x Out, ld In), so it takes OP_T; in is in^T (In x N, ld In),
//             OP_N; out^T is (Out x N, ld Out).
//             sgemm(OP_T, OP_N, m = Out, n = N, k = In, A = W, lda = In, B = in, ldb = In,
//                   C = out, ldc = Out)
//
//   dweight   dW (Out, In) = dout^T (Out x N) * in (N x In)
//             column-major: dW^T (In x Out) = in^T (In x N) * dout (N x Out)
//             in is in^T (In x N, ld In): OP_N; dout in memory is dout^T (Out x N, ld Out): OP_T.
//             sgemm(OP_N, OP_T, m = In, n = Out, k = N, A = in, lda = In, B = dout, ldb = Out,
//                   C = dW, ldc = In)
//
//   din       din (N, In) = dout (N, Out) * W (Out, In)
//             column-major: din^T (In x N) = W^T (In x Out) * dout^T (Out x N)
//             W is W^T (In x Out, ld In): OP_N; dout is dout^T (Out x N, ld Out): OP_N.
//             sgemm(OP_N, OP_N, m = In, n = N, k = Out, A = W, lda = In, B = dout, ldb = Out,
//                   C = din, ldc = In)
//
// beta = 0 everywhere: cuBLAS then never reads C, so the outputs may hold anything (NaN included).
//
// Precision: cublasSgemm under the handle's default math mode (CUBLAS_DEFAULT_MATH) runs plain
// FP32 FMA kernels, no TF32, so it matches the CPU reference within tol::kGpuVsCpu. TF32 could be
// enabled later at these three calls (cublasGemmEx with CUBLAS_COMPUTE_32F_FAST_TF32, or
// cublasSetMathMode(CUBLAS_TF32_TENSOR_OP_MATH) on a handle of our own, not the shared one). TF32
// keeps 10 mantissa bits (unit roundoff 2^-11, about 5e-4), so fc1's 3136-term dot products would
// then need roughly atol 1e-3 / rtol 1e-2 against the FP32 reference: a new tolerance entry, not
// kGpuVsCpu. Determinism: cuBLAS gives bit-identical results run to run on the same GPU model as
// long as one stream uses the handle at a time (its docs; the default atomics mode is off).

namespace {

void check_sizes(const char* op, int N, int In, int Out) {
  OCTA_CHECK(N > 0 && In > 0 && Out > 0,
             "{}: sizes must be positive (N = {}, In = {}, Out = {}); check the layer's shape", op,
             N, In, Out);
}

// The handle is shared between layers (and possibly streams): bind it to this call's stream, and
// make sure alpha/beta are read from host memory, as passed here.
void bind(cublasHandle_t blas, cudaStream_t stream) {
  OCTA_CUBLAS_CHECK(cublasSetStream(blas, stream));
  OCTA_CUBLAS_CHECK(cublasSetPointerMode(blas, CUBLAS_POINTER_MODE_HOST));
}

}  // namespace

void linear_forward(float* out, const float* in, const float* weight, const float* bias, int N,
                    int In, int Out, Epilogue epilogue, cublasHandle_t blas, cudaStream_t stream) {
  cuda::NvtxRange range("linear_forward");
  check_sizes("linear_forward", N, In, Out);
  OCTA_CHECK(out != nullptr && in != nullptr && weight != nullptr && bias != nullptr,
             "linear_forward: out, in, weight and bias must all be device pointers (got null)");
  OCTA_CHECK(blas != nullptr, "linear_forward: no cuBLAS handle");
  bind(blas, stream);
  const float one = 1.0f, zero = 0.0f;
  // out^T (Out x N) = W (via OP_T) * in^T: see the mapping above.
  OCTA_CUBLAS_CHECK(cublasSgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, Out, N, In, &one, weight, In, in,
                                In, &zero, out, Out));
  bias_forward(out, bias, N, Out, epilogue, stream);
}

void linear_backward(float* din, float* dweight, float* dbias, const float* dout, const float* in,
                     const float* weight, int N, int In, int Out, cublasHandle_t blas,
                     cudaStream_t stream) {
  cuda::NvtxRange range("linear_backward");
  check_sizes("linear_backward", N, In, Out);
  OCTA_CHECK(dweight != nullptr && dbias != nullptr && dout != nullptr && in != nullptr &&
                 weight != nullptr,
             "linear_backward: dweight, dbias, dout, in and weight must all be device pointers "
             "(got null; only din may be null)");
  OCTA_CHECK(blas != nullptr, "linear_backward: no cuBLAS handle");
  bind(blas, stream);
  const float one = 1.0f, zero = 0.0f;
  // dW^T (In x Out) = in^T * dout (via OP_T).
  OCTA_CUBLAS_CHECK(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_T, In, Out, N, &one, in, In, dout, Out,
                                &zero, dweight, In));
  if (din != nullptr) {
    // din^T (In x N) = W^T * dout^T, both as they lie in memory.
    OCTA_CUBLAS_CHECK(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, In, N, Out, &one, weight, In,
                                  dout, Out, &zero, din, In));
  }
  bias_backward(dbias, dout, N, Out, stream);
}

}  // namespace octa::gpu
