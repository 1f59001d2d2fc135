// tests/test_data_datasets.cpp: the datasets beyond MNIST (engine/data/datasets.hpp and the
// generalised finder/loader of mnist.hpp): Fashion-MNIST and KMNIST in torchvision's layout, their
// checksums and class names, "idx" datasets of any four IDX files (prefixed names, K from the
// labels, notices instead of warnings), the errors (ambiguous or missing files, other image
// sizes, a test class the training split lacks), --target-class names, and the real Fashion-MNIST
// (loaded, identified, downloaded from a file:// mirror) where it is present.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/core/error.hpp"
#include "engine/data/datasets.hpp"
#include "engine/data/hash.hpp"
#include "engine/data/idx.hpp"
#include "engine/data/mnist.hpp"
#include "tests/support/files.hpp"
#include "tests/support/idx_files.hpp"
#include "tests/support/log_capture.hpp"
#include "tests/support/real_data.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using Catch::Contains;
using octa::data::Dataset;
using octa::test::Bytes;
using octa::test::idx_images_file;
using octa::test::idx_labels_file;
using octa::test::TempDir;
using octa::test::write_bytes;

octa::data::FindOptions offline() {
  octa::data::FindOptions o;
  o.allow_download = false;
  return o;
}

// n labels cycling through 0..classes-1.
std::vector<std::uint8_t> cycle(std::size_t n, int classes) {
  std::vector<std::uint8_t> l(n);
  for (std::size_t i = 0; i < n; ++i) l[i] = static_cast<std::uint8_t>(i % classes);
  return l;
}

struct SetFiles {
  std::string train_images = "train-images-idx3-ubyte", train_labels = "train-labels-idx1-ubyte",
              test_images = "t10k-images-idx3-ubyte", test_labels = "t10k-labels-idx1-ubyte";
};

// Four files in dir: `train` and `test` images of rows x rows, labels as given; gzip when asked.
void write_set(const fs::path& dir, const std::vector<std::uint8_t>& train_labels,
               const std::vector<std::uint8_t>& test_labels, bool compressed = false,
               const SetFiles& names = {}, std::uint32_t rows = 28) {
  const auto put = [&](const std::string& name, const Bytes& b) {
    write_bytes(dir / (compressed ? name + ".gz" : name),
                compressed ? octa::data::gzip_compress(b) : b);
  };
  const auto n_train = static_cast<std::uint32_t>(train_labels.size());
  const auto n_test = static_cast<std::uint32_t>(test_labels.size());
  put(names.train_images, idx_images_file(n_train, rows, rows));
  put(names.train_labels, idx_labels_file(train_labels));
  put(names.test_images, idx_images_file(n_test, rows, rows));
  put(names.test_labels, idx_labels_file(test_labels));
}

// load_dataset, with what it logged at info level and above.
Dataset load_logged(const octa::data::DatasetSpec& spec, const fs::path& dir,
                    std::vector<std::string>& logged) {
  Dataset d;
  logged = octa::test::logged_during([&] { d = octa::data::load_dataset(spec, dir, offline()); },
                                     spdlog::level::info);
  return d;
}

std::size_t count_containing(const std::vector<std::string>& lines, const std::string& what) {
  return static_cast<std::size_t>(std::count_if(lines.begin(), lines.end(), [&](const auto& l) {
    return l.find(what) != std::string::npos;
  }));
}

std::string file_url(const fs::path& dir) {
  return "file://" + fs::absolute(dir).string() + "/";
}

}  // namespace

TEST_CASE("datasets: the descriptors and --dataset ids", "[data][datasets]") {
  CHECK(octa::data::dataset_ids() == "mnist, fashion-mnist, kmnist, idx");
  CHECK(&octa::data::dataset_by_id("fashion-mnist") == &octa::data::kFashionMnist);
  CHECK(&octa::data::dataset_by_id("mnist") == &octa::data::kMnist);
  CHECK_THROWS_WITH(octa::data::dataset_by_id("cifar10"),
                    Contains("unknown dataset 'cifar10': use one of mnist, fashion-mnist"));
  // The official MD5s of Fashion-MNIST's .gz files (torchvision's), and its class names.
  CHECK(octa::data::kFashionMnist.files[0].gz_md5 == "8d4fb7e6c68d591d4c3dfef9ec88bf0d");
  CHECK(octa::data::kFashionMnist.files[3].gz_md5 == "bb300cfdad3c16e7a12a480ee83cd310");
  REQUIRE(octa::data::kFashionMnist.class_names.size() == 10);
  CHECK(octa::data::kFashionMnist.class_names[0] == "T-shirt/top");
  CHECK(octa::data::kFashionMnist.class_names[8] == "Bag");
  CHECK(octa::data::kFashionMnist.class_names[9] == "Ankle boot");
  CHECK(octa::data::kFashionMnist.folder == "FashionMNIST");
  for (const auto* spec : octa::data::kDatasets) {
    CAPTURE(spec->id);
    CHECK(spec->known() == (spec->id != "idx"));
    CHECK(spec->can_download() == spec->known());
  }
}

