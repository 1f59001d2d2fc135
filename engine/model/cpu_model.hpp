// engine/model/cpu_model.hpp: models A and B on the CPU reference operations (engine/cpu/ops.hpp),
// forward and backward, for T = float (training on the CPU path) and T = double (gradient checks).
// Activations are allocated once for a maximum batch size; forward/backward never allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/cpu/batchnorm_ranks.hpp"
#include "engine/model/param_table.hpp"

namespace octa {

inline constexpr float kDropoutP = 0.5f;

template <class T>
class CpuModel {
 public:
  CpuModel(const ParamTable& table, int max_batch);

  // The bytes of activation and gradient buffers the constructor allocates for max_batch images
  // (computed without allocating: apps refuse an impossible --batch-size with it).
  static std::uint64_t buffer_bytes(const ParamTable& table, std::int64_t max_batch);

  // x: (N, 1, 28, 28)   logits: (N, K), K = table.num_classes()   state: table.num_total() values.
  // train = true: BatchNorm uses batch statistics and updates the running ones in `state`; dropout
  // draws its mask from Philox (dropout_seed, dropout_stream). train = false: eval mode.
  void forward(T* state, const T* x, int N, bool train, std::uint64_t dropout_seed,
               std::uint64_t dropout_stream, T* logits);

  // After a training-mode forward of the same batch: grads (table.num_trainable()), overwritten.
  void backward(const T* state, const T* dlogits, T* grads);  // dlogits: (N, K)

  const ParamTable& table() const { return table_; }
  int max_batch() const { return max_batch_; }
  // The batch's first image is image `first` of a larger one whose dropout masks it draws (a
  // data-parallel rank's share: engine/dist/); 0 by default.
  void set_dropout_first_image(std::uint64_t first) { dropout_first_ = first; }
  // --sync-bn: training-mode BatchNorm with the statistics of the global batch that these ranks
  // share (engine/cpu/batchnorm_ranks.hpp; kept by the caller); null (the default): this batch's.
  void set_batchnorm_ranks(const cpu::BatchNormRanks* ranks) { bn_ranks_ = ranks; }

 private:
  // conv3x3 -> [BatchNorm (model B)] -> ReLU -> maxpool 2x2: both models' two feature stages.
  struct ConvBlock {
    int cin = 0, cout = 0, size = 0;  // input channels, output channels, H = W
    std::size_t w = 0, b = 0;         // conv weight and bias offsets in the state
    bool bn = false;
    std::size_t bn_w = 0, bn_b = 0, bn_mean = 0, bn_var = 0;
    std::vector<T> conv, act, pool;  // (N,cout,size,size), same after BN+ReLU, pooled
    std::vector<T> save_mean, save_invstd;
    std::vector<T> dact, dconv;  // gradient scratch
  };
  ConvBlock make_block(const std::string& conv, const std::string& bn, int cin, int cout,
                       int size) const;
  void block_forward(ConvBlock& k, T* state, const T* in, int N, bool train);
  // dpool: gradient w.r.t. the block's pooled output; din: w.r.t. its input (null: not needed).
  void block_backward(ConvBlock& k, const T* state, const T* dpool, const T* in, T* din, T* grads,
                      int N);

  ParamTable table_;
  int max_batch_;
  int n_ = 0;                                      // batch size of the last forward
  std::uint64_t dropout_first_ = 0;                // set_dropout_first_image
  const cpu::BatchNormRanks* bn_ranks_ = nullptr;  // set_batchnorm_ranks
  bool last_train_ = false;
  ConvBlock block1_, block2_;
  std::size_t f1w_, f1b_, f2w_, f2b_;
  // Saved activations of the head: x (input), g (global average pool, model B), h (fc1 + ReLU),
  // d (dropout of h, model B) and the dropout mask; then gradient scratch.
  std::vector<T> x_, g_, h_, d_;
  std::vector<T> dg_, dh_, dd_, dflat_, dpool1_;
  std::vector<std::uint8_t> mask_;
};

extern template class CpuModel<float>;
extern template class CpuModel<double>;

}  // namespace octa
