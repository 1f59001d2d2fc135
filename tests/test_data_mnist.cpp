// tests/test_data_mnist.cpp: MNIST itself (the real files: counts, eights, pixel mean, official
// checksums), the torchvision transform, and finding/downloading the files, offline through
// file:// mirrors: success, mirror order, a wrong MD5, downloading disabled, unreachable mirrors.

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <catch2/catch.hpp>

#include "engine/core/error.hpp"
#include "engine/data/download.hpp"
#include "engine/data/hash.hpp"
#include "engine/data/idx.hpp"
#include "engine/data/mnist.hpp"
#include "engine/data/transform.hpp"
#include "tests/support/compare.hpp"
#include "tests/support/files.hpp"
#include "tests/support/real_data.hpp"
#include "tests/support/skip.hpp"
#include "tests/support/temp_dir.hpp"

using octa::test::TempDir;

namespace {

namespace fs = std::filesystem;
using Catch::Contains;
using octa::data::kMnistFiles;
using octa::test::Bytes;
using octa::test::write_bytes;

// Sets an environment variable for the lifetime of the object, then restores it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = std::string(old);
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// Silences the default logger (the download attempts warn about every failed mirror).
class QuietLog {
 public:
  QuietLog() : level_(spdlog::default_logger()->level()) {
    spdlog::default_logger()->set_level(spdlog::level::off);
  }
  ~QuietLog() { spdlog::default_logger()->set_level(level_); }
  QuietLog(const QuietLog&) = delete;
  QuietLog& operator=(const QuietLog&) = delete;

