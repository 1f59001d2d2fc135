// engine/data/mnist.hpp: finding MNIST on disk (plain directory or torchvision's DIR/MNIST/raw),
// downloading what is missing from mirrors, and loading the two splits with every check.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "engine/data/download.hpp"

namespace octa::data {

// One of the four files of the official release.
struct MnistFileSpec {
  std::string_view name;    // base name, without .gz
  std::string_view gz_md5;  // MD5 of the official .gz (what torchvision checks after downloading)
  std::string_view sha256;  // SHA-256 of the decompressed content
};

inline constexpr std::array<MnistFileSpec, 4> kMnistFiles{{
    {"train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873",
     "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"},
    {"train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432",
     "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"},
    {"t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3",
     "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"},
    {"t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c",
     "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"},
}};

// torchvision's mirrors, in its order.
inline constexpr std::array<std::string_view, 2> kDefaultMnistMirrors{
    "https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"};

struct FindOptions {
  bool allow_download = true;
  // URL prefixes (http, https or file://) tried in order for each missing file. Empty means: the
  // comma-separated list in $OCTA_MNIST_MIRRORS when that is set, else kDefaultMnistMirrors.
  std::vector<std::string> mirrors;
  DownloadOptions download;  // timeouts; expected_md5 is ignored (each file's own MD5 is used)
};

// The mirrors find_mnist will try, after applying the rules above.
std::vector<std::string> resolve_mirrors(const FindOptions& options);

struct MnistFiles {
  std::filesystem::path train_images, train_labels, test_images, test_labels;
  std::vector<std::filesystem::path> downloaded;  // what this call fetched, if anything
};

// Looks for each file (plain, else .gz) in data_dir, then in data_dir/MNIST/raw. Missing files are
// downloaded as .gz into data_dir/MNIST/raw when allowed, each checked against its official MD5.
// Throws octa::Error listing the files looked for, the directories and how to provide them.
MnistFiles find_mnist(const std::filesystem::path& data_dir, const FindOptions& options = {});

struct Split {
  int count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;  // count x rows x cols
  std::vector<std::uint8_t> labels;  // count, each 0..9
};

// The first n images of a split (all of them when n >= count), for --max-train / --max-test.
Split take_first(const Split& split, std::size_t n);

struct Mnist {
  Split train, test;
  MnistFiles files;
  // One entry (also logged with spdlog::warn) per file whose decompressed content is not the
  // official MNIST file; such files load anyway. Empty for the real MNIST.
  std::vector<std::string> checksum_warnings;
};

// find_mnist, then reads the four files and checks that each split has as many labels as images
// and 28x28 images. Throws octa::Error naming the file(s) on any problem.
Mnist load_mnist(const std::filesystem::path& data_dir, const FindOptions& options = {});

}  // namespace octa::data