TEST_CASE("datasets: Fashion-MNIST in torchvision's DIR/FashionMNIST/raw", "[data][datasets]") {
  TempDir dir("datasets");
  const fs::path raw = dir.path() / "FashionMNIST" / "raw";
  write_set(raw, cycle(30, 10), cycle(10, 10), true);
  std::vector<std::string> logged;
  const Dataset d = load_logged(octa::data::kFashionMnist, dir.path(), logged);
  CHECK(d.files.train_images == raw / "train-images-idx3-ubyte.gz");
  CHECK(d.spec == &octa::data::kFashionMnist);
  CHECK(d.num_classes == 10);
  CHECK(d.class_names.front() == "T-shirt/top");
  CHECK(d.class_names.back() == "Ankle boot");
  // Synthetic files are not the release they claim to be: a warning each, naming it.
  REQUIRE(d.checksum_warnings.size() == 4);
  CHECK_THAT(d.checksum_warnings[0],
             Contains("not the official Fashion-MNIST train-images-idx3-ubyte") &&
                 Contains("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"));
  CHECK(count_containing(logged, "[warning]") == 4);
  CHECK(d.checksum_notices.empty());
  // MNIST's finder does not look in FashionMNIST/raw.
  CHECK_THROWS_WITH(
      octa::data::find_mnist(dir.path(), offline()),
      Contains("MNIST not found") && Contains("looked in " + dir.path().string() + " and " +
                                              (dir.path() / "MNIST" / "raw").string()));
  // Nor does Fashion-MNIST's in MNIST/raw; its message names its own release and variable.
  TempDir other("datasets");
  write_set(other.path() / "MNIST" / "raw", cycle(30, 10), cycle(10, 10));
  CHECK_THROWS_WITH(octa::data::find_dataset(octa::data::kFashionMnist, other.path(), offline()),
                    Contains("Fashion-MNIST not found") && Contains("FashionMNIST/raw") &&
                        Contains("the four files of the Fashion-MNIST release") &&
                        Contains("OCTA_FASHION_MNIST_MIRRORS"));
}

TEST_CASE("datasets: KMNIST's checksums are its .gz MD5s, plain files load with a notice",
          "[data][datasets]") {
  TempDir dir("datasets");
  SECTION("plain files: nothing recorded to check them against") {
    write_set(dir.path() / "KMNIST" / "raw", cycle(20, 10), cycle(10, 10));
    std::vector<std::string> logged;
    const Dataset d = load_logged(octa::data::kKmnist, dir.path(), logged);
    CHECK(d.checksum_warnings.empty());
    REQUIRE(d.checksum_notices.size() == 4);
    CHECK_THAT(d.checksum_notices[1], Contains("KMNIST publishes no checksum of the decompressed "
                                               "train-labels-idx1-ubyte: not checked"));
    CHECK(count_containing(logged, "[warning]") == 0);
    CHECK(count_containing(logged, "[info]") == 4);
    CHECK(d.class_names[3] == "tsu");
  }
  SECTION(".gz files: their MD5 against the official one") {
    write_set(dir.path(), cycle(20, 10), cycle(10, 10), true);
    std::vector<std::string> logged;
    const Dataset d = load_logged(octa::data::kKmnist, dir.path(), logged);
    REQUIRE(d.checksum_warnings.size() == 4);
    const std::string md5 = octa::data::md5_file_hex(d.files.train_images);
    CHECK_THAT(d.checksum_warnings[0],
               Contains("not the official KMNIST "
                        "train-images-idx3-ubyte.gz: its MD5 is " +
                        md5 + ", expected bdb82020997e1d708af4cf47b453dcf7"));
  }
}

