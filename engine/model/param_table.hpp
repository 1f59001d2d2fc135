// engine/model/param_table.hpp: the one {name, shape, offset} table that lays out a model's
// parameters and buffers in a single contiguous float buffer.
//
// Names are PyTorch's state_dict keys for the tutorial's modules (conv1.weight, bn1.running_mean,
// fc2.bias, ...), so the table drives checkpoints (safetensors a PyTorch user loads with
// load_state_dict), gradient checks, logging, initialisation and the fused optimiser alike.
// Layout: trainable parameters first, in [0, num_trainable()); gradients and optimiser state use
// exactly that prefix. BatchNorm running statistics follow in [num_trainable(), num_total()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace octa {

// Model A: the tutorial's CNN (420,481 parameters). Model B: its "optimised" CNN with BatchNorm,
// global average pooling and dropout (27,457 trainable parameters). See ../shared/SPEC.md.
enum class Arch { kA, kB };

inline constexpr int kImageSize = 28;  // both models take MNIST: 1 x 28 x 28 per image
// The most outputs fc2 may have: IDX labels are bytes (kernels/logit_head.hpp's kMaxHeadClasses).
inline constexpr int kMaxClasses = 256;

Arch parse_arch(std::string_view name);  // "a" or "b" (any case); error names --model
const char* arch_name(Arch arch);        // "A" or "B"

enum class ParamKind {
  kWeight,       // conv or linear weight: uniform(+-1/sqrt(fan_in))
  kBias,         // conv or linear bias:   uniform(+-1/sqrt(fan_in))
  kBnWeight,     // BatchNorm gamma: 1
  kBnBias,       // BatchNorm beta: 0
  kRunningMean,  // buffer: 0
  kRunningVar,   // buffer: 1
};

struct ParamEntry {
  std::string name;                 // PyTorch state_dict key
  std::vector<std::int64_t> shape;  // PyTorch's shape
  std::size_t offset = 0;           // in floats, into the model's state buffer
  std::size_t numel = 0;
  ParamKind kind = ParamKind::kWeight;
  int fan_in = 0;  // conv/linear weights and biases: in_channels * kh * kw
  bool trainable() const {
    return kind != ParamKind::kRunningMean && kind != ParamKind::kRunningVar;
  }
};

class ParamTable {
 public:
  // num_classes: fc2's outputs, fc2.weight [num_classes, 128]. 1: the binary task (one logit,
  // BCE with logits); 2..kMaxClasses: one logit per class (softmax cross-entropy). Throws
  // octa::Error otherwise.
  static ParamTable for_arch(Arch arch, int num_classes = 1);

  Arch arch() const { return arch_; }
  int num_classes() const { return num_classes_; }  // fc2's outputs
  bool multiclass() const { return num_classes_ > 1; }
  const std::vector<ParamEntry>& entries() const { return entries_; }
  std::size_t num_trainable() const { return num_trainable_; }  // floats with gradients
  std::size_t num_total() const { return num_total_; }          // plus BatchNorm buffers
  const ParamEntry& at(std::string_view name) const;            // throws octa::Error if absent
  bool contains(std::string_view name) const;
  // BatchNorm module names ("bn1", "bn2"): each also has an int64 `<name>.num_batches_tracked`.
  const std::vector<std::string>& batchnorm_layers() const { return bn_layers_; }

 private:
  void add(std::string name, std::vector<std::int64_t> shape, ParamKind kind, int fan_in);
  Arch arch_ = Arch::kA;
  int num_classes_ = 1;
  std::vector<ParamEntry> entries_;
  std::vector<std::string> bn_layers_;
  std::size_t num_trainable_ = 0, num_total_ = 0;
};

// PyTorch's default initialisation (kaiming_uniform_(a=sqrt(5)) for weights, which is
// uniform(+-1/sqrt(fan_in)), the same bound for biases; BatchNorm 1/0, running stats 0/1), drawn
// from Philox stream (seed, kInit + entry index). state: num_total() floats.
void init_parameters(const ParamTable& table, float* state, std::uint64_t seed);

}  // namespace octa
