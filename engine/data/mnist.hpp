// engine/data/mnist.hpp: finding a dataset of MNIST's format on disk (a plain directory or
// torchvision's DIR/<Folder>/raw), downloading what is missing from its mirrors, and loading the
// two splits with every check: MNIST itself, or any descriptor of datasets.hpp (Fashion-MNIST,
// KMNIST, any four IDX files). The number of classes comes from the labels.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "engine/data/datasets.hpp"
#include "engine/data/download.hpp"

namespace octa::data {

struct FindOptions {
  bool allow_download = true;
  // URL prefixes (http, https or file://) tried in order for each missing file. Empty means: the
  // comma-separated list in the dataset's variable ($OCTA_MNIST_MIRRORS for MNIST) when that is
  // set, else the dataset's own mirrors (torchvision's).
  std::vector<std::string> mirrors;
  DownloadOptions download;  // timeouts; expected_md5 is ignored (each file's own MD5 is used)
};

// The mirrors find_dataset will try for `spec`, after applying the rules above.
std::vector<std::string> resolve_mirrors(const DatasetSpec& spec, const FindOptions& options);
// MNIST's.
std::vector<std::string> resolve_mirrors(const FindOptions& options);

struct DatasetFiles {
  std::filesystem::path train_images, train_labels, test_images, test_labels;
  std::vector<std::filesystem::path> downloaded;  // what this call fetched, if anything
};
using MnistFiles = DatasetFiles;

// A known release (spec.known()): looks for each file (plain, else .gz) in data_dir, then in
// data_dir/<spec.folder>/raw. Missing files are downloaded as .gz into data_dir/<folder>/raw when
// allowed, each checked against its official MD5. The "idx" descriptor: the one file in data_dir
// whose name ends in each role's name (train-images-idx3-ubyte, ...; t10k- or test- for the test
// split; plain or .gz), never downloaded. Throws octa::Error listing the files looked for, the
// directories and how to provide them (or, for "idx", the files that match a role twice).
DatasetFiles find_dataset(const DatasetSpec& spec, const std::filesystem::path& data_dir,
                          const FindOptions& options = {});
// find_dataset(kMnist, ...).
MnistFiles find_mnist(const std::filesystem::path& data_dir, const FindOptions& options = {});

struct Split {
  int count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  // count x rows x cols
  std::vector<std::uint8_t> labels;  // count, each a class index 0..K-1
};

// The first n images of a split (all of them when n >= count), for --max-train / --max-test.
Split take_first(const Split& split, std::size_t n);

struct Dataset {
  Split train, test;
  DatasetFiles files;
  const DatasetSpec* spec = &kMnist;  // what was asked for
  // K, the number of classes: the largest training label + 1 (at least 2); the test split may
  // lack a class but holds no label >= K.
  int num_classes = 0;
  // K names: the release's (also for "idx" files that turn out to be a known release), else
  // "0", "1", ...
  std::vector<std::string> class_names;
  // One entry (also logged with spdlog::warn) per file that is not the release `spec` names;
  // such files load anyway. Empty for the real files.
  std::vector<std::string> checksum_warnings;
  // One entry (also logged with spdlog::info) per file whose checksum nobody recorded (every
  // "idx" file that is no known release, a plain KMNIST file), and one naming the known release
  // that "idx" files turned out to be.
  std::vector<std::string> checksum_notices;
};
using Mnist = Dataset;

// find_dataset, then reads the four files and checks them: as many labels as images in each split,
// 28x28 images (the models' input; any other size is an error naming the file), labels 0..9 for
// a known release (0..255 for "idx"), no test label outside the training split's classes. Throws
// octa::Error naming the file(s) on any problem.
Dataset load_dataset(const DatasetSpec& spec, const std::filesystem::path& data_dir,
                     const FindOptions& options = {});
// load_dataset(kMnist, ...).
Mnist load_mnist(const std::filesystem::path& data_dir, const FindOptions& options = {});

// The class that `text` names in `dataset`: an index 0..K-1, or one of its class names (exactly,
// or ignoring case). Throws octa::Error listing the valid indices and names otherwise.
int resolve_class(const Dataset& dataset, std::string_view text);

}  // namespace octa::data
