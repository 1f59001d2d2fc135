// engine/data/holdout.hpp: the validation split (train_gpu --val-size N): N training images held
// out of training, chosen by the seed alone, so a resumed run holds out exactly the same images.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/data/mnist.hpp"

namespace octa::data {

struct HeldOut {
  Split train;                                    // the other images, in their original order
  Split validation;                               // the held-out images, in ascending index order
  std::vector<std::uint32_t> validation_indices;  // their indices in the input split, ascending
};

// The first n steps of a Fisher-Yates shuffle of all indices, drawn from
// PhiloxStream(seed, rng_stream(RngStream::kHoldOut, 0)), pick the held-out images. The choice
// depends on nothing but (seed, n, split.count). Throws octa::Error naming --val-size unless
// 0 <= n < split.count (some images must be left to train on). n == 0: validation is empty.
HeldOut hold_out(const Split& split, int n, std::uint64_t seed);

// The three splits of a train_gpu run, made the same way wherever a run is rebuilt (train_gpu,
// octa_report): `val_size` images held out of the whole training split first (so the validation
// split depends only on the seed and its size), then the first max_train of the remaining training
// images and the first max_test test images (0: all).
struct RunSplits {
  Split train, validation, test;
};
// mnist by value: a caller done with it moves it in (train_gpu), and the splits are then moved,
// not copied (55 MB).
RunSplits run_splits(Mnist mnist, int val_size, std::uint64_t seed, std::size_t max_train,
                     std::size_t max_test);

}  // namespace octa::data
