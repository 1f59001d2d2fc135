// tests/test_gpu_softmax_head.cpp: the fused multi-class training head (gpu::softmax_head_train,
// kernels/logit_head.cu) on the GPU against the CPU reference's fc2 + softmax_cross_entropy +
// fc2/dropout/ReLU backward, on the cases the emulated test runs (tests/support/
// softmax_head_case.hpp), and bit-identical from run to run. Skips without a CUDA device.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <vector>

#include "engine/core/device_probe.hpp"
#include "engine/cuda/check.hpp"
#include "engine/cuda/raii.hpp"
#include "kernels/logit_head.hpp"
#include "tests/support/compare.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/softmax_head_case.hpp"

namespace tol = octa::test::tol;
using octa::cuda::DeviceBuffer;
using octa::test::SoftmaxHeadCase;
using octa::test::SoftmaxHeadResult;

namespace {

// Device memory on the test's own stream; every download synchronises it.
class DeviceMemory {
 public:
  cudaStream_t stream() const { return stream_; }
  template <class T>
  DeviceBuffer<T> upload(const std::vector<T>& h) {
    DeviceBuffer<T> d(h.size());
    OCTA_CUDA_CHECK(
        cudaMemcpyAsync(d.data(), h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice, stream_));
    OCTA_CUDA_CHECK(cudaStreamSynchronize(stream_));  // h may die right after
    return d;
  }
  // 0xFF bytes: NaN in every float, so an element the kernel fails to write cannot pass.
  template <class T>
  DeviceBuffer<T> poisoned(std::size_t n) {
    DeviceBuffer<T> d(n);
    OCTA_CUDA_CHECK(cudaMemsetAsync(d.data(), 0xFF, n * sizeof(T), stream_));
    return d;
  }
  template <class T>
  std::vector<T> download(const DeviceBuffer<T>& d) {
    std::vector<T> h(d.size());
    OCTA_CUDA_CHECK(
        cudaMemcpyAsync(h.data(), d.data(), d.bytes(), cudaMemcpyDeviceToHost, stream_));
    OCTA_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return h;
  }

 private:
  octa::cuda::Stream stream_;
};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("Fused multi-class head matches fc2, softmax CE and fc2/dropout/ReLU backward on the CPU",
          "[gpu][kernels][loss][multiclass]") {
  OCTA_REQUIRE_GPU();
  DeviceMemory dev;
  for (const SoftmaxHeadCase& c : octa::test::softmax_head_cases()) {
    INFO(c.str());
    const SoftmaxHeadResult got = octa::test::run_softmax_head(dev, c);
    c.check(got, tol::kGpuVsCpu);
    const SoftmaxHeadResult again = octa::test::run_softmax_head(dev, c);
    CHECK(same_bits(again.logits, got.logits));
    CHECK(same_bits(again.dlogits, got.dlogits));
    CHECK(same_bits(again.dweight, got.dweight));
    CHECK(same_bits(again.dbias, got.dbias));
    CHECK(same_bits(again.dhidden, got.dhidden));
    CHECK(std::memcmp(&again.loss_sum, &got.loss_sum, sizeof(double)) == 0);
  }
}
