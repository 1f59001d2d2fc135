// tests/test_gpu_checks.cpp: the CUDA/cuDNN/cuBLAS check macros and the RAII wrappers. Built in
// CUDA builds only; most cases need no device (they exercise the error paths), the rest skip
// without one.
#include <catch2/catch.hpp>

#include <string>

#include "engine/core/device_probe.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/raii.hpp"
#include "tests/support/skip.hpp"

namespace {

cudaError_t failing_cuda_call() {
  return cudaErrorInvalidValue;
}
cudnnStatus_t failing_cudnn_call() {
  return CUDNN_STATUS_BAD_PARAM;
}
cublasStatus_t failing_cublas_call() {
  return CUBLAS_STATUS_INVALID_VALUE;
}

std::string message_of(void (*f)()) {
  try {
    f();
  } catch (const octa::CudaError& e) {
    return e.what();
  }
  return "(no exception)";
}

}  // namespace

TEST_CASE("Check macros throw with the expression, file:line and the library's message",
          "[cuda][check]") {
  const std::string cuda = message_of([] { OCTA_CUDA_CHECK(failing_cuda_call()); });
  CHECK_THAT(cuda,
             Catch::Contains("cudaErrorInvalidValue") && Catch::Contains("invalid argument") &&
                 Catch::Contains("failing_cuda_call()") && Catch::Contains("test_gpu_checks.cpp:"));
  const std::string cudnn = message_of([] { OCTA_CUDNN_CHECK(failing_cudnn_call()); });
  CHECK_THAT(cudnn, Catch::Contains("CUDNN_STATUS_BAD_PARAM") &&
                        Catch::Contains("failing_cudnn_call()") &&
                        Catch::Contains("test_gpu_checks.cpp:"));
  const std::string cublas = message_of([] { OCTA_CUBLAS_CHECK(failing_cublas_call()); });
  CHECK_THAT(cublas, Catch::Contains("CUBLAS_STATUS_INVALID_VALUE") &&
                         Catch::Contains("failing_cublas_call()") &&
                         Catch::Contains("test_gpu_checks.cpp:"));
  // Success passes silently; CudaError is an octa::Error, so callers can catch either.
  CHECK(message_of([] { OCTA_CUDA_CHECK(cudaSuccess); }) == "(no exception)");
  CHECK_THROWS_AS([] { OCTA_CUDA_CHECK(failing_cuda_call()); }(), octa::Error);
}

TEST_CASE("A failed device allocation says how much was asked for and why", "[cuda][raii]") {
  octa::cuda::DeviceBuffer<float> empty;  // no allocation, no device needed
  CHECK(empty.data() == nullptr);
  CHECK(empty.size() == 0);
  const auto probe = octa::probe_cuda_device();
  if (!probe.available) {
    // Without a usable device the allocation itself must fail cleanly.
    CHECK_THROWS_WITH(octa::cuda::DeviceBuffer<float>(1024, "activations"),
                      Catch::Contains("cannot allocate activations") && Catch::Contains("0.0 MiB"));
    return;
  }
  octa::cuda::DeviceBuffer<float> ok(1024, "small");
  CHECK(ok.data() != nullptr);
  octa::cuda::DeviceBuffer<float> moved = std::move(ok);
  CHECK(ok.data() == nullptr);
  CHECK(moved.size() == 1024);
  CHECK_THROWS_WITH(octa::cuda::DeviceBuffer<float>(std::size_t{1} << 48, "huge buffer"),
                    Catch::Contains("cannot allocate huge buffer") && Catch::Contains("free of"));
}

TEST_CASE("Streams, events, pinned memory and library handles are created and released",
          "[gpu][raii]") {
  OCTA_REQUIRE_GPU();
  octa::cuda::Stream stream;
  octa::cuda::Event start(true), stop(true);
  octa::cuda::PinnedBuffer<float> host(256);
  octa::cuda::DeviceBuffer<float> dev(256);
  for (std::size_t i = 0; i < 256; ++i) host[i] = static_cast<float>(i) + 0.5f;
  OCTA_CUDA_CHECK(cudaEventRecord(start, stream));
  OCTA_CUDA_CHECK(cudaMemcpyAsync(dev.data(), host.data(), 256 * sizeof(float),
                                  cudaMemcpyHostToDevice, stream));
  octa::cuda::PinnedBuffer<float> back(256);
  OCTA_CUDA_CHECK(cudaMemcpyAsync(back.data(), dev.data(), 256 * sizeof(float),
                                  cudaMemcpyDeviceToHost, stream));
  OCTA_CUDA_CHECK(cudaEventRecord(stop, stream));
  OCTA_CUDA_CHECK(cudaStreamSynchronize(stream));
  for (std::size_t i = 0; i < 256; ++i) REQUIRE(back[i] == host[i]);
  float ms = -1.0f;
  OCTA_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  CHECK(ms >= 0.0f);
  octa::cuda::CublasHandle blas;
  octa::cuda::CudnnHandle dnn;
  CHECK(blas.get() != nullptr);
  CHECK(dnn.get() != nullptr);
}
