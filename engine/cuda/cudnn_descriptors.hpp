// engine/cuda/cudnn_descriptors.hpp: owning handles for the cuDNN descriptors octa uses (tensor,
// filter, convolution, activation, pooling), move-only like the rest of engine/cuda/raii.hpp, and
// the tensor descriptor every user needs. A destroy failure cannot be acted on in a destructor, so
// it is ignored.
#pragma once

#include <cudnn.h>

#include "engine/cuda/check.hpp"
#include "engine/cuda/raii.hpp"

namespace octa::cuda {

struct TensorDescTraits {
  static void release(cudnnTensorDescriptor_t d) {
    static_cast<void>(cudnnDestroyTensorDescriptor(d));
  }
};
struct FilterDescTraits {
  static void release(cudnnFilterDescriptor_t d) {
    static_cast<void>(cudnnDestroyFilterDescriptor(d));
  }
};
struct ConvDescTraits {
  static void release(cudnnConvolutionDescriptor_t d) {
    static_cast<void>(cudnnDestroyConvolutionDescriptor(d));
  }
};
struct ActivationDescTraits {
  static void release(cudnnActivationDescriptor_t d) {
    static_cast<void>(cudnnDestroyActivationDescriptor(d));
  }
};
struct PoolDescTraits {
  static void release(cudnnPoolingDescriptor_t d) {
    static_cast<void>(cudnnDestroyPoolingDescriptor(d));
  }
};

using TensorDesc = UniqueHandle<cudnnTensorDescriptor_t, TensorDescTraits>;
using FilterDesc = UniqueHandle<cudnnFilterDescriptor_t, FilterDescTraits>;
using ConvDesc = UniqueHandle<cudnnConvolutionDescriptor_t, ConvDescTraits>;
using ActivationDesc = UniqueHandle<cudnnActivationDescriptor_t, ActivationDescTraits>;
using PoolDesc = UniqueHandle<cudnnPoolingDescriptor_t, PoolDescTraits>;

// A float NCHW tensor descriptor, owned before it is configured, so a failing Set* call leaks
// nothing.
inline TensorDesc make_tensor_desc(int n, int c, int h, int w) {
  cudnnTensorDescriptor_t raw{};
  OCTA_CUDNN_CHECK(cudnnCreateTensorDescriptor(&raw));
  TensorDesc d(raw);
  OCTA_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, c, h, w));
  return d;
}

}  // namespace octa::cuda
