// tests/test_data_idx.cpp: the IDX reader and MNIST loading on synthetic files written by the test:
// every valid form (plain, gzip, a directory, torchvision's layout) and every kind of bad file,
// each error checked for the file name and the problem.

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <catch2/catch.hpp>

#include "engine/core/error.hpp"
#include "engine/data/hash.hpp"
#include "engine/data/idx.hpp"
#include "engine/data/mnist.hpp"
#include "tests/support/alloc_watch.hpp"
#include "tests/support/files.hpp"
#include "tests/support/idx_files.hpp"
#include "tests/support/log_capture.hpp"
#include "tests/support/temp_dir.hpp"

using octa::test::TempDir;

namespace {

namespace fs = std::filesystem;
using Catch::Contains;
using octa::data::IdxImages;
using octa::data::IdxLabels;
using octa::test::Bytes;
using octa::test::write_bytes;

// The largest single allocation made by f().
template <class F>
std::size_t largest_allocation(F&& f) {
  return octa::test::watch_allocations(std::forward<F>(f)).largest;
}

using octa::test::idx_images_file;
using octa::test::idx_labels_file;
using octa::test::put_be32;

std::vector<std::uint8_t> digits(std::size_t n) {
  std::vector<std::uint8_t> l(n);
  for (std::size_t i = 0; i < n; ++i) l[i] = static_cast<std::uint8_t>((i * 7 + 3) % 10);
  return l;
}

Bytes gz(const Bytes& b, int level = 6) {
  return octa::data::gzip_compress(b, level);
}

// The four files of a small MNIST-like set: `train` and `test` images of rows x cols.
void write_set(const fs::path& dir, bool compressed, std::uint32_t train = 12,
               std::uint32_t test = 5, std::uint32_t rows = 28) {
  const std::string ext = compressed ? ".gz" : "";
  const auto put = [&](const std::string& name, const Bytes& b) {
    write_bytes(dir / (name + ext), compressed ? gz(b) : b);
  };
  put("train-images-idx3-ubyte", idx_images_file(train, rows));
  put("train-labels-idx1-ubyte", idx_labels_file(digits(train)));
  put("t10k-images-idx3-ubyte", idx_images_file(test, rows));
  put("t10k-labels-idx1-ubyte", idx_labels_file(digits(test)));
}

using octa::test::LogCapture;

octa::data::FindOptions offline() {
  octa::data::FindOptions o;
  o.allow_download = false;
  return o;
}

// load_mnist on synthetic files, without the checksum warnings every such file earns (the case
// that checks those warnings captures them itself).
octa::data::Mnist load_synthetic(const fs::path& dir) {
  auto logger = spdlog::default_logger();
  const auto level = logger->level();
  logger->set_level(spdlog::level::err);
  try {
    auto m = octa::data::load_mnist(dir, offline());
    logger->set_level(level);
    return m;
  } catch (...) {
    logger->set_level(level);
    throw;
  }
}

void check_images(const IdxImages& im, std::uint32_t count, const Bytes& file) {
  REQUIRE(im.count == static_cast<int>(count));
  REQUIRE(im.rows == 28);
  REQUIRE(im.cols == 28);
  REQUIRE(im.pixels.size() == std::size_t{count} * 784);
  REQUIRE(std::equal(im.pixels.begin(), im.pixels.end(), file.begin() + 16));
  CHECK(im.sha256 == octa::data::sha256_hex(file));
}

}  // namespace

// ================================================================================================
// hashing
// ================================================================================================

