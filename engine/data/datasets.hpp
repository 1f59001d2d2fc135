// engine/data/datasets.hpp: the image datasets octa knows by name, as descriptors: MNIST,
// Fashion-MNIST and KMNIST (the four IDX files of each official release with their checksums,
// torchvision's mirrors and folder name, the class names), and "idx", any four IDX files of 28x28
// single-channel images whose checksums nobody recorded. The finder and loader (mnist.hpp) take a
// descriptor; --dataset picks one by its id.
#pragma once

#include <array>
#include <span>
#include <string>
#include <string_view>

namespace octa::data {

// One of the four files of a release.
struct IdxFileSpec {
  std::string_view name;    // base name, without .gz
  std::string_view gz_md5;  // MD5 of the official .gz (what torchvision checks after downloading)
  std::string_view sha256;  // SHA-256 of the decompressed content; empty where not recorded
};
using MnistFileSpec = IdxFileSpec;

// The order of DatasetSpec::files (and of every per-file array in mnist.hpp).
inline constexpr std::size_t kTrainImages = 0, kTrainLabels = 1, kTestImages = 2, kTestLabels = 3;

struct DatasetSpec {
  std::string_view id;           // what --dataset takes: "mnist", "fashion-mnist", ...
  std::string_view title;        // for messages: "MNIST", "Fashion-MNIST", ...
  std::string_view folder;       // torchvision's DIR/<folder>/raw; empty: DIR only
  std::string_view mirrors_env;  // the variable that overrides the mirrors; empty: no download
  std::array<IdxFileSpec, 4> files;
  std::span<const std::string_view> mirrors;      // torchvision's, in its order
  std::span<const std::string_view> class_names;  // empty: classes are numbered 0..K-1

  // A release with recorded checksums (MNIST, ...), as opposed to "idx".
  bool known() const { return !files[0].gz_md5.empty(); }
  bool can_download() const { return !mirrors.empty(); }
};

// --- MNIST -----------------------------------------------------------------------------------

inline constexpr std::array<IdxFileSpec, 4> kMnistFiles{{
    {"train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873",
     "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"},
    {"train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432",
     "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"},
    {"t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3",
     "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"},
    {"t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c",
     "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"},
}};
inline constexpr std::array<std::string_view, 2> kDefaultMnistMirrors{
    "https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"};
inline constexpr DatasetSpec kMnist{
    "mnist", "MNIST", "MNIST", "OCTA_MNIST_MIRRORS", kMnistFiles, kDefaultMnistMirrors, {}};

// --- Fashion-MNIST (Zalando Research): same format, ten kinds of clothing ----------------------

inline constexpr std::array<IdxFileSpec, 4> kFashionMnistFiles{{
    {"train-images-idx3-ubyte", "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
     "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"},
    {"train-labels-idx1-ubyte", "25c81989df183df01b3e8a0aad5dffbe",
     "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"},
    {"t10k-images-idx3-ubyte", "bef4ecab320f06d8554ea6380940ec79",
     "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"},
    {"t10k-labels-idx1-ubyte", "bb300cfdad3c16e7a12a480ee83cd310",
     "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"},
}};
inline constexpr std::array<std::string_view, 1> kFashionMnistMirrors{
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"};
inline constexpr std::array<std::string_view, 10> kFashionMnistClasses{
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
inline constexpr DatasetSpec kFashionMnist{
    "fashion-mnist",    "Fashion-MNIST",      "FashionMNIST",      "OCTA_FASHION_MNIST_MIRRORS",
    kFashionMnistFiles, kFashionMnistMirrors, kFashionMnistClasses};

// --- KMNIST (Kuzushiji-MNIST, ROIS-DS CODH): ten cursive hiragana --------------------------------
// Only the .gz MD5s are published (torchvision's): a plain local copy loads with a notice.

inline constexpr std::array<IdxFileSpec, 4> kKmnistFiles{{
    {"train-images-idx3-ubyte", "bdb82020997e1d708af4cf47b453dcf7", ""},
    {"train-labels-idx1-ubyte", "e144d726b3acfaa3e44228e80efcd344", ""},
    {"t10k-images-idx3-ubyte", "5c965bf0a639b31b8f53240b1b52f4d7", ""},
    {"t10k-labels-idx1-ubyte", "7320c461ea6c1c855c0b718fb2a4b134", ""},
}};
inline constexpr std::array<std::string_view, 1> kKmnistMirrors{
    "http://codh.rois.ac.jp/kmnist/dataset/kmnist/"};
inline constexpr std::array<std::string_view, 10> kKmnistClasses{"o",  "ki", "su", "tsu", "na",
                                                                 "ha", "ma", "ya", "re",  "wo"};
inline constexpr DatasetSpec kKmnist{
    "kmnist",     "KMNIST",       "KMNIST",      "OCTA_KMNIST_MIRRORS",
    kKmnistFiles, kKmnistMirrors, kKmnistClasses};

// --- idx: any four IDX files in DIR --------------------------------------------------------------
// Found by the end of their names (PREFIX-train-images-idx3-ubyte, PREFIX-t10k-... or
// PREFIX-test-..., each plain or .gz), never downloaded, labels 0..255, classes numbered.

inline constexpr DatasetSpec kIdxDataset{"idx",
                                         "IDX dataset",
                                         "",
                                         "",
                                         {{{"train-images-idx3-ubyte", "", ""},
                                           {"train-labels-idx1-ubyte", "", ""},
                                           {"t10k-images-idx3-ubyte", "", ""},
                                           {"t10k-labels-idx1-ubyte", "", ""}}},
                                         {},
                                         {}};

// Every descriptor, in the order --help lists them.
inline constexpr std::array<const DatasetSpec*, 4> kDatasets{&kMnist, &kFashionMnist, &kKmnist,
                                                             &kIdxDataset};

// The descriptor whose id is `id`; throws octa::Error listing the ids otherwise.
const DatasetSpec& dataset_by_id(std::string_view id);

// "mnist, fashion-mnist, kmnist, idx".
std::string dataset_ids();

}  // namespace octa::data