TEST_CASE("datasets: idx, any four IDX files, K from the labels, notices and no warnings",
          "[data][datasets]") {
  TempDir dir("datasets");
  const bool compressed = GENERATE(false, true);
  CAPTURE(compressed);
  SetFiles names;
  names.train_images = "letters-train-images-idx3-ubyte";
  names.train_labels = "letters-train-labels-idx1-ubyte";
  names.test_images = "letters-test-images-idx3-ubyte";
  names.test_labels = "letters-test-labels-idx1-ubyte";
  // 13 classes (labels up to 12, beyond MNIST's 0..9); the test split lacks class 12.
  write_set(dir.path(), cycle(39, 13), cycle(12, 12), compressed, names);
  write_bytes(dir / "README.txt", Bytes{'h', 'i'});  // other files are ignored
  std::vector<std::string> logged;
  const Dataset d = load_logged(octa::data::kIdxDataset, dir.path(), logged);
  const std::string ext = compressed ? ".gz" : "";
  CHECK(d.files.train_images == dir / ("letters-train-images-idx3-ubyte" + ext));
  CHECK(d.files.test_labels == dir / ("letters-test-labels-idx1-ubyte" + ext));
  CHECK(d.train.count == 39);
  CHECK(d.test.count == 12);
  CHECK(d.num_classes == 13);
  REQUIRE(d.class_names.size() == 13);
  CHECK(d.class_names[12] == "12");
  CHECK(d.checksum_warnings.empty());
  REQUIRE(d.checksum_notices.size() == 4);
  CHECK_THAT(d.checksum_notices[2], Contains("letters-test-images-idx3-ubyte") &&
                                        Contains("checksum not known to octa") &&
                                        Contains("loading it as it is"));
  CHECK(count_containing(logged, "[warning]") == 0);
  CHECK(count_containing(logged, "[info]") == 4);

  SECTION("a plain file is preferred to the .gz of the same name; t10k- is accepted too") {
    TempDir both("datasets");
    write_set(both.path(), cycle(9, 3), cycle(3, 3), true);
    write_set(both.path(), cycle(12, 3), cycle(6, 3), false);
    const Dataset b = octa::data::load_dataset(octa::data::kIdxDataset, both.path());
    CHECK(b.files.train_images == both / "train-images-idx3-ubyte");
    CHECK(b.train.count == 12);
    CHECK(b.num_classes == 3);
  }
}

TEST_CASE("datasets: idx errors name the directory, the files and what is wrong",
          "[data][datasets][errors]") {
  TempDir dir("datasets");
  const auto load = [&] { return octa::data::load_dataset(octa::data::kIdxDataset, dir.path()); };
  SECTION("a missing file: the names it may have") {
    write_set(dir.path(), cycle(9, 3), cycle(3, 3));
    fs::remove(dir / "t10k-labels-idx1-ubyte");
    CHECK_THROWS_WITH(load(), Contains("IDX dataset not found in " + dir.path().string()) &&
                                  Contains("*t10k-labels-idx1-ubyte[.gz] or "
                                           "*test-labels-idx1-ubyte[.gz]") &&
                                  Contains("never downloaded"));
  }
  SECTION("two files that could be the training images") {
    write_set(dir.path(), cycle(9, 3), cycle(3, 3));
    write_bytes(dir / "old-train-images-idx3-ubyte.gz", idx_images_file(2));
    CHECK_THROWS_WITH(load(), Contains("2 files could be the train-images-idx3-ubyte") &&
                                  Contains("old-train-images-idx3-ubyte.gz") &&
                                  Contains("keep one of them"));
  }
  SECTION("not a directory") {
    const fs::path file = write_bytes(dir / "file", Bytes{1});
    CHECK_THROWS_WITH(octa::data::load_dataset(octa::data::kIdxDataset, file),
                      Contains(file.string() + ": not a directory"));
  }
  SECTION("images of another size") {
    write_set(dir.path(), cycle(9, 3), cycle(3, 3), false, {}, 32);
    CHECK_THROWS_WITH(load(), Contains((dir / "train-images-idx3-ubyte").string()) &&
                                  Contains("images are 32x32") &&
                                  Contains("need MNIST's 28x28 single-channel images"));
  }
  SECTION("a test label the training split does not have") {
    write_set(dir.path(), cycle(9, 3), cycle(5, 5));
    CHECK_THROWS_WITH(load(), Contains("class mismatch between the splits") &&
                                  Contains("train-labels-idx1-ubyte has labels 0..2 (3 classes)") &&
                                  Contains("t10k-labels-idx1-ubyte has labels up to 4"));
  }
  SECTION("one class only") {
    write_set(dir.path(), std::vector<std::uint8_t>(6, 0), std::vector<std::uint8_t>(2, 0));
    CHECK_THROWS_WITH(load(), Contains("every label is 0; a classifier needs at least two"));
  }
  SECTION("a known release keeps its labels to 0..9") {
    write_set(dir.path(), cycle(12, 12), cycle(3, 3));
    CHECK_THROWS_WITH(octa::data::load_dataset(octa::data::kFashionMnist, dir.path(), offline()),
                      Contains("label 10 at index 10 is outside 0..9"));
  }
}