TEST_CASE("md5 and sha256 match the standard test vectors, over bytes and files", "[data][hash]") {
  const std::string abc = "abc";
  const Bytes b(abc.begin(), abc.end());
  CHECK(octa::data::md5_hex(b) == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(octa::data::sha256_hex(b) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(octa::data::md5_hex(Bytes{}) == "d41d8cd98f00b204e9800998ecf8427e");
  TempDir dir("idx");
  const fs::path f = write_bytes(dir / "abc", b);
  CHECK(octa::data::md5_file_hex(f) == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(octa::data::sha256_file_hex(f) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  REQUIRE_THROWS_WITH(octa::data::md5_file_hex(dir / "missing"), Contains("missing"));
}

// ================================================================================================
// valid files
// ================================================================================================

TEST_CASE("idx: plain images file", "[data][idx]") {
  TempDir dir("idx");
  const Bytes file = idx_images_file(3);
  const fs::path path = write_bytes(dir / "images-idx3-ubyte", file);
  CHECK_FALSE(octa::data::is_gzip_file(path));
  check_images(octa::data::read_idx_images(path), 3, file);
}

TEST_CASE("idx: plain labels file", "[data][idx]") {
  TempDir dir("idx");
  const std::vector<std::uint8_t> l{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 8, 8};
  const Bytes file = idx_labels_file(l);
  const IdxLabels got = octa::data::read_idx_labels(write_bytes(dir / "labels", file));
  CHECK(got.count == 12);
  CHECK(got.labels == l);
  CHECK(got.sha256 == octa::data::sha256_hex(file));
}

TEST_CASE("idx: gzip images file, detected by magic bytes not by name", "[data][idx]") {
  TempDir dir("idx");
  const Bytes file = idx_images_file(4);
  const Bytes packed = gz(file);
  REQUIRE(packed.size() < file.size());
  SECTION("named .gz") {
    const fs::path path = write_bytes(dir / "images.gz", packed);
    CHECK(octa::data::is_gzip_file(path));
    check_images(octa::data::read_idx_images(path), 4, file);
  }
  SECTION("gzip content without the .gz extension") {
    check_images(octa::data::read_idx_images(write_bytes(dir / "images-idx3-ubyte", packed)), 4,
                 file);
  }
  SECTION("plain content named .gz") {
    check_images(octa::data::read_idx_images(write_bytes(dir / "plain.gz", file)), 4, file);
  }
  SECTION("stored (level 0) and maximum compression") {
    check_images(octa::data::read_idx_images(write_bytes(dir / "l0.gz", gz(file, 0))), 4, file);
    check_images(octa::data::read_idx_images(write_bytes(dir / "l9.gz", gz(file, 9))), 4, file);
  }
  SECTION("several gzip members back to back (cat a.gz b.gz)") {
    const std::size_t cut = 1000;
    Bytes multi = gz(Bytes(file.begin(), file.begin() + cut));
    const Bytes second = gz(Bytes(file.begin() + cut, file.end()));
    multi.insert(multi.end(), second.begin(), second.end());
    check_images(octa::data::read_idx_images(write_bytes(dir / "multi.gz", multi)), 4, file);
  }
}

TEST_CASE("idx: gzip labels file", "[data][idx]") {
  TempDir dir("idx");
  const auto l = digits(1000);
  const Bytes file = idx_labels_file(l);
  const IdxLabels got = octa::data::read_idx_labels(write_bytes(dir / "labels.gz", gz(file)));
  CHECK(got.count == 1000);
  CHECK(got.labels == l);
  CHECK(got.sha256 == octa::data::sha256_hex(file));
}

TEST_CASE("mnist: a directory holding the four files, plain or gzip", "[data][mnist]") {
  TempDir dir("idx");
  const bool compressed = GENERATE(false, true);
  write_set(dir.path(), compressed, 12, 5);
  // The synthetic files are not the official MNIST: each loads, with one warning per file.
  auto sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(16);
  octa::data::Mnist m;
  {
    LogCapture capture(sink);
    m = octa::data::load_mnist(dir.path(), offline());
  }

  CHECK(m.files.train_images ==
        dir / (std::string("train-images-idx3-ubyte") + (compressed ? ".gz" : "")));
  CHECK(m.files.downloaded.empty());
  CHECK(m.train.count == 12);
  CHECK(m.test.count == 5);
  CHECK(m.train.rows == 28);
  CHECK(m.train.cols == 28);
  CHECK(m.train.labels == digits(12));
  CHECK(m.test.labels == digits(5));
  CHECK(m.train.pixels[784 * 3 + 100] == octa::test::idx_pixel(3, 100));
  REQUIRE(m.checksum_warnings.size() == 4);
  CHECK_THAT(m.checksum_warnings[0], Contains("train-images-idx3-ubyte") &&
                                         Contains("not the official MNIST") &&
                                         Contains("ba891046e6505d7aadcbbe25680a0738"));
  const auto logged = sink->last_formatted();
  REQUIRE(logged.size() == 4);
  CHECK_THAT(logged[3], Contains("t10k-labels-idx1-ubyte") && Contains("SHA-256"));
}

TEST_CASE("mnist: torchvision's DIR/MNIST/raw layout", "[data][mnist]") {
  TempDir dir("idx");
  const fs::path raw = dir.path() / "MNIST" / "raw";
  write_set(raw, true, 7, 3);
  const auto files = octa::data::find_mnist(dir.path(), offline());
  CHECK(files.train_images == raw / "train-images-idx3-ubyte.gz");
  CHECK(files.test_labels == raw / "t10k-labels-idx1-ubyte.gz");
  const auto m = load_synthetic(dir.path());
  CHECK(m.train.count == 7);
  CHECK(m.test.count == 3);

  SECTION("torchvision also extracts: the plain file is preferred to the .gz beside it") {
    write_set(raw, false, 9, 4);
    const auto both = octa::data::find_mnist(dir.path(), offline());
    CHECK(both.train_images == raw / "train-images-idx3-ubyte");
    CHECK(load_synthetic(dir.path()).train.count == 9);
  }
  SECTION("files in DIR itself come before DIR/MNIST/raw") {
    write_set(dir.path(), false, 11, 2);
    CHECK(load_synthetic(dir.path()).train.count == 11);
  }
}

TEST_CASE("mnist: take_first keeps the first n images", "[data][mnist]") {
  TempDir dir("idx");
  write_set(dir.path(), false, 12, 5);
  const auto m = load_synthetic(dir.path());
  const auto s = octa::data::take_first(m.train, 4);
  CHECK(s.count == 4);
  CHECK(s.rows == 28);
  CHECK(s.labels == std::vector<std::uint8_t>(m.train.labels.begin(), m.train.labels.begin() + 4));
  CHECK(s.pixels == Bytes(m.train.pixels.begin(), m.train.pixels.begin() + 4 * 784));
  CHECK(octa::data::take_first(m.train, 12).pixels == m.train.pixels);
  CHECK(octa::data::take_first(m.train, 1000).count == 12);
  CHECK(octa::data::take_first(m.train, 0).count == 0);
}

// ================================================================================================
// bad files: each error names the file and the problem
// ================================================================================================

TEST_CASE("idx errors: wrong magic", "[data][idx][errors]") {
  TempDir dir("idx");
  SECTION("not IDX at all") {
    const fs::path p = write_bytes(dir / "notidx", Bytes{'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0, 0});
    REQUIRE_THROWS_WITH(octa::data::read_idx_images(p), Contains(p.string()) &&
                                                            Contains("not an IDX file") &&
                                                            Contains("wrong magic number"));
  }
  SECTION("a labels file read as labels but holding images (magic 2051)") {
    const fs::path p = write_bytes(dir / "train-labels-idx1-ubyte", idx_images_file(2));
    REQUIRE_THROWS_WITH(octa::data::read_idx_labels(p),
                        Contains(p.string()) && Contains("wrong magic number 2051") &&
                            Contains("IDX images file, expected an IDX labels file (magic 2049)"));
  }
  SECTION("an images file holding labels (magic 2049)") {
    const fs::path p = write_bytes(dir / "train-images-idx3-ubyte", idx_labels_file(digits(5)));
    REQUIRE_THROWS_WITH(octa::data::read_idx_images(p),
                        Contains(p.string()) && Contains("wrong magic number 2049") &&
                            Contains("expected an IDX images file (magic 2051)"));
  }
  SECTION("data type other than unsigned byte") {
    const fs::path p = write_bytes(dir / "float-images", idx_images_file(1, 28, 28, 0x0d03));
    REQUIRE_THROWS_WITH(octa::data::read_idx_images(p),
                        Contains(p.string()) && Contains("not unsigned byte"));
  }
}

TEST_CASE("idx errors: wrong number of dimensions", "[data][idx][errors]") {
  TempDir dir("idx");
  Bytes b;
  put_be32(b, 0x0802);  // unsigned bytes, 2 dimensions
  put_be32(b, 28);
  put_be32(b, 28);
  b.resize(b.size() + 784);
  const fs::path p = write_bytes(dir / "two-dims", b);
  REQUIRE_THROWS_WITH(
      octa::data::read_idx_images(p),
      Contains(p.string()) && Contains("wrong number of dimensions: 2") && Contains("has 3"));
  REQUIRE_THROWS_WITH(
      octa::data::read_idx_labels(p),
      Contains(p.string()) && Contains("wrong number of dimensions: 2") && Contains("has 1"));
}

TEST_CASE("idx errors: truncated and over-long plain files", "[data][idx][errors]") {
  TempDir dir("idx");
  Bytes file = idx_images_file(3);
  SECTION("data cut short") {
    file.resize(file.size() - 400);
    const fs::path p = write_bytes(dir / "short-images", file);
    REQUIRE_THROWS_WITH(octa::data::read_idx_images(p),
                        Contains(p.string()) &&
                            Contains("truncated: header implies 2368 bytes (3 images of 28x28), "
                                     "file holds 1968"));
  }
  SECTION("header cut short") {
    file.resize(10);
    const fs::path p = write_bytes(dir / "short-header", file);
    REQUIRE_THROWS_WITH(octa::data::read_idx_images(p),
                        Contains(p.string()) && Contains("truncated") &&
                            Contains("header needs 16 bytes, file holds 10"));
  }
  SECTION("labels cut short") {
    Bytes l = idx_labels_file(digits(10));
    l.resize(l.size() - 1);
    const fs::path p = write_bytes(dir / "short-labels", l);
    REQUIRE_THROWS_WITH(
        octa::data::read_idx_labels(p),
        Contains(p.string()) &&
            Contains("truncated: header implies 18 bytes (10 labels), file holds 17"));
  }
  SECTION("trailing bytes") {
    file.push_back(0);
    file.push_back(0);
    const fs::path p = write_bytes(dir / "long-images", file);
    REQUIRE_THROWS_WITH(octa::data::read_idx_images(p), Contains(p.string()) &&
                                                            Contains("trailing bytes") &&
                                                            Contains("2 bytes too many"));
  }
  SECTION("trailing bytes after a labels file") {
    Bytes l = idx_labels_file(digits(10));
    l.push_back(1);
    const fs::path p = write_bytes(dir / "long-labels", l);
    REQUIRE_THROWS_WITH(octa::data::read_idx_labels(p),
                        Contains(p.string()) && Contains("trailing bytes"));
  }
}

TEST_CASE("idx errors: trailing bytes inside a gzip file", "[data][idx][errors]") {
  TempDir dir("idx");
  Bytes file = idx_images_file(2);
  file.insert(file.end(), 5, 7);
  const fs::path p = write_bytes(dir / "long.gz", gz(file));
  REQUIRE_THROWS_WITH(octa::data::read_idx_images(p), Contains(p.string()) &&
                                                          Contains("trailing bytes") &&
                                                          Contains("5 bytes too many"));
}

TEST_CASE("idx errors: truncated gzip data", "[data][idx][errors]") {
  TempDir dir("idx");
  // Images whose content, not their gzip stream, is too short.
  Bytes file = idx_images_file(3);
  file.resize(file.size() - 100);
  const fs::path p = write_bytes(dir / "short-content.gz", gz(file));
  REQUIRE_THROWS_WITH(
      octa::data::read_idx_images(p),
      Contains(p.string()) && Contains("truncated: header implies 2368 bytes (3 images of 28x28), "
                                       "file holds 2268 (after decompression)"));
}

TEST_CASE("idx errors: truncated gzip stream", "[data][idx][errors]") {
  TempDir dir("idx");
  const Bytes packed = gz(idx_images_file(20));
  SECTION("cut in the middle") {
    const fs::path p =
        write_bytes(dir / "half.gz",
                    Bytes(packed.begin(), packed.begin() + static_cast<long>(packed.size() / 2)));
    REQUIRE_THROWS_WITH(octa::data::read_idx_images(p),
                        Contains(p.string()) && Contains("truncated gzip stream"));
  }
  SECTION("only the trailer (CRC, size) missing") {
    const fs::path p = write_bytes(dir / "notrailer.gz", Bytes(packed.begin(), packed.end() - 8));
    REQUIRE_THROWS_WITH(octa::data::read_idx_images(p),
                        Contains(p.string()) && Contains("truncated gzip stream"));
  }
  SECTION("just the gzip magic") {
    const fs::path p = write_bytes(dir / "magic.gz", Bytes{0x1f, 0x8b});
    REQUIRE_THROWS_WITH(octa::data::read_idx_images(p),
                        Contains(p.string()) && Contains("truncated gzip stream"));
  }
}

TEST_CASE("idx errors: corrupt gzip stream", "[data][idx][errors]") {
  TempDir dir("idx");
  const Bytes file = idx_images_file(5);
  SECTION("CRC-32 mismatch (one data byte changed in a stored stream)") {
    Bytes stored = gz(file, 0);
    stored[stored.size() / 2] ^= 0x40;
    const fs::path p = write_bytes(dir / "crc.gz", stored);
    REQUIRE_THROWS_WITH(octa::data::read_idx_images(p), Contains(p.string()) &&
                                                            Contains("corrupt gzip stream") &&
                                                            Contains("incorrect data check"));
  }
  SECTION("CRC-32 field itself damaged") {
    Bytes packed = gz(file);
    packed[packed.size() - 8] ^= 0xff;
    const fs::path p = write_bytes(dir / "crcfield.gz", packed);
    REQUIRE_THROWS_WITH(octa::data::read_idx_images(p),
                        Contains(p.string()) && Contains("incorrect data check"));
  }
  SECTION("length field damaged") {
    Bytes packed = gz(file);
    packed[packed.size() - 2] ^= 0x01;
    const fs::path p = write_bytes(dir / "isize.gz", packed);
    REQUIRE_THROWS_WITH(octa::data::read_idx_images(p), Contains(p.string()) &&
                                                            Contains("corrupt gzip stream") &&
                                                            Contains("incorrect length check"));
  }
  SECTION("bad compression method in the gzip header") {
    Bytes packed = gz(file);
    packed[2] = 7;
    const fs::path p = write_bytes(dir / "method.gz", packed);
    REQUIRE_THROWS_WITH(octa::data::read_idx_images(p),
                        Contains(p.string()) && Contains("corrupt gzip stream"));
  }
  SECTION("garbage after the gzip stream") {
    Bytes packed = gz(file);
    packed.push_back(0);
    packed.push_back(0);
    const fs::path p = write_bytes(dir / "garbage.gz", packed);
    REQUIRE_THROWS_WITH(octa::data::read_idx_images(p),
                        Contains(p.string()) && Contains("after the end of the gzip stream"));
  }
}

TEST_CASE("idx errors: empty, missing and non-regular files", "[data][idx][errors]") {
  TempDir dir("idx");
  const fs::path empty = write_bytes(dir / "empty-images", Bytes{});
  REQUIRE_THROWS_WITH(octa::data::read_idx_images(empty),
                      Contains(empty.string()) && Contains("empty file (0 bytes)"));
  REQUIRE_THROWS_WITH(octa::data::read_idx_labels(empty),
                      Contains(empty.string()) && Contains("empty file"));
  const fs::path missing = dir / "no-such-file";
  REQUIRE_THROWS_WITH(octa::data::read_idx_images(missing),
                      Contains(missing.string()) && Contains("cannot open"));
  REQUIRE_THROWS_WITH(octa::data::read_idx_labels(dir.path()),
                      Contains(dir.path().string()) && Contains("not a regular file"));
}

TEST_CASE("idx errors: a header claiming 10^9 images", "[data][idx][errors]") {
  TempDir dir("idx");
  Bytes b;
  put_be32(b, 2051);
  put_be32(b, 1000000000);
  put_be32(b, 28);
  put_be32(b, 28);
  b.resize(b.size() + 784 * 2);
  const auto start = std::chrono::steady_clock::now();
  SECTION("plain: held to the file's length") {
    const fs::path p = write_bytes(dir / "huge-images", b);
    const std::size_t largest = largest_allocation([&] {
      REQUIRE_THROWS_WITH(
          octa::data::read_idx_images(p),
          Contains(p.string()) && Contains("truncated: header implies 784000000016 bytes "
                                           "(1000000000 images of 28x28), file holds 1584"));
    });
    CHECK(largest < (std::size_t{1} << 22));
  }
  SECTION("gzip: refused before any allocation") {
    const fs::path p = write_bytes(dir / "huge-images.gz", gz(b));
    const std::size_t largest = largest_allocation([&] {
      REQUIRE_THROWS_WITH(octa::data::read_idx_images(p),
                          Contains(p.string()) && Contains("1000000000 images of 28x28") &&
                              Contains("more than this reader accepts"));
    });
    CHECK(largest < (std::size_t{1} << 22));
  }
  SECTION("labels: 10^9 claimed (under the cap), gzip: held to what the file can hold") {
    Bytes l;
    put_be32(l, 2049);
    put_be32(l, 1000000000);
    l.resize(l.size() + 100);
    const fs::path p = write_bytes(dir / "huge-labels.gz", gz(l));
    REQUIRE_THROWS_WITH(octa::data::read_idx_labels(p), Contains(p.string()) &&
                                                            Contains("1000000000 labels") &&
                                                            Contains("cannot hold more than"));
  }
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
}

TEST_CASE("idx errors: gzip claiming more data than it holds", "[data][idx][errors]") {
  TempDir dir("idx");
  SECTION("control: reading a valid file does make the allocation the watch looks for") {
    const fs::path p = write_bytes(dir / "valid.gz", gz(idx_images_file(3000)));
    const std::size_t largest = largest_allocation([&] { octa::data::read_idx_images(p); });
    CHECK(largest >= std::size_t{3000} * 784);
  }
  SECTION("more than deflate could ever expand the file to") {
    Bytes b;
    put_be32(b, 2051);
    put_be32(b, 1000000);  // 784 MB claimed, under the cap, from a file of a few hundred bytes
    put_be32(b, 28);
    put_be32(b, 28);
    b.resize(b.size() + 784 * 3);
    const fs::path p = write_bytes(dir / "claims.gz", gz(b));
    const std::size_t largest = largest_allocation([&] {
      REQUIRE_THROWS_WITH(octa::data::read_idx_images(p),
                          Contains(p.string()) && Contains("truncated or wrong header") &&
                              Contains("header implies 784000016 bytes") &&
                              Contains("cannot hold more than"));
    });
    CHECK(largest < (std::size_t{1} << 22));
  }
  SECTION("a plausible claim the data does not back: memory follows the data, not the claim") {
    // Incompressible data, so the claim passes the deflate-ratio bound and only decompressing
    // can show that the data is not there.
    Bytes b;
    put_be32(b, 2051);
    put_be32(b, 400000);  // 313.6 MB claimed
    put_be32(b, 28);
    put_be32(b, 28);
    std::mt19937 gen(7);
    for (int i = 0; i < 784 * 400; ++i) b.push_back(static_cast<std::uint8_t>(gen() >> 24));
    const fs::path p = write_bytes(dir / "claims-more.gz", gz(b, 1));
    const std::size_t largest = largest_allocation([&] {
      REQUIRE_THROWS_WITH(
          octa::data::read_idx_images(p),
          Contains(p.string()) && Contains("truncated: header implies 313600016 bytes "
                                           "(400000 images of 28x28), file holds 313616 (after "
                                           "decompression)"));
    });
    CHECK(largest < (std::size_t{1} << 22));
  }
}

TEST_CASE("idx errors: empty images", "[data][idx][errors]") {
  TempDir dir("idx");
  const fs::path p = write_bytes(dir / "zero-rows", idx_images_file(5, 0, 28));
  REQUIRE_THROWS_WITH(octa::data::read_idx_images(p),
                      Contains(p.string()) && Contains("0x28") && Contains("cannot be empty"));
}

TEST_CASE("idx errors: label outside 0..9", "[data][idx][errors]") {
  TempDir dir("idx");
  auto l = digits(20);
  l[13] = 10;
  const fs::path p = write_bytes(dir / "labels-10", idx_labels_file(l));
  REQUIRE_THROWS_WITH(octa::data::read_idx_labels(p),
                      Contains(p.string()) && Contains("label 10 at index 13 is outside 0..9"));
  const fs::path pg = write_bytes(dir / "labels-10.gz", gz(idx_labels_file(l)));
  REQUIRE_THROWS_WITH(octa::data::read_idx_labels(pg),
                      Contains(pg.string()) && Contains("label 10 at index 13"));
}

TEST_CASE("mnist errors: image/label count mismatch", "[data][mnist][errors]") {
  TempDir dir("idx");
  write_set(dir.path(), false, 12, 5);
  const fs::path labels = write_bytes(dir / "t10k-labels-idx1-ubyte", idx_labels_file(digits(6)));
  REQUIRE_THROWS_WITH(load_synthetic(dir.path()),
                      Contains("image/label count mismatch") &&
                          Contains((dir / "t10k-images-idx3-ubyte").string() + " holds 5 images") &&
                          Contains(labels.string() + " holds 6 labels"));
}

TEST_CASE("mnist errors: images that are not 28x28", "[data][mnist][errors]") {
  TempDir dir("idx");
  write_set(dir.path(), true, 4, 3, 27);
  REQUIRE_THROWS_WITH(load_synthetic(dir.path()),
                      Contains((dir / "train-images-idx3-ubyte.gz").string()) &&
                          Contains("images are 27x28") && Contains("need MNIST's 28x28"));
}

TEST_CASE("mnist errors: a bad file is reported by name when loading", "[data][mnist][errors]") {
  TempDir dir("idx");
  write_set(dir.path(), true, 4, 3);
  const fs::path bad = write_bytes(dir / "train-labels-idx1-ubyte.gz", gz(idx_images_file(4)));
  REQUIRE_THROWS_WITH(load_synthetic(dir.path()),
                      Contains(bad.string()) && Contains("wrong magic number 2051"));
}