 private:
  spdlog::level::level_enum level_;
};

Bytes read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string file_url(const fs::path& dir) {
  return "file://" + fs::absolute(dir).string() + "/";
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  if (!fs::exists(dir)) return names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// The real MNIST as .gz files (what a mirror serves), or nullopt.
std::optional<fs::path> real_gz_dir() {
  const auto dir = octa::test::real_mnist_dir();
  if (!dir) return std::nullopt;
  for (const auto& f : kMnistFiles) {
    if (!fs::exists(*dir / (std::string(f.name) + ".gz"))) return std::nullopt;
  }
  return dir;
}

// A small synthetic labels file, gzip-compressed: valid IDX, but not the official bytes.
Bytes synthetic_gz() {
  Bytes b{0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 8};
  return octa::data::gzip_compress(b);
}

octa::data::FindOptions with_mirrors(std::vector<std::string> mirrors) {
  octa::data::FindOptions o;
  o.mirrors = std::move(mirrors);
  o.download.connect_timeout_s = 3;
  o.download.timeout_s = 30;
  return o;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// ================================================================================================
// the real MNIST
// ================================================================================================

TEST_CASE("real MNIST: sizes, eights, pixel mean and official checksums", "[data][mnist][real]") {
  const auto dir = octa::test::real_mnist_dir();
  if (!dir) OCTA_SKIP(octa::test::real_mnist_missing_reason());
  octa::data::FindOptions opts;
  opts.allow_download = false;
  const auto m = octa::data::load_mnist(*dir, opts);

  CHECK(m.train.count == 60000);
  CHECK(m.test.count == 10000);
  CHECK(m.train.rows == 28);
  CHECK(m.train.cols == 28);
  CHECK(m.test.rows == 28);
  CHECK(m.train.pixels.size() == std::size_t{60000} * 784);
  CHECK(m.test.labels.size() == 10000);
  CHECK(m.files.downloaded.empty());
  // The files are the official ones: no checksum warning.
  CHECK(m.checksum_warnings.empty());

  std::vector<int> train_hist(10), test_hist(10);
  for (auto l : m.train.labels) ++train_hist[l];
  for (auto l : m.test.labels) ++test_hist[l];
  CHECK(train_hist[8] == 5851);
  CHECK(test_hist[8] == 974);
  CHECK(test_hist == std::vector<int>{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009});

  double sum = 0.0, sum_norm = 0.0;
  for (auto p : m.train.pixels) {
    sum += p;
    sum_norm += octa::data::normalize_pixel(p);
  }
  const double mean = sum / static_cast<double>(m.train.pixels.size()) / 255.0;
  INFO("mean training pixel (x/255) " << mean);
  CHECK(std::abs(mean - 0.1307) <= 0.0001);
  // After Normalize((0.5,), (0.5,)) the mean is 2 * mean - 1.
  const double mean_norm = sum_norm / static_cast<double>(m.train.pixels.size());
  CHECK(std::abs(mean_norm - (2.0 * mean - 1.0)) <= 1e-6);

  const auto first = octa::data::take_first(m.train, 1000);
  CHECK(first.count == 1000);
  CHECK(std::equal(first.pixels.begin(), first.pixels.end(), m.train.pixels.begin()));
  CHECK(octa::data::take_first(m.test, 100000).count == 10000);
}

// ================================================================================================
// transform
// ================================================================================================

TEST_CASE("normalize_pixel is torchvision's ToTensor + Normalize((0.5,), (0.5,)) in float32",
          "[data][transform]") {
  CHECK(octa::data::normalize_pixel(0) == -1.0f);
  CHECK(octa::data::normalize_pixel(255) == 1.0f);
  // Bit patterns of (float32(x) / 255 - 0.5) / 0.5 computed with numpy float32, the IEEE
  // operations torch performs: 127 and 128 are not mirror images, so the order of operations shows.
  const std::vector<std::pair<std::uint8_t, std::uint32_t>> expected{
      {1, 3212705278u},  {2, 3212573692u},   {127, 3145760896u},
      {128, 998277376u}, {200, 1058115986u}, {254, 1065221630u}};
  for (const auto& [x, bits] : expected) {
    const float got = octa::data::normalize_pixel(x);
    std::uint32_t got_bits = 0;
    std::memcpy(&got_bits, &got, sizeof got);
    INFO("x = " << int{x} << ", got " << got);
    CHECK(got_bits == bits);
  }
  std::vector<float> got(256);
  std::vector<double> ref(256);
  const auto table = octa::data::normalize_table();
  for (int v = 0; v < 256; ++v) {
    got[v] = octa::data::normalize_pixel(static_cast<std::uint8_t>(v));
    ref[v] = (v / 255.0 - 0.5) / 0.5;
    CHECK(table[v] == got[v]);
    if (v > 0) CHECK(got[v] > got[v - 1]);
  }
  OCTA_CHECK_CLOSE("normalize_pixel", got.data(), ref.data(), got.size(),
                   octa::test::tol::kFloatVsDouble);
}

TEST_CASE("binary target: label == target digit, digit validated", "[data][transform]") {
  CHECK(octa::data::kDefaultTargetDigit == 8);
  CHECK(octa::data::binary_target(8, 8) == 1.0f);
  CHECK(octa::data::binary_target(3, 8) == 0.0f);
  CHECK(octa::data::binary_target(3, 3) == 1.0f);
  CHECK(octa::data::binary_target(0, 0) == 1.0f);
  CHECK(octa::data::validate_target_digit(0) == 0);
  CHECK(octa::data::validate_target_digit(9) == 9);
  REQUIRE_THROWS_WITH(octa::data::validate_target_digit(10),
                      Contains("target digit must be in 0..9, got 10"));
  REQUIRE_THROWS_WITH(octa::data::validate_target_digit(-1), Contains("got -1"));
}

// ================================================================================================
// downloading, offline
// ================================================================================================

TEST_CASE("download_file: file:// URL, MD5 checked, atomic", "[data][download]") {
  TempDir dir("mnist");
  const Bytes payload = synthetic_gz();
  const fs::path src = write_bytes(dir / "mirror" / "payload.gz", payload);
  const std::string url = file_url(dir / "mirror") + "payload.gz";
  const fs::path dest = dir / "out" / "payload.gz";
  octa::data::DownloadOptions opts;
  opts.expected_md5 = octa::data::md5_hex(payload);

  octa::data::download_file(url, dest, opts);
  CHECK(read_bytes(dest) == payload);
  CHECK(names_in(dir / "out") == std::vector<std::string>{"payload.gz"});

  SECTION("a wrong MD5 leaves the existing file as it was and no temporary") {
    const Bytes old{'o', 'l', 'd'};
    write_bytes(dest, old);
    opts.expected_md5 = "00000000000000000000000000000000";
    REQUIRE_THROWS_WITH(octa::data::download_file(url, dest, opts),
                        Contains("payload.gz") && Contains("MD5 mismatch") &&
                            Contains(octa::data::md5_hex(payload)) &&
                            Contains("expected 00000000000000000000000000000000"));
    CHECK(read_bytes(dest) == old);
    CHECK(names_in(dir / "out") == std::vector<std::string>{"payload.gz"});
  }
  SECTION("a missing source: the URL in the error, nothing written, no folder left behind") {
    const fs::path dest2 = dir / "out2" / "sub" / "x.gz";
    REQUIRE_THROWS_WITH(octa::data::download_file(file_url(dir / "mirror") + "nope.gz", dest2),
                        Contains("nope.gz") && Contains("failed"));
    CHECK_FALSE(fs::exists(dir / "out2"));
    CHECK(fs::exists(dir.path()));  // what existed before stays
  }
}

TEST_CASE("find_mnist downloads missing files from a file:// mirror into DIR/MNIST/raw",
          "[data][download][real]") {
  const auto real = real_gz_dir();
  if (!real) OCTA_SKIP("the real MNIST .gz files are needed to serve as a mirror (official MD5s)");
  TempDir dir("mnist");
  const fs::path raw = dir.path() / "MNIST" / "raw";
  QuietLog quiet;

  SECTION("all four, from the first mirror") {
    const auto files = octa::data::find_mnist(dir.path(), with_mirrors({file_url(*real)}));
    REQUIRE(files.downloaded.size() == 4);
    CHECK(files.train_images == raw / "train-images-idx3-ubyte.gz");
    CHECK(files.test_labels == raw / "t10k-labels-idx1-ubyte.gz");
    CHECK(names_in(raw) ==
          std::vector<std::string>{"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                                   "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"});
    for (const auto& f : kMnistFiles) {
      CHECK(octa::data::md5_file_hex(raw / (std::string(f.name) + ".gz")) == f.gz_md5);
    }
    // Found now: nothing more is downloaded, even with downloading allowed.
    const auto again = octa::data::find_mnist(dir.path(), with_mirrors({"file:///nonexistent/"}));
    CHECK(again.downloaded.empty());
    CHECK(again.train_images == files.train_images);
  }
  SECTION("mirrors tried in order; only the missing files fetched") {
    const std::string labels = "t10k-labels-idx1-ubyte.gz";
    fs::copy_file(*real / labels, dir / labels);
    const auto files =
        octa::data::find_mnist(dir.path(), with_mirrors({"file:///nonexistent/", file_url(*real)}));
    CHECK(files.downloaded.size() == 3);
    CHECK(files.test_labels == dir / labels);
    CHECK_FALSE(fs::exists(raw / labels));
    CHECK(names_in(raw).size() == 3);
  }
}

TEST_CASE("find_mnist: a mirror with a wrong file fails by name, leaving nothing behind",
          "[data][download]") {
  TempDir dir("mnist");
  TempDir mirror;
  const Bytes fake = synthetic_gz();
  for (const auto& f : kMnistFiles) write_bytes(mirror / (std::string(f.name) + ".gz"), fake);
  const std::string fake_md5 = octa::data::md5_hex(fake);
  QuietLog quiet;
  REQUIRE_THROWS_WITH(octa::data::find_mnist(dir.path(), with_mirrors({file_url(mirror.path())})),
                      Contains("train-images-idx3-ubyte.gz") && Contains("MD5 mismatch") &&
                          Contains("got " + fake_md5) &&
                          Contains("expected f68b3c2dcbeaaa9fbdd348bbdeb94873"));
  // Neither the final name nor a temporary, nor the empty MNIST/raw folders.
  CHECK_FALSE(fs::exists(dir.path() / "MNIST"));
  CHECK(fs::exists(dir.path()));
}

TEST_CASE("find_mnist with downloading disabled says what is missing, where, and what to do",
          "[data][download]") {
  TempDir dir("mnist");
  octa::data::FindOptions opts;
  opts.allow_download = false;
  const std::string d = dir.path().string();
  const std::string raw = (dir.path() / "MNIST" / "raw").string();
  REQUIRE_THROWS_WITH(
      octa::data::find_mnist(dir.path(), opts),
      Contains("MNIST not found") && Contains("train-images-idx3-ubyte") &&
          Contains("train-labels-idx1-ubyte") && Contains("t10k-images-idx3-ubyte") &&
          Contains("t10k-labels-idx1-ubyte") && Contains("looked in " + d + " and " + raw) &&
          Contains("downloading is disabled") && Contains("copy the four files") &&
          Contains("scripts/setup.sh") && Contains("allow downloading"));
  CHECK_FALSE(fs::exists(dir.path() / "MNIST"));

  SECTION("only the missing file is listed") {
    const Bytes fake = synthetic_gz();
    for (const auto& f : kMnistFiles) {
      if (f.name != "t10k-images-idx3-ubyte")
        write_bytes(dir / (std::string(f.name) + ".gz"), fake);
    }
    try {
      octa::data::find_mnist(dir.path(), opts);
      FAIL("find_mnist should have thrown");
    } catch (const octa::Error& e) {
      const std::string msg = e.what();
      CHECK_THAT(msg, Contains("missing t10k-images-idx3-ubyte[.gz] ("));
      CHECK_THAT(msg, !Contains("train-labels-idx1-ubyte[.gz]"));
    }
  }
}

TEST_CASE("find_mnist: unreachable mirrors fail quickly with a clear error", "[data][download]") {
  TempDir dir("mnist");
  QuietLog quiet;
  SECTION("a file:// mirror that does not exist") {
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE_THROWS_WITH(
        octa::data::find_mnist(dir.path(), with_mirrors({"file:///nonexistent/"})),
        Contains("MNIST not found") &&
            Contains("downloading train-images-idx3-ubyte.gz failed from every mirror") &&
            Contains("file:///nonexistent/train-images-idx3-ubyte.gz") &&
            Contains("scripts/setup.sh") && Contains("OCTA_MNIST_MIRRORS"));
    CHECK(seconds_since(t0) < 5.0);
  }
  SECTION("a server that refuses connections: tried once, then skipped for the other files") {
    const auto t0 = std::chrono::steady_clock::now();
    octa::data::FindOptions opts =
        with_mirrors({"http://127.0.0.1:1/mnist/", "file:///nonexistent/"});
    // The first file fails on both mirrors, so the error is about it.
    REQUIRE_THROWS_WITH(octa::data::find_mnist(dir.path(), opts),
                        Contains("http://127.0.0.1:1/mnist/train-images-idx3-ubyte.gz") &&
                            Contains("file:///nonexistent/train-images-idx3-ubyte.gz"));
    CHECK(seconds_since(t0) < 10.0);
  }
  CHECK_FALSE(fs::exists(dir.path() / "MNIST"));  // no empty folders left behind
}

TEST_CASE("find_mnist: a mirror found unreachable is not retried for the next file",
          "[data][download][real]") {
  const auto real = real_gz_dir();
  if (!real) OCTA_SKIP("the real MNIST .gz files are needed to serve as a mirror (official MD5s)");
  TempDir dir("mnist");
  TempDir mirror;
  // find_mnist only looks for names, so placeholders stand in for the images; both label files
  // are missing. The mirror serves the training labels only.
  write_bytes(dir / "train-images-idx3-ubyte.gz", synthetic_gz());
  write_bytes(dir / "t10k-images-idx3-ubyte.gz", synthetic_gz());
  fs::copy_file(*real / "train-labels-idx1-ubyte.gz", mirror / "train-labels-idx1-ubyte.gz");
  // First a server that refuses connections, then the mirror.
  const auto opts = with_mirrors({"http://127.0.0.1:1/", file_url(mirror.path())});
  QuietLog quiet;
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE_THROWS_WITH(
      octa::data::find_mnist(dir.path(), opts),
      Contains("missing t10k-labels-idx1-ubyte[.gz] (") &&
          Contains("downloading t10k-labels-idx1-ubyte.gz failed from every mirror") &&
          Contains("http://127.0.0.1:1/: skipped, unreachable for an earlier file") &&
          Contains(file_url(mirror.path()) + "t10k-labels-idx1-ubyte.gz"));
  CHECK(seconds_since(t0) < 10.0);
  // The file that could be fetched was kept.
  CHECK(names_in(dir.path() / "MNIST" / "raw") ==
        std::vector<std::string>{"train-labels-idx1-ubyte.gz"});
}

TEST_CASE("mirrors: FindOptions, then OCTA_MNIST_MIRRORS, then torchvision's defaults",
          "[data][download]") {
  octa::data::FindOptions opts;
  {
    ScopedEnv env("OCTA_MNIST_MIRRORS", nullptr);
    CHECK(octa::data::resolve_mirrors(opts) ==
          std::vector<std::string>{"https://ossci-datasets.s3.amazonaws.com/mnist/",
                                   "http://yann.lecun.com/exdb/mnist/"});
  }
  {
    ScopedEnv env("OCTA_MNIST_MIRRORS", " file:///a/ ,file:///b/,,");
    CHECK(octa::data::resolve_mirrors(opts) ==
          std::vector<std::string>{"file:///a/", "file:///b/"});
    opts.mirrors = {"file:///c/"};
    CHECK(octa::data::resolve_mirrors(opts) == std::vector<std::string>{"file:///c/"});
  }
  {
    // The variable is what find_mnist uses when FindOptions names no mirror.
    TempDir dir("mnist");
    ScopedEnv env("OCTA_MNIST_MIRRORS", "file:///nonexistent-env-mirror");
    QuietLog quiet;
    octa::data::FindOptions none;
    REQUIRE_THROWS_WITH(octa::data::find_mnist(dir.path(), none),
                        Contains("file:///nonexistent-env-mirror/train-images-idx3-ubyte.gz"));
  }
}