TEST_CASE("datasets: --target-class takes an index or a class name", "[data][datasets]") {
  Dataset fashion;
  fashion.spec = &octa::data::kFashionMnist;
  fashion.num_classes = 10;
  fashion.class_names.assign(octa::data::kFashionMnistClasses.begin(),
                             octa::data::kFashionMnistClasses.end());
  CHECK(octa::data::resolve_class(fashion, "8") == 8);
  CHECK(octa::data::resolve_class(fashion, "Bag") == 8);
  CHECK(octa::data::resolve_class(fashion, "bag") == 8);
  CHECK(octa::data::resolve_class(fashion, "ankle boot") == 9);
  CHECK(octa::data::resolve_class(fashion, "T-shirt/top") == 0);
  CHECK_THROWS_WITH(octa::data::resolve_class(fashion, "Hat"),
                    Contains("'Hat' is not a class of Fashion-MNIST: give an index 0..9 or a "
                             "class name (0 T-shirt/top, 1 Trouser") &&
                        Contains("9 Ankle boot)"));
  CHECK_THROWS_WITH(octa::data::resolve_class(fashion, "10"), Contains("'10' is not a class"));
  Dataset numbered;
  numbered.spec = &octa::data::kIdxDataset;
  numbered.num_classes = 3;
  numbered.class_names = {"0", "1", "2"};
  CHECK(octa::data::resolve_class(numbered, "2") == 2);
  CHECK_THROWS_WITH(octa::data::resolve_class(numbered, "3"),
                    Contains("'3' is not a class of IDX dataset: give a class index 0..2"));
  CHECK_THROWS_AS(octa::data::resolve_class(numbered, "-1"), octa::Error);
  CHECK_THROWS_AS(octa::data::resolve_class(numbered, ""), octa::Error);
}

TEST_CASE("real Fashion-MNIST: sizes, classes, checksums, identified when read as idx",
          "[data][datasets][real]") {
  const auto dir = octa::test::real_fashion_mnist_dir();
  if (!dir) OCTA_SKIP(octa::test::real_fashion_mnist_missing_reason());
  const Dataset d = octa::data::load_dataset(octa::data::kFashionMnist, *dir, offline());
  CHECK(d.train.count == 60000);
  CHECK(d.test.count == 10000);
  CHECK(d.num_classes == 10);
  CHECK(d.checksum_warnings.empty());
  CHECK(d.checksum_notices.empty());
  std::vector<int> train_hist(10), test_hist(10);
  for (auto l : d.train.labels) ++train_hist[l];
  for (auto l : d.test.labels) ++test_hist[l];
  CHECK(train_hist == std::vector<int>(10, 6000));
  CHECK(test_hist == std::vector<int>(10, 1000));
  CHECK(d.class_names[8] == "Bag");

  // The same four files as "idx": recognised by their checksums, with the release's class names.
  std::vector<std::string> logged;
  const Dataset as_idx = load_logged(octa::data::kIdxDataset, *dir, logged);
  CHECK(as_idx.checksum_warnings.empty());
  REQUIRE(as_idx.checksum_notices.size() == 1);
  CHECK_THAT(as_idx.checksum_notices[0], Contains("the official Fashion-MNIST files"));
  CHECK(as_idx.class_names == d.class_names);
}

TEST_CASE("real MNIST read as Fashion-MNIST: each warning says which release it is",
          "[data][datasets][real]") {
  const auto dir = octa::test::real_mnist_dir();
  if (!dir) OCTA_SKIP(octa::test::real_mnist_missing_reason());
  std::vector<std::string> logged;
  const Dataset d = load_logged(octa::data::kFashionMnist, *dir, logged);
  REQUIRE(d.checksum_warnings.size() == 4);
  for (const std::string& w : d.checksum_warnings) {
    CHECK_THAT(w, Contains("not the official Fashion-MNIST") &&
                      Contains("it is MNIST's: use --dataset mnist"));
  }
}

TEST_CASE("real Fashion-MNIST downloaded from a file:// mirror into DIR/FashionMNIST/raw",
          "[data][datasets][download][real]") {
  const auto real = octa::test::real_fashion_mnist_dir();
  if (!real || !fs::exists(*real / "t10k-labels-idx1-ubyte.gz")) {
    OCTA_SKIP(octa::test::real_fashion_mnist_missing_reason());
  }
  TempDir dir("datasets");
  // Three files present (placeholders: the finder only looks at names), the test labels fetched.
  for (const char* name :
       {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"}) {
    write_bytes(dir / name, Bytes{0});
  }
  octa::data::FindOptions opts;
  opts.mirrors = {file_url(*real)};
  const auto files = octa::data::find_dataset(octa::data::kFashionMnist, dir.path(), opts);
  const fs::path fetched = dir.path() / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz";
  REQUIRE(files.downloaded == std::vector<fs::path>{fetched});
  CHECK(files.test_labels == fetched);
  CHECK(octa::data::md5_file_hex(fetched) == "bb300cfdad3c16e7a12a480ee83cd310");
}
